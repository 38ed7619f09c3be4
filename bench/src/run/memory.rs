//! memory: idle RSS on the 100k-note database against a bare hello-world,
//! and the peak while ingesting one 64 MiB body against the raw reference.

use std::{fs, time::Duration};

use anyhow::Result;
use serde_json::json;

use super::{
    Ctx,
    ctx::{Figure, HELLO_ADDR, SERVICE_ADDR},
};
use crate::{client, procs};

impl Ctx {
    pub fn memory(&mut self) -> Result<()> {
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
            // 64 MiB of the corpus's notes is 68,000 of them, over the
            // default note limit of a batch.
            &[
                ("NOTES_MAX_INGEST_BYTES", limit.to_string()),
                ("NOTES_MAX_INGEST_NOTES", "1000000".to_owned()),
            ],
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
}
