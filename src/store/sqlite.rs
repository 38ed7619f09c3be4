//! SQLite backend: the embedded default. WAL mode, one writer connection (so
//! writers queue in-process instead of failing with "database is locked") and
//! a pool of readers that never wait for the writer.

use std::{str::FromStr, time::Duration};

use async_trait::async_trait;
use sqlx::{
    QueryBuilder, Sqlite, Transaction,
    query::Query,
    sqlite::{
        SqliteArguments, SqliteConnectOptions, SqliteConnection, SqliteJournalMode,
        SqlitePoolOptions, SqliteQueryResult, SqliteRow, SqliteSynchronous,
    },
    types::Json,
};
use uuid::Uuid;

use super::{
    BATCH_ROWS, IngestPlan, ListQuery, Page, PoolSettings, StoreError, external_ids,
    rows::{Id, NOTE_COLUMNS, NoteRow, Time, note_columns_of},
    sql::{
        Args, Backend, Dialect, SqlStore, fetch_all, fetch_one, fetch_optional, forward_to_sqlx,
        notes_by_external_id, query, take_seqs,
    },
};
use crate::domain::{
    ingest::IngestCounts,
    note::{Note, NoteInput},
    timestamp,
};

pub type SqliteStore = SqlStore<Sqlite>;

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

impl SqlStore<Sqlite> {
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

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// A note's text and tags as columns, in `INSERT_NOTE`'s order after the id.
/// Binds a note's fields as the next six parameters: title, body, tags,
/// external_id, metadata, changed_by.
fn note_fields(q: Query<'static, Sqlite, SqliteArguments>, note: &NoteInput) -> SqliteQuery {
    q.arg(note.title.clone())
        .arg(note.body.clone())
        .arg(Json(note.tags.clone()))
        .arg(note.external_id.clone())
        .arg(Json(note.metadata.clone()))
        .arg(note.changed_by.clone())
}

type SqliteQuery = Query<'static, Sqlite, SqliteArguments>;

#[async_trait]
impl Backend for Sqlite {
    const BACKEND: &'static str = "sqlite";
    const DIALECT: Dialect = Dialect::Sqlite;
    // The row is tied to its note by `note_seq`, found by the note's id.
    const INSERT_ATTACHMENT: &'static str =
        "INSERT INTO attachments (id, note_seq, note_id, filename, content_type, size, sha256,
                                  storage_key, created_at, search_text)
         SELECT $1, seq, id, $2, $3, $4, $5, $6, $7, $8 FROM notes
         WHERE id = $9 AND deleted_at IS NULL";
    const FEED_DOC: &'static str = "n.id, n.title, n.body, n.tags,
                coalesce((SELECT group_concat(a.search_text, ' ') FROM attachments a
                          WHERE a.note_seq = n.seq AND a.search_text != ''), '') AS extra,
                n.created_at, n.updated_at,
                (SELECT count(*) FROM attachments a WHERE a.note_seq = n.seq) AS attachments";
    const IN_LIST: &'static str = "IN (SELECT value FROM json_each($1))";
    // The one writer connection already keeps other writers out.
    const LOCK_ROWS: &'static str = "";
    const MIGRATIONS_EXIST: &'static str = "SELECT EXISTS (SELECT 1 FROM sqlite_master
                                            WHERE type = 'table' AND name = '_sqlx_migrations')";

    type IdList = Json<Vec<String>>;
    type TextList = Json<Vec<String>>;
    fn id_list(ids: &[Uuid]) -> Self::IdList {
        Json(ids.iter().map(Uuid::to_string).collect())
    }
    fn text_list(values: &[&str]) -> Self::TextList {
        Json(values.iter().map(|v| (*v).to_owned()).collect())
    }

    forward_to_sqlx!(
        SqliteConnection,
        SqliteArguments,
        SqliteRow,
        SqliteQueryResult,
        map_err,
        MIGRATOR
    );

    /// Takes the write lock at once, so a transaction cannot fail part-way
    /// on a lock another process holds (SQLITE_BUSY).
    async fn begin_write(store: &SqliteStore) -> Result<Transaction<'static, Self>, StoreError> {
        store
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_err)
    }

    /// WAL gives a read transaction a snapshot that writers do not move;
    /// SQLite has no statement timeout to lift.
    async fn begin_snapshot(
        store: &SqliteStore,
        _unbounded: bool,
    ) -> Result<Transaction<'static, Self>, StoreError> {
        store.reader.begin().await.map_err(map_err)
    }

    async fn migrate(store: &SqliteStore) -> Result<(), StoreError> {
        MIGRATOR
            .run(&store.writer)
            .await
            .map_err(|e| StoreError::Internal(e.into()))
    }

    async fn check_integrity(store: &SqliteStore) -> Result<(), StoreError> {
        let problems: Vec<String> = sqlx::query_scalar("PRAGMA quick_check")
            .fetch_all(&store.reader)
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

    async fn create_note(store: &SqliteStore, note: NoteInput) -> Result<Note, StoreError> {
        let now = timestamp::now();
        let mut tx = Self::begin_write(store).await?;
        let seq = take_seqs::<Self>(&mut *tx, 1).await?;
        let sql = format!(
            "INSERT INTO notes (id, title, body, tags, external_id, metadata, changed_by,
                                created_at, updated_at, change_seq, created_seq)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9, $9) RETURNING {NOTE_COLUMNS}"
        );
        let q = note_fields(query::<Self>(&sql).arg(Id(Uuid::now_v7())), &note)
            .arg(Time(now))
            .arg(seq);
        let row: NoteRow = fetch_one(&mut *tx, q).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(row.into_note())
    }

    async fn update_note(
        store: &SqliteStore,
        id: Uuid,
        note: NoteInput,
        expected_version: i64,
    ) -> Result<Option<Note>, StoreError> {
        let mut tx = Self::begin_write(store).await?;
        let seq = take_seqs::<Self>(&mut *tx, 1).await?;
        let sql = format!(
            "UPDATE notes SET title = $2, body = $3, tags = $4, external_id = $5, metadata = $6,
                    changed_by = $7, updated_at = $8, version = version + 1, change_seq = $9
             WHERE id = $1 AND version = $10 AND deleted_at IS NULL RETURNING {NOTE_COLUMNS}"
        );
        let q = note_fields(query::<Self>(&sql).arg(Id(id)), &note)
            .arg(Time(timestamp::now()))
            .arg(seq)
            .arg(expected_version);
        let updated: Option<NoteRow> = fetch_optional(&mut *tx, q).await?;
        // Nothing updated: the transaction rolls back, number and all.
        let Some(row) = updated else { return Ok(None) };
        tx.commit().await.map_err(map_err)?;
        Ok(Some(row.into_note()))
    }

    async fn list_notes(store: &SqliteStore, q: &ListQuery) -> Result<Page, StoreError> {
        let after = q.after.unwrap_or(i64::MAX);
        let fetch = i64::from(q.limit) + 1;
        // A tag is looked up in `note_tags` (kept by a trigger), which is
        // ordered by tag and position.
        let query = match &q.tag {
            None => query::<Self>(&format!(
                "SELECT {NOTE_COLUMNS} FROM notes WHERE seq < $1 AND deleted_at IS NULL
                 ORDER BY seq DESC LIMIT $2"
            ))
            .arg(after)
            .arg(fetch),
            Some(tag) => query::<Self>(&format!(
                "SELECT {} FROM note_tags t JOIN notes n ON n.seq = t.note_seq
                 WHERE t.note_seq < $1 AND t.tag = $3 AND n.deleted_at IS NULL
                 ORDER BY t.note_seq DESC LIMIT $2",
                note_columns_of("n")
            ))
            .arg(after)
            .arg(fetch)
            .arg(tag.clone()),
        };
        let rows: Vec<NoteRow> =
            fetch_all(&mut *store.reader.acquire().await.map_err(map_err)?, query).await?;
        let rows = rows.into_iter().map(NoteRow::into_positioned).collect();
        Ok(Page::from_rows(rows, q.limit as usize))
    }

    async fn ingest(
        store: &SqliteStore,
        notes: Vec<NoteInput>,
    ) -> Result<IngestCounts, StoreError> {
        let now = timestamp::now();
        let mut tx = Self::begin_write(store).await?;

        let existing = notes_by_external_id::<Self>(&mut tx, &external_ids(&notes)).await?;
        let plan = IngestPlan::new(notes, &existing)?;
        let mut seq = take_seqs::<Self>(&mut *tx, plan.updates.len() + plan.inserts.len()).await?;
        for (id, note) in &plan.updates {
            query::<Self>(
                "UPDATE notes SET title = $1, body = $2, tags = $3, metadata = $4,
                        updated_at = $5, version = version + 1, change_seq = $6, changed_by = $8,
                        restored_seq = CASE WHEN deleted_at IS NULL THEN restored_seq ELSE $6 END,
                        restored_at = CASE WHEN deleted_at IS NULL THEN restored_at ELSE $5 END,
                        deleted_at = NULL, deleted_by = NULL
                 WHERE id = $7",
            )
            .arg(note.title.clone())
            .arg(note.body.clone())
            .arg(Json(note.tags.clone()))
            .arg(Json(note.metadata.clone()))
            .arg(Time(now))
            .arg(seq)
            .arg(Id(*id))
            .arg(note.changed_by.clone())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
            seq += 1;
        }
        // Multi-row inserts: SQLite has no arrays to unnest.
        for chunk in plan.inserts.chunks(BATCH_ROWS) {
            let mut qb = QueryBuilder::<Sqlite>::new(
                "INSERT INTO notes (id, title, body, tags, external_id, metadata, changed_by, created_at, updated_at, change_seq, created_seq) ",
            );
            qb.push_values(chunk, |mut row, note| {
                seq += 1;
                row.push_bind(Id(Uuid::now_v7()))
                    .push_bind(note.title.clone())
                    .push_bind(note.body.clone())
                    .push_bind(Json(note.tags.clone()))
                    .push_bind(note.external_id.clone())
                    .push_bind(Json(note.metadata.clone()))
                    .push_bind(note.changed_by.clone())
                    .push_bind(Time(now))
                    .push_bind(Time(now))
                    .push_bind(seq - 1)
                    .push_bind(seq - 1);
            });
            qb.build().execute(&mut *tx).await.map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(plan.counts())
    }
}
