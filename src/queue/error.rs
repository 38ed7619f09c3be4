//! What a queue operation fails with, whichever backend holds the jobs.
//! Its own type, so that an outage of the queue's server (Redis) is
//! reported as the queue's, not as the database's.

use crate::store::StoreError;

type Source = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("no such job")]
    NotFound,
    /// The job is not in a state that allows the change (a retry of a job
    /// that is not dead), or its id is taken.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The queue's server cannot be reached or is overloaded: worth a retry.
    #[error("job queue unavailable: {0}")]
    Unavailable(#[source] Source),
    #[error("job queue error: {0}")]
    Internal(#[source] Source),
}

impl QueueError {
    /// What went wrong in words fit for a job record any reader may see:
    /// no driver text, no hosts.
    pub fn brief(&self) -> String {
        match self {
            Self::NotFound => "no such job".into(),
            Self::Conflict(_) => "a conflicting change".into(),
            Self::Unavailable(_) => "the job queue is unavailable".into(),
            Self::Internal(_) => "a job queue error (see the worker's log)".into(),
        }
    }
}

/// The SQL queues live in the store's database and share its error mapping.
impl From<StoreError> for QueueError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::NotFound,
            StoreError::Conflict(detail) => Self::Conflict(detail),
            e @ StoreError::VersionMismatch { .. } => Self::Conflict(e.to_string()),
            StoreError::Unavailable(source) => Self::Unavailable(source),
            StoreError::Internal(source) => Self::Internal(source),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_is_the_queues_not_the_databases() {
        let down = QueueError::from(StoreError::Unavailable("connection refused".into()));
        assert!(matches!(down, QueueError::Unavailable(_)));
        assert_eq!(down.brief(), "the job queue is unavailable");
        assert!(!down.brief().contains("database"));
        let taken = QueueError::from(StoreError::Conflict(
            "a job with this id already exists".into(),
        ));
        assert!(matches!(taken, QueueError::Conflict(d) if d.contains("job")));
    }
}
