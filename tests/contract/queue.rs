//! The `Queue` contract: what the trait's doc comments promise, one
//! behaviour per test, on every backend. Time is the `now` each call is
//! given (whole milliseconds, what every backend keeps of a due time), so
//! leases and due times are tested without sleeping.

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

// Every path into the service that this file names.
use notes_api::queue::{
    Claimed, DynQueue, Job, JobKind, JobListQuery, JobStatus, Lane, NewJob, Outcome, QueueError,
    Quota, Wakeup,
};

contract_tests! {
    queue;
    enqueued_job_reads_back: sqlite, postgres, redis;
    get_of_an_unknown_job_is_none: sqlite, postgres, redis;
    list_is_newest_first_and_pages_with_a_cursor: sqlite, postgres, redis;
    list_filters_by_status: sqlite, postgres, redis;
    list_filters_by_kind: sqlite, postgres, redis;
    list_filters_by_status_and_kind_and_pages: sqlite, postgres, redis;
    claim_takes_the_job_due_first: sqlite, postgres, redis;
    claim_counts_an_attempt_and_marks_the_job_running: sqlite, postgres, redis;
    claim_returns_none_when_nothing_is_claimable: sqlite, postgres, redis;
    a_job_due_later_is_not_claimed_early: sqlite, postgres, redis;
    an_expired_lease_makes_a_running_job_claimable_again: sqlite, postgres, redis;
    renew_extends_the_lease: sqlite, postgres, redis;
    renew_with_a_wrong_token_is_false_and_keeps_the_lease: sqlite, postgres, redis;
    renew_after_the_lease_was_lost_is_false: sqlite, postgres, redis;
    progress_sets_a_running_jobs_result_under_its_lease: sqlite, postgres, redis;
    finish_succeeded_records_the_result: sqlite, postgres, redis;
    finish_retry_records_the_error_and_when_to_run_again: sqlite, postgres, redis;
    finish_dead_records_the_error_and_never_runs_again: sqlite, postgres, redis;
    finish_with_a_stale_token_is_false_and_changes_nothing: sqlite, postgres, redis;
    finish_after_the_lease_was_lost_leaves_the_new_holder_alone: sqlite, postgres, redis;
    release_gives_the_job_back_without_counting_the_attempt: sqlite, postgres, redis;
    release_with_a_wrong_token_is_false: sqlite, postgres, redis;
    retry_requeues_a_dead_job_with_its_attempts_reset: sqlite, postgres, redis;
    retry_of_a_succeeded_job_is_a_conflict: sqlite, postgres, redis;
    retry_of_a_failed_job_is_a_conflict: sqlite, postgres, redis;
    retry_of_a_running_job_is_a_conflict: sqlite, postgres, redis;
    retry_of_a_queued_job_is_a_conflict: sqlite, postgres, redis;
    retry_of_an_unknown_job_is_not_found: sqlite, postgres, redis;
    queued_counts_queued_and_failed_jobs: sqlite, postgres, redis;
    depth_counts_every_status: sqlite, postgres, redis;
    enqueue_tick_fires_once_per_name_and_tick: sqlite, postgres, redis;
    enqueue_tick_fires_once_under_concurrent_callers: sqlite, postgres, redis;
    purge_deletes_only_finished_jobs_older_than_the_cutoff: sqlite, postgres, redis;
    purge_forgets_schedule_ticks_older_than_the_cutoff: sqlite, postgres, redis;
    enqueue_wakes_a_waiting_worker: sqlite, postgres, redis;
    enqueue_tick_wakes_a_waiting_worker: sqlite, postgres, redis;
    finish_with_retry_wakes_a_waiting_worker: sqlite, postgres, redis;
    retry_of_a_dead_job_wakes_a_waiting_worker: sqlite, postgres, redis;
    release_wakes_a_waiting_worker: sqlite, postgres, redis;
    each_kind_waits_in_its_lane: sqlite, postgres, redis;
    claim_takes_the_first_listed_lane_with_a_job_due: sqlite, postgres, redis;
    claim_leaves_lanes_not_listed_alone: sqlite, postgres, redis;
    each_lane_is_claimed_in_due_order: sqlite, postgres, redis;
    a_backlog_in_one_lane_does_not_delay_the_other: sqlite, postgres, redis;
    a_job_comes_back_to_its_own_lane: sqlite, postgres, redis;
    a_scheduled_tick_waits_in_its_kinds_lane: sqlite, postgres, redis;
    enqueue_within_stops_at_the_owners_limit: sqlite, postgres, redis;
    only_finished_jobs_free_an_owners_quota: sqlite, postgres, redis;
    enqueue_within_is_exact_under_concurrent_callers: sqlite, postgres, redis;
    enqueue_within_wakes_a_waiting_worker: sqlite, postgres, redis;
}

const LEASE: Duration = Duration::from_secs(30);

/// Now, in whole milliseconds.
fn now() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap()
}

fn secs(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n)
}

fn new_job(kind: JobKind, at: DateTime<Utc>) -> Job {
    Job::queued(NewJob::new(kind, json!({"n": 1})), 3, at)
}

/// A job enqueued at `created`, due at `due`.
fn due_job(created: DateTime<Utc>, due: DateTime<Utc>) -> Job {
    let mut job = new_job(JobKind::Ping, created);
    job.run_at = Some(due);
    job
}

async fn enqueue(q: &DynQueue, job: Job) -> Job {
    q.enqueue(job).await.expect("enqueue")
}

async fn get(q: &DynQueue, id: Uuid) -> Job {
    q.get(id).await.expect("get").expect("the job exists")
}

async fn claim(q: &DynQueue, at: DateTime<Utc>) -> Option<Claimed> {
    q.claim(&Lane::ALL, LEASE, at).await.expect("claim")
}

async fn list(q: &DynQueue, query: JobListQuery) -> (Vec<Uuid>, Option<i64>) {
    let page = q.list(&query).await.expect("list");
    (page.items.iter().map(|j| j.id).collect(), page.next)
}

/// Every id a filtered listing returns, following `next` page by page.
async fn list_all(q: &DynQueue, mut query: JobListQuery) -> Vec<Uuid> {
    let mut ids = Vec::new();
    loop {
        let (page, next) = list(q, query.clone()).await;
        ids.extend(page);
        match next {
            Some(next) => query.after = Some(next),
            None => return ids,
        }
    }
}

/// Enqueues a job and takes it through claim and `outcome`, at `at`.
async fn finished(q: &DynQueue, kind: JobKind, outcome: Outcome, at: DateTime<Utc>) -> Job {
    let job = enqueue(q, new_job(kind, at)).await;
    let claimed = claim(q, at).await.expect("claimable");
    assert_eq!(claimed.job.id, job.id, "the only due job");
    assert!(q.finish(job.id, claimed.token, &outcome, at).await.unwrap());
    get(q, job.id).await
}

async fn enqueued_job_reads_back(q: DynQueue) {
    let t = now();
    let job = new_job(JobKind::Add, t);
    let returned = enqueue(&q, job.clone()).await;
    assert_eq!(returned, job);
    let stored = get(&q, job.id).await;
    assert_eq!(stored, job);
    assert_eq!(stored.status, JobStatus::Queued);
    assert_eq!(stored.attempts, 0);
    assert_eq!(stored.run_at, Some(t));
}

async fn get_of_an_unknown_job_is_none(q: DynQueue) {
    enqueue(&q, new_job(JobKind::Ping, now())).await;
    assert_eq!(q.get(Uuid::now_v7()).await.unwrap(), None);
}

async fn list_is_newest_first_and_pages_with_a_cursor(q: DynQueue) {
    let t = now();
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(enqueue(&q, new_job(JobKind::Ping, t)).await.id);
    }
    ids.reverse();
    let page = |after| JobListQuery {
        limit: 2,
        after,
        ..Default::default()
    };
    let (first, next) = list(&q, page(None)).await;
    assert_eq!(first, ids[0..2]);
    let next = next.expect("a second page");
    let (second, next) = list(&q, page(Some(next))).await;
    assert_eq!(second, ids[2..4]);
    let next = next.expect("a third page");
    let (third, next) = list(&q, page(Some(next))).await;
    assert_eq!(third, ids[4..5]);
    assert_eq!(next, None, "the last page has no next");
    // A page that holds exactly what is left has no next either.
    let all = JobListQuery {
        limit: 5,
        ..Default::default()
    };
    assert_eq!(list(&q, all).await, (ids.clone(), None));
}

/// One job in each of the five statuses, kinds alternating: (id, status, kind).
async fn one_of_each_status(q: &DynQueue) -> Vec<(Uuid, JobStatus, JobKind)> {
    let t = now();
    let mut jobs = Vec::new();
    let ok = finished(q, JobKind::Add, Outcome::Succeeded(json!(5)), t).await;
    jobs.push((ok.id, JobStatus::Succeeded, JobKind::Add));
    let dead = finished(q, JobKind::Ping, Outcome::Dead("boom".into()), t).await;
    jobs.push((dead.id, JobStatus::Dead, JobKind::Ping));
    let retry = Outcome::Retry {
        error: "again".into(),
        at: t + secs(3600),
    };
    let failed = finished(q, JobKind::Add, retry, t).await;
    jobs.push((failed.id, JobStatus::Failed, JobKind::Add));
    let running = enqueue(q, new_job(JobKind::Ping, t)).await;
    assert_eq!(claim(q, t).await.expect("claimable").job.id, running.id);
    jobs.push((running.id, JobStatus::Running, JobKind::Ping));
    let queued = enqueue(q, due_job(t, t + secs(3600))).await;
    jobs.push((queued.id, JobStatus::Queued, JobKind::Ping));
    let queued_add = enqueue(q, {
        let mut j = new_job(JobKind::Add, t);
        j.run_at = Some(t + secs(3600));
        j
    })
    .await;
    jobs.push((queued_add.id, JobStatus::Queued, JobKind::Add));
    for (id, status, _) in &jobs {
        assert_eq!(get(q, *id).await.status, *status);
    }
    jobs
}

/// The ids of `jobs` matching a filter, newest first.
fn expected(
    jobs: &[(Uuid, JobStatus, JobKind)],
    status: Option<JobStatus>,
    kind: Option<JobKind>,
) -> Vec<Uuid> {
    jobs.iter()
        .rev()
        .filter(|(_, s, k)| status.is_none_or(|x| x == *s) && kind.is_none_or(|x| x == *k))
        .map(|(id, _, _)| *id)
        .collect()
}

async fn list_filters_by_status(q: DynQueue) {
    let jobs = one_of_each_status(&q).await;
    for status in JobStatus::ALL {
        let query = JobListQuery {
            status: Some(status),
            limit: 10,
            ..Default::default()
        };
        assert_eq!(
            list(&q, query).await,
            (expected(&jobs, Some(status), None), None),
            "status {status}"
        );
    }
}

async fn list_filters_by_kind(q: DynQueue) {
    let jobs = one_of_each_status(&q).await;
    for kind in [JobKind::Add, JobKind::Ping, JobKind::Backup] {
        let query = JobListQuery {
            kind: Some(kind),
            limit: 10,
            ..Default::default()
        };
        assert_eq!(
            list(&q, query).await,
            (expected(&jobs, None, Some(kind)), None),
            "kind {kind}"
        );
    }
}

async fn list_filters_by_status_and_kind_and_pages(q: DynQueue) {
    let mut jobs = one_of_each_status(&q).await;
    // More of one combination than fits a page.
    let t = now();
    for _ in 0..4 {
        let job = enqueue(&q, {
            let mut j = new_job(JobKind::Add, t);
            j.run_at = Some(t + secs(3600));
            j
        })
        .await;
        jobs.push((job.id, JobStatus::Queued, JobKind::Add));
        let other = enqueue(&q, due_job(t, t + secs(3600))).await;
        jobs.push((other.id, JobStatus::Queued, JobKind::Ping));
    }
    let want = expected(&jobs, Some(JobStatus::Queued), Some(JobKind::Add));
    assert_eq!(want.len(), 5);
    let query = JobListQuery {
        status: Some(JobStatus::Queued),
        kind: Some(JobKind::Add),
        limit: 2,
        after: None,
    };
    let (first, next) = list(&q, query.clone()).await;
    assert_eq!(first, want[0..2]);
    assert!(next.is_some());
    assert_eq!(list_all(&q, query).await, want);
    let none = JobListQuery {
        status: Some(JobStatus::Dead),
        kind: Some(JobKind::Add),
        limit: 2,
        after: None,
    };
    assert_eq!(list(&q, none).await, (vec![], None));
}

async fn claim_takes_the_job_due_first(q: DynQueue) {
    let t = now();
    // Enqueued in an order unlike their due order.
    let a = enqueue(&q, due_job(t, t - secs(10))).await;
    let b = enqueue(&q, due_job(t, t - secs(30))).await;
    let c = enqueue(&q, due_job(t, t - secs(20))).await;
    let mut order = Vec::new();
    while let Some(claimed) = claim(&q, t).await {
        order.push(claimed.job.id);
    }
    assert_eq!(order, [b.id, c.id, a.id]);
}

async fn claim_counts_an_attempt_and_marks_the_job_running(q: DynQueue) {
    let t = now();
    let job = enqueue(&q, new_job(JobKind::Add, t)).await;
    let at = t + secs(1);
    let claimed = claim(&q, at).await.expect("claimable");
    assert_eq!(claimed.job.id, job.id);
    assert_eq!(claimed.job.status, JobStatus::Running);
    assert_eq!(claimed.job.attempts, 1);
    assert_eq!(claimed.job.started_at, Some(at));
    assert_eq!(claimed.job.run_at, None, "a running job shows no run_at");
    assert_eq!(claimed.job.args, job.args);
    assert_eq!(get(&q, job.id).await, claimed.job);
}

async fn claim_returns_none_when_nothing_is_claimable(q: DynQueue) {
    let t = now();
    assert!(claim(&q, t).await.is_none(), "an empty queue");
    finished(&q, JobKind::Ping, Outcome::Succeeded(json!(null)), t).await;
    finished(&q, JobKind::Ping, Outcome::Dead("x".into()), t).await;
    enqueue(&q, new_job(JobKind::Ping, t)).await;
    assert!(claim(&q, t).await.is_some());
    assert!(
        claim(&q, t).await.is_none(),
        "finished jobs and a job under lease"
    );
}

async fn a_job_due_later_is_not_claimed_early(q: DynQueue) {
    let t = now();
    let job = enqueue(&q, due_job(t, t + secs(60))).await;
    assert!(claim(&q, t).await.is_none());
    assert!(claim(&q, t + secs(59)).await.is_none());
    let claimed = claim(&q, t + secs(60)).await.expect("due at its run_at");
    assert_eq!(claimed.job.id, job.id);
}

async fn an_expired_lease_makes_a_running_job_claimable_again(q: DynQueue) {
    let t = now();
    let job = enqueue(&q, new_job(JobKind::Ping, t)).await;
    let first = claim(&q, t).await.expect("claimable");
    assert!(claim(&q, t + secs(29)).await.is_none(), "still leased");
    let second = claim(&q, t + secs(31)).await.expect("the lease expired");
    assert_eq!(second.job.id, job.id);
    assert_eq!(second.job.status, JobStatus::Running);
    assert_eq!(second.job.attempts, 2);
    assert_ne!(second.token, first.token);
}

async fn renew_extends_the_lease(q: DynQueue) {
    let t = now();
    let job = enqueue(&q, new_job(JobKind::Ping, t)).await;
    let claimed = claim(&q, t).await.expect("claimable");
    let renewed = q
        .renew(job.id, claimed.token, Duration::from_secs(60), t + secs(20))
        .await
        .unwrap();
    assert!(renewed);
    assert!(
        claim(&q, t + secs(31)).await.is_none(),
        "the first lease would have ended here"
    );
    assert!(claim(&q, t + secs(79)).await.is_none());
    let again = claim(&q, t + secs(81))
        .await
        .expect("the renewed lease ended");
    assert_eq!(again.job.id, job.id);
    // The renewal counted no attempt.
    assert_eq!(again.job.attempts, 2);
}

async fn renew_with_a_wrong_token_is_false_and_keeps_the_lease(q: DynQueue) {
    let t = now();
    let job = enqueue(&q, new_job(JobKind::Ping, t)).await;
    claim(&q, t).await.expect("claimable");
    let renewed = q
        .renew(
            job.id,
            Uuid::new_v4(),
            Duration::from_secs(600),
            t + secs(10),
        )
        .await
        .unwrap();
    assert!(!renewed);
    let unknown = q
        .renew(Uuid::now_v7(), Uuid::new_v4(), LEASE, t)
        .await
        .unwrap();
    assert!(!unknown);
    let again = claim(&q, t + secs(31)).await;
    assert_eq!(
        again.map(|c| c.job.id),
        Some(job.id),
        "the lease was not extended"
    );
}

async fn renew_after_the_lease_was_lost_is_false(q: DynQueue) {
    let t = now();
    let job = enqueue(&q, new_job(JobKind::Ping, t)).await;
    let first = claim(&q, t).await.expect("claimable");
    let second = claim(&q, t + secs(31)).await.expect("the lease expired");
    let renewed = q
        .renew(job.id, first.token, LEASE, t + secs(32))
        .await
        .unwrap();
    assert!(!renewed, "another worker holds the job now");
    // The new holder's lease is untouched by the failed renewal...
    assert!(claim(&q, t + secs(60)).await.is_none());
    // ... and once it finishes, renewing is over too.
    let outcome = Outcome::Succeeded(json!(1));
    assert!(
        q.finish(job.id, second.token, &outcome, t + secs(40))
            .await
            .unwrap()
    );
    let after_finish = q
        .renew(job.id, second.token, LEASE, t + secs(41))
        .await
        .unwrap();
    assert!(!after_finish);
}

async fn progress_sets_a_running_jobs_result_under_its_lease(q: DynQueue) {
    let t = now();
    let job = enqueue(&q, new_job(JobKind::Ping, t)).await;
    let first = claim(&q, t).await.expect("claimable");
    let half = json!({"done": 1, "total": 2, "errors": []});
    assert!(q.progress(job.id, first.token, &half).await.unwrap());
    let stored = get(&q, job.id).await;
    assert_eq!(stored.result, Some(half.clone()));
    assert_eq!(stored.status, JobStatus::Running, "progress is no outcome");
    // A wrong token, an unknown job: nothing changes.
    let other = json!({"done": 99});
    assert!(!q.progress(job.id, Uuid::new_v4(), &other).await.unwrap());
    assert!(
        !q.progress(Uuid::now_v7(), first.token, &other)
            .await
            .unwrap()
    );
    assert_eq!(get(&q, job.id).await.result, Some(half));
    // The lease lost, the old holder's progress is refused.
    let second = claim(&q, t + secs(31)).await.expect("the lease expired");
    assert!(!q.progress(job.id, first.token, &other).await.unwrap());
    // The outcome replaces the progress, and progress ends with it.
    let outcome = Outcome::Succeeded(json!({"done": 2, "total": 2}));
    assert!(
        q.finish(job.id, second.token, &outcome, t + secs(40))
            .await
            .unwrap()
    );
    assert!(!q.progress(job.id, second.token, &other).await.unwrap());
    assert_eq!(
        get(&q, job.id).await.result,
        Some(json!({"done": 2, "total": 2}))
    );
}

async fn finish_succeeded_records_the_result(q: DynQueue) {
    let t = now();
    let job = enqueue(&q, new_job(JobKind::Add, t)).await;
    let claimed = claim(&q, t).await.expect("claimable");
    let done = t + secs(2);
    let outcome = Outcome::Succeeded(json!({"sum": 5}));
    assert!(
        q.finish(job.id, claimed.token, &outcome, done)
            .await
            .unwrap()
    );
    let stored = get(&q, job.id).await;
    assert_eq!(stored.status, JobStatus::Succeeded);
    assert_eq!(stored.result, Some(json!({"sum": 5})));
    assert_eq!(stored.error, None);
    assert_eq!(stored.run_at, None);
    assert_eq!(stored.finished_at, Some(done));
    assert_eq!(stored.attempts, 1);
    assert!(claim(&q, done + secs(3600)).await.is_none(), "never again");
}

async fn finish_retry_records_the_error_and_when_to_run_again(q: DynQueue) {
    let t = now();
    let job = enqueue(&q, new_job(JobKind::Add, t)).await;
    let claimed = claim(&q, t).await.expect("claimable");
    let done = t + secs(1);
    let next = t + secs(120);
    let outcome = Outcome::Retry {
        error: "flaky".into(),
        at: next,
    };
    assert!(
        q.finish(job.id, claimed.token, &outcome, done)
            .await
            .unwrap()
    );
    let stored = get(&q, job.id).await;
    assert_eq!(stored.status, JobStatus::Failed);
    assert_eq!(stored.error.as_deref(), Some("flaky"));
    assert_eq!(stored.result, None);
    assert_eq!(stored.run_at, Some(next));
    assert_eq!(stored.attempts, 1);
    assert!(claim(&q, next - secs(1)).await.is_none(), "not before `at`");
    let again = claim(&q, next).await.expect("due at `at`");
    assert_eq!(again.job.id, job.id);
    assert_eq!(again.job.attempts, 2);
}

async fn finish_dead_records_the_error_and_never_runs_again(q: DynQueue) {
    let t = now();
    let job = enqueue(&q, new_job(JobKind::Add, t)).await;
    let claimed = claim(&q, t).await.expect("claimable");
    let done = t + secs(1);
    let outcome = Outcome::Dead("gave up".into());
    assert!(
        q.finish(job.id, claimed.token, &outcome, done)
            .await
            .unwrap()
    );
    let stored = get(&q, job.id).await;
    assert_eq!(stored.status, JobStatus::Dead);
    assert_eq!(stored.error.as_deref(), Some("gave up"));
    assert_eq!(stored.result, None);
    assert_eq!(stored.run_at, None);
    assert_eq!(stored.finished_at, Some(done));
    assert!(claim(&q, done + secs(86_400)).await.is_none());
}

async fn finish_with_a_stale_token_is_false_and_changes_nothing(q: DynQueue) {
    let t = now();
    let job = enqueue(&q, new_job(JobKind::Ping, t)).await;
    let claimed = claim(&q, t).await.expect("claimable");
    let before = get(&q, job.id).await;
    for outcome in [
        Outcome::Succeeded(json!(1)),
        Outcome::Retry {
            error: "x".into(),
            at: t,
        },
        Outcome::Dead("x".into()),
    ] {
        let done = q
            .finish(job.id, Uuid::new_v4(), &outcome, t + secs(1))
            .await
            .unwrap();
        assert!(!done, "{outcome:?} with a wrong token");
        assert_eq!(get(&q, job.id).await, before);
    }
    // The holder still can.
    let outcome = Outcome::Succeeded(json!(2));
    assert!(
        q.finish(job.id, claimed.token, &outcome, t + secs(2))
            .await
            .unwrap()
    );
    // And once finished, the token is spent.
    let twice = q
        .finish(
            job.id,
            claimed.token,
            &Outcome::Dead("x".into()),
            t + secs(3),
        )
        .await
        .unwrap();
    assert!(!twice);
    assert_eq!(get(&q, job.id).await.status, JobStatus::Succeeded);
    let unknown = q
        .finish(Uuid::now_v7(), claimed.token, &outcome, t)
        .await
        .unwrap();
    assert!(!unknown);
}

async fn finish_after_the_lease_was_lost_leaves_the_new_holder_alone(q: DynQueue) {
    let t = now();
    let job = enqueue(&q, new_job(JobKind::Ping, t)).await;
    let first = claim(&q, t).await.expect("claimable");
    let second = claim(&q, t + secs(31)).await.expect("the lease expired");
    let held = get(&q, job.id).await;
    let outcome = Outcome::Succeeded(json!("late"));
    assert!(
        !q.finish(job.id, first.token, &outcome, t + secs(32))
            .await
            .unwrap()
    );
    assert!(!q.release(job.id, first.token, t + secs(32)).await.unwrap());
    assert_eq!(get(&q, job.id).await, held);
    assert_eq!(held.status, JobStatus::Running);
    assert_eq!(held.attempts, 2);
    let outcome = Outcome::Succeeded(json!("second"));
    assert!(
        q.finish(job.id, second.token, &outcome, t + secs(33))
            .await
            .unwrap()
    );
    assert_eq!(get(&q, job.id).await.result, Some(json!("second")));
}

async fn release_gives_the_job_back_without_counting_the_attempt(q: DynQueue) {
    let t = now();
    let job = enqueue(&q, new_job(JobKind::Ping, t)).await;
    let claimed = claim(&q, t).await.expect("claimable");
    let at = t + secs(5);
    assert!(q.release(job.id, claimed.token, at).await.unwrap());
    let stored = get(&q, job.id).await;
    assert_eq!(stored.status, JobStatus::Queued);
    assert_eq!(stored.attempts, 0);
    assert_eq!(stored.started_at, None);
    assert_eq!(stored.run_at, Some(at));
    assert_eq!(stored.result, None);
    assert_eq!(stored.error, None);
    // Claimable at once, by anyone, and the token is spent.
    let again = claim(&q, at).await.expect("claimable again");
    assert_eq!(again.job.id, job.id);
    assert_eq!(again.job.attempts, 1);
    assert!(!q.release(job.id, claimed.token, at).await.unwrap());
}

async fn release_with_a_wrong_token_is_false(q: DynQueue) {
    let t = now();
    let job = enqueue(&q, new_job(JobKind::Ping, t)).await;
    claim(&q, t).await.expect("claimable");
    let before = get(&q, job.id).await;
    assert!(!q.release(job.id, Uuid::new_v4(), t).await.unwrap());
    assert_eq!(get(&q, job.id).await, before);
    assert!(claim(&q, t + secs(1)).await.is_none(), "still leased");
    let unknown = q.release(Uuid::now_v7(), Uuid::new_v4(), t).await.unwrap();
    assert!(!unknown);
}

async fn retry_requeues_a_dead_job_with_its_attempts_reset(q: DynQueue) {
    let t = now();
    let dead = finished(&q, JobKind::Add, Outcome::Dead("gave up".into()), t).await;
    assert_eq!(dead.attempts, 1);
    let at = t + secs(10);
    let retried = q.retry(dead.id, at).await.expect("retry");
    assert_eq!(retried.id, dead.id);
    assert_eq!(retried.status, JobStatus::Queued);
    assert_eq!(retried.attempts, 0);
    assert_eq!(retried.error, None);
    assert_eq!(retried.result, None);
    assert_eq!(retried.started_at, None);
    assert_eq!(retried.finished_at, None);
    assert_eq!(retried.run_at, Some(at));
    assert_eq!(retried.args, dead.args);
    assert_eq!(get(&q, dead.id).await, retried);
    let claimed = claim(&q, at).await.expect("claimable again");
    assert_eq!(claimed.job.id, dead.id);
    assert_eq!(claimed.job.attempts, 1);
}

/// `retry` of a job that is not dead: `Conflict`, and the job unchanged.
async fn retry_is_a_conflict(q: &DynQueue, id: Uuid) {
    let before = get(q, id).await;
    let err = q.retry(id, now()).await.expect_err("not dead");
    assert!(
        matches!(err, QueueError::Conflict(_)),
        "{}: {err:?}",
        before.status
    );
    assert_eq!(get(q, id).await, before, "unchanged");
}

async fn retry_of_a_succeeded_job_is_a_conflict(q: DynQueue) {
    let job = finished(&q, JobKind::Ping, Outcome::Succeeded(json!(1)), now()).await;
    retry_is_a_conflict(&q, job.id).await;
}

async fn retry_of_a_failed_job_is_a_conflict(q: DynQueue) {
    let t = now();
    let retry = Outcome::Retry {
        error: "x".into(),
        at: t + secs(3600),
    };
    let job = finished(&q, JobKind::Ping, retry, t).await;
    retry_is_a_conflict(&q, job.id).await;
}

async fn retry_of_a_running_job_is_a_conflict(q: DynQueue) {
    let t = now();
    let job = enqueue(&q, new_job(JobKind::Ping, t)).await;
    claim(&q, t).await.expect("claimable");
    retry_is_a_conflict(&q, job.id).await;
}

async fn retry_of_a_queued_job_is_a_conflict(q: DynQueue) {
    let t = now();
    let job = enqueue(&q, due_job(t, t + secs(3600))).await;
    retry_is_a_conflict(&q, job.id).await;
}

async fn retry_of_an_unknown_job_is_not_found(q: DynQueue) {
    let err = q.retry(Uuid::now_v7(), now()).await.expect_err("unknown");
    assert!(matches!(err, QueueError::NotFound), "{err:?}");
}

async fn queued_counts_queued_and_failed_jobs(q: DynQueue) {
    assert_eq!(q.queued().await.unwrap(), 0);
    let jobs = one_of_each_status(&q).await;
    // queued ×2 and failed ×1; not running, succeeded or dead.
    assert_eq!(jobs.len(), 6);
    assert_eq!(q.queued().await.unwrap(), 3);
}

async fn depth_counts_every_status(q: DynQueue) {
    let empty = q.depth().await.unwrap();
    assert_eq!(
        empty,
        JobStatus::ALL.iter().map(|s| (*s, 0)).collect::<Vec<_>>(),
        "every status, in order, zeros included"
    );
    one_of_each_status(&q).await;
    let depth = q.depth().await.unwrap();
    assert_eq!(
        depth,
        vec![
            (JobStatus::Queued, 2),
            (JobStatus::Running, 1),
            (JobStatus::Succeeded, 1),
            (JobStatus::Failed, 1),
            (JobStatus::Dead, 1),
        ]
    );
}

async fn enqueue_tick_fires_once_per_name_and_tick(q: DynQueue) {
    let t = now();
    let tick = t - secs(1);
    let first = new_job(JobKind::Purge, t);
    let fired = q
        .enqueue_tick("nightly", tick, first.clone())
        .await
        .unwrap();
    assert_eq!(fired, Some(first.clone()));
    let again = q
        .enqueue_tick("nightly", tick, new_job(JobKind::Purge, t))
        .await
        .unwrap();
    assert_eq!(again, None, "the tick already fired");
    let all = JobListQuery {
        limit: 10,
        ..Default::default()
    };
    assert_eq!(list(&q, all.clone()).await.0, [first.id]);
    assert_eq!(get(&q, first.id).await, first);
    // Another tick of the same entry, and the same tick of another entry, fire.
    let next_tick = q
        .enqueue_tick("nightly", tick + secs(60), new_job(JobKind::Purge, t))
        .await
        .unwrap();
    assert!(next_tick.is_some());
    let other_entry = q
        .enqueue_tick("hourly", tick, new_job(JobKind::Purge, t))
        .await
        .unwrap();
    assert!(other_entry.is_some());
    assert_eq!(list(&q, all).await.0.len(), 3);
}

async fn enqueue_tick_fires_once_under_concurrent_callers(q: DynQueue) {
    let t = now();
    let tick = t - secs(1);
    let callers: Vec<_> = (0..16)
        .map(|_| {
            let q = q.clone();
            tokio::spawn(async move {
                q.enqueue_tick("every-minute", tick, new_job(JobKind::Ping, t))
                    .await
            })
        })
        .collect();
    let mut fired = Vec::new();
    for caller in callers {
        if let Some(job) = caller.await.unwrap().expect("enqueue_tick") {
            fired.push(job.id);
        }
    }
    assert_eq!(fired.len(), 1, "exactly one caller enqueues the tick");
    let all = JobListQuery {
        limit: 100,
        ..Default::default()
    };
    assert_eq!(list(&q, all).await.0, fired);
}

async fn purge_deletes_only_finished_jobs_older_than_the_cutoff(q: DynQueue) {
    let t = now();
    let old = t - secs(7200);
    let cutoff = t - secs(3600);
    let old_ok = finished(&q, JobKind::Ping, Outcome::Succeeded(json!(1)), old).await;
    let old_dead = finished(&q, JobKind::Ping, Outcome::Dead("x".into()), old).await;
    let retry = Outcome::Retry {
        error: "x".into(),
        at: t + secs(3600),
    };
    let old_failed = finished(&q, JobKind::Ping, retry, old).await;
    let new_ok = finished(&q, JobKind::Ping, Outcome::Succeeded(json!(2)), t).await;
    let new_dead = finished(&q, JobKind::Ping, Outcome::Dead("y".into()), t).await;
    let old_queued = enqueue(&q, due_job(old, t + secs(3600))).await;
    let old_running = enqueue(&q, new_job(JobKind::Ping, old)).await;
    let claimed = claim(&q, t).await.expect("claimable");
    assert_eq!(claimed.job.id, old_running.id);

    assert_eq!(q.purge(cutoff).await.unwrap(), 2);
    for gone in [old_ok.id, old_dead.id] {
        assert_eq!(q.get(gone).await.unwrap(), None);
    }
    let kept = [
        old_failed.id,
        old_queued.id,
        old_running.id,
        new_ok.id,
        new_dead.id,
    ];
    for id in kept {
        assert!(q.get(id).await.unwrap().is_some(), "{id} was purged");
    }
    let all = JobListQuery {
        limit: 100,
        ..Default::default()
    };
    let listed: HashSet<Uuid> = list(&q, all).await.0.into_iter().collect();
    assert_eq!(listed, kept.into_iter().collect::<HashSet<_>>());
    assert_eq!(q.purge(cutoff).await.unwrap(), 0, "nothing left to purge");
}

async fn purge_forgets_schedule_ticks_older_than_the_cutoff(q: DynQueue) {
    let t = now();
    let old_tick = t - secs(7200);
    let new_tick = t - secs(60);
    for tick in [old_tick, new_tick] {
        let fired = q
            .enqueue_tick("nightly", tick, new_job(JobKind::Purge, t))
            .await
            .unwrap();
        assert!(fired.is_some());
    }
    assert_eq!(
        q.purge(t - secs(3600)).await.unwrap(),
        0,
        "no finished jobs"
    );
    let new_again = q
        .enqueue_tick("nightly", new_tick, new_job(JobKind::Purge, t))
        .await
        .unwrap();
    assert_eq!(new_again, None, "a tick newer than the cutoff is kept");
    let old_again = q
        .enqueue_tick("nightly", old_tick, new_job(JobKind::Purge, t))
        .await
        .unwrap();
    assert!(
        old_again.is_some(),
        "a tick older than the cutoff is forgotten"
    );
}

const QUIET: Duration = Duration::from_millis(300);
const WAKE_WITHIN: Duration = Duration::from_secs(3);

/// Takes every announcement already made (an enqueue's, a notification's
/// echo) until the wake-up stays quiet for a while.
async fn drain(wakeup: &Wakeup) {
    for _ in 0..50 {
        let start = Instant::now();
        wakeup.wait(QUIET).await;
        if start.elapsed() >= QUIET {
            return;
        }
    }
    panic!("the wake-up never went quiet");
}

/// Whether a worker waiting now is woken (well before its poll timeout).
async fn woken(wakeup: &Wakeup) -> bool {
    let start = Instant::now();
    wakeup.wait(WAKE_WITHIN).await;
    start.elapsed() < WAKE_WITHIN
}

async fn enqueue_wakes_a_waiting_worker(q: DynQueue) {
    drain(q.wakeup()).await;
    enqueue(&q, new_job(JobKind::Ping, now())).await;
    assert!(woken(q.wakeup()).await);
}

async fn enqueue_tick_wakes_a_waiting_worker(q: DynQueue) {
    drain(q.wakeup()).await;
    let fired = q
        .enqueue_tick("nightly", now(), new_job(JobKind::Ping, now()))
        .await
        .unwrap();
    assert!(fired.is_some());
    assert!(woken(q.wakeup()).await);
}

async fn finish_with_retry_wakes_a_waiting_worker(q: DynQueue) {
    let t = now();
    let job = enqueue(&q, new_job(JobKind::Ping, t)).await;
    let claimed = claim(&q, t).await.expect("claimable");
    drain(q.wakeup()).await;
    let outcome = Outcome::Retry {
        error: "again".into(),
        at: t,
    };
    assert!(q.finish(job.id, claimed.token, &outcome, t).await.unwrap());
    assert!(
        woken(q.wakeup()).await,
        "the retry is due and nobody was told"
    );
}

async fn retry_of_a_dead_job_wakes_a_waiting_worker(q: DynQueue) {
    let t = now();
    let dead = finished(&q, JobKind::Ping, Outcome::Dead("x".into()), t).await;
    drain(q.wakeup()).await;
    q.retry(dead.id, t).await.expect("retry");
    assert!(woken(q.wakeup()).await);
}

async fn release_wakes_a_waiting_worker(q: DynQueue) {
    let t = now();
    let job = enqueue(&q, new_job(JobKind::Ping, t)).await;
    let claimed = claim(&q, t).await.expect("claimable");
    drain(q.wakeup()).await;
    assert!(q.release(job.id, claimed.token, t).await.unwrap());
    assert!(
        woken(q.wakeup()).await,
        "the released job is due and nobody was told"
    );
}

// Lanes: the service's own jobs and API clients' jobs wait apart; a claim
// names the lanes it looks in, in order.

const INTERNAL_FIRST: &[Lane] = &[Lane::Internal, Lane::User];
const USER_FIRST: &[Lane] = &[Lane::User, Lane::Internal];

/// A job of `kind` (its lane's) enqueued at `t`, due `due` from then.
async fn in_lane(q: &DynQueue, kind: JobKind, t: DateTime<Utc>, due: chrono::Duration) -> Job {
    let mut job = new_job(kind, t);
    job.run_at = Some(t + due);
    enqueue(q, job).await
}

async fn claim_in(q: &DynQueue, lanes: &[Lane], at: DateTime<Utc>) -> Option<Claimed> {
    q.claim(lanes, LEASE, at).await.expect("claim")
}

async fn each_kind_waits_in_its_lane(q: DynQueue) {
    let t = now();
    for kind in JobKind::ALL {
        let job = in_lane(&q, kind, t, secs(0)).await;
        let other = match kind.lane() {
            Lane::Internal => Lane::User,
            Lane::User => Lane::Internal,
        };
        assert!(
            claim_in(&q, &[other], t).await.is_none(),
            "{kind} was claimed from the {other} lane"
        );
        let claimed = claim_in(&q, &[kind.lane()], t).await.expect("its lane");
        assert_eq!(claimed.job.id, job.id, "{kind}");
    }
    assert_eq!(JobKind::ExtractText.lane(), Lane::Internal);
    assert_eq!(JobKind::Backup.lane(), Lane::Internal);
    assert_eq!(JobKind::Ping.lane(), Lane::User);
}

async fn claim_takes_the_first_listed_lane_with_a_job_due(q: DynQueue) {
    let t = now();
    // The user job has waited longer: due order alone would take it first.
    let user = in_lane(&q, JobKind::Ping, t, secs(-30)).await;
    let internal = in_lane(&q, JobKind::ExtractText, t, secs(-10)).await;
    let first = claim_in(&q, INTERNAL_FIRST, t).await.expect("due");
    assert_eq!(first.job.id, internal.id);
    let second = claim_in(&q, INTERNAL_FIRST, t).await.expect("due");
    assert_eq!(
        second.job.id, user.id,
        "the next lane once the first is empty"
    );

    let user = in_lane(&q, JobKind::Add, t, secs(-10)).await;
    let internal = in_lane(&q, JobKind::Purge, t, secs(-30)).await;
    assert_eq!(claim_in(&q, USER_FIRST, t).await.unwrap().job.id, user.id);
    assert_eq!(
        claim_in(&q, USER_FIRST, t).await.unwrap().job.id,
        internal.id
    );
    assert!(claim_in(&q, USER_FIRST, t).await.is_none());
}

async fn claim_leaves_lanes_not_listed_alone(q: DynQueue) {
    let t = now();
    let user = in_lane(&q, JobKind::Ping, t, secs(-5)).await;
    assert!(claim_in(&q, &[Lane::Internal], t).await.is_none());
    assert!(claim_in(&q, &[], t).await.is_none(), "no lane, no job");
    let internal = in_lane(&q, JobKind::Backup, t, secs(-5)).await;
    assert_eq!(
        claim_in(&q, &[Lane::Internal], t).await.unwrap().job.id,
        internal.id
    );
    assert!(claim_in(&q, &[Lane::Internal], t).await.is_none());
    assert_eq!(
        claim_in(&q, &[Lane::User], t).await.unwrap().job.id,
        user.id
    );
    // A job due later stays put in its lane.
    in_lane(&q, JobKind::Reindex, t, secs(60)).await;
    assert!(claim_in(&q, INTERNAL_FIRST, t).await.is_none());
}

async fn each_lane_is_claimed_in_due_order(q: DynQueue) {
    let t = now();
    let a = in_lane(&q, JobKind::ExtractText, t, secs(-10)).await;
    let b = in_lane(&q, JobKind::Purge, t, secs(-30)).await;
    let c = in_lane(&q, JobKind::Ping, t, secs(-20)).await;
    let d = in_lane(&q, JobKind::Add, t, secs(-40)).await;
    let e = in_lane(&q, JobKind::Backup, t, secs(-20)).await;
    let mut internal = Vec::new();
    while let Some(claimed) = claim_in(&q, &[Lane::Internal], t).await {
        internal.push(claimed.job.id);
    }
    assert_eq!(internal, [b.id, e.id, a.id]);
    let mut user = Vec::new();
    while let Some(claimed) = claim_in(&q, &[Lane::User], t).await {
        user.push(claimed.job.id);
    }
    assert_eq!(user, [d.id, c.id]);
}

/// The case: a key's backlog, all due before the upload's text
/// extraction, does not stand in front of it.
async fn a_backlog_in_one_lane_does_not_delay_the_other(q: DynQueue) {
    let t = now();
    let mut backlog = Vec::new();
    for i in 0..300 {
        backlog.push(in_lane(&q, JobKind::Ping, t, secs(-600 + i)).await.id);
    }
    let extract = in_lane(&q, JobKind::ExtractText, t, secs(0)).await;
    let started = Instant::now();
    let claimed = claim_in(&q, INTERNAL_FIRST, t).await.expect("due");
    assert_eq!(claimed.job.id, extract.id);
    // One ordered index scan per lane, not a walk over the other's backlog.
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    // And the other way round: a backlog of the service's own jobs does
    // not stand in front of a client's job.
    let internal = (0..300).map(|i| in_lane(&q, JobKind::ExtractText, t, secs(-900 + i)));
    futures::future::join_all(internal).await;
    let user = claim_in(&q, USER_FIRST, t).await.expect("due");
    assert_eq!(user.job.id, backlog[0], "the user lane's oldest");
}

async fn a_job_comes_back_to_its_own_lane(q: DynQueue) {
    let t = now();
    let job = in_lane(&q, JobKind::ExtractText, t, secs(0)).await;
    // An expired lease.
    let first = claim_in(&q, &[Lane::Internal], t).await.expect("due");
    let later = t + secs(31);
    assert!(claim_in(&q, &[Lane::User], later).await.is_none());
    let second = claim_in(&q, &[Lane::Internal], later)
        .await
        .expect("lease over");
    assert_eq!(second.job.id, job.id);
    assert_ne!(second.token, first.token);
    // A renewed lease keeps it out of both lanes.
    assert!(q.renew(job.id, second.token, LEASE, later).await.unwrap());
    assert!(
        claim_in(&q, INTERNAL_FIRST, later + secs(20))
            .await
            .is_none()
    );
    // A release.
    assert!(q.release(job.id, second.token, later).await.unwrap());
    assert!(claim_in(&q, &[Lane::User], later).await.is_none());
    let third = claim_in(&q, &[Lane::Internal], later)
        .await
        .expect("released");
    // A retry after a failure.
    let at = later + secs(5);
    let retry = Outcome::Retry {
        error: "again".into(),
        at,
    };
    assert!(q.finish(job.id, third.token, &retry, later).await.unwrap());
    assert!(claim_in(&q, &[Lane::User], at).await.is_none());
    let fourth = claim_in(&q, &[Lane::Internal], at)
        .await
        .expect("retry due");
    // A dead job retried through the API.
    let dead = Outcome::Dead("boom".into());
    assert!(q.finish(job.id, fourth.token, &dead, at).await.unwrap());
    q.retry(job.id, at).await.expect("retry");
    assert!(claim_in(&q, &[Lane::User], at).await.is_none());
    let fifth = claim_in(&q, &[Lane::Internal], at).await.expect("retried");
    assert_eq!(fifth.job.id, job.id);
}

async fn a_scheduled_tick_waits_in_its_kinds_lane(q: DynQueue) {
    let t = now();
    let purge = new_job(JobKind::Purge, t);
    q.enqueue_tick("purge", t, purge.clone()).await.unwrap();
    let ping = new_job(JobKind::Ping, t);
    q.enqueue_tick("ping", t, ping.clone()).await.unwrap();
    assert_eq!(
        claim_in(&q, &[Lane::Internal], t).await.unwrap().job.id,
        purge.id
    );
    assert_eq!(
        claim_in(&q, &[Lane::User], t).await.unwrap().job.id,
        ping.id
    );
}

// The per-owner cap.

fn quota(owner: Uuid, limit: u32) -> Quota {
    Quota { owner, limit }
}

async fn enqueue_within(q: &DynQueue, quota: Quota, at: DateTime<Utc>) -> Option<Job> {
    let job = new_job(JobKind::Ping, at);
    let stored = q.enqueue_within(job.clone(), quota).await.expect("enqueue");
    if let Some(stored) = &stored {
        assert_eq!(*stored, job);
        assert_eq!(get(q, job.id).await, job);
    }
    stored
}

async fn count(q: &DynQueue) -> usize {
    list_all(
        q,
        JobListQuery {
            limit: 100,
            ..Default::default()
        },
    )
    .await
    .len()
}

async fn enqueue_within_stops_at_the_owners_limit(q: DynQueue) {
    let t = now();
    let (alice, bob) = (Uuid::now_v7(), Uuid::now_v7());
    // Jobs without an owner (the service's, the master key's) do not count.
    for _ in 0..5 {
        enqueue(&q, new_job(JobKind::ExtractText, t)).await;
    }
    for i in 0..3 {
        assert!(
            enqueue_within(&q, quota(alice, 3), t).await.is_some(),
            "job {i}"
        );
    }
    assert_eq!(enqueue_within(&q, quota(alice, 3), t).await, None);
    assert_eq!(count(&q).await, 8, "a refused job left a record");
    // Another owner has a count of its own; a larger limit lets more in.
    assert!(enqueue_within(&q, quota(bob, 1), t).await.is_some());
    assert_eq!(enqueue_within(&q, quota(bob, 1), t).await, None);
    assert!(enqueue_within(&q, quota(alice, 4), t).await.is_some());
    assert_eq!(enqueue_within(&q, quota(alice, 4), t).await, None);
    assert_eq!(count(&q).await, 10);
}

async fn only_finished_jobs_free_an_owners_quota(q: DynQueue) {
    let t = now();
    let owner = Uuid::now_v7();
    let limit = quota(owner, 2);
    enqueue_within(&q, limit, t).await.expect("first");
    enqueue_within(&q, limit, t).await.expect("second");
    assert_eq!(enqueue_within(&q, limit, t).await, None);

    // Running counts.
    let running = claim_in(&q, &[Lane::User], t).await.expect("due");
    assert_eq!(enqueue_within(&q, limit, t).await, None, "running");
    // Failed with a retry due counts.
    let retry = Outcome::Retry {
        error: "x".into(),
        at: t + secs(60),
    };
    let failed = running.job.id;
    assert!(q.finish(failed, running.token, &retry, t).await.unwrap());
    assert_eq!(enqueue_within(&q, limit, t).await, None, "failed");
    // Succeeded frees one place.
    let later = t + secs(60);
    let again = claim_in(&q, &[Lane::User], later).await.expect("due");
    let outcome = Outcome::Succeeded(json!("pong"));
    assert!(
        q.finish(again.job.id, again.token, &outcome, later)
            .await
            .unwrap()
    );
    enqueue_within(&q, limit, later)
        .await
        .expect("a place freed");
    assert_eq!(enqueue_within(&q, limit, later).await, None);
    // Dead frees one too; a retry of it counts again (an admin's choice, so
    // it is not refused even at the limit).
    let mut dead_id = None;
    while let Some(claimed) = claim_in(&q, &[Lane::User], later).await {
        let dead = Outcome::Dead("boom".into());
        assert!(
            q.finish(claimed.job.id, claimed.token, &dead, later)
                .await
                .unwrap()
        );
        dead_id = Some(claimed.job.id);
    }
    let dead_id = dead_id.expect("two jobs were due");
    assert!(enqueue_within(&q, limit, later).await.is_some());
    assert!(enqueue_within(&q, limit, later).await.is_some());
    assert_eq!(enqueue_within(&q, limit, later).await, None);
    q.retry(dead_id, later).await.expect("retry");
    assert_eq!(enqueue_within(&q, limit, later).await, None);
    // Purging finished jobs changes nothing.
    q.purge(later + secs(1)).await.unwrap();
    assert_eq!(enqueue_within(&q, limit, later).await, None);
}

async fn enqueue_within_is_exact_under_concurrent_callers(q: DynQueue) {
    let t = now();
    let owner = Uuid::now_v7();
    let calls = (0..24).map(|_| {
        let q = q.clone();
        tokio::spawn(async move {
            q.enqueue_within(new_job(JobKind::Add, t), quota(owner, 5))
                .await
                .expect("enqueue")
        })
    });
    let stored = futures::future::join_all(calls)
        .await
        .into_iter()
        .filter(|r| r.as_ref().expect("task").is_some())
        .count();
    assert_eq!(stored, 5);
    assert_eq!(count(&q).await, 5);
}

async fn enqueue_within_wakes_a_waiting_worker(q: DynQueue) {
    drain(q.wakeup()).await;
    let stored = enqueue_within(&q, quota(Uuid::now_v7(), 1), now()).await;
    assert!(stored.is_some());
    assert!(woken(q.wakeup()).await);
}
