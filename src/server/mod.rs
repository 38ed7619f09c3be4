//! Running the HTTP server with a graceful shutdown: readiness flips to 503
//! at once, the listener closes, in-flight requests get the shutdown timeout.

use std::{future::Future, time::Duration};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{
    config::Settings,
    http::{self, AppState, Routes},
    jobs, telemetry,
};

mod open;
mod swap;

pub use open::Role;

/// Opens the store (migrating it when configured), the object store, the
/// job queue and the search index, and builds the state of an API process:
/// what tests and benchmarks serve on a listener of their own
/// ([`serve_api_until`]).
pub async fn open_api(settings: Settings) -> anyhow::Result<AppState> {
    open_for_role(settings, Role::Api)
        .await
        .map(|(state, _)| state)
}

/// The state, and for a read-only API the dataset it serves and where its
/// index lives.
async fn open_for_role(
    settings: Settings,
    role: Role,
) -> anyhow::Result<(AppState, Option<Follow>)> {
    let dataset = (settings.server.read_only && role == Role::Api)
        .then(|| swap::Dataset::of(&settings))
        .transpose()?;
    let opened = open::open(&settings, role, None).await?;
    let follow = match (dataset, opened.index_dir) {
        (Some(dataset), Some(index_dir)) => {
            swap::prune(&settings.index.dir, &index_dir);
            Some(Follow {
                settings: settings.clone(),
                dataset,
                index_dir,
            })
        }
        _ => None,
    };
    let state = AppState::new(opened.jobs, opened.index, telemetry::metrics());
    if let Some(generation) = opened.generation {
        state.update_dataset(|d| d.generation = generation);
    }
    Ok((state, follow))
}

/// What a read-only API needs to follow its dataset file.
struct Follow {
    settings: Settings,
    dataset: swap::Dataset,
    index_dir: std::path::PathBuf,
}

/// `notes-api serve`: the API (and in-process workers) on the configured
/// address, until SIGTERM or Ctrl-C.
pub async fn run_api(settings: Settings) -> anyhow::Result<()> {
    run_until_sigterm(settings, Role::Api).await
}

/// `notes-api worker`: job workers and the scheduler, with probes and metrics.
pub async fn run_worker(settings: Settings) -> anyhow::Result<()> {
    run_until_sigterm(settings, Role::Worker).await
}

/// Binds the configured address and serves `role` until SIGTERM or Ctrl-C.
async fn run_until_sigterm(settings: Settings, role: Role) -> anyhow::Result<()> {
    let listen = settings.server.listen;
    if role == Role::Api {
        settings.server.check_exposure()?;
    }
    let (state, follow) = open_for_role(settings, role).await?;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    announce(&state, &listener, role);
    serve_role_until(listener, state, role, follow, shutdown_signal()).await
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
        env = ?state.settings().server.env,
        read_only = state.settings().server.read_only,
        version = crate::VERSION,
        "notes-api listening"
    );
    if !state.settings().server.requires_keys() {
        tracing::warn!(
            "DEVELOPMENT MODE: no API key is required on any route. Set NOTES_ENV=production \
             and NOTES_MASTER_KEY before exposing this server."
        );
    }
}

/// In-process workers: none in read-only mode (jobs write).
fn workers(state: &AppState) -> usize {
    if state.settings().server.read_only {
        0
    } else {
        state.settings().jobs.workers
    }
}

/// Serves the API until `signal` resolves, then drains. Tests pass their own signal.
pub async fn serve_api_until(
    listener: TcpListener,
    state: AppState,
    signal: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_role_until(listener, state, Role::Api, None, signal).await
}

/// Serves `role` until `signal` resolves, then drains requests and jobs
/// together within the shutdown timeout; a read-only API also follows its
/// dataset file.
async fn serve_role_until(
    listener: TcpListener,
    state: AppState,
    role: Role,
    follow: Option<Follow>,
    signal: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let stop = CancellationToken::new();
    let app = match role {
        Role::Api => http::router(state.clone()),
        Role::Worker => http::ops_router(state.clone()),
    };
    let routes = Routes::new(state.clone(), app);
    let upkeep = spawn_metrics_upkeep(routes.clone(), stop.clone());
    let limits = http::connections::Limits::new(&state.settings().limits);
    let mut server = tokio::spawn(http::connections::serve(
        listener,
        routes.clone(),
        limits,
        stop.clone(),
    ));
    let swaps = follow.map(|f| {
        tokio::spawn(swap::follow(
            routes.clone(),
            f.settings,
            f.dataset,
            f.index_dir,
            stop.clone(),
        ))
    });
    // A read-only process runs no jobs; its store may be swapped, and a
    // worker task would keep the first one open.
    let job_workers = (workers(&state) > 0).then(|| {
        tokio::spawn(jobs::worker::run(
            state.jobs().clone(),
            workers(&state),
            stop.clone(),
        ))
    });
    let scheduler = (!state.settings().server.read_only).then(|| {
        let (ctx, stop) = (state.jobs().clone(), stop.clone());
        let wake = state.index().map(|i| i.watch_status());
        // The dispatcher turns the feed into webhook deliveries: beside the
        // scheduler, on every process that may write.
        tokio::spawn(async move {
            tokio::join!(
                jobs::scheduler::run(ctx.clone(), stop.clone()),
                jobs::dispatcher::run(ctx, wake, stop),
            );
        })
    });
    // From here on the state is whatever `routes` serves at the moment.
    drop(state);

    tokio::select! {
        res = &mut server => {
            // The server stopped on its own: an accept error, not a signal.
            // Jobs still drain (or are released) before the pools close.
            stop.cancel();
            finish(job_workers, scheduler, swaps, upkeep, &routes).await;
            return res?.map_err(Into::into);
        }
        () = signal => {}
    }

    let timeout = routes.state().settings().server.shutdown_timeout;
    tracing::info!(
        timeout_s = timeout.as_secs(),
        "shutdown requested: not ready, draining in-flight requests and jobs"
    );
    routes.state().begin_shutdown();
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
    finish(job_workers, scheduler, swaps, upkeep, &routes).await;
    Ok(())
}

/// Waits for the background tasks that hold the state, then closes what
/// the process serves from at that moment.
async fn finish(
    job_workers: Option<tokio::task::JoinHandle<()>>,
    scheduler: Option<tokio::task::JoinHandle<()>>,
    swaps: Option<tokio::task::JoinHandle<()>>,
    upkeep: tokio::task::JoinHandle<()>,
    routes: &Routes,
) {
    for task in [job_workers, scheduler, swaps].into_iter().flatten() {
        let _ = task.await;
    }
    upkeep.abort();
    routes.state().close().await;
}

/// Histograms are drained into buckets on upkeep; without it a process that
/// is rarely scraped keeps every sample in memory.
fn spawn_metrics_upkeep(routes: Routes, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let state = routes.state();
                    state.metrics().run_upkeep();
                    state.rate_limits().upkeep();
                    if let Ok(n) = state.queue().queued().await {
                        metrics::gauge!("jobs_queued").set(n as f64);
                    }
                    // A partial index holds only trashed notes: a cheap count.
                    if let Ok(n) = state.store().count_trashed().await {
                        metrics::gauge!("notes_trashed").set(n as f64);
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
