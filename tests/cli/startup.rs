//! Starting up: refusals with their reasons, the effective configuration,
//! the image's health check, migrations and the schedule.

use crate::common::{assert_ok, free_port, notes_api, run_ok};

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
    let out = run_ok(
        notes_api()
            .arg("config")
            .env("NOTES_ENV", "production")
            .env("NOTES_MASTER_KEY_FILE", &key_file)
            .env(
                "NOTES_DATABASE_URL",
                "sqlite:///var/lib/notes/secret-path.db",
            )
            .env("NOTES_CORS_ORIGINS", "https://a.example,https://b.example"),
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

/// A process that leaves migrations to the Job refuses an older schema
/// (a `kubectl apply` whose immutable Job did not run again), and
/// `migrate --check` is what an init container waits on.
#[test]
fn without_migrate_on_start_an_unmigrated_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        notes_api()
            .args(args)
            .env("NOTES_DATA_DIR", dir.path())
            .env("NOTES_MIGRATE_ON_START", "false")
            .env("NOTES_LISTEN", format!("127.0.0.1:{}", free_port()))
            .output()
            .unwrap()
    };
    for args in [&["serve"][..], &["worker"], &["migrate", "--check"]] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("schema is behind") && stderr.contains("notes-api migrate"),
            "{args:?}: {stderr}"
        );
    }
    // --wait keeps polling until the deadline, then fails the same way.
    let started = std::time::Instant::now();
    let out = run(&["migrate", "--check", "--wait", "3"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(started.elapsed() >= std::time::Duration::from_secs(3));

    assert!(run(&["migrate"]).status.success());
    let out = run(&["migrate", "--check"]);
    assert_ok(&out);
}

#[test]
fn healthcheck_passes_against_a_running_server_and_migrate_works() {
    let dir = tempfile::tempdir().unwrap();
    run_ok(notes_api().arg("migrate").env("NOTES_DATA_DIR", dir.path()));
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
