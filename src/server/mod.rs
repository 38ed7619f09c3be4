//! Running the HTTP server with a graceful shutdown: readiness flips to 503
//! at once, the listener closes, in-flight requests get the shutdown timeout.

use std::{future::Future, sync::Arc, time::Duration};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{
    blobs::Blobs,
    config::Config,
    http::{self, AppState},
    index::{DynIndex, IndexSettings, TantivyIndex},
    jobs, queue,
    store::{self, PoolSettings},
    telemetry,
};

/// Opens the store (migrating it when configured), the object store, the
/// job queue and the search index, and builds the app state of an API process.
pub async fn build_state(config: Config) -> anyhow::Result<AppState> {
    build_state_for(config, Role::Api).await
}

async fn build_state_for(config: Config, role: Role) -> anyhow::Result<AppState> {
    let db = store::open(config.database_url(), &PoolSettings::new(&config)).await?;
    let store = db.store();
    if config.read_only {
        crate::dataset::verify(store.as_ref()).await?;
    } else if config.migrate_on_start {
        store.migrate().await?;
    } else {
        store::require_current(store.as_ref()).await?;
    }
    let blobs = Blobs::open(&config)?;
    let queue = queue::connect(config.queue_url(), &db).await?;
    let index: Option<DynIndex> = match role {
        Role::Api => Some(Arc::new(TantivyIndex::open(
            store.clone(),
            IndexSettings::new(config.index_dir(), config.index_memory_mb),
        )?)),
        Role::Worker => None,
    };
    Ok(AppState::new(
        jobs::Context::new(store, blobs, queue, config),
        index,
        telemetry::metrics(),
    ))
}

/// What a process serves: the API (with in-process workers), or only workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Api,
    Worker,
}

pub async fn serve(config: Config) -> anyhow::Result<()> {
    start(config, Role::Api).await
}

/// `notes-api worker`: job workers and the scheduler, with probes and metrics.
pub async fn worker(config: Config) -> anyhow::Result<()> {
    start(config, Role::Worker).await
}

async fn start(config: Config, role: Role) -> anyhow::Result<()> {
    let listen = config.listen;
    if role == Role::Api {
        config.check_exposure()?;
    }
    let state = build_state_for(config, role).await?;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    announce(&state, &listener, role);
    run_role(listener, state, role, shutdown_signal()).await
}

fn announce(state: &AppState, listener: &TcpListener, role: Role) {
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    tracing::info!(
        %addr,
        ?role,
        backend = state.store().backend(),
        queue = state.queue().backend(),
        workers = workers(state),
        env = ?state.config().env,
        read_only = state.config().read_only,
        version = crate::VERSION,
        "notes-api listening"
    );
    if !state.config().requires_keys() {
        tracing::warn!(
            "DEVELOPMENT MODE: no API key is required on any route. Set NOTES_ENV=production \
             and NOTES_MASTER_KEY before exposing this server."
        );
    }
}

/// In-process workers: none in read-only mode (jobs write).
fn workers(state: &AppState) -> usize {
    if state.config().read_only {
        0
    } else {
        state.config().workers
    }
}

/// Serves the API until `signal` resolves, then drains. Tests pass their own signal.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    signal: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    run_role(listener, state, Role::Api, signal).await
}

/// Serves `role` until `signal` resolves, then drains requests and jobs
/// together within the shutdown timeout.
pub async fn run_role(
    listener: TcpListener,
    state: AppState,
    role: Role,
    signal: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let stop = CancellationToken::new();
    let upkeep = spawn_metrics_upkeep(state.clone(), stop.clone());
    let app = match role {
        Role::Api => http::router(state.clone()),
        Role::Worker => http::ops_router(state.clone()),
    };
    let limits = http::connections::Limits::new(state.config());
    let mut server = tokio::spawn(http::connections::serve(
        listener,
        app,
        limits,
        stop.clone(),
    ));
    let job_workers = tokio::spawn(jobs::worker::run(
        state.jobs().clone(),
        workers(&state),
        stop.clone(),
    ));
    let scheduler = (!state.config().read_only)
        .then(|| tokio::spawn(jobs::scheduler::run(state.jobs().clone(), stop.clone())));

    tokio::select! {
        res = &mut server => {
            // The server stopped on its own: an accept error, not a signal.
            // Jobs still drain (or are released) before the pools close.
            stop.cancel();
            let _ = job_workers.await;
            if let Some(s) = scheduler {
                let _ = s.await;
            }
            upkeep.abort();
            state.close().await;
            return res?.map_err(Into::into);
        }
        () = signal => {}
    }

    let timeout = state.config().shutdown_timeout();
    tracing::info!(
        timeout_s = timeout.as_secs(),
        "shutdown requested: not ready, draining in-flight requests and jobs"
    );
    state.begin_shutdown();
    stop.cancel();
    match tokio::time::timeout(timeout, &mut server).await {
        Ok(Ok(Ok(()))) => tracing::info!("all requests finished"),
        Ok(res) => {
            let error = res
                .map_err(anyhow::Error::from)
                .and_then(|r| r.map_err(Into::into));
            if let Err(e) = error {
                tracing::error!(error = %e, "the server stopped with an error while draining");
            }
        }
        Err(_) => {
            server.abort();
            tracing::warn!("shutdown timeout reached; aborting the requests still running");
        }
    }
    // Workers keep their own clock: finish within the timeout, then release.
    let _ = job_workers.await;
    if let Some(s) = scheduler {
        let _ = s.await;
    }
    upkeep.abort();
    state.close().await;
    Ok(())
}

/// Histograms are drained into buckets on upkeep; without it a process that
/// is rarely scraped keeps every sample in memory.
fn spawn_metrics_upkeep(state: AppState, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    state.metrics().run_upkeep();
                    state.rate_limits().upkeep();
                    if let Ok(n) = state.queue().queued().await {
                        metrics::gauge!("jobs_queued").set(n as f64);
                    }
                }
                () = stop.cancelled() => break,
            }
        }
    })
}

/// SIGTERM (Kubernetes) or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
