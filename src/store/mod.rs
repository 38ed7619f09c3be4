//! Persistence behind one trait. Callers hold an `Arc<dyn Store>` and never
//! branch on the backend; each backend lives in its own module.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::domain::{
    attachment::{Attachment, StoredAttachment},
    change::ChangeEntry,
    delivery::{AttemptRecord, Delivery, NewDelivery, Next, Outgoing},
    ingest::IngestCounts,
    keys::{ApiKey, Scope},
    note::{MAX_NOTE_VERSION, Note, NoteInput, TrashedNote},
    revision::{Revision, RevisionSummary},
    webhook::{StoredWebhook, WebhookFields},
};

mod changes;
pub mod dataset;
mod open;
mod schema;
mod versions;
mod webhooks;
pub use schema::{SchemaError, require_current, require_exact};
pub use versions::SchemaVersions;
pub mod postgres;
pub(crate) mod rows;
pub mod sql;
pub mod sqlite;

pub use open::{Database, connect, open};

type Source = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("version mismatch: current version is {current}")]
    VersionMismatch { current: i64 },
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database cannot be reached or is overloaded: worth a retry.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] Source),
    #[error("database error: {0}")]
    Internal(#[source] Source),
}

/// A unique constraint a write broke, named `table.column` (PostgreSQL's
/// constraint names and SQLite's messages both map to that), in words that
/// say which one: a duplicate note id in a snapshot is not a taken
/// `external_id`.
pub(crate) fn unique_conflict(column: &str) -> StoreError {
    let detail = match column {
        "notes.external_id" => "a note with this external_id already exists",
        "notes.id" => "a note with this id already exists",
        "attachments.id" => "an attachment with this id already exists",
        "attachments.storage_key" => "an attachment with this storage key already exists",
        "api_keys.id" => "an API key with this id already exists",
        "api_keys.key_hash" => "an API key with this secret already exists",
        "jobs.id" => "a job with this id already exists",
        other => {
            return StoreError::Conflict(format!("a record already exists with the same {other}"));
        }
    };
    StoreError::Conflict(detail.to_owned())
}

impl StoreError {
    /// What went wrong in words fit for a job record any reader may see:
    /// no driver text, no SQL, no hosts.
    pub fn brief(&self) -> String {
        match self {
            Self::NotFound => "not found".into(),
            Self::VersionMismatch { .. } | Self::Conflict(_) => "a conflicting write".into(),
            Self::Unavailable(_) => "the database is unavailable".into(),
            Self::Internal(_) => "a database error (see the worker's log)".into(),
        }
    }
}

/// A page of notes (or jobs), newest first. `next` is the position to continue after.
#[derive(Debug)]
pub struct Page<T = Note> {
    pub items: Vec<T>,
    pub next: Option<i64>,
    /// Each item's position: what a cursor continuing after it names.
    pub positions: Vec<i64>,
}

#[derive(Debug, Clone)]
pub struct ListQuery {
    pub tag: Option<String>,
    pub limit: u32,
    /// Continue strictly after this position (from a previous page's `next`).
    pub after: Option<i64>,
}

/// Where the change feed stands: the index follows it (see `index`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedHead {
    /// Changes when every index must be rebuilt from scratch (a `reindex`
    /// job, a restore).
    pub generation: String,
    /// The last change number handed out by a committed write; every change
    /// up to it is visible to the next read.
    pub seq: i64,
    /// The newest event pruned from the feed's log: a follower that has
    /// not read up to it has missed deletions, and must start over.
    pub floor: i64,
}

/// What a search index needs of a note: its text and tags.
#[derive(Debug, Clone)]
pub struct IndexDoc {
    pub id: Uuid,
    pub title: String,
    pub body: String,
    pub tags: Vec<String>,
    /// The extracted text of its attachments, joined.
    pub extra: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// How many attachments it has (search filters on whether it has any).
    pub attachments: u32,
}

#[derive(Debug, Clone)]
pub enum Change {
    /// The note as it is now (created or changed).
    Upsert(IndexDoc),
    Delete(Uuid),
}

/// Changes in feed order, and the number up to which they are complete: the
/// next page starts after `through`.
#[derive(Debug)]
pub struct ChangePage {
    pub changes: Vec<(i64, Change)>,
    pub through: i64,
}

/// A key as stored: its metadata and the hash of its secret.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub key: ApiKey,
    pub hash: String,
}

/// Everything a deployment's database holds, for the server, the CLI and
/// the jobs, which touch most of it. Each part is a trait of its own, so a
/// layer that needs one part asks for that part only: the search index
/// follows a [`FeedReader`], a backup reads and writes through [`Backup`].
/// Every backend implements all of them.
pub trait Store:
    Maintenance
    + Notes
    + Revisions
    + Trash
    + Attachments
    + FeedReader
    + Changes
    + Keys
    + Webhooks
    + Backup
{
}

impl<T> Store for T where
    T: Maintenance
        + Notes
        + Revisions
        + Trash
        + Attachments
        + FeedReader
        + Changes
        + Keys
        + Webhooks
        + Backup
{
}

/// The database itself: opening, migrating, checking, closing.
#[async_trait]
pub trait Maintenance: Send + Sync + 'static {
    /// `sqlite` or `postgres`: for logs and `/readyz`, never for branching.
    fn backend(&self) -> &'static str;
    async fn migrate(&self) -> Result<(), StoreError>;
    /// The migrations this binary carries that the database has not
    /// applied, and those it has applied that this binary does not know.
    /// Read-only: it never creates the table.
    async fn schema_versions(&self) -> Result<SchemaVersions, StoreError>;
    /// A quick structural check of the stored data (SQLite's
    /// `quick_check`); a server's own guarantees elsewhere (PostgreSQL).
    async fn check_integrity(&self) -> Result<(), StoreError>;
    /// Cheap round trip for readiness.
    async fn ping(&self) -> Result<(), StoreError>;
    async fn close(&self);
    /// Starts a new feed generation, which makes every index rebuild itself.
    async fn renew_feed(&self) -> Result<FeedHead, StoreError>;
}

/// Notes: the API, the admin UI and ingest.
#[async_trait]
pub trait Notes: Send + Sync + 'static {
    async fn create_note(&self, note: NoteInput) -> Result<Note, StoreError>;
    async fn get_note(&self, id: Uuid) -> Result<Option<Note>, StoreError>;
    async fn list_notes(&self, query: &ListQuery) -> Result<Page, StoreError>;
    /// Replaces the note's content if it is still at `expected_version`.
    async fn update_note(
        &self,
        id: Uuid,
        note: NoteInput,
        expected_version: i64,
    ) -> Result<Note, StoreError>;
    /// Deletes the note and its attachments' rows; returns the storage keys
    /// of those attachments (their objects are deleted afterwards), or `None`
    /// when there was no such note.
    async fn delete_note(&self, id: Uuid) -> Result<Option<Vec<String>>, StoreError>;
    /// Writes a whole batch in one transaction: notes with a known
    /// `external_id` are updated (or left alone when nothing changed).
    async fn ingest(&self, notes: Vec<NoteInput>) -> Result<IngestCounts, StoreError>;
    /// Upserts one note of an import (issue #26) in its own transaction:
    /// the note of `id` (trashed ones too), else of `external_id`, is
    /// updated (brought back from the trash) or left alone when nothing
    /// changed; else a note is created with that id and those times, so a
    /// re-imported export keeps them. With `dry_run` the transaction is
    /// rolled back: the outcome is what the import would do.
    async fn import_note(
        &self,
        note: ImportedNote,
        dry_run: bool,
    ) -> Result<(Note, Upserted), StoreError>;
}

/// A note as an import brings it (see [`Notes::import_note`]).
#[derive(Debug, Clone)]
pub struct ImportedNote {
    pub id: Option<Uuid>,
    pub input: NoteInput,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// What an upsert did to a note.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Upserted {
    Created,
    Updated,
    Unchanged,
}

/// The states notes had before each change. The database keeps them itself
/// (a trigger on every version bump), so no write path can forget one.
#[async_trait]
pub trait Revisions: Send + Sync + 'static {
    /// At most `limit` of a note's revisions, newest first, older than
    /// version `before` if given; without their bodies.
    async fn list_revisions(
        &self,
        note_id: Uuid,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<RevisionSummary>, StoreError>;
    /// Version `version` of the note, whole: a revision, or the note as it
    /// is when that is its current version.
    async fn get_revision(
        &self,
        note_id: Uuid,
        version: i64,
    ) -> Result<Option<Revision>, StoreError>;
    /// Deletes every revision past the `keep` newest of its note, and
    /// (when given) every one made before `before`; returns how many went.
    async fn prune_revisions(
        &self,
        keep: u32,
        before: Option<DateTime<Utc>>,
    ) -> Result<u64, StoreError>;
    /// How many revisions are kept, all notes together.
    async fn count_revisions(&self) -> Result<u64, StoreError>;
}

/// Deleted notes, kept until they are restored or deleted for good. A
/// trashed note is out of every read of [`Notes`] and [`Attachments`], and
/// the feed reports it deleted; its revisions and attachments stay with it.
#[async_trait]
pub trait Trash: Send + Sync + 'static {
    /// Moves the note to the trash; `false` when no note outside the trash
    /// has this id.
    async fn trash_note(&self, id: Uuid, by: &str) -> Result<bool, StoreError>;
    /// Brings a trashed note back as it was (same id, version, tags,
    /// attachments, history); `None` when it is not in the trash.
    async fn restore_note(&self, id: Uuid) -> Result<Option<Note>, StoreError>;
    /// At most `limit` trashed notes, most recently trashed first, after
    /// position `after` (a previous page's `next`).
    async fn list_trash(
        &self,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Page<TrashedNote>, StoreError>;
    /// Deletes a trashed note for good: its row, revisions and attachment
    /// rows; returns the attachments' storage keys (the objects go next),
    /// or `None` when it is not in the trash.
    async fn purge_trashed(&self, id: Uuid) -> Result<Option<Vec<String>>, StoreError>;
    /// Deletes for good up to `limit` trashed notes, oldest first (only
    /// those trashed before `before`, if given); returns how many, and
    /// their attachments' storage keys.
    async fn purge_trash(
        &self,
        before: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<(u64, Vec<String>), StoreError>;
    async fn count_trashed(&self) -> Result<u64, StoreError>;
}

/// Attachments' records (their bytes are in `blobs`): the API, and the
/// jobs that extract their text and check a restore.
#[async_trait]
pub trait Attachments: Send + Sync + 'static {
    /// Records an uploaded attachment; `NotFound` when its note is gone.
    async fn create_attachment(&self, attachment: StoredAttachment) -> Result<(), StoreError>;
    /// At most `limit` of the note's attachments, in id (upload) order,
    /// after the one `after` names.
    async fn list_attachments(
        &self,
        note_id: Uuid,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<Attachment>, StoreError>;
    async fn get_attachment(&self, id: Uuid) -> Result<Option<StoredAttachment>, StoreError>;
    /// Removes the row; returns the storage key of the object to delete.
    async fn delete_attachment(&self, id: Uuid) -> Result<Option<String>, StoreError>;
    /// Sets an attachment's extracted text (it joins its note's search
    /// document); `false` when the attachment is gone.
    async fn set_attachment_text(&self, id: Uuid, text: &str) -> Result<bool, StoreError>;
    /// Which of `ids` name attachments that exist.
    async fn attachments_present(&self, ids: &[Uuid]) -> Result<HashSet<Uuid>, StoreError>;
    /// Non-empty attachments of these content types that have no extracted
    /// text (an `extract_text` job that never ran, or found nothing).
    async fn attachments_without_text(
        &self,
        content_types: &[&str],
    ) -> Result<Vec<Uuid>, StoreError>;
}

/// The change feed, as the search index follows it.
#[async_trait]
pub trait FeedReader: Send + Sync + 'static {
    /// The change feed's head, read fresh.
    async fn feed_head(&self) -> Result<FeedHead, StoreError>;
    /// Changes numbered after `after` (and up to `upto`, if given), in
    /// order, at most `limit` upserts and `limit` deletions (each read
    /// with its own bound, then merged), read with the feed's head at that
    /// moment: the page is complete up to its `through`, which may lie past
    /// a head read earlier. Deletions only when `deletes` (an index built
    /// from nothing needs none).
    async fn feed_changes(
        &self,
        after: i64,
        upto: Option<i64>,
        limit: u32,
        deletes: bool,
    ) -> Result<ChangePage, StoreError>;
    /// Calls `changed` soon after any process commits a change to the feed,
    /// where the backend can announce it (PostgreSQL); followers poll too.
    /// The task ends when the handle is aborted.
    fn watch_feed(
        &self,
        _changed: Arc<dyn Fn() + Send + Sync>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        None
    }
    /// How many notes there are: what a rebuild from the feed will read.
    async fn count_notes(&self) -> Result<u64, StoreError>;
}

/// A page of the change feed as clients read it (see [`Changes`]).
#[derive(Debug)]
pub struct ChangesPage {
    pub entries: Vec<ChangeEntry>,
    /// The page is complete up to here: the next one starts after it.
    pub through: i64,
    /// The feed's head when the page was read.
    pub head: i64,
    /// Changes when the numbers start over (a restore): a cursor of
    /// another epoch means nothing here.
    pub epoch: String,
    /// The newest event pruned: a reader that has not read up to it has
    /// missed deletions.
    pub floor: i64,
}

/// The change feed as clients sync from it: every live note once, at its
/// last change, then the events (deletions, attachments) of the retention
/// window, in change order.
#[async_trait]
pub trait Changes: Send + Sync + 'static {
    /// At most `limit` entries after change `after`, read from one
    /// snapshot. With `notes`, each note's entry carries the note, until
    /// their text passes `budget` bytes: the page then ends early (it holds
    /// at least one entry).
    async fn changes(
        &self,
        after: i64,
        limit: u32,
        notes: Option<usize>,
    ) -> Result<ChangesPage, StoreError>;
    /// Prunes up to `limit` of the oldest events made before `before`, and
    /// raises the feed's floor past them; returns how many went.
    async fn prune_changes(&self, before: DateTime<Utc>, limit: u32) -> Result<u64, StoreError>;
}

/// API keys: the authentication extractor and the key endpoints.
/// Where the webhook dispatcher stands in the change feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatchCursor {
    pub epoch: String,
    pub seq: i64,
}

/// Webhooks, their deliveries and the dispatcher's place in the feed.
#[async_trait]
pub trait Webhooks: Send + Sync + 'static {
    /// Stores a new webhook (`fields` all given), listening from the
    /// feed's head as it is now.
    async fn create_webhook(
        &self,
        id: Uuid,
        fields: WebhookFields,
        now: DateTime<Utc>,
    ) -> Result<StoredWebhook, StoreError>;
    /// Every webhook, oldest first (there are at most a hundred).
    async fn list_webhooks(&self) -> Result<Vec<StoredWebhook>, StoreError>;
    async fn get_webhook(&self, id: Uuid) -> Result<Option<StoredWebhook>, StoreError>;
    /// Changes what `fields` gives; enabling a disabled webhook makes it
    /// listen from the feed's head again and forgets its failures.
    async fn update_webhook(
        &self,
        id: Uuid,
        fields: WebhookFields,
        now: DateTime<Utc>,
    ) -> Result<Option<StoredWebhook>, StoreError>;
    /// Deletes it with its deliveries.
    async fn delete_webhook(&self, id: Uuid) -> Result<bool, StoreError>;
    async fn count_webhooks(&self) -> Result<u64, StoreError>;

    async fn dispatch_cursor(&self) -> Result<DispatchCursor, StoreError>;
    /// Moves the dispatcher from `from` to `to` and stores `deliveries`
    /// (those whose webhook still exists and is enabled), if it is still at
    /// `from`: `false` when another dispatcher got there first, and nothing
    /// was written.
    async fn commit_dispatch(
        &self,
        from: &DispatchCursor,
        to: &DispatchCursor,
        deliveries: Vec<NewDelivery>,
    ) -> Result<bool, StoreError>;
    /// Stores one delivery (a ping, a redelivery); `false` when its webhook
    /// is gone.
    async fn add_delivery(&self, delivery: NewDelivery) -> Result<bool, StoreError>;
    async fn get_delivery(&self, id: Uuid) -> Result<Option<Outgoing>, StoreError>;
    /// A webhook's deliveries, newest first, each with its attempts;
    /// strictly before the delivery `before` when given.
    async fn list_deliveries(
        &self,
        webhook_id: Uuid,
        limit: u32,
        before: Option<Uuid>,
    ) -> Result<Vec<Delivery>, StoreError>;
    /// Records attempt `attempts + 1` of a pending delivery and what
    /// follows it, if nobody recorded it first (`None` then); tracks the
    /// webhook's failures and disables it when they have lasted
    /// `disable_after` (its pending deliveries, this one too, fail then).
    /// Answers whether the webhook was disabled by this.
    async fn record_attempt(
        &self,
        id: Uuid,
        attempts: u32,
        attempt: &AttemptRecord,
        next: Next,
        disable_after: Duration,
    ) -> Result<Option<bool>, StoreError>;
    /// Notes that the deliveries' jobs were queued at `at`.
    async fn mark_enqueued(&self, ids: &[Uuid], at: DateTime<Utc>) -> Result<(), StoreError>;
    /// Takes, for queueing again, the pending deliveries due before
    /// `before` whose job was queued (or last due) before then too: their
    /// job was lost, or is that late. Each is taken by one caller only
    /// (marked queued at `now`).
    async fn claim_stale(
        &self,
        before: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Uuid>, StoreError>;
    /// Takes attempt `attempts + 1` of a pending delivery until `until`,
    /// unless another run holds it: `false` then, and it must not be sent.
    async fn claim_delivery(
        &self,
        id: Uuid,
        attempts: u32,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Replaces a sealed secret with `new` if it is still `old` (a
    /// rotation in between wins).
    async fn reseal_secret(&self, id: Uuid, old: &str, new: &str) -> Result<bool, StoreError>;
    /// Deletes finished deliveries older than `before`, at most `limit`.
    async fn prune_deliveries(&self, before: DateTime<Utc>, limit: u32) -> Result<u64, StoreError>;
}

#[async_trait]
pub trait Keys: Send + Sync + 'static {
    async fn create_key(&self, key: NewKey) -> Result<(), StoreError>;
    async fn list_keys(&self) -> Result<Vec<ApiKey>, StoreError>;
    async fn delete_key(&self, id: Uuid) -> Result<bool, StoreError>;
    async fn find_key(&self, hash: &str) -> Result<Option<(Uuid, Vec<Scope>)>, StoreError>;
}

/// A logical copy of everything, for `backup` and `restore`.
#[async_trait]
pub trait Backup: Send + Sync + 'static {
    /// Sends every key, note and attachment, in that order, read from one
    /// consistent snapshot.
    async fn export(&self, out: mpsc::Sender<Record>) -> Result<(), StoreError>;
    /// Writes exported records as they were (keys and notes before the
    /// attachments that name them) in one transaction, committed when the
    /// channel closes; an `Err` from the producer rolls everything back.
    /// Returns how many records it wrote.
    async fn import(
        &self,
        records: mpsc::Receiver<Result<Record, StoreError>>,
    ) -> Result<u64, StoreError>;
    /// No notes, attachments or keys: a deployment a restore may fill.
    async fn is_empty(&self) -> Result<bool, StoreError>;
    /// An export's (issue #26) order: up to `limit` notes outside the
    /// trash (only those tagged `tag`, if given) after `after`, by
    /// (`created_at`, `id`). Keys only, so a page is small whatever the
    /// notes hold.
    async fn export_keys(
        &self,
        tag: Option<&str>,
        after: Option<ExportKey>,
        limit: u32,
    ) -> Result<Vec<ExportKey>, StoreError>;
    /// How many notes [`Backup::export_keys`] pages through, for a
    /// progress's total: a count, no sort.
    async fn export_count(&self, tag: Option<&str>) -> Result<u64, StoreError>;
    /// The notes of `ids` still outside the trash, in the order of `ids`,
    /// each with its attachments (storage keys included) in upload order.
    async fn export_notes(
        &self,
        ids: &[Uuid],
    ) -> Result<Vec<(Note, Vec<StoredAttachment>)>, StoreError>;
}

/// A note's place in an export's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportKey {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

pub type DynStore = Arc<dyn Store>;

/// One row of a logical export (backup): what it takes to bring a
/// deployment back, ids, times and versions included. The search index is
/// not exported; it is rebuilt from these after an import.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    Key {
        #[serde(flatten)]
        key: ApiKey,
        hash: String,
    },
    Note(Note),
    /// A note that is in the trash, after the note.
    Trashed {
        note_id: Uuid,
        #[serde(with = "crate::domain::timestamp")]
        deleted_at: DateTime<Utc>,
        deleted_by: Option<String>,
    },
    /// A past state of a note, after the note.
    Revision {
        note_id: Uuid,
        #[serde(flatten)]
        revision: Revision,
    },
    Attachment {
        #[serde(flatten)]
        attachment: Attachment,
        storage_key: String,
        search_text: String,
    },
    /// A webhook, its secret sealed as the database holds it (opened with
    /// the same NOTES_SECRET_KEY only). Its deliveries are history, and
    /// are not kept.
    Webhook {
        #[serde(flatten)]
        webhook: crate::domain::webhook::Webhook,
        sealed_secret: String,
    },
}

/// Connection settings every backend understands.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max_connections: u32,
    pub connect_timeout: Duration,
    pub statement_timeout: Duration,
    /// A read-only dataset (SQLite): opened immutable, with no writer
    /// connection, no WAL or shm file and no file created.
    pub read_only: bool,
}

impl PoolSettings {
    pub fn new(database: &crate::config::Database) -> Self {
        Self {
            max_connections: database.max_connections,
            connect_timeout: database.connect_timeout,
            statement_timeout: database.statement_timeout,
            read_only: database.read_only,
        }
    }
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 8,
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(30),
            read_only: false,
        }
    }
}

/// What an ingest batch does to the database, decided before any write so
/// that every backend applies the same upsert rules.
pub struct IngestPlan {
    pub inserts: Vec<NoteInput>,
    /// Existing notes (by id) whose content changes.
    pub updates: Vec<(Uuid, NoteInput)>,
    pub unchanged: u64,
}

/// Refuses a change to a note at [`MAX_NOTE_VERSION`] before any backend
/// writes `version + 1`: a clear conflict instead of an integer overflow.
pub fn check_changeable(id: Uuid, version: i64) -> Result<(), StoreError> {
    if version >= MAX_NOTE_VERSION {
        return Err(StoreError::Conflict(format!(
            "note {id} is at version {version}, the highest a note can reach; \
             it cannot change any more (create a new note with its content)"
        )));
    }
    Ok(())
}

/// A stored note an ingest names by its external id.
pub struct Existing {
    pub note: Note,
    /// In the trash: an upsert brings it back (and updates it), so it is
    /// written even when its content does not change.
    pub trashed: bool,
}

impl IngestPlan {
    /// `existing` holds the stored notes whose external ids the batch names.
    /// A batch that would change a note at the highest version is refused.
    pub fn new(
        notes: Vec<NoteInput>,
        existing: &HashMap<String, Existing>,
    ) -> Result<Self, StoreError> {
        let mut plan = Self {
            inserts: Vec::new(),
            updates: Vec::new(),
            unchanged: 0,
        };
        for note in notes {
            match note.external_id.as_ref().and_then(|ext| existing.get(ext)) {
                Some(Existing {
                    note: current,
                    trashed: false,
                }) if note.same_content(current) => plan.unchanged += 1,
                Some(Existing { note: current, .. }) => {
                    check_changeable(current.id, current.version)?;
                    plan.updates.push((current.id, note));
                }
                None => plan.inserts.push(note),
            }
        }
        Ok(plan)
    }

    pub fn counts(&self) -> IngestCounts {
        IngestCounts {
            created: self.inserts.len() as u64,
            updated: self.updates.len() as u64,
            unchanged: self.unchanged,
        }
    }
}

/// External ids a batch names, for the look-up that feeds [`IngestPlan::new`].
pub fn external_ids(notes: &[NoteInput]) -> Vec<String> {
    notes.iter().filter_map(|n| n.external_id.clone()).collect()
}

impl<T> Page<T> {
    /// `rows` were fetched with `limit + 1` to learn whether a next page exists.
    pub fn from_rows(mut rows: Vec<(i64, T)>, limit: usize) -> Self {
        let next = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|(seq, _)| *seq)
        } else {
            None
        };
        let (positions, items) = rows.into_iter().unzip();
        Page {
            items,
            next,
            positions,
        }
    }
}

/// Notes one listing query fetches at a time (see [`list_notes_within`]).
const LIST_CHUNK: u32 = 20;

/// A page of at most `q.limit` notes that stops early, with a cursor, once
/// their text passes `max_bytes`: a hundred 1 MiB notes would otherwise be
/// one 100 MiB response held in memory. Fetched in chunks, so at most one
/// chunk is held beyond what the page returns.
pub async fn list_notes_within(
    store: &dyn Store,
    q: &ListQuery,
    max_bytes: usize,
) -> Result<Page, StoreError> {
    let mut out = Page {
        items: Vec::new(),
        next: None,
        positions: Vec::new(),
    };
    let mut bytes = 0;
    let mut after = q.after;
    loop {
        let want = (q.limit - out.items.len() as u32).min(LIST_CHUNK);
        let chunk = store
            .list_notes(&ListQuery {
                tag: q.tag.clone(),
                limit: want,
                after,
            })
            .await?;
        let more = chunk.next.is_some();
        let count = chunk.items.len();
        for (i, (note, position)) in chunk.items.into_iter().zip(chunk.positions).enumerate() {
            bytes += note.body.len() + note.title.len();
            out.items.push(note);
            out.positions.push(position);
            if bytes >= max_bytes && (more || i + 1 < count) {
                out.next = Some(position);
                return Ok(out);
            }
        }
        match chunk.next {
            Some(next) if out.items.len() < q.limit as usize => after = Some(next),
            next => {
                out.next = next;
                return Ok(out);
            }
        }
    }
}

/// Sends a record to an export's consumer; a consumer that hung up (its
/// write failed) ends the export.
pub async fn send(out: &mpsc::Sender<Record>, record: Record) -> Result<(), StoreError> {
    out.send(record)
        .await
        .map_err(|_| StoreError::Internal("the export's writer stopped".into()))
}

/// Rows per multi-row statement and per look-up: large enough to amortize
/// statement overhead, far below every backend's bound-parameter limit.
pub const BATCH_ROWS: usize = 500;

/// Merges pages read from several sources (each in feed order, each cut
/// at `limit`) into one that is complete up to the returned `through`: a
/// full source is complete only to its last change.
pub fn merge_pages<T>(
    sources: Vec<Vec<(i64, T)>>,
    through: i64,
    limit: usize,
) -> (Vec<(i64, T)>, i64) {
    let mut through = through;
    for list in &sources {
        if list.len() >= limit
            && let Some((last, _)) = list.last()
        {
            through = through.min(*last);
        }
    }
    let mut merged: Vec<(i64, T)> = sources
        .into_iter()
        .flatten()
        .filter(|(seq, _)| *seq <= through)
        .collect();
    merged.sort_by_key(|(seq, _)| *seq);
    (merged, through)
}

/// Generation names are random: a new database, or a reindex, never
/// reuses one an index was built for.
pub fn new_generation() -> String {
    Uuid::new_v4().simple().to_string()
}

/// An epoch of the feed's numbers (see [`ChangesPage::epoch`]): short, as
/// every cursor carries it, and random, so two databases never share one.
pub fn new_epoch() -> String {
    Uuid::new_v4().simple().to_string()[..16].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(seq: i64) -> (i64, Change) {
        let doc = IndexDoc {
            id: Uuid::nil(),
            title: String::new(),
            body: String::new(),
            tags: Vec::new(),
            extra: String::new(),
            created_at: DateTime::UNIX_EPOCH,
            updated_at: DateTime::UNIX_EPOCH,
            attachments: 0,
        };
        (seq, Change::Upsert(doc))
    }

    fn del(seq: i64) -> (i64, Change) {
        (seq, Change::Delete(Uuid::nil()))
    }

    fn merge_changes(
        upserts: Vec<(i64, Change)>,
        deletes: Vec<(i64, Change)>,
        through: i64,
        limit: usize,
    ) -> ChangePage {
        let (changes, through) = merge_pages(vec![upserts, deletes], through, limit);
        ChangePage { changes, through }
    }

    fn seqs(page: &ChangePage) -> Vec<i64> {
        page.changes.iter().map(|(s, _)| *s).collect()
    }

    #[test]
    fn pages_that_are_not_full_are_complete_to_the_head() {
        let page = merge_changes(vec![up(2), up(5)], vec![del(3)], 9, 10);
        assert_eq!(seqs(&page), [2, 3, 5]);
        assert_eq!(page.through, 9);
    }

    #[test]
    fn a_full_page_is_complete_only_to_its_last_change() {
        // Upserts stop at 4 (full); the deletion at 6 lies past what is
        // known to be complete and waits for the next page.
        let page = merge_changes(vec![up(1), up(4)], vec![del(2), del(6)], 9, 2);
        assert_eq!(seqs(&page), [1, 2, 4]);
        assert_eq!(page.through, 4);
        let page = merge_changes(vec![up(7)], vec![del(2), del(3)], 9, 2);
        assert_eq!(seqs(&page), [2, 3]);
        assert_eq!(page.through, 3);
    }
}
