//! Issue 25, the trash: a deleted note leaves every read until it is
//! restored (same id, version, attachments, history) or deleted for good.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{TestApp, assert_problem, doc_line};

async fn send(app: &TestApp, method: Method, path: &str) -> reqwest::Response {
    app.request(method, path).send().await.unwrap()
}

async fn trash_items(app: &TestApp) -> Vec<Value> {
    let (status, page) = app.get_json("/api/v1/trash").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["items"].as_array().unwrap().clone()
}

async fn search_total(app: &TestApp, q: &str) -> u64 {
    let (_, found) = app
        .get_json(&format!("/api/v1/search?q={q}&facets=tags"))
        .await;
    found["total"].as_u64().unwrap()
}

#[tokio::test]
async fn a_deleted_note_leaves_every_read_and_comes_back_whole() {
    let app = TestApp::production().await;
    let note = app
        .create_note(
            json!({"title": "Wombat burrows", "body": "cubic droppings", "tags": ["marsupial"]}),
        )
        .await;
    let id = note["id"].as_str().unwrap();
    let res = app
        .request(Method::PATCH, &format!("/api/v1/notes/{id}"))
        .json(&json!({"body": "cubic droppings, famously"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = app
        .request(
            Method::POST,
            &format!("/api/v1/notes/{id}/attachments?filename=map.txt"),
        )
        .header("content-type", "text/plain")
        .body("burrow map")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let attachment: Value = res.json().await.unwrap();
    let att = attachment["id"].as_str().unwrap();
    assert_eq!(search_total(&app, "wombat").await, 1);

    let res = send(&app, Method::DELETE, &format!("/api/v1/notes/{id}")).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    // Gone from get, lists, search, facets, attachments and history.
    for path in [
        format!("/api/v1/notes/{id}"),
        format!("/api/v1/notes/{id}/attachments"),
        format!("/api/v1/attachments/{att}"),
        format!("/api/v1/attachments/{att}/content"),
        format!("/api/v1/notes/{id}/revisions"),
    ] {
        assert_problem(send(&app, Method::GET, &path).await, StatusCode::NOT_FOUND).await;
    }
    let (_, listed) = app.get_json("/api/v1/notes").await;
    assert!(listed["items"].as_array().unwrap().is_empty(), "{listed}");
    let (_, tagged) = app.get_json("/api/v1/notes?tag=marsupial").await;
    assert!(tagged["items"].as_array().unwrap().is_empty());
    assert_eq!(search_total(&app, "wombat").await, 0);
    // Not changeable while trashed, and not deletable twice.
    let res = app
        .request(Method::PATCH, &format!("/api/v1/notes/{id}"))
        .json(&json!({"title": "x"}))
        .send()
        .await
        .unwrap();
    assert_problem(res, StatusCode::NOT_FOUND).await;
    assert_problem(
        send(&app, Method::DELETE, &format!("/api/v1/notes/{id}")).await,
        StatusCode::NOT_FOUND,
    )
    .await;

    // In the trash, with when and by whom.
    let items = trash_items(&app).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], id);
    assert_eq!(items[0]["deleted_by"], "master");
    assert!(items[0]["deleted_at"].is_string());
    assert_eq!(items[0]["version"], 2);

    // Restored: same id, version, attachments and history, searchable.
    let res = send(&app, Method::POST, &format!("/api/v1/trash/{id}/restore")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let back: Value = res.json().await.unwrap();
    assert_eq!(
        (back["id"].as_str(), back["version"].as_i64()),
        (Some(id), Some(2))
    );
    assert_eq!(back["body"], "cubic droppings, famously");
    assert_eq!(search_total(&app, "wombat").await, 1);
    let res = send(
        &app,
        Method::GET,
        &format!("/api/v1/attachments/{att}/content"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.text().await.unwrap(), "burrow map");
    let (_, history) = app.get_json(&format!("/api/v1/notes/{id}/revisions")).await;
    assert_eq!(history["items"].as_array().unwrap().len(), 1);
    assert!(trash_items(&app).await.is_empty());
    assert_problem(
        send(&app, Method::POST, &format!("/api/v1/trash/{id}/restore")).await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn deleting_for_good_removes_rows_revisions_and_objects() {
    let app = TestApp::production().await;
    let mk = |title: &str| json!({"title": title});
    let keep = app.create_note(mk("keep")).await;
    let a = app.create_note(mk("a")).await;
    let b = app.create_note(mk("b")).await;
    for n in [&a, &b] {
        let id = n["id"].as_str().unwrap();
        let res = app
            .request(
                Method::POST,
                &format!("/api/v1/notes/{id}/attachments?filename=f.bin"),
            )
            .header("content-type", "application/octet-stream")
            .body(vec![7u8; 1000])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        send(&app, Method::DELETE, &format!("/api/v1/notes/{id}")).await;
    }
    assert_eq!(app.db.stored_objects(), 2, "trashed files are kept");
    let a_id = a["id"].as_str().unwrap();
    let res = send(&app, Method::DELETE, &format!("/api/v1/trash/{a_id}")).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.db.stored_objects(), 1);
    assert_problem(
        send(&app, Method::POST, &format!("/api/v1/trash/{a_id}/restore")).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    // A note outside the trash is not deleted through it.
    let keep_id = keep["id"].as_str().unwrap();
    assert_problem(
        send(&app, Method::DELETE, &format!("/api/v1/trash/{keep_id}")).await,
        StatusCode::NOT_FOUND,
    )
    .await;

    // Emptying the trash needs the admin scope.
    let (_, writer) = app.key(&["read", "write"]).await;
    let res = app
        .client
        .delete(format!("{}/api/v1/trash", app.base))
        .bearer_auth(&writer)
        .send()
        .await
        .unwrap();
    assert_problem(res, StatusCode::FORBIDDEN).await;
    assert_eq!(trash_items(&app).await.len(), 1);
    let res = send(&app, Method::DELETE, "/api/v1/trash").await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert!(trash_items(&app).await.is_empty());
    assert_eq!(app.db.stored_objects(), 0);
    assert_eq!(app.count_notes().await, 1);

    // `permanent=true` skips the trash, for the admin scope only.
    let res = app
        .client
        .delete(format!(
            "{}/api/v1/notes/{keep_id}?permanent=true",
            app.base
        ))
        .bearer_auth(&writer)
        .send()
        .await
        .unwrap();
    assert_problem(res, StatusCode::FORBIDDEN).await;
    let res = send(
        &app,
        Method::DELETE,
        &format!("/api/v1/notes/{keep_id}?permanent=true"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert!(trash_items(&app).await.is_empty());
    assert_eq!(app.count_notes().await, 0);
    let res = send(&app, Method::DELETE, "/api/v1/notes/x?permanent=maybe").await;
    assert!(
        matches!(res.status().as_u16(), 404 | 422),
        "{}",
        res.status()
    );
}

/// An ingest that names a trashed note's external id brings it back (same
/// id) and updates it; even unchanged, it comes back.
#[tokio::test]
async fn an_ingest_of_a_trashed_external_id_restores_it() {
    let app = TestApp::production().await;
    let line = |body: &str| doc_line("doc-1", body);
    assert_eq!(app.ingest_ndjson(line("v1")).await.status(), StatusCode::OK);
    let (_, page) = app.get_json("/api/v1/notes").await;
    let id = page["items"][0]["id"].as_str().unwrap().to_owned();
    send(&app, Method::DELETE, &format!("/api/v1/notes/{id}")).await;
    // A new note cannot take the external id a trashed one holds.
    let res = app
        .post_json(
            "/api/v1/notes",
            &json!({"title": "other", "external_id": "doc-1"}),
        )
        .await;
    assert_problem(res, StatusCode::CONFLICT).await;

    let res = app.ingest_ndjson(line("v1")).await;
    let report: Value = res.json().await.unwrap();
    assert_eq!(report["created"], 0, "{report}");
    let (status, back) = app.get_json(&format!("/api/v1/notes/{id}")).await;
    assert_eq!(status, StatusCode::OK, "unchanged, but back: {back}");
    assert_eq!(search_total(&app, "doc").await, 1);

    send(&app, Method::DELETE, &format!("/api/v1/notes/{id}")).await;
    let res = app.ingest_ndjson(line("v2")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let (_, back) = app.get_json(&format!("/api/v1/notes/{id}")).await;
    assert_eq!(back["body"], "v2");
    assert!(trash_items(&app).await.is_empty());
}

#[tokio::test]
async fn purge_empties_the_trash_after_its_retention() {
    let app = TestApp::spawn_with(|c| {
        c.jobs.trash_retention_days = 1;
        c.jobs.job_poll_ms = 50;
    })
    .await;
    let old = app.create_note(json!({"title": "old"})).await;
    let fresh = app.create_note(json!({"title": "fresh"})).await;
    for n in [&old, &fresh] {
        send(
            &app,
            Method::DELETE,
            &format!("/api/v1/notes/{}", n["id"].as_str().unwrap()),
        )
        .await;
    }
    let job = app.enqueue("purge", json!({})).await;
    let done = app.finished(job["id"].as_str().unwrap()).await;
    assert_eq!(done["result"]["trash"], 0, "nothing is a day old: {done}");
    assert_eq!(trash_items(&app).await.len(), 2);
    let (n, _) = app
        .state
        .store()
        .purge_trash(Some(chrono::Utc::now() + chrono::Duration::seconds(1)), 1)
        .await
        .unwrap();
    assert_eq!(n, 1, "one at a time, oldest first");
    let left = trash_items(&app).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["title"], "fresh");
}

#[tokio::test]
async fn the_trash_pages_and_refuses_bad_input() {
    let app = TestApp::spawn().await;
    for i in 0..5 {
        let n = app.create_note(json!({"title": format!("n{i}")})).await;
        send(
            &app,
            Method::DELETE,
            &format!("/api/v1/notes/{}", n["id"].as_str().unwrap()),
        )
        .await;
    }
    let (_, page) = app.get_json("/api/v1/trash?limit=2").await;
    let titles: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["n4", "n3"], "most recently deleted first");
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, next) = app
        .get_json(&format!("/api/v1/trash?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(next["items"][0]["title"], "n2");
    for path in [
        "/api/v1/trash?limit=0",
        "/api/v1/trash?limit=101",
        "/api/v1/trash?cursor=%27%3B--",
    ] {
        assert_problem(
            send(&app, Method::GET, path).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    for (method, path) in [
        (Method::POST, "/api/v1/trash/not-a-uuid/restore"),
        (Method::DELETE, "/api/v1/trash/..%2F..%2Fetc"),
        (
            Method::POST,
            "/api/v1/trash/00000000-0000-0000-0000-000000000000/restore",
        ),
    ] {
        assert_problem(send(&app, method, path).await, StatusCode::NOT_FOUND).await;
    }
    assert_eq!(
        send(&app, Method::PUT, "/api/v1/trash").await.status(),
        StatusCode::METHOD_NOT_ALLOWED
    );
}

/// Two replicas on one database (SQLite and PostgreSQL alike): trash on A,
/// restore on B, and A's search follows both.
#[tokio::test]
async fn trash_on_one_replica_and_restore_on_another() {
    let db = crate::common::TestDb::new().await;
    let a = TestApp::spawn_on(&db, |_| {}).await;
    let b = TestApp::spawn_on(&db, |_| {}).await;
    let note = a.create_note(json!({"title": "quokka selfie"})).await;
    let id = note["id"].as_str().unwrap();
    let res = send(&a, Method::DELETE, &format!("/api/v1/notes/{id}")).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(search_total(&a, "quokka").await, 0);
    let res = send(&b, Method::POST, &format!("/api/v1/trash/{id}/restore")).await;
    assert_eq!(res.status(), StatusCode::OK);
    // A follows B's restore within its follow interval (at once on
    // PostgreSQL, by LISTEN; within its 1 s poll on SQLite).
    let started = std::time::Instant::now();
    while search_total(&a, "quokka").await != 1 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "replica A never saw the restore"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
