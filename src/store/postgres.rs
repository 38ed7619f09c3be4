//! PostgreSQL backend: the scale-out option. Every replica shares the
//! database and follows its change feed into a search index of its own, so
//! pods keep no state that cannot be rebuilt.

use std::{str::FromStr, sync::Arc, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{
    AssertSqlSafe, PgPool, Postgres, Transaction,
    postgres::{
        PgArguments, PgConnectOptions, PgConnection, PgListener, PgPoolOptions, PgQueryResult,
        PgRow,
    },
    query::Query,
    types::Json,
};
use uuid::Uuid;

use super::{
    BATCH_ROWS, IngestPlan, ListQuery, Page, PoolSettings, StoreError, external_ids,
    rows::{Id, NOTE_COLUMNS, NoteRow, note_columns_of},
    sql::{
        Args, Backend, Dialect, INGEST_LOCK, SqlStore, fetch_optional, forward_to_sqlx,
        notes_by_external_id, query, take_seqs,
    },
};
use crate::domain::{
    ingest::IngestCounts,
    note::{Note, NoteInput},
    timestamp,
};

pub type PgStore = SqlStore<Postgres>;

/// One statement that numbers a single-note write: the feed's row lock is
/// taken first and held to commit (see `sql::take_seqs`).
const NEXT_SEQ: &str =
    "WITH h AS (UPDATE search_feed SET head = head + 1 WHERE id = 1 RETURNING head)";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Calls `heard` for every notification on `channel`, and once each time
/// the listener (re)connects, for whatever was announced while it was not
/// listening. A lost connection only costs latency (those who listen also
/// poll): it is retried quietly. Runs until its task is aborted.
pub(crate) async fn listen(pool: PgPool, channel: &'static str, heard: impl Fn() + Send) {
    loop {
        let listener = async {
            let mut l = PgListener::connect_with(&pool).await?;
            l.listen(channel).await?;
            Ok::<_, sqlx::Error>(l)
        };
        let mut listener = match listener.await {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!(error = %e, channel, "cannot LISTEN; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        heard();
        while listener.recv().await.is_ok() {
            heard();
        }
        tracing::debug!(channel, "the listener lost its connection");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

impl SqlStore<Postgres> {
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
        Ok(Self {
            writer: pool.clone(),
            reader: pool,
        })
    }

    /// The one pool every statement uses.
    pub(crate) fn pool(&self) -> &PgPool {
        &self.writer
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

type PgQuery = Query<'static, Postgres, PgArguments>;

/// A note's text and tags as columns, in the order the statements below
/// bind them after the id.
/// Binds a note's fields as the next six parameters: title, body, tags,
/// external_id, metadata, changed_by.
fn note_fields(q: PgQuery, note: &NoteInput) -> PgQuery {
    q.arg(note.title.clone())
        .arg(note.body.clone())
        .arg(Json(note.tags.clone()))
        .arg(note.external_id.clone())
        .arg(Json(note.metadata.clone()))
        .arg(note.changed_by.clone())
}

#[async_trait]
impl Backend for Postgres {
    const BACKEND: &'static str = "postgres";
    const DIALECT: Dialect = Dialect::Postgres;
    // The note's row is locked (KEY SHARE, as the foreign key would): a
    // delete that commits first leaves nothing to insert, not an orphan or
    // a foreign-key error.
    const INSERT_ATTACHMENT: &'static str =
        "INSERT INTO attachments (id, note_id, filename, content_type, size, sha256, storage_key,
                                  created_at, search_text)
         SELECT $1, id, $2, $3, $4, $5, $6, $7, $8 FROM notes
         WHERE id = $9 AND deleted_at IS NULL FOR KEY SHARE";
    const FEED_DOC: &'static str = "n.id, n.title, n.body, n.tags,
                coalesce((SELECT string_agg(a.search_text, ' ') FROM attachments a
                          WHERE a.note_id = n.id AND a.search_text != ''), '') AS extra,
                n.created_at, n.updated_at,
                (SELECT count(*) FROM attachments a WHERE a.note_id = n.id) AS attachments";
    const IN_LIST: &'static str = "= ANY($1)";
    const LOCK_ROWS: &'static str = "FOR UPDATE";
    const MIGRATIONS_EXIST: &'static str = "SELECT to_regclass('_sqlx_migrations') IS NOT NULL";

    type IdList = Vec<Uuid>;
    type TextList = Vec<String>;
    fn id_list(ids: &[Uuid]) -> Self::IdList {
        ids.to_vec()
    }
    fn text_list(values: &[&str]) -> Self::TextList {
        values.iter().map(|v| (*v).to_owned()).collect()
    }

    forward_to_sqlx!(
        PgConnection,
        PgArguments,
        PgRow,
        PgQueryResult,
        map_err,
        MIGRATOR
    );

    async fn begin_write(store: &PgStore) -> Result<Transaction<'static, Self>, StoreError> {
        store.pool().begin().await.map_err(map_err)
    }

    async fn begin_snapshot(
        store: &PgStore,
        unbounded: bool,
    ) -> Result<Transaction<'static, Self>, StoreError> {
        let mut tx = store.pool().begin().await.map_err(map_err)?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if unbounded {
            // The pool's statement_timeout bounds requests; an export of a
            // large database reads for longer, within this transaction only.
            sqlx::query("SET LOCAL statement_timeout = 0")
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        Ok(tx)
    }

    async fn migrate(store: &PgStore) -> Result<(), StoreError> {
        // sqlx holds an advisory lock while migrating, so replicas starting
        // together apply each migration once.
        MIGRATOR
            .run(store.pool())
            .await
            .map_err(|e| StoreError::Internal(e.into()))
    }

    async fn check_integrity(_store: &PgStore) -> Result<(), StoreError> {
        // PostgreSQL checks its own pages (data checksums, WAL); there is
        // no cheap whole-database check to add here.
        Ok(())
    }

    async fn create_note(store: &PgStore, note: NoteInput) -> Result<Note, StoreError> {
        let sql = format!(
            "{NEXT_SEQ} INSERT INTO notes (id, title, body, tags, external_id, metadata, changed_by,
                                          created_at, updated_at, change_seq, created_seq)
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $8, h.head, h.head FROM h
             RETURNING {NOTE_COLUMNS}"
        );
        let q =
            note_fields(query::<Self>(&sql).arg(Id(Uuid::now_v7())), &note).arg(timestamp::now());
        let row = q.fetch_one(store.pool()).await.map_err(map_err)?;
        Ok(Self::decode::<NoteRow>(&row).map_err(map_err)?.into_note())
    }

    async fn update_note(
        store: &PgStore,
        id: Uuid,
        note: NoteInput,
        expected_version: i64,
    ) -> Result<Option<Note>, StoreError> {
        // The feed is only bumped (and locked) when the version matches; a
        // mismatch leaves a gap in the numbers at worst, never a reorder.
        let sql = format!(
            "WITH target AS (SELECT id FROM notes
                             WHERE id = $1 AND version = $9 AND deleted_at IS NULL),
                  h AS (UPDATE search_feed SET head = head + 1
                        WHERE id = 1 AND EXISTS (SELECT 1 FROM target) RETURNING head)
             UPDATE notes SET title = $2, body = $3, tags = $4, external_id = $5, metadata = $6,
                    changed_by = $7, updated_at = $8, version = version + 1, change_seq = h.head
             FROM h WHERE notes.id = $1 AND notes.version = $9 AND notes.deleted_at IS NULL
             RETURNING {}",
            note_columns_of("notes")
        );
        let q = note_fields(query::<Self>(&sql).arg(Id(id)), &note)
            .arg(timestamp::now())
            .arg(expected_version);
        let row: Option<NoteRow> =
            fetch_optional(&mut *store.pool().acquire().await.map_err(map_err)?, q).await?;
        Ok(row.map(NoteRow::into_note))
    }

    async fn list_notes(store: &PgStore, q: &ListQuery) -> Result<Page, StoreError> {
        let after = q.after.unwrap_or(i64::MAX);
        let fetch = i64::from(q.limit) + 1;
        // `@>` on the tags' GIN index.
        let tag_filter = if q.tag.is_some() {
            "AND tags @> $3"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {NOTE_COLUMNS} FROM notes WHERE seq < $1 AND deleted_at IS NULL {tag_filter}
             ORDER BY seq DESC LIMIT $2"
        );
        let mut query = sqlx::query_as::<_, NoteRow>(AssertSqlSafe(sql))
            .bind(after)
            .bind(fetch);
        if let Some(tag) = &q.tag {
            query = query.bind(Json([tag]));
        }
        let rows = query.fetch_all(store.pool()).await.map_err(map_err)?;
        let rows = rows.into_iter().map(NoteRow::into_positioned).collect();
        Ok(Page::from_rows(rows, q.limit as usize))
    }

    async fn ingest(store: &PgStore, notes: Vec<NoteInput>) -> Result<IngestCounts, StoreError> {
        let now = timestamp::now();
        let mut tx = store.pool().begin().await.map_err(map_err)?;

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
        let existing = notes_by_external_id::<Self>(&mut tx, &ids).await?;

        let plan = IngestPlan::new(notes, &existing)?;
        // Numbered first: the feed's lock orders this batch against every
        // other note write.
        let mut seq = take_seqs::<Self>(&mut *tx, plan.updates.len() + plan.inserts.len()).await?;
        for chunk in plan.updates.chunks(BATCH_ROWS) {
            let sql = "UPDATE notes n SET title = u.title, body = u.body, tags = u.tags, metadata = u.metadata,
                        changed_by = u.changed_by, updated_at = $7, version = n.version + 1,
                        change_seq = u.change_seq,
                        restored_seq = CASE WHEN n.deleted_at IS NULL THEN n.restored_seq ELSE u.change_seq END,
                        restored_at = CASE WHEN n.deleted_at IS NULL THEN n.restored_at ELSE $7 END,
                        deleted_at = NULL, deleted_by = NULL
                 FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::jsonb[], $6::bigint[], $8::text[])
                      AS u(id, title, body, tags, metadata, change_seq, changed_by)
                 WHERE n.id = u.id";
            Columns::of(chunk.iter().map(|(id, n)| (*id, n)), &mut seq)
                .bind(sqlx::query(sql), now)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        for chunk in plan.inserts.chunks(BATCH_ROWS) {
            let sql = "INSERT INTO notes (id, title, body, tags, external_id, metadata, changed_by, created_at, updated_at, change_seq, created_seq)
                 SELECT id, title, body, tags, ext, metadata, changed_by, $7, $7, change_seq, change_seq
                 FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::jsonb[], $6::bigint[], $8::text[], $9::text[])
                      WITH ORDINALITY AS u(id, title, body, tags, metadata, change_seq, changed_by, ext, position)
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

    fn watch_feed(
        store: &PgStore,
        changed: Arc<dyn Fn() + Send + Sync>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let pool = store.pool().clone();
        Some(tokio::spawn(listen(pool, "notes_search_feed", move || {
            changed()
        })))
    }
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
    changed_by: Vec<Option<String>>,
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
            changed_by: Vec::new(),
        };
        for (id, n) in rows {
            c.ids.push(id);
            c.titles.push(n.title.clone());
            c.bodies.push(n.body.clone());
            c.tags.push(Value::from(n.tags.clone()));
            c.metadata.push(Value::Object(n.metadata.clone()));
            c.external_ids.push(n.external_id.clone());
            c.change_seqs.push(*seq);
            c.changed_by.push(n.changed_by.clone());
            *seq += 1;
        }
        c
    }

    /// Binds $1..$6 (the arrays shared by inserts and updates), $7 (now)
    /// and $8 (who makes each version).
    fn bind(self, query: PgQuery, now: DateTime<Utc>) -> PgQuery {
        query
            .bind(self.ids)
            .bind(self.titles)
            .bind(self.bodies)
            .bind(self.tags)
            .bind(self.metadata)
            .bind(self.change_seqs)
            .bind(now)
            .bind(self.changed_by)
    }
}
