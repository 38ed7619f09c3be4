use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{TestApp, assert_problem};

fn lines(n: usize, f: impl Fn(usize) -> Value) -> String {
    (1..=n).map(|i| format!("{}\n", f(i))).collect()
}

#[tokio::test]
async fn ndjson_batch_creates_then_reports_unchanged_then_updates() {
    let app = TestApp::spawn().await;
    let batch = lines(
        100,
        |i| json!({"title": format!("note {i}"), "external_id": format!("ext-{i}")}),
    );
    let res = app.ingest_ndjson(batch.clone()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let report: Value = res.json().await.unwrap();
    assert_eq!(report["received"], 100);
    assert_eq!(report["created"], 100);
    assert!(report["took_ms"].is_u64());

    // Re-sending the same batch changes nothing.
    let report: Value = app.ingest_ndjson(batch).await.json().await.unwrap();
    assert_eq!(
        (
            report["created"].as_u64(),
            report["updated"].as_u64(),
            report["unchanged"].as_u64()
        ),
        (Some(0), Some(0), Some(100))
    );

    // Change half of them, add some without external id.
    let mut changed = lines(
        50,
        |i| json!({"title": format!("note {i} v2"), "external_id": format!("ext-{i}")}),
    );
    changed.push_str(&lines(3, |i| json!({"title": format!("loose {i}")})));
    let report: Value = app.ingest_ndjson(changed).await.json().await.unwrap();
    assert_eq!(
        (
            report["created"].as_u64(),
            report["updated"].as_u64(),
            report["unchanged"].as_u64()
        ),
        (Some(3), Some(50), Some(0))
    );
    assert_eq!(app.count_notes().await, 103);

    let (_, hits) = app.get_json("/api/v1/search?q=v2").await;
    assert_eq!(hits["total"], 50);
    let id = hits["hits"][0]["id"].as_str().unwrap();
    let (_, note) = app.get_json(&format!("/api/v1/notes/{id}")).await;
    assert_eq!(note["version"], 2);
}

#[tokio::test]
async fn json_array_batch() {
    let app = TestApp::spawn().await;
    let res = app
        .request(Method::POST, "/api/v1/ingest")
        .json(&json!([{"title": "a"}, {"title": "b", "tags": ["X"]}]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let report: Value = res.json().await.unwrap();
    assert_eq!(report["created"], 2);
    let (_, page) = app.get_json("/api/v1/notes?tag=x").await;
    assert_eq!(page["items"][0]["title"], "b");
}

#[tokio::test]
async fn one_bad_line_in_a_thousand_rejects_the_batch_and_names_it() {
    let app = TestApp::spawn().await;
    let batch = lines(1000, |i| {
        if i == 617 {
            json!({"title": "", "body": "x"})
        } else {
            json!({"title": format!("n{i}")})
        }
    });
    let res = app.ingest_ndjson(batch).await;
    let p = assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(p["errors"].as_array().unwrap().len(), 1);
    assert_eq!(p["errors"][0]["line"], 617);
    assert_eq!(p["errors"][0]["field"], "title");
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("nothing was written")
    );
    assert_eq!(app.count_notes().await, 0);
}

#[tokio::test]
async fn bad_utf8_wrong_types_and_garbage_lines_are_all_reported() {
    let app = TestApp::spawn().await;
    let mut body = b"{\"title\":\"ok\"}\n{\"title\":\"bad \xff\xfe utf8\"}\n{\"title\":[1]}\nnot json at all\n".to_vec();
    body.extend_from_slice(b"{\"title\":\"ok2\"}\n\xc3\x28\n");
    let res = app.ingest_ndjson(body).await;
    // Lines that are not JSON make it a 400; every bad line is still named.
    let p = assert_problem(res, StatusCode::BAD_REQUEST).await;
    let lines: Vec<u64> = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [2, 3, 4, 6]);
    assert_eq!(app.count_notes().await, 0);
}

#[tokio::test]
async fn duplicate_external_ids_in_one_batch_are_refused() {
    let app = TestApp::spawn().await;
    let body = "{\"title\":\"a\",\"external_id\":\"x\"}\n{\"title\":\"b\",\"external_id\":\"x\"}\n";
    let p = assert_problem(
        app.ingest_ndjson(body).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(p["errors"][0]["line"], 2);
    assert_eq!(app.count_notes().await, 0);
}

#[tokio::test]
async fn oversized_batches_are_413_whether_declared_or_chunked() {
    let app = TestApp::spawn_with(|c| c.limits.max_ingest_bytes = 64 * 1024).await;
    let body = lines(5000, |i| json!({"title": format!("note number {i}")}));
    assert!(body.len() > 64 * 1024);
    // Declared by Content-Length.
    assert_problem(
        app.ingest_ndjson(body.clone()).await,
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    // Chunked: no length up front, counted while streaming.
    let chunks: Vec<Result<String, std::io::Error>> = body
        .as_bytes()
        .chunks(8192)
        .map(|c| Ok(String::from_utf8_lossy(c).into_owned()))
        .collect();
    let stream = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    assert_problem(
        app.ingest_ndjson(stream).await,
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    assert_eq!(app.count_notes().await, 0);
    // What was staged on disk before the limit went with the refusal.
    let staged = std::fs::read_dir(app.db.dir().join("spool")).unwrap();
    assert_eq!(staged.count(), 0);
}

#[tokio::test]
async fn wrong_media_type_and_bad_array() {
    let app = TestApp::spawn().await;
    let res = app
        .request(Method::POST, "/api/v1/ingest")
        .header("content-type", "text/csv")
        .body("title\nx")
        .send()
        .await
        .unwrap();
    assert_problem(res, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    let res = app
        .request(Method::POST, "/api/v1/ingest")
        .header("content-type", "application/json")
        .body("{\"title\":\"not an array\"}")
        .send()
        .await
        .unwrap();
    let p = assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(
        p["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("array")
    );
    let res = app
        .request(Method::POST, "/api/v1/ingest")
        .header("content-type", "application/json")
        .body("[{\"title\":\"a\"}, {\"title\":")
        .send()
        .await
        .unwrap();
    let p = assert_problem(res, StatusCode::BAD_REQUEST).await;
    assert_eq!(p["errors"][0]["line"], 2);
    assert_eq!(app.count_notes().await, 0);
}

#[tokio::test]
async fn empty_batch_is_fine() {
    let app = TestApp::spawn().await;
    let report: Value = app.ingest_ndjson("").await.json().await.unwrap();
    assert_eq!(report["received"], 0);
}

#[tokio::test]
async fn a_body_cut_off_midway_writes_nothing() {
    let app = TestApp::spawn().await;
    let first = lines(10, |i| json!({"title": format!("n{i}")}));
    let stream = futures::stream::iter(vec![
        Ok::<_, std::io::Error>(first),
        Err(std::io::Error::other("client went away")),
    ]);
    let res = app
        .request(Method::POST, "/api/v1/ingest")
        .header("content-type", "application/x-ndjson")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await;
    // The client sees its own error or a 400; either way nothing is stored.
    if let Ok(res) = res {
        assert!(res.status().is_client_error());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(app.count_notes().await, 0);
}

/// The contract's split, for both formats: text that is not JSON is 400
/// and JSON of the wrong shape 422, each naming its line, and neither
/// writes anything.
#[tokio::test]
async fn a_malformed_batch_is_400_and_a_bad_value_422_with_nothing_written() {
    let app = TestApp::spawn().await;
    let cases: &[(&str, &str, StatusCode, u64, &str)] = &[
        (
            "application/json",
            "[{\"title\":\"a\"},{\"title\":\"b\"",
            StatusCode::BAD_REQUEST,
            2,
            "",
        ),
        (
            "application/json",
            "[{\"title\":\"a\"} {\"title\":\"b\"}]",
            StatusCode::BAD_REQUEST,
            2,
            "",
        ),
        (
            "application/json",
            "[{\"title\":\"a\"},{\"title\":5}]",
            StatusCode::UNPROCESSABLE_ENTITY,
            2,
            "title",
        ),
        (
            "application/json",
            "[{\"title\":\"a\"},{\"title\":\"b\",\"tags\":\"x\"}]",
            StatusCode::UNPROCESSABLE_ENTITY,
            2,
            "tags",
        ),
        (
            "application/x-ndjson",
            "{\"title\":\"a\"}\n{\"title\":\"b\"\n",
            StatusCode::BAD_REQUEST,
            2,
            "",
        ),
        (
            "application/x-ndjson",
            "{\"title\":\"a\"}\n{\"title\":\"b\",\"tags\":[1]}\n",
            StatusCode::UNPROCESSABLE_ENTITY,
            2,
            "tags",
        ),
    ];
    for (ct, body, status, line, field) in cases {
        let res = app
            .request(Method::POST, "/api/v1/ingest")
            .header("content-type", *ct)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let p = assert_problem(res, *status).await;
        assert_eq!(p["errors"][0]["line"], *line, "{body}: {p}");
        assert!(
            p["errors"][0]["field"].as_str().unwrap().starts_with(field),
            "{body}: {p}"
        );
        assert!(
            p["detail"]
                .as_str()
                .unwrap()
                .contains("nothing was written")
        );
    }
    assert_eq!(app.count_notes().await, 0);
}
