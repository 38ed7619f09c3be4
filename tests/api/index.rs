//! The search index beside the store: rebuilt when lost or damaged, never
//! serving a partial build, and read-your-writes within and across replicas.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{TestApp, TestDb};

/// Notes holding the word `q` exactly (`w42` is not completed to `w420`).
async fn total(app: &TestApp, q: &str) -> u64 {
    let (status, res) = app
        .get_json(&format!("/api/v1/search?q={q}&limit=100&prefix_last=false"))
        .await;
    assert_eq!(status, StatusCode::OK, "{res}");
    res["total"].as_u64().unwrap()
}

/// A database holding `n` notes, every one with the word "common" and a
/// word of its own (`w<i>`).
async fn seeded_db(n: usize) -> (TestDb, Arc<tempfile::TempDir>) {
    let db = TestDb::new().await;
    let app = TestApp::spawn_on(&db, |_| {}).await;
    let batch: String = (0..n)
        .map(|i| {
            format!(
                "{}\n",
                // Some bulk per note, so a rebuild of a few thousand lasts
                // long enough to be seen (not only on a slow machine).
                json!({"title": format!("note {i}"), "body": format!("common w{i} text {}", "filler words ".repeat(60))})
            )
        })
        .collect();
    let res = app.ingest_ndjson(batch).await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "{}",
        res.text().await.unwrap()
    );
    assert_eq!(total(&app, "common").await, n as u64);
    let index_dir = app.index_dir.clone();
    app.shutdown().await;
    (db, index_dir)
}

/// The build directories under the index directory.
/// Deletes the note titled `title` through the API.
async fn delete_titled(app: &TestApp, title: &str) {
    let (_, list) = app.get_json("/api/v1/notes?limit=100").await;
    let victim = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["title"] == title)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app
        .request(Method::DELETE, &format!("/api/v1/notes/{victim}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
}

fn builds(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

/// Polls readiness and search until the app serves, checking on the way
/// that it never answers from a partial index and is not ready before it
/// can answer. Returns the readiness bodies seen.
async fn watch_rebuild(app: &TestApp, n: u64) -> Vec<Value> {
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (ready, body) = app.get_json("/readyz").await;
        let (status, res) = app.get_json("/api/v1/search?q=common&limit=1").await;
        if ready == StatusCode::OK {
            assert_eq!(body["checks"]["search"], "ok", "{body}");
            assert_eq!(status, StatusCode::OK, "ready, but search answers {res}");
        }
        match status {
            StatusCode::OK => {
                assert_eq!(res["total"], n, "a search answered from a partial index");
                if ready == StatusCode::OK {
                    break;
                }
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(ready, StatusCode::SERVICE_UNAVAILABLE, "{body}");
                let check = body["checks"]["search"].as_str().unwrap();
                assert!(
                    check.starts_with("rebuilding") || check == "starting",
                    "{body}"
                );
                seen.push(body);
            }
            other => panic!("search answered {other}: {res}"),
        }
        assert!(Instant::now() < deadline, "never became ready");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    seen
}

#[tokio::test]
async fn a_lost_index_is_rebuilt_from_the_store_and_not_ready_until_then() {
    let n = 3000;
    let (db, dir) = seeded_db(n).await;
    for build in builds(dir.path()) {
        std::fs::remove_dir_all(build).unwrap();
    }
    let app = TestApp::spawn_with_index(&db, dir.clone(), |_| {}).await;
    let seen = watch_rebuild(&app, n as u64).await;
    // 3,000 notes take long enough to build that readiness is seen saying so.
    assert!(!seen.is_empty(), "never saw the rebuild");
    assert_eq!(total(&app, "w1234").await, 1);
    assert_eq!(builds(dir.path()).len(), 1);
    // Liveness never depended on the index.
    let (status, _) = app.get_json("/healthz").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_damaged_index_file_is_detected_and_the_index_rebuilt() {
    let n = 2000;
    let (db, dir) = seeded_db(n).await;
    let before = builds(dir.path());
    assert_eq!(before.len(), 1);
    // Flip bytes in the middle of the largest file of the build.
    let victim = std::fs::read_dir(&before[0])
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .max_by_key(|p| p.metadata().unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(&victim).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 16] {
        *b ^= 0xA5;
    }
    std::fs::write(&victim, bytes).unwrap();

    let app = TestApp::spawn_with_index(&db, dir.clone(), |_| {}).await;
    watch_rebuild(&app, n as u64).await;
    let after = builds(dir.path());
    assert_eq!(after.len(), 1);
    assert_ne!(after, before, "the damaged build was replaced");
    assert_eq!(total(&app, "w42").await, 1);
}

#[tokio::test]
async fn a_restart_catches_up_with_what_was_written_meanwhile() {
    let (db, dir) = seeded_db(10).await;
    // Another replica writes while this one is down.
    let other = TestApp::spawn_on(&db, |_| {}).await;
    other
        .create_note(json!({"title": "written while down", "body": "pelican"}))
        .await;
    delete_titled(&other, "note 3").await;
    other.shutdown().await;

    let before = builds(dir.path());
    let app = TestApp::spawn_with_index(&db, dir.clone(), |_| {}).await;
    app.wait_searchable().await;
    assert_eq!(total(&app, "pelican").await, 1);
    assert_eq!(total(&app, "w3").await, 0);
    assert_eq!(total(&app, "common").await, 9);
    assert_eq!(builds(dir.path()), before, "caught up, not rebuilt");
}

/// A replica down for longer than the feed keeps its events missed
/// deletions it can no longer read: it rebuilds from the notes instead of
/// catching up (and serving a note that is gone).
#[tokio::test]
async fn a_restart_behind_the_pruned_events_rebuilds() {
    let (db, dir) = seeded_db(10).await;
    let other = TestApp::spawn_on(&db, |_| {}).await;
    delete_titled(&other, "note 4").await;
    // The deletion is pruned as if the retention had passed.
    let pruned = other
        .state
        .store()
        .prune_changes(chrono::Utc::now() + chrono::Duration::seconds(1), 100)
        .await
        .unwrap();
    assert_eq!(pruned, 1);
    other.shutdown().await;

    let before = builds(dir.path());
    let app = TestApp::spawn_with_index(&db, dir.clone(), |_| {}).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while builds(dir.path()) == before || !app.state.index().unwrap().status().serving {
        assert!(Instant::now() < deadline, "never rebuilt");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Rebuilt from the notes: the deleted one is gone, the rest are there.
    let deadline = Instant::now() + Duration::from_secs(30);
    while total(&app, "common").await != 9 {
        assert!(Instant::now() < deadline, "the rebuild never served");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(total(&app, "w4").await, 0);
}

/// Every write that has returned is found by a search that starts after it,
/// on the process that wrote it and on another replica of the database.
#[tokio::test]
async fn read_your_writes_within_and_across_replicas() {
    let db = TestDb::new().await;
    let a = Arc::new(TestApp::spawn_on(&db, |_| {}).await);
    let b = Arc::new(TestApp::spawn_on(&db, |_| {}).await);
    let writes = 40;
    let returned = Arc::new(AtomicUsize::new(0));

    let writer = {
        let (a, b, returned) = (a.clone(), b.clone(), returned.clone());
        tokio::spawn(async move {
            for i in 0..writes {
                let app = if i % 2 == 0 { &a } else { &b };
                app.create_note(
                    json!({"title": format!("ryw {i}"), "body": format!("marker{i}x")}),
                )
                .await;
                returned.store(i + 1, Ordering::SeqCst);
            }
        })
    };
    let searcher = {
        let (a, b, returned) = (a.clone(), b.clone(), returned.clone());
        tokio::spawn(async move {
            let mut checked = 0;
            loop {
                let done = returned.load(Ordering::SeqCst);
                if done == 0 {
                    tokio::task::yield_now().await;
                    continue;
                }
                let i = done - 1;
                // The replica that did not write it.
                let app = if i % 2 == 0 { &b } else { &a };
                assert_eq!(total(app, &format!("marker{i}x")).await, 1, "write {i}");
                checked += 1;
                if done == writes {
                    return checked;
                }
            }
        })
    };
    writer.await.unwrap();
    let checked = searcher.await.unwrap();
    assert!(checked >= 1);
    // And every write is found on both, once.
    for app in [&a, &b] {
        assert_eq!(total(app, "ryw").await, writes as u64);
    }
}

#[tokio::test]
async fn updates_and_deletes_reach_the_other_replica() {
    let db = TestDb::new().await;
    let a = TestApp::spawn_on(&db, |_| {}).await;
    let b = TestApp::spawn_on(&db, |_| {}).await;
    let note = a
        .create_note(json!({"title": "shifting", "body": "walrus"}))
        .await;
    let id = note["id"].as_str().unwrap();
    assert_eq!(total(&b, "walrus").await, 1);
    let res = a
        .request(Method::PATCH, &format!("/api/v1/notes/{id}"))
        .json(&json!({"body": "narwhal"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(total(&b, "walrus").await, 0);
    assert_eq!(total(&b, "narwhal").await, 1);
    assert_eq!(total(&b, "shifting").await, 1, "updated, not duplicated");
    let res = a
        .request(Method::DELETE, &format!("/api/v1/notes/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(total(&b, "narwhal").await, 0);
    assert_eq!(total(&a, "narwhal").await, 0);
}

#[tokio::test]
async fn reindex_rebuilds_every_replica_while_the_old_index_serves() {
    let db = TestDb::new().await;
    let a = TestApp::spawn_on(&db, |_| {}).await;
    let b = TestApp::spawn_on(&db, |_| {}).await;
    a.create_note(json!({"title": "before", "body": "ibis"}))
        .await;
    let builds_a = builds(a.index_dir.path());
    let builds_b = builds(b.index_dir.path());
    let job = a.enqueue("reindex", json!({})).await;
    a.finished(job["id"].as_str().unwrap()).await;
    // Searches keep answering during the rebuild, and writes stay searchable.
    b.create_note(json!({"title": "during", "body": "ibis"}))
        .await;
    assert_eq!(total(&a, "ibis").await, 2);
    assert_eq!(total(&b, "ibis").await, 2);
    let deadline = Instant::now() + Duration::from_secs(30);
    for (app, old) in [(&a, builds_a), (&b, builds_b)] {
        while builds(app.index_dir.path()) == old {
            assert!(Instant::now() < deadline, "no rebuild");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        while app
            .state
            .index()
            .as_ref()
            .unwrap()
            .status()
            .rebuilding
            .is_some()
        {
            assert!(Instant::now() < deadline, "rebuild never ended");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(total(app, "ibis").await, 2);
    }
}

#[tokio::test]
async fn two_processes_cannot_share_an_index_directory() {
    let db = TestDb::new().await;
    let a = TestApp::spawn_on(&db, |_| {}).await;
    let mut config = notes_api::config::Config::defaults();
    db.apply(&mut config);
    config.index.index_dir = Some(a.index_dir.path().to_path_buf());
    let config = config.resolve().unwrap();
    let err = match notes_api::server::open_api(config).await {
        Ok(_) => panic!("a second process took the same index directory"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("NOTES_INDEX_DIR"), "{err}");
}

/// On PostgreSQL a replica hears of another's writes (LISTEN/NOTIFY) and
/// catches up before any search asks it to, well within its 1 s poll.
#[tokio::test]
async fn replicas_on_postgres_follow_writes_without_being_asked() {
    let db = TestDb::new().await;
    let a = TestApp::spawn_on(&db, |_| {}).await;
    if a.state.store().backend() != "postgres" {
        return;
    }
    let b = TestApp::spawn_on(&db, |_| {}).await;
    let index = b.state.index().cloned().unwrap();
    for i in 0..5 {
        a.create_note(json!({"title": format!("heard {i}")})).await;
        let head = a.state.store().feed_head().await.unwrap().seq;
        let started = Instant::now();
        while index.status().applied < head {
            assert!(
                started.elapsed() < Duration::from_millis(300),
                "write {i} not followed within 300 ms"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// A commit per write (writes one at a time) must not pile up segments:
/// merges keep their number small.
#[tokio::test]
async fn one_note_at_a_time_keeps_the_segment_count_bounded() {
    let app = TestApp::spawn().await;
    for i in 0..120 {
        app.create_note(json!({"title": format!("single {i}")}))
            .await;
    }
    assert_eq!(total(&app, "single").await, 120);
    let index = app.state.index().cloned().unwrap();
    // Merges run in the background after the commits; give them a moment.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // A search refreshes the searchers' view of merged segments.
        app.create_note(json!({"title": "tick"})).await;
        let segments = index.status().segments;
        if segments <= 16 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{segments} segments after 120 commits"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
