//! `notes-bench run`: every benchmark, each figure against a reference
//! measured in the same run, written to `results/latest.json` and
//! `results/summary.md`.

use std::{
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::{
    Args, client, corpus,
    procs::{self, Spec},
    stats, storage,
};

mod jobs;

const SERVICE_ADDR: &str = "127.0.0.1:18080";
const HELLO_ADDR: &str = "127.0.0.1:18099";
const S3_ADDR: &str = "127.0.0.1:18090";
const ALL: [&str; 10] = [
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
];

/// Benchmarks that run only when named (`bench/run.sh search-1m`): they
/// take long. search-1m generates and ingests 1,000,000 notes first (about
/// 1 GB of NDJSON), reused by later runs.
const OPTIONAL: [&str; 1] = ["search-1m"];

/// A corpus and the service data dir it is ingested into.
#[derive(Clone)]
struct CorpusSet {
    label: &'static str,
    dir: PathBuf,
    desc: Value,
    /// The data dir's name under the work dir (a backend suffix is added).
    data: String,
}

/// The NDJSON batches of a corpus directory, in order.
fn batches_in(dir: &Path) -> Result<Vec<String>> {
    let mut files: Vec<String> = fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("batch-") && n.ends_with(".ndjson"))
        })
        .map(|p| p.display().to_string())
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("no batch-*.ndjson in {}", dir.display());
    }
    Ok(files)
}

/// The database behind the service: the embedded SQLite file or the local
/// PostgreSQL server (a database created for the run, dropped and created
/// again before each ingest).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// Where the bench creates its PostgreSQL databases (BENCH_PG_URL).
fn pg_admin() -> String {
    std::env::var("BENCH_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432/postgres".into())
}

impl Backend {
    /// Appended to figure ids, data dirs and logs ("" for SQLite, so the
    /// existing figures keep their ids).
    fn suffix(self) -> &'static str {
        match self {
            Backend::Sqlite => "",
            Backend::Postgres => "_pg",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }

    /// The URL of database `name` on the bench's PostgreSQL server.
    fn pg_url(name: &str) -> String {
        let admin = pg_admin();
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        format!("{base}/{name}")
    }

    /// The service's environment for a database named after `name`.
    fn env(self, name: &str) -> Vec<(&'static str, String)> {
        match self {
            Backend::Sqlite => vec![],
            Backend::Postgres => vec![("NOTES_DATABASE_URL", Self::pg_url(name))],
        }
    }
}

/// Drops and creates database `name` (psql, on the admin URL).
fn fresh_pg_db(name: &str) -> Result<()> {
    let out = Command::new("psql")
        .args([
            pg_admin().as_str(),
            "-v",
            "ON_ERROR_STOP=1",
            "-qc",
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            "-c",
            &format!("CREATE DATABASE {name}"),
        ])
        .output()
        .context("running psql (PostgreSQL client)")?;
    if !out.status.success() {
        bail!(
            "psql: creating database {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Notes in database `name`, if it answers.
fn pg_count(name: &str) -> Option<u64> {
    let out = Command::new("psql")
        .args([
            Backend::pg_url(name).as_str(),
            "-tAc",
            "SELECT count(*) FROM notes",
        ])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// The database the 100k-note corpus is ingested into on PostgreSQL.
const PG_100K: &str = "notes_bench_100k";
/// The database the raw and in-process PostgreSQL ingest references write.
const PG_REF: &str = "notes_bench_ref";

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Debug, Clone, Serialize)]
struct Settings {
    wrk_threads: u32,
    healthz_connections: u32,
    healthz_duration_s: u32,
    search_connections: u32,
    search_duration_s: u32,
    search_aux_duration_s: u32,
    ingest_reps: u32,
    /// PostgreSQL ingests take about 3x longer: fewer reps keep the
    /// benchmark near 5 minutes.
    ingest_pg_reps: u32,
    startup_runs: u32,
    startup_poll_ms: u64,
    writes_duration_s: u32,
    writes_search_connections: u32,
    pin: bool,
    notes_log: String,
    jobs_backends: String,
    jobs_count: u64,
    jobs_concurrency: usize,
    jobs_workers: usize,
    jobs_paced_rate: f64,
    jobs_paced_secs: f64,
    jobs_idle_secs: f64,
    jobs_pg: String,
    jobs_redis: String,
    jobs_redis_db: u32,
}

impl Settings {
    fn from_env() -> Self {
        Self {
            wrk_threads: env_or("BENCH_WRK_THREADS", 2),
            healthz_connections: env_or("BENCH_HEALTHZ_CONNECTIONS", 64),
            healthz_duration_s: env_or("BENCH_HEALTHZ_DURATION", 10),
            search_connections: env_or("BENCH_SEARCH_CONNECTIONS", 8),
            search_duration_s: env_or("BENCH_SEARCH_DURATION", 10),
            search_aux_duration_s: env_or("BENCH_SEARCH_AUX_DURATION", 5),
            ingest_reps: env_or("BENCH_INGEST_REPS", 3),
            ingest_pg_reps: env_or("BENCH_INGEST_PG_REPS", 2),
            startup_runs: env_or("BENCH_STARTUP_RUNS", 15),
            startup_poll_ms: env_or("BENCH_STARTUP_POLL_MS", 2),
            writes_duration_s: env_or("BENCH_WRITES_DURATION", 10),
            writes_search_connections: env_or("BENCH_WRITES_SEARCH_CONNECTIONS", 4),
            pin: env_or::<u8>("BENCH_PIN", 1) == 1,
            notes_log: std::env::var("BENCH_NOTES_LOG").unwrap_or_else(|_| "warn".into()),
            jobs_backends: std::env::var("BENCH_JOBS_BACKENDS")
                .unwrap_or_else(|_| "sqlite,postgres,redis".into()),
            jobs_count: env_or("BENCH_JOBS_COUNT", 10_000),
            jobs_concurrency: env_or("BENCH_JOBS_CONCURRENCY", 16),
            jobs_workers: env_or("BENCH_JOBS_WORKERS", 4),
            jobs_paced_rate: env_or("BENCH_JOBS_PACED_RATE", 50.0),
            jobs_paced_secs: env_or("BENCH_JOBS_PACED_SECS", 10.0),
            jobs_idle_secs: env_or("BENCH_JOBS_IDLE_SECS", 30.0),
            jobs_pg: std::env::var("BENCH_JOBS_PG")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into()),
            jobs_redis: std::env::var("BENCH_JOBS_REDIS")
                .unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
            jobs_redis_db: env_or("BENCH_JOBS_REDIS_DB", 13),
        }
    }
}

/// One line of the results table.
#[derive(Debug, Clone, Serialize)]
struct Figure {
    id: String,
    name: String,
    value: f64,
    unit: String,
    /// e.g. ">= 20000" or "<= 2.5 (ratio)".
    target: String,
    pass: Option<bool>,
    reference: String,
    reference_value: Option<f64>,
    /// value / reference_value.
    ratio: Option<f64>,
    commands: Vec<String>,
}

struct Ctx {
    service: PathBuf,
    hello: PathBuf,
    me: PathBuf,
    corpus: PathBuf,
    work: PathBuf,
    lua: PathBuf,
    set: Settings,
    /// Figures as written to latest.json (each with its `benchmark`).
    figures: Vec<Value>,
    details: Map<String, Value>,
    corpus_desc: Value,
    /// The real-text corpus: where, and its description once generated.
    real_corpus: PathBuf,
    real_desc: Option<Value>,
    /// The benchmark running now.
    current: String,
}

fn abs(p: PathBuf) -> Result<PathBuf> {
    fs::canonicalize(&p).with_context(|| format!("{} does not exist", p.display()))
}

pub fn run(args: &Args) -> Result<()> {
    let only: Vec<String> = match args.get("only").filter(|s| !s.is_empty() && *s != "all") {
        Some(list) => list.split(',').map(|s| s.trim().to_owned()).collect(),
        None => ALL.iter().map(|s| s.to_string()).collect(),
    };
    for o in &only {
        if !ALL.contains(&o.as_str()) && !OPTIONAL.contains(&o.as_str()) {
            bail!("unknown benchmark {o:?}; one of {ALL:?} or {OPTIONAL:?}");
        }
    }
    let work = args.path("work")?;
    fs::create_dir_all(work.join("logs"))?;
    let results = args.path("results")?;
    fs::create_dir_all(&results)?;
    let corpus_dir = args.path("corpus")?;
    let corpus_desc = corpus::generate(&corpus_dir, &corpus::Params::default())?;
    let real_corpus = match args.get("real-corpus") {
        Some(p) => PathBuf::from(p),
        None => corpus_dir.with_file_name("corpus-real"),
    };
    let mut ctx = Ctx {
        real_corpus,
        real_desc: None,
        service: abs(args.path("service-bin")?)?,
        hello: abs(args.path("hello-bin")?)?,
        me: std::env::current_exe()?,
        corpus: abs(corpus_dir)?,
        work: abs(work)?,
        lua: abs(args.path("lua")?)?,
        set: Settings::from_env(),
        figures: Vec::new(),
        details: Map::new(),
        corpus_desc,
        current: String::new(),
    };
    let service_version = ctx.service_version()?;
    let source = args.get("source").unwrap_or("..").to_owned();
    let started = Instant::now();
    for b in &only {
        eprintln!(
            "== {b} ({:.0} s into the run)",
            started.elapsed().as_secs_f64()
        );
        let t = Instant::now();
        let load_before = loadavg();
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
            _ => unreachable!(),
        }
        eprintln!("   {b} took {:.0} s", t.elapsed().as_secs_f64());
        // Other work on the machine skews every figure: keep the load next to them.
        if let Some(d) = ctx
            .details
            .get_mut(b.as_str())
            .and_then(Value::as_object_mut)
        {
            d.insert("loadavg".into(), json!({"before": load_before, "after": loadavg(), "secs": t.elapsed().as_secs_f64()}));
            d.insert("run_at".into(), json!(now()));
        }
    }
    let git = git_describe(&source);
    for d in ctx.details.values_mut() {
        if let Some(d) = d.as_object_mut() {
            d.insert("service_git".into(), json!(git));
        }
    }
    // A partial run (--only) replaces its own benchmarks' figures and keeps
    // the others from the previous latest.json, so the file always holds the
    // latest figure of every benchmark (each with its own run_at and load).
    let (mut figures, mut details) = (Vec::new(), Map::new());
    if !ALL.iter().all(|a| only.iter().any(|o| o == a))
        && let Ok(text) = fs::read_to_string(results.join("latest.json"))
        && let Ok(prev) = serde_json::from_str::<Value>(&text)
    {
        for fig in prev["figures"].as_array().into_iter().flatten() {
            let b = fig["benchmark"].as_str().unwrap_or_default();
            if !only.iter().any(|o| o == b) {
                figures.push(fig.clone());
            }
        }
        for (k, v) in prev["details"].as_object().into_iter().flatten() {
            if !only.contains(k) {
                details.insert(k.clone(), v.clone());
            }
        }
    }
    figures.extend(ctx.figures.iter().cloned());
    let order = |f: &Value| {
        ALL.iter()
            .chain(OPTIONAL.iter())
            .position(|b| f["benchmark"] == *b)
            .unwrap_or(ALL.len() + OPTIONAL.len())
    };
    figures.sort_by_key(order);
    details.extend(ctx.details.clone());
    let doc = json!({
        "generated_at": now(),
        "benchmarks_run": only,
        "total_secs": started.elapsed().as_secs_f64(),
        "machine": machine(),
        "service": {
            "binary": ctx.service,
            "version": service_version,
            "source": source,
            "git": git,
        },
        "settings": ctx.set,
        "corpus": ctx.corpus_desc,
        "corpus_real": ctx.real_desc.clone().or_else(|| prev_real(&results)),
        "figures": figures,
        "details": details,
    });
    fs::write(
        results.join("latest.json"),
        serde_json::to_string_pretty(&doc)? + "\n",
    )?;
    let summary = summary(&doc);
    fs::write(results.join("summary.md"), &summary)?;
    println!("{summary}");
    Ok(())
}

/// The real corpus' description from the last latest.json, for runs that
/// did not touch it.
fn prev_real(results: &Path) -> Option<Value> {
    let text = fs::read_to_string(results.join("latest.json")).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    v.get("corpus_real").filter(|v| !v.is_null()).cloned()
}

fn now() -> String {
    use notes_api::domain::note::timestamp;
    timestamp::format(&timestamp::now())
}

fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_owned()
}

fn sh(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| {
            let mut s = String::from_utf8_lossy(&o.stdout).trim().to_owned();
            if s.is_empty() {
                s = String::from_utf8_lossy(&o.stderr).trim().to_owned();
            }
            s
        })
        .unwrap_or_default()
}

fn machine() -> Value {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_default();
    let mem = fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu_model": model,
        "memory": mem,
        "kernel": sh("uname", &["-sr"]),
        "rustc": sh("rustc", &["-V"]),
        "wrk": sh("wrk", &["-v"]).lines().next().unwrap_or_default(),
        "loadavg_at_end": fs::read_to_string("/proc/loadavg").unwrap_or_default().trim(),
    })
}

/// The commit of the source tree the service was built from, `+dirty` when
/// the service's own files differ from it.
fn git_describe(source: &str) -> String {
    let sha = sh("git", &["-C", source, "rev-parse", "--short", "HEAD"]);
    let status = sh(
        "git",
        &[
            "-C",
            source,
            "status",
            "--porcelain",
            "--",
            "src",
            "migrations",
            "Cargo.toml",
            "Cargo.lock",
        ],
    );
    if sha.contains(' ') || sha.is_empty() {
        "unknown (not a git checkout)".into()
    } else if status.is_empty() {
        sha
    } else {
        format!("{sha}+dirty")
    }
}

fn f(v: &Value, path: &[&str]) -> f64 {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_f64().unwrap_or(f64::NAN)
}

impl Ctx {
    fn log(&self, name: &str) -> PathBuf {
        self.work.join("logs").join(format!("{name}.log"))
    }

    fn service_spec(
        &self,
        data_dir: &Path,
        cpus: Option<&str>,
        extra: &[(&str, String)],
        log: &str,
    ) -> Spec {
        let mut env = vec![
            ("NOTES_LISTEN".to_owned(), SERVICE_ADDR.to_owned()),
            ("NOTES_DATA_DIR".to_owned(), data_dir.display().to_string()),
            ("NOTES_LOG".to_owned(), self.set.notes_log.clone()),
        ];
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
        Spec {
            program: self.service.clone(),
            args: vec!["serve".into()],
            env,
            cpus: cpus.map(str::to_owned),
            addr: SERVICE_ADDR.into(),
            log: self.log(log),
        }
    }

    /// What the binary under test says it is (GET /version).
    fn service_version(&self) -> Result<Value> {
        let data = self.work.join("data-version");
        procs::fresh_dir(&data)?;
        let mut s = self
            .service_spec(&data, None, &[], "service-version")
            .spawn()?;
        s.wait_ready(
            "/healthz",
            Duration::from_millis(5),
            Duration::from_secs(10),
        )?;
        let v = client::get(SERVICE_ADDR, "/version", Duration::from_secs(5))?.json()?;
        s.stop()?;
        Ok(v)
    }

    fn hello_spec(&self, cpus: Option<&str>) -> Spec {
        Spec {
            program: self.hello.clone(),
            args: vec![HELLO_ADDR.into()],
            env: vec![],
            cpus: cpus.map(str::to_owned),
            addr: HELLO_ADDR.into(),
            log: self.log("hello"),
        }
    }

    /// Runs wrk; returns its JSON summary and the exact command.
    #[allow(clippy::too_many_arguments)]
    fn wrk(
        &self,
        cpus: Option<&str>,
        connections: u32,
        duration_s: u32,
        script: &str,
        url: &str,
        script_args: &[String],
        log: &str,
    ) -> Result<(Value, String)> {
        let mut argv: Vec<String> = Vec::new();
        if let Some(c) = cpus {
            argv.extend(["taskset".into(), "-c".into(), c.into()]);
        }
        argv.extend([
            "wrk".into(),
            format!("-t{}", self.set.wrk_threads),
            format!("-c{connections}"),
            format!("-d{duration_s}s"),
            "--latency".into(),
            "--timeout".into(),
            "10s".into(),
            "-s".into(),
            self.lua.join(script).display().to_string(),
            url.into(),
        ]);
        if !script_args.is_empty() {
            argv.push("--".into());
            argv.extend(script_args.iter().cloned());
        }
        let command = argv.join(" ");
        let out = Command::new(&argv[0])
            .args(&argv[1..])
            .output()
            .with_context(|| format!("running {command}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        fs::write(
            self.log(log),
            format!(
                "$ {command}\n{stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            ),
        )?;
        if !out.status.success() {
            bail!("{command} failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix("BENCH_JSON "))
            .with_context(|| format!("no BENCH_JSON line from {command}"))?;
        let mut v: Value = serde_json::from_str(line)?;
        let secs = f(&v, &["duration_us"]) / 1e6;
        let rps = f(&v, &["requests"]) / secs;
        v["rps"] = json!(rps);
        // Non-2xx answers or broken connections make the figure meaningless;
        // timeouts (over 10 s) are counted and reported with it.
        let errors: f64 = ["connect", "read", "write", "status"]
            .iter()
            .map(|k| f(&v, &["errors", k]))
            .sum();
        if errors > 0.0 || f(&v, &["requests"]) < 1.0 {
            bail!("{command}: {errors} errors: {}", v["errors"]);
        }
        Ok((v, command))
    }

    /// Runs this binary's subcommand in its own process; returns its JSON
    /// and the exact command.
    fn sub(&self, args: &[String]) -> Result<(Value, String)> {
        let command = format!("{} {}", self.me.display(), args.join(" "));
        let out = Command::new(&self.me)
            .args(args)
            .output()
            .with_context(|| format!("running {command}"))?;
        if !out.status.success() {
            bail!("{command} failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let v = serde_json::from_slice(&out.stdout)
            .with_context(|| format!("{command}: output is not JSON"))?;
        Ok((v, command))
    }

    fn push(&mut self, fig: Figure) {
        eprintln!(
            "   {}: {:.2} {} (target {}) {}",
            fig.name,
            fig.value,
            fig.unit,
            fig.target,
            match fig.pass {
                Some(true) => "PASS",
                Some(false) => "MISS",
                None => "",
            }
        );
        let mut v = serde_json::to_value(&fig).expect("a figure serializes");
        v["benchmark"] = json!(self.current);
        self.figures.push(v);
    }

    // ---------------------------------------------------------------- healthz

    fn healthz(&mut self) -> Result<()> {
        let data = self.work.join("data-healthz");
        procs::fresh_dir(&data)?;
        let (conns, dur) = (self.set.healthz_connections, self.set.healthz_duration_s);
        let mut variants = vec![("shared", None, None)];
        if self.set.pin {
            variants.insert(0, ("pinned", Some("0"), Some("1")));
        }
        let mut detail = Map::new();
        for (label, srv_cpus, wrk_cpus) in variants {
            let mut res = Map::new();
            let mut commands = Vec::new();
            for which in ["hello", "service"] {
                let spec = if which == "hello" {
                    self.hello_spec(srv_cpus)
                } else {
                    self.service_spec(&data, srv_cpus, &[], "service-healthz")
                };
                let mut server = spec.spawn()?;
                server.wait_ready(
                    "/healthz",
                    Duration::from_millis(5),
                    Duration::from_secs(10),
                )?;
                let url = format!("http://{}/healthz", spec.addr);
                // Warm-up (connections, allocator, caches), not recorded.
                self.wrk(
                    wrk_cpus,
                    conns,
                    2,
                    "report.lua",
                    &url,
                    &[],
                    &format!("wrk-healthz-warmup-{which}"),
                )?;
                let (v, cmd) = self.wrk(
                    wrk_cpus,
                    conns,
                    dur,
                    "report.lua",
                    &url,
                    &[],
                    &format!("wrk-healthz-{label}-{which}"),
                )?;
                server.stop()?;
                commands.push(spec.command_line());
                commands.push(cmd);
                res.insert(which.into(), v);
            }
            let (svc, hello) = (f(&res["service"], &["rps"]), f(&res["hello"], &["rps"]));
            let ratio = svc / hello;
            let placement = match (srv_cpus, wrk_cpus) {
                (Some(s), Some(w)) => format!("server on CPU {s}, wrk on CPU {w}"),
                _ => "server and wrk share both CPUs".into(),
            };
            self.push(Figure {
                id: format!("healthz_rps_{label}"),
                name: format!("GET /healthz req/s ({placement})"),
                value: svc,
                unit: "req/s".into(),
                target: ">= 0.70 x hello".into(),
                pass: Some(ratio >= 0.70),
                reference: "bare axum hello-world (bench/src/bin/hello.rs), same wrk settings"
                    .into(),
                reference_value: Some(hello),
                ratio: Some(ratio),
                commands,
            });
            detail.insert(label.into(), Value::Object(res));
        }
        self.details.insert("healthz".into(), Value::Object(detail));
        Ok(())
    }

    // ----------------------------------------------------------------- ingest

    fn data_100k(&self) -> PathBuf {
        self.work.join("data-100k")
    }

    /// The synthetic 100k-note corpus (the ingest, memory and start-up one).
    fn synthetic(&self) -> CorpusSet {
        CorpusSet {
            label: "synthetic",
            dir: self.corpus.clone(),
            desc: self.corpus_desc.clone(),
            data: "data-100k".into(),
        }
    }

    /// The real-text corpus (Debian's kernel and Python docs and man
    /// pages), generated on first use.
    fn real(&mut self) -> Result<CorpusSet> {
        if self.real_desc.is_none() {
            let t = Instant::now();
            let d = crate::real::generate(&self.real_corpus, &crate::real::Params::default())?;
            eprintln!(
                "   (real-text corpus ready in {:.0} s)",
                t.elapsed().as_secs_f64()
            );
            self.real_desc = Some(d);
        }
        Ok(CorpusSet {
            label: "real",
            dir: self.real_corpus.clone(),
            desc: self.real_desc.clone().unwrap_or_default(),
            data: "data-100k-real".into(),
        })
    }

    /// The synthetic corpus at 1,000,000 notes (search-1m), generated on
    /// first use.
    fn million(&self) -> Result<CorpusSet> {
        let dir = self.corpus.with_file_name("corpus-1m");
        let p = corpus::Params {
            notes: env_or("BENCH_1M_NOTES", 1_000_000),
            ..corpus::Params::default()
        };
        let t = Instant::now();
        let desc = corpus::generate(&dir, &p)?;
        eprintln!("   (1M corpus ready in {:.0} s)", t.elapsed().as_secs_f64());
        Ok(CorpusSet {
            label: "synthetic-1m",
            dir,
            desc,
            data: "data-1m".into(),
        })
    }

    fn data_of(&self, c: &CorpusSet, backend: Backend) -> PathBuf {
        self.work.join(format!("{}{}", c.data, backend.suffix()))
    }

    /// The service on the data dir of corpus `c` on `backend`.
    fn service_on(&self, c: &CorpusSet, backend: Backend, log: &str) -> Spec {
        let env = backend.env(PG_100K);
        self.service_spec(
            &self.data_of(c, backend),
            None,
            &env,
            &format!("{log}{}", backend.suffix()),
        )
    }

    /// Ingests corpus `c` over HTTP into a fresh data dir (and database);
    /// returns the client's report, the peak RSS of the server and the
    /// commands.
    fn http_ingest_once(
        &self,
        c: &CorpusSet,
        backend: Backend,
    ) -> Result<(Value, u64, Vec<String>)> {
        let data = self.data_of(c, backend);
        procs::fresh_dir(&data)?;
        if backend == Backend::Postgres {
            fresh_pg_db(PG_100K)?;
        }
        let spec = self.service_on(c, backend, &format!("service-ingest-{}", c.label));
        let mut server = spec.spawn()?;
        server.wait_ready("/readyz", Duration::from_millis(5), Duration::from_secs(60))?;
        let mut args = vec![
            "http-ingest".to_owned(),
            "--addr".into(),
            SERVICE_ADDR.into(),
        ];
        args.extend(batches_in(&c.dir)?);
        let (v, cmd) = self.sub(&args)?;
        let hwm = server.status_kb("VmHWM")?;
        server.stop()?;
        let expected = c.desc["notes"].as_u64().unwrap_or(0);
        if v["created"].as_u64() != Some(expected) {
            bail!(
                "HTTP ingest created {} notes, expected {expected}",
                v["created"]
            );
        }
        fs::write(data.join(".complete"), c.desc["params"].to_string())?;
        Ok((v, hwm, vec![spec.command_line(), cmd]))
    }

    /// The 100k-note database the service wrote, for search/memory/startup.
    fn ensure_100k(&mut self) -> Result<()> {
        let c = self.synthetic();
        self.ensure_data(&c, Backend::Sqlite).map(|_| ())
    }

    /// Makes sure the service's data dir for `c` holds the corpus (ingested
    /// over HTTP if not); returns that ingest's report when it ran.
    fn ensure_data(
        &mut self,
        c: &CorpusSet,
        backend: Backend,
    ) -> Result<Option<(Value, Vec<String>)>> {
        let marker = self.data_of(c, backend).join(".complete");
        let expected = c.desc["notes"].as_u64();
        if fs::read_to_string(&marker).ok() == Some(c.desc["params"].to_string())
            && (backend == Backend::Sqlite || pg_count(PG_100K) == expected)
        {
            return Ok(None);
        }
        eprintln!("   (ingesting the {} corpus over HTTP first)", c.label);
        let (v, _, cmds) = self.http_ingest_once(c, backend)?;
        Ok(Some((v, cmds)))
    }

    /// The raw tantivy reference index of corpus `c` (built once per corpus).
    fn ensure_tantivy(&self, c: &CorpusSet) -> Result<(PathBuf, Value, String)> {
        let dir = self.work.join(format!("tantivy-{}", c.label));
        let marker = self.work.join(format!("tantivy-{}.json", c.label));
        let mut args = vec![
            "tantivy-build".to_owned(),
            "--index".into(),
            dir.display().to_string(),
        ];
        args.extend(batches_in(&c.dir)?);
        let cmd = format!("{} {}", self.me.display(), args.join(" "));
        if let Ok(text) = fs::read_to_string(&marker)
            && let Ok(v) = serde_json::from_str::<Value>(&text)
            && v["params"] == c.desc["params"]
            && dir.join("meta.json").exists()
        {
            return Ok((dir, v["build"].clone(), cmd));
        }
        eprintln!(
            "   (building the raw tantivy index of the {} corpus)",
            c.label
        );
        let (v, cmd) = self.sub(&args)?;
        fs::write(
            &marker,
            json!({"params": c.desc["params"], "build": v}).to_string(),
        )?;
        Ok((dir, v, cmd))
    }

    /// The ingest benchmark on `backend`: the service over HTTP against raw
    /// sqlx bulk inserts of the same rows into the same schema plus raw
    /// tantivy indexing of them, in the same run.
    fn ingest(&mut self, backend: Backend) -> Result<()> {
        let c = self.synthetic();
        let files = batches_in(&c.dir)?;
        let dbdir = self.work.join("ingest");
        fs::create_dir_all(&dbdir)?;
        let mut runs: Map<String, Value> = Map::new();
        let mut cmds: Map<String, Value> = Map::new();
        let mut secs: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
        let raw_modes: &[&str] = match backend {
            Backend::Sqlite => &["multirow", "batchjson"],
            Backend::Postgres => &["pg-unnest"],
        };
        let ref_db = |name: &str| -> Result<String> {
            Ok(match backend {
                Backend::Sqlite => dbdir.join(format!("{name}.db")).display().to_string(),
                Backend::Postgres => {
                    fresh_pg_db(PG_REF)?;
                    Backend::pg_url(PG_REF)
                }
            })
        };
        let reps = match backend {
            Backend::Sqlite => self.set.ingest_reps,
            Backend::Postgres => self.set.ingest_pg_reps,
        };
        for rep in 0..reps {
            for &mode in raw_modes {
                let mut a = vec![
                    "raw-ingest".to_owned(),
                    "--db".into(),
                    ref_db(&format!("raw-{mode}"))?,
                    "--mode".into(),
                    mode.into(),
                    "--index".into(),
                    dbdir.join(format!("tantivy-{mode}")).display().to_string(),
                ];
                a.extend(files.iter().cloned());
                let (v, cmd) = self.sub(&a)?;
                let key = format!("raw_{}", mode.replace('-', "_"));
                secs.entry(key.clone()).or_default().push(f(&v, &["secs"]));
                secs.entry(format!("{key}_sql"))
                    .or_default()
                    .push(f(&v, &["sql_secs"]));
                secs.entry(format!("{key}_index"))
                    .or_default()
                    .push(f(&v, &["index_secs"]));
                push_run(&mut runs, &key, v);
                cmds.insert(key, json!(cmd));
            }
            if rep == 0 {
                let mut a = vec!["inproc-ingest".to_owned(), "--db".into(), ref_db("inproc")?];
                a.extend(files.iter().cloned());
                let (v, cmd) = self.sub(&a)?;
                secs.entry("inproc_store".into())
                    .or_default()
                    .push(f(&v, &["secs"]));
                push_run(&mut runs, "inproc_store", v);
                cmds.insert("inproc_store".into(), json!(cmd));
            }
            let (mut v, hwm, cm) = self.http_ingest_once(&c, backend)?;
            v["server_vmhwm_kb"] = json!(hwm);
            secs.entry("http".into())
                .or_default()
                .push(f(&v, &["secs"]));
            push_run(&mut runs, "http", v);
            cmds.insert("http".into(), json!(cm));
            eprintln!(
                "   rep {}: {:?}",
                rep + 1,
                secs.iter()
                    .map(|(k, v)| (k, v.last().copied().unwrap_or(0.0)))
                    .collect::<Vec<_>>()
            );
        }
        let notes = c.desc["notes"].as_f64().unwrap_or(100_000.0);
        let med: std::collections::BTreeMap<String, f64> = secs
            .iter()
            .map(|(k, v)| (k.clone(), stats::median(v)))
            .collect();
        let ref_key = if backend == Backend::Postgres {
            "raw_pg_unnest"
        } else if med["raw_batchjson"] <= med["raw_multirow"] {
            "raw_batchjson"
        } else {
            "raw_multirow"
        };
        let ref_secs = med[ref_key];
        let (sx, db) = (backend.suffix(), backend.label());
        let target = match backend {
            Backend::Sqlite => 20_000.0,
            Backend::Postgres => 10_000.0,
        };
        let http = med["http"];
        let mut commands: Vec<String> = cmds["http"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap_or_default().to_owned())
            .collect();
        commands.push(cmds[ref_key].as_str().unwrap_or_default().to_owned());
        let rate = notes / http;
        self.push(Figure {
            id: format!("ingest_http_notes_per_s{sx}"),
            name: format!(
                "Ingest over HTTP, {db}, NDJSON {}-line batches, searchable on return (median of {reps})",
                c.desc["params"]["batch"]
            ),
            value: rate,
            unit: "notes/s".into(),
            target: format!(">= {target:.0}"),
            pass: Some(rate >= target),
            reference: format!(
                "raw sqlx insert of the same rows + raw tantivy indexing, one commit each per batch ({ref_key}), notes/s"
            ),
            reference_value: Some(notes / ref_secs),
            ratio: Some(rate / (notes / ref_secs)),
            commands: commands.clone(),
        });
        self.push(Figure {
            id: format!("ingest_http_time_vs_raw{sx}"),
            name: format!("Ingest over HTTP, {db}: time / (raw sqlx + raw tantivy) time"),
            value: http / ref_secs,
            unit: "x".into(),
            target: "<= 1.5".into(),
            pass: Some(http / ref_secs <= 1.5),
            reference: format!(
                "raw reference ({ref_key}): {ref_secs:.2} s = sqlx {:.2} s + tantivy {:.2} s",
                med[&format!("{ref_key}_sql")],
                med[&format!("{ref_key}_index")]
            ),
            reference_value: Some(ref_secs),
            ratio: Some(http / ref_secs),
            commands: commands.clone(),
        });
        self.push(Figure {
            id: format!("ingest_inproc_store_notes_per_s{sx}"),
            name: format!("Ingest, {db}: the service's reader + Store::ingest in-process, no HTTP, no index (what the index adds)"),
            value: notes / med["inproc_store"],
            unit: "notes/s".into(),
            target: "(reported)".into(),
            pass: None,
            reference: "over HTTP with the index, notes/s".into(),
            reference_value: Some(rate),
            ratio: Some((notes / med["inproc_store"]) / rate),
            commands: vec![cmds["inproc_store"].as_str().unwrap_or_default().to_owned()],
        });
        self.details.insert(
            self.current.clone(),
            json!({"backend": db, "median_secs": med, "runs": runs, "commands": cmds, "reference": ref_key}),
        );
        Ok(())
    }

    // ----------------------------------------------------------------- search

    /// The search benchmark on `backend`: wrk through the service against
    /// raw tantivy in-process on the same notes and queries, same
    /// concurrency; on SQLite for both corpora, on PostgreSQL the synthetic.
    fn search(&mut self, backend: Backend) -> Result<()> {
        let mut sets = vec![self.synthetic()];
        if backend == Backend::Sqlite && env_or::<u8>("BENCH_SEARCH_REAL", 1) == 1 {
            sets.push(self.real()?);
        }
        let mut detail = Map::new();
        for c in sets {
            let d = self.search_on(&c, backend, 5.0, true)?;
            detail.insert(c.label.into(), d);
        }
        self.details
            .insert(self.current.clone(), Value::Object(detail));
        Ok(())
    }

    /// search-1m: the synthetic corpus at 1,000,000 notes on SQLite; the
    /// reference is raw tantivy on the service's own index files.
    fn search_1m(&mut self) -> Result<()> {
        let c = self.million()?;
        let t = Instant::now();
        let ingested = self.ensure_data(&c, Backend::Sqlite)?;
        let ingest_secs = t.elapsed().as_secs_f64();
        let mut d = self.search_on(&c, Backend::Sqlite, 25.0, false)?;
        if let Some((v, cmds)) = ingested {
            let notes = c.desc["notes"].as_f64().unwrap_or(0.0);
            self.push(Figure {
                id: "ingest_http_1m_notes_per_s".into(),
                name: format!("Ingest over HTTP, SQLite, 1M synthetic notes into an empty service, {} batches", c.desc["batches"]),
                value: notes / f(&v, &["secs"]),
                unit: "notes/s".into(),
                target: "(reported)".into(),
                pass: None,
                reference: "(none)".into(),
                reference_value: None,
                ratio: None,
                commands: cmds,
            });
            d["ingest"] = v;
            d["ingest_wall_secs"] = json!(ingest_secs);
        }
        self.details.insert(self.current.clone(), d);
        Ok(())
    }

    /// wrk through the service on corpus `c` against raw tantivy in
    /// process; the figures of one corpus. `own_ref`: build the bench's own
    /// tantivy index (else the reference reads the service's index files).
    fn search_on(
        &mut self,
        c: &CorpusSet,
        backend: Backend,
        p99_target: f64,
        own_ref: bool,
    ) -> Result<Value> {
        let ingested = self.ensure_data(c, backend)?;
        let data = self.data_of(c, backend);
        let db = match backend {
            Backend::Sqlite => data.join("notes.db").display().to_string(),
            Backend::Postgres => Backend::pg_url(PG_100K),
        };
        let (sx, dbl) = (backend.suffix(), backend.label());
        let notes = c.desc["notes"].as_u64().unwrap_or(0);
        let conns = self.set.search_connections;
        let dur = self.set.search_duration_s;
        let aux = self.set.search_aux_duration_s;
        let (ref_index, ref_build, ref_build_cmd) = if own_ref {
            let (d, b, cmd) = self.ensure_tantivy(c)?;
            (d, b, Some(cmd))
        } else {
            (data.join("index"), Value::Null, None)
        };
        let spec = self.service_on(c, backend, &format!("service-search-{}", c.label));
        let mut server = spec.spawn()?;
        let ready = server.wait_ready(
            "/readyz",
            Duration::from_millis(5),
            Duration::from_secs(300),
        )?;
        let url = format!("http://{SERVICE_ADDR}/");
        let paths = |k: &str| {
            c.dir
                .join(format!("queries-{k}.paths"))
                .display()
                .to_string()
        };
        let texts = |k: &str| c.dir.join(format!("queries-{k}.txt")).display().to_string();
        // Sanity: the first query of each kind answers 200 with hits.
        let mut sanity = Map::new();
        for kind in corpus::QUERY_KINDS {
            let first = fs::read_to_string(paths(kind))?
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned();
            let r = client::get(SERVICE_ADDR, &first, Duration::from_secs(10))?;
            if r.status != 200 {
                bail!("{first}: HTTP {}", r.status);
            }
            sanity.insert(
                kind.into(),
                json!({"path": first, "total": r.json()?["total"]}),
            );
        }
        let rss_kb = server.status_kb("VmRSS")?;
        self.wrk(
            None,
            conns,
            3,
            "search.lua",
            &url,
            &[paths("1term")],
            &format!("wrk-search-{}-warmup", c.label),
        )?;
        let mut http = Map::new();
        let mut wrk_cmds = Map::new();
        for kind in corpus::QUERY_KINDS {
            let (v, cmd) = self.wrk(
                None,
                conns,
                dur,
                "search.lua",
                &url,
                &[paths(kind)],
                &format!("wrk-search-{}-{kind}{sx}", c.label),
            )?;
            http.insert(kind.into(), v);
            wrk_cmds.insert(kind.into(), json!(cmd));
        }
        let rss_after_kb = server.status_kb("VmRSS")?;
        server.stop()?;
        let mut refs: Map<String, Value> = Map::new();
        let mut ref_cmds: Map<String, Value> = Map::new();
        let main_mode = if own_ref { "tantivy" } else { "tantivy-svc" };
        let mut modes: Vec<(&str, u32)> = vec![(main_mode, dur), ("inproc", aux)];
        if own_ref {
            modes.extend([
                ("tantivy-svc", aux),
                ("tantivy-nodocs", aux),
                ("tantivy-snippets", aux),
            ]);
        }
        if backend == Backend::Sqlite && !own_ref {
            modes.push(("tantivy-nodocs", aux));
        }
        for kind in corpus::QUERY_KINDS {
            for &(mode, d) in &modes {
                let index = if mode == "tantivy-svc" {
                    data.join("index")
                } else {
                    ref_index.clone()
                };
                let mut a: Vec<String> = vec![
                    "search-ref".into(),
                    "--queries".into(),
                    texts(kind),
                    "--mode".into(),
                    mode.into(),
                    "--concurrency".into(),
                    conns.to_string(),
                    "--duration".into(),
                    d.to_string(),
                ];
                if mode.starts_with("tantivy") {
                    a.extend(["--index".into(), index.display().to_string()]);
                } else {
                    a.extend([
                        "--db".into(),
                        db.clone(),
                        "--data-dir".into(),
                        data.display().to_string(),
                    ]);
                }
                let (v, cmd) = self.sub(&a)?;
                refs.entry(kind).or_insert_with(|| json!({}))[mode] = v;
                ref_cmds.entry(kind).or_insert_with(|| json!({}))[mode] = json!(cmd);
            }
        }
        // The query every search makes before it searches, alone.
        let (feedhead, feedhead_cmd) = self.sub(&[
            "search-ref".into(),
            "--queries".into(),
            texts("1term"),
            "--mode".into(),
            "feedhead".into(),
            "--concurrency".into(),
            conns.to_string(),
            "--duration".into(),
            aux.to_string(),
            "--db".into(),
            db.clone(),
            "--data-dir".into(),
            data.display().to_string(),
        ])?;
        let label = if c.label == "synthetic" {
            String::new()
        } else {
            format!("_{}", c.label.replace('-', "_"))
        };
        let cname = match c.label {
            "synthetic" => format!("synthetic {}k", notes / 1000),
            "real" => format!("real-text {}k", notes / 1000),
            _ => format!("synthetic {}M", notes / 1_000_000),
        };
        let ref_desc = if own_ref {
            "raw tantivy in-process, bench-built index of the same notes, top 20 + Count + 20 stored docs"
        } else {
            "raw tantivy in-process on the service's own index files, top 20 + Count + 20 stored docs"
        };
        for kind in corpus::QUERY_KINDS {
            let h = &http[kind];
            let r = &refs[kind][main_mode];
            let inp = &refs[kind]["inproc"];
            let p99 = f(h, &["latency_us", "p99"]) / 1000.0;
            let p50 = f(h, &["latency_us", "p50"]) / 1000.0;
            let qps = f(h, &["rps"]);
            let cmds = vec![
                spec.command_line(),
                wrk_cmds[kind].as_str().unwrap_or_default().to_owned(),
                ref_cmds[kind][main_mode]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            ];
            self.push(Figure {
                id: format!("search{label}_{kind}_p99_ms{sx}"),
                name: format!("Search {kind}, {cname}, {dbl}, HTTP, {conns} connections: p99 (p50 {p50:.2} ms; avg hits {:.0})", f(r, &["avg_total_hits"])),
                value: p99,
                unit: "ms".into(),
                target: format!("<= {p99_target}"),
                pass: Some(p99 <= p99_target),
                reference: format!("{ref_desc}, {conns} threads: p99 ms (p50 {:.2})", f(r, &["p50_ms"])),
                reference_value: Some(f(r, &["p99_ms"])),
                ratio: Some(p99 / f(r, &["p99_ms"])),
                commands: cmds.clone(),
            });
            self.push(Figure {
                id: format!("search{label}_{kind}_qps{sx}"),
                name: format!(
                    "Search {kind}, {cname}, {dbl}, HTTP, {conns} connections: queries/s"
                ),
                value: qps,
                unit: "q/s".into(),
                target: if p99_target <= 5.0 {
                    ">= 3000".into()
                } else {
                    "(reported)".into()
                },
                pass: (p99_target <= 5.0).then_some(qps >= 3000.0),
                reference: format!("{ref_desc}, {conns} threads: q/s"),
                reference_value: Some(f(r, &["qps"])),
                ratio: Some(qps / f(r, &["qps"])),
                commands: cmds,
            });
            self.push(Figure {
                id: format!("search{label}_{kind}_inproc_p99_ms{sx}"),
                name: format!(
                    "Search {kind}, {cname}, {dbl}: the service's search() in-process, no HTTP, {conns} tasks: p99 (p50 {:.2} ms, {:.0} q/s)",
                    f(inp, &["p50_ms"]), f(inp, &["qps"])
                ),
                value: f(inp, &["p99_ms"]),
                unit: "ms".into(),
                target: "(reported)".into(),
                pass: None,
                reference: "raw tantivy (the reference above): p99 ms".into(),
                reference_value: Some(f(r, &["p99_ms"])),
                ratio: Some(f(inp, &["p99_ms"]) / f(r, &["p99_ms"])),
                commands: vec![ref_cmds[kind]["inproc"].as_str().unwrap_or_default().to_owned()],
            });
        }
        Ok(json!({
            "backend": dbl, "corpus": c.label, "notes": notes, "sanity": sanity, "http": http,
            "wrk_commands": wrk_cmds, "references": refs, "reference_commands": ref_cmds,
            "reference_index": ref_index, "reference_build": ref_build, "reference_build_command": ref_build_cmd,
            "feedhead": feedhead, "feedhead_command": feedhead_cmd,
            "service_ready_ms": ready.as_secs_f64() * 1000.0,
            "service_rss_kb_before_after": [rss_kb, rss_after_kb],
            "ingested_now": ingested.map(|(v, cmds)| json!({"client": v, "commands": cmds})),
        }))
    }

    // ----------------------------------------------------------------- writes

    /// Single-note writes (POST /api/v1/notes) while wrk searches, on a copy
    /// of the 100k-note data dir: the POST returns once the note is
    /// searchable, so its latency is the write-to-searchable latency; every
    /// note is then looked up by a search.
    fn writes(&mut self) -> Result<()> {
        self.ensure_100k()?;
        let data = self.work.join("data-writes");
        procs::fresh_dir(&data)?;
        let src = self.data_100k();
        let out = Command::new("cp")
            .args([
                "-a",
                &format!("{}/.", src.display()),
                &data.display().to_string(),
            ])
            .output()?;
        if !out.status.success() {
            bail!("cp -a: {}", String::from_utf8_lossy(&out.stderr));
        }
        let spec = self.service_spec(&data, None, &[], "service-writes");
        let mut server = spec.spawn()?;
        server.wait_ready(
            "/readyz",
            Duration::from_millis(5),
            Duration::from_secs(120),
        )?;
        let dur = self.set.writes_duration_s;
        let search_conns = self.set.writes_search_connections;
        let paths = self
            .corpus
            .join("queries-1term.paths")
            .display()
            .to_string();
        let mut detail = Map::new();
        let mut phase = 0;
        for (load, conc) in [(false, 1usize), (false, 4), (true, 1), (true, 4)] {
            phase += 1;
            // The search load: wrk in its own process, for the whole phase.
            let wrk_argv: Vec<String> = vec![
                "wrk".into(),
                "-t1".into(),
                format!("-c{search_conns}"),
                format!("-d{}s", dur + 2),
                "--latency".into(),
                "--timeout".into(),
                "10s".into(),
                "-s".into(),
                self.lua.join("search.lua").display().to_string(),
                format!("http://{SERVICE_ADDR}/"),
                "--".into(),
                paths.clone(),
            ];
            let wrk = if load {
                Some(
                    Command::new(&wrk_argv[0])
                        .args(&wrk_argv[1..])
                        .stdout(std::process::Stdio::piped())
                        .stderr(std::process::Stdio::piped())
                        .spawn()?,
                )
            } else {
                None
            };
            if load {
                std::thread::sleep(Duration::from_secs(1));
            }
            let (v, cmd) = self.sub(&[
                "write-load".into(),
                "--addr".into(),
                SERVICE_ADDR.into(),
                "--concurrency".into(),
                conc.to_string(),
                "--duration".into(),
                dur.to_string(),
                "--tag".into(),
                format!("p{phase}"),
            ])?;
            let mut search = Value::Null;
            if let Some(child) = wrk {
                let out = child.wait_with_output()?;
                let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
                fs::write(self.log(&format!("wrk-writes-{phase}")), &stdout)?;
                if let Some(line) = stdout.lines().find_map(|l| l.strip_prefix("BENCH_JSON ")) {
                    search = serde_json::from_str(line)?;
                    let secs = f(&search, &["duration_us"]) / 1e6;
                    search["rps"] = json!(f(&search, &["requests"]) / secs);
                }
            }
            let key = format!("{}_c{conc}", if load { "under_search" } else { "alone" });
            let writes = f(&v, &["writes"]);
            let found = f(&v, &["verified_found"]);
            let load_desc = if load {
                format!(
                    "while wrk searches ({search_conns} connections, 1-term: {:.0} q/s, p99 {:.1} ms)",
                    f(&search, &["rps"]),
                    f(&search, &["latency_us", "p99"]) / 1000.0
                )
            } else {
                "no other load".into()
            };
            let mut commands = vec![spec.command_line(), cmd];
            if load {
                commands.push(wrk_argv.join(" "));
            }
            self.push(Figure {
                id: format!("writes_{key}_p99_ms"),
                name: format!("Single-note POST /api/v1/notes, {conc} writer(s), {load_desc}: write-to-searchable p99 (p50 {:.2} ms; {:.0} of {:.0} found by a search after the POST returned)",
                    f(&v, &["p50_ms"]), found, writes),
                value: f(&v, &["p99_ms"]),
                unit: "ms".into(),
                target: "(reported)".into(),
                pass: None,
                reference: "p50 ms".into(),
                reference_value: Some(f(&v, &["p50_ms"])),
                ratio: None,
                commands: commands.clone(),
            });
            self.push(Figure {
                id: format!("writes_{key}_per_s"),
                name: format!("Single-note writes/s, {conc} writer(s), {load_desc}; every write searchable on return"),
                value: f(&v, &["writes_per_s"]),
                unit: "writes/s".into(),
                target: "all found".into(),
                pass: Some(found == writes && f(&v, &["errors"]) == 0.0),
                reference: "writes found by the search after return".into(),
                reference_value: Some(found),
                ratio: None,
                commands,
            });
            detail.insert(key, json!({"writes": v, "search_load": search}));
        }
        server.stop()?;
        // The floor: a raw SQLite row + tantivy commit and reload per write.
        let (rv, rcmd) = self.sub(&[
            "write-ref".into(),
            "--dir".into(),
            self.work.join("write-ref").display().to_string(),
            "--duration".into(),
            dur.to_string(),
        ])?;
        let alone = &detail["alone_c1"]["writes"];
        self.push(Figure {
            id: "writes_raw_floor_p50_ms".into(),
            name: format!(
                "Single write, raw floor: SQLite row + tantivy add/commit/reload, 1 client, no HTTP (p99 {:.2} ms, {:.0} writes/s; commit alone p50 {:.2} ms)",
                f(&rv, &["latency", "p99_ms"]), f(&rv, &["writes_per_s"]), f(&rv, &["tantivy_commit", "p50_ms"])
            ),
            value: f(&rv, &["latency", "p50_ms"]),
            unit: "ms".into(),
            target: "(reference)".into(),
            pass: None,
            reference: "service, 1 writer, no other load: p50 ms (ratio = service / raw)".into(),
            reference_value: Some(f(alone, &["p50_ms"])),
            ratio: Some(f(alone, &["p50_ms"]) / f(&rv, &["latency", "p50_ms"])),
            commands: vec![rcmd],
        });
        detail.insert("raw_floor".into(), rv);
        self.details
            .insert(self.current.clone(), Value::Object(detail));
        Ok(())
    }

    // ---------------------------------------------------------------- storage

    /// Attachments through the API against plain `object_store` put/get of
    /// the same bytes to the same store, for local files and for a real S3
    /// server (s3s-fs on loopback), in the same run; and the service's RSS
    /// during the big upload and download.
    fn storage(&mut self) -> Result<()> {
        let big_mib: u64 = env_or("BENCH_STORAGE_BIG_MIB", 200);
        let small_mib: u64 = env_or("BENCH_STORAGE_SMALL_MIB", 16);
        let small_count: usize = env_or("BENCH_STORAGE_SMALL_COUNT", 8);
        let reps: usize = env_or("BENCH_STORAGE_REPS", 3);
        let dir = self.work.join("storage");
        fs::create_dir_all(&dir)?;
        let big = dir.join(format!("blob-{big_mib}mib.bin"));
        let small = dir.join(format!("blob-{small_mib}mib.bin"));
        storage::ensure_blob(&big, big_mib << 20)?;
        storage::ensure_blob(&small, small_mib << 20)?;
        let (key, secret) = ("bench-access", "bench-secret");

        // The S3 server, one for the whole benchmark, on an empty directory.
        let s3_root = dir.join("s3");
        procs::fresh_dir(&s3_root.join("notes"))?;
        let (host, port) = S3_ADDR.split_once(':').expect("host:port");
        let s3_spec = Spec {
            program: "s3s-fs".into(),
            args: vec![
                "--host".into(),
                host.into(),
                "--port".into(),
                port.into(),
                "--access-key".into(),
                key.into(),
                "--secret-key".into(),
                secret.into(),
                s3_root.display().to_string(),
            ],
            env: vec![],
            cpus: None,
            addr: S3_ADDR.into(),
            log: self.log("s3s-fs"),
        };
        let s3 = s3_spec.spawn()?;
        procs::wait_tcp(S3_ADDR, Duration::from_secs(10))?;
        let endpoint = format!("http://{S3_ADDR}");
        let files_dir = dir.join("files");
        let stores = [
            ("file", format!("file://{}", files_dir.display())),
            ("s3", "s3://notes".to_owned()),
        ];
        let mut detail = Map::new();
        for (label, url) in &stores {
            if *label == "file" {
                procs::fresh_dir(&files_dir)?;
            }
            let mut env = vec![
                ("NOTES_STORAGE_URL", url.clone()),
                ("NOTES_MAX_UPLOAD_BYTES", ((big_mib + 1) << 20).to_string()),
            ];
            let mut ref_args = vec!["--store".to_owned(), url.clone()];
            if *label == "s3" {
                env.extend([
                    ("NOTES_S3_ENDPOINT", endpoint.clone()),
                    ("NOTES_S3_ACCESS_KEY_ID", key.to_owned()),
                    ("NOTES_S3_SECRET_ACCESS_KEY", secret.to_owned()),
                ]);
                ref_args.extend([
                    "--s3-endpoint".into(),
                    endpoint.clone(),
                    "--s3-key".into(),
                    key.into(),
                    "--s3-secret".into(),
                    secret.into(),
                ]);
            }
            let data = dir.join(format!("data-{label}"));
            procs::fresh_dir(&data)?;
            let spec = self.service_spec(&data, None, &env, &format!("service-storage-{label}"));
            let mut server = spec.spawn()?;
            server.wait_ready("/readyz", Duration::from_millis(5), Duration::from_secs(10))?;
            let t = Duration::from_secs(10);
            let r = client::request(
                SERVICE_ADDR,
                "POST",
                "/api/v1/notes",
                Some("application/json"),
                br#"{"title":"storage benchmark"}"#,
                t,
            )?;
            if r.status != 201 {
                bail!("creating a note: HTTP {}", r.status);
            }
            let note = r.json()?["id"].as_str().unwrap_or_default().to_owned();
            std::thread::sleep(Duration::from_secs(1));
            let rss_idle = server.status_kb("VmRSS")?;
            let mut res = Map::new();
            let mut cmds = Map::new();
            for rep in 0..reps {
                for (size, file, count) in [("big", &big, 1usize), ("small", &small, small_count)] {
                    let file_s = file.display().to_string();
                    let mut modes = vec!["raw"];
                    if rep == 0 {
                        modes.push("inproc");
                    }
                    for mode in modes {
                        let mut a = vec!["storage-ref".to_owned()];
                        a.extend(ref_args.iter().cloned());
                        a.extend([
                            "--mode".into(),
                            mode.into(),
                            "--file".into(),
                            file_s.clone(),
                            "--count".into(),
                            count.to_string(),
                        ]);
                        let (v, cmd) = self.sub(&a)?;
                        push_run(&mut res, &format!("{size}_{mode}"), v);
                        cmds.insert(format!("{size}_{mode}"), json!(cmd));
                    }
                    let http = |op: &str, extra: &[String]| {
                        let mut a = vec![
                            "storage-http".to_owned(),
                            "--addr".into(),
                            SERVICE_ADDR.into(),
                            "--op".into(),
                            op.into(),
                            "--note".into(),
                            note.clone(),
                        ];
                        a.extend(extra.iter().cloned());
                        a
                    };
                    let sampler = procs::RssSampler::start(server.pid(), Duration::from_millis(5));
                    let (mut up, cmd) = self.sub(&http(
                        "upload",
                        &[
                            "--file".into(),
                            file_s.clone(),
                            "--count".into(),
                            count.to_string(),
                        ],
                    ))?;
                    let (peak, n) = sampler.stop();
                    up["server_rss_peak_kb"] = json!(peak);
                    up["rss_samples"] = json!(n);
                    cmds.insert(format!("{size}_upload"), json!(cmd));
                    let ids = up["ids"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(",");
                    let ids_arg = ["--ids".to_owned(), ids];
                    let before = server.status_kb("VmRSS")?;
                    let sampler = procs::RssSampler::start(server.pid(), Duration::from_millis(5));
                    let (mut down, cmd) = self.sub(&http("download", &ids_arg))?;
                    let (peak, n) = sampler.stop();
                    down["server_rss_before_kb"] = json!(before);
                    down["server_rss_peak_kb"] = json!(peak);
                    down["rss_samples"] = json!(n);
                    cmds.insert(format!("{size}_download"), json!(cmd));
                    self.sub(&http("delete", &ids_arg))?;
                    push_run(&mut res, &format!("{size}_upload"), up);
                    push_run(&mut res, &format!("{size}_download"), down);
                }
            }
            server.stop()?;

            // Medians over the reps (the in-process path ran once).
            let med = |k: &str, field: &str| {
                let v: Vec<f64> = res[k]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| f(r, &[field]))
                    .collect();
                stats::median(&v)
            };
            let peak = |k: &str| {
                res[k]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|r| r["server_rss_peak_kb"].as_u64())
                    .max()
                    .unwrap_or(0)
            };
            let store = if *label == "s3" {
                "S3 (s3s-fs on loopback)"
            } else {
                "local files"
            };
            let cmd = |k: &str| cmds[k].as_str().unwrap_or_default().to_owned();
            for (size, what) in [
                ("big", format!("1 x {big_mib} MiB")),
                ("small", format!("{small_count} x {small_mib} MiB")),
            ] {
                for (op, field, raw_op) in [
                    ("upload", "put_mib_s", "put_multipart"),
                    ("download", "get_mib_s", "get"),
                ] {
                    let api = med(&format!("{size}_{op}"), "mib_s");
                    let raw = med(&format!("{size}_raw"), field);
                    let inproc = med(&format!("{size}_inproc"), field);
                    self.push(Figure {
                        id: format!("storage_{label}_{op}_{size}_mib_s"),
                        name: format!(
                            "Attachment {op} through the API, {store}, {what}, one at a time (median of {reps}; service's Blobs in-process: {inproc:.0} MiB/s)"
                        ),
                        value: api,
                        unit: "MiB/s".into(),
                        target: ">= 0.80 x raw".into(),
                        pass: Some(api / raw >= 0.80),
                        reference: format!(
                            "raw object_store {raw_op} of the same bytes to the same store, MiB/s"
                        ),
                        reference_value: Some(raw),
                        ratio: Some(api / raw),
                        commands: vec![
                            spec.command_line(),
                            cmd(&format!("{size}_{op}")),
                            cmd(&format!("{size}_raw")),
                        ],
                    });
                }
            }
            let mb = |kb: u64| kb as f64 * 1024.0 / 1e6;
            for op in ["upload", "download"] {
                let added = mb(peak(&format!("big_{op}")).saturating_sub(rss_idle));
                self.push(Figure {
                    id: format!("storage_{label}_rss_{op}_big_mb"),
                    name: format!(
                        "Service RSS added during a {big_mib} MiB {op}, {store} (peak VmRSS sampled every 5 ms, max of {reps}, minus idle)"
                    ),
                    value: added,
                    unit: "MB".into(),
                    target: "< 50".into(),
                    pass: Some(added < 50.0),
                    reference: "idle RSS before any transfer, MB".into(),
                    reference_value: Some(mb(rss_idle)),
                    ratio: None,
                    commands: vec![spec.command_line(), cmd(&format!("big_{op}"))],
                });
            }
            res.insert("rss_idle_kb".into(), json!(rss_idle));
            res.insert("commands".into(), Value::Object(cmds));
            detail.insert(label.to_string(), Value::Object(res));
        }
        s3.stop()?;
        detail.insert("s3_server".into(), json!(s3_spec.command_line()));
        self.details
            .insert(self.current.clone(), Value::Object(detail));
        Ok(())
    }

    // ----------------------------------------------------------------- memory

    fn memory(&mut self) -> Result<()> {
        self.ensure_100k()?;
        let t = Duration::from_secs(10);
        // Idle: on the 100k database, after start-up and a few requests.
        let spec = self.service_spec(&self.data_100k(), None, &[], "service-memory");
        let mut server = spec.spawn()?;
        server.wait_ready("/readyz", Duration::from_millis(5), t)?;
        std::thread::sleep(Duration::from_millis(500));
        let rss_start = server.status_kb("VmRSS")?;
        for _ in 0..10 {
            for p in ["/healthz", "/readyz", "/version", "/metrics"] {
                client::get(SERVICE_ADDR, p, t)?;
            }
        }
        std::thread::sleep(Duration::from_secs(1));
        let rss_ops = server.status_kb("VmRSS")?;
        let queries = fs::read_to_string(self.corpus.join("queries-1term.paths"))?;
        for q in queries.lines().take(5) {
            client::get(SERVICE_ADDR, q, t)?;
        }
        client::get(SERVICE_ADDR, "/api/v1/notes?limit=20", t)?;
        std::thread::sleep(Duration::from_secs(1));
        let rss_idle = server.status_kb("VmRSS")?;
        let hwm_idle = server.status_kb("VmHWM")?;
        let anon_idle = server.status_kb("RssAnon")?;
        let file_idle = server.status_kb("RssFile")?;
        server.stop()?;

        let hspec = self.hello_spec(None);
        let mut hello = hspec.spawn()?;
        hello.wait_ready("/healthz", Duration::from_millis(5), t)?;
        for _ in 0..10 {
            client::get(HELLO_ADDR, "/healthz", t)?;
        }
        std::thread::sleep(Duration::from_secs(1));
        let hello_rss = hello.status_kb("VmRSS")?;
        hello.stop()?;

        let mb = |kb: u64| kb as f64 / 1024.0;
        self.push(Figure {
            id: "rss_idle_mb".into(),
            name: "RSS idle, 100k-note DB, after start-up + 40 ops requests + 5 searches + 1 list".into(),
            value: mb(rss_idle),
            unit: "MiB".into(),
            target: "<= 30".into(),
            pass: Some(mb(rss_idle) <= 30.0),
            reference: "bare axum hello-world after 10 requests, MiB".into(),
            reference_value: Some(mb(hello_rss)),
            ratio: Some(rss_idle as f64 / hello_rss as f64),
            commands: vec![spec.command_line(), "GET /healthz,/readyz,/version,/metrics x10; 5 x GET <first 5 lines of queries-1term.paths>; GET /api/v1/notes?limit=20; sleep 1; grep VmRSS /proc/PID/status".into(), hspec.command_line()],
        });

        // Peak while ingesting one 64 MiB NDJSON body into a fresh database.
        let big = self.corpus.join("big.ndjson");
        let big_bytes = fs::metadata(&big)?.len();
        let limit: u64 = 64 * 1024 * 1024;
        let data = self.work.join("data-big");
        procs::fresh_dir(&data)?;
        let spec = self.service_spec(
            &data,
            None,
            &[("NOTES_MAX_INGEST_BYTES", limit.to_string())],
            "service-big",
        );
        let mut server = spec.spawn()?;
        server.wait_ready("/readyz", Duration::from_millis(5), t)?;
        let rss_before = server.status_kb("VmRSS")?;
        let (v, cmd) = self.sub(&[
            "http-ingest".into(),
            "--addr".into(),
            SERVICE_ADDR.into(),
            big.display().to_string(),
        ])?;
        let hwm = server.status_kb("VmHWM")?;
        let rss_after = server.status_kb("VmRSS")?;
        server.stop()?;
        let (rv, rcmd) = self.sub(&[
            "raw-ingest".into(),
            "--db".into(),
            self.work.join("ingest/raw-big.db").display().to_string(),
            "--mode".into(),
            "multirow".into(),
            "--index".into(),
            self.work.join("ingest/tantivy-big").display().to_string(),
            big.display().to_string(),
        ])?;
        let ref_hwm = rv["vmhwm_kb"].as_u64().unwrap_or(1);
        self.push(Figure {
            id: "rss_peak_ingest_64mib_mb".into(),
            name: format!("Peak RSS (VmHWM) ingesting one {:.1} MiB NDJSON body ({} notes)", big_bytes as f64 / 1048576.0, v["received"]),
            value: mb(hwm),
            unit: "MiB".into(),
            target: "<= 250".into(),
            pass: Some(mb(hwm) <= 250.0),
            reference: "raw sqlx insert of the same file (500-row INSERTs, one transaction) + raw tantivy indexing of it, one commit: VmHWM MiB".into(),
            reference_value: Some(mb(ref_hwm)),
            ratio: Some(hwm as f64 / ref_hwm as f64),
            commands: vec![spec.command_line(), cmd, rcmd],
        });
        self.details.insert(
            "memory".into(),
            json!({
                "idle": {"rss_after_start_kb": rss_start, "rss_after_ops_kb": rss_ops, "rss_after_api_kb": rss_idle, "rss_anon_after_api_kb": anon_idle, "rss_file_after_api_kb": file_idle, "hwm_kb": hwm_idle, "hello_rss_kb": hello_rss},
                "big_ingest": {"body_bytes": big_bytes, "limit": limit, "rss_before_kb": rss_before, "vmhwm_kb": hwm, "rss_after_kb": rss_after, "client": v, "reference": rv},
            }),
        );
        Ok(())
    }

    // ---------------------------------------------------------------- startup

    fn startup(&mut self) -> Result<()> {
        self.ensure_100k()?;
        let empty = self.work.join("data-empty");
        procs::fresh_dir(&empty)?;
        {
            // Create and migrate the empty database once.
            let mut s = self
                .service_spec(&empty, None, &[], "service-startup")
                .spawn()?;
            s.wait_ready("/readyz", Duration::from_millis(5), Duration::from_secs(10))?;
            s.stop()?;
        }
        let poll = Duration::from_millis(self.set.startup_poll_ms);
        let limit = Duration::from_secs(10);
        let specs = [
            (
                "db_100k",
                self.service_spec(&self.data_100k(), None, &[], "service-startup"),
                "/readyz",
            ),
            (
                "db_empty",
                self.service_spec(&empty, None, &[], "service-startup"),
                "/readyz",
            ),
            ("hello", self.hello_spec(None), "/readyz"),
        ];
        let mut times: std::collections::BTreeMap<&str, Vec<f64>> = Default::default();
        for _ in 0..self.set.startup_runs {
            for (label, spec, path) in &specs {
                let mut s = spec.spawn()?;
                let d = s.wait_ready(path, poll, limit)?;
                s.stop()?;
                times
                    .entry(label)
                    .or_default()
                    .push(d.as_secs_f64() * 1000.0);
            }
            // A bare process spawn: `notes-api --version` to exit.
            let t = Instant::now();
            let out = Command::new(&self.service).arg("--version").output()?;
            if !out.status.success() {
                bail!("notes-api --version failed");
            }
            times
                .entry("spawn_version")
                .or_default()
                .push(t.elapsed().as_secs_f64() * 1000.0);
        }
        let med: std::collections::BTreeMap<&str, f64> =
            times.iter().map(|(k, v)| (*k, stats::median(v))).collect();
        let v = med["db_100k"];
        self.push(Figure {
            id: "startup_ready_100k_ms".into(),
            name: format!(
                "Start-up to ready (/readyz 200), 100k-note DB, median of {}",
                self.set.startup_runs
            ),
            value: v,
            unit: "ms".into(),
            target: "<= 300".into(),
            pass: Some(v <= 300.0),
            reference: "same binary on an empty (migrated) DB, ms".into(),
            reference_value: Some(med["db_empty"]),
            ratio: Some(v / med["db_empty"]),
            commands: vec![
                specs[0].1.command_line(),
                format!(
                    "poll GET {} every {} ms from spawn until 200 (notes-bench startup loop)",
                    specs[0].2, self.set.startup_poll_ms
                ),
                specs[1].1.command_line(),
            ],
        });
        self.push(Figure {
            id: "startup_ready_100k_vs_hello".into(),
            name: "Start-up to ready, 100k-note DB vs bare axum hello-world spawn-to-200".into(),
            value: v,
            unit: "ms".into(),
            target: "(reported)".into(),
            pass: None,
            reference: "bare axum hello-world, spawn to first 200, ms".into(),
            reference_value: Some(med["hello"]),
            ratio: Some(v / med["hello"]),
            commands: vec![specs[2].1.command_line()],
        });
        self.details.insert(
            "startup".into(),
            json!({"median_ms": med, "runs_ms": times}),
        );
        Ok(())
    }
}

/// Appends `v` to the array at `key`.
fn push_run(map: &mut Map<String, Value>, key: &str, v: Value) {
    if let Some(a) = map.entry(key).or_insert_with(|| json!([])).as_array_mut() {
        a.push(v);
    }
}

fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    let a = v.abs();
    if a >= 1000.0 {
        format!("{v:.0}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn summary(doc: &Value) -> String {
    let figures: &[Value] = doc["figures"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let num = |v: &Value| v.as_f64().map(fmt_num).unwrap_or_default();
    let mut s = String::new();
    let _ = writeln!(s, "# notes-api benchmark summary\n");
    let _ = writeln!(
        s,
        "Generated {} on {} ({} CPUs, {}), service {} ({}); corpus: {} notes, {:.0} bytes/note on average. \
         Benchmarks run now: {}; the others are kept from earlier runs (see `details.*.run_at` in latest.json).\n",
        text(&doc["generated_at"]),
        text(&doc["machine"]["cpu_model"]),
        doc["machine"]["cpus"],
        text(&doc["machine"]["memory"])
            .split_whitespace()
            .skip(1)
            .collect::<Vec<_>>()
            .join(" "),
        text(&doc["service"]["git"]),
        doc["service"]["version"],
        doc["corpus"]["notes"],
        doc["corpus"]["avg_note_bytes"].as_f64().unwrap_or(0.0),
        doc["benchmarks_run"]
            .as_array()
            .map(|a| a.iter().map(text).collect::<Vec<_>>().join(", "))
            .unwrap_or_default(),
    );
    let _ = writeln!(
        s,
        "| figure | value | target | result | reference | reference value | ratio |"
    );
    let _ = writeln!(s, "|---|---:|---|---|---|---:|---:|");
    for fig in figures {
        let _ = writeln!(
            s,
            "| {} | {} {} | {} | {} | {} | {} | {} |",
            text(&fig["name"]),
            num(&fig["value"]),
            text(&fig["unit"]),
            text(&fig["target"]),
            match fig["pass"].as_bool() {
                Some(true) => "PASS",
                Some(false) => "**MISS**",
                None => "-",
            },
            text(&fig["reference"]),
            num(&fig["reference_value"]),
            fig["ratio"]
                .as_f64()
                .map(|r| format!("{r:.2}"))
                .unwrap_or_default(),
        );
    }
    let _ = writeln!(s, "\n## Commands\n");
    for fig in figures {
        let _ = writeln!(s, "- `{}`:", text(&fig["id"]));
        for c in fig["commands"].as_array().into_iter().flatten() {
            let _ = writeln!(s, "  - `{}`", text(c));
        }
    }
    s
}
