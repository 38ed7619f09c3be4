//! search, search-pg and search-1m: wrk through the service against raw
//! tantivy in-process on the same notes and queries.

use std::{
    fs,
    time::{Duration, Instant},
};

use anyhow::{Result, bail};
use serde_json::{Map, Value, json};

use super::{
    Ctx,
    backend::{Backend, PG_100K},
    ctx::{Figure, SERVICE_ADDR, f},
    data::CorpusSet,
};
use crate::{client, corpus};

impl Ctx {
    /// The search benchmark on `backend`: wrk through the service against
    /// raw tantivy in-process on the same notes and queries, same
    /// concurrency; on SQLite for both corpora, on PostgreSQL the synthetic.
    pub fn search(&mut self, backend: Backend) -> Result<()> {
        let mut sets = vec![self.synthetic()];
        if backend == Backend::Sqlite && self.set.search_real {
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

    /// search-1m: the synthetic corpus at 1,000,000 notes on SQLite, the
    /// exact-word mixes then the known-item ones (typo, as-you-type,
    /// suggest); the reference is raw tantivy on the service's own index
    /// files.
    pub fn search_1m(&mut self) -> Result<()> {
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
        // The typo, as-you-type and suggest mixes at this size, drawn from
        // the 1M notes' own titles; the reference reads the service's index.
        let index = self.data_of(&c, Backend::Sqlite).join("index");
        let t = self.tolerant_on(&c, &index)?;
        let one_cmd = d["wrk_commands"]["1term"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let one = d["http"]["1term"].clone();
        self.tolerant_figures(&t, "_1m", "synthetic 1M", &one, &one_cmd);
        let mut tolerant = Map::new();
        t.into_detail(&mut tolerant);
        d["tolerant"] = Value::Object(tolerant);
        self.details.insert(self.current.clone(), d);
        Ok(())
    }

    /// wrk through the service on corpus `c` against raw tantivy in
    /// process; the figures of one corpus. `own_ref`: build the bench's own
    /// tantivy index (else the reference reads the service's index files).
    pub fn search_on(
        &mut self,
        c: &CorpusSet,
        backend: Backend,
        p99_target: f64,
        own_ref: bool,
    ) -> Result<Value> {
        let ingested = self.ensure_data(c, backend)?;
        let data = self.data_of(c, backend);
        let db = match backend {
            Backend::Sqlite | Backend::Redis => data.join("notes.db").display().to_string(),
            Backend::Postgres => self.pg_url(PG_100K),
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
}
