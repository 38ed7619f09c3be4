//! The `jobs` benchmark (issue #4): `add` jobs from enqueue to `succeeded`
//! on each queue backend, with 1 and 2 worker processes beside one API
//! process that runs no workers.
//!
//! Per backend and worker-process count:
//! - throughput: 16 clients POST the jobs while the workers run; jobs/s is
//!   jobs / (last `finished_at` − first request sent), and enqueue-to-start
//!   latency is `started_at − created_at` from the job records;
//! - drain: the same jobs enqueued with no worker running, then the workers
//!   started: jobs / (last `finished_at` − first `started_at`), the workers'
//!   own rate (and the API's enqueue-only rate as its reference);
//! - paced: a steady trickle (50 jobs/s), whose start latency is the
//!   wake-up latency (NOTIFY, pub/sub, or polling);
//! - idle: with 2 worker processes and no API process, what the workers
//!   ask the backend per second, counted on the backend's side where it
//!   keeps a count (PostgreSQL `pg_stat_database`, Redis MONITOR) and with
//!   strace for SQLite (one WAL read-mark lock per transaction).

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value, json};

use super::{
    Ctx,
    backend::Backend,
    ctx::{Figure, SERVICE_ADDR, f},
};
use crate::{
    client,
    jobload::unix_us,
    procs::{self, Server, Spec},
};

const WORKER_ADDRS: [&str; 2] = ["127.0.0.1:18081", "127.0.0.1:18082"];
/// The database the PostgreSQL runs create and drop.
const PG_DB: &str = "notes_bench_jobs";
/// Key prefix of the Redis runs (the db is a setting, 13 by default).
const REDIS_PREFIX: &str = "notes-bench-jobs";
const TICK: Duration = Duration::from_millis(100);

/// Runs a helper command to completion; its stdout, or an error with stderr.
fn tool(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// A job record's times, Unix µs.
struct Rec {
    status: String,
    created: i64,
    started: Option<i64>,
    finished: Option<i64>,
}

fn micros(v: &Value) -> Option<i64> {
    let s = v.as_str()?;
    notes_api::domain::timestamp::parse(s)
        .ok()
        .map(|t| t.timestamp_micros())
}

fn ms_summary(mut us: Vec<i64>) -> Value {
    let mut d: Vec<Duration> = us
        .drain(..)
        .map(|u| Duration::from_micros(u.max(0) as u64))
        .collect();
    crate::stats::latency_summary(&mut d)
}

// ----------------------------------------------------------- CPU accounting

fn pids_named(name: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        if let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok())
            && fs::read_to_string(e.path().join("comm"))
                .map(|c| c.trim() == name)
                .unwrap_or(false)
        {
            pids.push(pid);
        }
    }
    pids
}

/// (busy, total) jiffies of the whole machine.
fn machine_ticks() -> (u64, u64) {
    let stat = fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// CPU ticks of the processes in a run, the backend's servers and the machine.
fn cpu_snapshot(procs: &[(&str, u32)]) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for (label, pid) in procs {
        m.insert((*label).to_owned(), procs::cpu_ticks(*pid));
    }
    for server in ["postgres", "redis-server"] {
        let t: u64 = pids_named(server).into_iter().map(procs::cpu_ticks).sum();
        m.insert(server.to_owned(), t);
    }
    let (busy, total) = machine_ticks();
    m.insert("machine_busy".into(), busy);
    m.insert("machine_total".into(), total);
    m
}

/// CPU seconds per process over the interval, and the machine's busy share.
fn cpu_delta(a: &BTreeMap<String, u64>, b: &BTreeMap<String, u64>) -> Value {
    let hz = procs::ticks_per_sec();
    let mut out = Map::new();
    for (k, v1) in b {
        if k.starts_with("machine_") {
            continue;
        }
        let v0 = a.get(k).copied().unwrap_or(0);
        out.insert(
            format!("{k}_cpu_s"),
            json!(v1.saturating_sub(v0) as f64 / hz),
        );
    }
    let busy = b["machine_busy"].saturating_sub(a["machine_busy"]) as f64;
    let total = b["machine_total"].saturating_sub(a["machine_total"]).max(1) as f64;
    out.insert("machine_busy_share".into(), json!(busy / total));
    Value::Object(out)
}

/// The processes of one setup: the API (no workers) and worker processes.
struct Setup {
    api: Option<Server>,
    workers: Vec<Server>,
    commands: Vec<String>,
}

impl Setup {
    fn pids(&self) -> Vec<(&'static str, u32)> {
        let mut v = Vec::new();
        if let Some(a) = &self.api {
            v.push(("api", a.pid()));
        }
        for (i, w) in self.workers.iter().enumerate() {
            v.push((["worker1", "worker2"][i.min(1)], w.pid()));
        }
        v
    }
    fn stop(self) -> Result<()> {
        for w in self.workers {
            w.stop()?;
        }
        if let Some(a) = self.api {
            a.stop()?;
        }
        Ok(())
    }
}

impl Ctx {
    fn jobs_backends(&self) -> Result<Vec<Backend>> {
        self.set
            .jobs_backends
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(Backend::parse)
            .collect()
    }

    fn redis_url(&self) -> String {
        format!("{}/{}", self.set.jobs_redis, self.set.jobs_redis_db)
    }

    /// A fresh queue for `b`: an empty data dir, and an empty database or
    /// Redis db. Returns the data dir and the environment naming them.
    fn jobs_fresh(&self, b: Backend) -> Result<(PathBuf, Vec<(&'static str, String)>)> {
        let data = self.work.join(format!("data-jobs-{}", b.name()));
        procs::fresh_dir(&data)?;
        let mut env = vec![];
        match b {
            Backend::Sqlite => {}
            Backend::Postgres => {
                let admin = format!("{}/postgres", self.set.jobs_pg);
                tool(
                    "psql",
                    &[
                        &admin,
                        "-qAtc",
                        &format!("DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)"),
                    ],
                )?;
                tool(
                    "psql",
                    &[&admin, "-qAtc", &format!("CREATE DATABASE {PG_DB}")],
                )?;
                env.push((
                    "NOTES_DATABASE_URL",
                    format!("{}/{PG_DB}", self.set.jobs_pg),
                ));
            }
            Backend::Redis => {
                tool("redis-cli", &["-u", &self.redis_url(), "FLUSHDB"])?;
                env.push((
                    "NOTES_QUEUE_URL",
                    format!("{}?prefix={REDIS_PREFIX}", self.redis_url()),
                ));
            }
        }
        Ok((data, env))
    }

    fn jobs_spec(
        &self,
        b: Backend,
        data: &Path,
        env: &[(&'static str, String)],
        worker: Option<usize>,
    ) -> Spec {
        let mut extra = env.to_vec();
        let workers = if worker.is_some() {
            self.set.jobs_workers
        } else {
            0
        };
        extra.push(("NOTES_WORKERS", workers.to_string()));
        let label = match worker {
            Some(i) => format!("service-jobs-{}-worker{}", b.name(), i + 1),
            None => format!("service-jobs-{}-api", b.name()),
        };
        let mut spec = self.service_spec(data, None, &extra, &label);
        if let Some(i) = worker {
            spec.args = vec!["worker".into()];
            spec.addr = WORKER_ADDRS[i].into();
            for (k, v) in &mut spec.env {
                if k == "NOTES_LISTEN" {
                    *v = WORKER_ADDRS[i].into();
                }
            }
        }
        spec
    }

    /// Starts the API process (when `api`) and then `procs` worker
    /// processes, each ready before the next starts (they migrate on start).
    fn jobs_start(
        &self,
        b: Backend,
        data: &Path,
        env: &[(&'static str, String)],
        api: bool,
        procs: usize,
    ) -> Result<Setup> {
        let limit = Duration::from_secs(30);
        let mut setup = Setup {
            api: None,
            workers: Vec::new(),
            commands: Vec::new(),
        };
        if api {
            let spec = self.jobs_spec(b, data, env, None);
            let mut s = spec.spawn()?;
            s.wait_ready("/readyz", Duration::from_millis(10), limit)?;
            setup.api = Some(s);
            setup.commands.push(spec.command_line());
        }
        self.jobs_add_workers(b, data, env, procs, &mut setup)?;
        Ok(setup)
    }

    fn jobs_add_workers(
        &self,
        b: Backend,
        data: &Path,
        env: &[(&'static str, String)],
        procs: usize,
        setup: &mut Setup,
    ) -> Result<()> {
        for i in 0..procs {
            let spec = self.jobs_spec(b, data, env, Some(i));
            let mut s = spec.spawn()?;
            s.wait_ready(
                "/readyz",
                Duration::from_millis(10),
                Duration::from_secs(30),
            )?;
            setup.workers.push(s);
            setup.commands.push(spec.command_line());
        }
        Ok(())
    }

    fn enqueue(&self, jobs: u64, concurrency: usize, rate: f64) -> Result<(Value, String)> {
        let mut args = vec![
            "jobs-enqueue".to_owned(),
            "--addr".into(),
            SERVICE_ADDR.into(),
            "--jobs".into(),
            jobs.to_string(),
            "--concurrency".into(),
            concurrency.to_string(),
        ];
        if rate > 0.0 {
            args.extend(["--rate".into(), rate.to_string()]);
        }
        self.sub(&args)
    }

    /// Polls the listing every 100 ms until no job is queued, failed or
    /// running; returns when that was seen (Unix µs).
    fn jobs_wait_done(&self, limit: Duration) -> Result<i64> {
        let t = Instant::now();
        let timeout = Duration::from_secs(10);
        loop {
            let mut busy = false;
            for status in ["queued", "failed", "running"] {
                let r = client::get(
                    SERVICE_ADDR,
                    &format!("/api/v1/jobs?status={status}&limit=1"),
                    timeout,
                )?;
                if r.status != 200 {
                    bail!("GET /api/v1/jobs?status={status}: HTTP {}", r.status);
                }
                if r.json()?["items"].as_array().is_some_and(|a| !a.is_empty()) {
                    busy = true;
                    break;
                }
            }
            if !busy {
                return Ok(unix_us());
            }
            if t.elapsed() > limit {
                bail!("jobs still pending after {limit:?}");
            }
            std::thread::sleep(TICK);
        }
    }

    /// Every job record, through the listing (100 per page).
    fn jobs_records(&self) -> Result<Vec<Rec>> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/api/v1/jobs?limit=100&cursor={c}"),
                None => "/api/v1/jobs?limit=100".to_owned(),
            };
            let r = client::get(SERVICE_ADDR, &path, Duration::from_secs(30))?;
            if r.status != 200 {
                bail!("GET {path}: HTTP {}", r.status);
            }
            let v = r.json()?;
            for j in v["items"].as_array().into_iter().flatten() {
                out.push(Rec {
                    status: j["status"].as_str().unwrap_or_default().to_owned(),
                    created: micros(&j["created_at"]).context("a job without created_at")?,
                    started: micros(&j["started_at"]),
                    finished: micros(&j["finished_at"]),
                });
            }
            match v["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return Ok(out),
            }
        }
    }

    /// Throughput and latency from the records; `t0` is when the first
    /// request left (Unix µs).
    fn jobs_analyse(&self, recs: &[Rec], expected: u64, t0: i64) -> Result<Value> {
        let ok = recs.iter().filter(|r| r.status == "succeeded").count() as u64;
        if recs.len() as u64 != expected || ok != expected {
            bail!(
                "{} job records, {ok} succeeded; expected {expected}",
                recs.len()
            );
        }
        let last_finished = recs.iter().filter_map(|r| r.finished).max().unwrap_or(t0);
        let first_started = recs.iter().filter_map(|r| r.started).min().unwrap_or(t0);
        let first_created = recs.iter().map(|r| r.created).min().unwrap_or(t0);
        let last_created = recs.iter().map(|r| r.created).max().unwrap_or(t0);
        let lat: Vec<i64> = recs
            .iter()
            .filter_map(|r| Some(r.started? - r.created))
            .collect();
        let run: Vec<i64> = recs
            .iter()
            .filter_map(|r| Some(r.finished? - r.started?))
            .collect();
        let secs = |a: i64, b: i64| (b - a).max(1) as f64 / 1e6;
        Ok(json!({
            "jobs": recs.len(),
            "succeeded": ok,
            "e2e_secs": secs(t0, last_finished),
            "jobs_per_s": expected as f64 / secs(t0, last_finished),
            "workers_secs": secs(first_started, last_finished),
            "workers_jobs_per_s": expected as f64 / secs(first_started, last_finished),
            "enqueue_span_secs": secs(first_created, last_created),
            "start_latency": ms_summary(lat),
            "start_to_finish": ms_summary(run),
        }))
    }

    /// 16 clients post the jobs while the workers run.
    fn jobs_throughput(&self, b: Backend, procs: usize) -> Result<Value> {
        let n = self.set.jobs_count;
        let (data, env) = self.jobs_fresh(b)?;
        let setup = self.jobs_start(b, &data, &env, true, procs)?;
        std::thread::sleep(Duration::from_millis(500));
        let cpu0 = cpu_snapshot(&setup.pids());
        let (enq, cmd) = self.enqueue(n, self.set.jobs_concurrency, 0.0)?;
        let seen = self.jobs_wait_done(Duration::from_secs(300))?;
        let cpu = cpu_delta(&cpu0, &cpu_snapshot(&setup.pids()));
        let recs = self.jobs_records()?;
        let mut commands = setup.commands.clone();
        setup.stop()?;
        let t0 = enq["first_send_unix_us"].as_i64().unwrap_or(0);
        let mut v = self.jobs_analyse(&recs, n, t0)?;
        v["poll_seen_done_secs"] = json!((seen - t0) as f64 / 1e6);
        v["enqueue"] = enq;
        v["cpu"] = cpu;
        commands.push(cmd);
        v["commands"] = json!(commands);
        Ok(v)
    }

    /// The jobs enqueued with no worker running, then the workers started.
    fn jobs_drain(&self, b: Backend, procs: usize) -> Result<Value> {
        let n = self.set.jobs_count;
        let (data, env) = self.jobs_fresh(b)?;
        let mut setup = self.jobs_start(b, &data, &env, true, 0)?;
        let cpu_enq0 = cpu_snapshot(&setup.pids());
        let (enq, cmd) = self.enqueue(n, self.set.jobs_concurrency, 0.0)?;
        let cpu_enq = cpu_delta(&cpu_enq0, &cpu_snapshot(&setup.pids()));
        let spawned = unix_us();
        self.jobs_add_workers(b, &data, &env, procs, &mut setup)?;
        let cpu0 = cpu_snapshot(&setup.pids());
        let seen = self.jobs_wait_done(Duration::from_secs(300))?;
        let cpu = cpu_delta(&cpu0, &cpu_snapshot(&setup.pids()));
        let recs = self.jobs_records()?;
        let mut commands = setup.commands.clone();
        setup.stop()?;
        let mut v = self.jobs_analyse(&recs, n, spawned)?;
        v["poll_seen_done_secs"] = json!((seen - spawned) as f64 / 1e6);
        v["enqueue_only"] = enq;
        v["enqueue_only_cpu"] = cpu_enq;
        v["cpu"] = cpu;
        commands.insert(1, cmd);
        v["commands"] = json!(commands);
        Ok(v)
    }

    /// A steady trickle; with `idle`, then the API stops and the workers'
    /// idle queries are counted.
    fn jobs_paced(&self, b: Backend, procs: usize, idle: bool) -> Result<(Value, Option<Value>)> {
        let rate = self.set.jobs_paced_rate;
        let n = (rate * self.set.jobs_paced_secs).round().max(1.0) as u64;
        let (data, env) = self.jobs_fresh(b)?;
        let mut setup = self.jobs_start(b, &data, &env, true, procs)?;
        // Idle first: the workers are waiting, not busy with a backlog.
        std::thread::sleep(Duration::from_secs(2));
        let (enq, cmd) = self.enqueue(n, 4, rate)?;
        let t0 = enq["first_send_unix_us"].as_i64().unwrap_or(0);
        self.jobs_wait_done(Duration::from_secs(120))?;
        let recs = self.jobs_records()?;
        let mut commands = setup.commands.clone();
        let mut v = self.jobs_analyse(&recs, n, t0)?;
        v["enqueue"] = enq;
        commands.push(cmd);
        v["commands"] = json!(commands.clone());
        let idle_v = if idle {
            if let Some(api) = setup.api.take() {
                api.stop()?;
            }
            std::thread::sleep(Duration::from_secs(3));
            let mut i = self.jobs_idle(b, &setup)?;
            commands.remove(0);
            i["worker_commands"] = json!(commands);
            Some(i)
        } else {
            None
        };
        setup.stop()?;
        Ok((v, idle_v))
    }

    /// What the idle worker processes of `setup` ask the backend per second.
    fn jobs_idle(&self, b: Backend, setup: &Setup) -> Result<Value> {
        let secs = self.set.jobs_idle_secs;
        let window = Duration::from_secs_f64(secs);
        let workers = (setup.workers.len() * self.set.jobs_workers).max(1) as f64;
        let pids: Vec<u32> = setup.workers.iter().map(Server::pid).collect();
        let cpu0 = cpu_snapshot(&setup.pids());
        let (count, method, command) = match b {
            Backend::Postgres => {
                let admin = format!("{}/postgres", self.set.jobs_pg);
                let sql = format!(
                    "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '{PG_DB}'"
                );
                let read = || -> Result<f64> {
                    tool("psql", &[&admin, "-qAtc", &sql])?
                        .parse::<f64>()
                        .context("pg_stat_database")
                };
                let a = read()?;
                std::thread::sleep(window);
                let b = read()?;
                (
                    b - a,
                    "delta of pg_stat_database.xact_commit + xact_rollback of the bench database (psql connects to the `postgres` database, so its own queries are not counted); PostgreSQL flushes a backend's counters at most once a second, so the edges of the window are fuzzy by a few transactions",
                    format!("psql {admin} -qAtc \"{sql}\"; sleep {secs}; (again)"),
                )
            }
            Backend::Redis => {
                let out = self.work.join("logs/jobs-redis-monitor.log");
                let url = self.redis_url();
                let mut mon = Command::new("redis-cli")
                    .args(["-u", &url, "MONITOR"])
                    .stdout(fs::File::create(&out)?)
                    .stderr(Stdio::null())
                    .spawn()?;
                std::thread::sleep(window);
                mon.kill()?;
                mon.wait()?;
                let db = format!("[{} ", self.set.jobs_redis_db);
                let text = fs::read_to_string(&out)?;
                let n = text
                    .lines()
                    .filter(|l| l.contains(&db) && !l.contains(" lua]"))
                    .count();
                (
                    n as f64,
                    "commands logged by Redis MONITOR on the bench db from clients (commands that scripts run inside Redis not counted: one EVALSHA is one query)",
                    format!(
                        "redis-cli -u {url} MONITOR (for {secs} s; lines of db {} not from lua)",
                        self.set.jobs_redis_db
                    ),
                )
            }
            Backend::Sqlite => {
                let out = self.work.join("logs/jobs-sqlite-strace.log");
                let mut args: Vec<String> = vec![
                    "-f".into(),
                    "-e".into(),
                    "trace=fcntl".into(),
                    "-o".into(),
                    out.display().to_string(),
                ];
                for p in &pids {
                    args.extend(["-p".into(), p.to_string()]);
                }
                let mut st = Command::new("strace")
                    .args(&args)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .context("strace is needed to count SQLite transactions")?;
                std::thread::sleep(window);
                // SAFETY: SIGINT to our own child: strace detaches and exits.
                unsafe {
                    libc::kill(st.id() as i32, libc::SIGINT);
                }
                st.wait()?;
                let text = fs::read_to_string(&out)?;
                // In WAL mode a connection keeps its SHARED lock on the
                // database file; what each transaction takes is a read mark
                // in the -shm file: F_RDLCK on one byte of 123..=127 (a
                // write transaction also takes the write lock, byte 120).
                let n = text
                    .lines()
                    .filter(|l| {
                        l.contains("F_SETLK")
                            && l.contains("F_RDLCK")
                            && l.split("l_start=")
                                .nth(1)
                                .and_then(|r| r.split(',').next())
                                .and_then(|v| v.parse::<u32>().ok())
                                .is_some_and(|b| (123..=127).contains(&b))
                    })
                    .count();
                (
                    n as f64,
                    "strace -f of the worker processes: WAL read-mark locks taken (F_RDLCK on -shm bytes 123..=127), one per SQLite transaction, i.e. per autocommit statement; a failed attempt (EAGAIN, another process holding that mark) would count twice, which is rare when idle",
                    format!(
                        "strace -f -e trace=fcntl -p {} (for {secs} s; count F_SETLK F_RDLCK at l_start 123..=127)",
                        pids.iter()
                            .map(u32::to_string)
                            .collect::<Vec<_>>()
                            .join(" -p ")
                    ),
                )
            }
        };
        let cpu = cpu_delta(&cpu0, &cpu_snapshot(&setup.pids()));
        let qps = count / secs;
        Ok(json!({
            "window_secs": secs,
            "worker_processes": setup.workers.len(),
            "workers_per_process": self.set.jobs_workers,
            "queries": count,
            "qps_total": qps,
            "qps_per_process": qps / setup.workers.len().max(1) as f64,
            "qps_per_worker": qps / workers,
            "method": method,
            "command": command,
            "cpu": cpu,
        }))
    }

    fn jobs_backend(&mut self, b: Backend) -> Result<Value> {
        let mut d = Map::new();
        for procs in [1usize, 2] {
            let key = format!("{procs}p");
            eprintln!("   {}: {procs} worker process(es)", b.name());
            let thr = self.jobs_throughput(b, procs)?;
            let drain = self.jobs_drain(b, procs)?;
            let (paced, idle) = self.jobs_paced(b, procs, procs == 2)?;
            self.jobs_figures(b, procs, &thr, &drain, &paced);
            if let Some(i) = &idle {
                let per = f(i, &["qps_per_worker"]);
                self.push(Figure {
                    id: format!("jobs_{}_idle_qps_per_worker", b.name()),
                    name: format!(
                        "Jobs {}: idle queries/s per worker ({} processes x {} workers, {:.0} s; {:.2} q/s per process)",
                        b.title(),
                        procs,
                        self.set.jobs_workers,
                        self.set.jobs_idle_secs,
                        f(i, &["qps_per_process"])
                    ),
                    value: per,
                    unit: "q/s".into(),
                    target: "<= 2".into(),
                    pass: Some(per <= 2.0),
                    reference: "(absolute target)".into(),
                    reference_value: None,
                    ratio: None,
                    commands: i["worker_commands"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|c| c.as_str().map(str::to_owned))
                        .chain(i["command"].as_str().map(str::to_owned))
                        .collect(),
                });
            }
            d.insert(
                key,
                json!({"throughput": thr, "drain": drain, "paced": paced, "idle": idle}),
            );
        }
        Ok(Value::Object(d))
    }

    fn jobs_figures(
        &mut self,
        b: Backend,
        procs: usize,
        thr: &Value,
        drain: &Value,
        paced: &Value,
    ) {
        let n = self.set.jobs_count;
        let w = self.set.jobs_workers;
        let setup = format!(
            "{} worker process{} x {w} workers",
            procs,
            if procs == 1 { "" } else { "es" }
        );
        let cmds = |v: &Value| -> Vec<String> {
            v["commands"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c.as_str().map(str::to_owned))
                .collect()
        };
        let rate = f(thr, &["jobs_per_s"]);
        let drain_rate = f(drain, &["workers_jobs_per_s"]);
        let (target, pass) = match (b, procs) {
            (Backend::Sqlite, _) => (">= 1000".to_owned(), Some(rate >= 1000.0)),
            (_, 2) => (">= 2000".to_owned(), Some(rate >= 2000.0)),
            _ => ("(reported; target is for 2)".to_owned(), None),
        };
        let id = |what: &str| format!("jobs_{}_{procs}p_{what}", b.name());
        self.push(Figure {
            id: id("jobs_per_s"),
            name: format!(
                "Jobs {}, {setup}: {n} add jobs from {} clients, first enqueue to last succeeded",
                b.title(),
                self.set.jobs_concurrency
            ),
            value: rate,
            unit: "jobs/s".into(),
            target,
            pass,
            reference: "same setup, workers only: drain of the jobs pre-enqueued, jobs/s".into(),
            reference_value: Some(drain_rate),
            ratio: Some(rate / drain_rate),
            commands: cmds(thr),
        });
        self.push(Figure {
            id: id("start_p99_ms"),
            name: format!(
                "Jobs {}, {setup}: enqueue-to-start p99 under that load (p50 {:.1} ms)",
                b.title(),
                f(thr, &["start_latency", "p50_ms"])
            ),
            value: f(thr, &["start_latency", "p99_ms"]),
            unit: "ms".into(),
            target: "(reported)".into(),
            pass: None,
            reference: format!(
                "paced {} jobs/s, same setup: p99 ms",
                self.set.jobs_paced_rate
            ),
            reference_value: Some(f(paced, &["start_latency", "p99_ms"])),
            ratio: None,
            commands: cmds(thr),
        });
        let enq_only = f(drain, &["enqueue_only", "enqueued_per_s"]);
        self.push(Figure {
            id: id("drain_jobs_per_s"),
            name: format!(
                "Jobs {}, {setup}: drain of {n} pre-enqueued jobs, first start to last finish",
                b.title()
            ),
            value: drain_rate,
            unit: "jobs/s".into(),
            target: "(reported)".into(),
            pass: None,
            reference: format!(
                "enqueue only (API, no workers running, {} clients), jobs/s",
                self.set.jobs_concurrency
            ),
            reference_value: Some(enq_only),
            ratio: Some(drain_rate / enq_only),
            commands: cmds(drain),
        });
        self.push(Figure {
            id: id("paced_start_p99_ms"),
            name: format!(
                "Jobs {}, {setup}: wake-up, enqueue-to-start p99 at {} jobs/s for {} s (p50 {:.2} ms)",
                b.title(),
                self.set.jobs_paced_rate,
                self.set.jobs_paced_secs,
                f(paced, &["start_latency", "p50_ms"])
            ),
            value: f(paced, &["start_latency", "p99_ms"]),
            unit: "ms".into(),
            target: "(reported)".into(),
            pass: None,
            reference: "(none)".into(),
            reference_value: None,
            ratio: None,
            commands: cmds(paced),
        });
    }

    pub(super) fn jobs(&mut self) -> Result<()> {
        let mut d = Map::new();
        for b in self.jobs_backends()? {
            let v = self.jobs_backend(b)?;
            d.insert(b.name().into(), v);
        }
        self.details.insert(
            "jobs".into(),
            json!({
                "backends": d,
                "api_process": "notes-api serve with NOTES_WORKERS=0",
                "workers_per_process": self.set.jobs_workers,
            }),
        );
        Ok(())
    }
}
