//! Backup and restore: a logical snapshot of the database plus a copy of
//! every attachment object, written to a directory or an S3 prefix.
//!
//! A snapshot is a folder `notes-api-<UTC time>/` holding `records.ndjson`
//! (keys, notes, attachments, read in one transaction), `objects/<key>` and
//! `manifest.json`, written last: a folder without a manifest is an
//! interrupted backup and restore ignores it. The format is the same for
//! SQLite and PostgreSQL, so a restore can also move a deployment from one
//! backend to the other. No `pg_dump` is needed (the image has none).

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

mod validate;

use crate::{
    blobs::{BlobError, Blobs},
    config::Config,
    domain::timestamp,
    store::{DynStore, Record, StoreError},
};

pub const FORMAT: &str = "notes-api-backup/1";
const MANIFEST: &str = "manifest.json";
const RECORDS: &str = "records.ndjson";
const SNAPSHOT_PREFIX: &str = "notes-api-";

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("storage: {0}")]
    Blob(#[from] BlobError),
    #[error("{0}")]
    Invalid(String),
    #[error(
        "refusing to restore into a deployment that already holds notes, attachments or keys; \
         restore needs an empty database (point NOTES_DATABASE_URL at a new one)"
    )]
    NotEmpty,
}

impl BackupError {
    /// For the job record: our own messages whole, the rest without internals.
    pub fn brief(&self) -> String {
        match self {
            Self::Store(e) => e.brief(),
            Self::Blob(e) => e.brief(),
            e @ (Self::Invalid(_) | Self::NotEmpty) => e.to_string(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    pub keys: u64,
    pub notes: u64,
    pub attachments: u64,
    /// Bytes of attachment objects copied.
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectEntry {
    pub key: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    /// Folder of the snapshot, relative to the destination.
    pub snapshot: String,
    #[serde(with = "timestamp")]
    pub created_at: DateTime<Utc>,
    pub service_version: String,
    pub source_backend: String,
    pub counts: Counts,
    pub records_sha256: String,
    pub objects: Vec<ObjectEntry>,
    /// Attachments deleted between the database snapshot and the copy of
    /// their object: left out of the backup.
    #[serde(default)]
    pub skipped: Vec<String>,
}

impl Manifest {
    /// Every key one this service writes, every checksum a sha256.
    fn check(&self) -> Result<(), String> {
        for ObjectEntry { key, sha256, .. } in &self.objects {
            validate::check_object_key(key)?;
            if !validate::is_sha256(sha256) {
                return Err(format!("object {key:?} has no valid sha256"));
            }
        }
        for key in &self.skipped {
            validate::check_object_key(key)?;
        }
        if !validate::is_sha256(&self.records_sha256) {
            return Err("records_sha256 is not a sha256".into());
        }
        Ok(())
    }

    /// What the CLI prints: where, when, how much (not the object list).
    pub fn summary(&self, location: &str) -> serde_json::Value {
        serde_json::json!({
            "location": location,
            "snapshot": self.snapshot,
            "created_at": timestamp::format(&self.created_at),
            "source_backend": self.source_backend,
            "counts": self.counts,
            "skipped": self.skipped.len(),
        })
    }
}

/// What a backup or restore needs.
pub struct Target<'a> {
    pub store: &'a DynStore,
    pub blobs: &'a Blobs,
    pub config: &'a Config,
}

/// Writes a snapshot under `to`; returns its manifest.
pub async fn create<'a>(target: impl Into<Target<'a>>, to: &str) -> Result<Manifest, BackupError> {
    let t = target.into();
    let dest = Blobs::open_url(to, t.config)?;
    let now = Utc::now();
    let snapshot = format!(
        "{SNAPSHOT_PREFIX}{}-{}",
        now.format("%Y%m%dT%H%M%S%.3fZ"),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );

    // Records stream from the database transaction straight into the file.
    let (tx, mut rx) = mpsc::channel::<Record>(256);
    let counts = Arc::new(Mutex::new(Counts::default()));
    let attachments = Arc::new(Mutex::new(Vec::<(String, u64, String)>::new()));
    let lines = {
        let counts = counts.clone();
        let attachments = attachments.clone();
        futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).map(move |record| {
            let mut c = counts.lock().expect("not poisoned");
            match &record {
                Record::Key { .. } => c.keys += 1,
                Record::Note(_) => c.notes += 1,
                Record::Attachment {
                    attachment,
                    storage_key,
                    ..
                } => {
                    c.attachments += 1;
                    attachments.lock().expect("not poisoned").push((
                        storage_key.clone(),
                        attachment.size,
                        attachment.sha256.clone(),
                    ));
                }
            }
            let mut line = serde_json::to_vec(&record).expect("records serialize");
            line.push(b'\n');
            Ok::<_, std::convert::Infallible>(Bytes::from(line))
        })
    };
    let records_key = format!("{snapshot}/{RECORDS}");
    let (exported, written) = tokio::join!(
        t.store.export(tx),
        dest.put_stream(&records_key, lines, u64::MAX)
    );
    exported?;
    let written = written?;

    let mut counts = counts.lock().expect("not poisoned").clone();
    let attachments = std::mem::take(&mut *attachments.lock().expect("not poisoned"));
    let mut objects = Vec::with_capacity(attachments.len());
    let mut skipped = Vec::new();
    for (key, size, sha256) in attachments {
        match t
            .blobs
            .copy_to(&key, &dest, &format!("{snapshot}/objects/{key}"))
            .await
        {
            Ok(w) if w.sha256 == sha256 && w.size == size => {
                counts.bytes += size;
                objects.push(ObjectEntry { key, size, sha256 });
            }
            Ok(w) => {
                return Err(BackupError::Invalid(format!(
                    "object {key} does not match its record (sha256 {} vs {sha256}); storage is corrupt",
                    w.sha256
                )));
            }
            // Deleted after the database snapshot: its row is in the
            // records, so restore drops the row too.
            Err(BlobError::NotFound) => skipped.push(key),
            Err(e) => return Err(e.into()),
        }
    }

    let manifest = Manifest {
        format: FORMAT.into(),
        snapshot: snapshot.clone(),
        created_at: now,
        service_version: crate::VERSION.into(),
        source_backend: t.store.backend().into(),
        counts,
        records_sha256: written.sha256,
        objects,
        skipped,
    };
    let body = serde_json::to_vec_pretty(&manifest).expect("manifest serializes");
    dest.put_stream(
        &format!("{snapshot}/{MANIFEST}"),
        futures::stream::once(async { Ok::<_, std::convert::Infallible>(Bytes::from(body)) }),
        u64::MAX,
    )
    .await?;
    tracing::info!(
        to,
        snapshot,
        notes = manifest.counts.notes,
        attachments = manifest.counts.attachments,
        "backup written"
    );
    Ok(manifest)
}

/// The snapshot folder `from` names: itself when it holds a manifest, else
/// its newest complete snapshot.
async fn locate(src: &Blobs) -> Result<String, BackupError> {
    if src.exists(MANIFEST).await? {
        return Ok(String::new());
    }
    let mut snapshots: Vec<String> = src
        .list("")
        .await?
        .into_iter()
        .filter_map(|o| {
            let (dir, file) = o.key.rsplit_once('/')?;
            (file == MANIFEST && dir.starts_with(SNAPSHOT_PREFIX) && !dir.contains('/'))
                .then(|| dir.to_owned())
        })
        .collect();
    snapshots.sort();
    snapshots
        .pop()
        .map(|s| format!("{s}/"))
        .ok_or_else(|| BackupError::Invalid("no backup found there (no manifest.json)".into()))
}

/// Brings an empty deployment back from the snapshot at (or newest under)
/// `from`: objects first, then every record in one transaction, then the
/// search index. Returns the manifest restored.
pub async fn restore<'a>(
    target: impl Into<Target<'a>>,
    from: &str,
) -> Result<Manifest, BackupError> {
    let t = target.into();
    let src = Blobs::open_url(from, t.config)?;
    let dir = locate(&src).await?;
    let manifest = src
        .get_bytes(&format!("{dir}{MANIFEST}"), validate::MAX_MANIFEST_BYTES)
        .await
        .map_err(|e| match e {
            BlobError::TooLarge { limit } => {
                BackupError::Invalid(format!("{MANIFEST} is larger than {limit} bytes"))
            }
            e => e.into(),
        })?;
    let manifest: Manifest = serde_json::from_slice(&manifest)
        .map_err(|e| BackupError::Invalid(format!("manifest.json is invalid: {e}")))?;
    manifest
        .check()
        .map_err(|e| BackupError::Invalid(format!("manifest.json is invalid: {e}")))?;
    if manifest.format != FORMAT {
        return Err(BackupError::Invalid(format!(
            "unsupported backup format {:?} (this version reads {FORMAT})",
            manifest.format
        )));
    }
    if !t.store.is_empty().await? {
        return Err(BackupError::NotEmpty);
    }

    // Objects before rows: an interrupted restore leaves at worst orphans.
    for o in &manifest.objects {
        let w = src
            .copy_to(&format!("{dir}objects/{}", o.key), t.blobs, &o.key)
            .await?;
        if w.sha256 != o.sha256 {
            return Err(BackupError::Invalid(format!(
                "object {} in the backup is damaged (sha256 {} instead of {})",
                o.key, w.sha256, o.sha256
            )));
        }
    }

    let skipped: std::collections::HashSet<&str> =
        manifest.skipped.iter().map(String::as_str).collect();
    let (tx, rx) = mpsc::channel(256);
    let feed_tx = tx.clone();
    let expected = manifest.counts.keys + manifest.counts.notes + manifest.counts.attachments
        - manifest.skipped.len() as u64;
    let records_sha256 = manifest.records_sha256.clone();
    let extract_max = t.config.extract_max_bytes;
    let max_line = validate::max_record_bytes(extract_max);
    let read = async move {
        let mut body = src.get(&format!("{dir}{RECORDS}"), None).await?;
        let mut hasher = Sha256::new();
        let mut sent = 0u64;
        let mut buf: Vec<u8> = Vec::new();
        let mut line_no = 0usize;
        let send = |line: &[u8], line_no: usize| -> Option<Result<Record, StoreError>> {
            if line.iter().all(u8::is_ascii_whitespace) {
                return None;
            }
            let invalid = |e: &dyn std::fmt::Display| {
                Some(Err(StoreError::Internal(
                    format!("{RECORDS} line {line_no} is invalid: {e}").into(),
                )))
            };
            match serde_json::from_slice::<Record>(line) {
                Ok(Record::Attachment { storage_key, .. })
                    if skipped.contains(storage_key.as_str()) =>
                {
                    None
                }
                Ok(r) => match validate::check_record(&r, extract_max) {
                    Ok(()) => Some(Ok(r)),
                    Err(e) => invalid(&e),
                },
                Err(e) => invalid(&e),
            }
        };
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            hasher.update(&chunk);
            buf.extend_from_slice(&chunk);
            let complete = buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            if buf.len() - complete > max_line {
                // A record that never ends is not buffered until memory does.
                let item = Err(StoreError::Internal(
                    format!(
                        "{RECORDS} line {} is longer than {max_line} bytes",
                        line_no + 1
                    )
                    .into(),
                ));
                let _ = tx.send(item).await;
                return Ok(());
            }
            while let Some(i) = buf.iter().position(|b| *b == b'\n') {
                line_no += 1;
                if let Some(item) = send(&buf[..i], line_no) {
                    let failed = item.is_err();
                    sent += 1;
                    if tx.send(item).await.is_err() || failed {
                        return Ok::<_, BackupError>(());
                    }
                }
                buf.drain(..=i);
            }
        }
        if let Some(item) = send(&buf, line_no + 1) {
            sent += 1;
            if tx.send(item).await.is_err() {
                return Ok(());
            }
        }
        // Checked before the import may commit: a truncated or altered
        // file restores nothing.
        let sha256 = hex::encode(hasher.finalize());
        if sha256 != records_sha256 {
            return Err(BackupError::Invalid(format!(
                "{RECORDS} is damaged (sha256 {sha256}, the manifest says {records_sha256})"
            )));
        }
        if sent != expected {
            return Err(BackupError::Invalid(format!(
                "{RECORDS} holds {sent} records where the manifest lists {expected}"
            )));
        }
        Ok(())
    };
    // A read that fails part-way must not let the import commit what it got.
    let feed = async move {
        let result = read.await;
        if let Err(e) = &result {
            let _ = feed_tx
                .send(Err(StoreError::Internal(
                    format!("restore aborted: {e}").into(),
                )))
                .await;
        }
        result
    };
    let (fed, imported) = tokio::join!(feed, t.store.import(rx));
    fed?;
    let imported = imported?;
    debug_assert_eq!(imported, expected);
    // The import started a new feed generation: every index rebuilds.
    tracing::info!(
        from,
        snapshot = manifest.snapshot,
        notes = manifest.counts.notes,
        "restore finished"
    );
    Ok(manifest)
}
