//! Hostile bytes on the wire against a real server.

use crate::common::{free_port, notes_api};

/// One raw HTTP/1.1 exchange: `request` as bytes on a fresh socket; the
/// status the server answered, or None when it closed without one.
fn exchange(addr: &str, request: &[u8]) -> Option<u16> {
    use std::io::{Read, Write};
    let mut sock = std::net::TcpStream::connect(addr).ok()?;
    sock.set_read_timeout(Some(std::time::Duration::from_secs(15)))
        .unwrap();
    // The server may refuse before the whole request is sent.
    let _ = sock.write_all(request);
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(2).any(|w| w == b"\r\n") {
        match sock.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let line = String::from_utf8_lossy(&head);
    line.split(' ').nth(1)?.parse().ok()
}

/// The hostile corpus: methods, paths, headers and bodies that a client
/// without a key can send, several hundred of them, against a real process
/// with slow sockets held open throughout. No 5xx, no panic, and the
/// process's peak RSS (VmHWM, from /proc) stays under 200 MiB.
#[test]
fn the_hostile_corpus_gets_no_5xx_and_memory_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let stderr = std::fs::File::create(dir.path().join("stderr")).unwrap();
    let mut server = notes_api()
        .arg("serve")
        .env("NOTES_LISTEN", &addr)
        .env("NOTES_DATA_DIR", dir.path())
        .env("NOTES_LOG", "warn")
        .env("NOTES_HEADER_TIMEOUT", "3")
        .env("NOTES_IDLE_TIMEOUT", "5")
        // The corpus sends `Host: x`: this development server answers for it,
        // so every case reaches the handlers instead of the host check.
        .env("NOTES_PUBLIC_URL", "http://x")
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if exchange(
            &addr,
            b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        ) == Some(200)
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let note = {
        use std::io::{Read, Write};
        let body = r#"{"title":"target"}"#;
        let mut sock = std::net::TcpStream::connect(&addr).unwrap();
        write!(sock, "POST /api/v1/notes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
        let mut out = String::new();
        sock.read_to_string(&mut out).unwrap();
        let json = &out[out.find("\r\n\r\n").unwrap() + 4..];
        serde_json::from_str::<serde_json::Value>(json).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };

    // Slow clients dribbling headers the whole time.
    let slow: Vec<_> = (0..50)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                use std::io::Write;
                if let Ok(mut s) = std::net::TcpStream::connect(&addr) {
                    for b in b"GET /healthz HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa" {
                        if s.write_all(&[*b]).is_err() {
                            break;
                        }
                        std::thread::sleep(std::time::Duration::from_millis(200));
                    }
                }
            })
        })
        .collect();

    let paths = [
        "/api/v1/notes".to_owned(),
        format!("/api/v1/notes/{note}"),
        format!("/api/v1/notes/{note}/attachments"),
        "/api/v1/notes/not-a-uuid".into(),
        "/api/v1/notes/%ZZ%00".into(),
        "/api/v1/notes/..%2F..%2Fetc%2Fpasswd".into(),
        "/api/v1/../../etc/passwd".into(),
        format!("/api/v1/notes/{}", "a".repeat(8000)),
        "/api/v1/search?q=%ff%fe%fd".into(),
        format!("/api/v1/search?q={}", "(".repeat(2000)),
        "/api/v1/search?q=a&limit=99999999999999999999999".into(),
        "/api/v1/search?q=\"\"\"-*-*&offset=-1".into(),
        "/api/v1/notes?limit=-1&cursor=%ff".into(),
        "/api/v1/jobs?status=%27%3B%20DROP%20TABLE%20jobs".into(),
        "/api/v1/ingest".into(),
        "/api/v1/keys".into(),
        "/api/v1/attachments/00000000-0000-0000-0000-000000000000/content".into(),
        "//api//v1//notes//".into(),
        "/readyz?x=%".into(),
        "/metrics".into(),
    ];
    let methods = [
        "GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "TRACE", "FOO", "M-SEARCH",
    ];
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        (
            "application/json",
            br#"{"title": "'; DROP TABLE notes; --"}"#.to_vec(),
        ),
        (
            "application/json",
            br#"{"title": 1e999999, "tags": [1e400]}"#.to_vec(),
        ),
        (
            "application/json",
            format!("{{\"title\":\"x\",\"metadata\":{deep}}}").into_bytes(),
        ),
        ("application/json", deep.clone().into_bytes()),
        ("application/json", b"{\"title\":\"\xff\xfe\"}".to_vec()),
        ("application/json", b"{\"title\":\"a\\u0000b\"}".to_vec()),
        (
            "application/json",
            format!("[{}0]", "0,".repeat(1_500_000)).into_bytes(),
        ),
        ("application/json", b"null".to_vec()),
        ("application/json", b"{\"title\":".to_vec()),
        (
            "application/merge-patch+json",
            br#"{"tags": null, "title": null}"#.to_vec(),
        ),
        (
            "application/x-ndjson",
            format!("{{\"title\":\"{}\"}}\n", "x".repeat(5 * 1024 * 1024)).into_bytes(),
        ),
        (
            "application/x-ndjson",
            b"\xff\xfe\n{}\n\n{\"title\":[]}\n".to_vec(),
        ),
        ("multipart/form-data; boundary=b", vec![0u8; 1024 * 1024]),
        ("multipart/form-data", b"--b\r\n\r\n".to_vec()),
        ("text/plain", b"<script>alert(1)</script>".to_vec()),
        ("application/octet-stream", vec![0u8; 2 * 1024 * 1024]),
    ];
    let mut cases: Vec<Vec<u8>> = Vec::new();
    for path in &paths {
        for method in methods {
            cases.push(
                format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    .into_bytes(),
            );
        }
    }
    for path in paths.iter().take(8).chain(paths.iter().skip(14).take(1)) {
        for method in ["POST", "PATCH"] {
            for (ct, body) in &bodies {
                let mut req = format!(
                    "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                )
                .into_bytes();
                req.extend_from_slice(body);
                cases.push(req);
            }
        }
    }
    let raw: Vec<Vec<u8>> = vec![
        format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(200 * 1024)).into_bytes(),
        format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{}\r\n", "X-A: b\r\n".repeat(2000)).into_bytes(),
        format!("{} / HTTP/1.1\r\nHost: x\r\n\r\n", "M".repeat(20_000)).into_bytes(),
        b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n".to_vec(),
        b"GET /healthz HTTP/1.0\r\n\r\n".to_vec(),
        b"GET http://evil.example/healthz HTTP/1.1\r\nHost: evil\r\n\r\n".to_vec(),
        b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"GET /healthz HTTP/1.1\r\nHost: \xff\r\n\r\n".to_vec(),
        b"POST /api/v1/notes HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n".to_vec(),
        b"POST /api/v1/notes HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n".to_vec(),
        b"POST /api/v1/notes HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello".to_vec(),
        b"POST /api/v1/notes HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nzz\r\n".to_vec(),
        b"POST /api/v1/notes HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\nfffffffffffffff\r\n".to_vec(),
        b"POST /api/v1/notes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 99999999999\r\n\r\n{".to_vec(),
        b"POST /api/v1/ingest HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\nContent-Length: 999999999999\r\n\r\n".to_vec(),
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: \x01\x02\x7f\r\n\r\n".to_vec(),
        format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: {}\r\n\r\n", "r".repeat(5000)).into_bytes(),
        b"GET /api/v1/notes HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \r\n\r\n".to_vec(),
        b"GET /api/v1/notes HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"\xff\"\r\n\r\n".to_vec(),
        format!("GET /api/v1/attachments/{note}/content HTTP/1.1\r\nHost: x\r\nRange: bytes=-0,9999999999999999999-\r\n\r\n").into_bytes(),
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(),
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
        b"\r\n\r\n\r\n".to_vec(),
    ];
    cases.extend(raw);
    assert!(cases.len() >= 300, "{} cases", cases.len());

    let mut server_errors = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        if let Some(status) = exchange(&addr, case)
            && status >= 500
        {
            let line = String::from_utf8_lossy(&case[..case.len().min(120)]).into_owned();
            server_errors.push(format!("case {i} -> {status}: {line}"));
        }
    }
    // DNS rebinding (issue 21, defect 7): a page that points its own name
    // at this development server gets a 421 on every route but the probes.
    let rebound: Vec<Option<u16>> = [
        "GET /admin/keys",
        "POST /admin/keys",
        "GET /api/v1/notes",
        "POST /api/v1/keys",
        "GET /openapi.json",
    ]
    .iter()
    .map(|line| {
        let req = format!(
            "{line} HTTP/1.1\r\nHost: attacker.example:{port}\r\nOrigin: http://attacker.example:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        exchange(&addr, req.as_bytes())
    })
    .collect();
    assert!(rebound.iter().all(|s| *s == Some(421)), "{rebound:?}");

    for t in slow {
        let _ = t.join();
    }
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.id())).unwrap();
    let peak_kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    let alive = exchange(
        &addr,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    server.kill().unwrap();
    let _ = server.wait();
    let log = std::fs::read_to_string(dir.path().join("stderr")).unwrap_or_default();
    eprintln!(
        "hostile corpus: {} cases, peak RSS {} MiB",
        cases.len(),
        peak_kib / 1024
    );
    assert!(server_errors.is_empty(), "{server_errors:#?}");
    assert_eq!(alive, Some(200), "the server did not survive the corpus");
    assert!(!log.contains("panicked"), "{log}");
    assert!(peak_kib < 200 * 1024, "peak RSS {} MiB", peak_kib / 1024);
}
