//! Errors at the HTTP edge: every 4xx/5xx leaves as `application/problem+json`
//! (RFC 9457). Domain and store errors are typed; this is the one place that
//! maps them to status codes.

use axum::{
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    blobs::BlobError, domain::validation::FieldError, export::ExportError, index::IndexError,
    queue::QueueError, service::ServiceError, store::StoreError,
};

pub const PROBLEM_JSON: &str = "application/problem+json";

/// RFC 9457 problem details.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Per-field (or per-line, for ingest) validation errors.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// Boxed: errors travel through every `Result` of the HTTP layer, and a
/// pointer keeps the happy path small.
#[derive(Debug)]
pub struct ApiError(Box<Inner>);

#[derive(Debug)]
struct Inner {
    status: StatusCode,
    slug: &'static str,
    detail: Option<String>,
    errors: Vec<FieldError>,
    headers: HeaderMap,
}

impl ApiError {
    pub fn new(status: StatusCode, slug: &'static str, detail: impl Into<String>) -> Self {
        Self(Box::new(Inner {
            status,
            slug,
            detail: Some(detail.into()),
            errors: Vec::new(),
            headers: HeaderMap::new(),
        }))
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed-request", detail)
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", detail)
    }
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail = match errors.len() {
            1 => errors[0].to_string(),
            n => format!("{n} fields are invalid"),
        };
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation-error", detail).with_errors(errors)
    }
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
            .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
    }
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }
    pub fn payload_too_large(limit: u64) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            format!("the request body is larger than the limit of {limit} bytes"),
        )
    }
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail)
            .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
    }
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal-error",
            "an unexpected error occurred; the request id in the x-request-id header identifies it in the logs",
        )
    }

    pub fn with_errors(mut self, errors: Vec<FieldError>) -> Self {
        self.0.errors = errors;
        self
    }
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.0.headers.insert(name, value);
        self
    }
    pub fn problem(&self) -> Problem {
        let e = &self.0;
        Problem {
            kind: problem_type(e.slug),
            title: e.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: e.status.as_u16(),
            detail: e.detail.clone(),
            errors: e.errors.clone(),
        }
    }
}

pub fn problem_type(slug: &str) -> String {
    format!("urn:notes-api:problem:{slug}")
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.problem()).unwrap_or_default();
        let mut res = (self.0.status, body).into_response();
        res.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        res.headers_mut().extend(self.0.headers);
        res
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => ApiError::not_found("no such resource"),
            StoreError::VersionMismatch { current } => ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "version-mismatch",
                format!("the resource is at version {current}; re-read it and retry"),
            )
            .with_header(
                header::ETAG,
                HeaderValue::from_str(&format!("\"{current}\""))
                    .expect("digits are a valid header"),
            ),
            StoreError::Conflict(detail) => ApiError::new(StatusCode::CONFLICT, "conflict", detail),
            StoreError::Unavailable(source) => down("the database", &*source),
            StoreError::Internal(source) => failed("store", &*source),
        }
    }
}

/// A backing service that is down: 503, worth a retry. The cause (hosts,
/// driver text) goes to the log, never to the client.
fn down(service: &str, source: &dyn std::fmt::Display) -> ApiError {
    tracing::error!(error = %source, "{service} is unavailable");
    ApiError::unavailable(format!("{service} is unavailable; retry shortly"))
}

/// A backing service that failed otherwise: 500, the cause in the log.
fn failed(service: &str, source: &dyn std::fmt::Display) -> ApiError {
    tracing::error!(error = %source, "{service} error");
    ApiError::internal()
}

impl From<QueueError> for ApiError {
    fn from(err: QueueError) -> Self {
        match err {
            QueueError::NotFound => ApiError::not_found("no such job"),
            QueueError::Conflict(detail) => ApiError::new(StatusCode::CONFLICT, "conflict", detail),
            QueueError::Unavailable(source) => down("the job queue", &*source),
            QueueError::Internal(source) => failed("job queue", &*source),
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::Invalid(errors) => ApiError::validation(errors),
            e @ (ServiceError::NotFound { .. } | ServiceError::NoRevision { .. }) => {
                ApiError::not_found(e.to_string())
            }
            ServiceError::Conflict(detail) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", detail)
            }
            e @ ServiceError::Contended(_) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            e @ ServiceError::ChangesExpired(_) => {
                ApiError::new(StatusCode::GONE, "changes-expired", e.to_string())
            }
            ServiceError::Store(e) => e.into(),
            ServiceError::Queue(e) => e.into(),
        }
    }
}

impl From<IndexError> for ApiError {
    fn from(err: IndexError) -> Self {
        match err {
            IndexError::Store(e) => e.into(),
            IndexError::NotReady(state) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                format!("the search index is being built ({state}); retry shortly"),
            )
            .with_header(header::RETRY_AFTER, HeaderValue::from_static("5")),
            // Each of these is the index of this process failing or lagging:
            // another replica may answer, and this one may recover.
            e @ (IndexError::Engine(_)
            | IndexError::Directory { .. }
            | IndexError::Locked(_)
            | IndexError::Unusable(_)
            | IndexError::Lagging { .. }
            | IndexError::FeedShort { .. }
            | IndexError::Stopped
            | IndexError::Task(_)) => {
                tracing::error!(error = %e, "search index error");
                ApiError::unavailable("search is unavailable; retry shortly")
            }
        }
    }
}

impl From<BlobError> for ApiError {
    fn from(err: BlobError) -> Self {
        match err {
            BlobError::NotFound => {
                tracing::error!("an attachment's object is missing from storage");
                ApiError::internal()
            }
            BlobError::TooLarge { limit } => ApiError::payload_too_large(limit),
            BlobError::Unavailable(source) => {
                tracing::error!(error = %source, "object storage unavailable");
                ApiError::unavailable("object storage is unavailable; retry shortly")
            }
            BlobError::Source(detail) => {
                tracing::info!(%detail, "upload body failed");
                ApiError::bad_request("the upload could not be read to its end")
            }
            BlobError::Config(detail) => {
                tracing::error!(%detail, "object storage misconfigured");
                ApiError::internal()
            }
        }
    }
}

/// Only what fails before an export's first byte reaches here; a failure
/// later cuts its body off (`http::export`).
impl From<ExportError> for ApiError {
    fn from(err: ExportError) -> Self {
        match err {
            ExportError::Store(e) => e.into(),
            ExportError::Blob { source, .. } => source.into(),
            e @ (ExportError::Write(_) | ExportError::Destination(_)) => failed("export", &e),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
