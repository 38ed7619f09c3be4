//! The context every benchmark runs in: where the binaries, corpus and work
//! dirs are, the settings, the figures and details gathered so far, and the
//! helpers that start servers, wrk and this binary's subcommands.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::settings::Settings;
use crate::{client, procs::Spec};

pub const SERVICE_ADDR: &str = "127.0.0.1:18080";
pub const HELLO_ADDR: &str = "127.0.0.1:18099";
pub const S3_ADDR: &str = "127.0.0.1:18090";

/// One line of the results table.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub id: String,
    pub name: String,
    pub value: f64,
    pub unit: String,
    /// e.g. ">= 20000" or "<= 2.5 (ratio)".
    pub target: String,
    pub pass: Option<bool>,
    pub reference: String,
    pub reference_value: Option<f64>,
    /// value / reference_value.
    pub ratio: Option<f64>,
    pub commands: Vec<String>,
}

pub struct Ctx {
    pub service: PathBuf,
    pub hello: PathBuf,
    pub me: PathBuf,
    pub corpus: PathBuf,
    pub work: PathBuf,
    pub lua: PathBuf,
    pub set: Settings,
    /// Figures as written to latest.json (each with its `benchmark`).
    pub figures: Vec<Value>,
    pub details: Map<String, Value>,
    pub corpus_desc: Value,
    /// The real-text corpus: where, and its description once generated.
    pub real_corpus: PathBuf,
    pub real_desc: Option<Value>,
    /// The benchmark running now.
    pub current: String,
}

/// The number at `path` in `v` (NaN when missing).
pub fn f(v: &Value, path: &[&str]) -> f64 {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_f64().unwrap_or(f64::NAN)
}

/// Appends `v` to the array at `key`.
pub fn push_run(map: &mut Map<String, Value>, key: &str, v: Value) {
    if let Some(a) = map.entry(key).or_insert_with(|| json!([])).as_array_mut() {
        a.push(v);
    }
}

impl Ctx {
    pub fn log(&self, name: &str) -> PathBuf {
        self.work.join("logs").join(format!("{name}.log"))
    }

    pub fn service_spec(
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
    pub fn service_version(&self) -> Result<Value> {
        let data = self.work.join("data-version");
        crate::procs::fresh_dir(&data)?;
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

    pub fn hello_spec(&self, cpus: Option<&str>) -> Spec {
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
    pub fn wrk(
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
    pub fn sub(&self, args: &[String]) -> Result<(Value, String)> {
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

    pub fn push(&mut self, fig: Figure) {
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
}
