//! Operational endpoints: never behind a key.

use std::{collections::BTreeMap, time::Duration};

use axum::{
    Json, Router,
    extract::State,
    http::{StatusCode, header},
    middleware::map_response,
    response::{IntoResponse, Response},
    routing::get,
};
use serde::Serialize;
use utoipa::ToSchema;

use super::{readiness::Checks, state::AppState};

/// The probes, the scrape and the version. All but `/version` are polled
/// constantly, so their responses are marked [`Quiet`].
pub fn router() -> Router<AppState> {
    let quiet = Router::new()
        .route("/healthz", get(healthz))
        .route("/health", get(healthz))
        .route("/readyz", get(readyz))
        .route("/ready", get(readyz))
        .route("/metrics", get(metrics))
        .layer(map_response(|mut res: Response| async move {
            res.extensions_mut().insert(Quiet);
            res
        }));
    quiet.route("/version", get(version))
}

/// On a response whose access log line would drown everything else: it
/// logs at debug.
#[derive(Debug, Clone, Copy)]
pub struct Quiet;

/// How long readiness waits for the database before calling it down.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Serialize, ToSchema)]
pub struct Health {
    status: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct Readiness {
    ready: bool,
    /// `"ok"`, `"unavailable"` or `"timeout"` per dependency (the cause
    /// is in the log), and the search index's state.
    checks: BTreeMap<&'static str, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
}

#[derive(Serialize, ToSchema)]
pub struct Version {
    version: &'static str,
    git_sha: &'static str,
}

async fn dependencies(state: &AppState) -> Checks {
    let (database, storage, queue) = tokio::join!(
        check("database", async {
            state.store().ping().await.map_err(|e| e.to_string())
        }),
        check("storage", async {
            state.blobs().ping().await.map_err(|e| e.to_string())
        }),
        check("queue", async {
            state.queue().ping().await.map_err(|e| e.to_string())
        }),
    );
    BTreeMap::from([
        ("database", database),
        ("storage", storage),
        ("queue", queue),
    ])
}

/// `"ok"`, `"unavailable"` or `"timeout"` within [`CHECK_TIMEOUT`]. The
/// probe is public, so the driver's own words (hosts, users, paths) go to
/// the log, not to the answer.
async fn check(name: &'static str, probe: impl Future<Output = Result<(), String>>) -> String {
    match tokio::time::timeout(CHECK_TIMEOUT, probe).await {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(e)) => {
            tracing::warn!(dependency = name, error = %e, "readiness check failed");
            "unavailable".to_owned()
        }
        Err(_) => {
            tracing::warn!(
                dependency = name,
                timeout_s = CHECK_TIMEOUT.as_secs(),
                "readiness check timed out"
            );
            "timeout".to_owned()
        }
    }
}

/// Liveness: the process can serve. Touches no dependency.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness: every dependency answers, and the process is not shutting down.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let (ready, checks) = readiness(&state).await;
    let shutting_down = state.is_shutting_down();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let reason = shutting_down.then_some("shutting down");
    (
        status,
        Json(Readiness {
            ready,
            checks,
            reason,
        }),
    )
}

/// Whether the process is ready, and every check: what `/readyz` answers
/// and the admin UI's system page shows.
pub async fn readiness(state: &AppState) -> (bool, Checks) {
    let mut checks = state.readiness().get(dependencies(state)).await;
    if let Some(index) = state.index() {
        // Not ready until an index answers; a rebuild behind a serving
        // index does not take the process out of rotation.
        checks.insert("search", index.status().check());
    }
    let ready = !state.is_shutting_down() && checks.values().all(|v| v == "ok");
    (ready, checks)
}

/// Prometheus metrics, text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics().render(),
    )
}

/// Build version.
#[utoipa::path(get, path = "/version", tag = "operations", responses((status = 200, body = Version)))]
pub async fn version() -> Json<Version> {
    Json(Version {
        version: crate::VERSION,
        git_sha: crate::GIT_SHA,
    })
}
