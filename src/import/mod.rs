//! Import (issue #26): a Markdown folder, an Obsidian vault or a notes-api
//! export (either format), from a folder or a zip, into the store. The
//! rules of a file (front matter, tags, titles, embeds) are
//! `domain::vault_read`'s; this walks the files and writes.
//!
//! - **Idempotent.** Each note is upserted on its own (`Store::import_note`):
//!   by the export's `id`, else by `external_id` (`vault:<path>` unless the
//!   file names one). Importing the same vault again reports every note
//!   `unchanged`; a changed file updates only its note. Attachments are
//!   matched by name and sha256, so they are not added twice.
//! - **A bad file is not a bad import.** A file that cannot be read (bad
//!   UTF-8, bad front matter, a body over the limit) is listed in `errors`
//!   with its path; the rest is imported. What is not read at all
//!   (settings, trash, dot-files, files no note embeds) is listed in
//!   `skipped`. An archive that tries to escape, or is too large, is
//!   refused before anything is written.
//! - **Bounded memory.** The listing holds paths only; one note's text is
//!   held at a time; attachments stream from the archive into storage.

use std::{collections::HashSet, sync::Arc, time::Duration};

use futures::future::BoxFuture;
use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt},
    sync::watch,
};
use uuid::Uuid;

mod error;
mod report;
pub mod source;

pub use error::ImportError;
pub use report::{Failed, Format, MAX_LISTED, Report, Skipped};
pub use source::{Limits, Source};

use crate::{
    blobs::{BlobError, Blobs},
    domain::{
        attachment::{self, Attachment, StoredAttachment, normalize_content_type, storage_key},
        note::{MAX_BODY_BYTES, MAX_NOTE_JSON_BYTES, Note, NoteDraft},
        timestamp,
        vault_read::{self, NoteSource, VaultIndex, content_type_of, file_name, is_note},
    },
    progress::{Progress, Unit},
    store::{DynStore, ImportedNote, StoreError, Upserted},
};
use source::Entry;

/// The export's manifest and NDJSON file (`export::MANIFEST`,
/// `export::NOTES_NDJSON`; `export` is a sibling layer, not imported).
pub const MANIFEST: &str = "notes-api-export.json";
pub use error::NOTES_NDJSON;
/// Who an import's versions are by (kept in their revisions).
pub const ACTOR: &str = "import";
/// The largest note file read: the body limit, with room for front matter
/// and an export's link block.
const MAX_NOTE_FILE_BYTES: u64 = MAX_BODY_BYTES as u64 + 256 * 1024;
/// How often the progress is published (a job's result, a log line).
const PUBLISH_EVERY: Duration = Duration::from_millis(500);

/// What to import, and how.
#[derive(Debug, Clone)]
pub struct Options {
    pub format: Format,
    /// Added to every note (already normalized).
    pub tag: Option<String>,
    /// A note's folder becomes one of its tags too (Markdown).
    pub folder_tags: bool,
    /// Decide everything, write nothing.
    pub dry_run: bool,
    /// The largest attachment (NOTES_MAX_UPLOAD_BYTES).
    pub max_upload_bytes: u64,
}

/// What happens once an attachment is stored: its text extraction is
/// queued (the job runner does; the command line leaves it to the next
/// `reindex`).
pub trait AfterAttachment: Send + Sync {
    fn stored<'a>(&'a self, attachment: &'a Attachment) -> BoxFuture<'a, ()>;
}

/// An import under way.
pub struct Import {
    pub store: DynStore,
    pub blobs: Blobs,
    pub options: Options,
    pub after_attachment: Option<Arc<dyn AfterAttachment>>,
    /// Receives the report as it grows (a job's result).
    pub report: watch::Sender<Report>,
    /// Counts the notes read (a command's progress bar).
    pub progress: Progress,
}

/// A file a note wants as an attachment.
struct Wanted {
    path: String,
    filename: String,
    content_type: String,
}

impl Import {
    /// Imports every file of `source`; returns the final report (also
    /// published). Fails only when the whole import cannot go on (the
    /// archive is hostile or too large, the database or storage is down).
    pub async fn run(&self, source: &Source) -> Result<Report, ImportError> {
        let started = std::time::Instant::now();
        self.progress.stage("notes", Unit::Items("notes"), None);
        let mut report = Report {
            dry_run: self.options.dry_run,
            ..Report::default()
        };
        for s in &source.skipped {
            report.skip(s.clone());
        }
        let has_ndjson = source.entries.iter().any(|e| e.path == NOTES_NDJSON);
        report.format = match self.options.format {
            Format::Auto if has_ndjson => Format::Ndjson,
            Format::Auto => Format::Markdown,
            Format::Ndjson if !has_ndjson => return Err(ImportError::NoNdjson),
            f => f,
        };
        let mut used: HashSet<String> = HashSet::new();
        let mut last = std::time::Instant::now();
        match report.format {
            Format::Ndjson => {
                self.ndjson(source, &mut report, &mut used, &mut last)
                    .await?
            }
            _ => {
                self.markdown(source, &mut report, &mut used, &mut last)
                    .await?
            }
        }
        for e in &source.entries {
            if used.contains(&e.path) {
                continue;
            }
            let reason = if e.path == MANIFEST {
                "the export's manifest (nothing to import)"
            } else if report.format == Format::Ndjson && is_note(&e.path) {
                "a Markdown file beside notes.ndjson (the NDJSON format was read)"
            } else {
                "not embedded or linked by any note"
            };
            report.skip(Skipped::new(&e.path, reason));
        }
        report.took_ms = timestamp::elapsed_ms(started);
        self.announce(&report);
        Ok(report)
    }

    /// Sends the report now.
    fn announce(&self, report: &Report) {
        self.progress.set(report.done, Some(report.total));
        self.report.send_replace(report.clone());
    }

    /// Counts at once; sends the report if [`PUBLISH_EVERY`] has passed.
    fn publish(&self, report: &Report, last: &mut std::time::Instant) {
        self.progress.set(report.done, Some(report.total));
        if last.elapsed() >= PUBLISH_EVERY {
            *last = std::time::Instant::now();
            self.report.send_replace(report.clone());
        }
    }

    async fn markdown(
        &self,
        source: &Source,
        report: &mut Report,
        used: &mut HashSet<String>,
        last: &mut std::time::Instant,
    ) -> Result<(), ImportError> {
        let index = VaultIndex::new(source.entries.iter().map(|e| e.path.as_str()));
        let notes: Vec<&Entry> = source.entries.iter().filter(|e| is_note(&e.path)).collect();
        report.total = notes.len() as u64;
        self.announce(report);
        for entry in notes {
            used.insert(entry.path.clone());
            report.done += 1;
            let bytes = match source.read_small(entry, MAX_NOTE_FILE_BYTES).await {
                Ok(Some(bytes)) => bytes,
                Ok(None) => {
                    report.error(
                        &entry.path,
                        format!("the file is over {MAX_NOTE_FILE_BYTES} bytes"),
                    );
                    continue;
                }
                Err(e) if source.exhausted() => return Err(e),
                Err(e) => {
                    report.error(&entry.path, e);
                    continue;
                }
            };
            let parsed = match vault_read::parse_note(
                &NoteSource {
                    path: &entry.path,
                    extra_tag: self.options.tag.as_deref(),
                    folder_tag: self.options.folder_tags,
                },
                &bytes,
            ) {
                Ok(p) => p,
                Err(e) => {
                    report.error(&entry.path, e);
                    continue;
                }
            };
            drop(bytes);
            let mut wanted = Vec::new();
            for embed in &parsed.embeds {
                match index.resolve(&entry.path, &embed.target) {
                    Some(p) if !is_note(&p) => {
                        if !wanted.iter().any(|w: &Wanted| w.path == p) {
                            wanted.push(Wanted {
                                filename: attachment::sanitize_filename(file_name(&p)),
                                content_type: content_type_of(&p).to_owned(),
                                path: p,
                            });
                        }
                    }
                    Some(_) => {}
                    None => report.warn(
                        &entry.path,
                        format!("embeds {:?}, which is not in the vault", embed.target),
                    ),
                }
            }
            let imported = ImportedNote {
                id: parsed.id,
                input: parsed.input.by(ACTOR),
                created_at: parsed.created,
                updated_at: parsed.updated,
            };
            self.note(source, &entry.path, imported, wanted, report, used)
                .await?;
            self.publish(report, last);
        }
        Ok(())
    }

    async fn ndjson(
        &self,
        source: &Source,
        report: &mut Report,
        used: &mut HashSet<String>,
        last: &mut std::time::Instant,
    ) -> Result<(), ImportError> {
        let entry = source
            .entries
            .iter()
            .find(|e| e.path == NOTES_NDJSON)
            .ok_or(ImportError::NoNdjson)?;
        used.insert(entry.path.clone());
        // Counted first, so the progress has a total: one more pass over
        // a file that streams.
        let mut lines = tokio::io::BufReader::new(source.open_entry(entry).await?).lines();
        let mut total = 0;
        while let Some(line) = lines
            .next_line()
            .await
            .map_err(|e| source.read_error(entry, e))?
        {
            if !line.trim().is_empty() {
                total += 1;
            }
        }
        report.total = total;
        self.announce(report);
        let mut reader = tokio::io::BufReader::new(source.open_entry(entry).await?);
        let mut line_no = 0;
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let n = (&mut reader)
                .take(MAX_NOTE_JSON_BYTES as u64 + 1)
                .read_until(b'\n', &mut buf)
                .await
                .map_err(|e| source.read_error(entry, e))?;
            if n == 0 {
                break;
            }
            line_no += 1;
            let at = format!("{NOTES_NDJSON}:{line_no}");
            if buf.len() > MAX_NOTE_JSON_BYTES && !buf.ends_with(b"\n") {
                report.done += 1;
                report.error(&at, format!("the line is over {MAX_NOTE_JSON_BYTES} bytes"));
                // The rest of the line is skipped.
                let mut rest = Vec::new();
                reader
                    .read_until(b'\n', &mut rest)
                    .await
                    .map_err(|e| source.read_error(entry, e))?;
                continue;
            }
            if buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            report.done += 1;
            let (imported, files) = match ndjson_line(&buf, self.options.tag.as_deref()) {
                Ok(x) => x,
                Err(e) => {
                    report.error(&at, e);
                    continue;
                }
            };
            let mut wanted = Vec::new();
            for f in files {
                if source.entry(&f.path).is_some() {
                    wanted.push(f);
                } else {
                    report.warn(
                        &at,
                        format!("names {:?}, which is not in the archive", f.path),
                    );
                }
            }
            self.note(source, &at, imported, wanted, report, used)
                .await?;
            self.publish(report, last);
        }
        Ok(())
    }

    /// Upserts one note and adds the attachments it lacks.
    async fn note(
        &self,
        source: &Source,
        at: &str,
        imported: ImportedNote,
        wanted: Vec<Wanted>,
        report: &mut Report,
        used: &mut HashSet<String>,
    ) -> Result<(), ImportError> {
        let (note, outcome) = match self.store.import_note(imported, self.options.dry_run).await {
            Ok(x) => x,
            // This note conflicts (its external_id is another note's, it
            // is at its last version): this file is not imported.
            Err(e @ (StoreError::Conflict(_) | StoreError::VersionMismatch { .. })) => {
                report.error(at, e);
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        let mut added = 0;
        let existing = if outcome == Upserted::Created {
            Vec::new()
        } else {
            self.attachments_of(note.id).await?
        };
        for w in wanted {
            used.insert(w.path.clone());
            let entry = source.entry(&w.path).expect("wanted files are entries");
            match self.attachment(source, &note, &existing, entry, &w).await {
                Ok(true) => added += 1,
                Ok(false) => {}
                Err(e)
                    if source.exhausted()
                        || !matches!(
                            e,
                            ImportError::Source(_) | ImportError::Blob(BlobError::TooLarge { .. })
                        ) =>
                {
                    return Err(e);
                }
                Err(e) => report.warn(at, format!("attachment {}: {e}", w.path)),
            }
        }
        report.attachments += added;
        // A note whose text is the same but gained an attachment changed.
        report.count(match outcome {
            Upserted::Unchanged if added > 0 => Upserted::Updated,
            o => o,
        });
        Ok(())
    }

    async fn attachments_of(&self, note_id: Uuid) -> Result<Vec<Attachment>, ImportError> {
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let page = self.store.list_attachments(note_id, after, 500).await?;
            let full = page.len() == 500;
            after = page.last().map(|a| a.id);
            all.extend(page);
            if !full {
                return Ok(all);
            }
        }
    }

    /// Adds `entry` to the note unless it has an attachment of that name
    /// and those bytes; `true` when it was (or, dry, would be) added.
    async fn attachment(
        &self,
        source: &Source,
        note: &Note,
        existing: &[Attachment],
        entry: &Entry,
        w: &Wanted,
    ) -> Result<bool, ImportError> {
        let same_name = existing
            .iter()
            .filter(|a| a.filename == w.filename && a.size == entry.size);
        let mut sha = None;
        for a in same_name {
            let digest = match &sha {
                Some(d) => d,
                None => sha.insert(hash(source, entry).await?),
            };
            if &a.sha256 == digest {
                return Ok(false);
            }
        }
        if self.options.dry_run {
            return Ok(true);
        }
        let id = attachment::new_id();
        let key = storage_key(note.id, id);
        let reader = source.open_entry(entry).await?;
        let stream = tokio_util::io::ReaderStream::with_capacity(reader, 64 * 1024);
        let written = match self
            .blobs
            .put_stream(&key, stream, self.options.max_upload_bytes)
            .await
        {
            Ok(w) => w,
            Err(_) if source.exhausted() => {
                return Err(source.read_error(entry, std::io::Error::other("too long")));
            }
            Err(BlobError::Source(e)) => return Err(ImportError::Source(e)),
            Err(e) => return Err(ImportError::Blob(e)),
        };
        let stored = StoredAttachment {
            attachment: Attachment {
                id,
                note_id: note.id,
                filename: w.filename.clone(),
                content_type: normalize_content_type(Some(&w.content_type)),
                size: written.size,
                sha256: written.sha256,
                created_at: timestamp::now(),
            },
            storage_key: key.clone(),
            search_text: String::new(),
        };
        let attachment = stored.attachment.clone();
        if let Err(e) = self.store.create_attachment(stored).await {
            // No row, no object: nothing is left half-imported.
            self.blobs.delete_all(std::slice::from_ref(&key)).await;
            return Err(e.into());
        }
        if let Some(after) = &self.after_attachment
            && attachment::is_text_like(&attachment.content_type)
            && attachment.size > 0
        {
            after.stored(&attachment).await;
        }
        Ok(true)
    }
}

/// The sha256 of a file of the import, read through.
async fn hash(source: &Source, entry: &Entry) -> Result<String, ImportError> {
    use sha2::{Digest, Sha256};
    let mut reader = source.open_entry(entry).await?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = reader
            .read(&mut buf)
            .await
            .map_err(|e| source.read_error(entry, e))?;
        if n == 0 {
            return Ok(hex::encode(hasher.finalize()));
        }
        hasher.update(&buf[..n]);
    }
}

/// One line of an NDJSON export: the note as ingest reads it, plus the
/// export's `id`, times and attachments.
fn ndjson_line(
    line: &[u8],
    extra_tag: Option<&str>,
) -> Result<(ImportedNote, Vec<Wanted>), String> {
    let mut value: serde_json::Map<String, Value> =
        serde_json::from_slice(line).map_err(|e| format!("not a JSON object: {e}"))?;
    let id = match value.remove("id") {
        Some(Value::String(s)) => Some(Uuid::parse_str(&s).map_err(|e| format!("id: {e}"))?),
        _ => None,
    };
    let time = |v: Option<Value>| match v {
        Some(Value::String(s)) => timestamp::parse(&s).ok(),
        _ => None,
    };
    let created_at = time(value.remove("created_at"));
    let updated_at = time(value.remove("updated_at"));
    let files = match value.remove("attachments") {
        Some(Value::Array(items)) => items
            .into_iter()
            .filter_map(|a| {
                let path = a.get("path")?.as_str()?.to_owned();
                let filename = a
                    .get("filename")
                    .and_then(Value::as_str)
                    .map(attachment::sanitize_filename)
                    .unwrap_or_else(|| attachment::sanitize_filename(file_name(&path)));
                let content_type = a
                    .get("content_type")
                    .and_then(Value::as_str)
                    .map_or_else(|| content_type_of(&path).to_owned(), str::to_owned);
                Some(Wanted {
                    path,
                    filename,
                    content_type,
                })
            })
            .collect(),
        _ => Vec::new(),
    };
    let mut draft: NoteDraft =
        serde_json::from_value(Value::Object(value)).map_err(|e| e.to_string())?;
    if let Some(tag) = extra_tag
        && !draft.tags.iter().any(|t| t == tag)
    {
        draft.tags.push(tag.to_owned());
    }
    let input = draft.validate().map_err(|errors| {
        errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    Ok((
        ImportedNote {
            id,
            input: input.by(ACTOR),
            created_at,
            updated_at,
        },
        files,
    ))
}
