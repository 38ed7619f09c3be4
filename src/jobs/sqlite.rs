//! The queue in the SQLite database: the embedded default. Claims go through
//! the store's single writer connection, so two workers of one process never
//! race; workers in other processes are serialized by SQLite's write lock and
//! each claim is one atomic UPDATE. SQLite has no notifications across
//! processes: an enqueue wakes this process's workers, others poll.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{AssertSqlSafe, SqlitePool};
use uuid::Uuid;

use super::{Claimed, Job, JobListQuery, JobPage, Outcome, Queue, Wakeup, model::millis};
use crate::{
    domain::note::timestamp,
    store::{
        Page, StoreError,
        sqlite::{SqliteStore, map_err},
    },
};

const COLUMNS: &str = "seq, id, kind, args, status, attempts, max_attempts, result, error, \
                       created_at, started_at, finished_at, due_at";

pub struct SqliteQueue {
    writer: SqlitePool,
    reader: SqlitePool,
    wake: Wakeup,
}

impl SqliteQueue {
    pub fn new(store: &SqliteStore) -> Self {
        Self {
            writer: store.writer.clone(),
            reader: store.reader.clone(),
            wake: Wakeup::default(),
        }
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    seq: i64,
    id: String,
    kind: String,
    args: String,
    status: String,
    attempts: i64,
    max_attempts: i64,
    result: Option<String>,
    error: Option<String>,
    created_at: String,
    started_at: Option<String>,
    finished_at: Option<String>,
    due_at: i64,
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(format!("stored job {what} is invalid: {e}").into())
}

impl Row {
    fn into_job(self) -> Result<(i64, Job), StoreError> {
        let time = |s: &str| timestamp::parse(s).map_err(|e| corrupt("timestamp", e));
        let opt_time = |s: Option<String>| s.as_deref().map(time).transpose();
        let status = self.status.parse().map_err(|e| corrupt("status", e))?;
        let job = Job {
            id: Uuid::parse_str(&self.id).map_err(|e| corrupt("id", e))?,
            kind: self.kind.parse().map_err(|e| corrupt("kind", e))?,
            args: serde_json::from_str(&self.args).map_err(|e| corrupt("args", e))?,
            status,
            attempts: self.attempts as u32,
            max_attempts: self.max_attempts as u32,
            result: self
                .result
                .as_deref()
                .map(serde_json::from_str::<Value>)
                .transpose()
                .map_err(|e| corrupt("result", e))?,
            error: self.error,
            created_at: time(&self.created_at)?,
            started_at: opt_time(self.started_at)?,
            finished_at: opt_time(self.finished_at)?,
            run_at: super::model::run_at(status, self.due_at),
        };
        Ok((self.seq, job))
    }
}

async fn insert(conn: &mut sqlx::SqliteConnection, job: &Job) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO jobs (id, kind, args, status, attempts, max_attempts, created_at, due_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(job.id.to_string())
    .bind(job.kind.as_str())
    .bind(job.args.to_string())
    .bind(job.status.as_str())
    .bind(job.attempts as i64)
    .bind(job.max_attempts as i64)
    .bind(timestamp::format(&job.created_at))
    .bind(millis(job.run_at.unwrap_or(job.created_at)))
    .execute(conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

#[async_trait]
impl Queue for SqliteQueue {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1 FROM jobs LIMIT 1")
            .execute(&self.reader)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn enqueue(&self, job: Job) -> Result<Job, StoreError> {
        let mut conn = self.writer.acquire().await.map_err(map_err)?;
        insert(&mut conn, &job).await?;
        self.wake.one();
        Ok(job)
    }

    async fn get(&self, id: Uuid) -> Result<Option<Job>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM jobs WHERE id = ?");
        sqlx::query_as::<_, Row>(AssertSqlSafe(sql))
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err)?
            .map(|r| r.into_job().map(|(_, j)| j))
            .transpose()
    }

    async fn list(&self, q: &JobListQuery) -> Result<JobPage, StoreError> {
        let sql = super::model::list_sql(COLUMNS, q, |_| "?".to_owned());
        let mut query = sqlx::query_as::<_, Row>(AssertSqlSafe(sql));
        if let Some(status) = q.status {
            query = query.bind(status.as_str());
        }
        if let Some(kind) = q.kind {
            query = query.bind(kind.as_str());
        }
        if let Some(after) = q.after {
            query = query.bind(after);
        }
        let rows = query
            .bind(q.limit as i64 + 1)
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?;
        let rows = rows
            .into_iter()
            .map(Row::into_job)
            .collect::<Result<_, _>>()?;
        Ok(Page::from_rows(rows, q.limit as usize))
    }

    async fn retry(&self, id: Uuid, now: DateTime<Utc>) -> Result<Job, StoreError> {
        let sql = format!(
            "UPDATE jobs SET status = 'queued', attempts = 0, result = NULL, error = NULL,
                    started_at = NULL, finished_at = NULL, due_at = ?, lease_token = NULL
             WHERE id = ? AND status = 'dead' RETURNING {COLUMNS}"
        );
        let row = sqlx::query_as::<_, Row>(AssertSqlSafe(sql))
            .bind(millis(now))
            .bind(id.to_string())
            .fetch_optional(&self.writer)
            .await
            .map_err(map_err)?;
        match row {
            Some(row) => {
                self.wake.one();
                row.into_job().map(|(_, j)| j)
            }
            None => Err(super::model::not_retryable(self.get(id).await?)),
        }
    }

    async fn queued(&self) -> Result<u64, StoreError> {
        let n: i64 =
            sqlx::query_scalar("SELECT count(*) FROM jobs WHERE status IN ('queued', 'failed')")
                .fetch_one(&self.reader)
                .await
                .map_err(map_err)?;
        Ok(n as u64)
    }

    async fn claim(
        &self,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<Claimed>, StoreError> {
        let token = Uuid::new_v4();
        let sql = format!(
            "UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_token = ?1,
                    due_at = ?2, started_at = ?3, finished_at = NULL
             WHERE seq = (SELECT seq FROM jobs INDEXED BY jobs_due
                          WHERE status IN ('queued', 'failed', 'running')
                            AND kind IN ({kinds}) AND due_at <= ?4
                          ORDER BY due_at LIMIT 1)
             RETURNING {COLUMNS}",
            kinds = super::model::known_kinds_sql()
        );
        let row = sqlx::query_as::<_, Row>(AssertSqlSafe(sql))
            .bind(token.to_string())
            .bind(millis(now) + lease.as_millis() as i64)
            .bind(timestamp::format(&now))
            .bind(millis(now))
            .fetch_optional(&self.writer)
            .await
            .map_err(map_err)?;
        row.map(|r| r.into_job().map(|(_, job)| Claimed { job, token }))
            .transpose()
    }

    async fn renew(
        &self,
        id: Uuid,
        token: Uuid,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE jobs SET due_at = ? WHERE id = ? AND lease_token = ? AND status = 'running'",
        )
        .bind(millis(now) + lease.as_millis() as i64)
        .bind(id.to_string())
        .bind(token.to_string())
        .execute(&self.writer)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn finish(
        &self,
        id: Uuid,
        token: Uuid,
        outcome: &Outcome,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let (result, error, due) = super::model::outcome_columns(outcome, now);
        let done = sqlx::query(
            "UPDATE jobs SET status = ?, result = ?, error = ?, due_at = ?, finished_at = ?,
                    lease_token = NULL
             WHERE id = ? AND lease_token = ? AND status = 'running'",
        )
        .bind(outcome.status().as_str())
        .bind(result.map(|r| r.to_string()))
        .bind(error)
        .bind(due)
        .bind(timestamp::format(&now))
        .bind(id.to_string())
        .bind(token.to_string())
        .execute(&self.writer)
        .await
        .map_err(map_err)?;
        if matches!(outcome, Outcome::Retry { .. }) {
            self.wake.one();
        }
        Ok(done.rows_affected() == 1)
    }

    async fn release(&self, id: Uuid, token: Uuid, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE jobs SET status = 'queued', attempts = max(attempts - 1, 0), due_at = ?,
                    started_at = NULL, lease_token = NULL
             WHERE id = ? AND lease_token = ? AND status = 'running'",
        )
        .bind(millis(now))
        .bind(id.to_string())
        .bind(token.to_string())
        .execute(&self.writer)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    fn wakeup(&self) -> &Wakeup {
        &self.wake
    }

    async fn enqueue_tick(
        &self,
        name: &str,
        tick: DateTime<Utc>,
        job: Job,
    ) -> Result<Option<Job>, StoreError> {
        let mut tx = self.writer.begin().await.map_err(map_err)?;
        let claimed =
            sqlx::query("INSERT OR IGNORE INTO job_ticks (name, tick, job_id) VALUES (?, ?, ?)")
                .bind(name)
                .bind(millis(tick))
                .bind(job.id.to_string())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?
                .rows_affected()
                == 1;
        if !claimed {
            return Ok(None);
        }
        insert(&mut tx, &job).await?;
        tx.commit().await.map_err(map_err)?;
        self.wake.one();
        Ok(Some(job))
    }

    async fn purge(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut tx = self.writer.begin().await.map_err(map_err)?;
        let jobs = sqlx::query(
            "DELETE FROM jobs WHERE status IN ('succeeded', 'dead') AND finished_at < ?",
        )
        .bind(timestamp::format(&before))
        .execute(&mut *tx)
        .await
        .map_err(map_err)?
        .rows_affected();
        sqlx::query("DELETE FROM job_ticks WHERE tick < ?")
            .bind(millis(before))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(jobs)
    }
}
