//! The readiness probe's memory: one round of dependency checks answers
//! every probe for a second.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

/// How long one round of dependency checks answers every probe: a flood of
/// unauthenticated `/readyz` must not become a flood of database, storage
/// and queue round trips.
const CHECK_TTL: Duration = Duration::from_secs(1);

/// `"ok"` or what is wrong, per dependency.
pub type Checks = BTreeMap<&'static str, String>;

/// The last round of dependency checks. The lock also makes concurrent
/// probes wait for one round instead of each starting its own.
#[derive(Default)]
pub struct ReadinessCache(tokio::sync::Mutex<Option<(Instant, Checks)>>);

impl ReadinessCache {
    /// The cached round, or a new one from `round` (only awaited when the
    /// cached one is older than [`CHECK_TTL`]).
    pub async fn get(&self, round: impl Future<Output = Checks>) -> Checks {
        let mut last = self.0.lock().await;
        if let Some((at, checks)) = last.as_ref()
            && at.elapsed() < CHECK_TTL
        {
            return checks.clone();
        }
        metrics::counter!("readiness_checks_total").increment(1);
        let checks = round.await;
        *last = Some((Instant::now(), checks.clone()));
        checks
    }
}
