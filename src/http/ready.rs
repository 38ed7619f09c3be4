//! Whether this process is ready: its dependencies answer (one round of
//! checks, cached by `readiness::ReadinessCache`), its index answers, and
//! it is not shutting down. The one answer `/readyz` gives and the admin
//! UI's system page shows.

use std::{collections::BTreeMap, time::Duration};

use super::{readiness::Checks, state::AppState};

/// How long readiness waits for the database before calling it down.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

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
