//! Raw tantivy, in-process: the reference the service's search and index
//! writes are compared with. Same schema idea as the service
//! (src/index/engine.rs: `id` STRING|STORED, `title`/`body` stored text with
//! positions, `extra` text with positions, `tags` STRING|STORED), the same
//! tokenizer (the service's own `index::tokenizer::NotesTokenizer`), the
//! same query shape (each
//! clause: title^4 OR body^1 OR extra^0.5; term, phrase or phrase-prefix),
//! top 20 by score plus an exact `Count`. No change feed, no HTTP, no
//! snippets, no async runtime: what a search costs in tantivy itself.
//!
//! Why a copy of the query building at all: this is the reference the
//! service is measured against, so it must be tantivy's queries built
//! directly, without the service's layers (its query planner, typo
//! expansion memo, snippet marks). The weights, the tokenizer and the
//! expansion bound are the service's own, imported, so the two cannot
//! drift apart.

use std::{
    fs::File,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow};
use serde_json::{Value, json};
use tantivy::{
    DocAddress, Index, IndexReader, IndexWriter, ReloadPolicy, Score, Searcher, TantivyDocument,
    Term,
    collector::{Count, TopDocs},
    query::{
        BooleanQuery, BoostQuery, FuzzyTermQuery, Occur, PhrasePrefixQuery, PhraseQuery, Query,
        TermQuery,
    },
    schema::{
        Field, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions,
        Value as _,
    },
};

use notes_api::text::query::{self, Clause, Tolerance};

use crate::stats;

pub const TOKENIZER: &str = notes_api::index::tokenizer::NAME;
// The service's own weights and expansion bound, not copies.
use notes_api::index::{BODY_BOOST, EXTRA_BOOST, PHRASE_PREFIX_EXPANSIONS, TITLE_BOOST};

/// The service's own analyzer, so the reference indexes and matches the
/// same words.
pub use notes_api::index::tokenizer::NotesTokenizer;

#[derive(Clone, Copy)]
pub struct Fields {
    pub id: Field,
    pub title: Field,
    pub body: Field,
    pub extra: Field,
    pub tags: Field,
}

pub fn schema() -> (Schema, Fields) {
    let words = TextFieldIndexing::default()
        .set_tokenizer(TOKENIZER)
        .set_index_option(IndexRecordOption::WithFreqsAndPositions);
    let text = TextOptions::default().set_indexing_options(words);
    let mut b = Schema::builder();
    let fields = Fields {
        id: b.add_text_field("id", STRING | STORED),
        title: b.add_text_field("title", text.clone().set_stored()),
        body: b.add_text_field("body", text.clone().set_stored()),
        extra: b.add_text_field("extra", text),
        tags: b.add_text_field("tags", STRING | STORED),
    };
    (b.build(), fields)
}

/// Fields by name from whatever index is open (the bench's own or the
/// service's files: both have these names).
fn fields_of(index: &Index) -> Result<Fields> {
    let s = index.schema();
    let f = |n: &str| s.get_field(n).map_err(|e| anyhow!("field {n}: {e}"));
    Ok(Fields {
        id: f("id")?,
        title: f("title")?,
        body: f("body")?,
        extra: f("extra")?,
        tags: f("tags")?,
    })
}

pub fn register(index: &Index) {
    index
        .tokenizers()
        .register(TOKENIZER, NotesTokenizer::default());
}

pub fn create(dir: &Path) -> Result<(Index, Fields)> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    let (schema, fields) = schema();
    let index = Index::create_in_dir(dir, schema)?;
    register(&index);
    Ok((index, fields))
}

/// The service's writer sizing (src/index/engine.rs `Engine::writer`).
pub fn writer(index: &Index, memory_bytes: usize) -> Result<IndexWriter> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(memory_bytes / 15_000_000)
        .clamp(1, 4);
    Ok(index.writer_with_num_threads(threads, memory_bytes)?)
}

/// The service's default NOTES_INDEX_MEMORY_MB (48).
pub const WRITER_MEMORY: usize = 48 * 1024 * 1024;

pub fn document(f: &Fields, id: &str, title: &str, body: &str, tags: &[String]) -> TantivyDocument {
    let mut d = TantivyDocument::new();
    d.add_text(f.id, id);
    d.add_text(f.title, title);
    d.add_text(f.body, body);
    for t in tags {
        d.add_text(f.tags, t);
    }
    d
}

fn field_query(field: Field, c: &Clause) -> Box<dyn Query> {
    let mut terms: Vec<Term> = c
        .tokens
        .iter()
        .map(|t| Term::from_field_text(field, t))
        .collect();
    match (terms.len(), c.prefix) {
        (1, false) => Box::new(TermQuery::new(
            terms.remove(0),
            IndexRecordOption::WithFreqs,
        )),
        (_, false) => Box::new(PhraseQuery::new(terms)),
        (_, true) => {
            let mut q = PhrasePrefixQuery::new(terms);
            q.set_max_expansions(PHRASE_PREFIX_EXPANSIONS);
            Box::new(q)
        }
    }
}

pub fn build_query(f: &Fields, q: &query::Query) -> BooleanQuery {
    let clause = |c: &Clause| -> Box<dyn Query> {
        let per_field = [
            (f.title, TITLE_BOOST),
            (f.body, BODY_BOOST),
            (f.extra, EXTRA_BOOST),
        ]
        .into_iter()
        .map(|(field, boost)| {
            let q: Box<dyn Query> = Box::new(BoostQuery::new(field_query(field, c), boost));
            (Occur::Should, q)
        })
        .collect();
        Box::new(BooleanQuery::new(per_field))
    };
    every_clause(q, clause)
}

/// Every include clause must match, no exclude clause may.
fn every_clause(q: &query::Query, clause: impl Fn(&Clause) -> Box<dyn Query>) -> BooleanQuery {
    let include = q.include.iter().map(|c| (Occur::Must, clause(c)));
    let exclude = q.exclude.iter().map(|c| (Occur::MustNot, clause(c)));
    BooleanQuery::new(include.chain(exclude).collect())
}

/// What tantivy offers alone for a tolerant query (the `tantivy-tolerant`
/// reference of the typo and as-you-type mixes): each clause the service
/// would widen is, per field (same boosts), the word as a BM25 term OR a
/// `FuzzyTermQuery` within the clause's edits (adjacent swap = 1 edit)
/// and/or a prefix `FuzzyTermQuery` (distance 0: every word starting with
/// it). tantivy's automaton queries score a constant, so this ranks
/// matches by the exact word's BM25 only; it is a reference for speed.
pub fn build_tolerant_query(f: &Fields, q: &query::Query) -> BooleanQuery {
    let clause = |c: &Clause| -> Box<dyn Query> {
        let widened = c.tokens.len() == 1 && !c.prefix && (c.typos > 0 || c.completes);
        let per_field = [
            (f.title, TITLE_BOOST),
            (f.body, BODY_BOOST),
            (f.extra, EXTRA_BOOST),
        ]
        .into_iter()
        .flat_map(|(field, boost)| {
            let mut qs: Vec<(Occur, Box<dyn Query>)> = vec![(
                Occur::Should,
                Box::new(BoostQuery::new(field_query(field, c), boost)),
            )];
            if widened {
                let term = Term::from_field_text(field, &c.tokens[0]);
                if c.typos > 0 {
                    qs.push((
                        Occur::Should,
                        Box::new(BoostQuery::new(
                            Box::new(FuzzyTermQuery::new(term.clone(), c.typos, true)),
                            boost * 0.5,
                        )),
                    ));
                }
                if c.completes {
                    qs.push((
                        Occur::Should,
                        Box::new(BoostQuery::new(
                            Box::new(FuzzyTermQuery::new_prefix(term, 0, true)),
                            boost * 0.6,
                        )),
                    ));
                }
            }
            qs
        })
        .collect();
        Box::new(BooleanQuery::new(per_field))
    };
    every_clause(q, clause)
}

/// The service's defaults: typos and as-you-type on.
pub const SERVICE_TOLERANCE: Tolerance = Tolerance {
    typos: true,
    prefix_last: true,
};

#[derive(serde::Deserialize)]
struct Line {
    title: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    tags: Vec<String>,
}

/// Builds the reference index from NDJSON files: one commit per file, as
/// the service commits once per ingest batch. Returns a description.
pub fn build(dir: &Path, files: &[PathBuf]) -> Result<Value> {
    let started = Instant::now();
    let (index, f) = create(dir)?;
    let mut w = writer(&index, WRITER_MEMORY)?;
    let mut docs = 0u64;
    for file in files {
        let r = BufReader::with_capacity(256 * 1024, File::open(file)?);
        for line in r.lines() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let n: Line = serde_json::from_str(&line)?;
            let id = uuid::Uuid::now_v7().to_string();
            w.add_document(document(&f, &id, &n.title, &n.body, &n.tags))?;
            docs += 1;
        }
        w.commit()?;
    }
    w.wait_merging_threads()?;
    let index = Index::open_in_dir(dir)?;
    let segments = index.searchable_segment_metas()?.len();
    Ok(json!({"docs": docs, "segments": segments, "build_secs": started.elapsed().as_secs_f64()}))
}

/// Opens an index directory (the bench's, or one build of the service's
/// NOTES_INDEX_DIR) for reading only.
pub fn open_reader(dir: &Path) -> Result<(Index, IndexReader, Fields)> {
    let index = Index::open_in_dir(dir).with_context(|| format!("opening {}", dir.display()))?;
    register(&index);
    let fields = fields_of(&index)?;
    let reader = index
        .reader_builder()
        .reload_policy(ReloadPolicy::Manual)
        .try_into()?;
    Ok((index, reader, fields))
}

/// The serving build inside a service's index directory: its newest
/// sub-directory holding `meta.json`.
pub fn service_build(index_dir: &Path) -> Result<PathBuf> {
    let mut builds: Vec<PathBuf> = std::fs::read_dir(index_dir)
        .with_context(|| format!("reading {}", index_dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.join("meta.json").exists())
        .collect();
    builds.sort();
    builds
        .pop()
        .with_context(|| format!("no tantivy build in {}", index_dir.display()))
}

/// What one search does: `docs` = also load the stored fields of the hits
/// (what the service returns); `snippets` = also cut the service's snippets.
#[derive(Clone, Copy)]
pub struct Work {
    pub docs: bool,
    pub snippets: bool,
    /// Parse as the service does by default (typos, as-you-type) and
    /// search with [`build_tolerant_query`].
    pub tolerant: bool,
}

fn one(searcher: &Searcher, f: &Fields, q: &query::Query, work: Work) -> Result<u64> {
    let tq = if work.tolerant {
        build_tolerant_query(f, q)
    } else {
        build_query(f, q)
    };
    let top = TopDocs::with_limit(20).and_offset(0).order_by_score();
    let (hits, total): (Vec<(Score, DocAddress)>, usize) = searcher.search(&tq, &(top, Count))?;
    if work.docs {
        for (_, addr) in hits {
            let doc: TantivyDocument = searcher.doc(addr)?;
            let text = |field| {
                doc.get_first(field)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_owned()
            };
            let (title, body) = (text(f.title), text(f.body));
            let id = text(f.id);
            if work.snippets {
                let s = if body.trim().is_empty() {
                    notes_api::text::snippet::highlight(&title, q)
                } else {
                    notes_api::text::snippet::snippet(&body, q, 24)
                };
                std::hint::black_box(s);
            }
            std::hint::black_box((id, title, body));
        }
    } else {
        std::hint::black_box(hits);
    }
    Ok(total as u64)
}

/// Runs the queries from `threads` OS threads for `duration`, each thread
/// rotating through the list from its own offset (as wrk's script does).
pub fn search_load(
    dir: &Path,
    queries: &[String],
    work: Work,
    threads: usize,
    duration: Duration,
) -> Result<Value> {
    let (index, reader, fields) = open_reader(dir)?;
    let segments = index.searchable_segment_metas()?.len();
    let docs = reader.searcher().num_docs();
    let parsed: Vec<query::Query> = queries
        .iter()
        .map(|q| {
            let parsed = if work.tolerant {
                query::parse_with(q, SERVICE_TOLERANCE)
            } else {
                query::parse(q)
            };
            parsed.map_err(|e| anyhow!("{q:?}: {e}"))
        })
        .collect::<Result<_>>()?;
    let parsed = Arc::new(parsed);
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (reader, parsed) = (reader.clone(), parsed.clone());
            std::thread::spawn(move || -> Result<(Vec<Duration>, u64, u64)> {
                let mut lat = Vec::new();
                let (mut totals, mut zero) = (0u64, 0u64);
                let mut k = t * 997;
                while Instant::now() < deadline {
                    let q = &parsed[k % parsed.len()];
                    k += 1;
                    let t0 = Instant::now();
                    // A searcher per query, as the service takes one per search.
                    let searcher = reader.searcher();
                    let total = one(&searcher, &fields, q, work)?;
                    lat.push(t0.elapsed());
                    totals += total;
                    zero += u64::from(total == 0);
                }
                Ok((lat, totals, zero))
            })
        })
        .collect();
    let mut all = Vec::new();
    let (mut totals, mut zero) = (0u64, 0u64);
    for h in handles {
        let (lat, t, z) = h.join().map_err(|_| anyhow!("search thread panicked"))??;
        all.extend(lat);
        totals += t;
        zero += z;
    }
    let secs = started.elapsed().as_secs_f64();
    let n = all.len();
    let mut out = stats::latency_summary(&mut all);
    let o = out.as_object_mut().expect("object");
    o.insert("threads".into(), json!(threads));
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
    o.insert("index_docs".into(), json!(docs));
    o.insert("index_segments".into(), json!(segments));
    Ok(out)
}

/// The floor of a single write that is searchable on return: one row into
/// SQLite (a transaction that takes a change number from `search_feed`,
/// as the service's create does) and the same note into a tantivy index
/// with the service's schema, committed (with fsync) and the reader
/// reloaded, from one client in a loop for `duration`. No HTTP, no feed
/// read-back, no group commit.
pub async fn write_ref(dir: &Path, duration: Duration) -> Result<Value> {
    use sqlx::{Connection, SqliteConnection, sqlite::SqliteConnectOptions};
    use std::str::FromStr;
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    let db = dir.join("notes.db");
    let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", db.display()))?
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .synchronous(sqlx::sqlite::SqliteSynchronous::Normal);
    let mut conn = SqliteConnection::connect_with(&opts).await?;
    sqlx::migrate!("../migrations/sqlite")
        .run(&mut conn)
        .await?;
    let (index, f) = create(&dir.join("index"))?;
    let mut w = writer(&index, WRITER_MEMORY)?;
    let reader = index
        .reader_builder()
        .reload_policy(ReloadPolicy::Manual)
        .try_into()?;
    let reader: IndexReader = reader;
    let stamp = notes_api::domain::timestamp::format(&notes_api::domain::timestamp::now());
    let (mut lat, mut sql, mut idx) = (Vec::new(), Vec::new(), Vec::new());
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let mut n = 0u64;
    while Instant::now() < deadline {
        n += 1;
        let id = uuid::Uuid::now_v7().to_string();
        let title = format!("Write probe {n}");
        let body = format!("A single note; its own word is zqwref{n}x.");
        let t0 = Instant::now();
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        let seq: i64 = sqlx::query_scalar(
            "UPDATE search_feed SET head = head + 1 WHERE id = 1 RETURNING head",
        )
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO notes (id, title, body, tags, external_id, metadata, created_at, updated_at, change_seq) VALUES (?, ?, ?, '[]', NULL, '{}', ?, ?, ?)")
            .bind(&id).bind(&title).bind(&body).bind(&stamp).bind(&stamp).bind(seq)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        let t1 = Instant::now();
        w.add_document(document(&f, &id, &title, &body, &[]))?;
        let mut prepared = w.prepare_commit()?;
        prepared.set_payload(&format!(
            "{{\"format\":1,\"generation\":\"bench\",\"seq\":{seq}}}"
        ));
        prepared.commit()?;
        reader.reload()?;
        let t2 = Instant::now();
        sql.push(t1 - t0);
        idx.push(t2 - t1);
        lat.push(t2 - t0);
    }
    let secs = started.elapsed().as_secs_f64();
    let segments = index.searchable_segment_metas()?.len();
    let found = reader.searcher().num_docs();
    Ok(json!({
        "writes": lat.len(),
        "secs": secs,
        "writes_per_s": lat.len() as f64 / secs,
        "latency": stats::latency_summary(&mut lat),
        "sql": stats::latency_summary(&mut sql),
        "tantivy_commit": stats::latency_summary(&mut idx),
        "segments_at_end": segments,
        "docs_at_end": found,
    }))
}
