//! In-process programs: the references the service is compared with, and
//! the service's own code paths without HTTP (to tell where time goes).
//!
//! - `raw-ingest`: the "ideal" ingest: the same migrations (notes with
//!   `change_seq`, the `search_feed` head), the same rows, the same
//!   connection settings, plain sqlx inserts in one transaction per batch,
//!   then the same rows into a raw tantivy index (src/tantivy_ref.rs), one
//!   commit per batch. Like the old reference it skips the upsert look-up.
//! - `inproc-ingest`: the service's own reader and `Store::ingest`, without
//!   HTTP and without the index.
//! - `search-ref`: raw tantivy in-process (`tantivy*` modes), the service's
//!   whole `search()` without HTTP (`inproc`), and the per-search feed-head
//!   query alone (`feedhead`).
//!
//! Each takes a SQLite file or a `postgres://` URL (a database the caller
//! created empty for the ingest references).

use std::{
    fs::File,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::{
    Connection, PgConnection, QueryBuilder, Sqlite, SqliteConnection, sqlite::SqliteConnectOptions,
};

use notes_api::{
    config::{Config, Secret, Settings},
    domain::{
        ingest::{Format, read_batch},
        timestamp,
    },
    search::SearchParams,
    store::{DynStore, PoolSettings},
};

use crate::{stats, tantivy_ref};

/// The connection options of the service's SQLite store (its writer's:
/// `SqliteStore::connect`), so that the reference pays for the same
/// journal, sync and cache settings.
fn options(db: &Path) -> Result<SqliteConnectOptions> {
    let url = format!("sqlite://{}", db.display());
    notes_api::store::sqlite::connect_options(&url, &PoolSettings::default())
        .map_err(|e| anyhow!("{e}"))
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

const MULTI_ROWS: usize = 500;

/// The service's SQLite INSERT (src/store/sqlite.rs `ingest`), 500 rows per
/// statement, each row stamped with its change number.
const SQLITE_INSERT: &str = "INSERT INTO notes (id, title, body, tags, external_id, metadata, created_at, updated_at, change_seq) ";

/// One INSERT for a whole batch: the rows travel as one JSON array
/// parameter and `json_each` feeds them to the INSERT.
const INSERT_JSON: &str =
    "INSERT INTO notes (id, title, body, tags, external_id, metadata, created_at, updated_at, change_seq)
     SELECT j.value->>'id', j.value->>'title', j.value->>'body', j.value->>'tags',
            j.value->>'external_id', j.value->>'metadata', ?2, ?2, ?3 + j.key
     FROM json_each(?1) AS j";

/// Change numbers for a batch, as the service takes them (`take_seqs`).
const SQLITE_TAKE: &str = "UPDATE search_feed SET head = head + ? WHERE id = 1 RETURNING head";
const PG_TAKE: &str = "UPDATE search_feed SET head = head + $1 WHERE id = 1 RETURNING head";

/// The index half of the raw ingest reference: a tantivy index with the
/// service's schema, writer sizing and commit-per-batch (with a payload and
/// a reader reload, as `feed.rs` `commit` does).
struct RawIndex {
    index: tantivy::Index,
    fields: tantivy_ref::Fields,
    writer: tantivy::IndexWriter,
    reader: tantivy::IndexReader,
    secs: f64,
}

impl RawIndex {
    fn new(dir: &Path) -> Result<Self> {
        let (index, fields) = tantivy_ref::create(dir)?;
        let writer = tantivy_ref::writer(&index, tantivy_ref::WRITER_MEMORY)?;
        let reader = index
            .reader_builder()
            .reload_policy(tantivy::ReloadPolicy::Manual)
            .try_into()?;
        Ok(Self {
            index,
            fields,
            writer,
            reader,
            secs: 0.0,
        })
    }

    /// Indexes the rows the batch just committed, commits, reloads.
    fn batch(&mut self, rows: &[Row], seq: i64) -> Result<()> {
        let t = Instant::now();
        for r in rows {
            let tags: Vec<String> = serde_json::from_str(&r.tags)?;
            self.writer.add_document(tantivy_ref::document(
                &self.fields,
                &r.id,
                &r.title,
                &r.body,
                &tags,
            ))?;
        }
        let mut prepared = self.writer.prepare_commit()?;
        prepared.set_payload(&format!(
            "{{\"format\":1,\"generation\":\"bench\",\"seq\":{seq}}}"
        ));
        prepared.commit()?;
        self.reader.reload()?;
        self.secs += t.elapsed().as_secs_f64();
        Ok(())
    }

    fn finish(self) -> Result<Value> {
        let docs = self.reader.searcher().num_docs();
        drop(self.writer);
        let segments = self.index.searchable_segment_metas()?.len();
        Ok(json!({"docs": docs, "segments": segments}))
    }
}

fn read_rows(file: &Path) -> Result<Vec<Row>> {
    let reader = BufReader::with_capacity(256 * 1024, File::open(file)?);
    let mut rows = Vec::new();
    for line in reader.lines() {
        let line = line?;
        if !line.trim().is_empty() {
            rows.push(Row::from_line(&line)?);
        }
    }
    Ok(rows)
}

/// `mode`:
/// - `multirow`: 500-row INSERTs, as the service does;
/// - `batchjson`: one INSERT ... SELECT FROM json_each(?) per batch;
/// - `pg-unnest` (a `postgres://` db): the service's 500-row UNNEST INSERT.
///
/// Each batch (file) is one transaction that takes its change numbers from
/// `search_feed` as the service does; then, unless `index` is `None`, the
/// same rows go into a raw tantivy index in `index`, one commit per batch.
/// The clock covers reading the file, SQL and indexing; `sql_secs` and
/// `index_secs` split it.
pub async fn raw_ingest(
    db: &Path,
    files: &[PathBuf],
    mode: &str,
    index: Option<&Path>,
) -> Result<Value> {
    let mut idx = index.map(RawIndex::new).transpose()?;
    let started = Instant::now();
    let mut notes = 0usize;
    let mut sql_secs = 0.0;
    if let Some(url) = pg_url(db) {
        let mut conn = PgConnection::connect(url).await?;
        sqlx::migrate!("../migrations/postgres")
            .run(&mut conn)
            .await?;
        let started = Instant::now();
        for file in files {
            let rows = read_rows(file)?;
            notes += rows.len();
            let t = Instant::now();
            let mut tx = conn.begin().await?;
            let last: i64 = sqlx::query_scalar(PG_TAKE)
                .bind(rows.len() as i64)
                .fetch_one(&mut *tx)
                .await?;
            let mut seq = last - rows.len() as i64 + 1;
            let first = seq;
            for chunk in rows.chunks(MULTI_ROWS) {
                let col = |f: fn(&Row) -> String| chunk.iter().map(f).collect::<Vec<_>>();
                let seqs: Vec<i64> = (0..chunk.len() as i64).map(|k| seq + k).collect();
                seq += chunk.len() as i64;
                let ids: Vec<uuid::Uuid> =
                    chunk.iter().map(|r| r.id.parse().expect("uuid")).collect();
                sqlx::query(PG_INSERT)
                    .bind(ids)
                    .bind(col(|r| r.title.clone()))
                    .bind(col(|r| r.body.clone()))
                    .bind(col(|r| r.tags.clone()))
                    .bind(col(|r| r.metadata.clone()))
                    .bind(seqs)
                    .bind(
                        chunk
                            .iter()
                            .map(|r| r.external_id.clone())
                            .collect::<Vec<_>>(),
                    )
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            sql_secs += t.elapsed().as_secs_f64();
            if let Some(i) = idx.as_mut() {
                i.batch(&rows, first + rows.len() as i64 - 1)?;
            }
        }
        let secs = started.elapsed().as_secs_f64();
        conn.close().await?;
        return finish("pg-unnest", notes, secs, sql_secs, idx);
    }
    remove_db(db);
    let mut conn = SqliteConnection::connect_with(&options(db)?).await?;
    sqlx::migrate!("../migrations/sqlite")
        .run(&mut conn)
        .await?;
    let stamp = timestamp::format(&timestamp::now());
    let _ = started;
    let started = Instant::now();
    for file in files {
        let rows = read_rows(file)?;
        notes += rows.len();
        let t = Instant::now();
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        let last: i64 = sqlx::query_scalar(SQLITE_TAKE)
            .bind(rows.len() as i64)
            .fetch_one(&mut *tx)
            .await?;
        let first = last - rows.len() as i64 + 1;
        match mode {
            "multirow" => {
                let mut seq = first;
                for chunk in rows.chunks(MULTI_ROWS) {
                    let mut qb = QueryBuilder::<Sqlite>::new(SQLITE_INSERT);
                    qb.push_values(chunk, |mut b, r| {
                        b.push_bind(r.id.clone())
                            .push_bind(r.title.clone())
                            .push_bind(r.body.clone())
                            .push_bind(r.tags.clone())
                            .push_bind(r.external_id.clone())
                            .push_bind(r.metadata.clone())
                            .push_bind(stamp.clone())
                            .push_bind(stamp.clone())
                            .push_bind(seq);
                        seq += 1;
                    });
                    qb.build().execute(&mut *tx).await?;
                }
            }
            "batchjson" => {
                let batch: Vec<Value> = rows
                    .iter()
                    .map(|r| {
                        json!({
                            "id": r.id, "title": r.title, "body": r.body, "tags": r.tags,
                            "external_id": r.external_id, "metadata": r.metadata,
                        })
                    })
                    .collect();
                sqlx::query(INSERT_JSON)
                    .bind(serde_json::to_string(&batch)?)
                    .bind(&stamp)
                    .bind(first)
                    .execute(&mut *tx)
                    .await?;
            }
            other => bail!("unknown raw-ingest mode {other:?}"),
        }
        tx.commit().await?;
        sql_secs += t.elapsed().as_secs_f64();
        if let Some(i) = idx.as_mut() {
            i.batch(&rows, last)?;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    conn.close().await?;
    finish(mode, notes, secs, sql_secs, idx)
}

fn finish(
    mode: &str,
    notes: usize,
    secs: f64,
    sql_secs: f64,
    idx: Option<RawIndex>,
) -> Result<Value> {
    let index_secs = idx.as_ref().map_or(0.0, |i| i.secs);
    let index = idx.map(RawIndex::finish).transpose()?;
    Ok(json!({
        "mode": mode,
        "tantivy": index.is_some(),
        "index": index,
        "notes": notes,
        "secs": secs,
        "sql_secs": sql_secs,
        "index_secs": index_secs,
        "notes_per_s": notes as f64 / secs,
        "vmhwm_kb": crate::procs::status_kb(std::process::id(), "VmHWM")?,
    }))
}

/// `db` as a PostgreSQL URL, when it is one.
pub fn pg_url(db: &Path) -> Option<&str> {
    db.to_str().filter(|s| s.starts_with("postgres://"))
}

/// The service's INSERT (src/store/postgres.rs `ingest`), 500 rows per statement.
const PG_INSERT: &str = "INSERT INTO notes (id, title, body, tags, external_id, metadata, created_at, updated_at, change_seq)
     SELECT id, title, body, tags::jsonb, ext, metadata::jsonb, now(), now(), change_seq
     FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[])
          WITH ORDINALITY AS u(id, title, body, tags, metadata, change_seq, ext, position)
     ORDER BY position";

/// The service's configuration for database `db` (a SQLite file or a
/// `postgres://` URL) with data (and index) directory `data_dir`.
fn service_config(db: &Path, data_dir: &Path, readers: u32) -> Result<Settings> {
    let mut config = Config::defaults();
    config.server.data_dir = data_dir.to_owned();
    config.database.database_url = Some(Secret::new(match pg_url(db) {
        Some(url) => url.to_owned(),
        None => format!("sqlite://{}", db.display()),
    }));
    config.database.db_max_connections = readers;
    Ok(config.resolve()?)
}

/// The service's store alone (no index following it), as `serve` opens it.
async fn service_store(db: &Path, readers: u32) -> Result<DynStore> {
    let data = db
        .parent()
        .filter(|_| pg_url(db).is_none())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| std::env::temp_dir().join("notes-bench-inproc"));
    let settings = service_config(db, &data, readers)?;
    let database = &settings.database;
    let store = notes_api::store::connect(database.url.expose(), &PoolSettings::new(database))
        .await
        .map_err(|e| anyhow!("{e}"))?;
    store.migrate().await.map_err(|e| anyhow!("{e}"))?;
    Ok(store)
}

/// The service's ingest path minus HTTP and minus the index: its NDJSON
/// reader and validation, then `Store::ingest`, batch after batch.
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
        "mode": "inproc-store",
        "notes": notes,
        "secs": secs,
        "read_validate_secs": read_secs,
        "notes_per_s": notes as f64 / secs,
        "vmhwm_kb": crate::procs::status_kb(std::process::id(), "VmHWM")?,
    }))
}

/// `search-ref` modes:
/// - `tantivy`: raw tantivy on the bench's own index (`--index`), top 20 +
///   Count + the 20 hits' stored fields, from `concurrency` OS threads;
/// - `tantivy-nodocs`: the same without loading the hits' stored fields;
/// - `tantivy-snippets`: the same plus the service's snippet code;
/// - `tantivy-svc`: `tantivy` on the service's own index files (`--index`
///   is then a NOTES_INDEX_DIR: its newest build is read), so the segment
///   layout is the service's; any tantivy mode accepts such a directory;
/// - `inproc`: the service's whole `search::search` (feed-head query,
///   refresh, spawn_blocking, tantivy, snippets) and its JSON, without HTTP,
///   through the service's `TantivyIndex` on `--data-dir`'s index;
/// - `tantivy-tolerant`: `tantivy` with the queries parsed as the service
///   parses them by default (typos, last word completing) and searched
///   with `FuzzyTermQuery` (transpositions cost 1) and prefix automata
///   ([`tantivy_ref::build_tolerant_query`]);
/// - `feedhead`: only `Store::feed_head()`, the query every search makes.
#[allow(clippy::too_many_arguments)]
pub async fn search_ref(
    db: Option<&Path>,
    index: Option<&Path>,
    data_dir: Option<&Path>,
    queries_file: &Path,
    mode: &str,
    concurrency: usize,
    duration: Duration,
) -> Result<Value> {
    let text = std::fs::read_to_string(queries_file)
        .with_context(|| format!("reading {}", queries_file.display()))?;
    let queries: Vec<String> = text
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    let work = |docs, snippets| tantivy_ref::Work {
        docs,
        snippets,
        tolerant: false,
    };
    let mut out = match mode {
        "tantivy" | "tantivy-nodocs" | "tantivy-snippets" | "tantivy-svc" | "tantivy-tolerant" => {
            let index = index.context("--index is required")?;
            // A service's NOTES_INDEX_DIR holds builds in sub-directories.
            let dir = if index.join("meta.json").exists() {
                index.to_owned()
            } else {
                tantivy_ref::service_build(index)?
            };
            let w = match mode {
                "tantivy-nodocs" => work(false, false),
                "tantivy-snippets" => work(true, true),
                "tantivy-tolerant" => tantivy_ref::Work {
                    tolerant: true,
                    ..work(true, false)
                },
                _ => work(true, false),
            };
            let queries = queries.clone();
            let mut v = tokio::task::spawn_blocking(move || {
                tantivy_ref::search_load(&dir, &queries, w, concurrency, duration)
            })
            .await??;
            v["index_dir"] = json!(index);
            v
        }
        "inproc" | "feedhead" => {
            let db = db.context("--db is required")?;
            let data = data_dir.context("--data-dir is required")?;
            inproc_search(db, data, &queries, mode, concurrency, duration).await?
        }
        other => bail!("unknown search-ref mode {other:?}"),
    };
    out["mode"] = json!(mode);
    out["concurrency"] = json!(concurrency);
    Ok(out)
}

async fn inproc_search(
    db: &Path,
    data: &Path,
    queries: &[String],
    mode: &str,
    concurrency: usize,
    duration: Duration,
) -> Result<Value> {
    let config = service_config(db, data, concurrency as u32)?;
    let state = notes_api::server::open_api(config).await?;
    let index = state
        .index()
        .cloned()
        .context("the API state has an index")?;
    // Wait until the index serves (it opens the existing build at once).
    let t = Instant::now();
    while !index.status().serving {
        if t.elapsed() > Duration::from_secs(300) {
            bail!("the index did not serve within 300 s: {:?}", index.status());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let opened_ms = t.elapsed().as_secs_f64() * 1000.0;
    let store = state.store().clone();
    let queries = Arc::new(queries.to_vec());
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..concurrency {
        let (index, store, queries) = (index.clone(), store.clone(), queries.clone());
        let feedhead = mode == "feedhead";
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let (mut totals, mut zero) = (0u64, 0u64);
            let mut k = t * 997;
            while Instant::now() < deadline {
                let q = &queries[k % queries.len()];
                k += 1;
                let t0 = Instant::now();
                let total = if feedhead {
                    let h = store.feed_head().await.map_err(|e| anyhow!("{e}"))?;
                    h.seq as u64
                } else {
                    let params = SearchParams {
                        q: Some(q.clone()),
                        ..SearchParams::default()
                    };
                    let res = notes_api::search::search(index.as_ref(), params)
                        .await
                        .map_err(|e| anyhow!("{e}"))?;
                    std::hint::black_box(serde_json::to_vec(&res)?);
                    res.total
                };
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
    let status = index.status();
    state.close().await;
    let n = all.len();
    let mut out = stats::latency_summary(&mut all);
    let o = out.as_object_mut().expect("object");
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
    o.insert("index_documents".into(), json!(status.documents));
    o.insert("index_open_ms".into(), json!(opened_ms));
    Ok(out)
}
