//! The binary's subcommands as an operator runs them.

use std::process::Command;

fn notes_api() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_notes-api"));
    cmd.env_clear();
    cmd
}

#[test]
fn production_refuses_to_start_without_a_master_key_and_says_why() {
    let out = notes_api()
        .arg("serve")
        .env("NOTES_ENV", "production")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("NOTES_MASTER_KEY"), "{stderr}");

    let out = notes_api()
        .arg("serve")
        .env("NOTES_ENV", "production")
        .env("NOTES_MASTER_KEY", "too-short")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 32 bytes"));
}

#[test]
fn config_prints_effective_settings_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("master");
    std::fs::write(&key_file, "m".repeat(48)).unwrap();
    let out = notes_api()
        .arg("config")
        .env("NOTES_ENV", "production")
        .env("NOTES_MASTER_KEY_FILE", &key_file)
        .env(
            "NOTES_DATABASE_URL",
            "sqlite:///var/lib/notes/secret-path.db",
        )
        .env("NOTES_CORS_ORIGINS", "https://a.example,https://b.example")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains(&"m".repeat(48)), "{stdout}");
    assert!(!stdout.contains("secret-path"), "{stdout}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["env"], "production");
    assert_eq!(v["master_key"], "<redacted>");
    assert_eq!(v["cors_origins"][1], "https://b.example");
}

/// Development mode checks no key, so it serves beyond loopback only when
/// told to; the refusal names the three ways out. A master key lifts it.
#[test]
fn an_open_api_beyond_loopback_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = notes_api()
        .arg("serve")
        .env("NOTES_LISTEN", "0.0.0.0:0")
        .env("NOTES_DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for hint in [
        "NOTES_MASTER_KEY",
        "127.0.0.1",
        "NOTES_ALLOW_UNAUTHENTICATED=true",
    ] {
        assert!(stderr.contains(hint), "{hint}: {stderr}");
    }
    assert!(
        !dir.path().join("notes.db").exists(),
        "refused before anything was opened"
    );
}

#[test]
fn healthcheck_fails_when_nothing_listens() {
    let out = notes_api()
        .args(["healthcheck", "--timeout", "1"])
        .env("NOTES_LISTEN", "127.0.0.1:1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn healthcheck_passes_against_a_running_server_and_migrate_works() {
    let dir = tempfile::tempdir().unwrap();
    let migrate = notes_api()
        .arg("migrate")
        .env("NOTES_DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    assert!(dir.path().join("notes.db").exists());

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("0.0.0.0:{port}");
    let mut server = notes_api()
        .arg("serve")
        .env("NOTES_LISTEN", &listen)
        .env("NOTES_ALLOW_UNAUTHENTICATED", "true")
        .env("NOTES_DATA_DIR", dir.path())
        .env("NOTES_MIGRATE_ON_START", "false")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut ok = false;
    for _ in 0..100 {
        let out = notes_api()
            .arg("healthcheck")
            .env("NOTES_LISTEN", &listen)
            .output()
            .unwrap();
        if out.status.success() {
            ok = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    server.kill().unwrap();
    let _ = server.wait();
    assert!(ok, "healthcheck never passed");
}

/// `backup` then `restore` as an operator runs them: into an empty data
/// directory it works, into one that holds data it is refused, loudly.
#[test]
fn a_bad_schedule_stops_every_subcommand_before_it_starts() {
    for args in [&["serve"][..], &["worker"], &["config"], &["migrate"]] {
        let out = notes_api()
            .args(args)
            .env("NOTES_SCHEDULE", "backup=61 * * * *")
            .env("NOTES_DATA_DIR", "/nonexistent/never-created")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("NOTES_SCHEDULE") && stderr.contains("not a cron pattern"),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn backup_and_restore_from_the_command_line() {
    let source = tempfile::tempdir().unwrap();
    let target = tempfile::tempdir().unwrap();
    let backups = tempfile::tempdir().unwrap();
    let run = |data: &std::path::Path, args: &[&str]| {
        notes_api()
            .args(args)
            .env("NOTES_DATA_DIR", data)
            .env("NOTES_LOG", "error")
            .output()
            .unwrap()
    };
    // A deployment with one note, written through the library's store.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let url = format!("sqlite://{}/notes.db", source.path().display());
        let store = notes_api::store::connect(&url, &Default::default())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let draft: notes_api::domain::note::NoteDraft =
            serde_json::from_value(serde_json::json!({"title": "Wombat", "body": "cubes"}))
                .unwrap();
        store.create_note(draft.validate().unwrap()).await.unwrap();
        store.close().await;
    });

    // A backup opens only the database and the blobs: a queue URL that
    // nothing answers is never dialled, and no search index is built.
    let out = notes_api()
        .args(["backup", "--to", &backups.path().display().to_string()])
        .env("NOTES_DATA_DIR", source.path())
        .env("NOTES_LOG", "error")
        .env("NOTES_QUEUE_URL", "redis://127.0.0.1:1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["counts"]["notes"], 1, "{summary}");
    assert!(!source.path().join("index").exists());

    let from = backups.path().display().to_string();
    let out = run(target.path(), &["restore", "--from", &from]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let count = rt.block_on(async {
        let url = format!("sqlite://{}/notes.db", target.path().display());
        let store = notes_api::store::connect(&url, &Default::default())
            .await
            .unwrap();
        let n = store.count_notes().await.unwrap();
        store.close().await;
        n
    });
    assert_eq!(count, 1);

    // Again into the now non-empty deployment: refused, exit 2, says why.
    let out = run(target.path(), &["restore", "--from", &from]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("empty database"));
    // A location without a backup.
    let out = run(
        target.path(),
        &[
            "restore",
            "--from",
            &source.path().join("nothing").display().to_string(),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no backup found"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

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
        let res: serde_json::Value = client
            .get(format!("{base}/api/v1/search?q=phoenix"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (res["total"].clone(), res["hits"].as_array().unwrap().len())
    });
    server.kill().unwrap();
    let _ = server.wait();
    assert_eq!(total, 1);
    assert_eq!(hits, 1);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn serve(data: &std::path::Path, port: u16) -> std::process::Child {
    notes_api()
        .arg("serve")
        .env("NOTES_LISTEN", format!("127.0.0.1:{port}"))
        .env("NOTES_DATA_DIR", data)
        .env("NOTES_LOG", "error")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

async fn wait_up(client: &reqwest::Client, base: &str) {
    for _ in 0..200 {
        if let Ok(res) = client.get(format!("{base}/readyz")).send().await
            && res.status() == 200
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the server never became ready");
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
                let page: serde_json::Value =
                    client.get(url).send().await.unwrap().json().await.unwrap();
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

/// Error tracking against a real Sentry-compatible server (Bugsink, which
/// scripts/test.sh starts): a 5xx is reported with release and environment,
/// and the report holds no secret and no request body.
#[test]
fn a_5xx_is_reported_to_bugsink_without_secrets() {
    let env = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!(
                "{name} is not set: run scripts/test.sh, which starts Bugsink and sets BUGSINK_*"
            )
        })
    };
    let (url, dsn, project, token) = (
        env("BUGSINK_URL"),
        env("BUGSINK_DSN"),
        env("BUGSINK_PROJECT"),
        env("BUGSINK_TOKEN"),
    );
    let marker = uuid::Uuid::new_v4().simple().to_string();
    let master = format!("master-{marker}-0123456789abcdef");
    let s3_secret = format!("s3secret{marker}");
    let body_marker = format!("body-{marker}");
    let request_id = format!("bugsink-{marker}");

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    // Attachments on an S3 endpoint nothing answers: uploads are 503.
    let mut server = notes_api()
        .arg("serve")
        .env("NOTES_LISTEN", format!("127.0.0.1:{port}"))
        .env("NOTES_DATA_DIR", dir.path())
        .env("NOTES_ENV", "production")
        .env("NOTES_MASTER_KEY", &master)
        .env("NOTES_STORAGE_URL", "s3://nowhere")
        .env("NOTES_S3_ENDPOINT", "http://127.0.0.1:1")
        .env("NOTES_S3_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env("NOTES_S3_SECRET_ACCESS_KEY", &s3_secret)
        .env("NOTES_SENTRY_DSN", &dsn)
        .env("NOTES_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = reqwest::Client::new();
    rt.block_on(async {
        for _ in 0..200 {
            if client.get(format!("{base}/healthz")).send().await.is_ok() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let note: serde_json::Value = client
            .post(format!("{base}/api/v1/notes"))
            .bearer_auth(&master)
            .json(&serde_json::json!({"title": "n"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let res = client
            .post(format!(
                "{base}/api/v1/notes/{}/attachments?filename=a.txt",
                note["id"].as_str().unwrap()
            ))
            .bearer_auth(&master)
            .header("x-request-id", &request_id)
            .header("content-type", "text/plain")
            .body(body_marker.clone())
            .send()
            .await
            .unwrap();
        assert!(res.status().is_server_error(), "{}", res.status());
    });
    // SIGTERM: the process drains and flushes its reports before it exits.
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    let _ = server.wait();

    let api = format!("{url}/api/canonical/0");
    let get = |path: String| {
        let client = client.clone();
        let token = token.clone();
        async move {
            let res = client.get(path).bearer_auth(token).send().await.unwrap();
            assert_eq!(res.status(), 200);
            res.json::<serde_json::Value>().await.unwrap()
        }
    };
    let event = rt.block_on(async {
        for _ in 0..50 {
            let issues = get(format!(
                "{api}/issues/?project={project}&q=request%20failed"
            ))
            .await;
            for issue in issues["results"].as_array().into_iter().flatten() {
                let events = get(format!(
                    "{api}/events/?issue={}",
                    issue["id"].as_str().unwrap()
                ))
                .await;
                for e in events["results"].as_array().into_iter().flatten().take(20) {
                    let full = get(format!("{api}/events/{}/", e["id"].as_str().unwrap())).await;
                    if full.to_string().contains(&request_id) {
                        return full;
                    }
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        panic!("no event with request id {request_id} reached Bugsink");
    });
    let data = &event["data"];
    assert_eq!(data["environment"], "production", "{data}");
    assert!(
        data["release"].as_str().unwrap().starts_with("notes-api@"),
        "{data}"
    );
    let text = event.to_string();
    for secret in [&master, &s3_secret, &body_marker] {
        assert!(
            !text.contains(secret.as_str()),
            "a secret or the body reached Bugsink: {text}"
        );
    }
}
