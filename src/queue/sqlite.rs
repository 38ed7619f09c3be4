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

use super::{
    Claimed, Job, JobListQuery, JobPage, JobStatus, Lane, Outcome, Queue, QueueError, Quota,
    Wakeup,
    model::{millis, not_retryable, outcome_columns},
    sql::{self, Dialect},
    stored::{self, TextJob},
};
use crate::{
    domain::timestamp,
    store::sqlite::{SqliteStore, map_err},
};

const SQL: Dialect = Dialect::Sqlite;

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

type SqliteQuery<'q> = sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>;

/// Binds a new job's columns, [`sql::INSERT_COLUMNS`], in order.
fn bind_new<'q>(q: SqliteQuery<'q>, job: &Job, owner: Option<Uuid>) -> SqliteQuery<'q> {
    q.bind(job.id.to_string())
        .bind(job.kind.as_str())
        .bind(job.args.to_string())
        .bind(job.status.as_str())
        .bind(job.attempts as i64)
        .bind(job.max_attempts as i64)
        .bind(timestamp::format(&job.created_at))
        .bind(millis(job.run_at.unwrap_or(job.created_at)))
        .bind(job.kind.lane().as_str())
        .bind(owner.map(|o| o.to_string()))
}

async fn insert(conn: &mut sqlx::SqliteConnection, job: &Job) -> Result<(), QueueError> {
    bind_new(sqlx::query(SQL.sql(sql::INSERT)), job, None)
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

    async fn ping(&self) -> Result<(), QueueError> {
        sqlx::query(sql::PING)
            .execute(&self.reader)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn enqueue(&self, job: Job) -> Result<Job, QueueError> {
        let mut conn = self.writer.acquire().await.map_err(map_err)?;
        insert(&mut conn, &job).await?;
        self.wake.one();
        Ok(job)
    }

    async fn enqueue_within(&self, job: Job, quota: Quota) -> Result<Option<Job>, QueueError> {
        // One statement on the single writer: the count and the insert see
        // the same database, so concurrent submissions cannot overshoot.
        let stored = bind_new(
            sqlx::query(SQL.sql(sql::INSERT_WITHIN)),
            &job,
            Some(quota.owner),
        )
        .bind(i64::from(quota.limit))
        .execute(&self.writer)
        .await
        .map_err(map_err)?
        .rows_affected()
            == 1;
        if !stored {
            return Ok(None);
        }
        self.wake.one();
        Ok(Some(job))
    }

    async fn get(&self, id: Uuid) -> Result<Option<Job>, QueueError> {
        sqlx::query_as::<_, TextJob>(SQL.sql(sql::GET))
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err)?
            .map(stored::job)
            .transpose()
    }

    async fn list(&self, q: &JobListQuery) -> Result<JobPage, QueueError> {
        let rows = SQL
            .list::<_, TextJob>(q)
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?;
        stored::page(rows, q.limit)
    }

    async fn retry(&self, id: Uuid, now: DateTime<Utc>) -> Result<Job, QueueError> {
        let row = sqlx::query_as::<_, TextJob>(SQL.sql(sql::RETRY))
            .bind(millis(now))
            .bind(id.to_string())
            .fetch_optional(&self.writer)
            .await
            .map_err(map_err)?;
        match row {
            Some(row) => {
                self.wake.one();
                stored::job(row)
            }
            None => Err(not_retryable(self.get(id).await?)),
        }
    }

    async fn queued(&self) -> Result<u64, QueueError> {
        let n: i64 = sqlx::query_scalar(sql::QUEUED)
            .fetch_one(&self.reader)
            .await
            .map_err(map_err)?;
        Ok(n as u64)
    }

    async fn depth(&self) -> Result<Vec<(JobStatus, u64)>, QueueError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(sql::DEPTH)
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?;
        Ok(sql::depth(rows))
    }

    async fn claim(
        &self,
        lanes: &[Lane],
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<Claimed>, QueueError> {
        if lanes.is_empty() {
            return Ok(None);
        }
        let token = Uuid::new_v4();
        let kinds = sql::known_kinds();
        let target = sql::due_first(lanes, |lane| {
            format!(
                "SELECT seq FROM jobs INDEXED BY jobs_lane_due
                 WHERE lane = '{lane}' AND status IN ('queued', 'failed', 'running')
                   AND kind IN ({kinds}) AND due_at <= ?4
                 ORDER BY due_at LIMIT 1"
            )
        });
        let sql = format!(
            "UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_token = ?1,
                    due_at = ?2, started_at = ?3, finished_at = NULL
             WHERE seq = {target}
             RETURNING {columns}",
            columns = sql::COLUMNS,
        );
        let row = sqlx::query_as::<_, TextJob>(AssertSqlSafe(sql))
            .bind(token.to_string())
            .bind(millis(now) + lease.as_millis() as i64)
            .bind(timestamp::format(&now))
            .bind(millis(now))
            .fetch_optional(&self.writer)
            .await
            .map_err(map_err)?;
        row.map(|r| stored::job(r).map(|job| Claimed { job, token }))
            .transpose()
    }

    async fn renew(
        &self,
        id: Uuid,
        token: Uuid,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<bool, QueueError> {
        let done = sqlx::query(SQL.sql(sql::RENEW))
            .bind(millis(now) + lease.as_millis() as i64)
            .bind(id.to_string())
            .bind(token.to_string())
            .execute(&self.writer)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn progress(&self, id: Uuid, token: Uuid, result: &Value) -> Result<bool, QueueError> {
        let done = sqlx::query(SQL.sql(sql::PROGRESS))
            .bind(result.to_string())
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
    ) -> Result<bool, QueueError> {
        let (result, error, due) = outcome_columns(outcome, now);
        let done = sqlx::query(SQL.sql(sql::FINISH))
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
        let done = done.rows_affected() == 1;
        if done && outcome.requeues() {
            self.wake.one();
        }
        Ok(done)
    }

    async fn release(&self, id: Uuid, token: Uuid, now: DateTime<Utc>) -> Result<bool, QueueError> {
        let done = sqlx::query(SQL.sql(sql::RELEASE))
            .bind(millis(now))
            .bind(id.to_string())
            .bind(token.to_string())
            .execute(&self.writer)
            .await
            .map_err(map_err)?;
        let done = done.rows_affected() == 1;
        if done {
            self.wake.one();
        }
        Ok(done)
    }

    fn wakeup(&self) -> &Wakeup {
        &self.wake
    }

    async fn enqueue_tick(
        &self,
        name: &str,
        tick: DateTime<Utc>,
        job: Job,
    ) -> Result<Option<Job>, QueueError> {
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

    async fn purge(&self, before: DateTime<Utc>) -> Result<u64, QueueError> {
        let mut tx = self.writer.begin().await.map_err(map_err)?;
        let jobs = sqlx::query(SQL.sql(sql::PURGE_JOBS))
            .bind(timestamp::format(&before))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?
            .rows_affected();
        sqlx::query(SQL.sql(sql::PURGE_TICKS))
            .bind(millis(before))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(jobs)
    }
}
