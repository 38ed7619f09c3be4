//! The progress of the long commands (issue #26): on a terminal a bar per
//! stage with the count, the rate and the time left; otherwise log lines
//! on stderr, so that stdout holds the report alone. A server logs its
//! index build the same way.

use std::path::Path;

use serde_json::Value;

use crate::common::{assert_ok, free_port, notes_api, on_a_terminal, wait_up, write};

/// Three notes, one of them with an image.
fn vault(root: &Path) {
    write(
        root,
        "Projects/Plan.md",
        b"# The plan\nSee ![[chart.png]]\n",
    );
    write(root, "Projects/chart.png", b"\x89PNG not really");
    write(root, "Inbox.md", b"just text");
    write(root, "Ideas/Wombats.md", b"cubes #zoology");
}

/// A deployment made by importing [`vault`].
fn deployment() -> tempfile::TempDir {
    let data = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    vault(src.path());
    let out = notes_api()
        .args(["import", "--from", src.path().to_str().unwrap()])
        .env("NOTES_DATA_DIR", data.path())
        .env("NOTES_LOG", "error")
        .output()
        .unwrap();
    assert_ok(&out);
    data
}

fn assert_drew(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "no {part:?} in {text:?}");
    }
}

#[test]
fn on_a_terminal_each_long_command_draws_its_progress() {
    let src = tempfile::tempdir().unwrap();
    vault(src.path());
    let data = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let path = |p: &Path| p.to_str().unwrap().to_owned();
    let env = [("NOTES_DATA_DIR", data.path().to_str().unwrap())];

    let Some((ok, text)) = on_a_terminal(&["import", "--from", &path(src.path())], &env) else {
        eprintln!("no `script` (util-linux) to make a pseudo-terminal; skipped");
        return;
    };
    assert!(ok, "{text}");
    assert_drew(&text, &["import: notes [", "3/3 notes (100%)", "/s, "]);
    // The report follows the bar.
    assert_drew(&text, &["\"created\": 3"]);

    let zip = path(&out.path().join("vault.zip"));
    let (ok, text) = on_a_terminal(&["export", "--to", &zip], &env).unwrap();
    assert!(ok, "{text}");
    assert_drew(
        &text,
        &["export: notes [", "3/3 notes (100%)", "\"notes\": 3"],
    );

    let backups = path(&out.path().join("backups"));
    let (ok, text) = on_a_terminal(&["backup", "--to", &backups], &env).unwrap();
    assert!(ok, "{text}");
    // A stage over before the bar's next look (a tenth of a second) is
    // not drawn: here the records; the last stage always is.
    assert_drew(&text, &["backup: attachments [", "15 B/15 B (100%)"]);

    let restored = tempfile::tempdir().unwrap();
    let env = [("NOTES_DATA_DIR", restored.path().to_str().unwrap())];
    let (ok, text) = on_a_terminal(&["restore", "--from", &backups], &env).unwrap();
    assert!(ok, "{text}");
    assert_drew(&text, &["restore: writing records [", "(100%)"]);

    let ndjson = out.path().join("notes.ndjson");
    std::fs::write(
        &ndjson,
        "{\"title\":\"a\",\"body\":\"one\"}\n{\"title\":\"b\",\"body\":\"two\"}\n",
    )
    .unwrap();
    let dataset = path(&out.path().join("notes.db"));
    let (ok, text) = on_a_terminal(
        &[
            "dataset",
            "pack",
            "--from",
            &path(&ndjson),
            "--to",
            &dataset,
        ],
        &[],
    )
    .unwrap();
    assert!(ok, "{text}");
    assert_drew(
        &text,
        &["dataset pack: reading notes [", "54 B/54 B (100%)"],
    );
}

/// The JSON log lines on `stderr` that report `task`'s progress.
fn progress_lines(stderr: &[u8], task: &str) -> Vec<Value> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["task"] == task)
        .collect()
}

#[test]
fn off_a_terminal_progress_is_logged_on_stderr_and_stdout_is_the_report_alone() {
    let data = deployment();
    let out = tempfile::tempdir().unwrap();
    let zip = out.path().join("vault.zip");
    let backups = out.path().join("backups");
    for (task, args, last_stage, total) in [
        (
            "export",
            ["export", "--to", zip.to_str().unwrap()],
            "notes",
            3,
        ),
        (
            "backup",
            ["backup", "--to", backups.to_str().unwrap()],
            "attachments",
            15,
        ),
    ] {
        let run = notes_api()
            .args(args)
            .env("NOTES_DATA_DIR", data.path())
            .env("NOTES_LOG", "info")
            // A line at every look: the work here takes milliseconds.
            .env("NOTES_PROGRESS_EVERY", "0")
            .output()
            .unwrap();
        assert_ok(&run);
        // stdout is one JSON document: no log line is mixed into it.
        let report: Value = serde_json::from_slice(&run.stdout).unwrap_or_else(|e| {
            panic!("{e}: {}", String::from_utf8_lossy(&run.stdout));
        });
        assert!(report.is_object(), "{report}");
        let lines = progress_lines(&run.stderr, task);
        let last = lines.last().unwrap_or_else(|| {
            panic!(
                "no {task} progress in {}",
                String::from_utf8_lossy(&run.stderr)
            )
        });
        assert_eq!(last["stage"], last_stage, "{last}");
        assert_eq!(last["done"], total, "{last}");
        assert_eq!(last["total"], total, "{last}");
        assert!(
            last["message"].as_str().is_some_and(|m| m
                .starts_with(&format!("{task}: {last_stage} "))
                && m.contains("(100%)")),
            "{last}"
        );
    }

    // At the default interval (5 s), work this quick logs no progress.
    let run = notes_api()
        .args(["backup", "--to", backups.to_str().unwrap()])
        .env("NOTES_DATA_DIR", data.path())
        .env("NOTES_LOG", "info")
        .output()
        .unwrap();
    assert_ok(&run);
    assert_eq!(progress_lines(&run.stderr, "backup"), Vec::<Value>::new());
    serde_json::from_slice::<Value>(&run.stdout).unwrap();
}

#[test]
fn a_server_logs_how_far_its_index_build_got() {
    // Imported from the command line: no index yet, so the server builds one.
    let data = deployment();
    let port = free_port();
    let mut server = notes_api()
        .arg("serve")
        .env("NOTES_LISTEN", format!("127.0.0.1:{port}"))
        .env("NOTES_DATA_DIR", data.path())
        .env("NOTES_LOG", "info")
        .env("NOTES_PROGRESS_EVERY", "0")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(wait_up(
        &reqwest::Client::new(),
        &format!("http://127.0.0.1:{port}"),
    ));
    server.kill().unwrap();
    let out = server.wait_with_output().unwrap();
    let lines = progress_lines(&out.stdout, "search index");
    assert!(
        lines
            .iter()
            .any(|l| l["stage"] == "building" && l["done"] == 3 && l["total"] == 3),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
