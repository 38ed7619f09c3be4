//! Issue #26, export: GET /api/v1/export streams a zip of the notes as an
//! Obsidian vault or as NDJSON, with their attachments, on every backend
//! of the suite's matrix (SQLite + files; PostgreSQL + S3).

use std::{
    collections::{BTreeMap, HashSet},
    io::{Cursor, Read},
};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{S3Server, TestApp};

/// A zip's entries in order, with their bytes.
fn entries(zip: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut archive = zip::ZipArchive::new(Cursor::new(zip)).expect("a valid zip");
    (0..archive.len())
        .map(|i| {
            let mut file = archive.by_index(i).unwrap();
            let mut data = Vec::new();
            file.read_to_end(&mut data).unwrap();
            (file.name().to_owned(), data)
        })
        .collect()
}

async fn export(app: &TestApp, query: &str) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let res = app
        .get(&format!("/api/v1/export{query}"))
        .send()
        .await
        .unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.bytes().await.expect("the whole body").to_vec();
    (status, headers, body)
}

async fn export_ok(app: &TestApp, query: &str) -> Vec<(String, Vec<u8>)> {
    let (status, headers, body) = export(app, query).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers["content-type"], "application/zip");
    entries(&body)
}

/// Splits a note's file into its front matter (read with a YAML parser)
/// and what follows it.
fn front_matter(md: &[u8]) -> (Value, String) {
    let text = std::str::from_utf8(md).expect("UTF-8");
    let rest = text.strip_prefix("---\n").expect("opens with front matter");
    let end = rest.find("\n---\n").expect("front matter is closed");
    let yaml: Value = serde_norway::from_str(&rest[..end + 1]).expect("valid YAML");
    (yaml, rest[end + 5..].to_owned())
}

async fn upload(app: &TestApp, note: &str, name: &str, content_type: &str, data: Vec<u8>) -> Value {
    let res = app
        .request(
            Method::POST,
            &format!("/api/v1/notes/{note}/attachments?filename={name}"),
        )
        .header("content-type", content_type)
        .body(data)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    res.json().await.unwrap()
}

/// Bytes that do not compress, as a photo's.
fn noise(seed: &str, len: usize) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut out = Vec::with_capacity(len);
    let mut block = Sha256::digest(seed.as_bytes());
    while out.len() < len {
        block = Sha256::digest(block);
        out.extend_from_slice(&block);
    }
    out.truncate(len);
    out
}

#[tokio::test]
async fn a_markdown_export_is_a_vault_with_front_matter_and_attachments() {
    let app = TestApp::spawn().await;
    let k8s = app
        .create_note(json!({"title": "Kubernetes upgrade", "body": "Drain nodes first.",
            "tags": ["work", "k8s"], "external_id": "ops-1", "metadata": {"source": "wiki", "n": 3}}))
        .await;
    let trip = app
        .create_note(json!({"title": "Trip", "body": "Packing list"}))
        .await;
    let trip_id = trip["id"].as_str().unwrap();
    let photo = noise("photo", 300_000);
    let pdf = noise("pdf", 50_000);
    upload(&app, trip_id, "beach.png", "image/png", photo.clone()).await;
    upload(&app, trip_id, "Beach.PNG", "image/png", b"second".to_vec()).await;
    upload(&app, trip_id, "tickets.pdf", "application/pdf", pdf.clone()).await;
    upload(
        &app,
        trip_id,
        "notes.txt",
        "text/plain",
        b"bring sunscreen\n".to_vec(),
    )
    .await;
    // A trashed note, and its attachment, are not exported.
    let gone = app.create_note(json!({"title": "Gone"})).await;
    let gone_id = gone["id"].as_str().unwrap();
    upload(
        &app,
        gone_id,
        "old.bin",
        "application/octet-stream",
        b"old".to_vec(),
    )
    .await;
    let res = app
        .request(Method::DELETE, &format!("/api/v1/notes/{gone_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);

    let (status, headers, body) = export(&app, "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/zip");
    let disposition = headers["content-disposition"].to_str().unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"notes-markdown-")
            && disposition.ends_with(".zip\""),
        "{disposition}"
    );
    let files = entries(&body);
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "Kubernetes upgrade.md",
            "Trip.md",
            "attachments/Trip/beach.png",
            "attachments/Trip/Beach (2).PNG",
            "attachments/Trip/tickets.pdf",
            "attachments/Trip/notes.txt",
            "notes-api-export.json",
        ]
    );
    let file = |name: &str| &files.iter().find(|(n, _)| n == name).unwrap().1;

    let (yaml, body) = front_matter(file("Kubernetes upgrade.md"));
    assert_eq!(yaml["id"], k8s["id"]);
    assert!(yaml.get("title").is_none(), "the file name holds the title");
    assert_eq!(yaml["tags"], json!(["work", "k8s"]));
    assert_eq!(yaml["created"], k8s["created_at"]);
    assert_eq!(yaml["updated"], k8s["updated_at"]);
    assert_eq!(yaml["external_id"], "ops-1");
    assert_eq!(yaml["metadata"], json!({"source": "wiki", "n": 3}));
    assert_eq!(body, "Drain nodes first.");

    let (yaml, body) = front_matter(file("Trip.md"));
    assert_eq!(yaml["tags"], json!([]));
    assert!(yaml.get("external_id").is_none() && yaml.get("metadata").is_none());
    assert_eq!(
        body,
        "Packing list\n\n![[attachments/Trip/beach.png]]\n![[attachments/Trip/Beach (2).PNG]]\n\
         [[attachments/Trip/tickets.pdf]]\n[[attachments/Trip/notes.txt]]\n"
    );
    assert_eq!(file("attachments/Trip/beach.png"), &photo);
    assert_eq!(file("attachments/Trip/Beach (2).PNG"), b"second");
    assert_eq!(file("attachments/Trip/tickets.pdf"), &pdf);
    assert_eq!(file("attachments/Trip/notes.txt"), b"bring sunscreen\n");

    let manifest: Value = serde_json::from_slice(file("notes-api-export.json")).unwrap();
    assert_eq!(manifest["format_version"], 1);
    assert_eq!(manifest["format"], "markdown");
    assert_eq!(manifest["notes"], 2);
    assert_eq!(manifest["attachments"], 4);
    assert_eq!(
        manifest["attachment_bytes"],
        photo.len() + 6 + pdf.len() + 16
    );
    assert_eq!(manifest["missing_attachments"], 0);
}

#[tokio::test]
async fn hostile_titles_get_safe_unique_names_that_are_stable_across_exports() {
    let app = TestApp::spawn().await;
    let long = "x".repeat(300);
    let long_emoji = "🍰".repeat(120);
    let titles = [
        "../../etc/passwd",
        "CON",
        "con.txt",
        "a/b\\c:d",
        "emoji 🍰 party",
        long.as_str(),
        long_emoji.as_str(),
        "line\nbreak",
        "---",
        "yes",
        "null",
        ": x",
        "#tag",
        "Same",
        "same",
        "SAME",
        "...",
        "  .hidden",
        "[[wiki]] | pipe",
        "\u{202e}gnp.exe",
        "attachments",
        "notes-api-export.json",
    ];
    let mut ids = BTreeMap::new();
    for (i, title) in titles.iter().enumerate() {
        let body = format!("---\nfoo: bar\n---\nbody {i}\n---\n");
        let note = app
            .create_note(
                json!({"title": title, "body": body, "tags": ["yes", "null", "-"],
                "metadata": {"k": ": x", "#": "---", "yes": null}}),
            )
            .await;
        ids.insert(note["id"].as_str().unwrap().to_owned(), (*title, body));
    }
    let first = export_ok(&app, "").await;
    let (_, _, raw_first) = export(&app, "").await;
    let (_, _, raw_second) = export(&app, "").await;
    assert_eq!(
        raw_first, raw_second,
        "two exports of the same data are the same bytes"
    );

    let mut seen = HashSet::new();
    let mut found = 0;
    for (name, data) in &first {
        if name == "notes-api-export.json" {
            continue;
        }
        found += 1;
        let stem = name.strip_suffix(".md").expect("only notes here");
        assert!(!stem.is_empty() && stem.len() <= 200, "{name:?}");
        assert!(
            !stem.contains([
                '/', '\\', ':', '*', '?', '"', '<', '>', '|', '#', '^', '[', ']'
            ]),
            "{name:?}"
        );
        assert!(!stem.chars().any(char::is_control), "{name:?}");
        assert!(
            !stem.starts_with('.') && !stem.ends_with(['.', ' ']),
            "{name:?}"
        );
        let base = stem.split('.').next().unwrap().to_ascii_lowercase();
        assert!(
            !["con", "nul", "prn", "aux"].contains(&base.as_str()),
            "{name:?}"
        );
        assert!(seen.insert(name.to_lowercase()), "{name:?} is not unique");
        let (yaml, body) = front_matter(data);
        let (title, expected_body) = &ids[yaml["id"].as_str().unwrap()];
        assert_eq!(&body, expected_body, "{name:?}");
        assert_eq!(yaml["tags"], json!(["yes", "null", "-"]));
        assert_eq!(
            yaml["metadata"],
            json!({"k": ": x", "#": "---", "yes": null})
        );
        if stem == *title {
            assert!(yaml.get("title").is_none(), "{name:?}");
        } else {
            assert_eq!(yaml["title"], *title, "{name:?}");
        }
    }
    assert_eq!(found, titles.len());
    for expected in [
        "-..-etc-passwd.md",
        "CON_.md",
        "con_.txt.md",
        "a-b-c-d.md",
        "emoji 🍰 party.md",
        "line break.md",
        "---.md",
        "yes.md",
        "- x.md",
        "-tag.md",
        "Same.md",
        "same (2).md",
        "SAME (3).md",
        "Untitled.md",
        "hidden.md",
        "--wiki-- - pipe.md",
        "gnp.exe.md",
        "attachments.md",
        "notes-api-export.json.md",
    ] {
        assert!(
            first.iter().any(|(n, _)| n == expected),
            "{expected:?} missing from {:?}",
            first.iter().map(|(n, _)| n).collect::<Vec<_>>()
        );
    }
}

#[tokio::test]
async fn an_ndjson_export_is_what_ingest_reads_back() {
    let app = TestApp::spawn().await;
    let batch = [
        json!({"title": "Tomatoes", "body": "They need sun.", "external_id": "garden-1", "tags": ["home"]}),
        json!({"title": "Cheesecake", "body": "A new york classic.", "external_id": "recipes-7",
            "metadata": {"stars": 5}}),
        json!({"title": "Tomatoes", "body": "A second note, same title."}),
    ];
    let lines: String = batch.iter().map(|n| format!("{n}\n")).collect();
    assert_eq!(app.ingest_ndjson(lines).await.status(), StatusCode::OK);
    let (_, page) = app.get_json("/api/v1/notes?limit=10").await;
    let cheesecake = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["title"] == "Cheesecake")
        .unwrap()
        .clone();
    let recipe = noise("recipe", 70_000);
    let meta = upload(
        &app,
        cheesecake["id"].as_str().unwrap(),
        "recipe.pdf",
        "application/pdf",
        recipe.clone(),
    )
    .await;

    let files = export_ok(&app, "?format=ndjson").await;
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    let attachment_path = format!(
        "attachments/{}/recipe.pdf",
        cheesecake["id"].as_str().unwrap()
    );
    assert_eq!(
        names,
        [
            attachment_path.as_str(),
            "notes.ndjson",
            "notes-api-export.json"
        ]
    );
    assert_eq!(files[0].1, recipe);
    let ndjson = std::str::from_utf8(&files[1].1).unwrap();
    let exported: Vec<Value> = ndjson
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(exported.len(), 3);
    let cake = exported
        .iter()
        .find(|n| n["title"] == "Cheesecake")
        .unwrap();
    assert_eq!(cake["id"], cheesecake["id"]);
    assert_eq!(cake["external_id"], "recipes-7");
    assert_eq!(cake["metadata"], json!({"stars": 5}));
    assert_eq!(cake["created_at"], cheesecake["created_at"]);
    assert_eq!(
        cake["attachments"],
        json!([{"path": attachment_path, "filename": "recipe.pdf", "content_type": "application/pdf",
            "size": recipe.len(), "sha256": meta["sha256"]}])
    );
    let manifest: Value = serde_json::from_slice(&files[2].1).unwrap();
    assert_eq!(manifest["format"], "ndjson");
    assert_eq!(
        (manifest["notes"].clone(), manifest["attachments"].clone()),
        (json!(3), json!(1))
    );

    // The file ingests as it is into another deployment.
    let other = TestApp::spawn().await;
    let res = other.ingest_ndjson(ndjson.to_owned()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let report: Value = res.json().await.unwrap();
    assert_eq!(report["created"], 3, "{report}");
    assert_eq!(other.count_notes().await, 3);
}

#[tokio::test]
async fn a_tag_exports_only_its_notes() {
    let app = TestApp::spawn().await;
    app.create_note(json!({"title": "Work one", "tags": ["work"]}))
        .await;
    app.create_note(json!({"title": "Home", "tags": ["home"]}))
        .await;
    app.create_note(json!({"title": "Work two", "tags": ["home", "work"]}))
        .await;
    for query in ["?tag=work", "?tag=WORK&format=markdown"] {
        let files = export_ok(&app, query).await;
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["Work one.md", "Work two.md", "notes-api-export.json"],
            "{query}"
        );
        let manifest: Value = serde_json::from_slice(&files[2].1).unwrap();
        assert_eq!(manifest["tag"], "work");
        assert_eq!(manifest["notes"], 2);
    }
    let (status, headers, _) = export(&app, "?tag=work").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=\"notes-markdown-work-")
    );
    let files = export_ok(&app, "?tag=nothing").await;
    assert_eq!(files.len(), 1, "only the manifest");
}

#[tokio::test]
async fn bad_parameters_methods_and_keys_are_refused_as_problems() {
    let app = TestApp::production().await;
    for query in [
        "?format=pdf",
        "?format=",
        "?tag=",
        "?tag=a%20b",
        "?tag=%C3%A9",
    ] {
        let (status, headers, body) = export(&app, query).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        assert_eq!(
            headers["content-type"], "application/problem+json",
            "{query}"
        );
        let problem: Value = serde_json::from_slice(&body).unwrap();
        assert!(
            !problem["errors"].as_array().unwrap().is_empty(),
            "{query}: {problem}"
        );
    }
    for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
        let res = app
            .request(method.clone(), "/api/v1/export")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(res.headers()["content-type"], "application/problem+json");
    }
    // HEAD answers the GET's headers (and starts no export it keeps running).
    let res = app
        .request(Method::HEAD, "/api/v1/export")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/zip");
    // No key, a made-up key: 401. Every scope includes read, so any real
    // key may export.
    for auth in [None, Some("nk_made_up")] {
        let mut req = app.client.get(format!("{}/api/v1/export", app.base));
        if let Some(key) = auth {
            req = req.bearer_auth(key);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(res.headers()["content-type"], "application/problem+json");
    }
    let (_, read) = app.key(&["read"]).await;
    let res = app
        .client
        .get(format!("{}/api/v1/export", app.base))
        .bearer_auth(&read)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(entries(&res.bytes().await.unwrap()).len(), 1);
}

/// Exports run in slots of their own, held until the last byte: with one
/// slot taken by an export nobody reads, the next is shed with 503 and
/// `Retry-After`, and other requests are served meanwhile. (The attachment
/// is larger than what loopback's socket buffers and the pipe can hold, so
/// the unread export cannot finish on its own.)
#[tokio::test]
async fn an_export_holds_its_slot_until_its_body_is_done() {
    let app = TestApp::spawn_with(|c| c.limits.max_exports = 1).await;
    let note = app.create_note(json!({"title": "big"})).await;
    upload(
        &app,
        note["id"].as_str().unwrap(),
        "big.bin",
        "application/octet-stream",
        noise("big", 32 << 20),
    )
    .await;
    let held = app.get("/api/v1/export").send().await.unwrap();
    assert_eq!(held.status(), StatusCode::OK);
    let (status, headers, _) = export(&app, "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers["retry-after"], "1");
    let (status, _) = app.get_json("/api/v1/notes").await;
    assert_eq!(status, StatusCode::OK);
    // Once the first is read to its end, the slot is free again.
    let first = held.bytes().await.unwrap();
    assert_eq!(entries(&first).len(), 3);
    let mut freed = false;
    for _ in 0..50 {
        if export(&app, "").await.0 == StatusCode::OK {
            freed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(freed, "the slot was never given back");
}

/// A failure after the headers cuts the body off: the client gets an error,
/// never a body that ends as if the zip were complete.
#[tokio::test]
async fn a_failure_mid_stream_cuts_the_body_off() {
    let app = TestApp::spawn().await;
    let first = app.create_note(json!({"title": "first"})).await;
    upload(
        &app,
        first["id"].as_str().unwrap(),
        "big.bin",
        "application/octet-stream",
        noise("big", 24 << 20),
    )
    .await;
    for i in 0..20 {
        app.create_note(json!({"title": format!("later {i}")}))
            .await;
    }
    let mut res = app.get("/api/v1/export").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let chunk = res.chunk().await.unwrap().expect("a first chunk");
    assert!(!chunk.is_empty());
    // The database goes away while the attachment streams: the next notes
    // cannot be read.
    app.state.store().close().await;
    assert_cut_off(&mut res).await;
}

/// Object storage going away part-way is a failure too (a missing object
/// is not: it is listed in the manifest), and it cuts the body off.
#[tokio::test]
async fn a_storage_outage_mid_stream_cuts_the_body_off() {
    let mut s3 = S3Server::start();
    let app = TestApp::spawn_with(|c| s3.apply(c)).await;
    for i in 0..2 {
        let note = app.create_note(json!({"title": format!("note {i}")})).await;
        let data = noise(&format!("att {i}"), 12 << 20);
        upload(
            &app,
            note["id"].as_str().unwrap(),
            "a.bin",
            "application/octet-stream",
            data,
        )
        .await;
    }
    let mut res = app.get("/api/v1/export").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.chunk().await.unwrap().is_some());
    s3.stop();
    assert_cut_off(&mut res).await;
    s3.resume();
}

/// Reads the rest of an answer's body, which must end in an error, not as
/// if complete.
async fn assert_cut_off(res: &mut reqwest::Response) {
    let mut outcome = Ok(());
    loop {
        match res.chunk().await {
            Ok(Some(_)) => continue,
            Ok(None) => break,
            Err(e) => {
                outcome = Err(e);
                break;
            }
        }
    }
    assert!(outcome.is_err(), "the body ended as if complete");
}
