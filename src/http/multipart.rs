//! Reading a `multipart/form-data` upload with bounded memory: multer
//! parses it; its own limits bound each field and the whole stream, and a
//! meter bounds what multer buffers that is no field's data (the preamble,
//! boundaries, part headers), which no multer limit covers.

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    task::{Context, Poll},
};

use axum::{body::Body, http::HeaderMap};
use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};

use super::error::ApiError;

/// What multer may hold that it has not handed out as field data: the
/// preamble, boundaries and part headers, plus what it has read ahead.
pub const MAX_BUFFERED: u64 = 64 * 1024;
/// All fields other than the file together (a form's CSRF token, a
/// client's extra fields); each one is read and dropped, never kept.
pub const MAX_OTHER_FIELDS: u64 = 64 * 1024;
/// What a multipart body may carry besides the file, for a declared
/// `Content-Length` and multer's whole-stream limit.
pub const OVERHEAD: u64 = MAX_BUFFERED + MAX_OTHER_FIELDS;

const TOO_MUCH_BUFFERED: &str =
    "a multipart upload may carry at most 64 KiB of preamble and part headers before its data";
const TOO_MUCH_OTHER: &str = "the fields besides `file` may hold at most 64 KiB together";

/// A multipart body, read one field at a time.
pub struct Form {
    multipart: multer::Multipart<'static>,
    meter: Arc<Meter>,
    other_bytes: u64,
}

#[derive(Default)]
struct Meter {
    /// Bytes read from the body less field bytes handed out.
    held: AtomicU64,
    /// Fields handed out so far: parsing a field's headers is progress
    /// even when no data has been handed out yet.
    fields: AtomicU64,
    tripped: AtomicBool,
}

impl Form {
    /// The body of a request whose `Content-Type` is multipart with a
    /// boundary; `file_limit` is the largest file it may carry.
    pub fn new(headers: &HeaderMap, body: Body, file_limit: u64) -> Result<Self, ApiError> {
        let boundary = headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| multer::parse_boundary(v).ok())
            .ok_or_else(|| ApiError::bad_request("a multipart upload needs a boundary"))?;
        let meter = Arc::new(Meter::default());
        let body = Metered {
            inner: body.into_data_stream(),
            meter: meter.clone(),
            fresh: false,
            seen: (0, 0),
        };
        let constraints = multer::Constraints::new().size_limit(
            multer::SizeLimit::new()
                .whole_stream(file_limit.saturating_add(OVERHEAD))
                .per_field(MAX_OTHER_FIELDS)
                // The file's own limit is enforced where it is stored,
                // which also removes what was written of it.
                .for_field("file", u64::MAX),
        );
        Ok(Self {
            multipart: multer::Multipart::with_constraints(body, boundary, constraints),
            meter,
            other_bytes: 0,
        })
    }

    /// The next field, or `None` after the last.
    pub async fn next_field(&mut self) -> Result<Option<multer::Field<'static>>, ApiError> {
        let field = self
            .multipart
            .next_field()
            .await
            .map_err(|e| self.refused(e))?;
        if field.is_some() {
            self.meter.fields.fetch_add(1, Ordering::Relaxed);
        }
        Ok(field)
    }

    /// A field's bytes as they arrive (for streaming a file to storage).
    pub fn stream(
        &self,
        field: multer::Field<'static>,
    ) -> impl Stream<Item = Result<Bytes, multer::Error>> + Send + 'static {
        let meter = self.meter.clone();
        field.inspect_ok(move |b| {
            meter.held.fetch_sub(b.len() as u64, Ordering::Relaxed);
        })
    }

    /// A small field's text, counted against [`MAX_OTHER_FIELDS`].
    pub async fn text(&mut self, field: multer::Field<'static>) -> Result<String, ApiError> {
        let mut bytes = Vec::new();
        self.drain(field, Some(&mut bytes)).await?;
        String::from_utf8(bytes).map_err(|_| ApiError::bad_request("a form field is not UTF-8"))
    }

    /// Reads a field that is not wanted to its end, so that what it held
    /// is handed out rather than counted as buffered.
    pub async fn skip(&mut self, field: multer::Field<'static>) -> Result<(), ApiError> {
        self.drain(field, None).await
    }

    async fn drain(
        &mut self,
        field: multer::Field<'static>,
        mut keep: Option<&mut Vec<u8>>,
    ) -> Result<(), ApiError> {
        let mut data = std::pin::pin!(self.stream(field));
        while let Some(chunk) = data.next().await {
            let chunk = chunk.map_err(|e| self.refused(e))?;
            self.other_bytes += chunk.len() as u64;
            if self.other_bytes > MAX_OTHER_FIELDS {
                return Err(ApiError::bad_request(TOO_MUCH_OTHER));
            }
            if let Some(keep) = keep.as_mut() {
                keep.extend_from_slice(&chunk);
            }
        }
        Ok(())
    }

    fn refused(&self, e: multer::Error) -> ApiError {
        if self.meter.tripped.load(Ordering::Relaxed) {
            return ApiError::bad_request(TOO_MUCH_BUFFERED);
        }
        match e {
            multer::Error::FieldSizeExceeded { .. } => ApiError::bad_request(TOO_MUCH_OTHER),
            multer::Error::StreamSizeExceeded { limit } => {
                ApiError::payload_too_large(limit.saturating_sub(OVERHEAD))
            }
            e => ApiError::bad_request(format!("the multipart body is malformed: {e}")),
        }
    }
}

/// The body as multer reads it. multer pulls every chunk that is ready
/// before it parses, so a chunk that holds part headers and a megabyte of
/// file data is all "held" until multer hands the data out. The meter
/// therefore never pulls more while it holds over [`MAX_BUFFERED`]: it
/// yields to multer (waking itself) as long as multer makes progress
/// (hands data out or parses a field), and refuses the body once multer
/// makes none, which is a preamble or part header that does not end.
struct Metered<S> {
    inner: S,
    meter: Arc<Meter>,
    /// A chunk was handed to multer and it has not parsed since.
    fresh: bool,
    /// (held, fields) when the meter last yielded.
    seen: (u64, u64),
}

impl<S> Stream for Metered<S>
where
    S: Stream<Item = Result<Bytes, axum::Error>> + Unpin,
{
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let now = (
            self.meter.held.load(Ordering::Relaxed),
            self.meter.fields.load(Ordering::Relaxed),
        );
        if now.0 > MAX_BUFFERED {
            let progress = now.0 < self.seen.0 || now.1 != self.seen.1;
            if !(self.fresh || progress) {
                self.meter.tripped.store(true, Ordering::Relaxed);
                return Poll::Ready(Some(Err(std::io::Error::other(TOO_MUCH_BUFFERED))));
            }
            self.fresh = false;
            self.seen = now;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        match self.inner.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                let held = self
                    .meter
                    .held
                    .fetch_add(chunk.len() as u64, Ordering::Relaxed)
                    + chunk.len() as u64;
                self.fresh = true;
                self.seen = (held, now.1);
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(std::io::Error::other(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}
