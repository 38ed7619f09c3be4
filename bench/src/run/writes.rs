//! writes: single-note writes while wrk searches, and the raw floor.

use std::{fs, process::Command, time::Duration};

use anyhow::{Result, bail};
use serde_json::{Map, Value, json};

use super::{
    Ctx,
    ctx::{Figure, SERVICE_ADDR, f},
};
use crate::procs;

impl Ctx {
    /// Single-note writes (POST /api/v1/notes) while wrk searches, on a copy
    /// of the 100k-note data dir: the POST returns once the note is
    /// searchable, so its latency is the write-to-searchable latency; every
    /// note is then looked up by a search.
    pub fn writes(&mut self) -> Result<()> {
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
}
