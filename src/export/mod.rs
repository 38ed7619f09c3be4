//! Export (issue #26): every note outside the trash, or those with a tag,
//! as a zip or a folder that opens as an Obsidian vault (`markdown`), or as
//! NDJSON that `POST /api/v1/ingest` reads back (`ndjson`). The layout and
//! naming rules are in `docs/export.md`; the names and the front matter are
//! `domain::vault`'s.
//!
//! Memory stays bounded whatever the deployment holds: notes are read a
//! page of keys at a time and then a few notes at a time
//! ([`NOTES_AT_ONCE`]), attachments stream from storage into the output in
//! chunks, the NDJSON file and the zip's directory are spooled to unnamed
//! files, and the output goes to its [`Sink`] as it is made. What grows
//! with the export is the set of names taken (16 bytes a note).
//!
//! The manifest, `notes-api-export.json`, is written last: an export
//! without one is incomplete.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt, stream::BoxStream};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};
use uuid::Uuid;

mod pipe;
mod sink;
mod zip;

pub use pipe::{PipeAbort, PipeWriter, pipe};
pub use sink::{DirSink, Sink, ZipSink, write_to_path};

use crate::{
    blobs::{BlobError, Blobs},
    domain::{
        attachment::{StoredAttachment, is_text_like},
        note::Note,
        timestamp,
        vault::{self, FrontMatter, NameSet},
    },
    progress::{Progress, Unit},
    store::{DynStore, ExportKey, StoreError},
};

/// The version of the layout, in the manifest: raised when a reader
/// (`import`) must tell one layout from another.
pub const FORMAT_VERSION: u32 = 1;
/// The manifest's file name.
pub const MANIFEST: &str = "notes-api-export.json";
/// The `ndjson` format's notes.
pub const NOTES_NDJSON: &str = "notes.ndjson";
/// Keys read per page: a page is about 40 bytes a note, and each page is
/// one scan and sort of the notes (no index orders them by creation).
const KEYS_PER_PAGE: u32 = 10_000;
/// Notes read at once: a note is at most about 1.1 MB (body and metadata),
/// so this bounds what one read holds.
pub const NOTES_AT_ONCE: usize = 8;
/// Missing attachment objects listed by name in the manifest; past this
/// only counted.
const MISSING_LISTED: usize = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One `.md` file a note with YAML front matter: an Obsidian vault.
    #[default]
    Markdown,
    /// `notes.ndjson`, one note a line as ingest reads it.
    Ndjson,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Markdown => "markdown",
            Self::Ndjson => "ndjson",
        }
    }
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "markdown" => Ok(Self::Markdown),
            "ndjson" => Ok(Self::Ndjson),
            other => Err(format!(
                "unknown export format {other:?}; expected markdown or ndjson"
            )),
        }
    }
}

/// What to export.
#[derive(Debug, Clone)]
pub struct Options {
    pub format: Format,
    /// Only notes with this tag (already normalized).
    pub tag: Option<String>,
    /// Where the `ndjson` format stages its notes (an unnamed file, gone
    /// with its handle): on the data volume, as an ingest's batch, not in
    /// `/tmp`, which is memory-backed in the kit.
    pub spool_dir: std::path::PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("attachment {id} could not be read from storage: {source}")]
    Blob {
        id: Uuid,
        #[source]
        source: BlobError,
    },
    #[error("writing the export failed: {0}")]
    Write(#[from] std::io::Error),
    /// The destination cannot take an export (the command line's `--to`).
    #[error("{0}")]
    Destination(String),
}

impl ExportError {
    /// The reader of the output went away (a client that disconnected):
    /// not the server's failure.
    pub fn is_disconnect(&self) -> bool {
        matches!(self, Self::Write(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

/// An attachment object that storage did not have: its link is in the
/// note, its file is not in the export.
#[derive(Debug, Clone, Serialize)]
pub struct Missing {
    pub note_id: Uuid,
    pub attachment_id: Uuid,
    pub path: String,
}

/// What an export holds: the manifest's content.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub format_version: u32,
    pub format: Format,
    pub generator: String,
    pub tag: Option<String>,
    pub notes: u64,
    pub attachments: u64,
    pub attachment_bytes: u64,
    pub missing_attachments: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<Missing>,
}

/// An export under way: the first page of its notes is read (so an
/// unreachable database fails before anything is sent), the rest as it
/// writes.
pub struct Export {
    store: DynStore,
    blobs: Blobs,
    options: Options,
    first: Vec<ExportKey>,
    progress: Progress,
}

/// One attachment as the export lays it out.
struct Placed {
    stored: StoredAttachment,
    path: String,
}

/// One line of `notes.ndjson`: what `POST /api/v1/ingest` reads (`title`,
/// `body`, `tags`, `external_id`, `metadata`; it ignores the rest), then
/// what a re-import or another tool may use.
#[derive(Serialize)]
struct NdjsonLine<'a> {
    title: &'a str,
    body: &'a str,
    tags: &'a [String],
    external_id: Option<&'a str>,
    metadata: &'a serde_json::Map<String, serde_json::Value>,
    id: Uuid,
    #[serde(with = "timestamp")]
    created_at: DateTime<Utc>,
    #[serde(with = "timestamp")]
    updated_at: DateTime<Utc>,
    attachments: Vec<NdjsonAttachment<'a>>,
}

#[derive(Serialize)]
struct NdjsonAttachment<'a> {
    path: &'a str,
    filename: &'a str,
    content_type: &'a str,
    size: u64,
    sha256: &'a str,
}

/// An unnamed file under `dir` (created if missing), gone when closed:
/// where an export stages what cannot go out yet (the NDJSON lines, the
/// zip's directory), on the data volume rather than in memory or `/tmp`.
pub async fn spool_file(dir: &std::path::Path) -> std::io::Result<std::fs::File> {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&dir)?;
        tempfile::tempfile_in(&dir)
    })
    .await
    .map_err(std::io::Error::other)?
}

/// The earliest time a zip can hold (1980-01-01): the files that belong to
/// no note (the manifest, `notes.ndjson`) carry the newest note's
/// `updated`, or this when there is none, so two exports of the same data
/// are the same bytes.
fn epoch() -> DateTime<Utc> {
    DateTime::from_timestamp(315_532_800, 0).expect("1980-01-01 is a valid time")
}

impl Export {
    pub async fn begin(
        store: DynStore,
        blobs: Blobs,
        options: Options,
    ) -> Result<Self, ExportError> {
        let first = store
            .export_keys(options.tag.as_deref(), None, KEYS_PER_PAGE)
            .await?;
        Ok(Self {
            store,
            blobs,
            options,
            first,
            progress: Progress::new("export"),
        })
    }

    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Counts the notes written, towards their number when the export
    /// began; whoever runs the export shows it.
    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// Writes every file into `sink` and finishes it; the manifest last.
    pub async fn write(self, sink: &mut dyn Sink) -> Result<Summary, ExportError> {
        let mut summary = Summary {
            format_version: FORMAT_VERSION,
            format: self.options.format,
            generator: format!("notes-api {}", crate::VERSION),
            tag: self.options.tag.clone(),
            notes: 0,
            attachments: 0,
            attachment_bytes: 0,
            missing_attachments: 0,
            missing: Vec::new(),
        };
        let mut newest = epoch();
        let total = self.store.export_count(self.options.tag.as_deref()).await?;
        self.progress
            .stage("notes", Unit::Items("notes"), Some(total));
        let mut stems = NameSet::default();
        // NDJSON lines wait in a file until the attachments are written:
        // a zip takes its entries one after the other.
        let mut spool = match self.options.format {
            Format::Ndjson => {
                let file = spool_file(&self.options.spool_dir).await?;
                Some(tokio::io::BufWriter::new(tokio::fs::File::from_std(file)))
            }
            Format::Markdown => None,
        };
        let mut page = self.first.clone();
        loop {
            for chunk in page.chunks(NOTES_AT_ONCE) {
                let ids: Vec<Uuid> = chunk.iter().map(|k| k.id).collect();
                for (note, attachments) in self.store.export_notes(&ids).await? {
                    newest = newest.max(note.updated_at);
                    let placed = match self.options.format {
                        Format::Markdown => {
                            let stem = stems.claim(&vault::note_stem(&note.title), ".md");
                            let placed = place(&stem, attachments);
                            let text = markdown(&note, &stem, &placed);
                            sink.file(
                                &format!("{stem}.md"),
                                note.updated_at,
                                true,
                                text.into_bytes(),
                            )
                            .await?;
                            placed
                        }
                        Format::Ndjson => {
                            let placed = place(&note.id.to_string(), attachments);
                            let mut line = ndjson(&note, &placed);
                            line.push('\n');
                            let spool = spool.as_mut().expect("ndjson spools");
                            spool.write_all(line.as_bytes()).await?;
                            placed
                        }
                    };
                    summary.notes += 1;
                    for p in placed {
                        self.attachment(sink, &note, p, &mut summary).await?;
                    }
                    self.progress.add(1);
                }
            }
            if page.len() < KEYS_PER_PAGE as usize {
                break;
            }
            let after = page.last().copied();
            page = self
                .store
                .export_keys(self.options.tag.as_deref(), after, KEYS_PER_PAGE)
                .await?;
        }
        if let Some(mut spool) = spool {
            spool.flush().await?;
            let mut file = spool.into_inner();
            file.rewind().await?;
            let lines = tokio_util::io::ReaderStream::with_capacity(file, 64 * 1024)
                .map_err(ExportError::Write)
                .boxed();
            sink.stream(NOTES_NDJSON, newest, true, lines).await?;
        }
        let mut manifest = serde_json::to_vec_pretty(&summary).expect("a summary serializes");
        manifest.push(b'\n');
        sink.file(MANIFEST, newest, true, manifest).await?;
        sink.finish().await?;
        Ok(summary)
    }

    /// Streams one attachment's bytes into the sink; an object storage does
    /// not have is listed in the summary and left out.
    async fn attachment(
        &self,
        sink: &mut dyn Sink,
        note: &Note,
        placed: Placed,
        summary: &mut Summary,
    ) -> Result<(), ExportError> {
        let a = &placed.stored.attachment;
        let id = a.id;
        let body = match self.blobs.get(&placed.stored.storage_key, None).await {
            Ok(body) => body,
            Err(BlobError::NotFound) => {
                tracing::warn!(attachment = %id, note = %note.id, "export: the attachment's object is missing; left out");
                summary.missing_attachments += 1;
                if summary.missing.len() < MISSING_LISTED {
                    summary.missing.push(Missing {
                        note_id: note.id,
                        attachment_id: id,
                        path: placed.path,
                    });
                }
                return Ok(());
            }
            Err(source) => return Err(ExportError::Blob { id, source }),
        };
        let body: BoxStream<'static, Result<Bytes, ExportError>> = body
            .map_err(move |source| ExportError::Blob { id, source })
            .boxed();
        let compress = is_text_like(&a.content_type);
        let written = sink
            .stream(&placed.path, a.created_at, compress, body)
            .await?;
        summary.attachments += 1;
        summary.attachment_bytes += written;
        Ok(())
    }
}

/// Each attachment's path under `attachments/<folder>/`, its file name
/// made path-safe and unique within the note.
fn place(folder: &str, attachments: Vec<StoredAttachment>) -> Vec<Placed> {
    let mut names = NameSet::default();
    attachments
        .into_iter()
        .map(|stored| {
            let name = names.claim_file(&vault::attachment_name(&stored.attachment.filename));
            Placed {
                path: format!("attachments/{folder}/{name}"),
                stored,
            }
        })
        .collect()
}

/// A note's Markdown file: front matter, the body, then a link to each
/// attachment.
fn markdown(note: &Note, stem: &str, placed: &[Placed]) -> String {
    let front = FrontMatter {
        id: note.id,
        title: (stem != note.title).then_some(note.title.as_str()),
        tags: &note.tags,
        created: note.created_at,
        updated: note.updated_at,
        external_id: note.external_id.as_deref(),
        metadata: &note.metadata,
    };
    let mut out = front.render();
    out.push_str(&note.body);
    if !placed.is_empty() {
        if !note.body.is_empty() && !note.body.ends_with('\n') {
            out.push('\n');
        }
        out.push('\n');
        for p in placed {
            let a = &p.stored.attachment;
            out.push_str(&vault::attachment_link(
                &p.path,
                vault::is_image(&a.content_type, &a.filename),
            ));
            out.push('\n');
        }
    }
    out
}

/// A note's line of `notes.ndjson`, without its newline.
fn ndjson(note: &Note, placed: &[Placed]) -> String {
    let line = NdjsonLine {
        title: &note.title,
        body: &note.body,
        tags: &note.tags,
        external_id: note.external_id.as_deref(),
        metadata: &note.metadata,
        id: note.id,
        created_at: note.created_at,
        updated_at: note.updated_at,
        attachments: placed
            .iter()
            .map(|p| {
                let a = &p.stored.attachment;
                NdjsonAttachment {
                    path: &p.path,
                    filename: &a.filename,
                    content_type: &a.content_type,
                    size: a.size,
                    sha256: &a.sha256,
                }
            })
            .collect(),
    };
    serde_json::to_string(&line).expect("a note serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(title: &str, body: &str) -> Note {
        let t = timestamp::parse("2026-01-02T03:04:05.000006Z").unwrap();
        Note {
            id: Uuid::nil(),
            title: title.into(),
            body: body.into(),
            tags: vec!["work".into()],
            external_id: None,
            metadata: Default::default(),
            created_at: t,
            updated_at: t,
            version: 1,
        }
    }

    fn stored(filename: &str, content_type: &str) -> StoredAttachment {
        StoredAttachment {
            attachment: crate::domain::attachment::Attachment {
                id: Uuid::nil(),
                note_id: Uuid::nil(),
                filename: filename.into(),
                content_type: content_type.into(),
                size: 3,
                sha256: "00".into(),
                created_at: epoch(),
            },
            storage_key: "k".into(),
            search_text: String::new(),
        }
    }

    #[test]
    fn a_note_file_links_its_attachments_at_the_end() {
        let n = note("Trip", "Packing list");
        let placed = place(
            "Trip",
            vec![
                stored("beach.jpg", "image/jpeg"),
                stored("Beach.JPG", "image/jpeg"),
                stored("tickets.pdf", "application/pdf"),
            ],
        );
        let text = markdown(&n, "Trip", &placed);
        assert!(!text.contains("title:"), "the file name holds the title");
        assert!(text.ends_with(
            "Packing list\n\n![[attachments/Trip/beach.jpg]]\n![[attachments/Trip/Beach (2).JPG]]\n\
             [[attachments/Trip/tickets.pdf]]\n"
        ));
        let text = markdown(&note("a/b", ""), "a-b", &[]);
        assert!(text.contains("title: \"a/b\"\n"));
        assert!(text.ends_with("---\n"));
    }

    #[test]
    fn an_ndjson_line_is_what_ingest_reads() {
        let n = note("Trip", "x");
        let line = ndjson(&n, &place("id", vec![stored("a.txt", "text/plain")]));
        let draft: crate::domain::note::NoteDraft = serde_json::from_str(&line).unwrap();
        let input = draft.validate().unwrap();
        assert_eq!(input.title, "Trip");
        assert_eq!(input.tags, ["work"]);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["attachments"][0]["path"], "attachments/id/a.txt");
    }
}
