//! Operational endpoints: never behind a key.

use std::collections::BTreeMap;

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

use super::{ready::readiness, state::AppState};

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
