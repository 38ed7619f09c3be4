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
    let app = TestApp::spawn_with(|c| c.header_timeout = 1).await;
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

/// Defect 5: a body that stops arriving is cut at NOTES_IDLE_TIMEOUT, long
/// before the request timeout, and leaves nothing behind.
#[tokio::test]
async fn a_stalled_body_is_cut_at_the_idle_timeout() {
    let app = TestApp::spawn_with(|c| c.idle_timeout = 1).await;
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
        c.max_connections = 2;
        c.header_timeout = 30;
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
    let a = TcpStream::connect(addr(&app)).await.unwrap();
    let b = TcpStream::connect(addr(&app)).await.unwrap();
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
        c.rate_limit = Some(1);
        c.rate_burst = Some(5);
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
        c.rate_limit = Some(1);
        c.rate_burst = Some(2);
        c.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
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

/// Defect 3: with every heavy slot taken, the next heavy request waits a
/// second and is shed with 503 + Retry-After; light routes still answer.
#[tokio::test]
async fn heavy_requests_beyond_their_slots_are_shed() {
    let app = TestApp::spawn_with(|c| c.max_heavy_requests = 1).await;
    let note = app.create_note(json!({"title": "holder"})).await;
    let id = note["id"].as_str().unwrap().to_owned();
    // An upload whose body never ends holds the only slot.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    tx.send(Ok(vec![0u8; 1024])).await.unwrap();
    let body = reqwest::Body::wrap_stream(tokio_stream_from(rx));
    let upload = app
        .request(Method::POST, &format!("/api/v1/notes/{id}/attachments"))
        .query(&[("filename", "slow.bin")])
        .header("content-type", "application/octet-stream")
        .body(body)
        .send();
    let upload = tokio::spawn(upload);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let started = Instant::now();
    let res = app.post_json("/api/v1/notes", &json!({"title": "t"})).await;
    assert_eq!(res.headers()["retry-after"], "1");
    assert_problem(res, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(started.elapsed() >= Duration::from_millis(900));
    let (status, _) = app.get_json(&format!("/api/v1/notes/{id}")).await;
    assert_eq!(status, StatusCode::OK, "a light route does not wait");
    assert!(app.metrics().await.contains("http_shed_total"));

    drop(tx);
    let _ = upload.await;
    app.create_note(json!({"title": "after"})).await;
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

/// A snapshot made by `backup` into `dir`, with one attachment; returns
/// the snapshot folder.
async fn snapshot_with_attachment(dir: &std::path::Path) -> std::path::PathBuf {
    let app = TestApp::spawn().await;
    let note = app.create_note(json!({"title": "n"})).await;
    let id = note["id"].as_str().unwrap();
    let res = app
        .request(Method::POST, &format!("/api/v1/notes/{id}/attachments"))
        .query(&[("filename", "a.bin")])
        .header("content-type", "application/octet-stream")
        .body(vec![7u8; 100])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
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
/// checksum and counts, so only validation can tell.
fn tamper(snapshot: &std::path::Path, edit: impl Fn(&mut Vec<Value>)) {
    use sha2::Digest;
    let text = std::fs::read_to_string(snapshot.join("records.ndjson")).unwrap();
    let mut records: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    edit(&mut records);
    let body: String = records.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(snapshot.join("records.ndjson"), &body).unwrap();
    let mut manifest: Value =
        serde_json::from_slice(&std::fs::read(snapshot.join("manifest.json")).unwrap()).unwrap();
    manifest["records_sha256"] = json!(hex::encode(sha2::Sha256::digest(body.as_bytes())));
    std::fs::write(snapshot.join("manifest.json"), manifest.to_string()).unwrap();
}

/// Defect 7: a snapshot whose records break the API's rules, point rows at
/// objects they do not own, or never end a line is refused whole, and the
/// empty deployment stays empty. Before, a sha256 with a control character
/// restored, and the download of that attachment panicked the process.
#[tokio::test]
async fn a_hostile_snapshot_is_refused_whole() {
    type Edit = Box<dyn Fn(&mut Vec<Value>)>;
    let attachment = |records: &mut Vec<Value>| -> usize {
        records
            .iter()
            .position(|r| r["type"] == "attachment")
            .unwrap()
    };
    let cases: Vec<(&str, Edit)> = vec![
        (
            "sha256",
            Box::new(move |r| {
                let i = attachment(r);
                r[i]["sha256"] = json!(format!("{}\n", "a".repeat(63)));
            }),
        ),
        (
            "points at",
            Box::new(move |r| {
                let i = attachment(r);
                r[i]["storage_key"] = json!("../../etc/passwd");
            }),
        ),
        (
            "note rules",
            Box::new(|r| {
                let i = r.iter().position(|r| r["type"] == "note").unwrap();
                r[i]["title"] = json!("");
            }),
        ),
    ];
    for (expect, edit) in cases {
        let dir = tempfile::tempdir().unwrap();
        let snapshot = snapshot_with_attachment(dir.path()).await;
        tamper(&snapshot, edit);
        let fresh = TestApp::spawn().await;
        let err = notes_api::backup::restore(fresh.state.jobs(), &dir.path().display().to_string())
            .await
            .unwrap_err();
        assert!(err.to_string().contains(expect), "{expect}: {err}");
        assert!(
            fresh.state.store().is_empty().await.unwrap(),
            "{expect}: rows kept"
        );
    }

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

/// Issue 21: a snapshot that holds one note or attachment twice was
/// refused as "a note with this external_id already exists"; the refusal
/// now names what is duplicated, and nothing is restored.
#[tokio::test]
async fn a_snapshot_with_a_duplicate_id_is_refused_naming_it() {
    for (kind, expect) in [
        ("note", "a note with this id already exists"),
        ("attachment", "an attachment with this"),
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
        c.queue_url = Some(notes_api::config::Secret::new(url));
        c.workers = 0;
        c.request_timeout = 3;
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
        c.database_url = Some(notes_api::config::Secret::new(url));
        c.db_connect_timeout = 1;
        c.workers = 0;
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
