//! What every handler shares: the job runtime's [`Context`] (store, blobs,
//! queue, settings), plus what only HTTP needs: the search index this
//! process serves, the metrics handle and the shutdown flag.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use chrono::{DateTime, Utc};
use metrics_exporter_prometheus::PrometheusHandle;
use uuid::Uuid;

use tokio_util::sync::CancellationToken;

use super::{
    admin::session::Sessions, rate_limit::RateLimits, readiness::ReadinessCache, shed::Slots,
    streams::StreamSlots,
};
use crate::{
    blobs::Blobs,
    config::Settings,
    index::DynIndex,
    jobs::Context,
    queue::{DynQueue, Job, NewJob, QueueError},
    service::{self, notes::NoteService},
    store::DynStore,
};

#[derive(Clone)]
pub struct AppState(Arc<Shared>);

struct Shared {
    jobs: Context,
    /// None in a worker process.
    index: Option<DynIndex>,
    process: Arc<Process>,
}

/// What outlives a swap of the dataset: the process's limits, probes and
/// flags belong to the process, not to the data it serves.
struct Process {
    metrics: PrometheusHandle,
    shutting_down: AtomicBool,
    rate_limits: RateLimits,
    readiness: ReadinessCache,
    slots: Slots,
    admin_sessions: Sessions,
    streams: StreamSlots,
    /// Cancelled when the process begins to shut down: long-lived answers
    /// (the change streams) end, so the server can drain.
    stopping: CancellationToken,
    /// Read-only processes only.
    dataset: std::sync::Mutex<Option<DatasetState>>,
}

/// A read-only process's dataset, as the admin system page shows it.
#[derive(Debug, Clone, Default)]
pub struct DatasetState {
    /// The feed generation of the dataset that serves.
    pub generation: String,
    /// When it was swapped in; `None`: opened at start.
    pub swapped_at: Option<DateTime<Utc>>,
    /// The last file refused: when, and why.
    pub rejected: Option<(DateTime<Utc>, String)>,
}

impl AppState {
    pub fn new(jobs: Context, index: Option<DynIndex>, metrics: PrometheusHandle) -> Self {
        let process = Process {
            rate_limits: RateLimits::new(&jobs.settings.limits, &jobs.settings.server),
            readiness: ReadinessCache::default(),
            slots: Slots::new(&jobs.settings.limits),
            streams: StreamSlots::new(&jobs.settings.limits),
            stopping: CancellationToken::new(),
            dataset: std::sync::Mutex::new(None),
            admin_sessions: Sessions::new(
                std::time::Duration::from_secs(8 * 3600),
                jobs.settings.admin.session_idle,
            ),
            metrics,
            shutting_down: AtomicBool::new(false),
        };
        Self(Arc::new(Shared {
            jobs,
            index,
            process: Arc::new(process),
        }))
    }

    /// The same process serving other data (a read-only dataset that was
    /// replaced): limits, readiness and the shutdown flag carry over.
    pub fn with_data(&self, jobs: Context, index: Option<DynIndex>) -> Self {
        Self(Arc::new(Shared {
            jobs,
            index,
            process: self.0.process.clone(),
        }))
    }

    /// Requests still running on this state (beyond the caller's handle):
    /// the old dataset closes once they are done.
    pub fn in_use(&self) -> bool {
        Arc::strong_count(&self.0) > 1
    }

    /// What the job runtime (workers, scheduler, backups) works with.
    pub fn jobs(&self) -> &Context {
        &self.0.jobs
    }
    pub fn store(&self) -> &DynStore {
        &self.0.jobs.store
    }
    pub fn blobs(&self) -> &Blobs {
        &self.0.jobs.blobs
    }
    pub fn queue(&self) -> &DynQueue {
        &self.0.jobs.queue
    }
    pub fn settings(&self) -> &Settings {
        &self.0.jobs.settings
    }
    /// The search index this process serves; none in a worker process.
    pub fn index(&self) -> Option<&DynIndex> {
        self.0.index.as_ref()
    }
    pub fn metrics(&self) -> &PrometheusHandle {
        &self.0.process.metrics
    }
    pub fn rate_limits(&self) -> &RateLimits {
        &self.0.process.rate_limits
    }
    pub fn slots(&self) -> &Slots {
        &self.0.process.slots
    }
    pub fn streams(&self) -> &StreamSlots {
        &self.0.process.streams
    }
    /// Cancelled once the process begins to shut down.
    pub fn stopping(&self) -> CancellationToken {
        self.0.process.stopping.clone()
    }
    /// The admin UI's sessions: the process's, so they outlive a dataset swap.
    pub fn admin_sessions(&self) -> &Sessions {
        &self.0.process.admin_sessions
    }
    /// The dataset a read-only process serves, and its last swap.
    pub fn dataset(&self) -> Option<DatasetState> {
        self.0.process.dataset.lock().expect("dataset lock").clone()
    }
    pub fn update_dataset(&self, change: impl FnOnce(&mut DatasetState)) {
        let mut dataset = self.0.process.dataset.lock().expect("dataset lock");
        change(dataset.get_or_insert_with(DatasetState::default));
    }
    /// The last dependency checks, shared by every readiness probe for a second.
    pub fn readiness(&self) -> &ReadinessCache {
        &self.0.process.readiness
    }

    /// Readiness answers 503 from now on, so load balancers stop sending traffic.
    pub fn begin_shutdown(&self) {
        self.0.process.shutting_down.store(true, Ordering::SeqCst);
        self.0.process.stopping.cancel();
    }

    pub fn is_shutting_down(&self) -> bool {
        self.0.process.shutting_down.load(Ordering::SeqCst)
    }

    /// Closes the index first: it reads the database.
    pub async fn close(&self) {
        if let Some(index) = self.index() {
            index.close().await;
        }
        self.0.jobs.close().await;
    }

    /// Waits until this process's index holds every write committed so
    /// far (see [`service::searchable`]).
    pub async fn searchable(&self) {
        service::searchable(self.index()).await;
    }

    /// The notes, as a request changes them.
    pub fn notes(&self) -> NoteService<'_> {
        NoteService {
            store: self.store().as_ref(),
            index: self.index(),
            blobs: self.blobs(),
        }
    }

    /// What sends webhook deliveries on request (ping, redelivery).
    pub fn outbox(&self) -> crate::service::webhooks::Outbox<'_> {
        let jobs = self.jobs();
        crate::service::webhooks::Outbox {
            store: jobs.store.as_ref(),
            queue: jobs.queue.as_ref(),
            sender: &jobs.sender,
        }
    }

    /// Enqueues a validated job with the configured attempt budget.
    pub async fn enqueue(&self, job: NewJob) -> Result<Job, QueueError> {
        self.0.jobs.enqueue(job).await
    }

    /// The same for an API key, within its cap; `None` when it is at it.
    pub async fn enqueue_for(&self, key: Uuid, job: NewJob) -> Result<Option<Job>, QueueError> {
        self.0.jobs.enqueue_for(key, job).await
    }
}
