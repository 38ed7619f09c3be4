//! Accepting connections with the limits `axum::serve` does not set: a
//! header-read timeout, an idle timeout on every socket, a cap on open
//! connections, and bounded per-connection buffers. Without them a client
//! that opens sockets and dribbles a byte at a time holds the server.

use std::{
    collections::BTreeMap,
    io,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
};
use tokio::{net::TcpListener, sync::Semaphore};
use tokio_io_timeout::TimeoutStream;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tower_http::timeout::TimeoutBody;

use super::served::Routes;
use crate::config;

/// What one connection may hold: the request head (line and headers) must
/// fit in this buffer, else 431. Large enough for big cookies and tokens;
/// small enough that the connection cap bounds the memory of stalled heads.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// HTTP/2 streams one connection may run at once.
const MAX_STREAMS: u32 = 64;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// From the moment a connection is ready for a request (just opened, or
    /// its previous response sent) until the request's headers are in. hyper
    /// starts this clock when a connection goes idle, so it is also how long
    /// an idle keep-alive connection is kept.
    pub header_timeout: Duration,
    /// How long a socket may go with no byte read or written while a read or
    /// a write waits on it: a stalled upload, or a client that stops reading
    /// its response.
    pub idle_timeout: Duration,
    /// Connections open at once; the next one waits in the listen backlog.
    pub max_connections: usize,
}

impl Limits {
    pub fn new(limits: &config::Limits) -> Self {
        Self {
            header_timeout: limits.header_timeout,
            idle_timeout: limits.idle_timeout,
            max_connections: usize::try_from(limits.max_connections).unwrap_or(usize::MAX),
        }
    }
}

/// Serves `routes` on `listener` until `stop`, then stops accepting and waits
/// for the open connections to finish their requests (the caller bounds
/// that wait).
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    limits: Limits,
    stop: CancellationToken,
) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let builder = builder(&limits);
    let silent = Silent::default();
    let mut next_id: u64 = 0;
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        // At the cap, a connection that has not sent a byte yet gives its
        // slot to the one just accepted: sockets opened and left silent
        // must not keep clients that talk waiting. Otherwise the new one
        // waits (and the rest wait in the listen backlog).
        let permit = match permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                silent.evict_oldest();
                tokio::select! {
                    p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
                    () = stop.cancelled() => break,
                }
            }
        };
        let _ = stream.set_nodelay(true);
        next_id += 1;
        let (id, evicted) = (next_id, silent.register(next_id));
        let (silent, routes, builder, watcher) = (
            silent.clone(),
            routes.clone(),
            builder.clone(),
            graceful.watcher(),
        );
        tokio::spawn(async move {
            // hyper's header timeout starts only once it has read the
            // first bytes (to tell HTTP/1 from HTTP/2), so the first byte
            // gets the same deadline here.
            let mut first_byte = [0u8; 1];
            let spoke = tokio::select! {
                first = tokio::time::timeout(limits.header_timeout, stream.peek(&mut first_byte)) => {
                    matches!(first, Ok(Ok(n)) if n > 0)
                }
                () = evicted.cancelled() => false,
            };
            silent.forget(id);
            if !spoke {
                drop(permit);
                return;
            }
            // A response the client stops reading is cut at the idle
            // timeout. Reads are timed on the request body instead of the
            // socket: hyper keeps a read pending while it writes a response,
            // so a socket read timeout would also cut a long response to a
            // client with nothing more to send (a change stream).
            let mut stream = TimeoutStream::new(stream);
            stream.set_write_timeout(Some(limits.idle_timeout));
            let io = TokioIo::new(Box::pin(stream));
            let idle = limits.idle_timeout;
            let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                let req = req.map(|body| axum::body::Body::new(TimeoutBody::new(idle, body)));
                routes.router().oneshot(req)
            });
            let conn = builder.serve_connection_with_upgrades(io, service);
            // A client that goes away or times out ends its connection; that
            // is not the server's error.
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(%peer, error = %e, "connection closed with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

fn builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_HEAD_BYTES);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_STREAMS)
        .max_header_list_size(MAX_HEAD_BYTES as u32)
        .keep_alive_interval(limits.header_timeout)
        .keep_alive_timeout(limits.idle_timeout);
    builder
}

/// Connections accepted that have not sent their first byte, oldest first,
/// each with the token that closes it.
#[derive(Clone, Default)]
struct Silent(Arc<Mutex<BTreeMap<u64, CancellationToken>>>);

impl Silent {
    fn register(&self, id: u64) -> CancellationToken {
        let token = CancellationToken::new();
        self.0
            .lock()
            .expect("never poisoned")
            .insert(id, token.clone());
        token
    }

    fn forget(&self, id: u64) {
        self.0.lock().expect("never poisoned").remove(&id);
    }

    fn evict_oldest(&self) {
        if let Some((_, token)) = self.0.lock().expect("never poisoned").pop_first() {
            token.cancel();
        }
    }
}

/// Running out of file descriptors must not spin the accept loop; a
/// connection reset before accept is the client's business.
async fn accept_error(e: io::Error) {
    use io::ErrorKind::*;
    if matches!(e.kind(), ConnectionAborted | ConnectionReset | Interrupted) {
        return;
    }
    tracing::error!(error = %e, "accept failed; pausing before the next accept");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// The peer a request came from, as the accept loop recorded it.
pub fn peer(req: &axum::extract::Request) -> Option<SocketAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
}
