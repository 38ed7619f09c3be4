//! Clients that try to exhaust the server: slow sockets, floods, bodies
//! whose parsed form is many times their size. Each test names the defect
//! of issue #10 it keeps fixed.

use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::common::{MASTER, TestApp, assert_problem};

fn addr(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_owned()
}

/// Reads until the server closes the socket (or `limit` passes); returns
/// what it sent and how long the close took.
async fn until_closed(sock: &mut TcpStream, limit: Duration) -> (Vec<u8>, Option<Duration>) {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while started.elapsed() < limit {
        match tokio::time::timeout(Duration::from_millis(200), sock.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (got, Some(started.elapsed())),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    (got, None)
}

/// Defect 5: a client that dribbles its headers a byte at a time is cut
/// off at NOTES_HEADER_TIMEOUT, and so is an idle keep-alive connection.
#[tokio::test]
async fn slow_headers_and_idle_connections_are_closed() {
    let app = TestApp::spawn_with(|c| c.limits.header_timeout = 1).await;
    let mut sock = TcpStream::connect(addr(&app)).await.unwrap();
    let dribble = async {
        for b in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " {
            if sock.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    };
    dribble.await;
    let (_, closed) = until_closed(&mut sock, Duration::from_secs(5)).await;
    assert!(closed.is_some(), "a dribbling client kept its connection");

    // A finished request's connection, left idle, is closed too.
    let mut sock = TcpStream::connect(addr(&app)).await.unwrap();
    sock.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (got, closed) = until_closed(&mut sock, Duration::from_secs(5)).await;
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
    assert!(
        closed.is_some(),
        "an idle keep-alive connection stayed open"
    );
}

/// #21 defect 3: a socket that never sends a byte is closed at the header
/// deadline, not the idle timeout (hyper starts its header clock only once
/// it has read a byte).
#[tokio::test]
async fn a_silent_socket_is_closed_at_the_header_deadline() {
    let app = TestApp::spawn_with(|c| {
        c.limits.header_timeout = 1;
        c.limits.idle_timeout = 60;
    })
    .await;
    let mut sock = TcpStream::connect(addr(&app)).await.unwrap();
    let (_, closed) = until_closed(&mut sock, Duration::from_secs(10)).await;
    let closed = closed.expect("a silent socket was held past the header deadline");
    assert!(closed < Duration::from_secs(3), "{closed:?}");
}

/// #21 defect 3: 1,030 silent sockets from one client, past the connection
/// cap, do not keep a client that talks waiting: at the cap, the oldest
/// socket that has said nothing gives its slot up.
#[tokio::test]
async fn silent_sockets_past_the_cap_do_not_delay_healthz() {
    let app = TestApp::spawn_with(|c| c.limits.max_connections = 1024).await;
    let mut silent = Vec::new();
    for _ in 0..1030 {
        silent.push(TcpStream::connect(addr(&app)).await.unwrap());
    }
    // Let the server accept what it will.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let started = Instant::now();
    let res = tokio::time::timeout(
        Duration::from_secs(5),
        client.get(format!("{}/healthz", app.base)).send(),
    )
    .await
    .expect("/healthz waited behind silent sockets")
    .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    drop(silent);
}

/// Defect 5: a body that stops arriving is cut at NOTES_IDLE_TIMEOUT, long
/// before the request timeout, and leaves nothing behind.
#[tokio::test]
async fn a_stalled_body_is_cut_at_the_idle_timeout() {
    let app = TestApp::spawn_with(|c| c.limits.idle_timeout = 1).await;
    let mut sock = TcpStream::connect(addr(&app)).await.unwrap();
    sock.write_all(
        b"POST /api/v1/notes HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
          Content-Length: 1000\r\n\r\n{\"title\":\"stalled",
    )
    .await
    .unwrap();
    let (_, closed) = until_closed(&mut sock, Duration::from_secs(10)).await;
    let closed = closed.expect("a stalled body held its connection");
    assert!(closed < Duration::from_secs(8), "{closed:?}");
    assert_eq!(app.count_notes().await, 0);
}

/// Defect 5: at NOTES_MAX_CONNECTIONS, the next client waits (in the
/// backlog) instead of costing the server another connection.
#[tokio::test]
async fn connections_beyond_the_cap_wait_for_a_free_one() {
    let app = TestApp::spawn_with(|c| {
        c.limits.max_connections = 2;
        c.limits.header_timeout = 30;
    })
    .await;
    // reqwest's pool may hold a connection from start-up: use a fresh client.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let url = format!("{}/healthz", app.base);
    // Let anything from start-up close first.
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Two clients that have begun a request hold the two slots (one that
    // has said nothing would give its slot up).
    let mut a = TcpStream::connect(addr(&app)).await.unwrap();
    let mut b = TcpStream::connect(addr(&app)).await.unwrap();
    a.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    b.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let blocked = tokio::time::timeout(Duration::from_millis(700), client.get(&url).send()).await;
    assert!(
        blocked.is_err(),
        "a third connection was served beyond the cap"
    );
    drop(a);
    let res = tokio::time::timeout(Duration::from_secs(5), client.get(&url).send())
        .await
        .expect("served once a slot was free")
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    drop(b);
}

/// Request heads have a fixed ceiling: 431, not a growing buffer.
#[tokio::test]
async fn an_oversized_request_head_is_refused() {
    let app = TestApp::spawn().await;
    let res = app
        .get("/healthz")
        .header("x-big", "a".repeat(100 * 1024))
        .send()
        .await;
    match res {
        Ok(res) => assert_eq!(res.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
        // hyper may also close the connection before the client reads.
        Err(e) => assert!(e.is_request() || e.is_connect() || e.is_body(), "{e}"),
    }
    assert_eq!(
        app.get("/healthz").send().await.unwrap().status(),
        StatusCode::OK
    );
}

/// Defect 4: a client over its rate gets 429 with Retry-After; another
/// client (or key) is not affected; made-up keys and forged
/// X-Forwarded-For buy nothing.
#[tokio::test]
async fn clients_over_their_rate_get_429_and_others_do_not() {
    let mut app = TestApp::production_with(|c| {
        c.limits.rate_limit = Some(1);
        c.limits.rate_burst = Some(5);
    })
    .await;
    let (_, key) = app.key(&["read"]).await; // the master key's bucket: 1 used
    app.token = None;
    let mut statuses = Vec::new();
    for i in 0..8 {
        let res = app
            .get("/healthz")
            .header("x-forwarded-for", format!("203.0.113.{i}"))
            .send()
            .await
            .unwrap();
        statuses.push(res.status());
        if res.status() == StatusCode::TOO_MANY_REQUESTS {
            let wait: u64 = res.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=2).contains(&wait), "{wait}");
            let p = assert_problem(res, StatusCode::TOO_MANY_REQUESTS).await;
            assert!(
                p["type"].as_str().unwrap().ends_with(":rate-limited"),
                "{p}"
            );
        }
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        5,
        "the burst, then 429, whatever X-Forwarded-For says: {statuses:?}"
    );
    // A valid key has its own bucket.
    let res = app
        .get("/api/v1/notes")
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // Made-up keys are charged to the address, which is spent.
    let res = app
        .get("/api/v1/notes")
        .bearer_auth("nk_made-up")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let metrics = app
        .get("/metrics")
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(
        metrics,
        StatusCode::TOO_MANY_REQUESTS,
        "ops routes count too"
    );
}

/// Behind a trusted proxy each forwarded client has its own bucket.
#[tokio::test]
async fn a_trusted_proxy_names_the_client() {
    let app = TestApp::spawn_with(|c| {
        c.limits.rate_limit = Some(1);
        c.limits.rate_burst = Some(2);
        c.server.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    for client in ["198.51.100.1", "198.51.100.2"] {
        let statuses: Vec<StatusCode> = futures::stream::iter(0..3)
            .then(|_| async {
                app.get("/healthz")
                    .header("x-forwarded-for", client)
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
            .collect()
            .await;
        assert_eq!(
            statuses,
            [
                StatusCode::OK,
                StatusCode::OK,
                StatusCode::TOO_MANY_REQUESTS
            ],
            "{client}"
        );
    }
}

/// Development mode has no limit unless one is set.
#[tokio::test]
async fn development_mode_is_not_rate_limited_by_default() {
    let app = TestApp::spawn().await;
    for _ in 0..300 {
        assert_eq!(
            app.get("/healthz").send().await.unwrap().status(),
            StatusCode::OK
        );
    }
}

/// Defect 3: JSON that would expand many times over in memory is refused
/// while it is read, with the field it concerns.
#[tokio::test]
async fn bodies_that_would_expand_in_memory_are_refused_by_field() {
    let app = TestApp::spawn().await;
    let zeros = format!("[{}0]", "0,".repeat(1_500_000));
    for (body, field) in [
        (
            format!("{{\"title\":\"t\",\"metadata\":{{\"z\":{zeros}}}}}"),
            "metadata",
        ),
        (
            format!(
                "{{\"title\":\"t\",\"tags\":[{}\"\"]}}",
                "\"\",".repeat(1_000_000)
            ),
            "tags",
        ),
    ] {
        let res = app
            .request(Method::POST, "/api/v1/notes")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let p = assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert!(
            p["errors"][0]["field"].as_str().unwrap().starts_with(field),
            "{p}"
        );
    }
    let res = app
        .request(Method::POST, "/api/v1/jobs")
        .header("content-type", "application/json")
        .body(format!("{{\"kind\":\"ping\",\"args\":{zeros}}}"))
        .send()
        .await
        .unwrap();
    let p = assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(
        p["errors"][0]["field"]
            .as_str()
            .unwrap()
            .starts_with("args"),
        "{p}"
    );
    // Syntax still wins over shape: a truncated body is 400.
    let res = app
        .request(Method::POST, "/api/v1/notes")
        .header("content-type", "application/json")
        .body("{\"title\":5")
        .send()
        .await
        .unwrap();
    assert_problem(res, StatusCode::BAD_REQUEST).await;
    assert_eq!(app.count_notes().await, 0);
}

/// Defect 3: a listing of large notes stops at its byte budget and hands
/// out a cursor; following it yields every note exactly once.
#[tokio::test]
async fn a_page_of_large_notes_ends_early_with_a_cursor() {
    let app = TestApp::spawn().await;
    let body = "x".repeat(1024 * 1024 - 100);
    for i in 0..6 {
        app.create_note(json!({"title": format!("big {i}"), "body": body}))
            .await;
    }
    let mut seen = Vec::new();
    let mut path = "/api/v1/notes?limit=100".to_owned();
    let mut pages = 0;
    loop {
        let (status, page) = app.get_json(&path).await;
        assert_eq!(status, StatusCode::OK);
        pages += 1;
        for n in page["items"].as_array().unwrap() {
            seen.push(n["title"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/notes?limit=100&cursor={c}"),
            None => break,
        }
    }
    assert!(pages >= 2, "6 MiB of notes came in one page");
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 6);
}

/// #21 defect 2: uploads that dribble hold no slot that others need. Eight
/// uploads from four keys send a little and then nothing: another key's
/// search and note writes answer at once, and a JSON body that dribbles
/// does not hold a heavy slot either. A key's third upload at once is
/// 429, and a dribbling body is cut off with 408 after the rate window,
/// leaving nothing behind.
#[tokio::test]
async fn dribbling_uploads_hold_no_slot_that_others_need() {
    let app = TestApp::production_with(|c| {
        c.limits.max_heavy_requests = 1;
        c.limits.max_uploads = 8;
    })
    .await;
    let note = app.create_note(json!({"title": "holder"})).await;
    let id = note["id"].as_str().unwrap().to_owned();
    let mut senders = Vec::new();
    let mut uploads = Vec::new();
    for k in 0..4 {
        let (_, key) = app.key(&["write"]).await;
        for _ in 0..2 {
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
            tx.send(Ok(vec![0u8; 1024])).await.unwrap();
            senders.push(tx);
            let upload = app
                .client
                .post(format!("{}/api/v1/notes/{id}/attachments", app.base))
                .bearer_auth(&key)
                .query(&[("filename", "slow.bin")])
                .header("content-type", "application/octet-stream")
                .body(reqwest::Body::wrap_stream(tokio_stream_from(rx)))
                .send();
            uploads.push(tokio::spawn(upload));
        }
        if k == 0 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let third = app
                .client
                .post(format!("{}/api/v1/notes/{id}/attachments", app.base))
                .bearer_auth(&key)
                .query(&[("filename", "third.bin")])
                .body("x")
                .send()
                .await
                .unwrap();
            let p = assert_problem(third, StatusCode::TOO_MANY_REQUESTS).await;
            assert!(
                p["detail"]
                    .as_str()
                    .unwrap()
                    .contains("NOTES_MAX_UPLOADS_PER_CLIENT")
            );
        }
    }
    // A JSON body that dribbles, on the one heavy slot's route.
    let (json_tx, json_rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    json_tx.send(Ok(b"{\"title\":".to_vec())).await.unwrap();
    let dribbling_create = tokio::spawn(
        app.request(Method::POST, "/api/v1/notes")
            .header("content-type", "application/json")
            .body(reqwest::Body::wrap_stream(tokio_stream_from(json_rx)))
            .send(),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (_, reader) = app.key(&["read", "write"]).await;
    let other = |m: Method, path: &str| {
        app.client
            .request(m, format!("{}{path}", app.base))
            .bearer_auth(&reader)
    };
    for _ in 0..3 {
        let started = Instant::now();
        let res = other(Method::GET, "/api/v1/search?q=holder")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let res = other(Method::POST, "/api/v1/notes")
            .json(&json!({"title": "meanwhile"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        assert!(
            started.elapsed() < Duration::from_millis(900),
            "served in {:?} while uploads dribbled",
            started.elapsed()
        );
    }

    // The rate window (10 s) passes with 1 KiB sent, below 1 KiB/s: every
    // dribbling upload is cut off while its client still holds it open.
    for upload in uploads {
        let res = tokio::time::timeout(Duration::from_secs(25), upload)
            .await
            .expect("a dribbling upload was never cut off")
            .unwrap();
        if let Ok(res) = res {
            let p = assert_problem(res, StatusCode::REQUEST_TIMEOUT).await;
            assert!(
                p["detail"]
                    .as_str()
                    .unwrap()
                    .contains("NOTES_MIN_BODY_RATE")
            );
        }
    }
    drop(senders);
    drop(json_tx);
    let _ = dribbling_create.await;
    let (_, list) = app
        .get_json(&format!("/api/v1/notes/{id}/attachments"))
        .await;
    assert_eq!(list, json!([]), "a cut-off upload left a record");
    assert_eq!(
        app.db.stored_objects(),
        0,
        "a cut-off upload left an object"
    );
    assert!(app.metrics().await.contains("http_slow_bodies_total"));
}

/// Issue 21: one ingest that dribbled held the only ingest slot for as
/// long as it dribbled, so every other client's batches were shed. A batch
/// now streams to disk first, in the streaming pool, and takes its ingest
/// slot only once it is whole; the staged file has no name, so neither a
/// refused nor a written batch leaves anything on disk.
#[tokio::test]
async fn a_dribbling_ingest_holds_no_ingest_slot() {
    let app = TestApp::production_with(|c| c.limits.max_ingests = 1).await;
    let (_, slow_key) = app.key(&["write"]).await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    tx.send(Ok(b"{\"title\":\"slow one\"}\n".to_vec()))
        .await
        .unwrap();
    let slow = tokio::spawn(
        app.client
            .post(format!("{}/api/v1/ingest", app.base))
            .bearer_auth(&slow_key)
            .header("content-type", "application/x-ndjson")
            .body(reqwest::Body::wrap_stream(tokio_stream_from(rx)))
            .send(),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..3 {
        let started = Instant::now();
        let res = app
            .request(Method::POST, "/api/v1/ingest")
            .header("content-type", "application/x-ndjson")
            .body(format!("{{\"title\":\"fast {i}\"}}\n"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            StatusCode::OK,
            "{}",
            res.text().await.unwrap()
        );
        assert!(
            started.elapsed() < Duration::from_millis(900),
            "an ingest waited {:?} behind a dribbling one",
            started.elapsed()
        );
    }
    tx.send(Ok(b"{\"title\":\"slow two\"}\n".to_vec()))
        .await
        .unwrap();
    drop(tx);
    let res = slow.await.unwrap().unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let report: Value = res.json().await.unwrap();
    assert_eq!(report["created"], 2, "{report}");

    assert_eq!(app.count_notes().await, 5);
    let staged: Vec<_> = std::fs::read_dir(app.db.dir().join("spool"))
        .unwrap()
        .collect();
    assert!(staged.is_empty(), "staged files left: {staged:?}");
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Defect 2: a multipart body that never sends its boundary is refused
/// after 64 KiB, not buffered until the upload limit.
#[tokio::test]
async fn a_multipart_preamble_without_boundary_is_refused_early() {
    let app = TestApp::spawn().await;
    let note = app.create_note(json!({"title": "n"})).await;
    let id = note["id"].as_str().unwrap();
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = sent.clone();
    // 64 MiB of zeros in 64 KiB chunks, sent chunked (no Content-Length).
    let zeros = futures::stream::iter(0..1024).map(move |_| {
        counter.fetch_add(64 * 1024, std::sync::atomic::Ordering::Relaxed);
        Ok::<_, std::io::Error>(vec![0u8; 64 * 1024])
    });
    let res = app
        .request(Method::POST, &format!("/api/v1/notes/{id}/attachments"))
        .header("content-type", "multipart/form-data; boundary=XyZ")
        .body(reqwest::Body::wrap_stream(zeros))
        .send()
        .await;
    if let Ok(res) = res {
        let p = assert_problem(res, StatusCode::BAD_REQUEST).await;
        assert!(p["detail"].as_str().unwrap().contains("64 KiB"), "{p}");
    }
    let (_, list) = app
        .get_json(&format!("/api/v1/notes/{id}/attachments"))
        .await;
    assert_eq!(list.as_array().unwrap().len(), 0);
    assert!(
        sent.load(std::sync::atomic::Ordering::Relaxed) < 64 * 1024 * 1024,
        "the server read the whole preamble"
    );
}

/// Defect 4: one round of dependency checks answers every readiness probe
/// for a second, so a flood of probes is not a flood of database pings.
#[tokio::test]
async fn readiness_probes_share_one_round_of_checks() {
    let app = TestApp::spawn().await;
    let rounds = |m: &str| -> f64 {
        m.lines()
            .find(|l| l.starts_with("readiness_checks_total"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    app.get_json("/readyz").await;
    let before = rounds(&app.metrics().await);
    let probes = futures::future::join_all((0..200).map(|_| app.get_json("/readyz"))).await;
    assert!(probes.iter().all(|(s, _)| *s == StatusCode::OK));
    let after = rounds(&app.metrics().await);
    assert!(
        after - before <= 3.0,
        "{before} -> {after} rounds for 200 probes"
    );
}

/// A snapshot made by `backup` into `dir`, with three attachments (so a
/// refusal at the last object comes after two copies); returns the
/// snapshot folder.
async fn snapshot_with_attachment(dir: &std::path::Path) -> std::path::PathBuf {
    let app = TestApp::spawn().await;
    let note = app.create_note(json!({"title": "n"})).await;
    let id = note["id"].as_str().unwrap();
    for byte in [7u8, 8, 9] {
        let res = app
            .request(Method::POST, &format!("/api/v1/notes/{id}/attachments"))
            .query(&[("filename", "a.bin")])
            .header("content-type", "application/octet-stream")
            .body(vec![byte; 100])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
    }
    notes_api::backup::create(app.state.jobs(), &dir.display().to_string())
        .await
        .unwrap();
    std::fs::read_dir(dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
}

/// Rewrites the records file with `edit` and fixes the manifest's
/// checksum, so only validation can tell.
fn tamper(snapshot: &std::path::Path, edit: impl FnOnce(&mut Vec<Value>)) {
    use sha2::Digest;
    let mut records = records(snapshot);
    edit(&mut records);
    let body: String = records.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(snapshot.join("records.ndjson"), &body).unwrap();
    edit_manifest(snapshot, |m| {
        m["records_sha256"] = json!(hex::encode(sha2::Sha256::digest(body.as_bytes())));
    });
}

fn records(snapshot: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(snapshot.join("records.ndjson"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn edit_manifest(snapshot: &std::path::Path, edit: impl FnOnce(&mut Value)) {
    let path = snapshot.join("manifest.json");
    let mut manifest: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut manifest);
    std::fs::write(path, manifest.to_string()).unwrap();
}

/// The manifest's last object (the last one restore copies) and the
/// position of its attachment record.
fn last_object(snapshot: &std::path::Path) -> (Value, usize) {
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(snapshot.join("manifest.json")).unwrap()).unwrap();
    let object = manifest["objects"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    let record = records(snapshot)
        .iter()
        .position(|r| r["storage_key"] == object["key"])
        .unwrap();
    (object, record)
}

/// Issue #10 defect 7 and issue #21 defects 5 and 6: a snapshot whose
/// records break the API's rules, point rows at objects they do not own,
/// disagree with their objects (size, sha256, a missing object), carry a
/// version no update could follow, or never end a line is refused whole,
/// with a message naming the record, and leaves the empty deployment empty:
/// no row and no object. Before, a sha256 with a control character
/// restored (and its download panicked the process); a wrong size restored
/// (downloads cut short, a Range request answered "object storage is
/// unavailable"), a wrong sha256 restored (false ETags), a missing object
/// restored (its download a 500), version 2^63 − 1 restored (PATCH a 500),
/// and every refusal left the objects copied so far in storage.
#[tokio::test]
async fn a_hostile_snapshot_is_refused_whole() {
    use std::path::Path;
    // Each edit returns what the message must name besides the keyword.
    type Edit = Box<dyn Fn(&Path) -> String>;
    let first_attachment = |snapshot: &Path| -> (usize, String) {
        let records = records(snapshot);
        let i = records
            .iter()
            .position(|r| r["type"] == "attachment")
            .unwrap();
        (i, records[i]["id"].as_str().unwrap().to_owned())
    };
    let zeros = "0".repeat(64);
    let cases: Vec<(&str, Edit)> = vec![
        (
            "sha256",
            Box::new(move |s| {
                let (i, id) = first_attachment(s);
                tamper(s, |r| {
                    r[i]["sha256"] = json!(format!("{}\n", "a".repeat(63)))
                });
                id
            }),
        ),
        (
            "points at",
            Box::new(move |s| {
                let (i, id) = first_attachment(s);
                tamper(s, |r| r[i]["storage_key"] = json!("../../etc/passwd"));
                id
            }),
        ),
        (
            "note rules",
            Box::new(|s| {
                let i = records(s).iter().position(|r| r["type"] == "note").unwrap();
                tamper(s, |r| r[i]["title"] = json!(""));
                String::new()
            }),
        ),
        // The record disagrees with the object the manifest lists.
        (
            "recorded as 101 bytes",
            Box::new(move |s| {
                let (i, id) = first_attachment(s);
                tamper(s, |r| r[i]["size"] = json!(101));
                id
            }),
        ),
        (
            "recorded with sha256",
            Box::new({
                let zeros = zeros.clone();
                move |s| {
                    let (i, id) = first_attachment(s);
                    tamper(s, |r| r[i]["sha256"] = json!(zeros));
                    id
                }
            }),
        ),
        // Record and manifest agree with each other, not with the bytes:
        // only the copy can tell, after two objects were copied.
        (
            "holds 100 bytes, not the 101",
            Box::new(|s| {
                let (object, i) = last_object(s);
                tamper(s, |r| r[i]["size"] = json!(101));
                edit_manifest(s, |m| {
                    m["objects"].as_array_mut().unwrap().last_mut().unwrap()["size"] = json!(101)
                });
                object["key"].as_str().unwrap().to_owned()
            }),
        ),
        (
            "holds more than the 99 bytes",
            Box::new(|s| {
                let (object, i) = last_object(s);
                tamper(s, |r| r[i]["size"] = json!(99));
                edit_manifest(s, |m| {
                    m["objects"].as_array_mut().unwrap().last_mut().unwrap()["size"] = json!(99)
                });
                object["key"].as_str().unwrap().to_owned()
            }),
        ),
        (
            "is damaged",
            Box::new(move |s| {
                let (object, i) = last_object(s);
                tamper(s, |r| r[i]["sha256"] = json!(zeros));
                edit_manifest(s, |m| {
                    m["objects"].as_array_mut().unwrap().last_mut().unwrap()["sha256"] =
                        json!(zeros)
                });
                object["key"].as_str().unwrap().to_owned()
            }),
        ),
        // A missing object: not in the manifest, or not in the folder.
        (
            "has no object in the snapshot",
            Box::new(|s| {
                let (object, _) = last_object(s);
                edit_manifest(s, |m| {
                    m["objects"].as_array_mut().unwrap().pop();
                });
                object["key"].as_str().unwrap().to_owned()
            }),
        ),
        (
            "is missing from the snapshot",
            Box::new(|s| {
                let (object, _) = last_object(s);
                let key = object["key"].as_str().unwrap();
                std::fs::remove_file(s.join("objects").join(key)).unwrap();
                key.to_owned()
            }),
        ),
        // An object no record names, and an object two records name.
        (
            "no attachment record names",
            Box::new(|s| {
                let key = format!(
                    "attachments/{}/{}",
                    uuid::Uuid::now_v7(),
                    uuid::Uuid::now_v7()
                );
                edit_manifest(s, |m| {
                    m["objects"]
                        .as_array_mut()
                        .unwrap()
                        .push(json!({"key": key, "size": 1, "sha256": "0".repeat(64)}))
                });
                key
            }),
        ),
        (
            "second record for object",
            Box::new(|s| {
                let (object, i) = last_object(s);
                tamper(s, |r| r.push(r[i].clone()));
                edit_manifest(s, |m| {
                    let n = m["counts"]["attachments"].as_u64().unwrap();
                    m["counts"]["attachments"] = json!(n + 1);
                });
                object["key"].as_str().unwrap().to_owned()
            }),
        ),
        // A version no update could follow.
        (
            "has version 9223372036854775807",
            Box::new(|s| {
                let records = records(s);
                let i = records.iter().position(|r| r["type"] == "note").unwrap();
                let id = records[i]["id"].as_str().unwrap().to_owned();
                tamper(s, |r| r[i]["version"] = json!(i64::MAX));
                id
            }),
        ),
        // Every record valid alone, refused by the database once the
        // objects were copied (the same note twice).
        (
            "",
            Box::new(|s| {
                let i = records(s).iter().position(|r| r["type"] == "note").unwrap();
                tamper(s, |r| r.insert(i, r[i].clone()));
                edit_manifest(s, |m| {
                    let n = m["counts"]["notes"].as_u64().unwrap();
                    m["counts"]["notes"] = json!(n + 1);
                });
                String::new()
            }),
        ),
    ];
    // Every case runs; the failures are reported together.
    let mut failures = Vec::new();
    for (expect, edit) in cases {
        let dir = tempfile::tempdir().unwrap();
        let snapshot = snapshot_with_attachment(dir.path()).await;
        let named = edit(&snapshot);
        let fresh = TestApp::spawn().await;
        match notes_api::backup::restore(fresh.state.jobs(), &dir.path().display().to_string())
            .await
        {
            Ok(_) => failures.push(format!("{expect:?}: restored")),
            Err(e) if !e.to_string().contains(expect) || !e.to_string().contains(&named) => {
                failures.push(format!(
                    "{expect:?}: the message does not name {named:?}: {e}"
                ));
            }
            Err(_) => {}
        }
        if !fresh.state.store().is_empty().await.unwrap() {
            failures.push(format!("{expect:?}: rows kept"));
        }
        let objects = fresh.db.stored_objects();
        if objects > 0 {
            failures.push(format!("{expect:?}: {objects} objects kept"));
        }
        // The same deployment then takes the untouched snapshot.
        if expect.is_empty() {
            let good = tempfile::tempdir().unwrap();
            snapshot_with_attachment(good.path()).await;
            notes_api::backup::restore(fresh.state.jobs(), &good.path().display().to_string())
                .await
                .unwrap();
            let objects = fresh.db.stored_objects();
            if objects != 3 {
                failures.push(format!("then restored: {objects} objects, not 3"));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");

    // A records file that never ends its line, and a huge manifest: both
    // refused without being read whole.
    let dir = tempfile::tempdir().unwrap();
    let snapshot = snapshot_with_attachment(dir.path()).await;
    let endless = vec![b'x'; 40 * 1024 * 1024];
    std::fs::write(snapshot.join("records.ndjson"), &endless).unwrap();
    let fresh = TestApp::spawn().await;
    let err = notes_api::backup::restore(fresh.state.jobs(), &dir.path().display().to_string())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("longer than"), "{err}");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(snapshot.join("manifest.json"))
        .unwrap();
    file.set_len(100 * 1024 * 1024).unwrap();
    let err = notes_api::backup::restore(fresh.state.jobs(), &dir.path().display().to_string())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("larger than"), "{err}");
    assert!(fresh.state.store().is_empty().await.unwrap());
}

/// Issue #21, defect 5: a note restored at version 2^63 − 1 made PATCH a
/// 500. A restore now takes versions up to 2^53 − 1, and a note there
/// answers every change with a clear 409, through PATCH and ingest alike,
/// and stays as it was.
#[tokio::test]
async fn a_note_at_the_highest_version_answers_changes_with_a_clear_conflict() {
    let top = notes_api::domain::note::MAX_NOTE_VERSION;
    let dir = tempfile::tempdir().unwrap();
    let snapshot = snapshot_with_attachment(dir.path()).await;
    let i = records(&snapshot)
        .iter()
        .position(|r| r["type"] == "note")
        .unwrap();
    tamper(&snapshot, |r| {
        r[i]["version"] = json!(top);
        r[i]["external_id"] = json!("e-1");
    });
    let app = TestApp::spawn().await;
    notes_api::backup::restore(app.state.jobs(), &dir.path().display().to_string())
        .await
        .unwrap();
    let id = records(&snapshot)[i]["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/notes/{id}");

    for if_match in [None, Some(format!("\"{top}\""))] {
        let mut req = app
            .request(Method::PATCH, &path)
            .json(&json!({"title": "changed"}));
        if let Some(tag) = &if_match {
            req = req.header("if-match", tag);
        }
        let problem = assert_problem(req.send().await.unwrap(), StatusCode::CONFLICT).await;
        let detail = problem["detail"].as_str().unwrap();
        assert!(
            detail.contains(&id) && detail.contains("highest"),
            "{problem}"
        );
    }
    let res = app
        .ingest_ndjson("{\"title\":\"changed\",\"external_id\":\"e-1\"}\n")
        .await;
    assert_problem(res, StatusCode::CONFLICT).await;
    let (status, note) = app.get_json(&path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(note["version"], json!(top));
    assert_eq!(note["title"], "n");
}

/// Issue 21: a snapshot that holds one note or attachment twice was
/// refused as "a note with this external_id already exists"; the refusal
/// now names what is duplicated, and nothing is restored.
#[tokio::test]
async fn a_snapshot_with_a_duplicate_id_is_refused_naming_it() {
    for (kind, expect) in [
        ("note", "a note with this id already exists"),
        // Restore finds this one before the database: two records, one object.
        ("attachment", "is the second record for object"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let snapshot = snapshot_with_attachment(dir.path()).await;
        tamper(&snapshot, |records| {
            let i = records.iter().position(|r| r["type"] == kind).unwrap();
            let twice = records[i].clone();
            records.push(twice);
        });
        // The manifest counts the records too.
        let path = snapshot.join("manifest.json");
        let mut manifest: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let count = &mut manifest["counts"][format!("{kind}s")];
        *count = json!(count.as_u64().unwrap() + 1);
        std::fs::write(&path, manifest.to_string()).unwrap();
        let fresh = TestApp::spawn().await;
        let err = notes_api::backup::restore(fresh.state.jobs(), &dir.path().display().to_string())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(expect), "{kind}: {err}");
        assert!(!err.contains("external_id"), "{kind}: {err}");
        assert!(fresh.state.store().is_empty().await.unwrap(), "{kind}");
    }
}

/// A port nothing listens on (for a server of a test's own).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A Redis of this test's own, so that it can be paused without touching
/// the one other tests share.
struct OwnRedis {
    child: std::process::Child,
    port: u16,
}

impl OwnRedis {
    fn start() -> Self {
        let port = free_port();
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (scripts/test.sh installs it)");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, port }
    }
    fn signal(&self, sig: i32) {
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.signal(libc::SIGCONT);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Redis outage (the server stops answering, as in a partition): readiness
/// turns 503 within 5 s, queue requests fail cleanly with 503 and no
/// internals, and when Redis answers again everything resumes with nothing
/// lost.
#[tokio::test]
async fn a_redis_outage_is_503_and_nothing_is_lost() {
    let redis = OwnRedis::start();
    let url = format!("redis://127.0.0.1:{}/0", redis.port);
    let app = TestApp::spawn_with(|c| {
        c.jobs.queue_url = Some(notes_api::config::Secret::new(url));
        c.jobs.workers = 0;
        c.limits.request_timeout = 3;
    })
    .await;
    let before = app.enqueue("ping", json!({})).await;
    redis.signal(libc::SIGSTOP);
    let started = Instant::now();
    let ready = app.wait_ready(StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_ne!(ready["checks"]["queue"], "ok", "{ready}");
    assert_eq!(ready["checks"]["database"], "ok", "{ready}");
    let res = app
        .post_json("/api/v1/jobs", &json!({"kind": "ping"}))
        .await;
    let p = assert_problem(res, StatusCode::SERVICE_UNAVAILABLE).await;
    let text = p.to_string();
    assert!(
        !text.contains("127.0.0.1") && !text.to_lowercase().contains("redis"),
        "{p}"
    );
    // Notes do not need the queue.
    app.create_note(json!({"title": "during"})).await;

    redis.signal(libc::SIGCONT);
    app.wait_ready(StatusCode::OK).await;
    let (status, job) = app
        .get_json(&format!("/api/v1/jobs/{}", before["id"].as_str().unwrap()))
        .await;
    assert_eq!(status, StatusCode::OK, "{job}");
    assert_eq!(job["status"], "queued");
    app.enqueue("ping", json!({})).await;
}

/// A PostgreSQL server of this test's own (initdb in a temporary
/// directory), so that it can be stopped and started again.
struct OwnPostgres {
    dir: tempfile::TempDir,
    bin: std::path::PathBuf,
    port: u16,
}

impl OwnPostgres {
    fn pg(&self, args: &[&str]) {
        let ok = std::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args([
                "-D",
                &self.data(),
                "-w",
                "-l",
                &format!("{}/log", self.dir.path().display()),
            ])
            .args(args)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(ok, "pg_ctl {args:?}");
    }
    fn data(&self) -> String {
        format!("{}/data", self.dir.path().display())
    }
    fn init() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries (scripts/test.sh installs them)")
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin"))
            .max()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::process::Command::new("chown")
            .args(["postgres", &dir.path().display().to_string()])
            .status()
            .unwrap();
        let port = free_port();
        let pg = Self { dir, bin, port };
        let ok = std::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(pg.bin.join("initdb"))
            .args(["-D", &pg.data(), "--auth=trust", "-U", "postgres"])
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(ok, "initdb");
        pg.start();
        pg
    }
    fn start(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        self.pg(&["-o", &opts, "start"]);
    }
    fn stop(&self) {
        self.pg(&["-m", "fast", "stop"]);
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let _ = std::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// A PostgreSQL outage (the server stops, then starts again): readiness
/// turns 503 within 5 s, writes fail with 503 and no internals, reads of
/// what was there come back once it returns, and nothing is lost.
#[tokio::test]
async fn a_postgres_outage_is_503_and_nothing_is_lost() {
    let pg = OwnPostgres::init();
    let url = format!("postgres://postgres@127.0.0.1:{}/postgres", pg.port);
    let app = TestApp::spawn_with(|c| {
        c.database.database_url = Some(notes_api::config::Secret::new(url));
        c.database.db_connect_timeout = 1;
        c.jobs.workers = 0;
    })
    .await;
    let kept = app
        .create_note(json!({"title": "kept", "body": "through the outage"}))
        .await;
    pg.stop();
    let started = Instant::now();
    let ready = app.wait_ready(StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_ne!(ready["checks"]["database"], "ok", "{ready}");
    let res = app
        .post_json("/api/v1/notes", &json!({"title": "during"}))
        .await;
    let p = assert_problem(res, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(!p.to_string().contains("127.0.0.1"), "{p}");

    pg.start();
    app.wait_ready(StatusCode::OK).await;
    let (status, note) = app
        .get_json(&format!("/api/v1/notes/{}", kept["id"].as_str().unwrap()))
        .await;
    assert_eq!(status, StatusCode::OK, "{note}");
    assert_eq!(note["body"], "through the outage");
    app.create_note(json!({"title": "after"})).await;
    assert_eq!(app.count_notes().await, 2);
}

/// Every JSON body is an object: an array (which serde would read as a
/// struct's fields in order) or a scalar is 422, and nothing is written.
#[tokio::test]
async fn json_bodies_that_are_not_objects_are_refused() {
    let app = TestApp::production().await;
    let note = app.create_note(json!({"title": "kept"})).await;
    let id = note["id"].as_str().unwrap();
    for (method, path, body) in [
        (
            Method::POST,
            "/api/v1/notes".to_owned(),
            "[\"from an array\"]",
        ),
        (Method::POST, "/api/v1/notes".to_owned(), "\"a string\""),
        (Method::POST, "/api/v1/notes".to_owned(), " 42"),
        (Method::PATCH, format!("/api/v1/notes/{id}"), "[]"),
        (
            Method::PATCH,
            format!("/api/v1/notes/{id}"),
            "[\"renamed\"]",
        ),
        (Method::POST, "/api/v1/jobs".to_owned(), "[\"ping\", {}]"),
        (
            Method::POST,
            "/api/v1/keys".to_owned(),
            "[\"k\", [\"admin\"]]",
        ),
    ] {
        let res = app
            .request(method.clone(), &path)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let problem = assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert!(
            problem["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("JSON object"),
            "{method} {path} {body}: {problem}"
        );
    }
    assert_eq!(app.count_notes().await, 1);
    let (_, now) = app.get_json(&format!("/api/v1/notes/{id}")).await;
    assert_eq!(
        (now["title"].as_str(), now["version"].as_i64()),
        (Some("kept"), Some(1))
    );
}
