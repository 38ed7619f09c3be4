//! In-process programs: the references the service is compared with, and
//! the service's own code paths without HTTP (to tell where time goes).
//!
//! - `raw-ingest`: the "ideal" ingest: the same migrations, the same rows, the
//!   same connection settings, plain sqlx inserts in one transaction per batch.
//! - `inproc-ingest`: the service's own reader and `SqliteStore::ingest`,
//!   without HTTP.
//! - `search-ref`: the service's search SQL run directly through sqlx at the
//!   same concurrency (`raw`), a proposed cheaper SQL (`topk`), and the
//!   service's whole `search()` function without HTTP (`inproc`).
//!
//! Each takes a SQLite file or a `postgres://` URL (a database the caller
//! created empty for the ingest references); on PostgreSQL the raw ingest is
//! the service's own multi-row `INSERT ... SELECT FROM UNNEST` with the same
//! weighted tsvector, without the upsert look-up (as on SQLite).

use std::{
    fs::File,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    str::FromStr,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::{
    Connection, PgConnection, PgPool, QueryBuilder, Sqlite, SqliteConnection, SqlitePool,
    postgres::PgPoolOptions,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

use notes_api::{
    config::{Config, Secret},
    domain::{
        ingest::{Format, read_batch},
        note::timestamp,
    },
    search::{
        SearchParams,
        query::{self, search_text},
    },
    store::DynStore,
};

use crate::stats;

/// The connection settings of `SqliteStore::connect`, so that the reference
/// pays for the same journal, sync and cache settings.
fn options(db: &Path) -> Result<SqliteConnectOptions> {
    Ok(
        SqliteConnectOptions::from_str(&format!("sqlite://{}", db.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            .pragma("temp_store", "memory")
            .pragma("cache_size", "-16000"),
    )
}

fn remove_db(db: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
}

#[derive(Deserialize)]
struct RawNote {
    title: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    tags: Vec<String>,
    external_id: Option<String>,
    metadata: Option<Value>,
}

struct Row {
    id: String,
    title: String,
    body: String,
    tags: String,
    external_id: Option<String>,
    metadata: String,
}

impl Row {
    fn from_line(line: &str) -> Result<Self> {
        let n: RawNote = serde_json::from_str(line)?;
        Ok(Row {
            id: uuid::Uuid::now_v7().to_string(),
            title: n.title,
            body: n.body,
            tags: serde_json::to_string(&n.tags)?,
            external_id: n.external_id,
            metadata: match n.metadata {
                Some(m) => serde_json::to_string(&m)?,
                None => "{}".to_owned(),
            },
        })
    }
}

const INSERT_ONE: &str = "INSERT INTO notes (id, title, body, tags, external_id, metadata, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
const MULTI_ROWS: usize = 500;

/// One INSERT for a whole batch: the rows travel as one JSON array
/// parameter and `json_each` feeds them to the INSERT.
const INSERT_JSON: &str =
    "INSERT INTO notes (id, title, body, tags, external_id, metadata, created_at, updated_at)
     SELECT j.value->>'id', j.value->>'title', j.value->>'body', j.value->>'tags',
            j.value->>'external_id', j.value->>'metadata', ?2, ?2
     FROM json_each(?1) AS j";

/// FTS5 buffers new index entries in memory up to `hashsize` bytes (1 MiB by
/// default) and also flushes them at the end of every statement that writes
/// the table; each flush writes a segment that later merges rewrite.
const FTS_HASHSIZE: &str = "INSERT INTO notes_fts (notes_fts, rank) VALUES ('hashsize', 67108864)";

/// `mode`:
/// - `prepared`: one cached prepared single-row INSERT per note;
/// - `multirow`: 500-row INSERTs, as the service does;
/// - `batchjson`: one INSERT ... SELECT FROM json_each(?) per batch;
/// - `batchjson-hashsize`: the same with FTS5 `hashsize` raised to 64 MiB (a
///   configuration change, reported as what tuning could gain).
pub async fn raw_ingest(db: &Path, files: &[PathBuf], mode: &str) -> Result<Value> {
    if let Some(url) = pg_url(db) {
        return raw_ingest_pg(url, files).await;
    }
    remove_db(db);
    let mut conn = SqliteConnection::connect_with(&options(db)?).await?;
    sqlx::migrate!("../migrations/sqlite")
        .run(&mut conn)
        .await?;
    if mode == "batchjson-hashsize" {
        sqlx::query(FTS_HASHSIZE).execute(&mut conn).await?;
    }
    let stamp = timestamp::format(&timestamp::now());
    let started = Instant::now();
    let mut notes = 0usize;
    for file in files {
        let reader = BufReader::with_capacity(256 * 1024, File::open(file)?);
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        let mut pending: Vec<Row> = Vec::with_capacity(MULTI_ROWS);
        let mut batch: Vec<Value> = Vec::new();
        for line in reader.lines() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let row = Row::from_line(&line)?;
            notes += 1;
            match mode {
                "prepared" => {
                    sqlx::query(INSERT_ONE)
                        .bind(row.id)
                        .bind(row.title)
                        .bind(row.body)
                        .bind(row.tags)
                        .bind(row.external_id)
                        .bind(row.metadata)
                        .bind(&stamp)
                        .bind(&stamp)
                        .execute(&mut *tx)
                        .await?;
                }
                "multirow" => {
                    pending.push(row);
                    if pending.len() == MULTI_ROWS {
                        insert_many(&mut tx, std::mem::take(&mut pending), &stamp).await?;
                    }
                }
                "batchjson" | "batchjson-hashsize" => batch.push(json!({
                    "id": row.id, "title": row.title, "body": row.body, "tags": row.tags,
                    "external_id": row.external_id, "metadata": row.metadata,
                })),
                other => bail!("unknown raw-ingest mode {other:?}"),
            }
        }
        if !pending.is_empty() {
            insert_many(&mut tx, pending, &stamp).await?;
        }
        if !batch.is_empty() {
            sqlx::query(INSERT_JSON)
                .bind(serde_json::to_string(&batch)?)
                .bind(&stamp)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
    }
    let secs = started.elapsed().as_secs_f64();
    conn.close().await?;
    Ok(json!({
        "mode": mode,
        "notes": notes,
        "secs": secs,
        "notes_per_s": notes as f64 / secs,
        "vmhwm_kb": crate::procs::status_kb(std::process::id(), "VmHWM")?,
    }))
}

async fn insert_many(conn: &mut SqliteConnection, rows: Vec<Row>, stamp: &str) -> Result<()> {
    let mut qb = QueryBuilder::<Sqlite>::new(
        "INSERT INTO notes (id, title, body, tags, external_id, metadata, created_at, updated_at) ",
    );
    qb.push_values(rows, |mut b, r| {
        b.push_bind(r.id)
            .push_bind(r.title)
            .push_bind(r.body)
            .push_bind(r.tags)
            .push_bind(r.external_id)
            .push_bind(r.metadata)
            .push_bind(stamp.to_owned())
            .push_bind(stamp.to_owned());
    });
    qb.build().execute(conn).await?;
    Ok(())
}

/// `db` as a PostgreSQL URL, when it is one.
pub fn pg_url(db: &Path) -> Option<&str> {
    db.to_str().filter(|s| s.starts_with("postgres://"))
}

/// The service's INSERT (src/store/postgres.rs), 500 rows per statement.
const PG_INSERT: &str = "INSERT INTO notes (id, title, body, tags, external_id, metadata, created_at, updated_at, search)
     SELECT id::uuid, title, body, tags::jsonb, ext, metadata::jsonb, now(), now(),
            setweight(to_tsvector('simple', st), 'A') || setweight(to_tsvector('simple', sb), 'B')
     FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])
          WITH ORDINALITY AS u(id, title, body, tags, metadata, st, sb, ext, position)
     ORDER BY position";

/// The raw PostgreSQL ingest into an empty database: the same migrations,
/// rows, tokenized search text and tsvector; one transaction per file.
async fn raw_ingest_pg(url: &str, files: &[PathBuf]) -> Result<Value> {
    let mut conn = PgConnection::connect(url).await?;
    sqlx::migrate!("../migrations/postgres")
        .run(&mut conn)
        .await?;
    let started = Instant::now();
    let mut notes = 0usize;
    for file in files {
        let reader = BufReader::with_capacity(256 * 1024, File::open(file)?);
        let mut tx = conn.begin().await?;
        let mut pending: Vec<Row> = Vec::with_capacity(MULTI_ROWS);
        let mut lines = reader.lines();
        loop {
            let line = lines.next().transpose()?;
            if let Some(line) = &line
                && !line.trim().is_empty()
            {
                pending.push(Row::from_line(line)?);
                notes += 1;
            }
            if pending.len() == MULTI_ROWS || (line.is_none() && !pending.is_empty()) {
                let rows = std::mem::take(&mut pending);
                let col = |f: fn(&Row) -> String| rows.iter().map(f).collect::<Vec<_>>();
                sqlx::query(PG_INSERT)
                    .bind(col(|r| r.id.clone()))
                    .bind(col(|r| r.title.clone()))
                    .bind(col(|r| r.body.clone()))
                    .bind(col(|r| r.tags.clone()))
                    .bind(col(|r| r.metadata.clone()))
                    .bind(col(|r| search_text(&r.title)))
                    .bind(col(|r| search_text(&r.body)))
                    .bind(
                        rows.iter()
                            .map(|r| r.external_id.clone())
                            .collect::<Vec<_>>(),
                    )
                    .execute(&mut *tx)
                    .await?;
            }
            if line.is_none() {
                break;
            }
        }
        tx.commit().await?;
    }
    let secs = started.elapsed().as_secs_f64();
    conn.close().await?;
    Ok(json!({
        "mode": "pg-unnest",
        "notes": notes,
        "secs": secs,
        "notes_per_s": notes as f64 / secs,
        "vmhwm_kb": crate::procs::status_kb(std::process::id(), "VmHWM")?,
    }))
}

/// The service's store, opened exactly as `notes-api serve` opens it (its
/// `Config` defaults and `build_state`, which also applies the migrations),
/// on the database file `db`, with `readers` reader connections.
async fn service_store(db: &Path, readers: u32) -> Result<DynStore> {
    let mut config = Config::defaults();
    if let Some(url) = pg_url(db) {
        config.data_dir = std::env::temp_dir().join("notes-bench-inproc");
        config.database_url = Some(Secret::new(url.to_owned()));
    } else {
        config.data_dir = db.parent().map(Path::to_path_buf).unwrap_or_default();
        config.database_url = Some(Secret::new(format!("sqlite://{}", db.display())));
    }
    config.db_max_connections = readers;
    let config = config.resolve()?;
    Ok(notes_api::server::build_state(config).await?.store.clone())
}

/// The service's ingest path minus HTTP: its NDJSON reader and validation,
/// then `SqliteStore::ingest`, batch after batch.
pub async fn inproc_ingest(db: &Path, files: &[PathBuf]) -> Result<Value> {
    if pg_url(db).is_none() {
        remove_db(db);
    }
    let store = service_store(db, 8).await?;
    let started = Instant::now();
    let (mut notes, mut read_secs) = (0u64, 0.0);
    for file in files {
        let t = Instant::now();
        let batch = read_batch(
            BufReader::with_capacity(256 * 1024, File::open(file)?),
            Format::Ndjson,
        )
        .map_err(|e| anyhow!("{e:?}"))?;
        read_secs += t.elapsed().as_secs_f64();
        let counts = store
            .ingest(batch.notes)
            .await
            .map_err(|e| anyhow!("{e}"))?;
        notes += counts.created + counts.updated + counts.unchanged;
    }
    let secs = started.elapsed().as_secs_f64();
    store.close().await;
    Ok(json!({
        "mode": "inproc",
        "notes": notes,
        "secs": secs,
        "read_validate_secs": read_secs,
        "notes_per_s": notes as f64 / secs,
        "vmhwm_kb": crate::procs::status_kb(std::process::id(), "VmHWM")?,
    }))
}

/// The service's search SQL, verbatim (src/store/sqlite.rs).
const SERVICE_SQL: &str =
    "SELECT n.id, n.title, n.body, n.tags, -bm25(notes_fts, 10.0, 1.0, 0.5) AS score
             FROM notes_fts f JOIN notes n ON n.seq = f.rowid
             WHERE notes_fts MATCH ? 
             ORDER BY bm25(notes_fts, 10.0, 1.0, 0.5), n.seq DESC LIMIT ? OFFSET ?";
const COUNT_SQL: &str = "SELECT count(*) FROM notes_fts f WHERE notes_fts MATCH ? ";
/// Proposed: rank inside the FTS table first and read only the page's rows
/// from `notes`, instead of joining (and sorting) every matching note.
const TOPK_SQL: &str = "WITH top AS MATERIALIZED (
                 SELECT rowid AS seq, bm25(notes_fts, 10.0, 1.0, 0.5) AS rank
                 FROM notes_fts WHERE notes_fts MATCH ?
                 ORDER BY rank, rowid DESC LIMIT ? OFFSET ?)
             SELECT n.id, n.title, n.body, n.tags, -top.rank AS score
             FROM top JOIN notes n ON n.seq = top.seq ORDER BY top.rank, top.seq DESC";

/// The service's PostgreSQL search and count SQL, verbatim (no tag filter).
const PG_SQL: &str =
    "SELECT id, title, body, tags, ts_rank_cd('{0.05, 0.2, 0.4, 1.0}', search, q)::float8 AS score
             FROM notes, to_tsquery('simple', $1) AS q
             WHERE search @@ q 
             ORDER BY score DESC, seq DESC LIMIT $2 OFFSET $3";
const PG_COUNT_SQL: &str = "SELECT count(*) FROM notes WHERE search @@ to_tsquery('simple', $1) ";

type Hit = (String, String, String, String, f64);
type PgHit = (
    uuid::Uuid,
    String,
    String,
    sqlx::types::Json<Vec<String>>,
    f64,
);

enum Engine {
    Sql { pool: SqlitePool, sql: &'static str },
    Pg(PgPool),
    Service(DynStore),
}

impl Engine {
    /// One search as a client sees it; returns the total hit count.
    async fn run(&self, q: &str, matcher: &str) -> Result<u64> {
        match self {
            Engine::Sql { pool, sql } => {
                let rows: Vec<Hit> = sqlx::query_as(*sql)
                    .bind(matcher)
                    .bind(20i64)
                    .bind(0i64)
                    .fetch_all(pool)
                    .await?;
                let total: i64 = sqlx::query_scalar(COUNT_SQL)
                    .bind(matcher)
                    .fetch_one(pool)
                    .await?;
                std::hint::black_box(rows);
                Ok(total as u64)
            }
            Engine::Pg(pool) => {
                let rows: Vec<PgHit> = sqlx::query_as(PG_SQL)
                    .bind(matcher)
                    .bind(20i64)
                    .bind(0i64)
                    .fetch_all(pool)
                    .await?;
                let total: i64 = sqlx::query_scalar(PG_COUNT_SQL)
                    .bind(matcher)
                    .fetch_one(pool)
                    .await?;
                std::hint::black_box(rows);
                Ok(total as u64)
            }
            Engine::Service(store) => {
                let params = SearchParams {
                    q: Some(q.to_owned()),
                    tag: None,
                    limit: None,
                    offset: None,
                };
                let res = notes_api::search::search(store.as_ref(), params)
                    .await
                    .map_err(|e| anyhow!("{e}"))?;
                let body = serde_json::to_vec(&res)?;
                std::hint::black_box(body);
                Ok(res.total)
            }
        }
    }
}

/// Runs `queries` (raw user strings) from `concurrency` tasks for
/// `duration`, each task rotating through the list from its own offset.
pub async fn search_ref(
    db: &Path,
    queries_file: &Path,
    mode: &str,
    concurrency: usize,
    duration: Duration,
) -> Result<Value> {
    let text = std::fs::read_to_string(queries_file)
        .with_context(|| format!("reading {}", queries_file.display()))?;
    let pg = pg_url(db).is_some();
    let queries: Vec<(String, String)> = text
        .lines()
        .filter(|l| !l.is_empty())
        .map(|q| {
            let parsed = query::parse(q).map_err(|e| anyhow!("{q:?}: {e}"))?;
            let matcher = if pg {
                query::to_tsquery(&parsed)
            } else {
                query::to_fts5(&parsed)
            };
            Ok((q.to_owned(), matcher))
        })
        .collect::<Result<_>>()?;
    let engine = Arc::new(match (mode, pg_url(db)) {
        ("raw", Some(url)) => Engine::Pg(
            PgPoolOptions::new()
                .max_connections(concurrency as u32)
                .connect(url)
                .await?,
        ),
        ("topk", Some(_)) => bail!("search-ref --mode topk is SQLite SQL"),
        ("raw" | "topk", None) => Engine::Sql {
            pool: SqlitePoolOptions::new()
                .max_connections(concurrency as u32)
                .connect_with(options(db)?.read_only(true))
                .await?,
            sql: if mode == "raw" { SERVICE_SQL } else { TOPK_SQL },
        },
        ("inproc", _) => Engine::Service(service_store(db, concurrency as u32).await?),
        (other, _) => bail!("unknown search-ref mode {other:?}"),
    });
    let queries = Arc::new(queries);
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..concurrency {
        let (engine, queries) = (engine.clone(), queries.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let (mut totals, mut zero) = (0u64, 0u64);
            let mut k = t * 997;
            while Instant::now() < deadline {
                let (q, m) = &queries[k % queries.len()];
                k += 1;
                let t0 = Instant::now();
                let total = engine.run(q, m).await?;
                lat.push(t0.elapsed());
                totals += total;
                zero += u64::from(total == 0);
            }
            Ok::<_, anyhow::Error>((lat, totals, zero))
        }));
    }
    let mut all = Vec::new();
    let (mut totals, mut zero) = (0u64, 0u64);
    for t in tasks {
        let (lat, tt, z) = t.await??;
        all.extend(lat);
        totals += tt;
        zero += z;
    }
    let secs = started.elapsed().as_secs_f64();
    let n = all.len();
    let mut out = stats::latency_summary(&mut all);
    let o = out.as_object_mut().expect("object");
    o.insert("mode".into(), json!(mode));
    o.insert("concurrency".into(), json!(concurrency));
    o.insert("secs".into(), json!(secs));
    o.insert("requests".into(), json!(n));
    o.insert("qps".into(), json!(n as f64 / secs));
    o.insert(
        "avg_total_hits".into(),
        json!(totals as f64 / n.max(1) as f64),
    );
    o.insert(
        "zero_hit_share".into(),
        json!(zero as f64 / n.max(1) as f64),
    );
    Ok(out)
}
