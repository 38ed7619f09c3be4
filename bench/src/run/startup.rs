//! startup: spawn to ready on the 100k-note database against an empty one
//! and a bare hello-world.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Result, bail};
use serde_json::json;

use super::{Ctx, ctx::Figure};
use crate::{procs, stats};

impl Ctx {
    pub fn startup(&mut self) -> Result<()> {
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
