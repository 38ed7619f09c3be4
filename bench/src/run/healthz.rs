//! healthz: GET /healthz req/s through wrk against a bare axum
//! hello-world with the same wrk settings, pinned and unpinned.

use std::time::Duration;

use anyhow::Result;
use serde_json::{Map, Value};

use super::{
    Ctx,
    ctx::{Figure, f},
};
use crate::procs;

impl Ctx {
    pub fn healthz(&mut self) -> Result<()> {
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
}
