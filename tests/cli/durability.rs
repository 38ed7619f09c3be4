//! Crashes: a process killed mid-write loses nothing it acknowledged.

use crate::common::{free_port, get_json, notes_api, serve, wait_up};

/// A crash between the database commit and the index commit (the test-only
/// fail point aborts the process there, as `kill -9` would): after a restart
/// the note is searchable, and only once.
#[test]
fn a_crash_before_the_index_commit_loses_nothing_and_indexes_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let start = |fail_point: Option<&str>| {
        let mut cmd = notes_api();
        cmd.arg("serve")
            .env("NOTES_LISTEN", format!("127.0.0.1:{port}"))
            .env("NOTES_DATA_DIR", dir.path())
            .env("NOTES_LOG", "error")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if let Some(f) = fail_point {
            cmd.env("NOTES_FAILPOINT", f);
        }
        cmd.spawn().unwrap()
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = reqwest::Client::new();
    let ready = |client: &reqwest::Client| {
        let url = format!("{base}/readyz");
        let client = client.clone();
        async move {
            for _ in 0..400 {
                if let Ok(r) = client.get(&url).send().await
                    && r.status().is_success()
                {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(25)).await;
            }
            panic!("never ready");
        }
    };

    let mut server = start(Some("index-commit"));
    rt.block_on(async {
        ready(&client).await;
        let res = client
            .post(format!("{base}/api/v1/notes"))
            .json(&serde_json::json!({"title": "Phoenix", "body": "rises from the ashes"}))
            .send()
            .await;
        // The process died before it could answer.
        assert!(res.is_err(), "{res:?}");
    });
    let status = server.wait().unwrap();
    assert!(!status.success(), "the fail point did not fire: {status}");

    let mut server = start(None);
    let (total, hits) = rt.block_on(async {
        ready(&client).await;
        let res: serde_json::Value =
            get_json(&client, format!("{base}/api/v1/search?q=phoenix")).await;
        (res["total"].clone(), res["hits"].as_array().unwrap().len())
    });
    server.kill().unwrap();
    let _ = server.wait();
    assert_eq!(total, 1);
    assert_eq!(hits, 1);
}

/// kill -9 in the middle of a stream of ingests: after a restart every
/// batch that got its 200 is there in full, and no batch is there in part.
#[test]
fn kill_9_during_ingest_keeps_every_acknowledged_batch_and_no_partial_one() {
    const PER_BATCH: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = reqwest::Client::new();
    let mut server = serve(dir.path(), port);
    let acknowledged = rt.block_on(async {
        wait_up(&client, &base).await;
        let mut acknowledged = Vec::new();
        let started = std::time::Instant::now();
        let mut batch = 0;
        while started.elapsed() < std::time::Duration::from_millis(1500) {
            let body: String = (0..PER_BATCH)
                .map(|i| {
                    format!(
                        "{}\n",
                        serde_json::json!({"title": format!("b{batch} n{i}"), "body": "x".repeat(500), "tags": [format!("b{batch}")]})
                    )
                })
                .collect();
            let res = client
                .post(format!("{base}/api/v1/ingest"))
                .header("content-type", "application/x-ndjson")
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            acknowledged.push(batch);
            batch += 1;
        }
        // One more in flight when the kill lands.
        let body: String = (0..PER_BATCH)
            .map(|i| format!("{}\n", serde_json::json!({"title": format!("b{batch} n{i}"), "tags": [format!("b{batch}")]})))
            .collect();
        let pid = server.id() as i32;
        let in_flight = client
            .post(format!("{base}/api/v1/ingest"))
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send();
        let kill = async {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            // SAFETY: signalling our own child process.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        };
        let (res, ()) = tokio::join!(in_flight, kill);
        if res.is_ok_and(|r| r.status() == 200) {
            acknowledged.push(batch);
        }
        acknowledged
    });
    let _ = server.wait();
    assert!(acknowledged.len() >= 2, "too few batches to mean anything");

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = serve(dir.path(), port);
    rt.block_on(async {
        wait_up(&client, &base).await;
        let last = *acknowledged.last().unwrap() + 1;
        for batch in 0..=last {
            let mut count = 0;
            let mut cursor: Option<String> = None;
            loop {
                let mut url = format!("{base}/api/v1/notes?tag=b{batch}&limit=100");
                if let Some(c) = &cursor {
                    url.push_str(&format!("&cursor={c}"));
                }
                let page: serde_json::Value = get_json(&client, url).await;
                count += page["items"].as_array().unwrap().len();
                match page["next_cursor"].as_str() {
                    Some(c) => cursor = Some(c.to_owned()),
                    None => break,
                }
            }
            if acknowledged.contains(&batch) {
                assert_eq!(count, PER_BATCH, "acknowledged batch {batch} lost notes");
            } else {
                assert!(
                    count == 0 || count == PER_BATCH,
                    "batch {batch} is partial: {count}"
                );
            }
        }
    });
    server.kill().unwrap();
    let _ = server.wait();
}
