//! Workers: claim a job, run it while renewing its lease, record the outcome.
//!
//! Lanes: the service's own jobs (text extraction, backups, purges,
//! reindexing) and what API clients submit wait in separate lanes, and how
//! workers choose between them ([`lanes`]) keeps either from starving the
//! other. With two workers or more, the first serves the internal lane only,
//! so client jobs, however many and however long, never hold every worker.
//! The others alternate which lane they look in first, claim after claim,
//! so a flood in either lane still leaves the other every second claim.
//!
//! Shutdown is in two steps. `stop` ends claiming; jobs in flight get the
//! shutdown timeout to finish, and whatever still runs then is released back
//! to the queue (not counted as an attempt), so a SIGTERM never loses a job.

use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::Context;
use crate::{
    config,
    queue::{
        Claimed, Job, JobKind, Lane, Outcome,
        model::{JobArgs, after_failure},
    },
};

/// Longest wait between retries, whatever the attempt.
const BACKOFF_CAP: Duration = Duration::from_secs(15 * 60);
/// Lease of the maintenance kinds (see [`lease_for`]).
const LONG_LEASE: Duration = Duration::from_secs(10 * 60);

#[derive(Debug, Clone)]
pub struct Settings {
    pub workers: usize,
    pub lease: Duration,
    pub backoff: Duration,
    pub poll: Duration,
    pub shutdown_timeout: Duration,
}

impl Settings {
    pub fn new(settings: &config::Settings) -> Self {
        let jobs = &settings.jobs;
        Self {
            workers: jobs.workers,
            lease: jobs.lease,
            backoff: jobs.backoff,
            poll: jobs.poll,
            shutdown_timeout: settings.server.shutdown_timeout,
        }
    }
}

/// Runs `workers` workers until `stop` is cancelled, then drains
/// them within the shutdown timeout.
pub async fn run(ctx: Context, workers: usize, stop: CancellationToken) {
    let settings = Settings {
        workers,
        ..Settings::new(&ctx.settings)
    };
    if settings.workers == 0 {
        stop.cancelled().await;
        return;
    }
    tracing::info!(
        workers = settings.workers,
        queue = ctx.queue.backend(),
        "job workers started"
    );
    // Cancelled when the grace period after `stop` runs out.
    let abandon = CancellationToken::new();
    let mut workers = JoinSet::new();
    for n in 0..settings.workers {
        workers.spawn(work(
            ctx.clone(),
            settings.clone(),
            n,
            stop.clone(),
            abandon.clone(),
        ));
    }
    stop.cancelled().await;
    let drained = tokio::time::timeout(settings.shutdown_timeout, async {
        while workers.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("jobs still running at the shutdown timeout: releasing them to the queue");
        abandon.cancel();
        while workers.join_next().await.is_some() {}
    }
    tracing::info!("job workers stopped");
}

/// Which lanes worker `n` of `workers` looks in for its `turn`-th job, in
/// order. Worker 0 of two or more is kept for the internal lane; every
/// other worker (a lone one too) alternates which lane it prefers.
pub fn lanes(n: usize, workers: usize, turn: u64) -> &'static [Lane] {
    const INTERNAL_ONLY: &[Lane] = &[Lane::Internal];
    const INTERNAL_FIRST: &[Lane] = &[Lane::Internal, Lane::User];
    const USER_FIRST: &[Lane] = &[Lane::User, Lane::Internal];
    if workers > 1 && n == 0 {
        INTERNAL_ONLY
    } else if turn.is_multiple_of(2) {
        INTERNAL_FIRST
    } else {
        USER_FIRST
    }
}

async fn work(
    ctx: Context,
    settings: Settings,
    n: usize,
    stop: CancellationToken,
    abandon: CancellationToken,
) {
    // Advances per job taken, not per look: an idle lane does not use up
    // the other lane's turn.
    let mut turn = 0u64;
    while !stop.is_cancelled() {
        let lanes = lanes(n, settings.workers, turn);
        match ctx.queue.claim(lanes, settings.lease, Utc::now()).await {
            Ok(Some(claimed)) => {
                turn += 1;
                ctx.queue.wakeup().one();
                run_one(&ctx, &settings, claimed, &abandon).await
            }
            Ok(None) => {
                tokio::select! {
                    () = ctx.queue.wakeup().wait(settings.poll) => {}
                    () = stop.cancelled() => {}
                }
            }
            Err(e) => {
                tracing::warn!(worker = n, error = %e, "cannot claim a job; retrying");
                tokio::select! {
                    () = tokio::time::sleep(settings.poll) => {}
                    () = stop.cancelled() => {}
                }
            }
        }
    }
}

async fn run_one(
    ctx: &Context,
    settings: &Settings,
    claimed: Claimed,
    abandon: &CancellationToken,
) {
    let Claimed { job, token } = claimed;
    let kind = job.kind.as_str();
    let started = Instant::now();
    let outcome = if job.attempts > job.max_attempts {
        // Claimed again after its last attempt's worker died.
        Some(Outcome::Dead(format!(
            "no attempts left: the worker running attempt {} stopped without finishing it",
            job.max_attempts
        )))
    } else {
        let lease = lease_for(job.kind, settings.lease);
        if lease > settings.lease {
            // Taken before the job starts: a job that holds SQLite's one
            // writer would otherwise block its own renewals.
            let _ = ctx.queue.renew(job.id, token, lease, Utc::now()).await;
        }
        // Its own task, so a panic (where panics unwind) fails this attempt
        // instead of killing the worker; aborted when the lease is lost.
        let mut run = tokio::spawn({
            let ctx = ctx.clone();
            let (kind, args) = (job.kind, job.args.clone());
            let running = super::import::Running {
                id: job.id,
                token,
                last_attempt: job.attempts >= job.max_attempts,
            };
            async move {
                match JobArgs::parse(kind, &args) {
                    Ok(args) => super::kinds::execute(&ctx, args, running).await,
                    Err(errors) => Err(super::kinds::JobError::Refused(format!(
                        "invalid arguments: {}",
                        errors[0]
                    ))),
                }
            }
        });
        let outcome = tokio::select! {
            res = &mut run => Some(match res {
                Ok(Ok(value)) => Outcome::Succeeded(value),
                Ok(Err(super::kinds::JobError::RetryAt { error, at })) if job.attempts < job.max_attempts => {
                    Outcome::Retry { error, at }
                }
                Ok(Err(error)) if error.is_final() => Outcome::Dead(error.to_string()),
                Ok(Err(error)) => after_failure(&job, error.to_string(), settings.backoff, BACKOFF_CAP, Utc::now()),
                Err(e) => {
                    tracing::error!(job = %job.id, kind, error = %e, "job panicked");
                    let error = super::kinds::JobError::Panicked.to_string();
                    after_failure(&job, error, settings.backoff, BACKOFF_CAP, Utc::now())
                }
            }),
            () = keep_lease(ctx, lease, &job, token) => None,
            () = abandon.cancelled() => None,
        };
        run.abort();
        outcome
    };
    let Some(outcome) = outcome else {
        // Abandoned at shutdown, or the lease was lost: give the job back
        // (a no-op when another worker already holds it).
        match ctx.queue.release(job.id, token, Utc::now()).await {
            Ok(true) => tracing::info!(job = %job.id, kind, "job released to the queue"),
            Ok(false) => {
                tracing::warn!(job = %job.id, kind, "job lease lost; another worker owns it")
            }
            Err(e) => {
                tracing::warn!(job = %job.id, kind, error = %e, "releasing a job failed; it runs again after its lease")
            }
        }
        return;
    };
    let status = outcome.status();
    match finish(ctx, &job, token, &outcome).await {
        Ok(true) => {
            metrics::counter!("jobs_total", "kind" => kind, "status" => status.as_str())
                .increment(1);
            crate::figures::process().job_run();
            metrics::histogram!("job_duration_seconds", "kind" => kind)
                .record(started.elapsed().as_secs_f64());
            match &outcome {
                Outcome::Succeeded(_) => tracing::debug!(job = %job.id, kind, "job succeeded"),
                Outcome::Retry { error, at } => {
                    tracing::warn!(job = %job.id, kind, attempt = job.attempts, %error, retry_at = %at, "job failed; will retry")
                }
                Outcome::Dead(error) => {
                    tracing::error!(job = %job.id, kind, attempts = job.attempts, %error, "job is dead")
                }
            }
        }
        Ok(false) => {
            tracing::warn!(job = %job.id, kind, "job finished after losing its lease; its outcome was dropped")
        }
        Err(e) => {
            tracing::warn!(job = %job.id, kind, error = %e, "recording a job outcome failed; it runs again after its lease")
        }
    }
}

/// Maintenance kinds may hold the database for minutes (SQLite's single
/// writer during a reindex); a short lease would hand them to a second worker.
fn lease_for(kind: JobKind, lease: Duration) -> Duration {
    if kind.is_maintenance() {
        lease.max(LONG_LEASE)
    } else {
        lease
    }
}

/// Records the outcome, retrying a failed write a few times: a blip here
/// would otherwise run a finished job again after its lease.
async fn finish(
    ctx: &Context,
    job: &Job,
    token: uuid::Uuid,
    outcome: &Outcome,
) -> Result<bool, crate::queue::QueueError> {
    let mut delay = Duration::from_millis(100);
    for _ in 0..4 {
        match ctx.queue.finish(job.id, token, outcome, Utc::now()).await {
            Err(e) => {
                tracing::warn!(job = %job.id, error = %e, "recording a job outcome failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            done => return done,
        }
    }
    ctx.queue.finish(job.id, token, outcome, Utc::now()).await
}

/// Renews the lease at a third of its length. Returns when the lease is
/// lost, or when renewals have failed for long enough that another worker
/// may already have taken the job over: the caller then stops the job.
async fn keep_lease(ctx: &Context, lease: Duration, job: &Job, token: uuid::Uuid) {
    let mut tick = tokio::time::interval(lease / 3);
    tick.tick().await;
    let mut renewed = Instant::now();
    loop {
        tick.tick().await;
        match ctx.queue.renew(job.id, token, lease, Utc::now()).await {
            Ok(true) => renewed = Instant::now(),
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(job = %job.id, error = %e, "renewing a job lease failed");
                if renewed.elapsed() >= lease * 2 / 3 {
                    tracing::error!(job = %job.id, "lease about to expire without renewal: stopping the job");
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Which lane a worker takes its next job from when both lanes have
    /// jobs due: its preferred lane.
    fn takes(n: usize, workers: usize, turn: u64) -> Lane {
        lanes(n, workers, turn)[0]
    }

    #[test]
    fn with_two_workers_or_more_the_first_serves_only_the_internal_lane() {
        for workers in [2, 3, 8] {
            for turn in 0..10 {
                assert_eq!(lanes(0, workers, turn), [Lane::Internal]);
            }
        }
        // A lone worker must serve both lanes.
        assert!(lanes(0, 1, 0).contains(&Lane::User));
        assert!(lanes(0, 1, 1).contains(&Lane::Internal));
    }

    #[test]
    fn shared_workers_alternate_so_neither_lane_starves() {
        for (n, workers) in [(0, 1), (1, 2), (3, 4)] {
            let mut taken = std::collections::HashMap::<Lane, u32>::new();
            for turn in 0..100 {
                // Each turn looks in both lanes, so an empty lane never idles it.
                assert_eq!(lanes(n, workers, turn).len(), 2);
                *taken.entry(takes(n, workers, turn)).or_default() += 1;
            }
            assert_eq!(taken[&Lane::Internal], 50, "worker {n} of {workers}");
            assert_eq!(taken[&Lane::User], 50, "worker {n} of {workers}");
        }
    }
}
