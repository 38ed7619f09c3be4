//! The queue in the PostgreSQL database. Claims use `FOR UPDATE SKIP LOCKED`,
//! so any number of workers in any number of processes take distinct jobs
//! without waiting on each other; enqueues `NOTIFY` and idle workers
//! `LISTEN`, so they wake at once instead of polling hard.
//!
//! Two choices keep commits from queueing behind each other:
//! - The `NOTIFY` leaves after the insert, from a task that sends one per
//!   burst. Inside the insert's transaction it would take the lock that
//!   PostgreSQL serialises notifying transactions with, held through the
//!   commit's WAL flush, so concurrent enqueues would flush one at a time
//!   instead of together.
//! - A worker's bookkeeping (claim, renew, finish, release) commits without
//!   waiting for the WAL flush (`synchronous_commit = off` on the workers'
//!   own pool). A server crash can lose the last fraction of a second of
//!   it, which only means a job runs again: delivery is at least once
//!   anyway. Enqueues keep the full guarantee: a 202 means the job is on disk.
//!
//! That pool also keeps the claim's plan independent of table statistics
//! (see `PgQueue::new`).

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{AssertSqlSafe, PgPool, postgres::PgPoolOptions};
use tokio::{sync::Notify, task::JoinHandle};
use uuid::Uuid;

use super::{
    Claimed, Job, JobListQuery, JobPage, JobStatus, Lane, Outcome, Queue, QueueError, Quota,
    Wakeup,
    model::{millis, not_retryable, outcome_columns},
    sql::{self, Dialect},
    stored::{self, IntoJob, StoredJob},
};
use crate::store::postgres::{PgStore, listen, map_err};

const CHANNEL: &str = "notes_jobs";
/// The first half of the two-key advisory lock that one owner's capped
/// enqueues take in turn ("jobs" as an int4). Two-key locks never collide
/// with the one-key lock ingests take: PostgreSQL keeps the spaces apart.
const QUOTA_LOCK: i32 = 0x6a6f_6273;
const SQL: Dialect = Dialect::Postgres;

pub struct PgQueue {
    /// The store's pool: enqueues, reads and maintenance.
    pool: PgPool,
    /// Workers' bookkeeping, committed asynchronously (see the module docs).
    workers: PgPool,
    /// Wakes this process's waiting workers.
    wake: Wakeup,
    /// Asks the announcer task for a `NOTIFY`.
    announce: Arc<Notify>,
    tasks: [JoinHandle<()>; 2],
}

impl PgQueue {
    pub async fn new(store: &PgStore) -> Result<Self, QueueError> {
        let wake = Wakeup::default();
        let announce = Arc::new(Notify::new());
        let store_options = store.pool().options();
        let connect = (*store.pool().connect_options()).clone().options([
            ("synchronous_commit", "off"),
            // The claim must walk the due index in order and stop at the
            // first unlocked row. A backlog enqueued faster than autovacuum
            // analyzes the table looks tiny to the planner, which then
            // bitmap-scans and sorts the whole backlog on every claim (7x
            // slower at 10,000 jobs). The workers' statements use nothing
            // else that needs a sort or a bitmap scan.
            ("enable_bitmapscan", "off"),
            ("enable_sort", "off"),
        ]);
        // Lazy: an API-only process (no workers) never opens it.
        let workers = PgPoolOptions::new()
            .max_connections(store_options.get_max_connections())
            .acquire_timeout(store_options.get_acquire_timeout())
            .connect_lazy_with(connect);
        let tasks = [
            tokio::spawn(listen(store.pool().clone(), CHANNEL, {
                let wake = wake.clone();
                move || wake.one()
            })),
            tokio::spawn(announcer(store.pool().clone(), announce.clone())),
        ];
        Ok(Self {
            pool: store.pool().clone(),
            workers,
            wake,
            announce,
            tasks,
        })
    }

    /// A job became due: wake a worker here now, and the other processes'
    /// through the announcer.
    fn announce(&self) {
        self.wake.one();
        self.announce.notify_one();
    }
}

/// Sends one `NOTIFY` per burst of enqueues: requests made while one is in
/// flight collapse into the next (a `Notify` keeps at most one permit).
async fn announcer(pool: PgPool, announce: Arc<Notify>) {
    let sql = format!("NOTIFY {CHANNEL}");
    loop {
        announce.notified().await;
        if let Err(e) = sqlx::query(AssertSqlSafe(sql.as_str()))
            .execute(&pool)
            .await
        {
            // Other processes' workers still poll: a lost NOTIFY costs latency.
            tracing::debug!(error = %e, "NOTIFY failed");
        }
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    seq: i64,
    id: Uuid,
    kind: String,
    args: Value,
    status: String,
    attempts: i32,
    max_attempts: i32,
    result: Option<Value>,
    error: Option<String>,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    due_at: i64,
}

impl IntoJob for Row {
    fn into_job(self) -> Result<(i64, Job), QueueError> {
        StoredJob {
            seq: self.seq,
            id: self.id,
            kind: self.kind,
            args: self.args,
            status: self.status,
            attempts: self.attempts.into(),
            max_attempts: self.max_attempts.into(),
            result: self.result,
            error: self.error,
            created_at: self.created_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            due_at: self.due_at,
        }
        .into_job()
    }
}

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// Binds a new job's columns, [`sql::INSERT_COLUMNS`], in order.
fn bind_new<'q>(q: PgQuery<'q>, job: &Job, owner: Option<Uuid>) -> PgQuery<'q> {
    q.bind(job.id)
        .bind(job.kind.as_str())
        .bind(job.args.clone())
        .bind(job.status.as_str())
        .bind(job.attempts as i32)
        .bind(job.max_attempts as i32)
        .bind(job.created_at)
        .bind(millis(job.run_at.unwrap_or(job.created_at)))
        .bind(job.kind.lane().as_str())
        .bind(owner)
}

/// The second half of an owner's advisory lock: its id folded to 32 bits.
/// Two owners that fold alike only take turns.
fn owner_lock(owner: Uuid) -> i32 {
    owner
        .as_bytes()
        .chunks_exact(4)
        .map(|c| i32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .fold(0, |a, b| a ^ b)
}

#[async_trait]
impl Queue for PgQueue {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn ping(&self) -> Result<(), QueueError> {
        sqlx::query(sql::PING)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn close(&self) {
        for task in &self.tasks {
            task.abort();
        }
        self.workers.close().await;
    }

    async fn enqueue(&self, job: Job) -> Result<Job, QueueError> {
        bind_new(sqlx::query(SQL.sql(sql::INSERT)), &job, None)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        self.announce();
        Ok(job)
    }

    async fn enqueue_within(&self, job: Job, quota: Quota) -> Result<Option<Job>, QueueError> {
        // Under READ COMMITTED two concurrent inserts would each count the
        // other's job as absent. One owner's enqueues take turns on an
        // advisory lock, and the insert's own statement (a fresh snapshot
        // taken after the lock) counts every job committed before it.
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
            .bind(QUOTA_LOCK)
            .bind(owner_lock(quota.owner))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        let stored = bind_new(
            sqlx::query(SQL.sql(sql::INSERT_WITHIN)),
            &job,
            Some(quota.owner),
        )
        .bind(i64::from(quota.limit))
        .execute(&mut *tx)
        .await
        .map_err(map_err)?
        .rows_affected()
            == 1;
        tx.commit().await.map_err(map_err)?;
        if !stored {
            return Ok(None);
        }
        self.announce();
        Ok(Some(job))
    }

    async fn get(&self, id: Uuid) -> Result<Option<Job>, QueueError> {
        sqlx::query_as::<_, Row>(SQL.sql(sql::GET))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .map(stored::job)
            .transpose()
    }

    async fn list(&self, q: &JobListQuery) -> Result<JobPage, QueueError> {
        let rows = SQL
            .list::<_, Row>(q)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        stored::page(rows, q.limit)
    }

    async fn retry(&self, id: Uuid, now: DateTime<Utc>) -> Result<Job, QueueError> {
        let row = sqlx::query_as::<_, Row>(SQL.sql(sql::RETRY))
            .bind(millis(now))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        match row {
            Some(row) => {
                self.announce();
                stored::job(row)
            }
            None => Err(not_retryable(self.get(id).await?)),
        }
    }

    async fn queued(&self) -> Result<u64, QueueError> {
        let n: i64 = sqlx::query_scalar(sql::QUEUED)
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(n as u64)
    }

    async fn depth(&self) -> Result<Vec<(JobStatus, u64)>, QueueError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(sql::DEPTH)
            .fetch_all(&self.pool)
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
                "SELECT seq FROM jobs
                 WHERE lane = '{lane}' AND status IN ('queued', 'failed', 'running')
                   AND kind IN ({kinds}) AND due_at <= $4
                 ORDER BY due_at LIMIT 1
                 FOR UPDATE SKIP LOCKED"
            )
        });
        let sql = format!(
            "UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_token = $1,
                    due_at = $2, started_at = $3, finished_at = NULL
             WHERE seq = {target}
             RETURNING {columns}",
            columns = sql::COLUMNS,
        );
        let row = sqlx::query_as::<_, Row>(AssertSqlSafe(sql))
            .bind(token)
            .bind(millis(now) + lease.as_millis() as i64)
            .bind(now)
            .bind(millis(now))
            .fetch_optional(&self.workers)
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
            .bind(id)
            .bind(token)
            .execute(&self.workers)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn progress(&self, id: Uuid, token: Uuid, result: &Value) -> Result<bool, QueueError> {
        let done = sqlx::query(SQL.sql(sql::PROGRESS))
            .bind(result.clone())
            .bind(id)
            .bind(token)
            .execute(&self.workers)
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
            .bind(result.cloned())
            .bind(error)
            .bind(due)
            .bind(now)
            .bind(id)
            .bind(token)
            .execute(&self.workers)
            .await
            .map_err(map_err)?;
        let done = done.rows_affected() == 1;
        if done && outcome.requeues() {
            self.announce();
        }
        Ok(done)
    }

    async fn release(&self, id: Uuid, token: Uuid, now: DateTime<Utc>) -> Result<bool, QueueError> {
        let done = sqlx::query(SQL.sql(sql::RELEASE))
            .bind(millis(now))
            .bind(id)
            .bind(token)
            .execute(&self.workers)
            .await
            .map_err(map_err)?;
        if done.rows_affected() == 1 {
            // Inline rather than through the announcer: jobs are released
            // at shutdown, just before `close` aborts that task.
            self.wake.one();
            let _ = sqlx::query(AssertSqlSafe(format!("NOTIFY {CHANNEL}")))
                .execute(&self.pool)
                .await;
        }
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
    ) -> Result<Option<Job>, QueueError> {
        // One statement: the tick row and the job commit together or not at all.
        let sql = format!(
            "WITH t AS (INSERT INTO job_ticks (name, tick, job_id) VALUES ($11, $12, $1)
                        ON CONFLICT DO NOTHING RETURNING job_id),
                  j AS (INSERT INTO jobs ({columns})
                        SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 FROM t RETURNING id)
             SELECT id FROM j",
            columns = sql::INSERT_COLUMNS,
        );
        let fired = bind_new(sqlx::query(AssertSqlSafe(sql)), &job, None)
            .bind(name.to_owned())
            .bind(millis(tick))
            .execute(&self.pool)
            .await
            .map_err(map_err)?
            .rows_affected()
            == 1;
        if fired {
            self.announce();
        }
        Ok(fired.then_some(job))
    }

    async fn purge(&self, before: DateTime<Utc>) -> Result<u64, QueueError> {
        // One transaction, as on SQLite: a purge that fails halfway leaves
        // both tables as they were.
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let jobs = sqlx::query(SQL.sql(sql::PURGE_JOBS))
            .bind(before)
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
