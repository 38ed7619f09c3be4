//! A job as a backend stored it, back into a [`Job`]: one copy of the
//! checks for every backend, so a damaged row is refused the same way
//! whichever holds it.

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::{Job, JobPage, JobStatus, QueueError, model::run_at};
use crate::{domain::timestamp, store::Page};

/// A backend's row type: what it stores, back into a job.
pub trait IntoJob {
    /// The job and its sequence number (the list cursor).
    fn into_job(self) -> Result<(i64, Job), QueueError>;
}

/// One stored job.
pub fn job(row: impl IntoJob) -> Result<Job, QueueError> {
    row.into_job().map(|(_, job)| job)
}

/// Rows fetched with `limit + 1` (to learn whether a next page exists) as
/// one page.
pub fn page<R: IntoJob>(rows: Vec<R>, limit: u32) -> Result<JobPage, QueueError> {
    let rows = rows
        .into_iter()
        .map(IntoJob::into_job)
        .collect::<Result<_, _>>()?;
    Ok(Page::from_rows(rows, limit as usize))
}

pub fn corrupt(what: &str, e: impl std::fmt::Display) -> QueueError {
    QueueError::Internal(format!("stored job {what} is invalid: {e}").into())
}

/// The stored fields, typed: what PostgreSQL returns, and what the text
/// forms become once parsed.
pub struct StoredJob {
    pub seq: i64,
    pub id: Uuid,
    pub kind: String,
    pub args: Value,
    pub status: String,
    pub attempts: i64,
    pub max_attempts: i64,
    pub result: Option<Value>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Milliseconds since the epoch: when it is due, or its lease's end.
    pub due_at: i64,
}

impl IntoJob for StoredJob {
    fn into_job(self) -> Result<(i64, Job), QueueError> {
        let status: JobStatus = self.status.parse().map_err(|e| corrupt("status", e))?;
        let count = |n: i64, what| u32::try_from(n).map_err(|e| corrupt(what, e));
        let job = Job {
            id: self.id,
            kind: self.kind.parse().map_err(|e| corrupt("kind", e))?,
            args: self.args,
            status,
            attempts: count(self.attempts, "attempts")?,
            max_attempts: count(self.max_attempts, "max_attempts")?,
            result: self.result,
            error: self.error,
            created_at: self.created_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            run_at: run_at(status, self.due_at),
        };
        Ok((self.seq, job))
    }
}

/// The same fields as text: SQLite's columns, Redis's hash fields.
#[derive(Default, sqlx::FromRow)]
pub struct TextJob {
    pub seq: i64,
    pub id: String,
    pub kind: String,
    pub args: String,
    pub status: String,
    pub attempts: i64,
    pub max_attempts: i64,
    pub result: Option<String>,
    pub error: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub due_at: i64,
}

impl IntoJob for TextJob {
    fn into_job(self) -> Result<(i64, Job), QueueError> {
        let time = |s: &str| timestamp::parse(s).map_err(|e| corrupt("timestamp", e));
        let opt_time = |s: Option<String>| s.as_deref().map(time).transpose();
        let json = |s: &str, what| serde_json::from_str::<Value>(s).map_err(|e| corrupt(what, e));
        StoredJob {
            seq: self.seq,
            id: Uuid::parse_str(&self.id).map_err(|e| corrupt("id", e))?,
            kind: self.kind,
            args: json(&self.args, "args")?,
            status: self.status,
            attempts: self.attempts,
            max_attempts: self.max_attempts,
            result: self
                .result
                .as_deref()
                .map(|r| json(r, "result"))
                .transpose()?,
            error: self.error,
            created_at: time(&self.created_at)?,
            started_at: opt_time(self.started_at)?,
            finished_at: opt_time(self.finished_at)?,
            due_at: self.due_at,
        }
        .into_job()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text() -> TextJob {
        TextJob {
            seq: 7,
            id: Uuid::nil().to_string(),
            kind: "ping".into(),
            args: "{}".into(),
            status: "failed".into(),
            attempts: 2,
            max_attempts: 5,
            created_at: "2026-01-02T03:04:05.000006Z".into(),
            due_at: 1_767_323_045_000,
            ..TextJob::default()
        }
    }

    #[test]
    fn a_waiting_job_has_its_due_time_as_run_at() {
        let (seq, job) = text().into_job().unwrap();
        assert_eq!(seq, 7);
        assert_eq!(job.status, JobStatus::Failed);
        assert_eq!(job.attempts, 2);
        assert_eq!(job.run_at.unwrap().timestamp_millis(), 1_767_323_045_000);
        let running = TextJob {
            status: "running".into(),
            ..text()
        };
        assert_eq!(running.into_job().unwrap().1.run_at, None);
    }

    #[test]
    fn damaged_fields_are_refused_by_name() {
        for (job, what) in [
            (
                TextJob {
                    id: "x".into(),
                    ..text()
                },
                "id",
            ),
            (
                TextJob {
                    kind: "rm".into(),
                    ..text()
                },
                "kind",
            ),
            (
                TextJob {
                    args: "{".into(),
                    ..text()
                },
                "args",
            ),
            (
                TextJob {
                    status: "lost".into(),
                    ..text()
                },
                "status",
            ),
            (
                TextJob {
                    attempts: -1,
                    ..text()
                },
                "attempts",
            ),
            (
                TextJob {
                    created_at: "yesterday".into(),
                    ..text()
                },
                "timestamp",
            ),
        ] {
            let err = job.into_job().unwrap_err().to_string();
            assert!(
                err.contains(&format!("stored job {what} is invalid")),
                "{what}: {err}"
            );
        }
    }
}
