//! What every handler shares.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use metrics_exporter_prometheus::PrometheusHandle;

use crate::{blobs::Blobs, config::Config, store::DynStore};

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub store: DynStore,
    pub blobs: Blobs,
    pub config: Config,
    pub metrics: PrometheusHandle,
    shutting_down: AtomicBool,
}

impl AppState {
    pub fn new(store: DynStore, blobs: Blobs, config: Config, metrics: PrometheusHandle) -> Self {
        Self(Arc::new(Inner {
            store,
            blobs,
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
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
