//! Responses that several handlers build the same way.

use axum::{
    body::Body,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

/// 304 for a conditional GET whose `If-None-Match` matched: no body, the
/// current ETag.
pub fn not_modified(etag: HeaderValue) -> Response {
    let mut res = (StatusCode::NOT_MODIFIED, Body::empty()).into_response();
    res.headers_mut().insert(header::ETAG, etag);
    res
}
