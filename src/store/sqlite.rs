//! SQLite backend: the embedded default. WAL mode, one writer connection (so
//! writers queue in-process instead of failing with "database is locked") and
//! a pool of readers that never wait for the writer.

use std::{
    collections::{HashMap, HashSet},
    str::FromStr,
    time::Duration,
};

use async_trait::async_trait;
use sqlx::{
    AssertSqlSafe, QueryBuilder, Sqlite, SqlitePool,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
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

pub struct SqliteStore {
    pub(crate) writer: SqlitePool,
    pub(crate) reader: SqlitePool,
}

/// The options of the store's connections: the writer's as they are; the
/// readers open them read-only with a smaller page cache. Public so that the
/// benchmarks' raw SQLite reference connects exactly as the store does.
pub fn connect_options(
    url: &str,
    settings: &PoolSettings,
) -> Result<SqliteConnectOptions, StoreError> {
    Ok(SqliteConnectOptions::from_str(url)
        .map_err(|e| StoreError::Internal(e.into()))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // FULL: a transaction that committed survives power loss, as on
        // PostgreSQL. NORMAL in WAL mode may lose the last commits on an OS
        // crash while the client already has its 200 (docs/reliability.md
        // has what FULL costs).
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(settings.statement_timeout.min(Duration::from_secs(10)))
        .foreign_keys(true)
        .pragma("temp_store", "memory")
        .pragma("cache_size", "-16000"))
}

impl SqliteStore {
    pub async fn connect(url: &str, settings: &PoolSettings) -> Result<Self, StoreError> {
        let options = connect_options(url, settings)?;
        if let Some(dir) = options.get_filename().parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Unavailable(e.into()))?;
        }
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await
            .map_err(map_err)?;
        let reader = SqlitePoolOptions::new()
            .max_connections(settings.max_connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            // Each reader keeps its own page cache: 16 MB each, as the
            // writer has, made eight readers cost up to 128 MB of a 256 MiB
            // pod once the index read back a large ingest through all of
            // them. The OS page cache still holds the file.
            .connect_with(options.read_only(true).pragma("cache_size", "-2000"))
            .await
            .map_err(map_err)?;
        Ok(Self { writer, reader })
    }

    /// Folds the WAL in, leaves WAL mode, drops free pages (VACUUM) and
    /// closes: the file alone then holds everything.
    pub(crate) async fn compact(self) -> Result<(), StoreError> {
        self.reader.close().await;
        for statement in [
            "PRAGMA wal_checkpoint(TRUNCATE)",
            "PRAGMA journal_mode=DELETE",
            "VACUUM",
        ] {
            sqlx::query(statement)
                .execute(&self.writer)
                .await
                .map_err(map_err)?;
        }
        self.writer.close().await;
        Ok(())
    }

    /// A write transaction that takes the write lock at once, so it cannot
    /// fail part-way on a lock another process holds (SQLITE_BUSY).
    async fn write_tx(&self) -> Result<sqlx::Transaction<'static, Sqlite>, StoreError> {
        self.writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_err)
    }

    async fn fetch_note(&self, id: Uuid) -> Result<Option<Note>, StoreError> {
        let sql = format!("SELECT {NOTE_COLUMNS} FROM notes WHERE id = ?");
        sqlx::query_as::<_, NoteRow>(AssertSqlSafe(sql))
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err)?
            .map(NoteRow::into_note)
            .transpose()
    }
}

pub(crate) fn map_err(err: sqlx::Error) -> StoreError {
    match &err {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
            StoreError::Unavailable(err.into())
        }
        // SQLite names the columns in its message only:
        // "UNIQUE constraint failed: notes.external_id".
        sqlx::Error::Database(db) if db.is_unique_violation() => super::unique_conflict(
            db.message()
                .strip_prefix("UNIQUE constraint failed: ")
                .unwrap_or("unknown"),
        ),
        // SQLITE_BUSY / SQLITE_LOCKED: another process held the lock past busy_timeout.
        sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("5" | "6" | "517")) => {
            StoreError::Unavailable(err.into())
        }
        _ => StoreError::Internal(err.into()),
    }
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(format!("stored {what} is invalid: {e}").into())
}

const ATTACHMENT_COLUMNS: &str =
    "id, note_id, filename, content_type, size, sha256, storage_key, created_at";

#[derive(sqlx::FromRow)]
struct AttachmentRow {
    id: String,
    note_id: String,
    filename: String,
    content_type: String,
    size: i64,
    sha256: String,
    storage_key: String,
    created_at: String,
}

impl AttachmentRow {
    fn into_stored(self) -> Result<StoredAttachment, StoreError> {
        Ok(StoredAttachment {
            attachment: Attachment {
                id: Uuid::parse_str(&self.id).map_err(|e| corrupt("attachment id", e))?,
                note_id: Uuid::parse_str(&self.note_id).map_err(|e| corrupt("note id", e))?,
                filename: self.filename,
                content_type: self.content_type,
                size: self.size as u64,
                sha256: self.sha256,
                created_at: timestamp::parse(&self.created_at)
                    .map_err(|e| corrupt("created_at", e))?,
            },
            storage_key: self.storage_key,
            // Not needed after the write; kept in the database for the index.
            search_text: String::new(),
        })
    }
}

#[derive(sqlx::FromRow)]
struct NoteRow {
    seq: i64,
    id: String,
    title: String,
    body: String,
    tags: String,
    external_id: Option<String>,
    metadata: String,
    created_at: String,
    updated_at: String,
    version: i64,
}

impl NoteRow {
    fn into_note(self) -> Result<Note, StoreError> {
        self.into_positioned().map(|(_, note)| note)
    }

    fn into_positioned(self) -> Result<(i64, Note), StoreError> {
        Ok((
            self.seq,
            Note {
                id: Uuid::parse_str(&self.id).map_err(|e| corrupt("id", e))?,
                title: self.title,
                body: self.body,
                tags: serde_json::from_str(&self.tags).map_err(|e| corrupt("tags", e))?,
                external_id: self.external_id,
                metadata: serde_json::from_str(&self.metadata)
                    .map_err(|e| corrupt("metadata", e))?,
                created_at: timestamp::parse(&self.created_at)
                    .map_err(|e| corrupt("created_at", e))?,
                updated_at: timestamp::parse(&self.updated_at)
                    .map_err(|e| corrupt("updated_at", e))?,
                version: self.version,
            },
        ))
    }
}

type SqliteQuery<'q> = sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments>;

/// The attachment's row, tied to its note; inserts nothing when the note is gone.
fn insert_attachment<'q>(
    a: &'q Attachment,
    storage_key: &'q str,
    search_text: &'q str,
) -> SqliteQuery<'q> {
    sqlx::query(
        "INSERT INTO attachments (id, note_seq, note_id, filename, content_type, size, sha256,
                                  storage_key, created_at, search_text)
         SELECT ?, seq, id, ?, ?, ?, ?, ?, ?, ? FROM notes WHERE id = ?",
    )
    .bind(a.id.to_string())
    .bind(&a.filename)
    .bind(&a.content_type)
    .bind(a.size as i64)
    .bind(&a.sha256)
    .bind(storage_key)
    .bind(timestamp::format(&a.created_at))
    .bind(search_text)
    .bind(a.note_id.to_string())
}

fn insert_key<'q>(key: &'q ApiKey, hash: &'q str) -> SqliteQuery<'q> {
    let scopes: Vec<&str> = key.scopes.iter().map(|s| s.as_str()).collect();
    sqlx::query(
        "INSERT INTO api_keys (id, name, scopes, prefix, key_hash, created_at) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(key.id.to_string())
    .bind(&key.name)
    .bind(json(&scopes))
    .bind(&key.prefix)
    .bind(hash)
    .bind(timestamp::format(&key.created_at))
}

type KeyRow = (String, String, String, String, String);

fn key_from_row((id, name, scopes, prefix, created_at): KeyRow) -> Result<ApiKey, StoreError> {
    Ok(ApiKey {
        id: Uuid::parse_str(&id).map_err(|e| corrupt("key id", e))?,
        name,
        scopes: serde_json::from_str(&scopes).map_err(|e| corrupt("scopes", e))?,
        prefix,
        created_at: timestamp::parse(&created_at).map_err(|e| corrupt("created_at", e))?,
    })
}

#[derive(sqlx::FromRow)]
struct ExportAttachmentRow {
    #[sqlx(flatten)]
    row: AttachmentRow,
    search_text: String,
}

fn json(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).expect("tags and metadata always serialize")
}

/// Takes `n` change numbers for the writing transaction; returns the first.
/// The writer connection is the only one, so numbers commit in order.
async fn take_seqs(tx: &mut sqlx::SqliteConnection, n: usize) -> Result<i64, StoreError> {
    let last: i64 =
        sqlx::query_scalar("UPDATE search_feed SET head = head + ? WHERE id = 1 RETURNING head")
            .bind(n as i64)
            .fetch_one(tx)
            .await
            .map_err(map_err)?;
    Ok(last - n as i64 + 1)
}

/// Gives the note (by its row position) a new change number: its search
/// document changed although its row did not (its attachments).
async fn touch_note(tx: &mut sqlx::SqliteConnection, note_seq: i64) -> Result<(), StoreError> {
    let seq = take_seqs(&mut *tx, 1).await?;
    sqlx::query("UPDATE notes SET change_seq = ? WHERE seq = ?")
        .bind(seq)
        .bind(note_seq)
        .execute(tx)
        .await
        .map_err(map_err)?;
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("./migrations/sqlite")
            .run(&self.writer)
            .await
            .map_err(|e| StoreError::Internal(e.into()))
    }

    async fn schema_versions(&self) -> Result<versions::SchemaVersions, StoreError> {
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations')",
        )
        .fetch_one(&self.reader)
        .await
        .map_err(map_err)?;
        let applied: Vec<i64> = if exists {
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                .fetch_all(&self.reader)
                .await
                .map_err(map_err)?
        } else {
            Vec::new()
        };
        Ok(versions::compare(
            &sqlx::migrate!("./migrations/sqlite"),
            &applied,
        ))
    }

    async fn check_integrity(&self) -> Result<(), StoreError> {
        let problems: Vec<String> = sqlx::query_scalar("PRAGMA quick_check")
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?;
        if problems == ["ok"] {
            Ok(())
        } else {
            Err(StoreError::Internal(
                format!("the database is damaged: {}", problems.join("; ")).into(),
            ))
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        // Readers, not the writer: a long ingest must not make the pod unready.
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map(|_| ())
            .map_err(|e| StoreError::Unavailable(e.into()))
    }

    async fn close(&self) {
        // Readers first: the last connection to close checkpoints the WAL
        // into the database file, and only the writer can.
        self.reader.close().await;
        self.writer.close().await;
    }

    async fn create_note(&self, note: NoteInput) -> Result<Note, StoreError> {
        let now = timestamp::now();
        let id = Uuid::now_v7();
        let stamp = timestamp::format(&now);
        let mut tx = self.write_tx().await?;
        let seq = take_seqs(&mut tx, 1).await?;
        sqlx::query(
            "INSERT INTO notes (id, title, body, tags, external_id, metadata, created_at, updated_at,
                                change_seq)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id.to_string())
        .bind(&note.title)
        .bind(&note.body)
        .bind(json(&note.tags))
        .bind(&note.external_id)
        .bind(json(&note.metadata))
        .bind(&stamp)
        .bind(&stamp)
        .bind(seq)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(Note {
            id,
            title: note.title,
            body: note.body,
            tags: note.tags,
            external_id: note.external_id,
            metadata: note.metadata,
            created_at: now,
            updated_at: now,
            version: 1,
        })
    }

    async fn get_note(&self, id: Uuid) -> Result<Option<Note>, StoreError> {
        self.fetch_note(id).await
    }

    async fn list_notes(&self, q: &ListQuery) -> Result<Page, StoreError> {
        let after = q.after.unwrap_or(i64::MAX);
        let fetch = i64::from(q.limit) + 1;
        let rows = match &q.tag {
            None => {
                let sql = format!(
                    "SELECT {NOTE_COLUMNS} FROM notes WHERE seq < ? ORDER BY seq DESC LIMIT ?"
                );
                sqlx::query_as::<_, NoteRow>(AssertSqlSafe(sql))
                    .bind(after)
                    .bind(fetch)
                    .fetch_all(&self.reader)
                    .await
            }
            Some(tag) => {
                let sql = format!(
                    "SELECT {} FROM note_tags t JOIN notes n ON n.seq = t.note_seq
                     WHERE t.tag = ? AND t.note_seq < ? ORDER BY t.note_seq DESC LIMIT ?",
                    prefixed_columns("n")
                );
                sqlx::query_as::<_, NoteRow>(AssertSqlSafe(sql))
                    .bind(tag)
                    .bind(after)
                    .bind(fetch)
                    .fetch_all(&self.reader)
                    .await
            }
        }
        .map_err(map_err)?;
        let rows = rows
            .into_iter()
            .map(NoteRow::into_positioned)
            .collect::<Result<_, _>>()?;
        Ok(Page::from_rows(rows, q.limit as usize))
    }

    async fn update_note(
        &self,
        id: Uuid,
        note: NoteInput,
        expected_version: i64,
    ) -> Result<Note, StoreError> {
        check_changeable(id, expected_version)?;
        let mut tx = self.write_tx().await?;
        let seq = take_seqs(&mut tx, 1).await?;
        let sql = format!(
            "UPDATE notes SET title = ?, body = ?, tags = ?, external_id = ?, metadata = ?,
                    updated_at = ?, version = version + 1, change_seq = ?
             WHERE id = ? AND version = ? RETURNING {NOTE_COLUMNS}"
        );
        let updated = sqlx::query_as::<_, NoteRow>(AssertSqlSafe(sql))
            .bind(&note.title)
            .bind(&note.body)
            .bind(json(&note.tags))
            .bind(&note.external_id)
            .bind(json(&note.metadata))
            .bind(timestamp::format(&timestamp::now()))
            .bind(seq)
            .bind(id.to_string())
            .bind(expected_version)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
        match updated {
            Some(row) => {
                tx.commit().await.map_err(map_err)?;
                row.into_note()
            }
            None => {
                let current: Option<i64> =
                    sqlx::query_scalar("SELECT version FROM notes WHERE id = ?")
                        .bind(id.to_string())
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(map_err)?;
                Err(match current {
                    Some(current) => StoreError::VersionMismatch { current },
                    None => StoreError::NotFound,
                })
            }
        }
    }

    async fn delete_note(&self, id: Uuid) -> Result<Option<Vec<String>>, StoreError> {
        let mut tx = self.write_tx().await?;
        let keys: Vec<String> =
            sqlx::query_scalar("SELECT storage_key FROM attachments WHERE note_id = ?")
                .bind(id.to_string())
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
        let done = sqlx::query("DELETE FROM notes WHERE id = ?")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        let seq = take_seqs(&mut tx, 1).await?;
        sqlx::query("INSERT INTO note_tombstones (change_seq, note_id) VALUES (?, ?)")
            .bind(seq)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(Some(keys))
    }

    async fn ingest(&self, notes: Vec<NoteInput>) -> Result<IngestCounts, StoreError> {
        let stamp = timestamp::format(&timestamp::now());
        let mut tx = self.write_tx().await?;

        let mut existing = HashMap::new();
        for chunk in external_ids(&notes).chunks(BATCH_ROWS) {
            let mut qb = QueryBuilder::<Sqlite>::new(format!(
                "SELECT {NOTE_COLUMNS} FROM notes WHERE external_id IN ("
            ));
            let mut sep = qb.separated(", ");
            for ext in chunk {
                sep.push_bind(ext.clone());
            }
            qb.push(")");
            for row in qb
                .build_query_as::<NoteRow>()
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?
            {
                let note = row.into_note()?;
                if let Some(ext) = note.external_id.clone() {
                    existing.insert(ext, note);
                }
            }
        }

        let plan = IngestPlan::new(notes, &existing)?;
        let mut seq = take_seqs(&mut tx, plan.updates.len() + plan.inserts.len()).await?;
        for (id, note) in &plan.updates {
            sqlx::query(
                "UPDATE notes SET title = ?, body = ?, tags = ?, metadata = ?,
                        updated_at = ?, version = version + 1, change_seq = ?
                 WHERE id = ?",
            )
            .bind(&note.title)
            .bind(&note.body)
            .bind(json(&note.tags))
            .bind(json(&note.metadata))
            .bind(&stamp)
            .bind(seq)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
            seq += 1;
        }
        for chunk in plan.inserts.chunks(BATCH_ROWS) {
            let mut qb = QueryBuilder::<Sqlite>::new(
                "INSERT INTO notes (id, title, body, tags, external_id, metadata, created_at, updated_at, change_seq) ",
            );
            qb.push_values(chunk, |mut row, note| {
                seq += 1;
                row.push_bind(Uuid::now_v7().to_string())
                    .push_bind(note.title.clone())
                    .push_bind(note.body.clone())
                    .push_bind(json(&note.tags))
                    .push_bind(note.external_id.clone())
                    .push_bind(json(&note.metadata))
                    .push_bind(stamp.clone())
                    .push_bind(stamp.clone())
                    .push_bind(seq - 1);
            });
            qb.build().execute(&mut *tx).await.map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(plan.counts())
    }

    async fn count_notes(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM notes")
            .fetch_one(&self.reader)
            .await
            .map_err(map_err)?;
        Ok(n as u64)
    }

    async fn create_attachment(&self, stored: StoredAttachment) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        let done = insert_attachment(&stored.attachment, &stored.storage_key, &stored.search_text)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        // Always: whether a note has attachments is in its search document.
        let note_seq: i64 = sqlx::query_scalar("SELECT seq FROM notes WHERE id = ?")
            .bind(stored.attachment.note_id.to_string())
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
        touch_note(&mut tx, note_seq).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn list_attachments(
        &self,
        note_id: Uuid,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<Attachment>, StoreError> {
        let sql = format!(
            "SELECT {ATTACHMENT_COLUMNS} FROM attachments WHERE note_id = ? AND id > ? ORDER BY id LIMIT ?"
        );
        let rows = sqlx::query_as::<_, AttachmentRow>(AssertSqlSafe(sql))
            .bind(note_id.to_string())
            .bind(after.map(|a| a.to_string()).unwrap_or_default())
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?;
        rows.into_iter()
            .map(|r| r.into_stored().map(|s| s.attachment))
            .collect()
    }

    async fn get_attachment(&self, id: Uuid) -> Result<Option<StoredAttachment>, StoreError> {
        let sql = format!("SELECT {ATTACHMENT_COLUMNS} FROM attachments WHERE id = ?");
        sqlx::query_as::<_, AttachmentRow>(AssertSqlSafe(sql))
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err)?
            .map(AttachmentRow::into_stored)
            .transpose()
    }

    async fn delete_attachment(&self, id: Uuid) -> Result<Option<String>, StoreError> {
        let mut tx = self.write_tx().await?;
        let deleted: Option<(String, i64)> =
            sqlx::query_as("DELETE FROM attachments WHERE id = ? RETURNING storage_key, note_seq")
                .bind(id.to_string())
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
        let Some((key, note_seq)) = deleted else {
            return Ok(None);
        };
        touch_note(&mut tx, note_seq).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(Some(key))
    }

    async fn set_attachment_text(&self, id: Uuid, text: &str) -> Result<bool, StoreError> {
        let mut tx = self.write_tx().await?;
        let changed: Option<i64> = sqlx::query_scalar(
            "UPDATE attachments SET search_text = ? WHERE id = ? RETURNING note_seq",
        )
        .bind(text)
        .bind(id.to_string())
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        let Some(note_seq) = changed else {
            return Ok(false);
        };
        touch_note(&mut tx, note_seq).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(true)
    }

    async fn attachments_present(&self, ids: &[Uuid]) -> Result<HashSet<Uuid>, StoreError> {
        let ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM attachments WHERE id IN (SELECT value FROM json_each(?))",
        )
        .bind(json(&ids))
        .fetch_all(&self.reader)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(|id| Uuid::parse_str(id).map_err(|e| corrupt("attachment id", e)))
            .collect()
    }

    async fn attachments_without_text(
        &self,
        content_types: &[&str],
    ) -> Result<Vec<Uuid>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM attachments WHERE search_text = '' AND size > 0
               AND content_type IN (SELECT value FROM json_each(?))",
        )
        .bind(json(&content_types))
        .fetch_all(&self.reader)
        .await
        .map_err(map_err)?;
        ids.iter()
            .map(|id| Uuid::parse_str(id).map_err(|e| corrupt("attachment id", e)))
            .collect()
    }

    async fn feed_head(&self) -> Result<FeedHead, StoreError> {
        let (generation, seq): (String, i64) =
            sqlx::query_as("SELECT generation, head FROM search_feed WHERE id = 1")
                .fetch_one(&self.reader)
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
        // One read transaction: the head and both halves of the page come
        // from one snapshot, so the page is complete up to that head.
        let mut tx = self.reader.begin().await.map_err(map_err)?;
        let head: i64 = sqlx::query_scalar("SELECT head FROM search_feed WHERE id = 1")
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
        let through = head.min(upto.unwrap_or(i64::MAX));
        type NoteChange = (
            i64,
            String,
            String,
            String,
            String,
            String,
            String,
            String,
            i64,
        );
        let rows: Vec<NoteChange> = sqlx::query_as(
            "SELECT n.change_seq, n.id, n.title, n.body, n.tags,
                    coalesce((SELECT group_concat(a.search_text, ' ') FROM attachments a
                              WHERE a.note_seq = n.seq AND a.search_text != ''), ''),
                    n.created_at, n.updated_at,
                    (SELECT count(*) FROM attachments a WHERE a.note_seq = n.seq)
             FROM notes n WHERE n.change_seq > ? AND n.change_seq <= ?
             ORDER BY n.change_seq LIMIT ?",
        )
        .bind(after)
        .bind(through)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        let upserts = rows
            .into_iter()
            .map(
                |(seq, id, title, body, tags, extra, created, updated, attachments)| {
                    let doc = IndexDoc {
                        id: Uuid::parse_str(&id).map_err(|e| corrupt("id", e))?,
                        title,
                        body,
                        tags: serde_json::from_str(&tags).map_err(|e| corrupt("tags", e))?,
                        extra,
                        created_at: timestamp::parse(&created)
                            .map_err(|e| corrupt("created_at", e))?,
                        updated_at: timestamp::parse(&updated)
                            .map_err(|e| corrupt("updated_at", e))?,
                        attachments: u32::try_from(attachments).unwrap_or(u32::MAX),
                    };
                    Ok((seq, Change::Upsert(doc)))
                },
            )
            .collect::<Result<Vec<_>, StoreError>>()?;
        let mut removed = Vec::new();
        if deletes {
            let rows: Vec<(i64, String)> = sqlx::query_as(
                "SELECT change_seq, note_id FROM note_tombstones
                 WHERE change_seq > ? AND change_seq <= ? ORDER BY change_seq LIMIT ?",
            )
            .bind(after)
            .bind(through)
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)?;
            for (seq, id) in rows {
                let id = Uuid::parse_str(&id).map_err(|e| corrupt("note id", e))?;
                removed.push((seq, Change::Delete(id)));
            }
        }
        tx.commit().await.map_err(map_err)?;
        Ok(merge_changes(upserts, removed, through, limit as usize))
    }

    async fn renew_feed(&self) -> Result<FeedHead, StoreError> {
        let (generation, seq): (String, i64) = sqlx::query_as(
            "UPDATE search_feed SET generation = ? WHERE id = 1 RETURNING generation, head",
        )
        .bind(new_generation())
        .fetch_one(&self.writer)
        .await
        .map_err(map_err)?;
        Ok(FeedHead { generation, seq })
    }

    async fn export(&self, out: mpsc::Sender<Record>) -> Result<(), StoreError> {
        use futures::TryStreamExt;
        // One read transaction: WAL gives it a snapshot that writers do not move.
        let mut tx = self.reader.begin().await.map_err(map_err)?;
        let keys: Vec<(KeyRow, String)> =
            sqlx::query_as::<_, (String, String, String, String, String, String)>(
                "SELECT id, name, scopes, prefix, created_at, key_hash FROM api_keys ORDER BY id",
            )
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)?
            .into_iter()
            .map(|(a, b, c, d, e, hash)| ((a, b, c, d, e), hash))
            .collect();
        for (row, hash) in keys {
            super::send(
                &out,
                Record::Key {
                    key: key_from_row(row)?,
                    hash,
                },
            )
            .await?;
        }
        let sql = format!("SELECT {NOTE_COLUMNS} FROM notes ORDER BY seq");
        let mut notes = sqlx::query_as::<_, NoteRow>(AssertSqlSafe(sql)).fetch(&mut *tx);
        while let Some(row) = notes.try_next().await.map_err(map_err)? {
            super::send(&out, Record::Note(row.into_note()?)).await?;
        }
        drop(notes);
        let sql = format!("SELECT {ATTACHMENT_COLUMNS}, search_text FROM attachments ORDER BY id");
        let mut attachments =
            sqlx::query_as::<_, ExportAttachmentRow>(AssertSqlSafe(sql)).fetch(&mut *tx);
        while let Some(r) = attachments.try_next().await.map_err(map_err)? {
            let stored = r.row.into_stored()?;
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
        let mut tx = self.writer.begin().await.map_err(map_err)?;
        let mut n = 0;
        while let Some(record) = records.recv().await {
            let record = record?;
            n += 1;
            let q = match &record {
                Record::Key { key, hash } => insert_key(key, hash),
                // A trigger fills the tag table.
                Record::Note(n) => sqlx::query(
                    "INSERT INTO notes (id, title, body, tags, external_id, metadata, created_at,
                                        updated_at, version)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(n.id.to_string())
                .bind(&n.title)
                .bind(&n.body)
                .bind(json(&n.tags))
                .bind(&n.external_id)
                .bind(json(&n.metadata))
                .bind(timestamp::format(&n.created_at))
                .bind(timestamp::format(&n.updated_at))
                .bind(n.version),
                Record::Attachment {
                    attachment,
                    storage_key,
                    search_text,
                } => insert_attachment(attachment, storage_key, search_text),
            };
            // An attachment whose note is not in the batch inserts nothing.
            if q.execute(&mut *tx).await.map_err(map_err)?.rows_affected() != 1 {
                return Err(StoreError::Internal(
                    "a record names a note that is not in the export".into(),
                ));
            }
        }
        // The store was empty: every note is new to the feed, and a new
        // generation makes every index rebuild from what was restored.
        let head: i64 = sqlx::query_scalar("SELECT head FROM search_feed WHERE id = 1")
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
        sqlx::query("UPDATE notes SET change_seq = ? + seq")
            .bind(head)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        sqlx::query(
            "UPDATE search_feed SET generation = ?,
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
        .fetch_one(&self.reader)
        .await
        .map_err(map_err)?;
        Ok(!any)
    }

    async fn create_key(&self, new: NewKey) -> Result<(), StoreError> {
        insert_key(&new.key, &new.hash)
            .execute(&self.writer)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn list_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let rows: Vec<(String, String, String, String, String)> = sqlx::query_as(
            "SELECT id, name, scopes, prefix, created_at FROM api_keys ORDER BY created_at, id",
        )
        .fetch_all(&self.reader)
        .await
        .map_err(map_err)?;
        rows.into_iter().map(key_from_row).collect()
    }

    async fn delete_key(&self, id: Uuid) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM api_keys WHERE id = ?")
            .bind(id.to_string())
            .execute(&self.writer)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn find_key(&self, hash: &str) -> Result<Option<(Uuid, Vec<Scope>)>, StoreError> {
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT id, scopes FROM api_keys WHERE key_hash = ?")
                .bind(hash)
                .fetch_optional(&self.reader)
                .await
                .map_err(map_err)?;
        row.map(|(id, scopes)| {
            Ok((
                Uuid::parse_str(&id).map_err(|e| corrupt("key id", e))?,
                serde_json::from_str(&scopes).map_err(|e| corrupt("scopes", e))?,
            ))
        })
        .transpose()
    }
}

fn prefixed_columns(alias: &str) -> String {
    NOTE_COLUMNS
        .split(", ")
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}
