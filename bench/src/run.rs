//! `notes-bench run`: every benchmark, each figure against a reference
//! measured in the same run, written to `results/latest.json` and
//! `results/summary.md`.
//!
//! One file per benchmark under `run/` (each an `impl Ctx` block), the
//! context they share (`ctx`), the corpora and data dirs (`data`), the
//! backends (`backend`), the knobs (`settings`) and the report (`report`).

use std::{fs, path::PathBuf, time::Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value, json};

use crate::corpus;

mod backend;
mod ctx;
mod data;
mod healthz;
mod ingest;
mod jobs;
mod memory;
mod relevance;
mod report;
mod search;
mod settings;
mod startup;
mod storage;
mod writes;

use backend::Backend;
use ctx::Ctx;
use settings::Settings;

const ALL: [&str; 12] = [
    "healthz",
    "ingest",
    "search",
    "memory",
    "startup",
    "writes",
    "ingest-pg",
    "search-pg",
    "storage",
    "jobs",
    "relevance",
    "search-tolerant",
];

/// Benchmarks that run only when named (`bench/run.sh search-1m`): they
/// take long. search-1m generates and ingests 1,000,000 notes first (about
/// 1 GB of NDJSON), reused by later runs.
const OPTIONAL: [&str; 1] = ["search-1m"];

/// The options of `notes-bench run` (bench/run.sh passes the paths).
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The notes-api binary under test.
    #[arg(long)]
    pub service_bin: PathBuf,
    /// The bare axum hello-world reference (bench/src/bin/hello.rs).
    #[arg(long)]
    pub hello_bin: PathBuf,
    /// The synthetic corpus (generated when missing or stale).
    #[arg(long)]
    pub corpus: PathBuf,
    /// The real-text corpus [default: corpus-real beside --corpus].
    #[arg(long)]
    pub real_corpus: Option<PathBuf>,
    /// Data dirs, logs, reference indexes.
    #[arg(long)]
    pub work: PathBuf,
    /// The wrk scripts.
    #[arg(long)]
    pub lua: PathBuf,
    /// Where latest.json and summary.md are written.
    #[arg(long)]
    pub results: PathBuf,
    /// The service's source tree (its commit goes into the results).
    #[arg(long, default_value = "..")]
    pub source: String,
    #[command(flatten)]
    pub set: Settings,
}

fn abs(p: PathBuf) -> Result<PathBuf> {
    fs::canonicalize(&p).with_context(|| format!("{} does not exist", p.display()))
}

pub fn run(args: RunArgs) -> Result<()> {
    let only: Vec<String> = match args.set.only.as_str() {
        "" | "all" => ALL.iter().map(|s| s.to_string()).collect(),
        list => list.split(',').map(|s| s.trim().to_owned()).collect(),
    };
    for o in &only {
        if !ALL.contains(&o.as_str()) && !OPTIONAL.contains(&o.as_str()) {
            bail!("unknown benchmark {o:?}; one of {ALL:?} or {OPTIONAL:?}");
        }
    }
    fs::create_dir_all(args.work.join("logs"))?;
    fs::create_dir_all(&args.results)?;
    let corpus_desc = corpus::generate(&args.corpus, &corpus::Params::default())?;
    let real_corpus = args
        .real_corpus
        .unwrap_or_else(|| args.corpus.with_file_name("corpus-real"));
    let mut ctx = Ctx {
        real_corpus,
        real_desc: None,
        service: abs(args.service_bin)?,
        hello: abs(args.hello_bin)?,
        me: std::env::current_exe()?,
        corpus: abs(args.corpus)?,
        work: abs(args.work)?,
        lua: abs(args.lua)?,
        set: args.set,
        figures: Vec::new(),
        details: Map::new(),
        corpus_desc,
        current: String::new(),
    };
    let service_version = ctx.service_version()?;
    let started = Instant::now();
    for b in &only {
        eprintln!(
            "== {b} ({:.0} s into the run)",
            started.elapsed().as_secs_f64()
        );
        let t = Instant::now();
        let load_before = report::loadavg();
        ctx.current = b.clone();
        match b.as_str() {
            "healthz" => ctx.healthz()?,
            "ingest" => ctx.ingest(Backend::Sqlite)?,
            "search" => ctx.search(Backend::Sqlite)?,
            "ingest-pg" => ctx.ingest(Backend::Postgres)?,
            "search-pg" => ctx.search(Backend::Postgres)?,
            "storage" => ctx.storage()?,
            "memory" => ctx.memory()?,
            "startup" => ctx.startup()?,
            "writes" => ctx.writes()?,
            "search-1m" => ctx.search_1m()?,
            "jobs" => ctx.jobs()?,
            "relevance" => ctx.relevance()?,
            "search-tolerant" => ctx.search_tolerant()?,
            _ => unreachable!(),
        }
        eprintln!("   {b} took {:.0} s", t.elapsed().as_secs_f64());
        // Other work on the machine skews every figure: keep the load next to them.
        if let Some(d) = ctx
            .details
            .get_mut(b.as_str())
            .and_then(Value::as_object_mut)
        {
            d.insert("loadavg".into(), json!({"before": load_before, "after": report::loadavg(), "secs": t.elapsed().as_secs_f64()}));
            d.insert("run_at".into(), json!(report::now()));
        }
    }
    report::write(
        &mut ctx,
        &only,
        &args.results,
        &args.source,
        service_version,
        started,
    )
}
