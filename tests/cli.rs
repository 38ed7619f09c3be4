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
