//! notes-bench: the benchmarks of notes-api and their references.
//!
//! `bench/run.sh` is the entry point; it builds everything and calls
//! `notes-bench run`. The other subcommands are the pieces `run` starts as
//! separate processes (and records as exact commands), usable on their own:
//!
//! ```text
//! notes-bench gen --corpus DIR [--notes N]            write the synthetic corpus (seeded)
//! notes-bench gen-real --corpus DIR [--notes N]       write the real-text corpus (Debian docs)
//! notes-bench tantivy-build --index DIR FILE...       the raw tantivy reference index
//! notes-bench raw-ingest --db FILE|URL --mode multirow|batchjson|pg-unnest [--index DIR] FILE...
//! notes-bench inproc-ingest --db FILE|URL FILE...
//! notes-bench http-ingest --addr HOST:PORT FILE...
//! notes-bench search-ref --queries FILE --mode tantivy|tantivy-nodocs|tantivy-snippets|tantivy-svc|inproc|feedhead
//!                        [--index DIR] [--db FILE|URL --data-dir DIR] [--concurrency 8] [--duration 10]
//! notes-bench write-load --addr HOST:PORT [--concurrency 4] [--duration 10] [--tag WORD]
//! notes-bench write-ref --dir DIR [--duration 10]     raw SQLite row + tantivy commit per write
//! notes-bench storage-ref --store file://DIR|s3://BUCKET [--s3-endpoint URL --s3-key K
//!                         --s3-secret S] --mode raw|inproc --file F [--count 1]
//! notes-bench storage-http --addr HOST:PORT --op upload|download|delete --note ID
//!                          [--file F --count 1 --form raw|multipart] [--ids ID,ID]
//! notes-bench jobs-enqueue --addr HOST:PORT --jobs N [--concurrency 16] [--rate JOBS_PER_S]
//! notes-bench relevance --corpus DIR [--addr HOST:PORT] [--index DIR] [--meili HOST:PORT]
//!                       [--targets 300] [--seed S] [--items-out FILE]
//! notes-bench tolerant-mixes --corpus DIR --out DIR [--items 2000] [--seed S]
//! notes-bench run --service-bin P --hello-bin P --corpus DIR --work DIR
//!                 --lua DIR --results DIR [--only healthz,ingest,search,memory,startup,jobs]
//! ```
//! Each piece prints one JSON object on stdout.

mod client;
mod corpus;
mod jobload;
mod procs;
mod real;
mod refs;
mod relevance;
mod run;
mod stats;
mod storage;
mod tantivy_ref;
mod writes;

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Result, bail};
use clap::{Parser, Subcommand};
use serde_json::json;

#[derive(Parser)]
#[command(
    name = "notes-bench",
    about = "Benchmarks of notes-api against references measured in the same run (see bench/run.sh)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Write the seeded synthetic corpus.
    Gen {
        #[arg(long)]
        corpus: PathBuf,
        #[arg(long)]
        notes: Option<usize>,
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Write the real-text corpus (Debian docs).
    GenReal {
        #[arg(long)]
        corpus: PathBuf,
        #[arg(long)]
        notes: Option<usize>,
    },
    /// Build the raw tantivy reference index.
    TantivyBuild {
        #[arg(long)]
        index: PathBuf,
        files: Vec<PathBuf>,
    },
    /// Raw sqlx inserts (+ raw tantivy indexing with --index).
    RawIngest {
        /// A SQLite file or a postgres:// URL.
        #[arg(long)]
        db: PathBuf,
        /// multirow, batchjson or pg-unnest.
        #[arg(long, default_value = "multirow")]
        mode: String,
        #[arg(long)]
        index: Option<PathBuf>,
        files: Vec<PathBuf>,
    },
    /// The service's reader + Store::ingest in-process.
    InprocIngest {
        #[arg(long)]
        db: PathBuf,
        files: Vec<PathBuf>,
    },
    /// POST each NDJSON file to the service.
    HttpIngest {
        #[arg(long)]
        addr: String,
        files: Vec<PathBuf>,
    },
    /// The in-process search references.
    SearchRef {
        #[arg(long)]
        queries: PathBuf,
        /// tantivy, tantivy-nodocs, tantivy-snippets, tantivy-svc, tantivy-tolerant, inproc or feedhead.
        #[arg(long, default_value = "tantivy")]
        mode: String,
        #[arg(long)]
        index: Option<PathBuf>,
        #[arg(long)]
        db: Option<PathBuf>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Seconds.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
    },
    /// Raw SQLite row + tantivy commit per write.
    WriteRef {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
    },
    /// Single-note writes through the API.
    WriteLoad {
        #[arg(long)]
        addr: String,
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        #[arg(long, default_value = "w")]
        tag: String,
    },
    /// Plain object_store (raw) or the service's Blobs (inproc) put/get.
    StorageRef {
        /// file://DIR or s3://BUCKET.
        #[arg(long)]
        store: String,
        #[arg(long)]
        s3_endpoint: Option<String>,
        #[arg(long)]
        s3_key: Option<String>,
        #[arg(long)]
        s3_secret: Option<String>,
        #[arg(long, default_value = "raw")]
        mode: String,
        #[arg(long)]
        file: PathBuf,
        #[arg(long, default_value_t = 1)]
        count: usize,
    },
    /// Attachments through the API.
    StorageHttp {
        #[arg(long)]
        addr: String,
        /// upload, download or delete.
        #[arg(long)]
        op: String,
        #[arg(long)]
        note: Option<String>,
        #[arg(long)]
        file: Option<PathBuf>,
        #[arg(long, default_value_t = 1)]
        count: usize,
        /// How an upload carries the file.
        #[arg(long, value_enum, default_value = "raw")]
        form: storage::Form,
        /// Comma-separated attachment ids.
        #[arg(long, value_delimiter = ',')]
        ids: Vec<String>,
    },
    /// POST jobs to the service.
    JobsEnqueue {
        #[arg(long)]
        addr: String,
        #[arg(long, default_value_t = 10_000)]
        jobs: u64,
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Jobs per second (0: as fast as possible).
        #[arg(long, default_value_t = 0.0)]
        rate: f64,
    },
    /// Known-item relevance on the real-text corpus (issue #22).
    Relevance {
        #[arg(long)]
        corpus: PathBuf,
        /// The service to ask (its defaults).
        #[arg(long)]
        addr: Option<String>,
        /// The raw tantivy index of the same notes (BM25 and fuzzy references).
        #[arg(long)]
        index: Option<PathBuf>,
        /// A Meilisearch holding the same notes.
        #[arg(long)]
        meili: Option<String>,
        #[arg(long, default_value = "notes")]
        meili_index: String,
        #[arg(long, default_value_t = 300)]
        targets: usize,
        #[arg(long, default_value_t = RELEVANCE_SEED)]
        seed: u64,
        #[arg(long)]
        items_out: Option<PathBuf>,
    },
    /// The typo, as-you-type, mixed and suggest query files (speed).
    TolerantMixes {
        #[arg(long)]
        corpus: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 2000)]
        items: usize,
        #[arg(long, default_value_t = RELEVANCE_SEED ^ 0xA5A5)]
        seed: u64,
    },
    /// Every benchmark (what bench/run.sh calls).
    Run(Box<run::RunArgs>),
}

pub const RELEVANCE_SEED: u64 = 20_261_204;

fn print(v: &serde_json::Value) {
    println!("{v}");
}

/// Posts each NDJSON file in turn, as a client importing a corpus would.
fn http_ingest(addr: &str, files: &[PathBuf]) -> Result<serde_json::Value> {
    let bodies: Vec<Vec<u8>> = files
        .iter()
        .map(std::fs::read)
        .collect::<std::io::Result<_>>()?;
    let bytes: usize = bodies.iter().map(Vec::len).sum();
    let started = Instant::now();
    let (mut received, mut created, mut server_ms) = (0u64, 0u64, 0u64);
    for (file, body) in files.iter().zip(&bodies) {
        let r = client::request(
            addr,
            "POST",
            "/api/v1/ingest",
            Some("application/x-ndjson"),
            body,
            Duration::from_secs(600),
        )?;
        if r.status != 200 {
            bail!(
                "{}: HTTP {}: {}",
                file.display(),
                r.status,
                String::from_utf8_lossy(&r.body[..r.body.len().min(500)])
            );
        }
        let v = r.json()?;
        received += v["received"].as_u64().unwrap_or(0);
        created += v["created"].as_u64().unwrap_or(0);
        server_ms += v["took_ms"].as_u64().unwrap_or(0);
    }
    let secs = started.elapsed().as_secs_f64();
    Ok(json!({
        "requests": files.len(),
        "bytes": bytes,
        "received": received,
        "created": created,
        "secs": secs,
        "notes_per_s": received as f64 / secs,
        "server_took_ms_sum": server_ms,
    }))
}

fn main() -> Result<()> {
    let rt = || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    };
    match Cli::parse().cmd {
        Cmd::Gen {
            corpus,
            notes,
            seed,
        } => {
            let mut p = corpus::Params::default();
            p.notes = notes.unwrap_or(p.notes);
            p.seed = seed.unwrap_or(p.seed);
            print(&corpus::generate(&corpus, &p)?);
        }
        Cmd::GenReal { corpus, notes } => {
            let mut p = real::Params::default();
            p.notes = notes.unwrap_or(p.notes);
            print(&real::generate(&corpus, &p)?);
        }
        Cmd::TantivyBuild { index, files } => print(&tantivy_ref::build(&index, &files)?),
        Cmd::RawIngest {
            db,
            mode,
            index,
            files,
        } => print(&rt()?.block_on(refs::raw_ingest(&db, &files, &mode, index.as_deref()))?),
        Cmd::InprocIngest { db, files } => {
            print(&rt()?.block_on(refs::inproc_ingest(&db, &files))?)
        }
        Cmd::HttpIngest { addr, files } => print(&http_ingest(&addr, &files)?),
        Cmd::SearchRef {
            queries,
            mode,
            index,
            db,
            data_dir,
            concurrency,
            duration,
        } => print(&rt()?.block_on(refs::search_ref(
            db.as_deref(),
            index.as_deref(),
            data_dir.as_deref(),
            &queries,
            &mode,
            concurrency,
            Duration::from_secs_f64(duration),
        ))?),
        Cmd::WriteRef { dir, duration } => print(&rt()?.block_on(tantivy_ref::write_ref(
            &dir,
            Duration::from_secs_f64(duration),
        ))?),
        Cmd::WriteLoad {
            addr,
            concurrency,
            duration,
            tag,
        } => print(&writes::write_load(
            &addr,
            concurrency,
            Duration::from_secs_f64(duration),
            &tag,
        )?),
        Cmd::StorageRef {
            store,
            s3_endpoint,
            s3_key,
            s3_secret,
            mode,
            file,
            count,
        } => {
            let target = storage::Target {
                url: store,
                endpoint: s3_endpoint,
                key_id: s3_key,
                secret: s3_secret,
            };
            print(&rt()?.block_on(storage::storage_ref(&target, &file, count, &mode))?);
        }
        Cmd::StorageHttp {
            addr,
            op,
            note,
            file,
            count,
            form,
            ids,
        } => print(&storage::storage_http(
            &addr,
            &op,
            form,
            note.as_deref().unwrap_or_default(),
            &file.unwrap_or_default(),
            count,
            &ids,
        )?),
        Cmd::JobsEnqueue {
            addr,
            jobs,
            concurrency,
            rate,
        } => print(&jobload::enqueue(&addr, jobs, concurrency, rate)?),
        Cmd::Relevance {
            corpus,
            addr,
            index,
            meili,
            meili_index,
            targets,
            seed,
            items_out,
        } => print(&relevance::relevance(&relevance::Args {
            corpus: &corpus,
            targets,
            seed,
            addr: addr.as_deref(),
            index: index.as_deref(),
            meili: meili.as_deref(),
            meili_index: &meili_index,
            items_out: items_out.as_deref(),
        })?),
        Cmd::TolerantMixes {
            corpus,
            out,
            items,
            seed,
        } => print(&relevance::mixes(&corpus, &out, items, seed)?),
        Cmd::Run(args) => run::run(*args)?,
    }
    Ok(())
}
