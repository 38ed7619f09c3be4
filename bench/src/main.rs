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
//!                          [--file F --count 1] [--ids ID,ID]
//! notes-bench jobs-enqueue --addr HOST:PORT --jobs N [--concurrency 16] [--rate JOBS_PER_S]
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
mod run;
mod stats;
mod storage;
mod svc;
mod tantivy_ref;
mod writes;

use std::{
    collections::HashMap,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde_json::json;

/// `--key value` options and positional arguments.
pub struct Args {
    opts: HashMap<String, String>,
    pub rest: Vec<String>,
}

impl Args {
    fn parse(raw: impl Iterator<Item = String>) -> Result<Self> {
        let (mut opts, mut rest) = (HashMap::new(), Vec::new());
        let mut it = raw.peekable();
        while let Some(a) = it.next() {
            if let Some(key) = a.strip_prefix("--") {
                let value = it
                    .next()
                    .with_context(|| format!("--{key} needs a value"))?;
                opts.insert(key.to_owned(), value);
            } else {
                rest.push(a);
            }
        }
        Ok(Self { opts, rest })
    }
    pub fn get(&self, key: &str) -> Option<&str> {
        self.opts.get(key).map(String::as_str)
    }
    pub fn req(&self, key: &str) -> Result<&str> {
        self.get(key)
            .with_context(|| format!("--{key} is required"))
    }
    pub fn path(&self, key: &str) -> Result<PathBuf> {
        Ok(PathBuf::from(self.req(key)?))
    }
    pub fn num<T: std::str::FromStr>(&self, key: &str, default: T) -> Result<T> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| anyhow::anyhow!("--{key}: not a number: {v}")),
        }
    }
    fn files(&self) -> Vec<PathBuf> {
        self.rest.iter().map(PathBuf::from).collect()
    }
}

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
    let mut raw = std::env::args().skip(1);
    let Some(cmd) = raw.next() else {
        bail!(
            "usage: notes-bench gen|gen-real|tantivy-build|raw-ingest|inproc-ingest|http-ingest|search-ref|write-load|storage-ref|storage-http|jobs-enqueue|run ... (see src/main.rs)"
        );
    };
    let args = Args::parse(raw)?;
    let rt = || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    };
    match cmd.as_str() {
        "gen" => {
            let mut p = corpus::Params::default();
            p.notes = args.num("notes", p.notes)?;
            p.seed = args.num("seed", p.seed)?;
            print(&corpus::generate(&args.path("corpus")?, &p)?);
        }
        "gen-real" => {
            let mut p = real::Params::default();
            p.notes = args.num("notes", p.notes)?;
            print(&real::generate(&args.path("corpus")?, &p)?);
        }
        "tantivy-build" => print(&tantivy_ref::build(&args.path("index")?, &args.files())?),
        "raw-ingest" => {
            let db = args.path("db")?;
            let mode = args.get("mode").unwrap_or("multirow").to_owned();
            let index = args.get("index").map(PathBuf::from);
            print(&rt()?.block_on(refs::raw_ingest(
                &db,
                &args.files(),
                &mode,
                index.as_deref(),
            ))?);
        }
        "inproc-ingest" => {
            let db = args.path("db")?;
            print(&rt()?.block_on(refs::inproc_ingest(&db, &args.files()))?);
        }
        "http-ingest" => print(&http_ingest(args.req("addr")?, &args.files())?),
        "search-ref" => {
            let queries = args.path("queries")?;
            let mode = args.get("mode").unwrap_or("tantivy").to_owned();
            let conc = args.num("concurrency", 8usize)?;
            let dur = Duration::from_secs_f64(args.num("duration", 10.0)?);
            let (db, index, data) = (
                args.get("db").map(PathBuf::from),
                args.get("index").map(PathBuf::from),
                args.get("data-dir").map(PathBuf::from),
            );
            print(&rt()?.block_on(refs::search_ref(
                db.as_deref(),
                index.as_deref(),
                data.as_deref(),
                &queries,
                &mode,
                conc,
                dur,
            ))?);
        }
        "write-ref" => print(&rt()?.block_on(tantivy_ref::write_ref(
            &args.path("dir")?,
            Duration::from_secs_f64(args.num("duration", 10.0)?),
        ))?),
        "write-load" => print(&writes::write_load(
            args.req("addr")?,
            args.num("concurrency", 4usize)?,
            Duration::from_secs_f64(args.num("duration", 10.0)?),
            args.get("tag").unwrap_or("w"),
        )?),
        "storage-ref" => {
            let target = storage::Target {
                url: args.req("store")?.to_owned(),
                endpoint: args.get("s3-endpoint").map(str::to_owned),
                key_id: args.get("s3-key").map(str::to_owned),
                secret: args.get("s3-secret").map(str::to_owned),
            };
            let mode = args.get("mode").unwrap_or("raw").to_owned();
            let count = args.num("count", 1usize)?;
            print(&rt()?.block_on(storage::storage_ref(
                &target,
                &args.path("file")?,
                count,
                &mode,
            ))?);
        }
        "storage-http" => {
            let ids: Vec<String> = args
                .get("ids")
                .map(|s| s.split(',').map(str::to_owned).collect())
                .unwrap_or_default();
            print(&storage::storage_http(
                args.req("addr")?,
                args.req("op")?,
                args.get("note").unwrap_or_default(),
                &args.path("file").unwrap_or_default(),
                args.num("count", 1usize)?,
                &ids,
            )?);
        }
        "jobs-enqueue" => print(&jobload::enqueue(
            args.req("addr")?,
            args.num("jobs", 10_000u64)?,
            args.num("concurrency", 16usize)?,
            args.num("rate", 0.0f64)?,
        )?),
        "run" => run::run(&args)?,
        other => bail!("unknown subcommand {other:?}"),
    }
    Ok(())
}
