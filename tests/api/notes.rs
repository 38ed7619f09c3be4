use std::collections::HashSet;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{TestApp, assert_problem};

#[tokio::test]
async fn create_get_update_delete() {
    let app = TestApp::spawn().await;
    let res = app
        .post_json(
            "/api/v1/notes",
            &json!({"title": "First", "body": "hello", "tags": ["A", "b"], "metadata": {"k": [1, 2]}}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(res.headers()["etag"], "\"1\"");
    let note: Value = res.json().await.unwrap();
    assert_eq!(
        location,
        format!("/api/v1/notes/{}", note["id"].as_str().unwrap())
    );
    assert_eq!(note["tags"], json!(["a", "b"]));
    assert_eq!(note["version"], 1);
    assert_eq!(note["external_id"], Value::Null);
    assert!(note["created_at"].as_str().unwrap().ends_with('Z'));
    // UUIDv7: version nibble is 7.
    assert_eq!(&note["id"].as_str().unwrap()[14..15], "7");

    let (status, got) = app.get_json(&location).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got, note);

    let res = app
        .request(Method::PATCH, &location)
        .json(&json!({"body": "changed", "tags": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["etag"], "\"2\"");
    let updated: Value = res.json().await.unwrap();
    assert_eq!(updated["body"], "changed");
    assert_eq!(updated["title"], "First");
    assert_eq!(updated["tags"], json!([]));
    assert_eq!(updated["version"], 2);
    assert_eq!(updated["created_at"], note["created_at"]);

    let res = app.request(Method::DELETE, &location).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = app.get(&location).send().await.unwrap();
    assert_problem(res, StatusCode::NOT_FOUND).await;
    let res = app.request(Method::DELETE, &location).send().await.unwrap();
    assert_problem(res, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn malformed_and_invalid_bodies() {
    let app = TestApp::spawn().await;
    let post = |body: &'static str, ct: &'static str| {
        app.request(Method::POST, "/api/v1/notes")
            .header("content-type", ct)
            .body(body)
            .send()
    };
    // Malformed JSON → 400.
    for body in [
        "{",
        "{\"title\": }",
        "[1,",
        "{\"title\":\"a\"} trailing",
        "",
    ] {
        assert_problem(
            post(body, "application/json").await.unwrap(),
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    // Wrong types → 422 naming the field.
    let p = assert_problem(
        post("{\"title\": 5}", "application/json").await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(p["errors"][0]["field"], "title");
    let p = assert_problem(
        post("{\"title\": \"t\", \"tags\": \"x\"}", "application/json")
            .await
            .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(p["errors"][0]["field"], "tags");
    let p = assert_problem(
        post("[]", "application/json").await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(p["detail"].is_string());
    // Missing title.
    assert_problem(
        post("{}", "application/json").await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    // Wrong media type.
    assert_problem(
        post("{\"title\":\"t\"}", "text/plain").await.unwrap(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    )
    .await;
    // Rule violations, all reported at once.
    let res = app
        .post_json(
            "/api/v1/notes",
            &json!({"title": "x".repeat(501), "tags": ["no spaces"], "metadata": "not an object"}),
        )
        .await;
    let p = assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    let fields: Vec<&str> = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["title", "tags[0]", "metadata"]);
    // Issue 21: a title of invisible characters is blank, on create, PATCH
    // and ingest alike; before, U+200B or U+FEFF alone was accepted.
    for title in [
        "\u{200b}",
        "\u{feff}",
        " \u{200b}\u{200d}\u{2060}\u{3000} ",
        "\u{202e}\u{ad}",
    ] {
        let res = app
            .post_json("/api/v1/notes", &json!({"title": title}))
            .await;
        let p = assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(p["errors"][0]["field"], "title", "{title:?}");
    }
    let visible = app.create_note(json!({"title": "\u{200b}a\u{feff}"})).await;
    let res = app
        .request(
            Method::PATCH,
            &format!("/api/v1/notes/{}", visible["id"].as_str().unwrap()),
        )
        .json(&json!({"title": "\u{feff}"}))
        .send()
        .await
        .unwrap();
    let p = assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(p["errors"][0]["field"], "title");
    let res = app
        .ingest_ndjson("{\"title\":\"ok\"}\n{\"title\":\"\\u200b\"}\n")
        .await;
    let p = assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(
        (
            p["errors"][0]["line"].as_u64(),
            p["errors"][0]["field"].as_str()
        ),
        (Some(2), Some("title"))
    );
    assert_eq!(
        app.count_notes().await,
        1,
        "only the visible title was kept"
    );
    // Injection-shaped strings are just text.
    let evil = "'); DROP TABLE notes; -- <script>alert(1)</script> ../../etc/passwd %00";
    let note = app
        .create_note(json!({"title": evil, "body": evil, "external_id": evil}))
        .await;
    assert_eq!(note["title"], evil);
    assert_eq!(app.count_notes().await, 2);
}

#[tokio::test]
async fn oversized_bodies_are_413_and_leave_nothing() {
    let app = TestApp::spawn().await;
    // Over the body rule (1 MiB) but under the transport limit: 422.
    let res = app
        .post_json(
            "/api/v1/notes",
            &json!({"title": "t", "body": "b".repeat(1024 * 1024 + 1)}),
        )
        .await;
    let p = assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(p["errors"][0]["field"], "body");
    // Over the transport limit: 413 before parsing.
    let res = app
        .post_json(
            "/api/v1/notes",
            &json!({"title": "t", "body": "b".repeat(5 * 1024 * 1024)}),
        )
        .await;
    assert_problem(res, StatusCode::PAYLOAD_TOO_LARGE).await;
    assert_eq!(app.count_notes().await, 0);
}

#[tokio::test]
async fn unknown_and_malformed_ids_are_404() {
    let app = TestApp::spawn().await;
    for path in [
        "/api/v1/notes/0190a000-0000-7000-8000-000000000000",
        "/api/v1/notes/not-a-uuid",
        "/api/v1/notes/..%2F..%2Fetc%2Fpasswd",
        "/api/v1/notes/%00",
    ] {
        let res = app.get(path).send().await.unwrap();
        assert_problem(res, StatusCode::NOT_FOUND).await;
    }
    let res = app
        .request(Method::PUT, "/api/v1/notes")
        .send()
        .await
        .unwrap();
    let p = assert_problem(res, StatusCode::METHOD_NOT_ALLOWED).await;
    assert!(p["detail"].is_string());
}

#[tokio::test]
async fn external_id_is_unique() {
    let app = TestApp::spawn().await;
    app.create_note(json!({"title": "a", "external_id": "ext-1"}))
        .await;
    let res = app
        .post_json(
            "/api/v1/notes",
            &json!({"title": "b", "external_id": "ext-1"}),
        )
        .await;
    assert_problem(res, StatusCode::CONFLICT).await;
    assert_eq!(app.count_notes().await, 1);
}

#[tokio::test]
async fn etag_and_if_match() {
    let app = TestApp::spawn().await;
    let note = app.create_note(json!({"title": "a"})).await;
    let path = format!("/api/v1/notes/{}", note["id"].as_str().unwrap());

    let res = app
        .get(&path)
        .header("if-none-match", "\"1\"")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);

    let patch = |tag: &'static str, title: &'static str| {
        app.request(Method::PATCH, &path)
            .header("if-match", tag)
            .json(&json!({"title": title}))
            .send()
    };
    let res = patch("\"1\"", "b").await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // A writer still holding version 1 loses.
    let res = patch("\"1\"", "c").await.unwrap();
    let p = assert_problem(res, StatusCode::PRECONDITION_FAILED).await;
    assert!(p["detail"].as_str().unwrap().contains('2'));
    let (_, now) = app.get_json(&path).await;
    assert_eq!(now["title"], "b");
    assert_eq!(now["version"], 2);
    // A patch that changes nothing keeps the version.
    let res = patch("\"2\"", "b").await.unwrap();
    assert_eq!(res.headers()["etag"], "\"2\"");
    // Issue 21: If-Match compares strongly (RFC 9110 §13.1.1), so a weak
    // tag never matches, even the current version's; before, `W/"2"` did.
    for weak in ["W/\"2\"", "W/\"1\", W/\"2\""] {
        let res = patch(weak, "d").await.unwrap();
        assert_problem(res, StatusCode::PRECONDITION_FAILED).await;
    }
    let res = patch("\"1\", \"2\"", "d").await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "a list with the current tag");
    let res = patch("*", "e").await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "* matches a note that exists");
    let (_, now) = app.get_json(&path).await;
    assert_eq!(
        (now["title"].as_str(), now["version"].as_i64()),
        (Some("e"), Some(4))
    );
    // If-None-Match compares weakly and takes lists.
    for tag in ["W/\"4\"", "\"1\", W/\"4\"", "*"] {
        let res = app
            .get(&path)
            .header("if-none-match", tag)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED, "{tag}");
    }
    // Null on a required field.
    let res = app
        .request(Method::PATCH, &path)
        .json(&json!({"title": null}))
        .send()
        .await
        .unwrap();
    assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
}

#[tokio::test]
async fn concurrent_patches_without_if_match_all_apply() {
    let app = TestApp::spawn().await;
    let note = app.create_note(json!({"title": "counter"})).await;
    let path = format!("/api/v1/notes/{}", note["id"].as_str().unwrap());
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            app.request(Method::PATCH, &path)
                .json(&json!({"body": format!("writer {i}")}))
                .send()
        })
        .collect();
    for res in futures::future::join_all(tasks).await {
        assert_eq!(res.unwrap().status(), StatusCode::OK);
    }
    let (_, now) = app.get_json(&path).await;
    assert_eq!(now["version"], 21);
}

#[tokio::test]
async fn list_filters_by_tag_and_validates_params() {
    let app = TestApp::spawn().await;
    for i in 0..5 {
        let tags = if i % 2 == 0 {
            json!(["even"])
        } else {
            json!(["odd"])
        };
        app.create_note(json!({"title": format!("n{i}"), "tags": tags}))
            .await;
    }
    let (_, page) = app.get_json("/api/v1/notes?tag=EVEN").await;
    let titles: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["n4", "n2", "n0"]);
    assert_eq!(page["next_cursor"], Value::Null);
    for bad in [
        "limit=0",
        "limit=101",
        "limit=abc",
        "limit=-1",
        "cursor=zzz",
        "tag=a%20b",
        "tag=",
    ] {
        let res = app
            .get(&format!("/api/v1/notes?{bad}"))
            .send()
            .await
            .unwrap();
        assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
}

#[tokio::test]
async fn cursor_pagination_is_stable_under_concurrent_inserts() {
    let app = TestApp::spawn().await;
    let body: String = (0..250)
        .map(|i| format!("{{\"title\":\"seed {i}\"}}\n"))
        .collect();
    assert_eq!(app.ingest_ndjson(body).await.status(), StatusCode::OK);
    let seeded: HashSet<String> = {
        let store = &app.state.store();
        let page = store
            .list_notes(&notes_api::store::ListQuery {
                tag: None,
                limit: 1000,
                after: None,
            })
            .await
            .unwrap();
        page.items.iter().map(|n| n.id.to_string()).collect()
    };
    assert_eq!(seeded.len(), 250);

    // Writers insert while a reader pages through.
    let writer = {
        let client = app.client.clone();
        let url = format!("{}/api/v1/notes", app.base);
        tokio::spawn(async move {
            for i in 0..100 {
                let res = client
                    .post(&url)
                    .json(&json!({"title": format!("new {i}")}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), StatusCode::CREATED);
            }
        })
    };
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/notes?limit=7&cursor={c}"),
            None => "/api/v1/notes?limit=7".to_owned(),
        };
        let (status, page) = app.get_json(&path).await;
        assert_eq!(status, StatusCode::OK);
        for n in page["items"].as_array().unwrap() {
            seen.push(n["id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
        tokio::task::yield_now().await;
    }
    writer.await.unwrap();
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a note appeared twice");
    for id in &seeded {
        assert!(unique.contains(id), "note {id} was skipped");
    }
}

#[tokio::test]
async fn concurrent_writers_never_see_database_locked() {
    let app = TestApp::spawn().await;
    let mut tasks = Vec::new();
    for w in 0..16 {
        let client = app.client.clone();
        let base = app.base.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                // 16 batches at once meet one ingest slot: a shed batch
                // (503 + Retry-After, nothing written) is sent again, as a
                // client does. What must never come back is "database is
                // locked" or any other failure.
                for attempt in 0.. {
                    let res = if i % 5 == 0 {
                        let body: String = (0..50)
                            .map(|j| format!("{{\"title\":\"w{w} b{i} {j}\"}}\n"))
                            .collect();
                        client
                            .post(format!("{base}/api/v1/ingest"))
                            .header("content-type", "application/x-ndjson")
                            .body(body)
                            .send()
                            .await
                            .unwrap()
                    } else {
                        client
                            .post(format!("{base}/api/v1/notes"))
                            .json(&json!({"title": format!("w{w} n{i}")}))
                            .send()
                            .await
                            .unwrap()
                    };
                    let status = res.status();
                    let text = res.text().await.unwrap();
                    if status == StatusCode::SERVICE_UNAVAILABLE
                        && text.contains("overloaded")
                        && attempt < 30
                    {
                        continue;
                    }
                    assert!(status.is_success(), "{status}: {text}");
                    break;
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // 16 writers × (20 single notes + 5 batches of 50).
    assert_eq!(app.count_notes().await, 16 * (20 + 5 * 50));
}
