//! Load shedding and fair shares: the routes whose work or memory grows
//! with the request run in a bounded number of slots. A request that finds
//! none free within [`WAIT`] is answered 503 with `Retry-After`, so a burst
//! costs latency and then refusals, never the pod's memory.
//!
//! A slot is for work, not for waiting on a client: a heavy request's JSON
//! body is read before it takes a slot (under a byte budget shared by all
//! such reads), uploads stream in a pool of their own, an ingest streams
//! its batch to disk in that pool and takes its work slot ([`IngestTurn`])
//! only once the batch is in, one client may hold only a share of the
//! streams, and a body that arrives slower than `NOTES_MIN_BODY_RATE` is
//! cut off with 408.

use std::{
    collections::HashMap,
    hash::BuildHasher,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    body::{Body, BodyDataStream, Bytes},
    extract::Request,
    http::{HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use futures::{Stream, StreamExt};
use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore},
    time::{Instant, Sleep},
};

use super::{error::ApiError, rate_limit::ClientAddr};
use crate::{config::Limits, domain::note::MAX_NOTE_JSON_BYTES};

/// How long a request may wait for a slot before it is shed.
const WAIT: Duration = Duration::from_secs(1);
/// Bytes of JSON bodies read ahead of their heavy slot, all requests
/// together.
const READ_AHEAD_BUDGET: usize = 32 * 1024 * 1024;
/// The window over which a streamed body's rate is measured.
const RATE_WINDOW: Duration = Duration::from_secs(10);
/// How long an ingest whose batch is already on disk waits for its work
/// slot: it costs no memory while it waits, and its client has paid for
/// the transfer, so it queues longer than a request that has sent nothing.
const SPOOLED_WAIT: Duration = Duration::from_secs(30);

pub struct Slots {
    /// Bulk ingest, once its batch is on disk: holds the batch in memory
    /// while it validates and writes.
    ingest: Arc<Semaphore>,
    /// Single-note writes, listing, search, job creation.
    heavy: Arc<Semaphore>,
    /// Streams: attachment uploads (each with a few object parts in
    /// flight) and ingest batches on their way to disk.
    uploads: Arc<Semaphore>,
    /// Exports: each holds its slot until the last byte of its response
    /// (see [`StreamSlot`]).
    exports: Arc<Semaphore>,
    read_ahead: Arc<Semaphore>,
    /// Uploads and ingests each client runs now.
    streaming: Arc<Mutex<HashMap<u64, usize>>>,
    per_client: usize,
    min_body_rate: u64,
    hasher: std::hash::RandomState,
}

impl Slots {
    pub fn new(limits: &Limits) -> Self {
        Self {
            ingest: Arc::new(Semaphore::new(limits.max_ingests.max(1))),
            heavy: Arc::new(Semaphore::new(limits.max_heavy_requests.max(1))),
            uploads: Arc::new(Semaphore::new(limits.max_uploads.max(1))),
            exports: Arc::new(Semaphore::new(limits.max_exports.max(1))),
            read_ahead: Arc::new(Semaphore::new(READ_AHEAD_BUDGET)),
            streaming: Arc::default(),
            per_client: limits.max_uploads_per_client,
            min_body_rate: limits.min_body_rate,
            hasher: std::hash::RandomState::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Ingest,
    Upload,
    Export,
    Heavy,
    Light,
}

fn class(method: &Method, route: &str) -> Class {
    match (method.as_str(), route) {
        ("POST", "/api/v1/ingest") => Class::Ingest,
        // An import's zip streams to storage like an attachment.
        (
            "POST",
            "/api/v1/notes/{id}/attachments" | "/admin/notes/{id}/attachments" | "/api/v1/import",
        ) => Class::Upload,
        // HEAD runs the handler too (axum answers it from the GET route).
        ("GET" | "HEAD", "/api/v1/export") => Class::Export,
        ("GET" | "POST", "/api/v1/notes")
        | ("PATCH", "/api/v1/notes/{id}")
        | ("GET", "/api/v1/search")
        // A page of the feed may carry 8 MiB of notes.
        | ("GET", "/api/v1/changes")
        | ("POST", "/api/v1/jobs")
        // A restore is a note write; a diff of two large bodies is CPU.
        | ("POST", "/api/v1/notes/{id}/revisions/{version}/restore")
        | ("GET", "/api/v1/notes/{id}/revisions/{version}/diff")
        // The admin UI's note forms: the same work as the API's.
        | ("POST", "/admin/notes/new")
        | ("POST", "/admin/notes/{id}/edit")
        | ("POST", "/admin/notes/{id}/history/{version}/restore") => Class::Heavy,
        _ => Class::Light,
    }
}

impl Slots {
    /// Runs `req` through `next` in a slot of the pool its route belongs
    /// to, or sheds it.
    pub async fn run<F, Fut>(&self, route: &str, req: Request, next: F) -> Response
    where
        F: FnOnce(Request) -> Fut,
        Fut: Future<Output = Response>,
    {
        match class(req.method(), route) {
            Class::Light => next(req).await,
            Class::Heavy => {
                let (req, _budget) = match self.read_ahead(req).await {
                    Ok(read) => read,
                    Err(e) => return e.into_response(),
                };
                self.in_slot(&self.heavy, route, next(req)).await
            }
            Class::Export => {
                let Some(share) = self.share(&req) else {
                    return too_many_streams(self.per_client).into_response();
                };
                let Some(slot) = take(&self.exports, route, WAIT).await else {
                    return overloaded().into_response();
                };
                let mut req = req;
                req.extensions_mut()
                    .insert(StreamSlot(Arc::new(Mutex::new(Some(Held {
                        _slot: slot,
                        _share: share,
                    })))));
                next(req).await
            }
            class @ (Class::Ingest | Class::Upload) => {
                let Some(_share) = self.share(&req) else {
                    return too_many_streams(self.per_client).into_response();
                };
                let (mut req, slow) = self.metered(req);
                let res = if class == Class::Ingest {
                    let Some(stream) = take(&self.uploads, route, WAIT).await else {
                        return overloaded().into_response();
                    };
                    req.extensions_mut().insert(IngestTurn {
                        stream: Arc::new(Mutex::new(Some(stream))),
                        work: self.ingest.clone(),
                        route: route.to_owned(),
                    });
                    next(req).await
                } else {
                    self.in_slot(&self.uploads, route, next(req)).await
                };
                if slow.load(Ordering::Relaxed) {
                    metrics::counter!("http_slow_bodies_total", "route" => route.to_owned())
                        .increment(1);
                    return too_slow(self.min_body_rate).into_response();
                }
                res
            }
        }
    }

    async fn in_slot(
        &self,
        pool: &Arc<Semaphore>,
        route: &str,
        work: impl Future<Output = Response>,
    ) -> Response {
        match take(pool, route, WAIT).await {
            Some(_slot) => work.await,
            None => overloaded().into_response(),
        }
    }

    /// Reads a JSON or form body whole before its request takes a slot,
    /// holding its bytes' worth of the shared read-ahead budget until the
    /// response. A body over the limit is passed on unread past it, for
    /// the handler to refuse in its own words (problem+json, or a page).
    async fn read_ahead(
        &self,
        req: Request,
    ) -> Result<(Request, Option<OwnedSemaphorePermit>), ApiError> {
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if !matches!(*req.method(), Method::POST | Method::PATCH | Method::PUT)
            || declared.is_some_and(|n| n > MAX_NOTE_JSON_BYTES)
        {
            return Ok((req, None));
        }
        let (parts, body) = req.into_parts();
        let mut data = body.into_data_stream();
        let mut bytes = Vec::new();
        let mut held: Option<OwnedSemaphorePermit> = None;
        while let Some(chunk) = data.next().await {
            // A body that breaks is the handler's to report, as before.
            let Ok(chunk) = chunk else {
                return Ok((Request::from_parts(parts, Body::empty()), held));
            };
            if bytes.len() + chunk.len() > MAX_NOTE_JSON_BYTES {
                bytes.extend_from_slice(&chunk);
                let read = futures::stream::once(async move { Ok(Bytes::from(bytes)) });
                let body = Body::from_stream(read.chain(data));
                return Ok((Request::from_parts(parts, body), held));
            }
            let n = u32::try_from(chunk.len()).unwrap_or(u32::MAX);
            let permit = tokio::time::timeout(WAIT, self.read_ahead.clone().acquire_many_owned(n))
                .await
                .map_err(|_| overloaded())?
                .map_err(|_| overloaded())?;
            match held.as_mut() {
                Some(h) => h.merge(permit),
                None => held = Some(permit),
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok((Request::from_parts(parts, Body::from(bytes)), held))
    }

    /// One of the client's shares of the streaming pools, or `None` when
    /// it holds all it may.
    fn share(&self, req: &Request) -> Option<Share> {
        // The key as sent, unchecked: a made-up one fails its check before
        // the body is read, so it cannot hold a share for long.
        let client = match req.headers().get(header::AUTHORIZATION) {
            Some(auth) => self.hasher.hash_one(auth.as_bytes()),
            None => self
                .hasher
                .hash_one(req.extensions().get::<ClientAddr>().map(|a| a.0)),
        };
        let mut streaming = self.streaming.lock().expect("never poisoned");
        let held = streaming.entry(client).or_default();
        if *held >= self.per_client {
            return None;
        }
        *held += 1;
        Some(Share {
            streaming: self.streaming.clone(),
            client,
        })
    }

    /// The request with its body held to the minimum rate; the flag says
    /// the body was cut off for it.
    fn metered(&self, req: Request) -> (Request, Arc<AtomicBool>) {
        let slow = Arc::new(AtomicBool::new(false));
        if self.min_body_rate == 0 {
            return (req, slow);
        }
        let (parts, body) = req.into_parts();
        let body = Body::from_stream(MinRate {
            inner: body.into_data_stream(),
            min_per_window: self.min_body_rate.saturating_mul(RATE_WINDOW.as_secs()),
            got: 0,
            window_end: Box::pin(tokio::time::sleep(RATE_WINDOW)),
            waiting: false,
            slow: slow.clone(),
        });
        (Request::from_parts(parts, body), slow)
    }
}

/// A slot of `pool` within `wait`, or `None` (counted as shed).
async fn take(pool: &Arc<Semaphore>, route: &str, wait: Duration) -> Option<OwnedSemaphorePermit> {
    match tokio::time::timeout(wait, pool.clone().acquire_owned()).await {
        Ok(Ok(slot)) => Some(slot),
        _ => {
            metrics::counter!("http_shed_total", "route" => route.to_owned()).increment(1);
            None
        }
    }
}

/// An ingest's place in line, in its request's extensions: it holds a
/// streaming slot while its batch arrives, and [`IngestTurn::work`] trades
/// that for an ingest slot once the batch is on disk, so a client that
/// sends slowly keeps no other batch from being written.
#[derive(Clone)]
pub struct IngestTurn {
    stream: Arc<Mutex<Option<OwnedSemaphorePermit>>>,
    work: Arc<Semaphore>,
    route: String,
}

impl IngestTurn {
    /// Gives back the streaming slot and waits for an ingest slot: 503 with
    /// `Retry-After` when none frees up within [`SPOOLED_WAIT`].
    pub async fn work(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        drop(self.stream.lock().expect("never poisoned").take());
        take(&self.work, &self.route, SPOOLED_WAIT)
            .await
            .ok_or_else(overloaded)
    }
}

/// A streamed response's slot and its client's share, in its request's
/// extensions: the handler moves them ([`StreamSlot::take`]) into the task
/// that writes the body, so they are held until its last byte is sent or
/// the client goes away, not only until the headers are.
#[derive(Clone)]
pub struct StreamSlot(Arc<Mutex<Option<Held>>>);

/// Held while a response streams; released when dropped.
pub struct Held {
    _slot: OwnedSemaphorePermit,
    _share: Share,
}

impl StreamSlot {
    pub fn take(&self) -> Option<Held> {
        self.0.lock().expect("never poisoned").take()
    }
}

struct Share {
    streaming: Arc<Mutex<HashMap<u64, usize>>>,
    client: u64,
}

impl Drop for Share {
    fn drop(&mut self) {
        let mut streaming = self.streaming.lock().expect("never poisoned");
        if let Some(held) = streaming.get_mut(&self.client) {
            *held -= 1;
            if *held == 0 {
                streaming.remove(&self.client);
            }
        }
    }
}

/// A body that must bring `min_per_window` bytes in every window during
/// which the server waits for it. A window in which the server did not
/// read (storage was slow) is not held against the client.
struct MinRate {
    inner: BodyDataStream,
    min_per_window: u64,
    got: u64,
    window_end: Pin<Box<Sleep>>,
    /// The last read found nothing from the client.
    waiting: bool,
    slow: Arc<AtomicBool>,
}

impl Stream for MinRate {
    type Item = Result<Bytes, axum::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        while self.window_end.as_mut().poll(cx).is_ready() {
            if self.waiting && self.got < self.min_per_window {
                self.slow.store(true, Ordering::Relaxed);
                return Poll::Ready(Some(Err(axum::Error::new(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the request body arrived too slowly",
                )))));
            }
            self.got = 0;
            self.window_end.as_mut().reset(Instant::now() + RATE_WINDOW);
        }
        let polled = self.inner.poll_next_unpin(cx);
        self.waiting = polled.is_pending();
        if let Poll::Ready(Some(Ok(chunk))) = &polled {
            self.got += chunk.len() as u64;
        }
        polled
    }
}

fn overloaded() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "overloaded",
        "the server is busy with requests like this one; retry after the time in Retry-After",
    )
    .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
}

fn too_many_streams(per_client: usize) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too-many-requests",
        format!(
            "this client already runs {per_client} uploads, ingests or exports, the most it may run at once \
             (NOTES_MAX_UPLOADS_PER_CLIENT); retry when one has finished"
        ),
    )
    .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
}

fn too_slow(rate: u64) -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "request-timeout",
        format!(
            "the request body arrived slower than {rate} bytes a second (NOTES_MIN_BODY_RATE); nothing was kept"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_routes_that_grow_with_their_input_take_a_slot() {
        assert_eq!(class(&Method::POST, "/api/v1/ingest"), Class::Ingest);
        assert_eq!(
            class(&Method::POST, "/api/v1/notes/{id}/attachments"),
            Class::Upload
        );
        assert_eq!(class(&Method::GET, "/api/v1/search"), Class::Heavy);
        assert_eq!(class(&Method::PATCH, "/api/v1/notes/{id}"), Class::Heavy);
        assert_eq!(class(&Method::GET, "/api/v1/notes/{id}"), Class::Light);
        assert_eq!(class(&Method::GET, "/readyz"), Class::Light);
        assert_eq!(class(&Method::GET, "/api/v1/export"), Class::Export);
        assert_eq!(class(&Method::HEAD, "/api/v1/export"), Class::Export);
        let admin_upload = "/admin/notes/{id}/attachments";
        assert_eq!(class(&Method::POST, admin_upload), Class::Upload);
        assert_eq!(class(&Method::POST, "/admin/notes/{id}/edit"), Class::Heavy);
        assert_eq!(class(&Method::GET, "/admin/notes/{id}/edit"), Class::Light);
    }

    fn slots(tweak: impl FnOnce(&mut crate::config::Config)) -> Slots {
        let mut config = crate::config::Config::defaults();
        tweak(&mut config);
        Slots::new(&config.resolve().expect("valid settings").limits)
    }

    fn upload(key: &str) -> Request {
        Request::post("/api/v1/notes/x/attachments")
            .header(header::AUTHORIZATION, format!("Bearer {key}"))
            .body(Body::empty())
            .unwrap()
    }

    /// With every heavy slot taken, the next heavy request waits a second
    /// and is shed with 503 + Retry-After.
    #[tokio::test]
    async fn heavy_requests_beyond_their_slots_are_shed() {
        let slots = Arc::new(slots(|c| c.limits.max_heavy_requests = 1));
        let (release, held) = tokio::sync::oneshot::channel::<()>();
        let holder = {
            let slots = slots.clone();
            tokio::spawn(async move {
                let req = Request::get("/").body(Body::empty()).unwrap();
                slots
                    .run("/api/v1/search", req, |_| async {
                        let _ = held.await;
                        StatusCode::OK.into_response()
                    })
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = std::time::Instant::now();
        let req = Request::get("/").body(Body::empty()).unwrap();
        let res = slots
            .run("/api/v1/search", req, |_| async {
                StatusCode::OK.into_response()
            })
            .await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()["retry-after"], "1");
        assert!(started.elapsed() >= Duration::from_millis(900));
        release.send(()).unwrap();
        assert_eq!(holder.await.unwrap().status(), StatusCode::OK);
    }

    /// One client may run only its share of uploads; another client, and
    /// the same client once one has ended, may still start one.
    #[tokio::test]
    async fn a_client_holds_at_most_its_share_of_uploads() {
        let slots = slots(|c| c.limits.max_uploads_per_client = Some(2));
        let a1 = slots.share(&upload("a")).expect("first");
        let _a2 = slots.share(&upload("a")).expect("second");
        assert!(slots.share(&upload("a")).is_none(), "a third for one key");
        assert!(slots.share(&upload("b")).is_some(), "another key");
        drop(a1);
        assert!(slots.share(&upload("a")).is_some(), "after one ended");
    }
}
