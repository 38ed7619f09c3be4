//! `notes-api worker` as real processes: killed mid-job, stopped with
//! SIGTERM, and two of them sharing 10,000 jobs.

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use chrono::Utc;
use notes_api::queue::{Job, JobKind, JobListQuery, JobStatus, NewJob};
use serde_json::json;

use crate::common::{TestApp, TestDb};

/// A worker process on `db`, with a short lease so a dead worker's job
/// comes back quickly.
pub fn worker(db: &TestDb, workers: usize) -> Child {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    Command::new(env!("CARGO_BIN_EXE_notes-api"))
        .arg("worker")
        .envs(db.env())
        .env("NOTES_LISTEN", format!("127.0.0.1:{port}"))
        .env("NOTES_WORKERS", workers.to_string())
        .env("NOTES_JOB_LEASE", "2")
        .env("NOTES_JOB_POLL_MS", "100")
        .env("NOTES_SHUTDOWN_TIMEOUT", "10")
        .env("NOTES_LOG", "warn")
        // Webhook receivers in the tests listen on loopback.
        .env("NOTES_WEBHOOK_ALLOW_NETWORKS", "127.0.0.0/8")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn notes-api worker")
}

#[tokio::test]
async fn a_job_whose_worker_is_killed_runs_again_after_its_lease() {
    let db = TestDb::new().await;
    let api = TestApp::spawn_on(&db, |c| c.jobs.workers = 0).await;
    let job = api.enqueue("ping", json!({"delay_ms": 3000})).await;
    let id = job["id"].as_str().unwrap().to_owned();

    let mut first = worker(&db, 1);
    api.wait_job(&id, Duration::from_secs(20), |j| j["status"] == "running")
        .await;
    first.kill().unwrap(); // SIGKILL: no chance to release the job
    first.wait().unwrap();

    let mut second = worker(&db, 1);
    let done = api
        .wait_job(&id, Duration::from_secs(30), |j| {
            j["status"] == "succeeded" || j["status"] == "dead"
        })
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"], "pong");
    assert_eq!(done["attempts"], 2, "the killed attempt counts, once");
    second.kill().unwrap();
    second.wait().unwrap();
}

#[tokio::test]
async fn sigterm_lets_a_running_job_finish() {
    let db = TestDb::new().await;
    let api = TestApp::spawn_on(&db, |c| c.jobs.workers = 0).await;
    let job = api.enqueue("ping", json!({"delay_ms": 1500})).await;
    let id = job["id"].as_str().unwrap().to_owned();
    let mut w = worker(&db, 1);
    api.wait_job(&id, Duration::from_secs(20), |j| j["status"] == "running")
        .await;
    let status = Command::new("kill")
        .args(["-TERM", &w.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || w.wait().unwrap())
        .await
        .unwrap();
    assert!(exit.success(), "worker exit: {exit}");
    let (_, done) = api.get_json(&format!("/api/v1/jobs/{id}")).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["attempts"], 1);
}

#[tokio::test]
async fn two_workers_share_ten_thousand_jobs_without_loss_or_repeats() {
    const JOBS: i64 = 10_000;
    let db = TestDb::new().await;
    let api = TestApp::spawn_on(&db, |c| c.jobs.workers = 0).await;
    let q = api.state.queue().clone();
    for chunk in (0..JOBS).collect::<Vec<_>>().chunks(100) {
        let batch = chunk.iter().map(|&i| {
            let job = Job::queued(
                NewJob::new(JobKind::Add, json!({"x": i, "y": 1})),
                3,
                Utc::now(),
            );
            q.enqueue(job)
        });
        for r in futures::future::join_all(batch).await {
            r.unwrap();
        }
    }
    let mut workers = [worker(&db, 4), worker(&db, 4)];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
    loop {
        let waiting = q.queued().await.unwrap();
        let running = q
            .list(&JobListQuery {
                status: Some(JobStatus::Running),
                limit: 1,
                ..Default::default()
            })
            .await
            .unwrap();
        if waiting == 0 && running.items.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{waiting} jobs still waiting"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for w in &mut workers {
        w.kill().unwrap();
        w.wait().unwrap();
    }
    // Every job ran exactly once (a second claim would count a second
    // attempt) and to the right result.
    let mut seen = std::collections::HashSet::new();
    let mut after = None;
    loop {
        let page = q
            .list(&JobListQuery {
                limit: 100,
                after,
                ..Default::default()
            })
            .await
            .unwrap();
        for job in &page.items {
            assert_eq!(job.status, JobStatus::Succeeded, "{job:?}");
            assert_eq!(job.attempts, 1, "ran more than once: {job:?}");
            let x = job.args["x"].as_i64().unwrap();
            assert_eq!(job.result, Some(json!(x + 1)));
            assert!(seen.insert(x), "x={x} listed twice");
        }
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(seen.len() as i64, JOBS, "jobs lost");
}
