//! `notes-api import` from the command line (issue #26): a folder and a
//! zip, `--dry-run`, and a vault of the Markdown documentation Debian
//! ships.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use serde_json::Value;

use crate::common::{notes_api, write};

fn import(data: &Path, args: &[&str]) -> std::process::Output {
    notes_api()
        .arg("import")
        .args(args)
        .env("NOTES_DATA_DIR", data)
        .env("NOTES_LOG", "error")
        .output()
        .unwrap()
}

fn import_ok(data: &Path, args: &[&str]) -> Value {
    let out = import(data, args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stdout));
    })
}

/// A small vault on disk: notes in folders, an embed, a bad file, settings.
fn vault(root: &Path) {
    write(
        root,
        "Projects/Plan.md",
        b"---\ntags: [work]\n---\n# The plan\nSee ![[chart.png]] #status/open\n",
    );
    write(root, "Projects/chart.png", b"\x89PNG not really");
    write(root, "Inbox.md", b"just text");
    write(root, "broken.md", b"\xff\xfe");
    write(root, ".obsidian/workspace.json", b"{}");
}

#[test]
fn import_a_folder_and_a_zip_and_dry_run_writes_nothing() {
    let data = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    vault(src.path());
    let from = src.path().to_str().unwrap();

    let dry = import_ok(data.path(), &["--from", from, "--dry-run"]);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["total"], 3, "{dry}");
    assert_eq!(dry["created"], 2, "{dry}");
    assert_eq!(dry["attachments"], 1, "{dry}");
    assert_eq!(dry["errors"][0]["path"], "broken.md");
    assert_eq!(dry["skipped"][0]["path"], ".obsidian/workspace.json");

    // Nothing was written: the real import creates every note.
    let real = import_ok(data.path(), &["--from", from, "--tag", "Imported"]);
    assert_eq!(real["dry_run"], false);
    assert_eq!(real["created"], 2, "{real}");
    assert_eq!(real["attachments"], 1);

    // The same files as a zip: nothing changes.
    let zip_path = src.path().join("vault.zip");
    let mut w = zip::ZipWriter::new(std::fs::File::create(&zip_path).unwrap());
    let opts = zip::write::SimpleFileOptions::default();
    for (name, data) in [
        (
            "Projects/Plan.md",
            &std::fs::read(src.path().join("Projects/Plan.md")).unwrap(),
        ),
        (
            "Projects/chart.png",
            &std::fs::read(src.path().join("Projects/chart.png")).unwrap(),
        ),
        ("Inbox.md", &b"just text".to_vec()),
    ] {
        w.start_file(name, opts).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap();
    let again = import_ok(
        data.path(),
        &["--from", zip_path.to_str().unwrap(), "--tag", "imported"],
    );
    assert_eq!(again["unchanged"], 2, "{again}");
    assert_eq!(again["created"], 0);
    assert_eq!(again["attachments"], 0);

    // A source that is not there, a file that is not a zip: exit 2, said why.
    let out = import(data.path(), &["--from", "/nonexistent/vault"]);
    assert_eq!(out.status.code(), Some(2));
    let not_zip = src.path().join("notes.txt");
    std::fs::write(&not_zip, "hello").unwrap();
    let out = import(data.path(), &["--from", not_zip.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every `*.md` under /usr/share/doc, in its package's folder.
fn debian_docs() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(meta) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if meta.is_dir() {
                walk(&p, out);
            } else if meta.is_file() && p.extension().is_some_and(|x| x == "md") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(Path::new("/usr/share/doc"), &mut out);
    out.sort();
    out
}

/// Real data: a vault of the Markdown documentation the system's packages
/// ship. Every file is accounted for: imported, or listed as an error or
/// skipped. The time is printed (docs/performance.md has the figures).
#[test]
fn a_vault_of_debians_markdown_documentation_imports_every_file_accounted_for() {
    let docs = debian_docs();
    if docs.len() < 20 {
        eprintln!(
            "only {} Markdown files under /usr/share/doc; skipped",
            docs.len()
        );
        return;
    }
    let src = tempfile::tempdir().unwrap();
    for doc in &docs {
        let rel = doc.strip_prefix("/usr/share/doc").unwrap();
        write(
            src.path(),
            rel.to_str().unwrap(),
            &std::fs::read(doc).unwrap(),
        );
    }
    let data = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let report = import_ok(data.path(), &["--from", src.path().to_str().unwrap()]);
    let took = started.elapsed();
    let notes = report["created"].as_u64().unwrap();
    eprintln!(
        "imported {} files ({notes} notes, {} errors, {} skipped) in {:.2} s: {:.0} notes/s",
        docs.len(),
        report["errors_total"],
        report["skipped_total"],
        took.as_secs_f64(),
        notes as f64 / took.as_secs_f64()
    );
    assert_eq!(report["total"], docs.len() as u64, "{report}");
    assert_eq!(report["done"], docs.len() as u64);
    let errors = report["errors_total"].as_u64().unwrap();
    assert_eq!(notes + errors, docs.len() as u64, "{report}");
    // Every file of the folder is a note, an error, an attachment or skipped.
    let files = docs.len() as u64;
    let skipped = report["skipped_total"].as_u64().unwrap();
    let attachments = report["attachments"].as_u64().unwrap();
    assert_eq!(notes + errors + skipped + attachments, files, "{report}");

    // Again: every note unchanged.
    let again = import_ok(data.path(), &["--from", src.path().to_str().unwrap()]);
    assert_eq!(again["unchanged"], notes, "{again}");
    assert_eq!(again["created"], 0);
}

/// An import of a zip holding a 64 MiB attachment through a real server
/// streams it twice (the upload into storage, then from the zip into
/// storage again): the server's peak memory stays near where it was, and
/// the attachment arrives byte for byte.
#[test]
fn importing_a_large_attachment_through_the_server_keeps_memory_flat() {
    use sha2::{Digest, Sha256};

    use crate::uploads::{curl, serve_ready, status_kb};

    let dir = tempfile::tempdir().unwrap();
    let (mut server, base) = serve_ready(dir.path());
    let pid = server.id();
    let size = 64 * 1024 * 1024;
    let mut data = Vec::with_capacity(size);
    let mut block = Sha256::digest(b"video");
    while data.len() < size {
        block = Sha256::digest(block);
        data.extend_from_slice(&block);
    }
    let sha = hex::encode(Sha256::digest(&data));
    let zip_path = dir.path().join("vault.zip");
    let mut w = zip::ZipWriter::new(std::fs::File::create(&zip_path).unwrap());
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    w.start_file("Trip.md", stored).unwrap();
    w.write_all(b"The video: ![[video.mp4]]\n").unwrap();
    w.start_file("media/video.mp4", stored.large_file(false))
        .unwrap();
    w.write_all(&data).unwrap();
    w.finish().unwrap();
    drop(data);

    let reset = std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok();
    let before = status_kb(pid, "VmRSS");
    let (status, out) = curl(&[
        "-X",
        "POST",
        "-H",
        "content-type: application/zip",
        "--data-binary",
        &format!("@{}", zip_path.display()),
        &format!("{base}/api/v1/import"),
    ]);
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&out));
    let job: Value = serde_json::from_slice(&out).unwrap();
    let id = job["id"].as_str().unwrap().to_owned();
    let job = (0..600)
        .find_map(|_| {
            std::thread::sleep(std::time::Duration::from_millis(100));
            let (_, out) = curl(&[&format!("{base}/api/v1/jobs/{id}")]);
            let job: Value = serde_json::from_slice(&out).unwrap();
            (job["status"] == "succeeded" || job["status"] == "dead").then_some(job)
        })
        .expect("the import finished");
    let peak = status_kb(pid, "VmHWM");
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["result"]["attachments"], 1, "{job}");

    let (_, out) = curl(&[&format!("{base}/api/v1/notes")]);
    let notes: Value = serde_json::from_slice(&out).unwrap();
    let note = notes["items"][0]["id"].as_str().unwrap().to_owned();
    let (_, out) = curl(&[&format!("{base}/api/v1/notes/{note}/attachments")]);
    let list: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(list[0]["sha256"], sha.as_str());
    assert_eq!(list[0]["size"], size as u64);
    server.kill().unwrap();
    let _ = server.wait();
    eprintln!("import of 64 MiB: RSS {before} kB before, peak {peak} kB (peak reset: {reset})");
    if reset {
        let added_mib = peak.saturating_sub(before) / 1024;
        assert!(
            added_mib < 32,
            "a 64 MiB import took the server from {before} kB to a peak of {peak} kB"
        );
    }
}
