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
