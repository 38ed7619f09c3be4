//! What every handler shares.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use metrics_exporter_prometheus::PrometheusHandle;

use crate::{blobs::Blobs, config::Config, jobs::DynQueue, store::DynStore};

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub store: DynStore,
    pub blobs: Blobs,
    pub queue: DynQueue,
    pub config: Config,
    pub metrics: PrometheusHandle,
    shutting_down: AtomicBool,
}

impl AppState {
    pub fn new(
        store: DynStore,
        blobs: Blobs,
        queue: DynQueue,
        config: Config,
        metrics: PrometheusHandle,
    ) -> Self {
        Self(Arc::new(Inner {
            store,
            blobs,
            queue,
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

    /// Closes the queue, then the database (the queue may share its pools).
    pub async fn close(&self) {
        self.queue.close().await;
        self.store.close().await;
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
