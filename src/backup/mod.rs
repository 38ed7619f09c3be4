//! Backup and restore: a logical snapshot of the database plus a copy of
//! every attachment object, written to a directory or an S3 prefix.
//!
//! A snapshot is a folder `notes-api-<UTC time>/` holding `records.ndjson`
//! (keys, notes, attachments, read in one transaction), `objects/<key>` and
//! `manifest.json`, written last: a folder without a manifest is an
//! interrupted backup and restore ignores it. With a retention
//! (`NOTES_BACKUP_KEEP`), a backup that completes removes the oldest complete
//! snapshots past the newest N, and interrupted ones older than a day
//! (`retention.rs`). The format is the same for
//! SQLite and PostgreSQL, so a restore can also move a deployment from one
//! backend to the other. No `pg_dump` is needed (the image has none).

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

mod layout;
mod retention;
mod validate;

use layout::{MANIFEST, RECORDS, SNAPSHOT_PREFIX};

pub use retention::{INTERRUPTED_AFTER, Pruned};

use crate::{
    blobs::{BlobError, Blobs},
    config::Storage,
    domain::timestamp,
    progress::{Progress, Unit},
    store::{DynStore, Record, StoreError},
};

pub const FORMAT: &str = "notes-api-backup/1";

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
    /// Past states of notes; absent from snapshots made before revisions.
    #[serde(default)]
    pub revisions: u64,
    /// Notes in the trash (counted in `notes` too; one marker record each).
    #[serde(default)]
    pub trashed: u64,
    pub attachments: u64,
    /// Webhooks; absent from snapshots made before webhooks.
    #[serde(default)]
    pub webhooks: u64,
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
    /// Every key one this service writes, listed once, every checksum a
    /// sha256.
    fn check(&self) -> Result<(), String> {
        let mut keys = HashSet::new();
        for ObjectEntry { key, sha256, .. } in &self.objects {
            validate::check_object_key(key)?;
            if !validate::is_sha256(sha256) {
                return Err(format!("object {key:?} has no valid sha256"));
            }
            if !keys.insert(key) {
                return Err(format!("object {key:?} is listed twice"));
            }
        }
        for key in &self.skipped {
            validate::check_object_key(key)?;
            if !keys.insert(key) {
                return Err(format!("object {key:?} is listed twice"));
            }
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
    pub storage: &'a Storage,
    /// Counts the work in stages (records, then attachment bytes), for
    /// whoever shows it; none when nobody does.
    pub progress: Option<Progress>,
}

impl Target<'_> {
    fn progress(&self, task: &'static str) -> Progress {
        self.progress.clone().unwrap_or_else(|| Progress::new(task))
    }
}

/// A snapshot written, and what the retention removed after it.
#[derive(Debug, Clone)]
pub struct Created {
    pub manifest: Manifest,
    pub pruned: Pruned,
    /// Why the retention could not finish; the snapshot is complete anyway.
    pub prune_error: Option<String>,
}

impl Created {
    /// What the CLI prints and the job records.
    pub fn summary(&self, location: &str) -> serde_json::Value {
        let mut v = self.manifest.summary(location);
        v["removed"] = serde_json::json!(self.pruned.removed);
        v["interrupted_removed"] = serde_json::json!(self.pruned.interrupted);
        if let Some(e) = &self.prune_error {
            v["prune_error"] = e.clone().into();
        }
        v
    }
}

/// Writes a snapshot under `to`, then applies the retention
/// (`NOTES_BACKUP_KEEP`) to the snapshots there. A retention that fails is
/// logged and reported, not an error: the new snapshot is complete, and a
/// retry would only write another.
pub async fn create<'a>(target: impl Into<Target<'a>>, to: &str) -> Result<Created, BackupError> {
    let t = target.into();
    let progress = t.progress("backup");
    let dest = Blobs::open_url(to, &t.storage.s3)?;
    let now = Utc::now();
    let snapshot = format!(
        "{SNAPSHOT_PREFIX}{}-{}",
        now.format(layout::STAMP),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );

    // Records stream from the database transaction straight into the file.
    let (tx, mut rx) = mpsc::channel::<Record>(256);
    let counts = Arc::new(Mutex::new(Counts::default()));
    let attachments = Arc::new(Mutex::new(Vec::<(String, u64, String)>::new()));
    progress.stage("records", Unit::Items("records"), None);
    let lines = {
        let counts = counts.clone();
        let attachments = attachments.clone();
        let progress = progress.clone();
        futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).map(move |record| {
            progress.add(1);
            let mut c = counts.lock().expect("not poisoned");
            match &record {
                Record::Key { .. } => c.keys += 1,
                Record::Note(_) => c.notes += 1,
                Record::Revision { .. } => c.revisions += 1,
                Record::Trashed { .. } => c.trashed += 1,
                Record::Webhook { .. } => c.webhooks += 1,
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
    progress.stage(
        "attachments",
        Unit::Bytes,
        Some(attachments.iter().map(|(_, size, _)| size).sum()),
    );
    for (key, size, sha256) in attachments {
        match t
            .blobs
            .copy_to(&key, &dest, &format!("{snapshot}/objects/{key}"), u64::MAX)
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
        progress.add(size);
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
    let (mut pruned, mut prune_error) = (Pruned::default(), None);
    if let Some(keep) = t.storage.backup_keep {
        match retention::prune(&dest, keep, &snapshot, Utc::now()).await {
            Ok(p) => {
                if !p.removed.is_empty() || !p.interrupted.is_empty() {
                    tracing::info!(
                        to,
                        keep,
                        removed = ?p.removed,
                        interrupted = ?p.interrupted,
                        "old backups removed"
                    );
                }
                pruned = p;
            }
            Err(e) => {
                tracing::error!(to, keep, error = %e, "backup written, but old backups could not be removed");
                prune_error = Some(e.brief());
            }
        }
    }
    Ok(Created {
        manifest,
        pruned,
        prune_error,
    })
}

/// The snapshot folder `from` names: itself when it holds a manifest, else
/// its newest complete snapshot.
async fn locate(src: &Blobs) -> Result<String, BackupError> {
    if src.exists(MANIFEST).await? {
        return Ok(String::new());
    }
    retention::snapshots(src)
        .await?
        .into_iter()
        .rev()
        .find_map(|(name, complete)| complete.then(|| format!("{name}/")))
        .ok_or_else(|| BackupError::Invalid("no backup found there (no manifest.json)".into()))
}

/// Brings an empty deployment back from the snapshot at (or newest under)
/// `from`. Nothing is written until every record has been checked, against
/// the API's rules and against the object the manifest lists for it; then
/// the objects are copied, each checked against its record on the way, and
/// every record is written in one transaction, after which the search index
/// rebuilds. A refusal at any step removes the objects already copied and
/// commits no row. Returns the manifest restored.
pub async fn restore<'a>(
    target: impl Into<Target<'a>>,
    from: &str,
) -> Result<Manifest, BackupError> {
    let t = target.into();
    let src = Blobs::open_url(from, &t.storage.s3)?;
    let dir = locate(&src).await?;
    let manifest = read_manifest(&src, &dir).await?;
    if !t.store.is_empty().await? {
        return Err(BackupError::NotEmpty);
    }
    let progress = t.progress("restore");
    let snapshot = Snapshot::new(
        &src,
        &dir,
        &manifest,
        t.storage.extract_max_bytes,
        &progress,
    )?;
    progress.stage(
        "checking records",
        Unit::Items("records"),
        Some(snapshot.expected),
    );
    snapshot.read_records(None).await?;

    // Objects before rows, so that no committed row lacks its object. A
    // process killed in between leaves at worst orphans, which `purge`
    // reclaims; a refusal removes them itself. A key is listed before its
    // copy starts: a copy that fails after writing must go too.
    let mut copied = Vec::new();
    let written = async {
        progress.stage(
            "copying attachments",
            Unit::Bytes,
            Some(manifest.objects.iter().map(|o| o.size).sum()),
        );
        snapshot.copy_objects(t.blobs, &mut copied).await?;
        progress.stage(
            "writing records",
            Unit::Items("records"),
            Some(snapshot.expected),
        );
        snapshot.import(t.store).await
    }
    .await;
    if let Err(e) = written {
        t.blobs.delete_all(&copied).await;
        tracing::warn!(error = %e, removed = copied.len(), "restore refused; copied objects removed");
        return Err(e);
    }
    // The import started a new feed generation: every index rebuilds.
    tracing::info!(
        from,
        snapshot = manifest.snapshot,
        notes = manifest.counts.notes,
        "restore finished"
    );
    Ok(manifest)
}

/// The snapshot's manifest, size-checked before it is read and checked
/// whole before it is believed.
async fn read_manifest(src: &Blobs, dir: &str) -> Result<Manifest, BackupError> {
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
    Ok(manifest)
}

/// A snapshot being restored, with what its records are checked against.
struct Snapshot<'a> {
    src: &'a Blobs,
    dir: &'a str,
    manifest: &'a Manifest,
    /// The manifest's objects by key: each attachment record must match
    /// its entry, and each entry must belong to exactly one record.
    objects: HashMap<&'a str, &'a ObjectEntry>,
    /// Attachments whose object was deleted during the backup: their
    /// records are dropped.
    skipped: HashSet<&'a str>,
    /// Records to write (skipped attachments left out).
    expected: u64,
    extract_max: u64,
    progress: &'a Progress,
}

type Sink = mpsc::Sender<Result<Record, StoreError>>;

impl<'a> Snapshot<'a> {
    fn new(
        src: &'a Blobs,
        dir: &'a str,
        manifest: &'a Manifest,
        extract_max: u64,
        progress: &'a Progress,
    ) -> Result<Self, BackupError> {
        let c = &manifest.counts;
        let expected = c
            .keys
            .checked_add(c.notes)
            .and_then(|n| n.checked_add(c.revisions))
            .and_then(|n| n.checked_add(c.trashed))
            .and_then(|n| n.checked_add(c.attachments))
            .and_then(|n| n.checked_sub(manifest.skipped.len() as u64))
            .ok_or_else(|| {
                BackupError::Invalid("manifest.json is invalid: its counts do not add up".into())
            })?;
        Ok(Self {
            src,
            dir,
            manifest,
            objects: manifest
                .objects
                .iter()
                .map(|o| (o.key.as_str(), o))
                .collect(),
            skipped: manifest.skipped.iter().map(String::as_str).collect(),
            expected,
            extract_max,
            progress,
        })
    }

    /// Streams `records.ndjson`, checking every record, the file's sha256
    /// and its count; with a `sink`, sends each record there as it goes
    /// (the import commits only once the sink closes without an error).
    /// Memory: one line, plus a set of the object keys seen so far.
    async fn read_records(&self, sink: Option<&Sink>) -> Result<(), BackupError> {
        let max_line = validate::max_record_bytes(self.extract_max);
        let mut body = self
            .src
            .get(&format!("{}{RECORDS}", self.dir), None)
            .await?;
        let mut hasher = Sha256::new();
        let mut seen = HashSet::new();
        let mut sent = 0u64;
        let mut buf: Vec<u8> = Vec::new();
        let mut line_no = 0usize;
        let mut take = async |line: &[u8], line_no: usize| -> Result<bool, BackupError> {
            let Some(record) = self.record(line, line_no, &mut seen)? else {
                return Ok(true);
            };
            sent += 1;
            self.progress.add(1);
            Ok(match sink {
                // The import is gone (it failed): its error is the answer.
                Some(sink) => sink.send(Ok(record)).await.is_ok(),
                None => true,
            })
        };
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            hasher.update(&chunk);
            buf.extend_from_slice(&chunk);
            let complete = buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            if buf.len() - complete > max_line {
                // A record that never ends is not buffered until memory does.
                return Err(BackupError::Invalid(format!(
                    "{RECORDS} line {} is longer than {max_line} bytes",
                    line_no + 1
                )));
            }
            while let Some(i) = buf.iter().position(|b| *b == b'\n') {
                line_no += 1;
                if !take(&buf[..i], line_no).await? {
                    return Ok(());
                }
                buf.drain(..=i);
            }
        }
        if !take(&buf, line_no + 1).await? {
            return Ok(());
        }
        // Checked before the import may commit: a truncated or altered
        // file restores nothing.
        let sha256 = hex::encode(hasher.finalize());
        if sha256 != self.manifest.records_sha256 {
            return Err(BackupError::Invalid(format!(
                "{RECORDS} is damaged (sha256 {sha256}, the manifest says {})",
                self.manifest.records_sha256
            )));
        }
        if sent != self.expected {
            return Err(BackupError::Invalid(format!(
                "{RECORDS} holds {sent} records where the manifest lists {}",
                self.expected
            )));
        }
        if let Some(o) = self
            .manifest
            .objects
            .iter()
            .find(|o| !seen.contains(o.key.as_str()))
        {
            return Err(BackupError::Invalid(format!(
                "{MANIFEST} lists object {}, which no attachment record names",
                o.key
            )));
        }
        Ok(())
    }

    /// One line as a record to restore: `None` for a blank line or an
    /// attachment skipped by the backup. An attachment must match the
    /// object the manifest lists for it, and name it alone: otherwise its
    /// downloads would be cut short, its ETag false, or its object missing.
    fn record(
        &self,
        line: &[u8],
        line_no: usize,
        seen: &mut HashSet<&'a str>,
    ) -> Result<Option<Record>, BackupError> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        let invalid = |e: &dyn std::fmt::Display| {
            BackupError::Invalid(format!("{RECORDS} line {line_no} is invalid: {e}"))
        };
        let record = serde_json::from_slice::<Record>(line).map_err(|e| invalid(&e))?;
        if let Record::Attachment { storage_key, .. } = &record
            && self.skipped.contains(storage_key.as_str())
        {
            return Ok(None);
        }
        validate::check_record(&record, self.extract_max).map_err(|e| invalid(&e))?;
        if let Record::Attachment {
            attachment: a,
            storage_key,
            ..
        } = &record
        {
            let Some((key, o)) = self.objects.get_key_value(storage_key.as_str()) else {
                return Err(invalid(&format_args!(
                    "attachment {} has no object in the snapshot ({MANIFEST} lists none at {storage_key})",
                    a.id
                )));
            };
            if !seen.insert(*key) {
                return Err(invalid(&format_args!(
                    "attachment {} is the second record for object {key}",
                    a.id
                )));
            }
            if a.size != o.size {
                return Err(invalid(&format_args!(
                    "attachment {} is recorded as {} bytes, but {MANIFEST} lists its object as {}",
                    a.id, a.size, o.size
                )));
            }
            if a.sha256 != o.sha256 {
                return Err(invalid(&format_args!(
                    "attachment {} is recorded with sha256 {}, but {MANIFEST} lists its object with {}",
                    a.id, a.sha256, o.sha256
                )));
            }
        }
        Ok(Some(record))
    }

    /// Copies every object into `to`, checking its size and sha256 on the
    /// way (streamed; a copy is cut at the size its record gives). Each key
    /// is pushed to `copied` before its copy starts.
    async fn copy_objects(&self, to: &Blobs, copied: &mut Vec<String>) -> Result<(), BackupError> {
        for o in &self.manifest.objects {
            // Keys were checked: the last segment is the attachment's id.
            let id = o.key.rsplit('/').next().unwrap_or_default();
            let refuse = |why: String| {
                BackupError::Invalid(format!("attachment {id}: its object {} {why}", o.key))
            };
            copied.push(o.key.clone());
            let from = format!("{}objects/{}", self.dir, o.key);
            let w = match self.src.copy_to(&from, to, &o.key, o.size).await {
                Ok(w) => w,
                Err(BlobError::NotFound) => {
                    return Err(refuse("is missing from the snapshot".into()));
                }
                Err(BlobError::TooLarge { .. }) => {
                    return Err(refuse(format!(
                        "holds more than the {} bytes its record says",
                        o.size
                    )));
                }
                Err(e) => return Err(e.into()),
            };
            if w.size != o.size {
                return Err(refuse(format!(
                    "holds {} bytes, not the {} its record says",
                    w.size, o.size
                )));
            }
            if w.sha256 != o.sha256 {
                return Err(refuse(format!(
                    "is damaged (sha256 {} instead of {})",
                    w.sha256, o.sha256
                )));
            }
            self.progress.add(o.size);
        }
        Ok(())
    }

    /// Reads the records again (checking them all again: the file may have
    /// changed since) into one import transaction.
    async fn import(&self, store: &DynStore) -> Result<(), BackupError> {
        let (tx, rx) = mpsc::channel(256);
        // A read that fails part-way must not let the import commit what it got.
        let feed = async move {
            let result = self.read_records(Some(&tx)).await;
            if let Err(e) = &result {
                let _ = tx
                    .send(Err(StoreError::Internal(
                        format!("restore aborted: {e}").into(),
                    )))
                    .await;
            }
            result
        };
        let (fed, imported) = tokio::join!(feed, store.import(rx));
        fed?;
        let imported = imported?;
        debug_assert_eq!(imported, self.expected);
        Ok(())
    }
}
