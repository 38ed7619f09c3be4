//! Use-cases the API and the admin UI share: what a request does once it
//! has been authenticated and its input read. They take the layers they
//! need (store, index, blobs, queue) and return a typed [`ServiceError`];
//! `http::error` turns that into problem+json and the admin UI into its
//! pages, so neither imports the other's handlers.

pub mod changes;
pub mod cursor;
pub mod jobs;
pub mod keys;
pub mod notes;
pub mod revisions;
pub mod trash;
pub mod webhooks;

use uuid::Uuid;

use crate::{
    domain::{change::Expired, validation::FieldError},
    index::DynIndex,
    queue::QueueError,
    store::StoreError,
};

pub use cursor::PageRequest;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The input breaks a rule: what and where, field by field.
    #[error("{} invalid field(s)", .0.len())]
    Invalid(Vec<FieldError>),
    #[error("no {what} with id {id}")]
    NotFound { what: &'static str, id: Uuid },
    /// The note exists; this past version of it does not (or no longer).
    #[error(
        "note {note} has no revision {version} (its revisions are listed at /api/v1/notes/{note}/revisions)"
    )]
    NoRevision { note: Uuid, version: i64 },
    /// A change kept losing to concurrent writers and gave up.
    #[error("the {0} is being changed concurrently; retry")]
    Contended(&'static str),
    /// The request conflicts with the state of what it names (a webhook
    /// that is disabled, a limit reached).
    #[error("{0}")]
    Conflict(String),
    /// The change feed cannot continue from the client's cursor.
    #[error("{}", .0.detail())]
    ChangesExpired(Expired),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

impl ServiceError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError::new(field, message)])
    }
}

pub type ServiceResult<T> = Result<T, ServiceError>;

/// Waits until this process's index (if it has one) holds every write
/// committed so far, so a write returns once it is searchable. The write
/// itself has committed: an index that lags is logged, not reported as its
/// failure.
pub async fn searchable(index: Option<&DynIndex>) {
    if let Some(index) = index
        && let Err(e) = index.refresh().await
    {
        tracing::warn!(error = %e, "a write committed but is not searchable yet");
    }
}
