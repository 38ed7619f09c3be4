//! The store, written once for both SQL backends. [`SqlStore`] implements
//! [`Store`] over any [`Backend`]; the statements are portable SQL with
//! numbered placeholders (`$1`), which [`Dialect::sql`] turns into SQLite's
//! `?1`, and the rows are `rows`' types, which read either backend's column
//! types. Each backend (`sqlite.rs`, `postgres.rs`) keeps only what truly
//! differs: how it connects and migrates, how a write is numbered in the
//! change feed and locked (single statements on PostgreSQL, one writer on
//! SQLite), the bulk upsert of an ingest, tag filters and list parameters,
//! and PostgreSQL's `LISTEN`.

use std::{
    borrow::Cow,
    collections::{HashMap, HashSet},
    sync::Arc,
};

use async_trait::async_trait;
use futures::TryStreamExt;
use sqlx::{
    AssertSqlSafe, Database, Executor, IntoArguments, Pool, Transaction, query::Query, types::Json,
};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::{
    Attachments, BATCH_ROWS, Backup, ChangePage, Existing, FeedHead, FeedReader, ImportedNote,
    Keys, ListQuery, Maintenance, NewKey, Notes, Page, Record, Revisions, StoreError, Trash,
    Upserted, merge_pages, new_epoch, new_generation,
    rows::{
        ATTACHMENT_COLUMNS, AttachmentRow, Bind, ExistingRow, ExportAttachmentRow, ExportKeyRow,
        FeedRow, Id, KEY_COLUMNS, KeyRow, NOTE_COLUMNS, NoteRow, REVISION_COLUMNS, RevisionRow,
        RevisionSummaryRow, Rows, TRASHED_COLUMNS, Time, TrashedRow, WEBHOOK_COLUMNS, WebhookRow,
    },
    send, versions,
};
use crate::domain::{
    attachment::{Attachment, StoredAttachment},
    change::ChangeKind,
    ingest::IngestCounts,
    keys::{ApiKey, Scope},
    note::{Note, NoteInput, TrashedNote},
    revision::{Revision, RevisionSummary},
    timestamp,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// `sql`, written with `$n` placeholders, as this dialect numbers them.
    pub fn sql(self, sql: &str) -> AssertSqlSafe<Cow<'_, str>> {
        AssertSqlSafe(match self {
            Self::Postgres => Cow::Borrowed(sql),
            Self::Sqlite => Cow::Owned(sql.replace('$', "?")),
        })
    }

    pub(crate) fn placeholder(self, n: usize) -> String {
        match self {
            Self::Postgres => format!("${n}"),
            Self::Sqlite => format!("?{n}"),
        }
    }
}

/// A store on one SQL database. On SQLite the writer is a pool of one
/// connection and readers never wait for it; on PostgreSQL both are the
/// same pool.
pub struct SqlStore<DB: Database> {
    pub(crate) writer: Pool<DB>,
    pub(crate) reader: Pool<DB>,
}

/// What one SQL backend does its own way. Implemented by sqlx's `Sqlite` and
/// `Postgres`; everything else is [`SqlStore`]'s, written once.
#[async_trait]
pub trait Backend:
    Database<Arguments: IntoArguments<Self>> + sqlx::database::HasStatementCache
{
    /// `sqlite` or `postgres`: for logs and `/readyz`.
    const BACKEND: &'static str;
    const DIALECT: Dialect;
    /// Inserts an attachment's row (binds: id, filename, content_type, size,
    /// sha256, storage_key, created_at, search_text, note id) only if its
    /// note exists, so a missing note inserts nothing.
    const INSERT_ATTACHMENT: &'static str;
    /// A note `n` as the search index takes it: [`FeedRow`]'s columns after
    /// `change_seq`, with its attachments' text and count.
    const FEED_DOC: &'static str;
    /// `column IN` the list bound at `$1` (see [`Self::id_list`]).
    const IN_LIST: &'static str;
    /// The locking clause of a read that decides a write (an ingest's
    /// look-up of the notes it may update).
    const LOCK_ROWS: &'static str;
    /// Whether sqlx's migrations table exists (read-only).
    const MIGRATIONS_EXIST: &'static str;

    /// Lists of ids and of strings as [`Self::IN_LIST`] takes them.
    type IdList: for<'q> sqlx::Encode<'q, Self> + sqlx::Type<Self> + Send + 'static;
    type TextList: for<'q> sqlx::Encode<'q, Self> + sqlx::Type<Self> + Send + 'static;
    fn id_list(ids: &[Uuid]) -> Self::IdList;
    fn text_list(values: &[&str]) -> Self::TextList;

    fn exec<'c>(c: &'c mut Self::Connection) -> impl Executor<'c, Database = Self>;
    fn bind<'q, T: Bind + 'q>(
        q: Query<'q, Self, Self::Arguments>,
        value: T,
    ) -> Query<'q, Self, Self::Arguments>;
    fn decode<T: Rows>(row: &Self::Row) -> Result<T, sqlx::Error>;
    fn affected(done: &Self::QueryResult) -> u64;
    fn map_err(err: sqlx::Error) -> StoreError;
    fn migrator() -> &'static sqlx::migrate::Migrator;

    /// A transaction that may write, locked as this backend needs.
    async fn begin_write(store: &SqlStore<Self>) -> Result<Transaction<'static, Self>, StoreError>;
    /// A read-only transaction that sees one snapshot throughout; with
    /// `unbounded`, exempt from the statement timeout (a whole export).
    async fn begin_snapshot(
        store: &SqlStore<Self>,
        unbounded: bool,
    ) -> Result<Transaction<'static, Self>, StoreError>;
    async fn migrate(store: &SqlStore<Self>) -> Result<(), StoreError>;
    async fn check_integrity(store: &SqlStore<Self>) -> Result<(), StoreError>;

    async fn create_note(store: &SqlStore<Self>, note: NoteInput) -> Result<Note, StoreError>;
    /// The update if the note is still at `expected_version`; `None` when
    /// it is not (or is gone), and nothing was written.
    async fn update_note(
        store: &SqlStore<Self>,
        id: Uuid,
        note: NoteInput,
        expected_version: i64,
    ) -> Result<Option<Note>, StoreError>;
    async fn list_notes(store: &SqlStore<Self>, q: &ListQuery) -> Result<Page, StoreError>;
    async fn ingest(
        store: &SqlStore<Self>,
        notes: Vec<NoteInput>,
    ) -> Result<IngestCounts, StoreError>;

    fn watch_feed(
        _store: &SqlStore<Self>,
        _changed: Arc<dyn Fn() + Send + Sync>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        None
    }
}

/// The part of a [`Backend`] that only forwards to sqlx's impls for its
/// database. Generic code cannot reach them (Rust does not carry bounds such
/// as `for<'c> &'c mut DB::Connection: Executor<'c>` from a trait to its
/// users), so each backend states them through this macro, with its
/// connection, arguments, row and result types, its error mapping and its
/// migrations.
macro_rules! forward_to_sqlx {
    ($conn:ty, $args:ty, $row:ty, $done:ty, $map_err:path, $migrator:path) => {
        fn exec<'c>(c: &'c mut $conn) -> impl sqlx::Executor<'c, Database = Self> {
            c
        }
        fn bind<'q, T: $crate::store::rows::Bind + 'q>(
            q: sqlx::query::Query<'q, Self, $args>,
            value: T,
        ) -> sqlx::query::Query<'q, Self, $args> {
            q.bind(value)
        }
        fn decode<T: $crate::store::rows::Rows>(row: &$row) -> Result<T, sqlx::Error> {
            <T as sqlx::FromRow<'_, $row>>::from_row(row)
        }
        fn affected(done: &$done) -> u64 {
            done.rows_affected()
        }
        fn map_err(err: sqlx::Error) -> $crate::store::StoreError {
            $map_err(err)
        }
        fn migrator() -> &'static sqlx::migrate::Migrator {
            &$migrator
        }
    };
}
pub(crate) use forward_to_sqlx;

/// The advisory lock PostgreSQL's ingests with external ids, and imports,
/// take in turn ("notes-api ingest" as an int8; nothing else in the
/// database uses one-key advisory locks).
pub(crate) const INGEST_LOCK: i64 = 0x6e6f_7465_735f_696e;

/// A statement of this module, numbered for `B`.
pub(crate) fn query<B: Backend>(sql: &str) -> Query<'static, B, B::Arguments> {
    sqlx::query(AssertSqlSafe(B::DIALECT.sql(sql).0.into_owned()))
}

/// A statement over the list bound at `$1` ([`Backend::IN_LIST`]), planned
/// for its list each time instead of cached. After five runs PostgreSQL
/// may keep a generic plan of a prepared statement, made without the
/// list; for `= ANY($1)` on a table that was small or never analyzed when
/// it was made, that plan is a sequential scan, and it is kept while the
/// table grows: ingest into a new database fell to a third of its speed
/// that way, every 500-id look-up reading the whole table.
pub(crate) fn list_query<B: Backend>(sql: &str) -> Query<'static, B, B::Arguments> {
    query::<B>(sql).persistent(false)
}

/// `.arg(v)`: binds through the backend, so shared code binds [`Id`] and
/// [`Time`] without naming the database.
pub(crate) trait Args: Sized {
    fn arg<T: Bind + 'static>(self, value: T) -> Self;
}

impl<B: Backend> Args for Query<'static, B, B::Arguments> {
    fn arg<T: Bind + 'static>(self, value: T) -> Self {
        B::bind(self, value)
    }
}

/// Every row of `q`, read as `T`.
pub(crate) async fn fetch_all<B: Backend, T: Rows>(
    c: &mut B::Connection,
    q: Query<'static, B, B::Arguments>,
) -> Result<Vec<T>, StoreError> {
    let rows = q.fetch_all(B::exec(c)).await.map_err(B::map_err)?;
    rows.iter()
        .map(|r| B::decode(r).map_err(B::map_err))
        .collect()
}

pub(crate) async fn fetch_optional<B: Backend, T: Rows>(
    c: &mut B::Connection,
    q: Query<'static, B, B::Arguments>,
) -> Result<Option<T>, StoreError> {
    let row = q.fetch_optional(B::exec(c)).await.map_err(B::map_err)?;
    row.map(|r| B::decode(&r).map_err(B::map_err)).transpose()
}

pub(crate) async fn fetch_one<B: Backend, T: Rows>(
    c: &mut B::Connection,
    q: Query<'static, B, B::Arguments>,
) -> Result<T, StoreError> {
    let row = q.fetch_one(B::exec(c)).await.map_err(B::map_err)?;
    B::decode(&row).map_err(B::map_err)
}

/// Runs `q`; how many rows it changed.
pub(crate) async fn execute<B: Backend>(
    c: &mut B::Connection,
    q: Query<'static, B, B::Arguments>,
) -> Result<u64, StoreError> {
    let done = q.execute(B::exec(c)).await.map_err(B::map_err)?;
    Ok(B::affected(&done))
}

impl<B: Backend> SqlStore<B> {
    /// The one number a `SELECT count(*) …` answers.
    pub(super) async fn count(&self, sql: &str) -> Result<u64, StoreError> {
        let (n,): (i64,) = fetch_one(&mut *self.read().await?, query::<B>(sql)).await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    pub(super) async fn read(&self) -> Result<sqlx::pool::PoolConnection<B>, StoreError> {
        self.reader.acquire().await.map_err(B::map_err)
    }

    pub(super) async fn write(&self) -> Result<sqlx::pool::PoolConnection<B>, StoreError> {
        self.writer.acquire().await.map_err(B::map_err)
    }
}

/// Takes `n` change numbers for the writing transaction; returns the first.
/// Writers that number changes commit one after the other (SQLite's one
/// writer; the feed row's lock, held to commit, on PostgreSQL), so a
/// reader that sees head H sees every change up to H.
pub(crate) async fn take_seqs<B: Backend>(
    c: &mut B::Connection,
    n: usize,
) -> Result<i64, StoreError> {
    let (last,): (i64,) = fetch_one(
        c,
        query::<B>("UPDATE search_feed SET head = head + $1 WHERE id = 1 RETURNING head")
            .arg(n as i64),
    )
    .await?;
    Ok(last - n as i64 + 1)
}

/// An attachment's text changed: the index re-reads its note, clients are
/// not told (the feed's readers never see this kind).
pub(crate) const ATTACHMENT_TEXT: &str = "attachment.text";

/// Records an event in the feed's log under a new change number. An
/// attachment's events also make every index re-read its note (whether a
/// note has attachments, and their text, are in its search document),
/// without giving the note itself a new number: to clients, it did not
/// change.
async fn log_event<B: Backend>(
    c: &mut B::Connection,
    kind: &str,
    note_id: Uuid,
    attachment_id: Option<Uuid>,
) -> Result<(), StoreError> {
    let seq = take_seqs::<B>(&mut *c, 1).await?;
    execute(c, feed_event::<B>(seq, kind, note_id, attachment_id)).await?;
    Ok(())
}

/// Event `kind` at change `seq` of the feed's log. A `note.deleted` also
/// tells every index that the note is gone.
fn feed_event<B: Backend>(
    seq: i64,
    kind: &str,
    note_id: Uuid,
    attachment_id: Option<Uuid>,
) -> Query<'static, B, B::Arguments> {
    query::<B>(
        "INSERT INTO feed_events (change_seq, kind, note_id, attachment_id, at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .arg(seq)
    .arg(kind.to_owned())
    .arg(Id(note_id))
    .arg(attachment_id.map(Id))
    .arg(Time(timestamp::now()))
}

const NOTE_DELETED: &str = "note.deleted";

fn insert_attachment<B: Backend>(
    a: &Attachment,
    storage_key: &str,
    search_text: &str,
) -> Query<'static, B, B::Arguments> {
    query::<B>(B::INSERT_ATTACHMENT)
        .arg(Id(a.id))
        .arg(a.filename.clone())
        .arg(a.content_type.clone())
        .arg(a.size as i64)
        .arg(a.sha256.clone())
        .arg(storage_key.to_owned())
        .arg(Time(a.created_at))
        .arg(search_text.to_owned())
        .arg(Id(a.note_id))
}

/// A revision as a backup holds it; inserts nothing when its note is not
/// there (the import then refuses the snapshot).
fn insert_revision<B: Backend>(note_id: Uuid, r: &Revision) -> Query<'static, B, B::Arguments> {
    query::<B>(
        "INSERT INTO note_revisions (note_id, version, title, body, tags, metadata, updated_at,
                                     changed_by)
         SELECT id, $2, $3, $4, $5, $6, $7, $8 FROM notes WHERE id = $1",
    )
    .arg(Id(note_id))
    .arg(r.version)
    .arg(r.title.clone())
    .arg(r.body.clone())
    .arg(Json(r.tags.clone()))
    .arg(Json(r.metadata.clone()))
    .arg(Time(r.updated_at))
    .arg(r.changed_by.clone())
}

fn insert_key<B: Backend>(key: &ApiKey, hash: &str) -> Query<'static, B, B::Arguments> {
    query::<B>(
        "INSERT INTO api_keys (id, name, scopes, prefix, key_hash, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .arg(Id(key.id))
    .arg(key.name.clone())
    .arg(Json(key.scopes.clone()))
    .arg(key.prefix.clone())
    .arg(hash.to_owned())
    .arg(Time(key.created_at))
}

/// A note as a backup holds it, written back as it was.
/// A webhook from a backup; its `from_seq` is set when the import ends.
fn insert_webhook<B: Backend>(
    w: &crate::domain::webhook::Webhook,
    sealed_secret: &str,
) -> sqlx::query::Query<'static, B, B::Arguments> {
    query::<B>(
        "INSERT INTO webhooks (id, url, events, description, secret, enabled, disabled_reason,
                               from_seq, failing_since, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $9, $10)",
    )
    .arg(Id(w.id))
    .arg(w.url.clone())
    .arg(Json(w.events.clone()))
    .arg(w.description.clone())
    .arg(sealed_secret.to_owned())
    .arg(w.enabled)
    .arg(w.disabled_reason.clone())
    .arg(w.failing_since.map(Time))
    .arg(Time(w.created_at))
    .arg(Time(w.updated_at))
}

fn insert_exported_note<B: Backend>(n: &Note) -> Query<'static, B, B::Arguments> {
    query::<B>(
        "INSERT INTO notes (id, title, body, tags, external_id, metadata, created_at,
                            updated_at, version)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .arg(Id(n.id))
    .arg(n.title.clone())
    .arg(n.body.clone())
    .arg(Json(n.tags.clone()))
    .arg(n.external_id.clone())
    .arg(Json(n.metadata.clone()))
    .arg(Time(n.created_at))
    .arg(Time(n.updated_at))
    .arg(n.version)
}

/// An attachment row whose note is not in the trash: a trashed note's
/// attachments are out of every read until it comes back.
const NOTE_NOT_TRASHED: &str = "NOT EXISTS (SELECT 1 FROM notes tn
    WHERE tn.id = attachments.note_id AND tn.deleted_at IS NOT NULL)";

/// The stored notes with these external ids (an ingest's upserts), trashed
/// ones included, read in position order and locked as the backend locks
/// rows for a write.
pub(crate) async fn notes_by_external_id<B: Backend>(
    c: &mut B::Connection,
    ids: &[String],
) -> Result<HashMap<String, Existing>, StoreError> {
    let sql = format!(
        "SELECT {NOTE_COLUMNS}, deleted_at IS NOT NULL AS trashed FROM notes
         WHERE external_id {} ORDER BY seq {}",
        B::IN_LIST,
        B::LOCK_ROWS
    );
    let mut existing = HashMap::new();
    for chunk in ids.chunks(BATCH_ROWS) {
        let chunk: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let rows: Vec<ExistingRow> =
            fetch_all(&mut *c, list_query::<B>(&sql).bind(B::text_list(&chunk))).await?;
        for row in rows {
            let note = row.note.into_note();
            if let Some(ext) = note.external_id.clone() {
                let trashed = row.trashed;
                existing.insert(ext, Existing { note, trashed });
            }
        }
    }
    Ok(existing)
}

/// The current version of a note an update did not change: why it did not.
async fn update_refused<B: Backend>(c: &mut B::Connection, id: Uuid) -> StoreError {
    let current: Result<Option<(i64,)>, _> = fetch_optional(
        c,
        query::<B>("SELECT version FROM notes WHERE id = $1 AND deleted_at IS NULL").arg(Id(id)),
    )
    .await;
    match current {
        Ok(Some((current,))) => StoreError::VersionMismatch { current },
        Ok(None) => StoreError::NotFound,
        Err(e) => e,
    }
}

/// What tells every index, and every client, that note `id` is gone
/// (deleted, or trashed): change `seq` of the feed.
fn tombstone<B: Backend>(seq: i64, id: Uuid) -> Query<'static, B, B::Arguments> {
    feed_event::<B>(seq, NOTE_DELETED, id, None)
}

async fn feed_head<B: Backend>(c: &mut B::Connection) -> Result<FeedHead, StoreError> {
    let (generation, seq, floor): (String, i64, i64) = fetch_one(
        c,
        query::<B>("SELECT generation, head, floor FROM search_feed WHERE id = 1"),
    )
    .await?;
    Ok(FeedHead {
        generation,
        seq,
        floor,
    })
}

fn parse_ids(ids: Vec<(Id,)>) -> HashSet<Uuid> {
    ids.into_iter().map(|(id,)| id.0).collect()
}

#[async_trait]
impl<B: Backend> Maintenance for SqlStore<B> {
    fn backend(&self) -> &'static str {
        B::BACKEND
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        B::migrate(self).await
    }

    async fn schema_versions(&self) -> Result<versions::SchemaVersions, StoreError> {
        let mut c = self.read().await?;
        let (exists,): (bool,) = fetch_one(&mut *c, query::<B>(B::MIGRATIONS_EXIST)).await?;
        let applied: Vec<(i64,)> = if exists {
            fetch_all(
                &mut *c,
                query::<B>("SELECT version FROM _sqlx_migrations WHERE success"),
            )
            .await?
        } else {
            Vec::new()
        };
        let applied: Vec<i64> = applied.into_iter().map(|(v,)| v).collect();
        Ok(versions::compare(B::migrator(), &applied))
    }

    async fn check_integrity(&self) -> Result<(), StoreError> {
        B::check_integrity(self).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        // Readers, not the writer: a long ingest must not make the pod unready.
        let mut c = self
            .reader
            .acquire()
            .await
            .map_err(|e| StoreError::Unavailable(e.into()))?;
        query::<B>("SELECT 1")
            .execute(B::exec(&mut *c))
            .await
            .map(|_| ())
            .map_err(|e| StoreError::Unavailable(e.into()))
    }

    async fn close(&self) {
        // Readers first: on SQLite the last connection to close checkpoints
        // the WAL into the database file, and only the writer can.
        self.reader.close().await;
        self.writer.close().await;
    }
    async fn renew_feed(&self) -> Result<FeedHead, StoreError> {
        let (generation, seq, floor): (String, i64, i64) = fetch_one(
            &mut *self.write().await?,
            query::<B>(
                "UPDATE search_feed SET generation = $1 WHERE id = 1
                 RETURNING generation, head, floor",
            )
            .arg(new_generation()),
        )
        .await?;
        Ok(FeedHead {
            generation,
            seq,
            floor,
        })
    }
}

#[async_trait]
impl<B: Backend> Notes for SqlStore<B> {
    async fn create_note(&self, note: NoteInput) -> Result<Note, StoreError> {
        B::create_note(self, note).await
    }

    async fn get_note(&self, id: Uuid) -> Result<Option<Note>, StoreError> {
        let row: Option<NoteRow> = fetch_optional(
            &mut *self.read().await?,
            query::<B>(&format!(
                "SELECT {NOTE_COLUMNS} FROM notes WHERE id = $1 AND deleted_at IS NULL"
            ))
            .arg(Id(id)),
        )
        .await?;
        Ok(row.map(NoteRow::into_note))
    }

    async fn list_notes(&self, q: &ListQuery) -> Result<Page, StoreError> {
        B::list_notes(self, q).await
    }

    async fn update_note(
        &self,
        id: Uuid,
        note: NoteInput,
        expected_version: i64,
    ) -> Result<Note, StoreError> {
        super::check_changeable(id, expected_version)?;
        match B::update_note(self, id, note, expected_version).await? {
            Some(note) => Ok(note),
            None => Err(update_refused::<B>(&mut *self.read().await?, id).await),
        }
    }

    async fn delete_note(&self, id: Uuid) -> Result<Option<Vec<String>>, StoreError> {
        let mut tx = B::begin_write(self).await?;
        let keys: Vec<(String,)> = fetch_all(
            &mut *tx,
            query::<B>("SELECT storage_key FROM attachments WHERE note_id = $1").arg(Id(id)),
        )
        .await?;
        let deleted = execute(
            &mut *tx,
            query::<B>("DELETE FROM notes WHERE id = $1").arg(Id(id)),
        )
        .await?;
        if deleted == 0 {
            return Ok(None);
        }
        let seq = take_seqs::<B>(&mut *tx, 1).await?;
        execute(&mut *tx, tombstone::<B>(seq, id)).await?;
        tx.commit().await.map_err(B::map_err)?;
        Ok(Some(keys.into_iter().map(|(k,)| k).collect()))
    }

    async fn ingest(&self, notes: Vec<NoteInput>) -> Result<IngestCounts, StoreError> {
        B::ingest(self, notes).await
    }

    async fn import_note(
        &self,
        imported: ImportedNote,
        dry_run: bool,
    ) -> Result<(Note, Upserted), StoreError> {
        let ImportedNote {
            id,
            input,
            created_at,
            updated_at,
        } = imported;
        let now = timestamp::now();
        let mut tx = B::begin_write(self).await?;
        // Imports and ingests naming the same ids take turns on
        // PostgreSQL, as ingests do among themselves: a concurrent one
        // then finds the note this one made instead of inserting it twice
        // (a unique violation). SQLite's one writer already serializes.
        if B::DIALECT == Dialect::Postgres {
            execute(
                &mut *tx,
                query::<B>("SELECT pg_advisory_xact_lock($1)").arg(INGEST_LOCK),
            )
            .await?;
        }
        let by_id = match id {
            Some(id) => {
                let row: Option<ExistingRow> = fetch_optional(
                    &mut *tx,
                    query::<B>(&format!(
                        "SELECT {NOTE_COLUMNS}, deleted_at IS NOT NULL AS trashed FROM notes
                         WHERE id = $1 {}",
                        B::LOCK_ROWS
                    ))
                    .arg(Id(id)),
                )
                .await?;
                row.map(|r| Existing {
                    trashed: r.trashed,
                    note: r.note.into_note(),
                })
            }
            None => None,
        };
        let existing = match (by_id, &input.external_id) {
            (Some(e), _) => Some(e),
            (None, Some(ext)) => notes_by_external_id::<B>(&mut tx, std::slice::from_ref(ext))
                .await?
                .remove(ext),
            (None, None) => None,
        };
        let (target, outcome) = match existing {
            Some(Existing {
                note,
                trashed: false,
            }) if input.same_content(&note) => return Ok((note, Upserted::Unchanged)),
            Some(Existing { note, .. }) => {
                super::check_changeable(note.id, note.version)?;
                let seq = take_seqs::<B>(&mut *tx, 1).await?;
                execute(
                    &mut *tx,
                    query::<B>(
                        "UPDATE notes SET title = $1, body = $2, tags = $3, metadata = $4,
                                external_id = $9, updated_at = $5, version = version + 1,
                                change_seq = $6, changed_by = $8,
                                restored_seq = CASE WHEN deleted_at IS NULL THEN restored_seq ELSE $6 END,
                                restored_at = CASE WHEN deleted_at IS NULL THEN restored_at ELSE $5 END,
                                deleted_at = NULL, deleted_by = NULL
                         WHERE id = $7",
                    )
                    .arg(input.title.clone())
                    .arg(input.body.clone())
                    .arg(Json(input.tags.clone()))
                    .arg(Json(input.metadata.clone()))
                    .arg(Time(now))
                    .arg(seq)
                    .arg(Id(note.id))
                    .arg(input.changed_by.clone())
                    .arg(input.external_id.clone()),
                )
                .await?;
                (note.id, Upserted::Updated)
            }
            None => {
                let id = id.unwrap_or_else(Uuid::now_v7);
                let created = created_at.unwrap_or(now);
                let updated = updated_at.unwrap_or(created).max(created);
                let seq = take_seqs::<B>(&mut *tx, 1).await?;
                execute(
                    &mut *tx,
                    query::<B>(
                        "INSERT INTO notes (id, title, body, tags, external_id, metadata, changed_by,
                                            created_at, updated_at, change_seq, created_seq)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
                    )
                    .arg(Id(id))
                    .arg(input.title.clone())
                    .arg(input.body.clone())
                    .arg(Json(input.tags.clone()))
                    .arg(input.external_id.clone())
                    .arg(Json(input.metadata.clone()))
                    .arg(input.changed_by.clone())
                    .arg(Time(created))
                    .arg(Time(updated))
                    .arg(seq),
                )
                .await?;
                (id, Upserted::Created)
            }
        };
        let row: NoteRow = fetch_one(
            &mut *tx,
            query::<B>(&format!("SELECT {NOTE_COLUMNS} FROM notes WHERE id = $1")).arg(Id(target)),
        )
        .await?;
        if dry_run {
            tx.rollback().await.map_err(B::map_err)?;
        } else {
            tx.commit().await.map_err(B::map_err)?;
        }
        Ok((row.into_note(), outcome))
    }
}

#[async_trait]
impl<B: Backend> Attachments for SqlStore<B> {
    async fn create_attachment(&self, stored: StoredAttachment) -> Result<(), StoreError> {
        let a = &stored.attachment;
        let mut tx = B::begin_write(self).await?;
        let inserted = execute(
            &mut *tx,
            insert_attachment::<B>(a, &stored.storage_key, &stored.search_text),
        )
        .await?;
        if inserted == 0 {
            return Err(StoreError::NotFound);
        }
        let kind = ChangeKind::AttachmentCreated.as_str();
        log_event::<B>(&mut *tx, kind, a.note_id, Some(a.id)).await?;
        tx.commit().await.map_err(B::map_err)
    }

    async fn list_attachments(
        &self,
        note_id: Uuid,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<Attachment>, StoreError> {
        let rows: Vec<AttachmentRow> = fetch_all(
            &mut *self.read().await?,
            query::<B>(&format!(
                "SELECT {ATTACHMENT_COLUMNS} FROM attachments
                 WHERE note_id = $1 AND ($2 IS NULL OR id > $2) AND {NOTE_NOT_TRASHED}
                 ORDER BY id LIMIT $3"
            ))
            .arg(Id(note_id))
            .arg(after.map(Id))
            .arg(i64::from(limit)),
        )
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| r.into_stored().attachment)
            .collect())
    }

    async fn get_attachment(&self, id: Uuid) -> Result<Option<StoredAttachment>, StoreError> {
        let row: Option<AttachmentRow> = fetch_optional(
            &mut *self.read().await?,
            query::<B>(&format!(
                "SELECT {ATTACHMENT_COLUMNS} FROM attachments WHERE id = $1 AND {NOTE_NOT_TRASHED}"
            ))
            .arg(Id(id)),
        )
        .await?;
        Ok(row.map(AttachmentRow::into_stored))
    }

    async fn delete_attachment(&self, id: Uuid) -> Result<Option<String>, StoreError> {
        let mut tx = B::begin_write(self).await?;
        let deleted: Option<(String, Id)> = fetch_optional(
            &mut *tx,
            query::<B>(&format!(
                "DELETE FROM attachments WHERE id = $1 AND {NOTE_NOT_TRASHED}
                 RETURNING storage_key, note_id"
            ))
            .arg(Id(id)),
        )
        .await?;
        let Some((key, note_id)) = deleted else {
            return Ok(None);
        };
        let kind = ChangeKind::AttachmentDeleted.as_str();
        log_event::<B>(&mut *tx, kind, note_id.0, Some(id)).await?;
        tx.commit().await.map_err(B::map_err)?;
        Ok(Some(key))
    }

    async fn set_attachment_text(&self, id: Uuid, text: &str) -> Result<bool, StoreError> {
        let mut tx = B::begin_write(self).await?;
        let changed: Option<(Id,)> = fetch_optional(
            &mut *tx,
            query::<B>("UPDATE attachments SET search_text = $1 WHERE id = $2 RETURNING note_id")
                .arg(text.to_owned())
                .arg(Id(id)),
        )
        .await?;
        let Some((note_id,)) = changed else {
            return Ok(false);
        };
        log_event::<B>(&mut *tx, ATTACHMENT_TEXT, note_id.0, Some(id)).await?;
        tx.commit().await.map_err(B::map_err)?;
        Ok(true)
    }

    async fn attachments_present(&self, ids: &[Uuid]) -> Result<HashSet<Uuid>, StoreError> {
        let list = B::id_list(ids);
        let rows: Vec<(Id,)> = fetch_all(
            &mut *self.read().await?,
            list_query::<B>(&format!(
                "SELECT id FROM attachments WHERE id {}",
                B::IN_LIST
            ))
            .bind(list),
        )
        .await?;
        Ok(parse_ids(rows))
    }

    async fn attachments_without_text(
        &self,
        content_types: &[&str],
    ) -> Result<Vec<Uuid>, StoreError> {
        let list = B::text_list(content_types);
        let rows: Vec<(Id,)> = fetch_all(
            &mut *self.read().await?,
            list_query::<B>(&format!(
                "SELECT id FROM attachments WHERE search_text = '' AND size > 0
                   AND content_type {}",
                B::IN_LIST
            ))
            .bind(list),
        )
        .await?;
        Ok(rows.into_iter().map(|(id,)| id.0).collect())
    }
}

#[async_trait]
impl<B: Backend> FeedReader for SqlStore<B> {
    async fn feed_head(&self) -> Result<FeedHead, StoreError> {
        feed_head::<B>(&mut *self.read().await?).await
    }

    async fn feed_changes(
        &self,
        after: i64,
        upto: Option<i64>,
        limit: u32,
        deletes: bool,
    ) -> Result<ChangePage, StoreError> {
        // One snapshot: the head and both halves of the page are read from
        // it, and every change up to that head is visible in it (numbers
        // commit in order), so the page is complete up to the head. A note
        // changed again since an earlier head was read shows up under its
        // new number.
        let mut tx = B::begin_snapshot(self, false).await?;
        let head = feed_head::<B>(&mut *tx).await?.seq;
        let through = head.min(upto.unwrap_or(i64::MAX));
        let page = |sql: String| {
            query::<B>(&sql)
                .arg(after)
                .arg(through)
                .arg(i64::from(limit))
        };
        let rows: Vec<FeedRow> = fetch_all(
            &mut *tx,
            page(format!(
                "SELECT n.change_seq, {} FROM notes n
                 WHERE n.change_seq > $1 AND n.change_seq <= $2 AND n.deleted_at IS NULL
                 ORDER BY n.change_seq LIMIT $3",
                B::FEED_DOC
            )),
        )
        .await?;
        let mut sources = vec![rows.into_iter().map(FeedRow::into_change).collect()];
        if deletes {
            let rows: Vec<(i64, Id)> = fetch_all(
                &mut *tx,
                page(format!(
                    "SELECT change_seq, note_id FROM feed_events
                     WHERE change_seq > $1 AND change_seq <= $2 AND kind = '{NOTE_DELETED}'
                     ORDER BY change_seq LIMIT $3"
                )),
            )
            .await?;
            sources.push(
                rows.into_iter()
                    .map(|(seq, id)| (seq, super::Change::Delete(id.0)))
                    .collect(),
            );
            // A note whose attachments changed is read again as it is now,
            // at the event's number (a note gone since has its deletion
            // later in the feed).
            let rows: Vec<FeedRow> = fetch_all(
                &mut *tx,
                page(format!(
                    "SELECT e.change_seq, {} FROM feed_events e JOIN notes n ON n.id = e.note_id
                     WHERE e.change_seq > $1 AND e.change_seq <= $2 AND e.kind <> '{NOTE_DELETED}'
                       AND n.deleted_at IS NULL
                     ORDER BY e.change_seq LIMIT $3",
                    B::FEED_DOC
                )),
            )
            .await?;
            sources.push(rows.into_iter().map(FeedRow::into_change).collect());
        }
        tx.commit().await.map_err(B::map_err)?;
        let (changes, through) = merge_pages(sources, through, limit as usize);
        Ok(ChangePage { changes, through })
    }

    fn watch_feed(
        &self,
        changed: Arc<dyn Fn() + Send + Sync>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        B::watch_feed(self, changed)
    }
    async fn count_notes(&self) -> Result<u64, StoreError> {
        self.count("SELECT count(*) FROM notes WHERE deleted_at IS NULL")
            .await
    }
}

/// An export's tag condition on `notes`, the tag bound as text at `$n`:
/// SQLite looks it up in `note_tags` (kept by a trigger), PostgreSQL on
/// the tags' GIN index.
fn export_tag_filter<B: Backend>(tag: Option<&str>, n: u8) -> String {
    match (tag, B::DIALECT) {
        (None, _) => String::new(),
        (Some(_), Dialect::Sqlite) => format!(
            "AND EXISTS (SELECT 1 FROM note_tags t WHERE t.note_seq = notes.seq AND t.tag = ${n})"
        ),
        (Some(_), Dialect::Postgres) => format!("AND tags @> jsonb_build_array(${n}::text)"),
    }
}

#[async_trait]
impl<B: Backend> Backup for SqlStore<B> {
    async fn export(&self, out: mpsc::Sender<Record>) -> Result<(), StoreError> {
        let mut tx = B::begin_snapshot(self, true).await?;
        let keys: Vec<ExportKeyRow> = fetch_all(
            &mut *tx,
            query::<B>(&format!(
                "SELECT {KEY_COLUMNS}, key_hash FROM api_keys ORDER BY id"
            )),
        )
        .await?;
        for k in keys {
            let record = Record::Key {
                key: k.row.into_key(),
                hash: k.key_hash,
            };
            send(&out, record).await?;
        }
        // Notes and attachments are streamed: a backup of any size is read
        // a row at a time.
        let notes = query::<B>(&format!("SELECT {NOTE_COLUMNS} FROM notes ORDER BY seq"));
        let mut notes = notes.fetch(B::exec(&mut *tx));
        while let Some(row) = notes.try_next().await.map_err(B::map_err)? {
            let row: NoteRow = B::decode(&row).map_err(B::map_err)?;
            send(&out, Record::Note(row.into_note())).await?;
        }
        drop(notes);
        let trashed = query::<B>(
            "SELECT id, deleted_at, deleted_by FROM notes WHERE deleted_at IS NOT NULL ORDER BY seq",
        );
        let mut trashed = trashed.fetch(B::exec(&mut *tx));
        while let Some(row) = trashed.try_next().await.map_err(B::map_err)? {
            let (id, at, by): (Id, Time, Option<String>) = B::decode(&row).map_err(B::map_err)?;
            let record = Record::Trashed {
                note_id: id.0,
                deleted_at: at.0,
                deleted_by: by,
            };
            send(&out, record).await?;
        }
        drop(trashed);
        let revisions = query::<B>(&format!(
            "SELECT note_id, {REVISION_COLUMNS} FROM note_revisions ORDER BY note_id, version"
        ));
        let mut revisions = revisions.fetch(B::exec(&mut *tx));
        while let Some(row) = revisions.try_next().await.map_err(B::map_err)? {
            let (note_id,): (Id,) = B::decode(&row).map_err(B::map_err)?;
            let revision: RevisionRow = B::decode(&row).map_err(B::map_err)?;
            let record = Record::Revision {
                note_id: note_id.0,
                revision: revision.into(),
            };
            send(&out, record).await?;
        }
        drop(revisions);
        let attachments = query::<B>(&format!(
            "SELECT {ATTACHMENT_COLUMNS}, search_text FROM attachments ORDER BY id"
        ));
        let mut attachments = attachments.fetch(B::exec(&mut *tx));
        while let Some(row) = attachments.try_next().await.map_err(B::map_err)? {
            let r: ExportAttachmentRow = B::decode(&row).map_err(B::map_err)?;
            let stored = r.row.into_stored();
            let record = Record::Attachment {
                attachment: stored.attachment,
                storage_key: stored.storage_key,
                search_text: r.search_text,
            };
            send(&out, record).await?;
        }
        drop(attachments);
        let hooks: Vec<WebhookRow> = fetch_all(
            &mut *tx,
            query::<B>(&format!(
                "SELECT {WEBHOOK_COLUMNS} FROM webhooks ORDER BY created_at, id"
            )),
        )
        .await?;
        for hook in hooks.into_iter().map(WebhookRow::into_stored) {
            let record = Record::Webhook {
                webhook: hook.webhook,
                sealed_secret: hook.secret,
            };
            send(&out, record).await?;
        }
        tx.commit().await.map_err(B::map_err)
    }

    async fn import(
        &self,
        mut records: mpsc::Receiver<Result<Record, StoreError>>,
    ) -> Result<u64, StoreError> {
        let mut tx = B::begin_write(self).await?;
        let mut n = 0;
        while let Some(record) = records.recv().await {
            let record = record?;
            n += 1;
            let q = match &record {
                Record::Key { key, hash } => insert_key::<B>(key, hash),
                Record::Note(note) => insert_exported_note::<B>(note),
                Record::Revision { note_id, revision } => insert_revision::<B>(*note_id, revision),
                Record::Trashed {
                    note_id,
                    deleted_at,
                    deleted_by,
                } => query::<B>(
                    "UPDATE notes SET deleted_at = $1, deleted_by = $2
                     WHERE id = $3 AND deleted_at IS NULL",
                )
                .arg(Time(*deleted_at))
                .arg(deleted_by.clone())
                .arg(Id(*note_id)),
                Record::Attachment {
                    attachment,
                    storage_key,
                    search_text,
                } => insert_attachment::<B>(attachment, storage_key, search_text),
                Record::Webhook {
                    webhook,
                    sealed_secret,
                } => insert_webhook::<B>(webhook, sealed_secret),
            };
            // An attachment whose note is not in the batch inserts nothing.
            if execute(&mut *tx, q).await? != 1 {
                return Err(StoreError::Internal(
                    "a record names a note that is not in the export".into(),
                ));
            }
        }
        // The store was empty: every note is new to the feed, and a new
        // generation makes every index rebuild from what was restored.
        let head = take_seqs::<B>(&mut *tx, 0).await? - 1;
        execute(
            &mut *tx,
            query::<B>("UPDATE notes SET change_seq = $1 + seq, created_seq = $1 + seq").arg(head),
        )
        .await?;
        execute(
            &mut *tx,
            query::<B>(
                "UPDATE search_feed SET generation = $1, epoch = $2, floor = 0,
                        head = head + coalesce((SELECT max(seq) FROM notes), 0) WHERE id = 1",
            )
            .arg(new_generation())
            .arg(new_epoch()),
        )
        .await?;
        // Restored webhooks hear of what happens from now on, not of every
        // restored note (the dispatcher starts over at the new epoch's head),
        // and their failures before the backup are not held against them.
        execute(
            &mut *tx,
            query::<B>(
                "UPDATE webhooks SET from_seq = (SELECT head FROM search_feed WHERE id = 1),
                        failing_since = NULL",
            ),
        )
        .await?;
        tx.commit().await.map_err(B::map_err)?;
        Ok(n)
    }

    async fn is_empty(&self) -> Result<bool, StoreError> {
        let (any,): (bool,) = fetch_one(
            &mut *self.read().await?,
            query::<B>(
                "SELECT EXISTS (SELECT 1 FROM notes) OR EXISTS (SELECT 1 FROM attachments)
                        OR EXISTS (SELECT 1 FROM api_keys)",
            ),
        )
        .await?;
        Ok(!any)
    }

    // An export (issue #26) reads in short pieces, so one that streams to
    // a slow client for an hour holds no transaction (no WAL kept from its
    // checkpoint, no snapshot holding back vacuum): a note written
    // meanwhile is in it or not, one deleted meanwhile is left out.
    async fn export_keys(
        &self,
        tag: Option<&str>,
        after: Option<super::ExportKey>,
        limit: u32,
    ) -> Result<Vec<super::ExportKey>, StoreError> {
        let sql = format!(
            "SELECT created_at, id FROM notes
             WHERE deleted_at IS NULL {}
               AND ($1 IS NULL OR created_at > $1 OR (created_at = $1 AND id > $2))
             ORDER BY created_at, id LIMIT $3",
            export_tag_filter::<B>(tag, 4)
        );
        let mut q = query::<B>(&sql)
            .arg(after.map(|k| Time(k.created_at)))
            .arg(Id(after.map_or(Uuid::nil(), |k| k.id)))
            .arg(i64::from(limit));
        if let Some(tag) = tag {
            q = q.arg(tag.to_owned());
        }
        let rows: Vec<(Time, Id)> = fetch_all(&mut *self.read().await?, q).await?;
        Ok(rows
            .into_iter()
            .map(|(t, id)| super::ExportKey {
                created_at: t.0,
                id: id.0,
            })
            .collect())
    }

    async fn export_count(&self, tag: Option<&str>) -> Result<u64, StoreError> {
        let sql = format!(
            "SELECT count(*) FROM notes WHERE deleted_at IS NULL {}",
            export_tag_filter::<B>(tag, 1)
        );
        let mut q = query::<B>(&sql);
        if let Some(tag) = tag {
            q = q.arg(tag.to_owned());
        }
        let (n,): (i64,) = fetch_one(&mut *self.read().await?, q).await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn export_notes(
        &self,
        ids: &[Uuid],
    ) -> Result<Vec<(Note, Vec<StoredAttachment>)>, StoreError> {
        let mut c = self.read().await?;
        let rows: Vec<NoteRow> = fetch_all(
            &mut *c,
            list_query::<B>(&format!(
                "SELECT {NOTE_COLUMNS} FROM notes WHERE id {} AND deleted_at IS NULL",
                B::IN_LIST
            ))
            .bind(B::id_list(ids)),
        )
        .await?;
        // Through each backend's index of attachments by note: SQLite's is
        // on `note_seq`, PostgreSQL's on `note_id`.
        let by_note = match B::DIALECT {
            Dialect::Sqlite => format!(
                "note_seq IN (SELECT seq FROM notes WHERE id {})",
                B::IN_LIST
            ),
            Dialect::Postgres => format!("note_id {}", B::IN_LIST),
        };
        let attachments: Vec<AttachmentRow> = fetch_all(
            &mut *c,
            list_query::<B>(&format!(
                "SELECT {ATTACHMENT_COLUMNS} FROM attachments WHERE {by_note} ORDER BY id"
            ))
            .bind(B::id_list(ids)),
        )
        .await?;
        let mut notes: Vec<(Note, Vec<StoredAttachment>)> = rows
            .into_iter()
            .map(|r| (r.into_note(), Vec::new()))
            .collect();
        for a in attachments {
            let a = a.into_stored();
            if let Some((_, list)) = notes.iter_mut().find(|(n, _)| n.id == a.attachment.note_id) {
                list.push(a);
            }
        }
        notes.sort_by_key(|(n, _)| ids.iter().position(|id| *id == n.id));
        Ok(notes)
    }
}

#[async_trait]
impl<B: Backend> Trash for SqlStore<B> {
    async fn trash_note(&self, id: Uuid, by: &str) -> Result<bool, StoreError> {
        let mut tx = B::begin_write(self).await?;
        // Numbered first, as every note write: the feed's order is commit order.
        let seq = take_seqs::<B>(&mut *tx, 1).await?;
        let trashed = execute(
            &mut *tx,
            query::<B>(
                "UPDATE notes SET deleted_at = $1, deleted_by = $2, change_seq = $3
                 WHERE id = $4 AND deleted_at IS NULL",
            )
            .arg(Time(timestamp::now()))
            .arg(by.to_owned())
            .arg(seq)
            .arg(Id(id)),
        )
        .await?;
        if trashed == 0 {
            return Ok(false);
        }
        // The index drops it as it drops a deleted note.
        execute(&mut *tx, tombstone::<B>(seq, id)).await?;
        tx.commit().await.map_err(B::map_err)?;
        Ok(true)
    }

    async fn restore_note(&self, id: Uuid) -> Result<Option<Note>, StoreError> {
        let mut tx = B::begin_write(self).await?;
        let seq = take_seqs::<B>(&mut *tx, 1).await?;
        let row: Option<NoteRow> = fetch_optional(
            &mut *tx,
            query::<B>(&format!(
                "UPDATE notes SET deleted_at = NULL, deleted_by = NULL, change_seq = $1,
                        restored_seq = $1, restored_at = $3
                 WHERE id = $2 AND deleted_at IS NOT NULL RETURNING {NOTE_COLUMNS}"
            ))
            .arg(seq)
            .arg(Id(id))
            .arg(Time(timestamp::now())),
        )
        .await?;
        let Some(row) = row else { return Ok(None) };
        tx.commit().await.map_err(B::map_err)?;
        Ok(Some(row.into_note()))
    }

    async fn list_trash(
        &self,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Page<TrashedNote>, StoreError> {
        let rows: Vec<TrashedRow> = fetch_all(
            &mut *self.read().await?,
            query::<B>(&format!(
                "SELECT {NOTE_COLUMNS}, {TRASHED_COLUMNS} FROM notes
                 WHERE deleted_at IS NOT NULL AND change_seq < $1
                 ORDER BY change_seq DESC LIMIT $2"
            ))
            .arg(after.unwrap_or(i64::MAX))
            .arg(i64::from(limit) + 1),
        )
        .await?;
        let rows = rows.into_iter().map(TrashedRow::into_positioned).collect();
        Ok(Page::from_rows(rows, limit as usize))
    }

    async fn purge_trashed(&self, id: Uuid) -> Result<Option<Vec<String>>, StoreError> {
        let mut tx = B::begin_write(self).await?;
        let keys: Vec<(String,)> = fetch_all(
            &mut *tx,
            query::<B>(
                "SELECT storage_key FROM attachments WHERE note_id = $1
                 AND EXISTS (SELECT 1 FROM notes WHERE id = $1 AND deleted_at IS NOT NULL)",
            )
            .arg(Id(id)),
        )
        .await?;
        // Its tombstone is already in the feed: nothing else to tell the index.
        let deleted = execute(
            &mut *tx,
            query::<B>("DELETE FROM notes WHERE id = $1 AND deleted_at IS NOT NULL").arg(Id(id)),
        )
        .await?;
        if deleted == 0 {
            return Ok(None);
        }
        tx.commit().await.map_err(B::map_err)?;
        Ok(Some(keys.into_iter().map(|(k,)| k).collect()))
    }

    async fn purge_trash(
        &self,
        before: Option<chrono::DateTime<chrono::Utc>>,
        limit: u32,
    ) -> Result<(u64, Vec<String>), StoreError> {
        let mut tx = B::begin_write(self).await?;
        let ids: Vec<(Id,)> = fetch_all(
            &mut *tx,
            query::<B>(
                "SELECT id FROM notes WHERE deleted_at IS NOT NULL AND ($1 IS NULL OR deleted_at < $1)
                 ORDER BY change_seq LIMIT $2",
            )
            .arg(before.map(Time))
            .arg(i64::from(limit)),
        )
        .await?;
        let mut keys = Vec::new();
        for (id,) in &ids {
            let rows: Vec<(String,)> = fetch_all(
                &mut *tx,
                query::<B>("SELECT storage_key FROM attachments WHERE note_id = $1").arg(*id),
            )
            .await?;
            keys.extend(rows.into_iter().map(|(k,)| k));
            execute(
                &mut *tx,
                query::<B>("DELETE FROM notes WHERE id = $1").arg(*id),
            )
            .await?;
        }
        tx.commit().await.map_err(B::map_err)?;
        Ok((ids.len() as u64, keys))
    }

    async fn count_trashed(&self) -> Result<u64, StoreError> {
        self.count("SELECT count(*) FROM notes WHERE deleted_at IS NOT NULL")
            .await
    }
}

#[async_trait]
impl<B: Backend> Revisions for SqlStore<B> {
    async fn list_revisions(
        &self,
        note_id: Uuid,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<RevisionSummary>, StoreError> {
        let body_bytes = match B::DIALECT {
            Dialect::Sqlite => "length(CAST(body AS BLOB))",
            Dialect::Postgres => "octet_length(body)::bigint",
        };
        let rows: Vec<RevisionSummaryRow> = fetch_all(
            &mut *self.read().await?,
            query::<B>(&format!(
                "SELECT version, title, {body_bytes} AS body_bytes, tags, metadata, updated_at,
                        changed_by
                 FROM note_revisions WHERE note_id = $1 AND version < $2
                 ORDER BY version DESC LIMIT $3"
            ))
            .arg(Id(note_id))
            .arg(before.unwrap_or(i64::MAX))
            .arg(i64::from(limit)),
        )
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn get_revision(
        &self,
        note_id: Uuid,
        version: i64,
    ) -> Result<Option<Revision>, StoreError> {
        let row: Option<RevisionRow> = fetch_optional(
            &mut *self.read().await?,
            // The current version is the note itself, with who made it.
            query::<B>(&format!(
                "SELECT {REVISION_COLUMNS} FROM note_revisions WHERE note_id = $1 AND version = $2
                 UNION ALL
                 SELECT {REVISION_COLUMNS} FROM notes
                 WHERE id = $1 AND version = $2 AND deleted_at IS NULL"
            ))
            .arg(Id(note_id))
            .arg(version),
        )
        .await?;
        Ok(row.map(Into::into))
    }

    async fn prune_revisions(
        &self,
        keep: u32,
        before: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<u64, StoreError> {
        let mut c = self.write().await?;
        // Past the `keep` newest of each note, ranked in one pass.
        let mut pruned = execute(
            &mut *c,
            query::<B>(
                "DELETE FROM note_revisions WHERE (note_id, version) IN (
                     SELECT note_id, version FROM (
                         SELECT note_id, version,
                                row_number() OVER (PARTITION BY note_id ORDER BY version DESC) AS r
                         FROM note_revisions) ranked
                     WHERE r > $1)",
            )
            .arg(i64::from(keep)),
        )
        .await?;
        if let Some(before) = before {
            pruned += execute(
                &mut *c,
                query::<B>("DELETE FROM note_revisions WHERE updated_at < $1").arg(Time(before)),
            )
            .await?;
        }
        Ok(pruned)
    }

    async fn count_revisions(&self) -> Result<u64, StoreError> {
        self.count("SELECT count(*) FROM note_revisions").await
    }
}

#[async_trait]
impl<B: Backend> Keys for SqlStore<B> {
    async fn create_key(&self, new: NewKey) -> Result<(), StoreError> {
        execute(
            &mut *self.write().await?,
            insert_key::<B>(&new.key, &new.hash),
        )
        .await?;
        Ok(())
    }

    async fn list_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let rows: Vec<KeyRow> = fetch_all(
            &mut *self.read().await?,
            query::<B>(&format!(
                "SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at, id"
            )),
        )
        .await?;
        Ok(rows.into_iter().map(KeyRow::into_key).collect())
    }

    async fn delete_key(&self, id: Uuid) -> Result<bool, StoreError> {
        let deleted = execute(
            &mut *self.write().await?,
            query::<B>("DELETE FROM api_keys WHERE id = $1").arg(Id(id)),
        )
        .await?;
        Ok(deleted > 0)
    }

    async fn find_key(&self, hash: &str) -> Result<Option<(Uuid, Vec<Scope>)>, StoreError> {
        let row: Option<(Id, Json<Vec<Scope>>)> = fetch_optional(
            &mut *self.read().await?,
            query::<B>("SELECT id, scopes FROM api_keys WHERE key_hash = $1").arg(hash.to_owned()),
        )
        .await?;
        Ok(row.map(|(id, scopes)| (id.0, scopes.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_numbers_the_same_placeholders() {
        let sql = "UPDATE notes SET change_seq = $1 WHERE id = $2";
        assert_eq!(
            Dialect::Sqlite.sql(sql).0,
            "UPDATE notes SET change_seq = ?1 WHERE id = ?2"
        );
        assert_eq!(Dialect::Postgres.sql(sql).0, sql);
    }
}
