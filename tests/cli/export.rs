//! `notes-api export` from the command line, and an export through a real
//! server with its memory measured (issue #26).

use std::io::{Cursor, Read};

use sha2::{Digest, Sha256};

use crate::{
    common::notes_api,
    uploads::{curl, serve_ready, status_kb},
};

/// Bytes that do not compress or repeat, as a real file's.
fn noise(seed: &str, size: usize) -> Vec<u8> {
    let mut data = Vec::with_capacity(size);
    let mut block = Sha256::digest(seed.as_bytes());
    while data.len() < size {
        block = Sha256::digest(block);
        data.extend_from_slice(&block);
    }
    data.truncate(size);
    data
}

/// A note through the server; its id.
fn create_note(base: &str, body: &str) -> String {
    let (status, out) = curl(&[
        "-X",
        "POST",
        "-H",
        "content-type: application/json",
        "-d",
        body,
        &format!("{base}/api/v1/notes"),
    ]);
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&out));
    let note: serde_json::Value = serde_json::from_slice(&out).unwrap();
    note["id"].as_str().unwrap().to_owned()
}

fn attach(base: &str, note: &str, path: &std::path::Path) {
    let form = format!("file=@{}", path.display());
    let (status, out) = curl(&[
        "-F",
        &form,
        &format!("{base}/api/v1/notes/{note}/attachments"),
    ]);
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&out));
}

fn zip_entries(data: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut archive = zip::ZipArchive::new(Cursor::new(data)).expect("a valid zip");
    (0..archive.len())
        .map(|i| {
            let mut f = archive.by_index(i).unwrap();
            let mut bytes = Vec::new();
            f.read_to_end(&mut bytes).unwrap();
            (f.name().to_owned(), bytes)
        })
        .collect()
}

#[test]
fn export_to_a_folder_and_to_a_zip_from_the_command_line() {
    let data = tempfile::tempdir().unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let (mut server, base) = serve_ready(data.path());
    let trip = create_note(
        &base,
        r#"{"title":"Trip: Lisbon","body":"Pack light.","tags":["travel"]}"#,
    );
    create_note(
        &base,
        r#"{"title":"Groceries","body":"Milk","tags":["home"]}"#,
    );
    let photo = noise("photo", 200_000);
    let photo_path = files.path().join("tram.jpg");
    std::fs::write(&photo_path, &photo).unwrap();
    attach(&base, &trip, &photo_path);
    server.kill().unwrap();
    let _ = server.wait();

    let run = |args: &[&str]| {
        notes_api()
            .arg("export")
            .args(args)
            .env("NOTES_DATA_DIR", data.path())
            .env("NOTES_LOG", "error")
            .output()
            .unwrap()
    };

    // A folder: the vault's files, the manifest written last.
    let vault = out_dir.path().join("vault");
    let out = run(&["--to", vault.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["notes"], 2, "{summary}");
    assert_eq!(summary["attachments"], 1);
    let md = std::fs::read_to_string(vault.join("Trip- Lisbon.md")).unwrap();
    assert!(md.starts_with("---\n"), "{md}");
    assert!(md.contains("title: \"Trip: Lisbon\"\n"), "{md}");
    assert!(
        md.ends_with("Pack light.\n\n![[attachments/Trip- Lisbon/tram.jpg]]\n"),
        "{md}"
    );
    assert_eq!(
        std::fs::read(vault.join("attachments/Trip- Lisbon/tram.jpg")).unwrap(),
        photo
    );
    assert!(vault.join("Groceries.md").is_file());
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(vault.join("notes-api-export.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["notes"], 2);

    // A folder that is not empty is refused, and left as it was.
    let out = run(&["--to", vault.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not empty"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A zip, NDJSON, one tag: the same notes as the API's export.
    let zip_path = out_dir.path().join("travel.zip");
    let out = run(&[
        "--to",
        zip_path.to_str().unwrap(),
        "--format",
        "ndjson",
        "--tag",
        "Travel",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let entries = zip_entries(&std::fs::read(&zip_path).unwrap());
    let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            format!("attachments/{trip}/tram.jpg").as_str(),
            "notes.ndjson",
            "notes-api-export.json"
        ]
    );
    assert_eq!(entries[0].1, photo);
    let line: serde_json::Value = serde_json::from_slice(&entries[1].1).unwrap();
    assert_eq!(line["title"], "Trip: Lisbon");
    assert!(!out_dir.path().join("travel.zip.partial").exists());

    // An existing zip is not overwritten; a bad format or tag is refused.
    let out = run(&["--to", zip_path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    let out = run(&["--to", "x.zip", "--format", "pdf"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("markdown or ndjson"));
    let out = run(&[
        "--to",
        out_dir.path().join("t").to_str().unwrap(),
        "--tag",
        "no spaces",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tag"));
}

/// An export of a 64 MiB attachment through a real server streams it: the
/// server's peak memory during the export stays near where it was, and
/// the attachment arrives byte for byte.
#[test]
fn exporting_a_large_attachment_keeps_memory_flat() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, base) = serve_ready(dir.path());
    let pid = server.id();
    let note = create_note(&base, r#"{"title":"video"}"#);
    let size = 64 * 1024 * 1024;
    let data = noise("video", size);
    let sha = hex::encode(Sha256::digest(&data));
    let path = dir.path().join("video.mp4");
    std::fs::write(&path, &data).unwrap();
    drop(data);
    attach(&base, &note, &path);
    std::fs::remove_file(&path).unwrap();

    // The peak is reset (Linux: clear_refs 5) so that it measures the
    // export, not the upload before it.
    let reset = std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok();
    let before = status_kb(pid, "VmRSS");
    let zip_path = dir.path().join("export.zip");
    let (status, _) = curl(&[
        "-o",
        zip_path.to_str().unwrap(),
        &format!("{base}/api/v1/export"),
    ]);
    assert_eq!(status, 200);
    let peak = status_kb(pid, "VmHWM");
    server.kill().unwrap();
    let _ = server.wait();
    eprintln!("export of 64 MiB: RSS {before} kB before, peak {peak} kB (peak reset: {reset})");
    if reset {
        let added_mib = peak.saturating_sub(before) / 1024;
        assert!(
            added_mib < 32,
            "a 64 MiB export took the server from {before} kB to a peak of {peak} kB"
        );
    }
    let zip = std::fs::read(&zip_path).unwrap();
    let entries = zip_entries(&zip);
    let (name, bytes) = &entries[1];
    assert_eq!(name, "attachments/video/video.mp4");
    assert_eq!(hex::encode(Sha256::digest(bytes)), sha);
}
