use reqwest::{Method, StatusCode, multipart};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::common::{S3Server, TestApp, assert_problem};

/// Deterministic bytes that are not all alike (so ranges are checkable).
fn bytes(n: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// The path of the bytes of the attachment `meta` describes.
fn content_path(meta: &Value) -> String {
    format!(
        "/api/v1/attachments/{}/content",
        meta["id"].as_str().unwrap()
    )
}

async fn note(app: &TestApp) -> String {
    app.create_note(json!({"title": "with files"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn upload_raw(
    app: &TestApp,
    note: &str,
    name: &str,
    ct: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    app.request(Method::POST, &format!("/api/v1/notes/{note}/attachments"))
        .query(&[("filename", name)])
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn raw_upload_and_download_round_trip() {
    let app = TestApp::spawn().await;
    let note = note(&app).await;
    let data = bytes(3 * 1024 * 1024 + 17);
    let res = upload_raw(
        &app,
        &note,
        "data.bin",
        "application/octet-stream",
        data.clone(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let meta: Value = res.json().await.unwrap();
    assert_eq!(meta["note_id"], note);
    assert_eq!(meta["filename"], "data.bin");
    assert_eq!(meta["size"], data.len());
    assert_eq!(meta["sha256"], hex::encode(Sha256::digest(&data)));
    assert_eq!(
        location,
        format!("/api/v1/attachments/{}", meta["id"].as_str().unwrap())
    );

    let (_, got) = app.get_json(&location).await;
    assert_eq!(got, meta);
    let (_, list) = app
        .get_json(&format!("/api/v1/notes/{note}/attachments"))
        .await;
    assert_eq!(list, json!([meta]));

    let res = app
        .get(&format!("{location}/content"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let h = res.headers().clone();
    assert_eq!(h["content-length"], data.len().to_string().as_str());
    assert_eq!(h["content-type"], "application/octet-stream");
    assert_eq!(
        h["etag"],
        format!("\"{}\"", meta["sha256"].as_str().unwrap()).as_str()
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["accept-ranges"], "bytes");
    assert!(
        h["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=\"data.bin\"")
    );
    assert!(
        res.bytes().await.unwrap() == data,
        "downloaded bytes differ"
    );
    assert_eq!(app.db.stored_objects(), 1);
}

#[tokio::test]
async fn multipart_upload_and_filename_tricks() {
    let app = TestApp::spawn().await;
    let note = note(&app).await;
    let form = multipart::Form::new()
        .text("comment", "ignored field before the file")
        .part(
            "file",
            multipart::Part::bytes(b"hello".to_vec())
                .file_name("../../etc/passwd")
                .mime_str("text/plain")
                .unwrap(),
        );
    let res = app
        .request(Method::POST, &format!("/api/v1/notes/{note}/attachments"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let meta: Value = res.json().await.unwrap();
    assert_eq!(meta["filename"], "passwd");
    assert_eq!(meta["content_type"], "text/plain");
    for (raw, expected) in [
        ("/abs/x.txt", "x.txt"),
        ("a\u{0}b\r\nc.txt", "abc.txt"),
        ("..", "attachment"),
        // Issue 21: bidi controls are dropped, so `\u{202e}gnp.exe` no
        // longer shows as `exe.png`.
        ("\u{202e}gnp.exe", "gnp.exe"),
        (
            "report\u{2067}txt.\u{2069}\u{200f}\u{61c}exe",
            "reporttxt.exe",
        ),
    ] {
        let res = upload_raw(&app, &note, raw, "text/plain", b"x".to_vec()).await;
        assert_eq!(res.status(), StatusCode::CREATED);
        assert_eq!(res.json::<Value>().await.unwrap()["filename"], expected);
    }
    // In a multipart upload too, and in the download's Content-Disposition.
    let form = multipart::Form::new().part(
        "file",
        multipart::Part::bytes(b"MZ".to_vec()).file_name("invoice\u{202e}fdp.exe"),
    );
    let res = app
        .request(Method::POST, &format!("/api/v1/notes/{note}/attachments"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let meta: Value = res.json().await.unwrap();
    assert_eq!(meta["filename"], "invoicefdp.exe");
    let res = app.get(&content_path(&meta)).send().await.unwrap();
    let disposition = res.headers()["content-disposition"].to_str().unwrap();
    assert!(
        !disposition.to_lowercase().contains("%e2%80%ae"),
        "{disposition}"
    );
    let long = "n".repeat(5000);
    let res = upload_raw(&app, &note, &long, "text/plain", b"x".to_vec()).await;
    assert_eq!(
        res.json::<Value>().await.unwrap()["filename"]
            .as_str()
            .unwrap()
            .len(),
        255
    );
    // Nothing escaped the storage area: every object is under the blob root.
    assert_eq!(app.db.stored_objects(), 8);
}

#[tokio::test]
async fn ranges_and_conditional_requests() {
    let app = TestApp::spawn().await;
    let note = note(&app).await;
    let data = bytes(1000);
    let meta: Value = upload_raw(
        &app,
        &note,
        "r.bin",
        "application/octet-stream",
        data.clone(),
    )
    .await
    .json()
    .await
    .unwrap();
    let url = content_path(&meta);
    let get = |range: &'static str| app.get(&url).header("range", range).send();

    let res = get("bytes=10-19").await.unwrap();
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(res.headers()["content-range"], "bytes 10-19/1000");
    assert_eq!(res.headers()["content-length"], "10");
    assert_eq!(res.bytes().await.unwrap(), &data[10..20]);
    let res = get("bytes=-5").await.unwrap();
    assert_eq!(res.headers()["content-range"], "bytes 995-999/1000");
    assert_eq!(res.bytes().await.unwrap(), &data[995..]);
    let res = get("bytes=990-").await.unwrap();
    assert_eq!(res.bytes().await.unwrap(), &data[990..]);
    let res = get("bytes=1000-").await.unwrap();
    assert_eq!(res.headers()["content-range"], "bytes */1000");
    assert_problem(res, StatusCode::RANGE_NOT_SATISFIABLE).await;
    let res = get("bytes=0-1,5-6").await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let sha = meta["sha256"].as_str().unwrap();
    // Issue 21: weak comparison (RFC 9110 §13.1.2): a weak tag and a list
    // that holds the tag match too; before, only the exact strong tag did.
    for tag in [
        format!("\"{sha}\""),
        format!("W/\"{sha}\""),
        format!("\"{}\", W/\"{sha}\"", "0".repeat(64)),
        "*".to_owned(),
    ] {
        let res = app
            .get(&url)
            .header("if-none-match", &tag)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED, "{tag}");
        assert_eq!(res.headers()["etag"], format!("\"{sha}\"").as_str());
    }
    let res = app
        .get(&url)
        .header(
            "if-none-match",
            format!("\"{}\", W/\"other\"", "0".repeat(64)),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn oversized_uploads_are_413_and_leave_nothing() {
    let app = TestApp::spawn_with(|c| c.storage.max_upload_bytes = 1024 * 1024).await;
    let note = note(&app).await;
    // Declared length.
    let res = upload_raw(
        &app,
        &note,
        "big.bin",
        "application/octet-stream",
        bytes(2 * 1024 * 1024),
    )
    .await;
    assert_problem(res, StatusCode::PAYLOAD_TOO_LARGE).await;
    // Chunked: found out while streaming, after parts may have been written.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = bytes(12 * 1024 * 1024)
        .chunks(64 * 1024)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let res = app
        .request(
            Method::POST,
            &format!("/api/v1/notes/{note}/attachments?filename=big.bin"),
        )
        .header("content-type", "application/octet-stream")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_problem(res, StatusCode::PAYLOAD_TOO_LARGE).await;
    // Multipart, too.
    let form = multipart::Form::new().part(
        "file",
        multipart::Part::bytes(bytes(3 * 1024 * 1024)).file_name("m.bin"),
    );
    let res = app
        .request(Method::POST, &format!("/api/v1/notes/{note}/attachments"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_problem(res, StatusCode::PAYLOAD_TOO_LARGE).await;
    let (_, list) = app
        .get_json(&format!("/api/v1/notes/{note}/attachments"))
        .await;
    assert_eq!(list, json!([]));
    assert_eq!(
        app.db.stored_objects(),
        0,
        "an aborted upload left an object behind"
    );
}

#[tokio::test]
async fn concurrent_uploads_to_one_note() {
    let app = TestApp::spawn().await;
    let note = note(&app).await;
    let uploads = (0..8).map(|i| {
        let data = bytes(200_000 + i * 1000);
        let name = format!("f{i}.bin");
        let app = &app;
        let note = &note;
        async move {
            let res = upload_raw(app, note, &name, "application/octet-stream", data.clone()).await;
            assert_eq!(res.status(), StatusCode::CREATED);
            let meta: Value = res.json().await.unwrap();
            (meta, data)
        }
    });
    let done = futures::future::join_all(uploads).await;
    let (_, list) = app
        .get_json(&format!("/api/v1/notes/{note}/attachments"))
        .await;
    assert_eq!(list.as_array().unwrap().len(), 8);
    for (meta, data) in done {
        let url = content_path(&meta);
        assert!(app.get(&url).send().await.unwrap().bytes().await.unwrap() == data);
    }
    assert_eq!(app.db.stored_objects(), 8);
}

#[tokio::test]
async fn deleting_an_attachment_or_its_note_removes_the_objects() {
    let app = TestApp::spawn().await;
    let note = note(&app).await;
    let a: Value = upload_raw(&app, &note, "a.txt", "text/plain", b"alpha".to_vec())
        .await
        .json()
        .await
        .unwrap();
    upload_raw(&app, &note, "b.txt", "text/plain", b"beta".to_vec()).await;
    upload_raw(&app, &note, "c.bin", "application/octet-stream", bytes(10)).await;
    assert_eq!(app.db.stored_objects(), 3);

    let id = a["id"].as_str().unwrap();
    let res = app
        .request(Method::DELETE, &format!("/api/v1/attachments/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.db.stored_objects(), 2);
    assert_problem(
        app.get(&format!("/api/v1/attachments/{id}"))
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    let res = app
        .request(Method::DELETE, &format!("/api/v1/attachments/{id}"))
        .send()
        .await
        .unwrap();
    assert_problem(res, StatusCode::NOT_FOUND).await;

    // A deleted note waits in the trash with its files; deleted for good,
    // they go too.
    let res = app
        .request(Method::DELETE, &format!("/api/v1/notes/{note}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.db.stored_objects(), 2);
    let res = app
        .request(Method::DELETE, &format!("/api/v1/trash/{note}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.db.stored_objects(), 0);
}

#[tokio::test]
async fn text_attachments_become_searchable() {
    let app = TestApp::spawn().await;
    let note = note(&app).await;
    let search = |q: &'static str| {
        let path = format!("/api/v1/search?q={q}");
        let app = &app;
        async move { app.get_json(&path).await }
    };
    assert_eq!(search("quokka").await.1["total"], 0);
    let a: Value = upload_raw(
        &app,
        &note,
        "zoo.md",
        "text/markdown",
        "# Zoo\nThe Quokka lives on Rottnest.".into(),
    )
    .await
    .json()
    .await
    .unwrap();
    upload_raw(
        &app,
        &note,
        "blob.bin",
        "application/octet-stream",
        b"wombat".to_vec(),
    )
    .await;
    // Text arrives through an extract_text job, queued by the upload.
    let (_, jobs) = app.get_json("/api/v1/jobs?kind=extract_text").await;
    let jobs = jobs["items"].as_array().unwrap().clone();
    assert_eq!(jobs.len(), 1, "one text attachment, one job: {jobs:?}");
    assert_eq!(jobs[0]["args"]["attachment_id"], a["id"]);
    let job = app.finished(jobs[0]["id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let (_, hits) = search("quokka").await;
    assert_eq!(hits["total"], 1);
    assert_eq!(hits["hits"][0]["id"], note);
    // Binary files are not extracted.
    assert_eq!(search("wombat").await.1["total"], 0);
    // Editing the note keeps its attachments searchable.
    let res = app
        .request(Method::PATCH, &format!("/api/v1/notes/{note}"))
        .json(&json!({"body": "now with a body"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(search("rottnest").await.1["total"], 1);
    // Title hits still outrank attachment hits.
    app.create_note(json!({"title": "Quokka facts"})).await;
    let (_, hits) = search("quokka").await;
    assert_eq!(hits["hits"][0]["title"], "Quokka facts");
    // Deleting the attachment takes its text out of the index.
    app.request(
        Method::DELETE,
        &format!("/api/v1/attachments/{}", a["id"].as_str().unwrap()),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(search("rottnest").await.1["total"], 0);
}

#[tokio::test]
async fn bad_upload_requests() {
    let app = TestApp::spawn().await;
    let note = note(&app).await;
    let res = upload_raw(
        &app,
        "0190a000-0000-7000-8000-000000000000",
        "x",
        "text/plain",
        b"x".to_vec(),
    )
    .await;
    assert_problem(res, StatusCode::NOT_FOUND).await;
    let res = upload_raw(&app, "not-a-uuid", "x", "text/plain", b"x".to_vec()).await;
    assert_problem(res, StatusCode::NOT_FOUND).await;
    // Raw upload without a filename.
    let res = app
        .request(Method::POST, &format!("/api/v1/notes/{note}/attachments"))
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .unwrap();
    let p = assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(p["errors"][0]["field"], "filename");
    // Multipart without a `file` field.
    let form = multipart::Form::new().text("other", "x");
    let res = app
        .request(Method::POST, &format!("/api/v1/notes/{note}/attachments"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    // A broken multipart body.
    let res = app
        .request(Method::POST, &format!("/api/v1/notes/{note}/attachments"))
        .header("content-type", "multipart/form-data; boundary=XYZ")
        .body("--XYZ\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nunterminated")
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error(), "{}", res.status());
    // Content types are reduced to their essence, and garbage to octet-stream.
    for (sent, stored) in [
        ("Text/HTML; charset=\"x\"; evil=1", "text/html"),
        ("not a type", "application/octet-stream"),
    ] {
        let res = upload_raw(&app, &note, "x", sent, b"<b>".to_vec()).await;
        assert_eq!(res.json::<Value>().await.unwrap()["content_type"], stored);
    }
    for path in [
        "/api/v1/attachments/nope",
        "/api/v1/attachments/0190a000-0000-7000-8000-000000000000/content",
    ] {
        assert_problem(app.get(path).send().await.unwrap(), StatusCode::NOT_FOUND).await;
    }
    assert_eq!(app.db.stored_objects(), 2);
}

/// The storage server goes away and comes back: readiness and uploads say
/// 503 meanwhile, and nothing stored before is lost.
#[tokio::test]
async fn storage_outage_is_503_and_recovers() {
    let mut s3 = S3Server::start();
    let app = TestApp::spawn_with(|c| s3.apply(c)).await;
    let note = note(&app).await;
    let data = bytes(100_000);
    let before: Value = upload_raw(
        &app,
        &note,
        "kept.bin",
        "application/octet-stream",
        data.clone(),
    )
    .await
    .json()
    .await
    .unwrap();

    s3.stop();
    let ready = app.wait_ready(StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(ready["checks"]["storage"], "unavailable", "{ready}");
    assert!(
        !ready.to_string().contains("127.0.0.1"),
        "internals leaked: {ready}"
    );
    assert_eq!(ready["checks"]["database"], "ok");
    let res = upload_raw(
        &app,
        &note,
        "during.bin",
        "application/octet-stream",
        bytes(1000),
    )
    .await;
    let p = assert_problem(res, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(
        !p["detail"].as_str().unwrap().contains("127.0.0.1"),
        "internals leaked: {p}"
    );
    let url = content_path(&before);
    assert_problem(
        app.get(&url).send().await.unwrap(),
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    // The failed upload left no row.
    let (_, list) = app
        .get_json(&format!("/api/v1/notes/{note}/attachments"))
        .await;
    assert_eq!(list.as_array().unwrap().len(), 1);

    s3.resume();
    app.wait_ready(StatusCode::OK).await;
    let res = upload_raw(
        &app,
        &note,
        "after.bin",
        "application/octet-stream",
        bytes(1000),
    )
    .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert!(app.get(&url).send().await.unwrap().bytes().await.unwrap() == data);
    assert_eq!(s3.object_count(), 2);
}

/// Defect 8: a note's attachments come a page at a time, with
/// `Link: rel="next"` while more follow, each exactly once, in upload order.
#[tokio::test]
async fn a_notes_attachments_are_listed_a_page_at_a_time() {
    let app = TestApp::spawn().await;
    let note = note(&app).await;
    let mut uploaded = Vec::new();
    for i in 0..5 {
        let res = upload_raw(
            &app,
            &note,
            &format!("f{i}.bin"),
            "application/octet-stream",
            bytes(10),
        )
        .await;
        let v: Value = res.json().await.unwrap();
        uploaded.push(v["id"].as_str().unwrap().to_owned());
    }
    let mut path = format!("/api/v1/notes/{note}/attachments?limit=2");
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let res = app.get(&path).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let link = res
            .headers()
            .get("link")
            .map(|l| l.to_str().unwrap().to_owned());
        let page: Vec<Value> = res.json().await.unwrap();
        assert!(page.len() <= 2);
        pages += 1;
        seen.extend(page.iter().map(|a| a["id"].as_str().unwrap().to_owned()));
        match link {
            Some(l) => {
                assert!(l.ends_with("; rel=\"next\""), "{l}");
                path = l
                    .trim_start_matches('<')
                    .split('>')
                    .next()
                    .unwrap()
                    .to_owned();
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, uploaded);
    for bad in ["limit=0", "limit=1001", "after=../../etc", "limit=x"] {
        let res = app
            .get(&format!("/api/v1/notes/{note}/attachments?{bad}"))
            .send()
            .await
            .unwrap();
        assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
}

/// How an upload reaches the server in the matrix below.
#[derive(Debug, Clone, Copy)]
enum Shape {
    Raw,
    /// multipart/form-data; `after_fields` puts other fields before the file.
    Multipart {
        after_fields: bool,
    },
}

/// Sends `data` as `shape`, with a `Content-Length` or chunked.
async fn upload_as(
    app: &TestApp,
    note: &str,
    data: &[u8],
    shape: Shape,
    with_length: bool,
) -> reqwest::Response {
    let path = format!("/api/v1/notes/{note}/attachments");
    // Chunked bodies arrive in uneven pieces, as from a socket.
    let chunked = |data: Vec<u8>| {
        let pieces: Vec<Result<Vec<u8>, std::io::Error>> = data
            .chunks(37 * 1024 + 11)
            .map(|c| Ok(c.to_vec()))
            .collect();
        reqwest::Body::wrap_stream(futures::stream::iter(pieces))
    };
    match shape {
        Shape::Raw => {
            let body = if with_length {
                reqwest::Body::from(data.to_vec())
            } else {
                chunked(data.to_vec())
            };
            app.request(Method::POST, &path)
                .query(&[("filename", "matrix.bin")])
                .header("content-type", "application/octet-stream")
                .body(body)
                .send()
                .await
                .unwrap()
        }
        Shape::Multipart { after_fields } => {
            let part = if with_length {
                multipart::Part::bytes(data.to_vec())
            } else {
                multipart::Part::stream(chunked(data.to_vec()))
            };
            let mut form = multipart::Form::new();
            if after_fields {
                form = form
                    .text("title", "a field before the file")
                    .text("notes", "x".repeat(10_000));
            }
            let form = form.part(
                "file",
                part.file_name("matrix.bin")
                    .mime_str("application/octet-stream")
                    .unwrap(),
            );
            app.request(Method::POST, &path)
                .multipart(form)
                .send()
                .await
                .unwrap()
        }
    }
}

/// The everyday path at the sizes people use: every size, as multipart
/// (file first or after other fields) and as a raw body, with and without
/// `Content-Length`, answers 201 and downloads byte for byte, with the
/// sha256 as its ETag; one byte over the limit is 413 and leaves nothing.
#[tokio::test]
async fn uploads_of_every_size_and_shape_round_trip() {
    const LIMIT: u64 = 12 * 1024 * 1024 + 7;
    let app = TestApp::spawn_with(|c| c.storage.max_upload_bytes = LIMIT).await;
    let note = note(&app).await;
    let sizes = [
        0,
        1,
        64 * 1024 - 1,
        64 * 1024,
        64 * 1024 + 1,
        1024 * 1024,
        10 * 1024 * 1024,
        LIMIT as usize,
    ];
    let shapes = [
        Shape::Raw,
        Shape::Multipart {
            after_fields: false,
        },
        Shape::Multipart { after_fields: true },
    ];
    let mut uploaded = 0;
    for size in sizes {
        let data = bytes(size);
        let sha = hex::encode(Sha256::digest(&data));
        for shape in shapes {
            for with_length in [true, false] {
                let case = format!("{size} B, {shape:?}, content-length: {with_length}");
                let res = upload_as(&app, &note, &data, shape, with_length).await;
                let status = res.status();
                let body = res.text().await.unwrap();
                assert_eq!(status, StatusCode::CREATED, "{case}: {body}");
                let meta: Value = serde_json::from_str(&body).unwrap();
                assert_eq!(meta["size"], size, "{case}");
                assert_eq!(meta["sha256"], sha, "{case}");
                assert_eq!(meta["filename"], "matrix.bin", "{case}");
                let res = app.get(&content_path(&meta)).send().await.unwrap();
                assert_eq!(res.status(), StatusCode::OK, "{case}");
                assert_eq!(
                    res.headers()["etag"],
                    format!("\"{sha}\"").as_str(),
                    "{case}"
                );
                let got = res.bytes().await.unwrap();
                assert!(got.as_ref() == data.as_slice(), "{case}: bytes differ");
                uploaded += 1;
            }
        }
    }
    let over = bytes(LIMIT as usize + 1);
    for shape in shapes {
        for with_length in [true, false] {
            let res = upload_as(&app, &note, &over, shape, with_length).await;
            assert_problem(res, StatusCode::PAYLOAD_TOO_LARGE).await;
        }
    }
    let (_, list) = app
        .get_json(&format!("/api/v1/notes/{note}/attachments?limit=1000"))
        .await;
    assert_eq!(list.as_array().unwrap().len(), uploaded);
    assert_eq!(
        app.db.stored_objects(),
        uploaded,
        "a refused upload left an object behind"
    );
}
