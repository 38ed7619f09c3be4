//! Issue #26, import: POST /api/v1/import stages a zip and an `import` job
//! reads it (a Markdown folder, an Obsidian vault, a notes-api export), on
//! every backend of the suite's matrix (SQLite + files; PostgreSQL + S3).

use std::{
    collections::BTreeMap,
    io::{Cursor, Read, Write},
};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::common::{TestApp, assert_problem};

/// A zip of `files` (path, bytes), deflated, as a user's archiver makes it.
pub fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (path, data) in files {
        w.start_file(*path, opts).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

fn entries(zip: &[u8]) -> BTreeMap<String, Vec<u8>> {
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

fn sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Posts the zip; the queued job.
async fn post_import(app: &TestApp, query: &str, zip: Vec<u8>) -> Value {
    let res = app
        .request(Method::POST, &format!("/api/v1/import{query}"))
        .header("content-type", "application/zip")
        .body(zip)
        .send()
        .await
        .unwrap();
    let status = res.status();
    let location = res.headers().get("location").cloned();
    let job: Value = res.json().await.unwrap();
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    assert_eq!(job["kind"], "import");
    assert_eq!(
        location.unwrap().to_str().unwrap(),
        format!("/api/v1/jobs/{}", job["id"].as_str().unwrap())
    );
    job
}

/// Imports the zip and waits for the job; its finished record.
async fn import(app: &TestApp, query: &str, zip: Vec<u8>) -> Value {
    let job = post_import(app, query, zip).await;
    app.finished(job["id"].as_str().unwrap()).await
}

async fn import_ok(app: &TestApp, query: &str, zip: Vec<u8>) -> Value {
    let job = import(app, query, zip).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    job["result"].clone()
}

/// Every note, by title (titles the test makes unique) or, for the two
/// notes of one title, by `metadata.path`.
async fn notes(app: &TestApp) -> Vec<Value> {
    let (status, page) = app.get_json("/api/v1/notes?limit=100").await;
    assert_eq!(status, StatusCode::OK);
    page["items"].as_array().unwrap().clone()
}

fn by_external_id<'a>(notes: &'a [Value], ext: &str) -> &'a Value {
    notes
        .iter()
        .find(|n| n["external_id"] == ext)
        .unwrap_or_else(|| panic!("no note {ext}: {notes:?}"))
}

async fn attachments(app: &TestApp, note: &Value) -> Vec<Value> {
    let (status, list) = app
        .get_json(&format!(
            "/api/v1/notes/{}/attachments",
            note["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    list.as_array().unwrap().clone()
}

/// Bytes that do not compress, as a photo's.
fn noise(seed: &str, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut block = Sha256::digest(seed.as_bytes());
    while out.len() < len {
        block = Sha256::digest(block);
        out.extend_from_slice(&block);
    }
    out.truncate(len);
    out
}

/// A vault as Obsidian leaves one: nested folders, front matter in the
/// shapes it writes, inline and nested tags, embeds with and without
/// folders, two notes of one title, names in other scripts, a file that is
/// not UTF-8, settings, trash and a file nothing embeds.
fn vault(alpha_body: &str) -> (Vec<u8>, BTreeMap<&'static str, Vec<u8>>) {
    let files: BTreeMap<&'static str, Vec<u8>> = [
        ("Projects/img/diagram.png", noise("diagram", 3000)),
        ("Projects/photo.jpg", noise("photo", 5000)),
        ("Papers/paper.pdf", noise("paper", 2000)),
        ("orphan.gif", noise("orphan", 100)),
    ]
    .into_iter()
    .collect();
    let alpha = format!(
        "---\ntags:\n  - Work\n  - project/alpha\naliases: [Alpha, A]\ncreated: 2024-03-01\n\
         updated: 2024-03-02T10:11:12Z\nstatus: draft\n---\n{alpha_body}\n\n\
         ![[diagram.png]] and ![a photo](photo.jpg) and [[paper.pdf|the paper]]\n\
         ```\n#notatag ![[nothing.png]]\n```\n"
    );
    let md: Vec<(&str, Vec<u8>)> = vec![
        ("Projects/Alpha.md", alpha.into_bytes()),
        (
            "Daily/2024/2024-01-01.md",
            b"# New year\nResolutions #goals/2024 and see http://x.org/#frag\n".to_vec(),
        ),
        (
            "Projects/Same.md",
            b"---\ntitle: Same\n---\nin projects".to_vec(),
        ),
        (
            "Archive/Same.md",
            b"---\ntitle: Same\n---\nin the archive".to_vec(),
        ),
        (
            "\u{65e5}\u{672c}\u{8a9e}/\u{30ce}\u{30fc}\u{30c8}.md",
            "日本語の本文 #メモ #ok".as_bytes().to_vec(),
        ),
        ("Ünïcödé/café crème.md", b"---\ntags: a, b\n---\nx".to_vec()),
        ("Empty tags.md", b"---\ntags:\naliases:\n---\n".to_vec()),
        ("bad.md", b"valid start \xff\xfe then not UTF-8".to_vec()),
        (".obsidian/app.json", b"{}".to_vec()),
        (".trash/old.md", b"old".to_vec()),
        (".hidden.md", b"hidden".to_vec()),
    ];
    let mut all: Vec<(&str, &[u8])> = md.iter().map(|(p, d)| (*p, d.as_slice())).collect();
    all.extend(files.iter().map(|(p, d)| (*p, d.as_slice())));
    (zip_of(&all), files)
}

#[tokio::test]
async fn a_vault_imports_with_every_file_accounted_for_and_again_changes_nothing() {
    let app = TestApp::spawn().await;
    let (zip, files) = vault("Alpha body #inline/Nested");
    let job = import(&app, "?tag=imported", zip).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let result = job["result"].clone();
    // The admin UI's job page draws the progress.
    let html = app
        .get(&format!("/admin/jobs/{}", job["id"].as_str().unwrap()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains(r#"<progress value="8" max="8""#) && html.contains("· 7 created"),
        "{html}"
    );
    assert_eq!(result["format"], "markdown", "{result}");
    assert_eq!(result["total"], 8, "{result}");
    assert_eq!(result["done"], 8);
    assert_eq!(result["created"], 7);
    assert_eq!(result["updated"], 0);
    assert_eq!(result["attachments"], 3);
    let errors = result["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{result}");
    assert_eq!(errors[0]["path"], "bad.md");
    assert!(
        errors[0]["error"].as_str().unwrap().contains("UTF-8"),
        "{result}"
    );
    let skipped: BTreeMap<&str, &str> = result["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["path"].as_str().unwrap(), s["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(
        skipped.keys().copied().collect::<Vec<_>>(),
        [
            ".hidden.md",
            ".obsidian/app.json",
            ".trash/old.md",
            "orphan.gif"
        ],
        "{result}"
    );
    assert!(skipped["orphan.gif"].contains("not embedded"));
    // Every file of the zip is a note, an error, an attachment or skipped.
    assert_eq!(8 + 3 + skipped.len(), 15);

    let all = notes(&app).await;
    assert_eq!(all.len(), 7);
    let alpha = by_external_id(&all, "vault:Projects/Alpha.md");
    assert_eq!(alpha["title"], "Alpha");
    assert_eq!(
        alpha["tags"],
        json!(["work", "project.alpha", "inline.nested", "imported"])
    );
    assert_eq!(alpha["metadata"]["aliases"], json!(["Alpha", "A"]));
    assert_eq!(alpha["metadata"]["status"], "draft");
    assert_eq!(alpha["metadata"]["path"], "Projects");
    assert_eq!(alpha["created_at"], "2024-03-01T00:00:00.000000Z");
    assert_eq!(alpha["updated_at"], "2024-03-02T10:11:12.000000Z");
    assert!(alpha["body"].as_str().unwrap().starts_with("Alpha body"));
    let mut got: Vec<(String, String, String)> = attachments(&app, alpha)
        .await
        .into_iter()
        .map(|a| {
            (
                a["filename"].as_str().unwrap().to_owned(),
                a["content_type"].as_str().unwrap().to_owned(),
                a["sha256"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            (
                "diagram.png".to_owned(),
                "image/png".to_owned(),
                sha256(&files["Projects/img/diagram.png"])
            ),
            (
                "paper.pdf".to_owned(),
                "application/pdf".to_owned(),
                sha256(&files["Papers/paper.pdf"])
            ),
            (
                "photo.jpg".to_owned(),
                "image/jpeg".to_owned(),
                sha256(&files["Projects/photo.jpg"])
            ),
        ]
    );
    let daily = by_external_id(&all, "vault:Daily/2024/2024-01-01.md");
    assert_eq!(daily["title"], "New year");
    assert_eq!(daily["tags"], json!(["goals.2024", "imported"]));
    assert_eq!(daily["metadata"]["path"], "Daily/2024");
    let same: Vec<&Value> = all.iter().filter(|n| n["title"] == "Same").collect();
    assert_eq!(same.len(), 2, "two notes of one title, one per folder");
    let japanese = by_external_id(&all, "vault:日本語/ノート.md");
    assert_eq!(japanese["title"], "ノート");
    assert_eq!(japanese["tags"], json!(["ok", "imported"]));
    assert_eq!(japanese["metadata"]["unmapped_tags"], json!(["メモ"]));
    let cafe = by_external_id(&all, "vault:Ünïcödé/café crème.md");
    assert_eq!(cafe["title"], "café crème");
    assert_eq!(cafe["tags"], json!(["a", "b", "imported"]));
    let empty = by_external_id(&all, "vault:Empty tags.md");
    assert_eq!(empty["tags"], json!(["imported"]));
    assert_eq!(empty["body"], "");

    // The same vault again: nothing changes, nothing is added twice.
    let (zip, _) = vault("Alpha body #inline/Nested");
    let again = import_ok(&app, "?tag=imported", zip).await;
    assert_eq!(again["unchanged"], 7, "{again}");
    assert_eq!(again["created"], 0);
    assert_eq!(again["updated"], 0);
    assert_eq!(again["attachments"], 0);
    assert_eq!(notes(&app).await.len(), 7);
    assert_eq!(attachments(&app, alpha).await.len(), 3);

    // One file changed: only its note is updated.
    let (zip, _) = vault("Alpha body, edited #inline/Nested");
    let changed = import_ok(&app, "?tag=imported", zip).await;
    assert_eq!(changed["updated"], 1, "{changed}");
    assert_eq!(changed["unchanged"], 6);
    assert_eq!(changed["attachments"], 0);
    let all = notes(&app).await;
    let alpha = by_external_id(&all, "vault:Projects/Alpha.md");
    assert!(
        alpha["body"]
            .as_str()
            .unwrap()
            .starts_with("Alpha body, edited")
    );
    assert_eq!(alpha["version"], 2);
}

/// Notes and attachments as a deployment holds them, for comparing two.
/// Without `filenames`, attachments by content only: a vault holds the
/// path-safe, unique name an export gave a file (`Tram (2).JPG` beside
/// `tram.jpg`), not the name it was uploaded with.
async fn snapshot(app: &TestApp, filenames: bool) -> Vec<Value> {
    let mut out = Vec::new();
    for n in notes(app).await {
        let mut files: Vec<(String, String, String)> = attachments(app, &n)
            .await
            .into_iter()
            .map(|a| {
                (
                    if filenames {
                        a["filename"].as_str().unwrap().to_owned()
                    } else {
                        String::new()
                    },
                    a["sha256"].as_str().unwrap().to_owned(),
                    a["size"].to_string(),
                )
            })
            .collect();
        files.sort();
        out.push(json!({
            "id": n["id"], "title": n["title"], "body": n["body"], "tags": n["tags"],
            "metadata": n["metadata"], "external_id": n["external_id"],
            "created_at": n["created_at"], "updated_at": n["updated_at"], "attachments": files,
        }));
    }
    out.sort_by_key(|n| n["id"].as_str().unwrap().to_owned());
    out
}

async fn export(app: &TestApp, format: &str) -> Vec<u8> {
    let res = app
        .get(&format!("/api/v1/export?format={format}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.bytes().await.unwrap().to_vec()
}

async fn upload(app: &TestApp, note: &Value, name: &str, content_type: &str, data: Vec<u8>) {
    let res = app
        .request(
            Method::POST,
            &format!(
                "/api/v1/notes/{}/attachments?filename={name}",
                note["id"].as_str().unwrap()
            ),
        )
        .header("content-type", content_type)
        .body(data)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
}

/// A deployment with what an export must carry: titles a file name cannot
/// hold, names in other scripts, tags, metadata, external ids, bodies
/// with headings and `#words`, attachments of one name.
async fn populated() -> TestApp {
    let app = TestApp::spawn().await;
    let trip = app
        .create_note(
            json!({"title": "Trip: Lisbon", "body": "# Plan\nPack light. #notatag",
            "tags": ["travel", "2026"], "metadata": {"k": [1, "two", {"n": null}], "path": "x"}}),
        )
        .await;
    upload(&app, &trip, "tram.jpg", "image/jpeg", noise("tram", 40_000)).await;
    upload(&app, &trip, "Tram.JPG", "image/jpeg", noise("tram2", 1000)).await;
    upload(
        &app,
        &trip,
        "tickets.pdf",
        "application/pdf",
        noise("pdf", 3000),
    )
    .await;
    upload(
        &app,
        &trip,
        "notes.txt",
        "text/plain",
        b"plain text".to_vec(),
    )
    .await;
    app.create_note(json!({"title": "日本語のノート", "body": "本文", "external_id": "ext:1"}))
        .await;
    app.create_note(json!({"title": "Trip: Lisbon", "body": "", "tags": []}))
        .await;
    let empty = app
        .create_note(json!({"title": "Only files", "body": ""}))
        .await;
    upload(&app, &empty, "a.png", "image/png", noise("a", 100)).await;
    app.create_note(json!({"title": "trailing", "body": "ends with a line break\n"}))
        .await;
    app
}

#[tokio::test]
async fn markdown_export_import_export_gives_the_same_notes_and_the_same_files() {
    let first = populated().await;
    let before = snapshot(&first, false).await;
    let zip1 = export(&first, "markdown").await;

    let second = TestApp::spawn().await;
    let result = import_ok(&second, "", zip1.clone()).await;
    assert_eq!(result["format"], "markdown", "{result}");
    assert_eq!(result["created"], 5, "{result}");
    assert_eq!(result["errors"], json!([]), "{result}");
    assert_eq!(result["warnings"], json!([]), "{result}");
    assert_eq!(result["attachments"], 5);
    let skipped: Vec<&str> = result["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["path"].as_str().unwrap())
        .collect();
    assert_eq!(skipped, ["notes-api-export.json"], "{result}");
    assert_eq!(snapshot(&second, false).await, before);

    // The second export holds the same files, byte for byte (the zip's
    // own timestamps of the attachments are their upload times, which a
    // vault does not carry).
    let zip2 = export(&second, "markdown").await;
    assert_eq!(entries(&zip1), entries(&zip2));

    // And importing it again changes nothing.
    let again = import_ok(&second, "", zip2).await;
    assert_eq!(again["unchanged"], 5, "{again}");
    assert_eq!(again["attachments"], 0);
}

#[tokio::test]
async fn ndjson_export_import_export_gives_the_same_notes_and_the_same_files() {
    let first = populated().await;
    let before = snapshot(&first, true).await;
    let zip1 = export(&first, "ndjson").await;
    let second = TestApp::spawn().await;
    let result = import_ok(&second, "?format=ndjson", zip1.clone()).await;
    assert_eq!(result["format"], "ndjson");
    assert_eq!(result["total"], 5, "{result}");
    assert_eq!(result["created"], 5, "{result}");
    assert_eq!(result["attachments"], 5);
    assert_eq!(snapshot(&second, true).await, before);
    let zip2 = export(&second, "ndjson").await;
    assert_eq!(entries(&zip1), entries(&zip2));
    let again = import_ok(&second, "", zip2).await;
    assert_eq!(again["unchanged"], 5, "{again}");
}

/// A zip with one entry written as `make` says (names the zip crate would
/// refuse to read are written as they are).
fn raw_zip(make: impl FnOnce(&mut zip::ZipWriter<Cursor<Vec<u8>>>)) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    make(&mut w);
    w.finish().unwrap().into_inner()
}

async fn refused(app: &TestApp, zip: Vec<u8>, expect: &str) {
    let job = import(app, "", zip).await;
    assert_eq!(job["status"], "dead", "{job}");
    let error = job["error"].as_str().unwrap();
    assert!(error.contains(expect), "{expect:?} not in {error:?}");
    assert_eq!(app.count_notes().await, 0, "nothing was imported");
    assert_eq!(staged(app).await, 0, "the staged zip is removed");
}

/// `zip` with every size field of its entries (local header and central
/// directory) rewritten to `size`: a bomb whose headers lie.
fn lying_sizes(mut zip: Vec<u8>, size: u32) -> Vec<u8> {
    let mut i = 0;
    while i + 4 <= zip.len() {
        let at = match &zip[i..i + 4] {
            b"PK\x03\x04" => Some(i + 22),
            b"PK\x01\x02" => Some(i + 24),
            _ => None,
        };
        if let Some(at) = at {
            zip[at..at + 4].copy_from_slice(&size.to_le_bytes());
        }
        i += 1;
    }
    zip
}

#[tokio::test]
async fn hostile_zips_are_refused_with_the_entry_named_and_nothing_written() {
    let app = TestApp::spawn_with(|c| {
        c.limits.import_max_bytes = 1024 * 1024;
        c.limits.import_max_files = 50;
    })
    .await;
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let slip = raw_zip(|w| {
        w.start_file("ok.md", opts).unwrap();
        w.write_all(b"fine").unwrap();
        w.start_file("../../evil.md", opts).unwrap();
        w.write_all(b"escape").unwrap();
    });
    refused(&app, slip, "\"../../evil.md\" climbs out").await;
    let absolute = raw_zip(|w| {
        w.start_file("/etc/evil.md", opts).unwrap();
        w.write_all(b"x").unwrap();
    });
    refused(&app, absolute, "\"/etc/evil.md\" has an absolute path").await;
    let link = raw_zip(|w| {
        w.start_file("ok.md", opts).unwrap();
        w.write_all(b"fine").unwrap();
        w.add_symlink("link.md", "/etc/passwd", opts).unwrap();
    });
    refused(&app, link, "\"link.md\" is a symbolic link").await;
    // 8 MiB of zeros deflate to a few KiB: over the 1 MiB limit unpacked.
    let bomb = raw_zip(|w| {
        w.start_file("bomb.md", opts).unwrap();
        w.write_all(&vec![b'a'; 8 * 1024 * 1024]).unwrap();
    });
    assert!(bomb.len() < 64 * 1024);
    refused(&app, bomb, "unpacks to more than 1048576 bytes").await;
    // The same bomb, its headers claiming 10 bytes: stopped as it unpacks.
    let liar = lying_sizes(
        raw_zip(|w| {
            w.start_file("lie.md", opts).unwrap();
            w.write_all(&vec![b'a'; 8 * 1024 * 1024]).unwrap();
        }),
        10,
    );
    refused(
        &app,
        liar,
        "entry \"lie.md\" unpacks to more than the 10 bytes it declares",
    )
    .await;
    let many = raw_zip(|w| {
        for i in 0..200 {
            w.start_file(format!("n{i}.md"), opts).unwrap();
        }
    });
    refused(&app, many, "holds 200 files, over the limit of 50").await;
}

#[tokio::test]
async fn the_import_route_refuses_what_it_cannot_take() {
    let app = TestApp::production_with(|c| c.limits.import_max_bytes = 64 * 1024).await;
    let zip = zip_of(&[("a.md", b"a")]);
    // Not an admin key: 403, and nothing is staged.
    let (_, write_key) = app.key(&["read", "write"]).await;
    let res = app
        .client
        .post(format!("{}/api/v1/import", app.base))
        .bearer_auth(&write_key)
        .header("content-type", "application/zip")
        .body(zip.clone())
        .send()
        .await
        .unwrap();
    assert_problem(res, StatusCode::FORBIDDEN).await;
    // Not a zip's media type.
    let res = app
        .request(Method::POST, "/api/v1/import")
        .header("content-type", "text/plain")
        .body(zip.clone())
        .send()
        .await
        .unwrap();
    assert_problem(res, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    // A zip's media type, not a zip's bytes.
    let res = app
        .request(Method::POST, "/api/v1/import")
        .header("content-type", "application/zip")
        .body("just text")
        .send()
        .await
        .unwrap();
    let problem = assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(problem.to_string().contains("not a zip file"), "{problem}");
    // Over NOTES_IMPORT_MAX_BYTES.
    let res = app
        .request(Method::POST, "/api/v1/import")
        .header("content-type", "application/zip")
        .body(noise("big", 100 * 1024))
        .send()
        .await
        .unwrap();
    assert_problem(res, StatusCode::PAYLOAD_TOO_LARGE).await;
    // A bad parameter.
    let res = app
        .request(Method::POST, "/api/v1/import?format=docx")
        .header("content-type", "application/zip")
        .body(zip.clone())
        .send()
        .await
        .unwrap();
    assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    // Other methods.
    let res = app.get("/api/v1/import").send().await.unwrap();
    assert_problem(res, StatusCode::METHOD_NOT_ALLOWED).await;
    // Nothing staged is left behind by any of them.
    assert_eq!(staged(&app).await, 0);

    // The multipart field `file` works as the raw body does, and the
    // staged zip is gone once the job is done.
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(zip).file_name("vault.zip"),
    );
    let res = app
        .request(Method::POST, "/api/v1/import")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let job: Value = res.json().await.unwrap();
    let job = app.finished(job["id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["result"]["created"], 1);
    assert_eq!(staged(&app).await, 0);

    // The document describes both bodies, and the admin scope.
    let (_, spec) = app.get_json("/openapi.json").await;
    let op = &spec["paths"]["/api/v1/import"]["post"];
    let content = &op["requestBody"]["content"];
    assert!(content["application/zip"].is_object(), "{op}");
    assert!(content["multipart/form-data"].is_object(), "{op}");
    assert_eq!(op["security"][0]["bearer"], json!(["admin"]));
    for status in ["202", "413", "415", "422"] {
        assert!(op["responses"][status].is_object(), "{status}: {op}");
    }
}

/// Objects under the staging prefix.
async fn staged(app: &TestApp) -> usize {
    app.state
        .blobs()
        .list(notes_api::jobs::import::STAGED_PREFIX)
        .await
        .unwrap()
        .len()
}

/// The job's `result` shows how far it got while it runs: the admin UI
/// and clients draw a bar from `done` and `total`.
#[tokio::test]
async fn the_job_reports_its_progress_while_it_runs() {
    let app = TestApp::spawn().await;
    let notes: Vec<(String, Vec<u8>)> = (0..1500)
        .map(|i| {
            (
                format!("n/{i:04}.md"),
                format!("note {i} #bulk").into_bytes(),
            )
        })
        .collect();
    let files: Vec<(&str, &[u8])> = notes
        .iter()
        .map(|(p, d)| (p.as_str(), d.as_slice()))
        .collect();
    let job = post_import(&app, "", zip_of(&files)).await;
    let id = job["id"].as_str().unwrap();
    let running = app
        .wait_job(id, std::time::Duration::from_secs(60), |j| {
            j["status"] == "succeeded" || (j["status"] == "running" && j["result"]["total"] == 1500)
        })
        .await;
    if running["status"] == "running" {
        let done = running["result"]["done"].as_u64().unwrap();
        assert!(done < 1500, "{running}");
        assert_eq!(running["result"]["errors"], json!([]));
    } else {
        // A machine fast enough to finish before the first look: the
        // outcome is still the whole report.
        eprintln!("the import finished before its progress was seen");
    }
    // 1,500 upserts on PostgreSQL + S3 beside the rest of the suite: more
    // than `finished`'s 30 s on a loaded machine.
    let finished = app
        .wait_job(id, std::time::Duration::from_secs(180), |j| {
            j["status"] == "succeeded" || j["status"] == "dead"
        })
        .await;
    assert_eq!(finished["status"], "succeeded", "{finished}");
    assert_eq!(finished["result"]["done"], 1500);
    assert_eq!(finished["result"]["created"], 1500);
}

#[tokio::test]
async fn folder_tags_tag_each_note_with_its_folder() {
    let app = TestApp::spawn().await;
    let zip = zip_of(&[("Work/Deep Dive/x.md", b"#a"), ("top.md", b"b")]);
    let result = import_ok(&app, "?folder_tags=true", zip).await;
    assert_eq!(result["created"], 2, "{result}");
    let all = notes(&app).await;
    let x = by_external_id(&all, "vault:Work/Deep Dive/x.md");
    assert_eq!(x["tags"], json!(["a", "work.deep-dive"]));
    assert_eq!(x["metadata"]["path"], "Work/Deep Dive");
    assert_eq!(by_external_id(&all, "vault:top.md")["tags"], json!([]));
}

/// A staged upload whose job will never read it (the job was killed on
/// its last attempt, or never queued) is removed by `purge` past the
/// grace period; one that a queued job still waits for is kept.
#[tokio::test]
async fn purge_removes_staged_imports_no_job_will_read() {
    use notes_api::{
        jobs::import::staged_key,
        queue::{Job, JobKind, NewJob},
    };
    let app = TestApp::spawn_with(|c| c.jobs.purge_grace = 0).await;
    let put = async |key: &str| {
        app.state
            .blobs()
            .put_stream(
                key,
                futures::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from_static(
                    b"PK\x03\x04",
                ))]),
                10,
            )
            .await
            .unwrap();
    };
    let (forgotten, awaited) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    put(&staged_key(forgotten)).await;
    put(&staged_key(awaited)).await;
    // An import due tomorrow still reads its upload then.
    let later = chrono::Utc::now() + chrono::Duration::days(1);
    app.state
        .queue()
        .enqueue(Job::queued(
            NewJob::new(JobKind::Import, json!({ "upload": awaited })),
            3,
            later,
        ))
        .await
        .unwrap();
    // Within the grace period nothing goes.
    let an_hour_ago = chrono::Utc::now() - chrono::Duration::hours(1);
    let removed = notes_api::jobs::import::purge_staged(app.state.jobs(), an_hour_ago)
        .await
        .unwrap();
    assert_eq!(removed, 0);
    assert_eq!(staged(&app).await, 2);

    // Objects are dated to the second: past it, `purge` (grace 0) takes
    // the one no job will read.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let job = app.enqueue("purge", json!({})).await;
    let done = app.finished(job["id"].as_str().unwrap()).await;
    assert_eq!(done["result"]["staged_imports"], 1, "{done}");
    let left: Vec<String> = app
        .state
        .blobs()
        .list(notes_api::jobs::import::STAGED_PREFIX)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(left, vec![staged_key(awaited)]);
}
