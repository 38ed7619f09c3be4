//! The job queue behind one trait, one module per backend, and the job
//! model they store. What runs the jobs (workers, scheduler, kinds) lives
//! above, in [`crate::jobs`]; the queue knows nothing of it.
//!
//! Delivery is at-least-once. A worker claims a job under a lease and renews
//! it while the job runs; a job whose worker died is claimed again once the
//! lease ends. Every change a worker makes names its lease token, so a worker
//! that lost its lease cannot overwrite the outcome of the one that took over.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::Notify;
use uuid::Uuid;

mod error;
pub use error::QueueError;

mod connect;
pub mod model;
pub mod postgres;
pub mod redis;
pub mod sql;
pub mod sqlite;
pub mod stored;

pub use connect::connect;
pub use model::{
    Claimed, Job, JobKind, JobListQuery, JobPage, JobStatus, Lane, NewJob, Outcome, Quota,
};

#[async_trait]
pub trait Queue: Send + Sync + 'static {
    /// `sqlite`, `postgres` or `redis`: for logs and metrics only.
    fn backend(&self) -> &'static str;
    /// Cheap round trip for readiness.
    async fn ping(&self) -> Result<(), QueueError>;
    async fn close(&self) {}

    /// Stores `job` in its kind's lane.
    async fn enqueue(&self, job: Job) -> Result<Job, QueueError>;
    /// Stores `job` for `quota.owner`, unless that owner already has
    /// `quota.limit` jobs queued, failed (a retry due) or running: `None`
    /// then, and nothing is stored. Exact under concurrent callers.
    async fn enqueue_within(&self, job: Job, quota: Quota) -> Result<Option<Job>, QueueError>;
    async fn get(&self, id: Uuid) -> Result<Option<Job>, QueueError>;
    async fn list(&self, query: &JobListQuery) -> Result<JobPage, QueueError>;
    /// Puts a `dead` job back in the queue with its attempts reset;
    /// `NotFound`, or `Conflict` when the job is not dead.
    async fn retry(&self, id: Uuid, now: DateTime<Utc>) -> Result<Job, QueueError>;
    /// Jobs waiting to run (queued or failed), for the `jobs_queued` gauge.
    async fn queued(&self) -> Result<u64, QueueError>;
    /// How many jobs are in each status, every status listed (zero too),
    /// in [`JobStatus::ALL`]'s order: the admin UI's queue depth.
    async fn depth(&self) -> Result<Vec<(JobStatus, u64)>, QueueError>;

    /// Takes the job due first in the first of `lanes` that has one due, if
    /// any: queued or failed and due, or running with an expired lease.
    /// Lanes not listed are left alone. Counts an attempt.
    async fn claim(
        &self,
        lanes: &[Lane],
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<Claimed>, QueueError>;
    /// Extends the lease; `false` when it was lost.
    async fn renew(
        &self,
        id: Uuid,
        token: Uuid,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<bool, QueueError>;
    /// Sets a running job's `result` while it runs (an import's progress);
    /// `false` when the lease was lost. The outcome replaces it.
    async fn progress(&self, id: Uuid, token: Uuid, result: &Value) -> Result<bool, QueueError>;
    /// Records how the attempt ended; `false` when the lease was lost (the
    /// outcome is then not recorded: the job belongs to another worker).
    async fn finish(
        &self,
        id: Uuid,
        token: Uuid,
        outcome: &Outcome,
        now: DateTime<Utc>,
    ) -> Result<bool, QueueError>;
    /// Gives the job back without counting the attempt (a worker shutting down).
    async fn release(&self, id: Uuid, token: Uuid, now: DateTime<Utc>) -> Result<bool, QueueError>;
    /// This process's idle workers, woken when the backend announces a job.
    fn wakeup(&self) -> &Wakeup;

    /// Enqueues `job` for the tick `tick` of the schedule entry `name`,
    /// unless some replica already did: `None` then. Exactly once per tick.
    async fn enqueue_tick(
        &self,
        name: &str,
        tick: DateTime<Utc>,
        job: Job,
    ) -> Result<Option<Job>, QueueError>;
    /// Deletes finished jobs (succeeded or dead) and schedule ticks older
    /// than `before`; returns how many jobs went.
    async fn purge(&self, before: DateTime<Utc>) -> Result<u64, QueueError>;
}

/// Where this process's idle workers wait for a job to become due. A
/// `Notify` keeps at most one permit, so announcements coalesce.
#[derive(Clone, Default)]
pub struct Wakeup(Arc<Notify>);

impl Wakeup {
    /// Wakes one waiting worker (or the next one to wait).
    pub fn one(&self) {
        self.0.notify_one();
    }

    /// Waits until a job may be due: one was announced or `timeout` passed.
    pub async fn wait(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.0.notified()).await;
    }
}

pub type DynQueue = Arc<dyn Queue>;
