//! Periodic jobs from `NOTES_SCHEDULE`. Every replica runs the scheduler;
//! each tick is enqueued through [`Queue::enqueue_tick`], which records the
//! tick and the job together, so a tick fires once however many replicas
//! reach it. A replica that starts within the grace period after a tick
//! fires that tick if nobody did, so a restart at the wrong moment does not
//! silently skip the nightly backup.

use std::{fmt, str::FromStr, time::Duration};

use chrono::{DateTime, Utc};
use croner::{
    Cron,
    parser::{CronParser, Seconds},
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{Job, JobKind, NewJob};
use crate::http::AppState;

#[derive(Clone)]
pub struct Entry {
    pub kind: JobKind,
    pub pattern: String,
    cron: Cron,
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.kind, self.pattern)
    }
}

#[derive(Debug, Clone, Default)]
pub struct Schedule {
    pub entries: Vec<Entry>,
}

/// Kinds that need no arguments can be scheduled.
const SCHEDULABLE: [JobKind; 4] = [
    JobKind::Ping,
    JobKind::Reindex,
    JobKind::Backup,
    JobKind::Purge,
];

impl Schedule {
    /// `kind=CRON;kind=CRON`: five fields (or six, with seconds first) or a
    /// nickname such as `@hourly`, in UTC.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let parser = CronParser::builder().seconds(Seconds::Optional).build();
        let mut entries: Vec<Entry> = Vec::new();
        for part in spec.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (kind, pattern) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?} is not kind=CRON"))?;
            let kind = JobKind::from_str(kind.trim())?;
            if !SCHEDULABLE.contains(&kind) {
                return Err(format!("{kind} takes arguments and cannot be scheduled"));
            }
            if entries.iter().any(|e| e.kind == kind) {
                return Err(format!("{kind} is scheduled twice"));
            }
            let pattern = pattern.trim().to_owned();
            let cron = parser
                .parse(&pattern)
                .map_err(|e| format!("{kind}: {pattern:?} is not a cron pattern: {e}"))?;
            entries.push(Entry {
                kind,
                pattern,
                cron,
            });
        }
        Ok(Self { entries })
    }
}

impl Entry {
    /// The first tick to fire for a scheduler starting at `now`: the last
    /// one if it is at most `grace` old, else the next.
    pub fn first_tick(&self, now: DateTime<Utc>, grace: Duration) -> Option<DateTime<Utc>> {
        let grace = chrono::Duration::from_std(grace).unwrap_or_default();
        match self.cron.find_previous_occurrence(&now, true) {
            Ok(prev) if now - prev <= grace => Some(prev),
            _ => self.next_tick(now),
        }
    }

    pub fn next_tick(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_next_occurrence(&after, false).ok()
    }
}

/// Runs every entry of the configured schedule until `stop`.
pub async fn run(state: AppState, stop: CancellationToken) {
    let schedule = match Schedule::parse(&state.config.schedule) {
        Ok(s) => s,
        Err(e) => {
            // Config::resolve already refused this; a library caller may not have.
            tracing::error!(error = %e, "invalid NOTES_SCHEDULE; no periodic jobs");
            return;
        }
    };
    if schedule.entries.is_empty() {
        return;
    }
    tracing::info!(schedule = ?schedule.entries, "scheduler started");
    let grace = Duration::from_secs(state.config.schedule_grace);
    let tasks: Vec<_> = schedule
        .entries
        .into_iter()
        .map(|entry| tokio::spawn(run_entry(state.clone(), entry, grace, stop.clone())))
        .collect();
    for t in tasks {
        let _ = t.await;
    }
}

async fn run_entry(state: AppState, entry: Entry, grace: Duration, stop: CancellationToken) {
    let mut tick = entry.first_tick(Utc::now(), grace);
    while let Some(at) = tick {
        let wait = (at - Utc::now()).to_std().unwrap_or_default();
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = stop.cancelled() => return,
        }
        fire(&state, &entry, at, grace, &stop).await;
        // After a long stall (a suspended VM) skip what is past the grace.
        tick = entry.next_tick(at).map(|next| {
            let now = Utc::now();
            if now - next > chrono::Duration::from_std(grace).unwrap_or_default() {
                entry.first_tick(now, grace).unwrap_or(next)
            } else {
                next
            }
        });
    }
}

/// Enqueues the tick once across replicas; a database blip is retried until
/// the tick is older than the grace period.
async fn fire(
    state: &AppState,
    entry: &Entry,
    at: DateTime<Utc>,
    grace: Duration,
    stop: &CancellationToken,
) {
    let deadline = at + chrono::Duration::from_std(grace).unwrap_or_default();
    let mut delay = Duration::from_millis(200);
    loop {
        let job = Job::queued(
            NewJob::new(entry.kind, json!({})),
            state.config.job_max_attempts,
            Utc::now(),
        );
        match state.queue.enqueue_tick(entry.kind.as_str(), at, job).await {
            Ok(Some(job)) => {
                tracing::info!(kind = %entry.kind, tick = %at, job = %job.id, "scheduled job enqueued");
                return;
            }
            Ok(None) => {
                tracing::debug!(kind = %entry.kind, tick = %at, "tick already fired by another replica");
                return;
            }
            Err(e) if Utc::now() < deadline => {
                tracing::warn!(kind = %entry.kind, tick = %at, error = %e, "cannot enqueue a scheduled job; retrying");
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = stop.cancelled() => return,
                }
                delay = (delay * 2).min(Duration::from_secs(30));
            }
            Err(e) => {
                tracing::error!(kind = %entry.kind, tick = %at, error = %e, "scheduled tick missed: the queue was unavailable past the grace period");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_example() {
        let s = Schedule::parse("backup=0 3 * * *;purge=@hourly").unwrap();
        assert_eq!(s.entries.len(), 2);
        assert_eq!(s.entries[0].kind, JobKind::Backup);
        assert_eq!(s.entries[1].pattern, "@hourly");
        assert!(Schedule::parse("").unwrap().entries.is_empty());
        assert!(Schedule::parse(" ; ").unwrap().entries.is_empty());
    }

    #[test]
    fn rejects_bad_schedules_with_a_reason() {
        for (spec, needle) in [
            ("backup", "not kind=CRON"),
            ("rm=* * * * *", "unknown kind"),
            ("add=* * * * *", "cannot be scheduled"),
            ("purge=@hourly;purge=@daily", "twice"),
            ("purge=61 * * * *", "not a cron pattern"),
        ] {
            let err = Schedule::parse(spec).unwrap_err();
            assert!(err.contains(needle), "{spec}: {err}");
        }
    }

    #[test]
    fn a_recent_missed_tick_fires_on_start_an_old_one_does_not() {
        let entry = Schedule::parse("backup=0 3 * * *")
            .unwrap()
            .entries
            .remove(0);
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let hour = Duration::from_secs(3600);
        assert_eq!(
            entry.first_tick(at("2026-01-02T03:20:00Z"), hour),
            Some(at("2026-01-02T03:00:00Z"))
        );
        assert_eq!(
            entry.first_tick(at("2026-01-02T05:00:00Z"), hour),
            Some(at("2026-01-03T03:00:00Z"))
        );
        assert_eq!(
            entry.next_tick(at("2026-01-02T03:00:00Z")),
            Some(at("2026-01-03T03:00:00Z"))
        );
    }
}
