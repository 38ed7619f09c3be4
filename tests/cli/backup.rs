//! `backup` and `restore` from the command line.

use crate::common::{assert_ok, notes_api, run_ok};

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
    let out = run_ok(
        notes_api()
            .args(["backup", "--to", &backups.path().display().to_string()])
            .env("NOTES_DATA_DIR", source.path())
            .env("NOTES_LOG", "error")
            .env("NOTES_QUEUE_URL", "redis://127.0.0.1:1"),
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["counts"]["notes"], 1, "{summary}");
    assert!(!source.path().join("index").exists());

    let from = backups.path().display().to_string();
    let out = run(target.path(), &["restore", "--from", &from]);
    assert_ok(&out);
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

/// Issue 27: `--keep N` keeps the N newest complete snapshots where it
/// writes, removes older ones and interrupted ones older than a day, and
/// leaves alone a snapshot still being written and anything not a
/// snapshot. `NOTES_BACKUP_KEEP` is the same setting.
#[test]
fn backups_keep_the_newest_and_clean_up_interrupted_ones() {
    let data = tempfile::tempdir().unwrap();
    let backups = tempfile::tempdir().unwrap();
    let to = backups.path().display().to_string();
    let stamp = |ago: chrono::TimeDelta| {
        format!(
            "notes-api-{}-0a1b2c3d",
            (chrono::Utc::now() - ago).format("%Y%m%dT%H%M%S%.3fZ")
        )
    };
    // Interrupted two days ago, interrupted an hour ago (maybe still
    // running elsewhere), and someone else's files.
    let stale = stamp(chrono::TimeDelta::days(2));
    let running = stamp(chrono::TimeDelta::hours(1));
    for dir in [&stale, &running, &"photos".to_owned()] {
        std::fs::create_dir_all(backups.path().join(dir)).unwrap();
        std::fs::write(backups.path().join(dir).join("records.ndjson"), "x").unwrap();
    }
    let backup = |keep: Option<&str>, env_keep: Option<&str>| {
        let mut cmd = notes_api();
        cmd.args(["backup", "--to", &to])
            .env("NOTES_DATA_DIR", data.path())
            .env("NOTES_LOG", "error");
        if let Some(keep) = keep {
            cmd.args(["--keep", keep]);
        }
        if let Some(keep) = env_keep {
            cmd.env("NOTES_BACKUP_KEEP", keep);
        }
        let out = run_ok(&mut cmd);
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let complete = || {
        let mut names: Vec<String> = std::fs::read_dir(backups.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| backups.path().join(n).join("manifest.json").exists())
            .collect();
        names.sort();
        names
    };
    // Without a retention nothing is removed.
    let first = backup(None, None);
    assert_eq!(first["removed"], serde_json::json!([]), "{first}");
    backup(None, None);
    let third = backup(None, None);
    assert_eq!(complete().len(), 3);
    assert!(backups.path().join(&stale).exists());

    // Keep 2: the fourth removes the two oldest, and the stale interrupted one.
    let fourth = backup(Some("2"), None);
    let kept = complete();
    assert_eq!(kept.len(), 2, "{fourth}");
    assert_eq!(kept[0], third["snapshot"].as_str().unwrap(), "{fourth}");
    assert_eq!(kept[1], fourth["snapshot"].as_str().unwrap());
    assert_eq!(fourth["removed"].as_array().unwrap().len(), 2, "{fourth}");
    assert_eq!(fourth["removed"][0], first["snapshot"]);
    assert_eq!(fourth["interrupted_removed"], serde_json::json!([stale]));
    assert!(!backups.path().join(&stale).exists());
    assert!(
        backups.path().join(&running).exists(),
        "a fresh one may still be written"
    );
    assert!(backups.path().join("photos/records.ndjson").exists());

    // The environment variable is the same setting; the flag wins over it.
    backup(None, Some("1"));
    assert_eq!(complete().len(), 1);
    backup(Some("0"), Some("1"));
    assert_eq!(complete().len(), 2, "--keep 0 keeps every snapshot");

    // Restore still finds the newest complete snapshot.
    let target = tempfile::tempdir().unwrap();
    assert_ok(
        &notes_api()
            .args(["restore", "--from", &to])
            .env("NOTES_DATA_DIR", target.path())
            .env("NOTES_LOG", "error")
            .output()
            .unwrap(),
    );

    // A bad value is refused by name, before anything is written.
    let out = notes_api()
        .args(["backup", "--to", &to, "--keep=-1"])
        .env("NOTES_DATA_DIR", data.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--keep"));
    assert_eq!(complete().len(), 2);
}
