//! Cross-cutting layers: request ids, access logs and metrics in one pass;
//! problem+json for every error, whoever produced it; read-only mode.

use std::time::Instant;

use axum::{
    extract::{MatchedPath, Request, State},
    http::{HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use tracing::Instrument;
use uuid::Uuid;

use super::state::AppState;
use super::{
    connections,
    error::{ApiError, PROBLEM_JSON},
    ops::Quiet,
    rate_limit::{ClientAddr, addr_client, too_many},
};

pub const REQUEST_ID: &str = "x-request-id";

/// The method as a metric label and log field. The standard methods go by
/// name and anything else is `other`: any token is a valid method, so raw
/// ones would let one client without a key create label values (and
/// `/metrics` memory) at will.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

/// A client's request id is kept when it is short and plain (it ends up in
/// logs and headers); anything else is replaced by a fresh one.
fn request_id(req: &Request) -> HeaderValue {
    req.headers()
        .get(REQUEST_ID)
        .filter(|v| {
            let b = v.as_bytes();
            !b.is_empty()
                && b.len() <= 128
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || b"-_.:".contains(c))
        })
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_str(&Uuid::new_v4().to_string()).expect("a UUID is a valid header")
        })
}

pub async fn observe(mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request_id(&req);
    req.headers_mut().insert(REQUEST_ID, id.clone());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = method_label(req.method());
    let span = tracing::info_span!(
        "request",
        request_id = id.to_str().unwrap_or_default(),
        method = %method,
        route = %route,
    );
    let logged_id = id.clone();
    let mut res = next.run(req).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = res.status().as_u16();
    res.headers_mut().insert(REQUEST_ID, id);

    metrics::counter!(
        "http_requests_total",
        "method" => method,
        "route" => route.clone(),
        "status" => status.to_string()
    )
    .increment(1);
    crate::figures::process().answered(status);
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route.clone())
        .record(elapsed.as_secs_f64());

    let _enter = span.enter();
    let ms = elapsed.as_secs_f64() * 1000.0;
    if status >= 500 {
        // Its own fields, so that an error report (which carries no span)
        // can be matched to the access log.
        let request_id = logged_id.to_str().unwrap_or_default();
        tracing::error!(status, took_ms = ms, request_id, %method, %route, "request failed");
    } else if res.extensions().get::<Quiet>().is_some() {
        tracing::debug!(status, took_ms = ms, "request completed");
    } else {
        tracing::info!(status, took_ms = ms, "request completed");
    }
    res
}

/// Every 4xx/5xx leaves as problem+json: axum's own rejections, the router's
/// 404/405, the body limit's 413 and the timeout's 503 arrive here as plain
/// text or empty bodies.
pub async fn problem_json(req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    let status = res.status();
    if status.as_u16() < 400 || is_json(&res) || is_html(&res) {
        return res;
    }
    let (parts, body) = res.into_parts();
    let detail = if status.is_server_error() {
        None // never echo internals
    } else {
        axum::body::to_bytes(body, 4096)
            .await
            .ok()
            .and_then(|b| String::from_utf8(b.to_vec()).ok())
            .filter(|s| !s.trim().is_empty())
    };
    let detail = detail.unwrap_or_else(|| default_detail(status).to_owned());
    let (slug, status) = match status {
        StatusCode::NOT_FOUND => ("not-found", status),
        StatusCode::METHOD_NOT_ALLOWED => ("method-not-allowed", status),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload-too-large", status),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported-media-type", status),
        StatusCode::SERVICE_UNAVAILABLE => ("unavailable", status),
        s if s.is_client_error() => ("bad-request", s),
        s => ("internal-error", s),
    };
    let mut out = ApiError::new(status, slug, detail).into_response();
    // Keep headers such as Allow (405) or Retry-After.
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

/// The admin UI's error pages are HTML written on purpose, for a browser.
fn is_html(res: &Response) -> bool {
    res.headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"))
}

/// Problem documents, and JSON error bodies written on purpose (the 503 of
/// /readyz), pass through untouched.
fn is_json(res: &Response) -> bool {
    res.headers().get(header::CONTENT_TYPE).is_some_and(|v| {
        let v = v.as_bytes();
        v.starts_with(PROBLEM_JSON.as_bytes()) || v.starts_with(b"application/json")
    })
}

fn default_detail(status: StatusCode) -> &'static str {
    match status {
        StatusCode::NOT_FOUND => "no route matches this path",
        StatusCode::METHOD_NOT_ALLOWED => "this method is not allowed on this path",
        StatusCode::PAYLOAD_TOO_LARGE => "the request body is too large",
        StatusCode::SERVICE_UNAVAILABLE => {
            "the request took too long or the service is overloaded; retry shortly"
        }
        s if s.is_server_error() => "an unexpected error occurred",
        _ => "the request could not be processed",
    }
}

/// NOTES_READ_ONLY: every write under /api answers 405.
pub async fn read_only(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let write = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if state.settings().server.read_only && write && req.uri().path().starts_with("/api/") {
        return ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "read-only",
            "this instance is read-only (NOTES_READ_ONLY); writes are disabled",
        )
        .with_header(header::ALLOW, HeaderValue::from_static("GET, HEAD"))
        .into_response();
    }
    next.run(req).await
}

/// Records the client's address and charges requests that carry no key
/// to it; a request with a key is charged when the key has been checked.
pub async fn rate_limit(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let limits = state.rate_limits();
    let Some(peer) = connections::peer(&req) else {
        return next.run(req).await;
    };
    let addr = limits.client_addr(peer.ip(), req.headers());
    req.extensions_mut().insert(ClientAddr(addr));
    let deferred =
        req.headers().contains_key(header::AUTHORIZATION) && req.uri().path().starts_with("/api/");
    if !deferred && let Err(wait) = limits.check(addr_client(addr)) {
        return too_many(wait).into_response();
    }
    next.run(req).await
}

/// Heavy routes run in a bounded number of slots (see [`shed`]).
pub async fn shed(State(state): State<AppState>, req: Request, next: Next) -> Response {
    // MatchedPath is an Arc: cloning it costs no allocation per request.
    let route = req.extensions().get::<MatchedPath>().cloned();
    let route = route.as_ref().map(MatchedPath::as_str).unwrap_or_default();
    state.slots().run(route, req, |req| next.run(req)).await
}
