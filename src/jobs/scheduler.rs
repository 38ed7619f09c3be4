//! Periodic jobs from `NOTES_SCHEDULE`. Every replica runs the scheduler;
//! each tick is enqueued through [`crate::queue::Queue::enqueue_tick`], which records the
//! tick and the job together, so a tick fires once however many replicas
//! reach it. A replica that starts within the grace period after a tick
//! fires that tick if nobody did, so a restart at the wrong moment does not
//! silently skip the nightly backup.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{
    Context,
    schedule::{Entry, Schedule},
};
use crate::queue::NewJob;

/// Runs every entry of the configured schedule until `stop`.
pub async fn run(ctx: Context, stop: CancellationToken) {
    let schedule = match Schedule::parse(&ctx.settings.jobs.schedule) {
        Ok(s) => s,
        Err(e) => {
            // Start-up already refused this; a library caller may not have.
            tracing::error!(error = %e, "invalid NOTES_SCHEDULE; no periodic jobs");
            return;
        }
    };
    if schedule.entries.is_empty() {
        return;
    }
    tracing::info!(schedule = ?schedule.entries, "scheduler started");
    let grace = ctx.settings.jobs.schedule_grace;
    let tasks: Vec<_> = schedule
        .entries
        .into_iter()
        .map(|entry| tokio::spawn(run_entry(ctx.clone(), entry, grace, stop.clone())))
        .collect();
    for t in tasks {
        let _ = t.await;
    }
}

async fn run_entry(ctx: Context, entry: Entry, grace: Duration, stop: CancellationToken) {
    let mut tick = entry.first_tick(Utc::now(), grace);
    while let Some(at) = tick {
        let wait = (at - Utc::now()).to_std().unwrap_or_default();
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = stop.cancelled() => return,
        }
        fire(&ctx, &entry, at, grace, &stop).await;
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
    ctx: &Context,
    entry: &Entry,
    at: DateTime<Utc>,
    grace: Duration,
    stop: &CancellationToken,
) {
    let deadline = at + chrono::Duration::from_std(grace).unwrap_or_default();
    let mut delay = Duration::from_millis(200);
    loop {
        let job = ctx.job(NewJob::new(entry.kind, json!({})));
        match ctx.queue.enqueue_tick(entry.kind.as_str(), at, job).await {
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
