//! relevance and search-tolerant (issue #22): does search find what people
//! mean, and what does finding it cost.
//!
//! - relevance: known items of the real-text corpus (`crate::relevance`)
//!   asked of the service over HTTP (its defaults), of raw tantivy (plain
//!   BM25, and tantivy's fuzzy/prefix automata) and of Meilisearch when
//!   `--meili-bin` is given.
//! - search-tolerant: wrk through the service on the typo, as-you-type,
//!   exact and mixed queries of the same generator (2,000 each) and on
//!   suggest, against raw tantivy's fuzzy and prefix queries in-process;
//!   the exact-word search mixes (the `search` benchmark's) on this binary
//!   and on `--old-service-bin`, for the q/s ratio new/old; Meilisearch's
//!   q/s on the mixed queries.

use std::{
    fs,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value, json};

use super::{
    Ctx,
    backend::Backend,
    ctx::{Figure, SERVICE_ADDR, f},
    data::{CorpusSet, batches_in},
};
use crate::{
    client, corpus,
    procs::{Server, Spec},
    relevance::KINDS,
};

pub const MEILI_ADDR: &str = "127.0.0.1:18700";
const MEILI_INDEX: &str = "notes";

/// One run of the known-item mixes on a corpus: wrk through the service
/// and raw tantivy on the same query files.
pub(super) struct TolerantRun {
    /// Where the query files are.
    pub dir: PathBuf,
    /// The generator's report and command.
    pub mixes: Value,
    pub http: Map<String, Value>,
    pub http_cmds: Map<String, Value>,
    /// Average hits and zero-hit share per kind.
    pub hits: Map<String, Value>,
    pub refs: Map<String, Value>,
    pub ref_cmds: Map<String, Value>,
    pub svc_cmd: String,
    /// What ingest reported if the data dir was filled by this run.
    pub ingested: Option<(Value, Vec<String>)>,
}

impl TolerantRun {
    /// Its figures and commands into a benchmark's details.
    pub fn into_detail(self, detail: &mut Map<String, Value>) {
        detail.insert("mixes".into(), self.mixes);
        detail.insert("http".into(), Value::Object(self.http));
        detail.insert("http_commands".into(), Value::Object(self.http_cmds));
        detail.insert("hits".into(), Value::Object(self.hits));
        detail.insert("references".into(), Value::Object(self.refs));
        detail.insert("reference_commands".into(), Value::Object(self.ref_cmds));
        detail.insert(
            "ingested_now".into(),
            json!(
                self.ingested
                    .map(|(v, c)| json!({"client": v, "commands": c}))
            ),
        );
    }
}

/// The relevance targets: success@10 per kind.
fn success_target(kind: &str) -> f64 {
    match kind {
        "exact" => 0.95,
        _ => 0.9,
    }
}

impl Ctx {
    /// Runs `f` with `bin` as the service binary.
    fn with_service<T>(&mut self, bin: &Path, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        let saved = std::mem::replace(&mut self.service, bin.to_owned());
        let r = f(self);
        self.service = saved;
        r
    }

    /// The corpus set `c` on the old binary's own data dir.
    fn old_set(c: &CorpusSet) -> CorpusSet {
        CorpusSet {
            data: format!("{}-old", c.data),
            ..c.clone()
        }
    }

    fn meili_spec(&self, bin: &Path) -> Spec {
        let dir = self.work.join("meili-real");
        Spec {
            program: bin.to_owned(),
            args: vec![
                "--db-path".into(),
                dir.join("data.ms").display().to_string(),
                "--dump-dir".into(),
                dir.join("dumps").display().to_string(),
                "--http-addr".into(),
                MEILI_ADDR.into(),
                "--no-analytics".into(),
                "--env".into(),
                "development".into(),
                "--http-payload-size-limit".into(),
                "200MB".into(),
                "--log-level".into(),
                "WARN".into(),
            ],
            env: vec![],
            cpus: None,
            addr: MEILI_ADDR.into(),
            log: self.log("meilisearch"),
        }
    }

    /// Meilisearch holding the real-text corpus (indexed on first use, then
    /// reused); returns the server and the indexing report when it ran now.
    fn meili_on(&self, c: &CorpusSet) -> Result<Option<(Server, Value, String)>> {
        let Some(bin) = self.set.meili_bin.clone() else {
            return Ok(None);
        };
        let dir = self.work.join("meili-real");
        let marker = dir.join(".complete");
        let fresh = fs::read_to_string(&marker).ok() != Some(c.desc["params"].to_string());
        if fresh {
            crate::procs::fresh_dir(&dir)?;
        }
        let spec = self.meili_spec(&bin);
        let mut server = spec.spawn()?;
        server.wait_ready(
            "/health",
            Duration::from_millis(20),
            Duration::from_secs(120),
        )?;
        let mut report = json!({"reused": !fresh});
        if fresh {
            let t = Instant::now();
            let call = |method: &str, path: &str, ct: Option<&str>, body: &[u8]| -> Result<Value> {
                let r =
                    client::request(MEILI_ADDR, method, path, ct, body, Duration::from_secs(600))?;
                if r.status >= 300 {
                    bail!(
                        "meilisearch {method} {path}: HTTP {}: {}",
                        r.status,
                        String::from_utf8_lossy(&r.body)
                    );
                }
                r.json()
            };
            let json_ct = Some("application/json");
            call(
                "POST",
                "/indexes",
                json_ct,
                json!({"uid": MEILI_INDEX, "primaryKey": "external_id"})
                    .to_string()
                    .as_bytes(),
            )?;
            // Titles before bodies (its `attribute` rule ranks a title match
            // higher); the rest of its settings are its defaults.
            call(
                "PATCH",
                &format!("/indexes/{MEILI_INDEX}/settings"),
                json_ct,
                json!({"searchableAttributes": ["title", "body"],
                       "displayedAttributes": ["external_id", "title", "body", "tags"]})
                .to_string()
                .as_bytes(),
            )?;
            for file in batches_in(&c.dir)? {
                let body = fs::read(&file)?;
                call(
                    "POST",
                    &format!("/indexes/{MEILI_INDEX}/documents"),
                    Some("application/x-ndjson"),
                    &body,
                )?;
            }
            loop {
                let v = call(
                    "GET",
                    "/tasks?statuses=enqueued,processing&limit=1",
                    None,
                    b"",
                )?;
                if v["total"].as_u64() == Some(0) {
                    break;
                }
                if t.elapsed() > Duration::from_secs(3600) {
                    bail!("meilisearch still indexing after an hour");
                }
                std::thread::sleep(Duration::from_secs(2));
            }
            let failed = call("GET", "/tasks?statuses=failed&limit=5", None, b"")?;
            if failed["total"].as_u64() != Some(0) {
                bail!("meilisearch tasks failed: {failed}");
            }
            let stats = call("GET", &format!("/indexes/{MEILI_INDEX}/stats"), None, b"")?;
            let expected = c.desc["notes"].as_u64();
            if stats["numberOfDocuments"].as_u64() != expected {
                bail!(
                    "meilisearch holds {} documents, expected {expected:?}",
                    stats["numberOfDocuments"]
                );
            }
            report =
                json!({"reused": false, "index_secs": t.elapsed().as_secs_f64(), "stats": stats});
            fs::write(&marker, c.desc["params"].to_string())?;
        }
        let version = client::get(MEILI_ADDR, "/version", Duration::from_secs(5))?.json()?;
        report["version"] = version;
        Ok(Some((server, report, spec.command_line())))
    }

    /// relevance: the known-item evaluation (see `crate::relevance`).
    pub fn relevance(&mut self) -> Result<()> {
        let c = self.real()?;
        let ingested = self.ensure_data(&c, Backend::Sqlite)?;
        let (index, _, build_cmd) = self.ensure_tantivy(&c)?;
        let meili = self.meili_on(&c)?;
        let spec = self.service_on(&c, Backend::Sqlite, "service-relevance");
        let mut server = spec.spawn()?;
        server.wait_ready(
            "/readyz",
            Duration::from_millis(5),
            Duration::from_secs(300),
        )?;
        let items = self.work.join("relevance-items.json");
        let mut args: Vec<String> = vec![
            "relevance".into(),
            "--corpus".into(),
            c.dir.display().to_string(),
            "--addr".into(),
            SERVICE_ADDR.into(),
            "--index".into(),
            index.display().to_string(),
            "--targets".into(),
            self.set.relevance_targets.to_string(),
            "--items-out".into(),
            items.display().to_string(),
        ];
        if meili.is_some() {
            args.extend(["--meili".into(), MEILI_ADDR.into()]);
        }
        let (v, cmd) = self.sub(&args)?;
        server.stop()?;
        let (meili_report, meili_cmd) = match meili {
            Some((m, report, cmd)) => {
                m.stop()?;
                (report, Some(cmd))
            }
            None => (Value::Null, None),
        };
        let e = &v["engines"];
        let mut cmds = vec![spec.command_line(), build_cmd, cmd.clone()];
        cmds.extend(meili_cmd.clone());
        for kind in KINDS {
            let s = &e["service"][kind];
            let bm25 = &e["tantivy_bm25"][kind];
            let m = &e["meilisearch"][kind];
            let has_meili = !m.is_null();
            let succ = f(s, &["success_at_10"]);
            let target = success_target(kind);
            let meili_ok = !has_meili || kind == "exact" || succ >= f(m, &["success_at_10"]);
            self.push(Figure {
                id: format!("relevance_{kind}_success_at_10"),
                name: format!(
                    "Known items, {kind} queries, real-text 100k, the service over HTTP (defaults): success@10 (MRR {:.3}; {:.2} on the {} items whose words are in fewer than 10 other titles; raw BM25 {:.2} / MRR {:.3}{})",
                    f(s, &["mrr"]),
                    f(s, &["unambiguous", "success_at_10"]),
                    f(s, &["unambiguous", "queries"]),
                    f(bm25, &["success_at_10"]),
                    f(bm25, &["mrr"]),
                    if has_meili {
                        format!("; Meilisearch {:.2} / MRR {:.3}", f(m, &["success_at_10"]), f(m, &["mrr"]))
                    } else {
                        String::new()
                    }
                ),
                value: succ,
                unit: "share".into(),
                target: if kind == "exact" {
                    format!(">= {target}")
                } else {
                    format!(">= {target} and >= Meilisearch")
                },
                pass: Some(succ >= target && meili_ok),
                reference: if has_meili {
                    "Meilisearch (defaults), same notes and queries: success@10".into()
                } else {
                    "raw tantivy, plain BM25 over the exact words (title^4, body): success@10".into()
                },
                reference_value: Some(if has_meili {
                    f(m, &["success_at_10"])
                } else {
                    f(bm25, &["success_at_10"])
                }),
                ratio: None,
                commands: cmds.clone(),
            });
            self.push(Figure {
                id: format!("relevance_{kind}_mrr"),
                name: format!("Known items, {kind} queries, real-text 100k, the service over HTTP: MRR (top 10)"),
                value: f(s, &["mrr"]),
                unit: "MRR".into(),
                target: if kind == "exact" { ">= 0.72".into() } else { "(reported)".into() },
                pass: (kind == "exact").then(|| f(s, &["mrr"]) >= 0.72),
                reference: "raw tantivy, plain BM25 over the exact words: MRR".into(),
                reference_value: Some(f(bm25, &["mrr"])),
                ratio: None,
                commands: cmds.clone(),
            });
        }
        let mut d = v.clone();
        d["command"] = json!(cmd);
        d["items_file"] = json!(items);
        d["meilisearch"] = json!({"report": meili_report, "command": meili_cmd});
        d["ingested_now"] = json!(ingested.map(|(v, c)| json!({"client": v, "commands": c})));
        self.details.insert(self.current.clone(), d);
        Ok(())
    }

    /// wrk on `paths` (files under `dir`), `dur` seconds each; results by name.
    fn wrk_set(
        &self,
        url: &str,
        files: &[(&str, PathBuf)],
        dur: u32,
        tag: &str,
        out: &mut Map<String, Value>,
        cmds: &mut Map<String, Value>,
    ) -> Result<()> {
        let conns = self.set.search_connections;
        for (name, file) in files {
            let (v, cmd) = self.wrk(
                None,
                conns,
                dur,
                "search.lua",
                url,
                &[file.display().to_string()],
                &format!("wrk-tolerant-{tag}-{name}"),
            )?;
            eprintln!(
                "   {tag} {name}: {:.0} q/s, p50 {:.2} ms, p99 {:.2} ms",
                f(&v, &["rps"]),
                f(&v, &["latency_us", "p50"]) / 1000.0,
                f(&v, &["latency_us", "p99"]) / 1000.0
            );
            out.insert((*name).into(), v);
            cmds.insert((*name).into(), json!(cmd));
        }
        Ok(())
    }

    /// The existing exact-word mixes of corpus `c` through `bin` on its
    /// own data dir.
    fn exact_mixes(
        &mut self,
        c: &CorpusSet,
        bin: &Path,
        old: bool,
        out: &mut Map<String, Value>,
        cmds: &mut Map<String, Value>,
    ) -> Result<String> {
        let set = if old { Self::old_set(c) } else { c.clone() };
        let who = if old { "old" } else { "new" };
        let dur = self.set.search_duration_s;
        self.with_service(bin, |ctx| {
            ctx.ensure_data(&set, Backend::Sqlite)?;
            let spec = ctx.service_on(
                &set,
                Backend::Sqlite,
                &format!("service-tolerant-{who}-{}", c.label),
            );
            let mut server = spec.spawn()?;
            server.wait_ready(
                "/readyz",
                Duration::from_millis(5),
                Duration::from_secs(300),
            )?;
            let url = format!("http://{SERVICE_ADDR}/");
            let mut files: Vec<(&str, PathBuf)> = corpus::QUERY_KINDS
                .iter()
                .map(|k| (*k, c.dir.join(format!("queries-{k}.paths"))))
                .collect();
            if !old {
                // The same queries with typos and as-you-type off: what
                // the rest of the change (index format 2, tie-break by id,
                // fast fields) costs on its own.
                let strict = [
                    "1term-strict",
                    "2term-strict",
                    "phrase-strict",
                    "prefix-strict",
                ];
                for (k, name) in corpus::QUERY_KINDS.iter().zip(strict) {
                    let text = fs::read_to_string(c.dir.join(format!("queries-{k}.paths")))?;
                    let lines: Vec<String> = text
                        .lines()
                        .filter(|l| !l.is_empty())
                        .map(|l| format!("{l}&typos=false&prefix_last=false"))
                        .collect();
                    let p = ctx.work.join(format!("queries-{}-{name}.paths", c.label));
                    fs::write(&p, lines.join("\n") + "\n")?;
                    files.push((name, p));
                }
            }
            ctx.wrk(
                None,
                ctx.set.search_connections,
                3,
                "search.lua",
                &url,
                &[files[0].1.display().to_string()],
                &format!("wrk-tolerant-{who}-{}-warmup", c.label),
            )?;
            ctx.wrk_set(&url, &files, dur, &format!("{who}-{}", c.label), out, cmds)?;
            server.stop()?;
            Ok(spec.command_line())
        })
    }

    /// The known-item mixes of corpus `c` (exact, exact-strict, typo,
    /// as-you-type, mixed, suggest) through this binary on its data dir of
    /// `c`, then the same queries in raw tantivy in-process on `ref_index`
    /// (fuzzy/prefix automata; plain terms for exact-strict).
    pub(super) fn tolerant_on(&mut self, c: &CorpusSet, ref_index: &Path) -> Result<TolerantRun> {
        let dur = self.set.search_duration_s;
        let conns = self.set.search_connections;
        let dir = match c.label {
            "real" => self.work.join("tolerant-mixes"),
            other => self.work.join(format!("tolerant-mixes-{other}")),
        };
        let (mv, mixes_cmd) = self.sub(&[
            "tolerant-mixes".into(),
            "--corpus".into(),
            c.dir.display().to_string(),
            "--out".into(),
            dir.display().to_string(),
            "--items".into(),
            self.set.tolerant_queries.to_string(),
        ])?;
        let ingested = self.ensure_data(c, Backend::Sqlite)?;
        let spec = self.service_on(
            c,
            Backend::Sqlite,
            &format!("service-tolerant-mixes-{}", c.label),
        );
        let mut server = spec.spawn()?;
        server.wait_ready(
            "/readyz",
            Duration::from_millis(5),
            Duration::from_secs(300),
        )?;
        let url = format!("http://{SERVICE_ADDR}/");
        let names = ["exact-strict", "exact", "typo", "typing", "mixed"];
        let mut files: Vec<(&str, PathBuf)> = names
            .iter()
            .map(|k| (*k, dir.join(format!("queries-{k}.paths"))))
            .collect();
        files.push(("suggest", dir.join("suggest.paths")));
        self.wrk(
            None,
            conns,
            3,
            "search.lua",
            &url,
            &[files[3].1.display().to_string()],
            &format!("wrk-tolerant-{}-warmup", c.label),
        )?;
        let (mut http, mut http_cmds) = (Map::new(), Map::new());
        self.wrk_set(
            &url,
            &files,
            dur,
            &format!("new-{}", c.label),
            &mut http,
            &mut http_cmds,
        )?;
        // Sanity: what each kind finds on average (first 200 queries).
        let mut hits = Map::new();
        for k in names {
            let lines = fs::read_to_string(dir.join(format!("queries-{k}.paths")))?;
            let (mut total, mut zero, mut n) = (0u64, 0u64, 0u64);
            for p in lines.lines().take(200) {
                let r = client::get(SERVICE_ADDR, p, Duration::from_secs(30))?;
                let t = r.json()?["total"].as_u64().context("no total")?;
                total += t;
                zero += u64::from(t == 0);
                n += 1;
            }
            hits.insert(k.into(), json!({"avg_total": total as f64 / n as f64, "zero_hit_share": zero as f64 / n as f64}));
        }
        server.stop()?;
        let (mut refs, mut ref_cmds) = (Map::new(), Map::new());
        for (k, mode) in [
            ("exact-strict", "tantivy"),
            ("exact", "tantivy-tolerant"),
            ("typo", "tantivy-tolerant"),
            ("typing", "tantivy-tolerant"),
            ("mixed", "tantivy-tolerant"),
        ] {
            let (v, cmd) = self.sub(&[
                "search-ref".into(),
                "--queries".into(),
                dir.join(format!("queries-{k}.txt")).display().to_string(),
                "--mode".into(),
                mode.into(),
                "--concurrency".into(),
                conns.to_string(),
                "--duration".into(),
                dur.to_string(),
                "--index".into(),
                ref_index.display().to_string(),
            ])?;
            refs.insert(k.into(), v);
            ref_cmds.insert(k.into(), json!(cmd));
        }
        Ok(TolerantRun {
            mixes: json!({"report": mv, "command": mixes_cmd}),
            dir,
            http,
            http_cmds,
            hits,
            refs,
            ref_cmds,
            svc_cmd: spec.command_line(),
            ingested,
        })
    }

    /// The figures of a tolerant run `t` on corpus `cname`: q/s of each
    /// kind against raw tantivy, the typo and as-you-type p99 against the
    /// exact words', and suggest against `one_term` (1-term search, same
    /// binary and corpus). `id` goes into the figures' ids after `tolerant`.
    pub(super) fn tolerant_figures(
        &mut self,
        t: &TolerantRun,
        id: &str,
        cname: &str,
        one_term: &Value,
        one_term_cmd: &str,
    ) {
        let conns = self.set.search_connections;
        let qps = |v: &Value| f(v, &["rps"]);
        let p99 = |v: &Value| f(v, &["latency_us", "p99"]) / 1000.0;
        let p50 = |v: &Value| f(v, &["latency_us", "p50"]) / 1000.0;
        let cmd = |m: &Map<String, Value>, k: &str| m[k].as_str().unwrap_or_default().to_owned();
        let strict = &t.http["exact-strict"];
        for k in ["exact", "typo", "typing", "mixed"] {
            let h = &t.http[k];
            let r = &t.refs[k];
            self.push(Figure {
                id: format!("tolerant{id}_{k}_qps"),
                name: format!("Search {k} (known-item generator, {} queries), {cname}, HTTP, {conns} connections, defaults: q/s (p50 {:.2} ms, p99 {:.2} ms; avg hits {:.0})", self.set.tolerant_queries, p50(h), p99(h), f(&t.hits[k], &["avg_total"])),
                value: qps(h),
                unit: "q/s".into(),
                target: "(reported)".into(),
                pass: None,
                reference: "raw tantivy in-process, FuzzyTermQuery (transpositions 1) / prefix automata, top 20 + Count + docs: q/s".into(),
                reference_value: Some(f(r, &["qps"])),
                ratio: Some(qps(h) / f(r, &["qps"])),
                commands: vec![t.svc_cmd.clone(), cmd(&t.http_cmds, k), cmd(&t.ref_cmds, k)],
            });
        }
        for k in ["typo", "typing"] {
            let h = &t.http[k];
            let ratio = p99(h) / p99(strict);
            self.push(Figure {
                id: format!("tolerant{id}_{k}_p99_over_exact"),
                name: format!(
                    "Search {k}, {cname}, HTTP, {conns} connections: p99 (p50 {:.2} ms)",
                    p50(h)
                ),
                value: p99(h),
                unit: "ms".into(),
                target: "<= 2x the exact-word p99".into(),
                pass: Some(ratio <= 2.0),
                reference: "the same words typed exactly, typos=false&prefix_last=false: p99 ms"
                    .into(),
                reference_value: Some(p99(strict)),
                ratio: Some(ratio),
                commands: vec![
                    t.svc_cmd.clone(),
                    cmd(&t.http_cmds, k),
                    cmd(&t.http_cmds, "exact-strict"),
                ],
            });
        }
        let s = &t.http["suggest"];
        self.push(Figure {
            id: format!("tolerant{id}_suggest_qps"),
            name: format!("Suggest, 2-4 letter prefixes, {cname}, HTTP, {conns} connections: q/s (p50 {:.2} ms, p99 {:.2} ms)", p50(s), p99(s)),
            value: qps(s),
            unit: "q/s".into(),
            target: ">= 1-term search q/s".into(),
            pass: Some(qps(s) >= qps(one_term)),
            reference: format!("1-term search, {cname}, same binary, same run: q/s"),
            reference_value: Some(qps(one_term)),
            ratio: Some(qps(s) / qps(one_term)),
            commands: vec![t.svc_cmd.clone(), cmd(&t.http_cmds, "suggest"), one_term_cmd.to_owned()],
        });
    }

    /// search-tolerant: the speed of typo tolerance and as-you-type.
    pub fn search_tolerant(&mut self) -> Result<()> {
        let real = self.real()?;
        let synthetic = self.synthetic();
        let dur = self.set.search_duration_s;
        let conns = self.set.search_connections;
        let mut detail = Map::new();
        // 1. The exact-word mixes, this binary and the old one, both corpora.
        let me = self.service.clone();
        let mut exact = Map::new();
        let mut exact_cmds = Map::new();
        for c in [&synthetic, &real] {
            let mut runs = vec![(false, me.clone())];
            if let Some(old) = self.set.old_service_bin.clone() {
                runs.push((true, old));
            }
            for (old, bin) in runs {
                let who = if old { "old" } else { "new" };
                let (mut out, mut cmds) = (Map::new(), Map::new());
                let svc = self.exact_mixes(c, &bin, old, &mut out, &mut cmds)?;
                cmds.insert("service".into(), json!(svc));
                exact.insert(format!("{who}-{}", c.label), Value::Object(out));
                exact_cmds.insert(format!("{who}-{}", c.label), Value::Object(cmds));
            }
        }
        // 2, 3. The tolerant mixes and suggest on this binary (real text),
        //    against raw tantivy on the bench's own index of the same notes.
        let (index, _, _) = self.ensure_tantivy(&real)?;
        let t = self.tolerant_on(&real, &index)?;
        // 4. Meilisearch on the same queries (its defaults).
        let mut meili = Map::new();
        let mut meili_cmds = Map::new();
        let mut meili_report = Value::Null;
        if let Some((m, report, cmd)) = self.meili_on(&real)? {
            let murl = format!("http://{MEILI_ADDR}/");
            let mfiles: Vec<(&str, PathBuf)> = ["typo", "typing", "mixed"]
                .iter()
                .map(|k| (*k, t.dir.join(format!("meili-{k}.paths"))))
                .collect();
            self.wrk(
                None,
                conns,
                3,
                "search.lua",
                &murl,
                &[mfiles[2].1.display().to_string()],
                "wrk-tolerant-meili-warmup",
            )?;
            self.wrk_set(&murl, &mfiles, dur, "meili", &mut meili, &mut meili_cmds)?;
            m.stop()?;
            meili_report = report;
            meili_cmds.insert("server".into(), json!(cmd));
        }
        // Figures.
        let qps = |v: &Value| f(v, &["rps"]);
        let p99 = |v: &Value| f(v, &["latency_us", "p99"]) / 1000.0;
        let p50 = |v: &Value| f(v, &["latency_us", "p50"]) / 1000.0;
        if self.set.old_service_bin.is_some() {
            for c in ["synthetic", "real"] {
                for k in corpus::QUERY_KINDS {
                    let n = &exact[&format!("new-{c}")][k];
                    let o = &exact[&format!("old-{c}")][k];
                    let r = qps(n) / qps(o);
                    self.push(Figure {
                        id: format!("tolerant_exact_mix_{c}_{k}_qps_new_over_old"),
                        name: format!("Search {k}, {c} 100k, HTTP, {conns} connections, defaults (typos, prefix_last): q/s of this binary (p99 {:.2} ms; old {:.2} ms)", p99(n), p99(o)),
                        value: qps(n),
                        unit: "q/s".into(),
                        target: ">= 0.8x the old binary".into(),
                        pass: Some(r >= 0.8),
                        reference: "the binary of the commit before the search change (e3e91a1 unless told), own data dir, same queries: q/s".into(),
                        reference_value: Some(qps(o)),
                        ratio: Some(r),
                        commands: vec![
                            exact_cmds[&format!("new-{c}")]["service"].as_str().unwrap_or_default().to_owned(),
                            exact_cmds[&format!("new-{c}")][k].as_str().unwrap_or_default().to_owned(),
                            exact_cmds[&format!("old-{c}")]["service"].as_str().unwrap_or_default().to_owned(),
                            exact_cmds[&format!("old-{c}")][k].as_str().unwrap_or_default().to_owned(),
                        ],
                    });
                }
            }
        }
        if self.set.old_service_bin.is_some() {
            for c in ["synthetic", "real"] {
                for k in corpus::QUERY_KINDS {
                    let n = &exact[&format!("new-{c}")][&format!("{k}-strict")];
                    let o = &exact[&format!("old-{c}")][k];
                    self.push(Figure {
                        id: format!("tolerant_exact_mix_{c}_{k}_strict_qps_new_over_old"),
                        name: format!("Search {k}, {c} 100k, HTTP, {conns} connections, typos=false&prefix_last=false: q/s of this binary (p99 {:.2} ms; old {:.2} ms)", p99(n), p99(o)),
                        value: qps(n),
                        unit: "q/s".into(),
                        target: "(reported: the change without tolerance)".into(),
                        pass: None,
                        reference: "the old binary, same queries (it has no tolerance): q/s".into(),
                        reference_value: Some(qps(o)),
                        ratio: Some(qps(n) / qps(o)),
                        commands: vec![
                            exact_cmds[&format!("new-{c}")][&format!("{k}-strict")].as_str().unwrap_or_default().to_owned(),
                            exact_cmds[&format!("old-{c}")][k].as_str().unwrap_or_default().to_owned(),
                        ],
                    });
                }
            }
        }
        let one_cmd = exact_cmds["new-real"]["1term"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        self.tolerant_figures(
            &t,
            "",
            "real-text 100k",
            &exact["new-real"]["1term"],
            &one_cmd,
        );
        if !meili.is_empty() {
            for k in ["mixed", "typo", "typing"] {
                let h = &t.http[k];
                let m = &meili[k];
                let r = qps(h) / qps(m);
                self.push(Figure {
                    id: format!("tolerant_{k}_qps_over_meilisearch"),
                    name: format!("Search {k}, real-text 100k, HTTP, {conns} connections: q/s of the service (p99 {:.2} ms; Meilisearch p99 {:.2} ms)", p99(h), p99(m)),
                    value: qps(h),
                    unit: "q/s".into(),
                    target: if k == "mixed" { ">= 4x Meilisearch".into() } else { "(reported)".into() },
                    pass: (k == "mixed").then_some(r >= 4.0),
                    reference: "Meilisearch (defaults: typos, last word prefix), same notes and queries, 20 hits with title/body highlighted and the body cropped to 24 words: q/s".into(),
                    reference_value: Some(qps(m)),
                    ratio: Some(r),
                    commands: vec![t.svc_cmd.clone(), t.http_cmds[k].as_str().unwrap_or_default().to_owned(), meili_cmds["server"].as_str().unwrap_or_default().to_owned(), meili_cmds[k].as_str().unwrap_or_default().to_owned()],
                });
            }
        }
        detail.insert("exact_mixes".into(), Value::Object(exact));
        detail.insert("exact_mix_commands".into(), Value::Object(exact_cmds));
        t.into_detail(&mut detail);
        detail.insert(
            "meilisearch".into(),
            json!({"http": meili, "commands": meili_cmds, "report": meili_report}),
        );
        detail.insert("old_service_bin".into(), json!(self.set.old_service_bin));
        self.details
            .insert(self.current.clone(), Value::Object(detail));
        Ok(())
    }
}
