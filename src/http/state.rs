//! What every handler shares.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use metrics_exporter_prometheus::PrometheusHandle;

use crate::{blobs::Blobs, config::Config, index::DynIndex, jobs::DynQueue, store::DynStore};

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub store: DynStore,
    pub blobs: Blobs,
    pub queue: DynQueue,
    /// The search index this process serves; none in a worker process.
    pub index: Option<DynIndex>,
    pub config: Config,
    pub metrics: PrometheusHandle,
    shutting_down: AtomicBool,
}

impl AppState {
    pub fn new(
        store: DynStore,
        blobs: Blobs,
        queue: DynQueue,
        index: Option<DynIndex>,
        config: Config,
        metrics: PrometheusHandle,
    ) -> Self {
        Self(Arc::new(Inner {
            store,
            blobs,
            queue,
            index,
            config,
            metrics,
            shutting_down: AtomicBool::new(false),
        }))
    }

    /// Readiness answers 503 from now on, so load balancers stop sending traffic.
    pub fn begin_shutdown(&self) {
        self.0.shutting_down.store(true, Ordering::SeqCst);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.0.shutting_down.load(Ordering::SeqCst)
    }

    /// Closes the index (it reads the database), the queue, then the
    /// database (the queue may share its pools).
    pub async fn close(&self) {
        if let Some(index) = &self.index {
            index.close().await;
        }
        self.queue.close().await;
        self.store.close().await;
    }

    /// Waits until this process's index holds every write committed so
    /// far, so a write returns once it is searchable. The write itself has
    /// committed: an index that lags is logged, not reported as its failure.
    pub async fn searchable(&self) {
        if let Some(index) = &self.index
            && let Err(e) = index.refresh().await
        {
            tracing::warn!(error = %e, "a write committed but is not searchable yet");
        }
    }

    /// Enqueues a validated job with the configured attempt budget.
    pub async fn enqueue(
        &self,
        job: crate::jobs::NewJob,
    ) -> Result<crate::jobs::Job, crate::store::StoreError> {
        let job = crate::jobs::Job::queued(
            job,
            self.config.job_max_attempts,
            crate::domain::note::timestamp::now(),
        );
        self.queue.enqueue(job).await
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
