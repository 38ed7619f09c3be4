//! PostgreSQL backend: the scale-out option. Every replica shares the
//! database and follows its change feed into a search index of its own, so
//! pods keep no state that cannot be rebuilt.

use std::{
    collections::{HashMap, HashSet},
    str::FromStr,
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sqlx::{
    AssertSqlSafe, PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
    types::Json,
};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::{
    BATCH_ROWS, Change, ChangePage, FeedHead, IndexDoc, IngestPlan, ListQuery, NewKey, Page,
    PoolSettings, Record, Store, StoreError, check_changeable, external_ids, merge_changes,
    new_generation, versions,
};
use crate::domain::{
    attachment::{Attachment, StoredAttachment},
    ingest::IngestCounts,
    keys::{ApiKey, Scope},
    note::{Note, NoteInput},
    timestamp,
};

const NOTE_COLUMNS: &str =
    "seq, id, title, body, tags, external_id, metadata, created_at, updated_at, version";

/// Takes `n` change numbers for the writing transaction; returns the first.
/// The row lock on the feed is held to commit, so writers that number
/// changes commit one after the other and a reader that sees head H sees
/// every change up to H.
/// The advisory lock ingests with external ids take in turn ("notes-api
/// ingest" as an int8; nothing else in the database uses advisory locks).
const INGEST_LOCK: i64 = 0x6e6f_7465_735f_696e;

async fn take_seqs(tx: &mut sqlx::PgConnection, n: usize) -> Result<i64, StoreError> {
    let last: i64 =
        sqlx::query_scalar("UPDATE search_feed SET head = head + $1 WHERE id = 1 RETURNING head")
            .bind(n as i64)
            .fetch_one(tx)
            .await
            .map_err(map_err)?;
    Ok(last - n as i64 + 1)
}

/// Gives the note a new change number: its search document changed
/// although its row did not (its attachments).
async fn touch_note(tx: &mut sqlx::PgConnection, note_id: Uuid) -> Result<(), StoreError> {
    let seq = take_seqs(&mut *tx, 1).await?;
    sqlx::query("UPDATE notes SET change_seq = $1 WHERE id = $2")
        .bind(seq)
        .bind(note_id)
        .execute(tx)
        .await
        .map_err(map_err)?;
    Ok(())
}

/// Turns the feed trigger's notifications into `changed` calls. A lost
/// connection only costs latency (followers also poll): it is retried
/// quietly, and `changed` is called on reconnecting for what it missed.
async fn listen_feed(pool: PgPool, changed: std::sync::Arc<dyn Fn() + Send + Sync>) {
    loop {
        let listener = async {
            let mut l = sqlx::postgres::PgListener::connect_with(&pool).await?;
            l.listen("notes_search_feed").await?;
            Ok::<_, sqlx::Error>(l)
        };
        let mut listener = match listener.await {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!(error = %e, "feed listener cannot connect; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                continue;
            }
        };
        changed();
        while listener.recv().await.is_ok() {
            changed();
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// One statement that numbers a single-note write: the feed's row lock is
/// taken first and held to commit.
const NEXT_SEQ: &str =
    "WITH h AS (UPDATE search_feed SET head = head + 1 WHERE id = 1 RETURNING head)";

const ATTACHMENT_COLUMNS: &str =
    "id, note_id, filename, content_type, size, sha256, storage_key, created_at";

#[derive(sqlx::FromRow)]
struct AttachmentRow {
    id: Uuid,
    note_id: Uuid,
    filename: String,
    content_type: String,
    size: i64,
    sha256: String,
    storage_key: String,
    created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct ExportAttachmentRow {
    #[sqlx(flatten)]
    row: AttachmentRow,
    search_text: String,
}

impl AttachmentRow {
    fn into_stored(self) -> StoredAttachment {
        StoredAttachment {
            attachment: Attachment {
                id: self.id,
                note_id: self.note_id,
                filename: self.filename,
                content_type: self.content_type,
                size: self.size as u64,
                sha256: self.sha256,
                created_at: self.created_at,
            },
            storage_key: self.storage_key,
            search_text: String::new(),
        }
    }
}

pub struct PgStore {
    pub(crate) pool: PgPool,
}

impl PgStore {
    pub async fn connect(url: &str, settings: &PoolSettings) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Internal(e.into()))?
            .application_name("notes-api")
            .options([(
                "statement_timeout",
                format!("{}", settings.statement_timeout.as_millis()),
            )]);
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections.max(1))
            .acquire_timeout(settings.connect_timeout)
            .connect_with(options)
            .await
            .map_err(map_err)?;
        Ok(Self { pool })
    }
}

pub(crate) fn map_err(err: sqlx::Error) -> StoreError {
    match &err {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::PoolTimedOut
        | sqlx::Error::Io(_)
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_) => StoreError::Unavailable(err.into()),
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            super::unique_conflict(unique_column(db.constraint().unwrap_or("unknown")))
        }
        // 08: connection exceptions; 53: insufficient resources; 57P0x: the
        // server is shutting down; 57014: statement timeout (overload).
        sqlx::Error::Database(db)
            if db.code().is_some_and(|c| {
                c.starts_with("08") || c.starts_with("53") || c.starts_with("57P") || c == "57014"
            }) =>
        {
            StoreError::Unavailable(err.into())
        }
        _ => StoreError::Internal(err.into()),
    }
}

/// The `table.column` of a unique constraint, by the names PostgreSQL gives
/// the migrations' `UNIQUE` and `PRIMARY KEY` clauses.
fn unique_column(constraint: &str) -> &str {
    match constraint {
        "notes_external_id_key" => "notes.external_id",
        "notes_id_key" => "notes.id",
        "attachments_pkey" => "attachments.id",
        "attachments_storage_key_key" => "attachments.storage_key",
        "api_keys_pkey" => "api_keys.id",
        "api_keys_key_hash_key" => "api_keys.key_hash",
        "jobs_id_key" => "jobs.id",
        other => other,
    }
}

#[derive(sqlx::FromRow)]
struct NoteRow {
    seq: i64,
    id: Uuid,
    title: String,
    body: String,
    tags: Json<Vec<String>>,
    external_id: Option<String>,
    metadata: Json<Map<String, Value>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    version: i64,
}

impl NoteRow {
    fn into_positioned(self) -> (i64, Note) {
        (
            self.seq,
            Note {
                id: self.id,
                title: self.title,
                body: self.body,
                tags: self.tags.0,
                external_id: self.external_id,
                metadata: self.metadata.0,
                created_at: self.created_at,
                updated_at: self.updated_at,
                version: self.version,
            },
        )
    }
    fn into_note(self) -> Note {
        self.into_positioned().1
    }
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        // sqlx holds an advisory lock while migrating, so replicas starting
        // together apply each migration once.
        sqlx::migrate!("./migrations/postgres")
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Internal(e.into()))
    }

    async fn schema_versions(&self) -> Result<versions::SchemaVersions, StoreError> {
        let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        let applied: Vec<i64> = if exists {
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?
        } else {
            Vec::new()
        };
        Ok(versions::compare(
            &sqlx::migrate!("./migrations/postgres"),
            &applied,
        ))
    }

    async fn check_integrity(&self) -> Result<(), StoreError> {
        // PostgreSQL checks its own pages (data checksums, WAL); there is
        // no cheap whole-database check to add here.
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|e| StoreError::Unavailable(e.into()))
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    async fn create_note(&self, note: NoteInput) -> Result<Note, StoreError> {
        let now = timestamp::now();
        let sql = format!(
            "{NEXT_SEQ} INSERT INTO notes (id, title, body, tags, external_id, metadata, created_at,
                                          updated_at, change_seq)
             SELECT $1, $2, $3, $4, $5, $6, $7, $7, h.head FROM h
             RETURNING {NOTE_COLUMNS}"
        );
        let row = sqlx::query_as::<_, NoteRow>(AssertSqlSafe(sql))
            .bind(Uuid::now_v7())
            .bind(&note.title)
            .bind(&note.body)
            .bind(Json(&note.tags))
            .bind(&note.external_id)
            .bind(Json(&note.metadata))
            .bind(now)
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(row.into_note())
    }

    async fn get_note(&self, id: Uuid) -> Result<Option<Note>, StoreError> {
        let sql = format!("SELECT {NOTE_COLUMNS} FROM notes WHERE id = $1");
        let row = sqlx::query_as::<_, NoteRow>(AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(row.map(NoteRow::into_note))
    }

    async fn list_notes(&self, q: &ListQuery) -> Result<Page, StoreError> {
        let after = q.after.unwrap_or(i64::MAX);
        let fetch = i64::from(q.limit) + 1;
        let tag_filter = if q.tag.is_some() {
            "AND tags @> $3"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {NOTE_COLUMNS} FROM notes WHERE seq < $1 {tag_filter} ORDER BY seq DESC LIMIT $2"
        );
        let mut query = sqlx::query_as::<_, NoteRow>(AssertSqlSafe(sql))
            .bind(after)
            .bind(fetch);
        if let Some(tag) = &q.tag {
            query = query.bind(Json([tag]));
        }
        let rows = query.fetch_all(&self.pool).await.map_err(map_err)?;
        let rows = rows.into_iter().map(NoteRow::into_positioned).collect();
        Ok(Page::from_rows(rows, q.limit as usize))
    }

    async fn update_note(
        &self,
        id: Uuid,
        note: NoteInput,
        expected_version: i64,
    ) -> Result<Note, StoreError> {
        check_changeable(id, expected_version)?;
        // The feed is only bumped (and locked) when the version matches; a
        // mismatch leaves a gap in the numbers at worst, never a reorder.
        let sql = format!(
            "WITH target AS (SELECT id FROM notes WHERE id = $7 AND version = $8),
                  h AS (UPDATE search_feed SET head = head + 1
                        WHERE id = 1 AND EXISTS (SELECT 1 FROM target) RETURNING head)
             UPDATE notes SET title = $1, body = $2, tags = $3, external_id = $4, metadata = $5,
                    updated_at = $6, version = version + 1, change_seq = h.head
             FROM h WHERE notes.id = $7 AND notes.version = $8 RETURNING {}",
            NOTE_COLUMNS
                .split(", ")
                .map(|c| format!("notes.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let updated = sqlx::query_as::<_, NoteRow>(AssertSqlSafe(sql))
            .bind(&note.title)
            .bind(&note.body)
            .bind(Json(&note.tags))
            .bind(&note.external_id)
            .bind(Json(&note.metadata))
            .bind(timestamp::now())
            .bind(id)
            .bind(expected_version)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        if let Some(row) = updated {
            return Ok(row.into_note());
        }
        let current: Option<i64> = sqlx::query_scalar("SELECT version FROM notes WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        Err(match current {
            Some(current) => StoreError::VersionMismatch { current },
            None => StoreError::NotFound,
        })
    }

    async fn delete_note(&self, id: Uuid) -> Result<Option<Vec<String>>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let keys: Vec<String> =
            sqlx::query_scalar("SELECT storage_key FROM attachments WHERE note_id = $1")
                .bind(id)
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
        let done = sqlx::query("DELETE FROM notes WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        let seq = take_seqs(&mut tx, 1).await?;
        sqlx::query("INSERT INTO note_tombstones (change_seq, note_id) VALUES ($1, $2)")
            .bind(seq)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(Some(keys))
    }

    async fn ingest(&self, notes: Vec<NoteInput>) -> Result<IngestCounts, StoreError> {
        let now = timestamp::now();
        let mut tx = self.pool.begin().await.map_err(map_err)?;

        // Rows are locked so that a concurrent batch upserting the same
        // external ids waits instead of deciding on stale content. Two
        // batches naming the same ids in different orders would lock (and,
        // for new ids, insert) them in different orders and deadlock: the
        // batches that name external ids take turns, and lock in order.
        let mut ids = external_ids(&notes);
        if !ids.is_empty() {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(INGEST_LOCK)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        ids.sort_unstable();
        let mut existing = HashMap::new();
        for chunk in ids.chunks(BATCH_ROWS) {
            let sql = format!(
                "SELECT {NOTE_COLUMNS} FROM notes WHERE external_id = ANY($1) ORDER BY seq FOR UPDATE"
            );
            let rows = sqlx::query_as::<_, NoteRow>(AssertSqlSafe(sql))
                .bind(chunk)
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
            for row in rows {
                let note = row.into_note();
                if let Some(ext) = note.external_id.clone() {
                    existing.insert(ext, note);
                }
            }
        }

        let plan = IngestPlan::new(notes, &existing)?;
        // Numbered first: the feed's lock orders this batch against every
        // other note write.
        let mut seq = take_seqs(&mut tx, plan.updates.len() + plan.inserts.len()).await?;
        for chunk in plan.updates.chunks(BATCH_ROWS) {
            let sql = "UPDATE notes n SET title = u.title, body = u.body, tags = u.tags, metadata = u.metadata,
                        updated_at = $7, version = n.version + 1, change_seq = u.change_seq
                 FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::jsonb[], $6::bigint[])
                      AS u(id, title, body, tags, metadata, change_seq)
                 WHERE n.id = u.id";
            Columns::of(chunk.iter().map(|(id, n)| (*id, n)), &mut seq)
                .bind(sqlx::query(sql), now)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        for chunk in plan.inserts.chunks(BATCH_ROWS) {
            let sql = "INSERT INTO notes (id, title, body, tags, external_id, metadata, created_at, updated_at, change_seq)
                 SELECT id, title, body, tags, ext, metadata, $7, $7, change_seq
                 FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::jsonb[], $6::bigint[], $8::text[])
                      WITH ORDINALITY AS u(id, title, body, tags, metadata, change_seq, ext, position)
                 ORDER BY position";
            let columns = Columns::of(chunk.iter().map(|n| (Uuid::now_v7(), n)), &mut seq);
            let external_ids = columns.external_ids.clone();
            columns
                .bind(sqlx::query(sql), now)
                .bind(external_ids)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(plan.counts())
    }

    async fn count_notes(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM notes")
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(n as u64)
    }

    async fn create_attachment(&self, stored: StoredAttachment) -> Result<(), StoreError> {
        let a = &stored.attachment;
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        // Lock the note: a concurrent delete must not leave an orphan row.
        let note: Option<i64> =
            sqlx::query_scalar("SELECT seq FROM notes WHERE id = $1 FOR UPDATE")
                .bind(a.note_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
        if note.is_none() {
            return Err(StoreError::NotFound);
        }
        insert_attachment(a, &stored.storage_key, &stored.search_text)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        // Always: whether a note has attachments is in its search document.
        touch_note(&mut tx, a.note_id).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn list_attachments(
        &self,
        note_id: Uuid,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<Attachment>, StoreError> {
        let sql = format!(
            "SELECT {ATTACHMENT_COLUMNS} FROM attachments
             WHERE note_id = $1 AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3"
        );
        let rows = sqlx::query_as::<_, AttachmentRow>(AssertSqlSafe(sql))
            .bind(note_id)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(rows
            .into_iter()
            .map(|r| r.into_stored().attachment)
            .collect())
    }

    async fn get_attachment(&self, id: Uuid) -> Result<Option<StoredAttachment>, StoreError> {
        let sql = format!("SELECT {ATTACHMENT_COLUMNS} FROM attachments WHERE id = $1");
        let row = sqlx::query_as::<_, AttachmentRow>(AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(row.map(AttachmentRow::into_stored))
    }

    async fn delete_attachment(&self, id: Uuid) -> Result<Option<String>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let deleted: Option<(String, Uuid)> =
            sqlx::query_as("DELETE FROM attachments WHERE id = $1 RETURNING storage_key, note_id")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
        let Some((key, note_id)) = deleted else {
            return Ok(None);
        };
        touch_note(&mut tx, note_id).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(Some(key))
    }

    async fn create_key(&self, new: NewKey) -> Result<(), StoreError> {
        insert_key(&new.key, &new.hash)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn set_attachment_text(&self, id: Uuid, text: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let note: Option<Uuid> =
            sqlx::query_scalar("SELECT note_id FROM attachments WHERE id = $1 FOR UPDATE")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
        let Some(note_id) = note else {
            return Ok(false);
        };
        sqlx::query("UPDATE attachments SET search_text = $1 WHERE id = $2")
            .bind(text)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        touch_note(&mut tx, note_id).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(true)
    }

    async fn attachments_present(&self, ids: &[Uuid]) -> Result<HashSet<Uuid>, StoreError> {
        let rows: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM attachments WHERE id = ANY($1)")
            .bind(ids)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(rows.into_iter().collect())
    }

    async fn attachments_without_text(
        &self,
        content_types: &[&str],
    ) -> Result<Vec<Uuid>, StoreError> {
        sqlx::query_scalar(
            "SELECT id FROM attachments WHERE search_text = '' AND size > 0
               AND content_type = ANY($1)",
        )
        .bind(content_types)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)
    }

    async fn feed_head(&self) -> Result<FeedHead, StoreError> {
        let (generation, seq): (String, i64) =
            sqlx::query_as("SELECT generation, head FROM search_feed WHERE id = 1")
                .fetch_one(&self.pool)
                .await
                .map_err(map_err)?;
        Ok(FeedHead { generation, seq })
    }

    async fn feed_changes(
        &self,
        after: i64,
        upto: Option<i64>,
        limit: u32,
        deletes: bool,
    ) -> Result<ChangePage, StoreError> {
        // Each statement reads the head with its rows, from one snapshot:
        // every change up to that head is visible to it (numbers commit in
        // order), so its rows are complete up to there. A note changed again
        // since an earlier head was read shows up under its new number.
        let upto = upto.unwrap_or(i64::MAX);
        type NoteChange = (
            i64,
            Option<i64>,
            Option<Uuid>,
            Option<String>,
            Option<String>,
            Option<Json<Vec<String>>>,
            Option<String>,
            Option<DateTime<Utc>>,
            Option<DateTime<Utc>>,
            Option<i64>,
        );
        let rows: Vec<NoteChange> = sqlx::query_as(
            "SELECT h.head, c.change_seq, c.id, c.title, c.body, c.tags, c.extra,
                    c.created_at, c.updated_at, c.attachments
             FROM (SELECT head FROM search_feed WHERE id = 1) h
             LEFT JOIN LATERAL (
                 SELECT n.change_seq, n.id, n.title, n.body, n.tags,
                        coalesce((SELECT string_agg(a.search_text, ' ') FROM attachments a
                                  WHERE a.note_id = n.id AND a.search_text != ''), '') AS extra,
                        n.created_at, n.updated_at,
                        (SELECT count(*) FROM attachments a WHERE a.note_id = n.id) AS attachments
                 FROM notes n WHERE n.change_seq > $1 AND n.change_seq <= LEAST(h.head, $2)
                 ORDER BY n.change_seq LIMIT $3) c ON true",
        )
        .bind(after)
        .bind(upto)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        let mut through = rows.first().map_or(after, |r| r.0).min(upto);
        let upserts = rows
            .into_iter()
            .filter_map(
                |(_, seq, id, title, body, tags, extra, created_at, updated_at, attachments)| {
                    let doc = IndexDoc {
                        id: id?,
                        title: title?,
                        body: body?,
                        tags: tags?.0,
                        extra: extra?,
                        created_at: created_at?,
                        updated_at: updated_at?,
                        attachments: u32::try_from(attachments?).unwrap_or(u32::MAX),
                    };
                    Some((seq?, Change::Upsert(doc)))
                },
            )
            .collect();
        let mut removed = Vec::new();
        if deletes {
            let rows: Vec<(i64, Option<i64>, Option<Uuid>)> = sqlx::query_as(
                "SELECT h.head, t.change_seq, t.note_id
                 FROM (SELECT head FROM search_feed WHERE id = 1) h
                 LEFT JOIN LATERAL (
                     SELECT change_seq, note_id FROM note_tombstones
                     WHERE change_seq > $1 AND change_seq <= LEAST(h.head, $2)
                     ORDER BY change_seq LIMIT $3) t ON true",
            )
            .bind(after)
            .bind(upto)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
            through = through.min(rows.first().map_or(after, |r| r.0));
            removed = rows
                .into_iter()
                .filter_map(|(_, seq, id)| Some((seq?, Change::Delete(id?))))
                .collect();
        }
        Ok(merge_changes(upserts, removed, through, limit as usize))
    }

    fn watch_feed(
        &self,
        changed: std::sync::Arc<dyn Fn() + Send + Sync>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        Some(tokio::spawn(listen_feed(self.pool.clone(), changed)))
    }

    async fn renew_feed(&self) -> Result<FeedHead, StoreError> {
        let (generation, seq): (String, i64) = sqlx::query_as(
            "UPDATE search_feed SET generation = $1 WHERE id = 1 RETURNING generation, head",
        )
        .bind(new_generation())
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(FeedHead { generation, seq })
    }

    async fn export(&self, out: mpsc::Sender<Record>) -> Result<(), StoreError> {
        use futures::TryStreamExt;
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        // The pool's statement_timeout bounds requests; an export of a large
        // database reads for longer than that, within this transaction only.
        sqlx::query("SET LOCAL statement_timeout = 0")
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        let keys: Vec<(
            Uuid,
            String,
            Json<Vec<Scope>>,
            String,
            DateTime<Utc>,
            String,
        )> = sqlx::query_as(
            "SELECT id, name, scopes, prefix, created_at, key_hash FROM api_keys ORDER BY id",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        for (id, name, scopes, prefix, created_at, hash) in keys {
            let key = ApiKey {
                id,
                name,
                scopes: scopes.0,
                prefix,
                created_at,
            };
            super::send(&out, Record::Key { key, hash }).await?;
        }
        let sql = format!("SELECT {NOTE_COLUMNS} FROM notes ORDER BY seq");
        let mut notes = sqlx::query_as::<_, NoteRow>(AssertSqlSafe(sql)).fetch(&mut *tx);
        while let Some(row) = notes.try_next().await.map_err(map_err)? {
            super::send(&out, Record::Note(row.into_note())).await?;
        }
        drop(notes);
        let sql = format!("SELECT {ATTACHMENT_COLUMNS}, search_text FROM attachments ORDER BY id");
        let mut attachments =
            sqlx::query_as::<_, ExportAttachmentRow>(AssertSqlSafe(sql)).fetch(&mut *tx);
        while let Some(r) = attachments.try_next().await.map_err(map_err)? {
            let stored = r.row.into_stored();
            let record = Record::Attachment {
                attachment: stored.attachment,
                storage_key: stored.storage_key,
                search_text: r.search_text,
            };
            super::send(&out, record).await?;
        }
        drop(attachments);
        tx.commit().await.map_err(map_err)
    }

    async fn import(
        &self,
        mut records: mpsc::Receiver<Result<Record, StoreError>>,
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let note_sql =
            "INSERT INTO notes (id, title, body, tags, external_id, metadata, created_at,
                                updated_at, version)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
        let mut n = 0;
        while let Some(record) = records.recv().await {
            let record = record?;
            n += 1;
            let q = match &record {
                Record::Key { key, hash } => insert_key(key, hash),
                Record::Note(n) => sqlx::query(note_sql)
                    .bind(n.id)
                    .bind(n.title.clone())
                    .bind(n.body.clone())
                    .bind(Json(n.tags.clone()))
                    .bind(n.external_id.clone())
                    .bind(Json(n.metadata.clone()))
                    .bind(n.created_at)
                    .bind(n.updated_at)
                    .bind(n.version),
                Record::Attachment {
                    attachment,
                    storage_key,
                    search_text,
                } => insert_attachment(attachment, storage_key, search_text),
            };
            q.execute(&mut *tx).await.map_err(map_err)?;
        }
        // The store was empty: every note is new to the feed, and a new
        // generation makes every index rebuild from what was restored.
        let head = take_seqs(&mut tx, 0).await? - 1;
        sqlx::query("UPDATE notes SET change_seq = $1 + seq")
            .bind(head)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        sqlx::query(
            "UPDATE search_feed SET generation = $1,
                    head = head + coalesce((SELECT max(seq) FROM notes), 0) WHERE id = 1",
        )
        .bind(new_generation())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(n)
    }

    async fn is_empty(&self) -> Result<bool, StoreError> {
        let any: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM notes) OR EXISTS (SELECT 1 FROM attachments)
                    OR EXISTS (SELECT 1 FROM api_keys)",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(!any)
    }

    async fn list_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let rows: Vec<(Uuid, String, Json<Vec<Scope>>, String, DateTime<Utc>)> = sqlx::query_as(
            "SELECT id, name, scopes, prefix, created_at FROM api_keys ORDER BY created_at, id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(rows
            .into_iter()
            .map(|(id, name, scopes, prefix, created_at)| ApiKey {
                id,
                name,
                scopes: scopes.0,
                prefix,
                created_at,
            })
            .collect())
    }

    async fn delete_key(&self, id: Uuid) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM api_keys WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn find_key(&self, hash: &str) -> Result<Option<(Uuid, Vec<Scope>)>, StoreError> {
        let row: Option<(Uuid, Json<Vec<Scope>>)> =
            sqlx::query_as("SELECT id, scopes FROM api_keys WHERE key_hash = $1")
                .bind(hash)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
        Ok(row.map(|(id, scopes)| (id, scopes.0)))
    }
}

type PgQuery = sqlx::query::Query<'static, sqlx::Postgres, sqlx::postgres::PgArguments>;

fn insert_attachment(a: &Attachment, storage_key: &str, search_text: &str) -> PgQuery {
    sqlx::query(
        "INSERT INTO attachments (id, note_id, filename, content_type, size, sha256, storage_key,
                                  created_at, search_text)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(a.id)
    .bind(a.note_id)
    .bind(a.filename.clone())
    .bind(a.content_type.clone())
    .bind(a.size as i64)
    .bind(a.sha256.clone())
    .bind(storage_key.to_owned())
    .bind(a.created_at)
    .bind(search_text.to_owned())
}

fn insert_key(key: &ApiKey, hash: &str) -> PgQuery {
    sqlx::query(
        "INSERT INTO api_keys (id, name, scopes, prefix, key_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(key.id)
    .bind(key.name.clone())
    .bind(Json(key.scopes.clone()))
    .bind(key.prefix.clone())
    .bind(hash.to_owned())
    .bind(key.created_at)
}

/// A chunk of notes as parallel arrays, for UNNEST.
struct Columns {
    ids: Vec<Uuid>,
    titles: Vec<String>,
    bodies: Vec<String>,
    tags: Vec<Value>,
    metadata: Vec<Value>,
    external_ids: Vec<Option<String>>,
    change_seqs: Vec<i64>,
}

impl Columns {
    /// Numbers the rows from `*seq` on, and moves `*seq` past them.
    fn of<'a>(rows: impl Iterator<Item = (Uuid, &'a NoteInput)>, seq: &mut i64) -> Self {
        let mut c = Columns {
            ids: Vec::new(),
            titles: Vec::new(),
            bodies: Vec::new(),
            tags: Vec::new(),
            metadata: Vec::new(),
            external_ids: Vec::new(),
            change_seqs: Vec::new(),
        };
        for (id, n) in rows {
            c.ids.push(id);
            c.titles.push(n.title.clone());
            c.bodies.push(n.body.clone());
            c.tags.push(Value::from(n.tags.clone()));
            c.metadata.push(Value::Object(n.metadata.clone()));
            c.external_ids.push(n.external_id.clone());
            c.change_seqs.push(*seq);
            *seq += 1;
        }
        c
    }

    /// Binds $1..$6 (the arrays shared by inserts and updates) and $7 (now).
    fn bind(self, query: PgQuery, now: DateTime<Utc>) -> PgQuery {
        query
            .bind(self.ids)
            .bind(self.titles)
            .bind(self.bodies)
            .bind(self.tags)
            .bind(self.metadata)
            .bind(self.change_seqs)
            .bind(now)
    }
}
