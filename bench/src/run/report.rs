//! The report: `latest.json` (every figure with its commands, the details,
//! the settings, the machine) and `summary.md` (the table), merged with the
//! previous run's figures of the benchmarks this run did not touch.

use std::{fmt::Write as _, fs, path::Path, process::Command, time::Instant};

use anyhow::Result;
use serde_json::{Map, Value, json};

use super::{ALL, Ctx, OPTIONAL};

/// Writes `latest.json` and `summary.md` into `results` and prints the
/// summary. `only`: the benchmarks run now; `source`: the service's source
/// tree; `started`: when the run started.
pub fn write(
    ctx: &mut Ctx,
    only: &[String],
    results: &Path,
    source: &str,
    service_version: Value,
    started: Instant,
) -> Result<()> {
    let git = git_describe(source);
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
        "corpus_real": ctx.real_desc.clone().or_else(|| prev_real(results)),
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

pub fn now() -> String {
    use notes_api::domain::timestamp;
    timestamp::format(&timestamp::now())
}

pub fn loadavg() -> String {
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
