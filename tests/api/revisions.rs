//! Issue 25, revisions: every change keeps the state it replaced, with who
//! made it; a client lists, reads, compares and restores them.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{MASTER, TestApp, assert_problem, doc_line};

/// A request with `token` alone (not the app's default one).
fn as_key(app: &TestApp, method: Method, path: &str, token: &str) -> reqwest::RequestBuilder {
    app.client
        .request(method, format!("{}{path}", app.base))
        .bearer_auth(token)
}

async fn patch_as(app: &TestApp, token: &str, id: &str, body: Value) -> Value {
    let res = as_key(app, Method::PATCH, &format!("/api/v1/notes/{id}"), token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "{}",
        res.text().await.unwrap()
    );
    res.json().await.unwrap()
}

async fn revisions(app: &TestApp, id: &str) -> Vec<Value> {
    let (status, page) = app.get_json(&format!("/api/v1/notes/{id}/revisions")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn three_patches_keep_three_revisions_with_their_authors() {
    let app = TestApp::production().await;
    let (alice_id, alice) = app.key(&["read", "write"]).await;
    let (bob_id, bob) = app.key(&["read", "write"]).await;
    let note = app
        .create_note(
            json!({"title": "Plan", "body": "one\ntwo\n", "tags": ["a"], "metadata": {"n": 1}}),
        )
        .await;
    let id = note["id"].as_str().unwrap();
    patch_as(&app, &alice, id, json!({"body": "one\n2\n"})).await;
    patch_as(
        &app,
        &bob,
        id,
        json!({"title": "Plan B", "tags": ["a", "b"]}),
    )
    .await;
    let last = patch_as(&app, &alice, id, json!({"metadata": {"n": 2}})).await;
    assert_eq!(last["version"], 4);

    let items = revisions(&app, id).await;
    let versions: Vec<i64> = items
        .iter()
        .map(|r| r["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, [3, 2, 1], "newest first");
    // Each revision is a version as it was, by whoever made that version.
    assert_eq!(items[2]["changed_by"], "master");
    assert_eq!(items[1]["changed_by"], alice_id.as_str());
    assert_eq!(items[0]["changed_by"], bob_id.as_str());
    assert!(
        items.iter().all(|r| r.get("body").is_none()),
        "no bodies in a listing"
    );
    assert_eq!(items[2]["body_bytes"], 8);

    let (status, v1) = app
        .get_json(&format!("/api/v1/notes/{id}/revisions/1"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v1["body"], "one\ntwo\n");
    assert_eq!(v1["title"], "Plan");
    assert_eq!(v1["metadata"], json!({"n": 1}));
    // The current version reads the same way, with who made it.
    let (status, v4) = app
        .get_json(&format!("/api/v1/notes/{id}/revisions/4"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v4["metadata"], json!({"n": 2}));
    assert_eq!(v4["changed_by"], alice_id.as_str());

    // Diff from version 1 to the current one: the body's lines and the fields.
    let (status, d) = app
        .get_json(&format!("/api/v1/notes/{id}/revisions/1/diff"))
        .await;
    assert_eq!(status, StatusCode::OK, "{d}");
    assert_eq!(
        (d["from_version"].as_i64(), d["to_version"].as_i64()),
        (Some(1), Some(4))
    );
    let body = d["body"].as_str().unwrap();
    assert!(body.contains("-two\n+2\n"), "{body}");
    let fields: Vec<&str> = d["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["title", "tags", "metadata"]);
    let (_, d) = app
        .get_json(&format!("/api/v1/notes/{id}/revisions/2/diff?against=3"))
        .await;
    assert_eq!(d["body"], "", "{d}");
    assert_eq!(d["fields"][0]["field"], "title");

    // Paged by cursor.
    let (_, page) = app
        .get_json(&format!("/api/v1/notes/{id}/revisions?limit=2"))
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, rest) = app
        .get_json(&format!(
            "/api/v1/notes/{id}/revisions?limit=2&cursor={cursor}"
        ))
        .await;
    assert_eq!(rest["items"][0]["version"], 1);
    assert!(rest["next_cursor"].is_null());
}

#[tokio::test]
async fn restoring_a_revision_makes_a_new_version_and_honours_if_match() {
    let app = TestApp::spawn().await;
    let note = app
        .create_note(json!({"title": "Draft", "body": "first words", "external_id": "ext-1"}))
        .await;
    let id = note["id"].as_str().unwrap();
    let dev = "ignored-in-development";
    patch_as(&app, dev, id, json!({"body": "second words"})).await;
    patch_as(
        &app,
        dev,
        id,
        json!({"body": "third words", "title": "Final"}),
    )
    .await;

    // A stale If-Match: refused, nothing changes.
    let res = app
        .request(
            Method::POST,
            &format!("/api/v1/notes/{id}/revisions/1/restore"),
        )
        .header("if-match", "\"2\"")
        .send()
        .await
        .unwrap();
    assert_problem(res, StatusCode::PRECONDITION_FAILED).await;
    let (_, now) = app.get_json(&format!("/api/v1/notes/{id}")).await;
    assert_eq!(now["version"], 3);

    let res = app
        .request(
            Method::POST,
            &format!("/api/v1/notes/{id}/revisions/1/restore"),
        )
        .header("if-match", "\"3\"")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["etag"], "\"4\"");
    let restored: Value = res.json().await.unwrap();
    assert_eq!(restored["version"], 4);
    assert_eq!(restored["body"], "first words");
    assert_eq!(restored["title"], "Draft");
    assert_eq!(restored["external_id"], "ext-1", "the external id stays");
    // The restore is itself recorded: version 3 is now a revision.
    let items = revisions(&app, id).await;
    assert_eq!(items[0]["version"], 3);
    assert_eq!(items[0]["title"], "Final");
    assert_eq!(items[0]["changed_by"], "dev");
    // Searchable as restored.
    let (_, found) = app.get_json("/api/v1/search?q=first").await;
    assert_eq!(found["total"], 1, "{found}");

    // Without If-Match it just applies; restoring the current version is a no-op.
    let res = app
        .request(
            Method::POST,
            &format!("/api/v1/notes/{id}/revisions/3/restore"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = app
        .request(
            Method::POST,
            &format!("/api/v1/notes/{id}/revisions/5/restore"),
        )
        .send()
        .await
        .unwrap();
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["version"], 5, "version 5 is the current one: {v}");
}

/// An ingest that changes a note keeps the old state too.
#[tokio::test]
async fn an_ingest_upsert_keeps_the_replaced_state() {
    let app = TestApp::production().await;
    let line = |body: &str| doc_line("doc-1", body);
    assert_eq!(app.ingest_ndjson(line("v1")).await.status(), StatusCode::OK);
    assert_eq!(app.ingest_ndjson(line("v1")).await.status(), StatusCode::OK);
    assert_eq!(app.ingest_ndjson(line("v2")).await.status(), StatusCode::OK);
    let (_, page) = app.get_json("/api/v1/notes").await;
    let id = page["items"][0]["id"].as_str().unwrap().to_owned();
    let items = revisions(&app, &id).await;
    assert_eq!(
        items.len(),
        1,
        "an unchanged upsert makes no revision: {items:?}"
    );
    let (_, v1) = app
        .get_json(&format!("/api/v1/notes/{id}/revisions/1"))
        .await;
    assert_eq!(v1["body"], "v1");
    assert_eq!(v1["changed_by"], "master");
}

#[tokio::test]
async fn purge_keeps_the_newest_revisions_and_drops_old_ones() {
    let app = TestApp::spawn_with(|c| {
        c.jobs.revisions_keep = 2;
        c.jobs.job_poll_ms = 50;
    })
    .await;
    let note = app.create_note(json!({"title": "t", "body": "0"})).await;
    let id = note["id"].as_str().unwrap();
    for i in 1..=5 {
        patch_as(&app, "dev", id, json!({"body": i.to_string()})).await;
    }
    assert_eq!(revisions(&app, id).await.len(), 5);
    let job = app.enqueue("purge", json!({})).await;
    let done = app.finished(job["id"].as_str().unwrap()).await;
    assert_eq!(done["result"]["revisions"], 3, "{done}");
    let kept: Vec<i64> = revisions(&app, id)
        .await
        .iter()
        .map(|r| r["version"].as_i64().unwrap())
        .collect();
    assert_eq!(kept, [5, 4]);

    // By age: revisions made before the cut-off go, whatever their rank.
    let gone = app
        .state
        .store()
        .prune_revisions(100, Some(chrono::Utc::now() + chrono::Duration::seconds(1)))
        .await
        .unwrap();
    assert_eq!(gone, 2);
    assert!(revisions(&app, id).await.is_empty());
}

#[tokio::test]
async fn bad_versions_are_refused_by_name_and_unknown_ones_are_404() {
    let app = TestApp::production().await;
    let note = app.create_note(json!({"title": "t"})).await;
    let id = note["id"].as_str().unwrap();
    patch_as(&app, MASTER, id, json!({"body": "b"})).await;
    for (path, field) in [
        (format!("/api/v1/notes/{id}/revisions/0"), "version"),
        (format!("/api/v1/notes/{id}/revisions/-1"), "version"),
        (format!("/api/v1/notes/{id}/revisions/abc"), "version"),
        (
            format!("/api/v1/notes/{id}/revisions/99999999999999999999999"),
            "version",
        ),
        (
            format!("/api/v1/notes/{id}/revisions/1/diff?against=0"),
            "against",
        ),
        (
            format!("/api/v1/notes/{id}/revisions/1/diff?against=1e9"),
            "against",
        ),
        (
            format!(
                "/api/v1/notes/{id}/revisions/1/diff?against={}",
                "9".repeat(5000)
            ),
            "against",
        ),
        (format!("/api/v1/notes/{id}/revisions?limit=0"), "limit"),
        (
            format!("/api/v1/notes/{id}/revisions?cursor=%27%20OR%201=1"),
            "cursor",
        ),
    ] {
        let res = app.get(&path).send().await.unwrap();
        let problem = assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(problem["errors"][0]["field"], field, "{path}: {problem}");
    }
    for path in [
        format!("/api/v1/notes/{id}/revisions/7"),
        format!("/api/v1/notes/{id}/revisions/1/diff?against=7"),
        format!("/api/v1/notes/{}/revisions", uuid::Uuid::now_v7()),
        format!("/api/v1/notes/{}/revisions/1", uuid::Uuid::now_v7()),
    ] {
        let res = app.get(&path).send().await.unwrap();
        assert_problem(res, StatusCode::NOT_FOUND).await;
    }
    let res = app
        .request(
            Method::POST,
            &format!("/api/v1/notes/{id}/revisions/7/restore"),
        )
        .send()
        .await
        .unwrap();
    assert_problem(res, StatusCode::NOT_FOUND).await;
    let (_, now) = app.get_json(&format!("/api/v1/notes/{id}")).await;
    assert_eq!(now["version"], 2, "a refused restore changes nothing");

    // A read-only key reads history but cannot restore.
    let (_, reader) = app.key(&["read"]).await;
    let res = as_key(
        &app,
        Method::POST,
        &format!("/api/v1/notes/{id}/revisions/1/restore"),
        &reader,
    )
    .send()
    .await
    .unwrap();
    assert_problem(res, StatusCode::FORBIDDEN).await;
    let res = as_key(
        &app,
        Method::GET,
        &format!("/api/v1/notes/{id}/revisions"),
        &reader,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    // A trashed note's history is out of reach until it comes back, and
    // goes with it when it is deleted for good.
    let res = app
        .request(Method::DELETE, &format!("/api/v1/notes/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = app
        .get(&format!("/api/v1/notes/{id}/revisions/1"))
        .send()
        .await
        .unwrap();
    assert_problem(res, StatusCode::NOT_FOUND).await;
    assert_eq!(app.state.store().count_revisions().await.unwrap(), 1);
    let res = app
        .request(Method::DELETE, &format!("/api/v1/trash/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.state.store().count_revisions().await.unwrap(), 0);
}

/// Two restores racing a PATCH on the same version: exactly one wins, the
/// other gets 412.
#[tokio::test]
async fn a_restore_racing_a_patch_on_the_same_version_loses_cleanly() {
    let app = TestApp::spawn().await;
    let note = app.create_note(json!({"title": "t", "body": "a"})).await;
    let id = note["id"].as_str().unwrap().to_owned();
    patch_as(&app, "dev", &id, json!({"body": "b"})).await;
    let restore = app
        .request(
            Method::POST,
            &format!("/api/v1/notes/{id}/revisions/1/restore"),
        )
        .header("if-match", "\"2\"")
        .send();
    let patch = app
        .request(Method::PATCH, &format!("/api/v1/notes/{id}"))
        .header("if-match", "\"2\"")
        .json(&json!({"body": "c"}))
        .send();
    let (r, p) = tokio::join!(restore, patch);
    let mut statuses = [r.unwrap().status().as_u16(), p.unwrap().status().as_u16()];
    statuses.sort();
    assert_eq!(statuses, [200, 412]);
    let (_, now) = app.get_json(&format!("/api/v1/notes/{id}")).await;
    assert_eq!(now["version"], 3);
    assert_eq!(revisions(&app, &id).await.len(), 2);
}

/// A snapshot written before revisions existed (no revision records, no
/// `revisions` count in its manifest) still restores, with no history.
#[tokio::test]
async fn a_snapshot_from_before_revisions_still_restores() {
    use sha2::{Digest, Sha256};
    let app = TestApp::production().await;
    let note = app.create_note(json!({"title": "old", "body": "v1"})).await;
    let id = note["id"].as_str().unwrap();
    patch_as(&app, MASTER, id, json!({"body": "v2"})).await;
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().display().to_string();
    let created = notes_api::backup::create(app.state.jobs(), &to)
        .await
        .unwrap();
    assert_eq!(created.manifest.counts.revisions, 1);
    let snap = dir.path().join(&created.manifest.snapshot);
    let records = std::fs::read_to_string(snap.join("records.ndjson")).unwrap();
    let old: String = records
        .lines()
        .filter(|l| !l.contains("\"type\":\"revision\""))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(old, records, "the new snapshot carried the revision");
    std::fs::write(snap.join("records.ndjson"), &old).unwrap();
    let manifest_path = snap.join("manifest.json");
    let mut manifest: Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    manifest["counts"]
        .as_object_mut()
        .unwrap()
        .remove("revisions");
    manifest["records_sha256"] = hex::encode(Sha256::digest(old.as_bytes())).into();
    std::fs::write(&manifest_path, serde_json::to_vec(&manifest).unwrap()).unwrap();

    let fresh = TestApp::production().await;
    let restored = notes_api::backup::restore(fresh.state.jobs(), &to)
        .await
        .unwrap();
    assert_eq!(restored.counts.revisions, 0);
    let (_, back) = fresh.get_json(&format!("/api/v1/notes/{id}")).await;
    assert_eq!(
        (back["body"].as_str(), back["version"].as_i64()),
        (Some("v2"), Some(2))
    );
    assert!(revisions(&fresh, id).await.is_empty());
}
