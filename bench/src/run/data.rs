//! The corpora and the service's data dirs they are ingested into, shared
//! by ingest, search, memory, startup and writes.

use std::{
    fs,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Result, bail};
use serde_json::{Value, json};

use super::{
    Ctx,
    backend::{Backend, PG_100K},
    ctx::SERVICE_ADDR,
};
use crate::{
    corpus,
    procs::{self, Spec},
};

/// A corpus and the service data dir it is ingested into.
#[derive(Clone)]
pub struct CorpusSet {
    pub label: &'static str,
    pub dir: PathBuf,
    pub desc: Value,
    /// The data dir's name under the work dir (a backend suffix is added).
    pub data: String,
}

/// The NDJSON batches of a corpus directory, in order.
pub fn batches_in(dir: &Path) -> Result<Vec<String>> {
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

impl Ctx {
    pub fn data_100k(&self) -> PathBuf {
        self.work.join("data-100k")
    }

    /// The synthetic 100k-note corpus (the ingest, memory and start-up one).
    pub fn synthetic(&self) -> CorpusSet {
        CorpusSet {
            label: "synthetic",
            dir: self.corpus.clone(),
            desc: self.corpus_desc.clone(),
            data: "data-100k".into(),
        }
    }

    /// The real-text corpus (Debian's kernel and Python docs and man
    /// pages), generated on first use.
    pub fn real(&mut self) -> Result<CorpusSet> {
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
    pub fn million(&self) -> Result<CorpusSet> {
        let dir = self.corpus.with_file_name("corpus-1m");
        let p = corpus::Params {
            notes: self.set.million_notes,
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

    pub fn data_of(&self, c: &CorpusSet, backend: Backend) -> PathBuf {
        self.work.join(format!("{}{}", c.data, backend.suffix()))
    }

    /// The service on the data dir of corpus `c` on `backend`.
    pub fn service_on(&self, c: &CorpusSet, backend: Backend, log: &str) -> Spec {
        let env = self.backend_env(backend, PG_100K);
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
    pub fn http_ingest_once(
        &self,
        c: &CorpusSet,
        backend: Backend,
    ) -> Result<(Value, u64, Vec<String>)> {
        let data = self.data_of(c, backend);
        procs::fresh_dir(&data)?;
        if backend == Backend::Postgres {
            self.fresh_pg_db(PG_100K)?;
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
    pub fn ensure_100k(&mut self) -> Result<()> {
        let c = self.synthetic();
        self.ensure_data(&c, Backend::Sqlite).map(|_| ())
    }

    /// Makes sure the service's data dir for `c` holds the corpus (ingested
    /// over HTTP if not); returns that ingest's report when it ran.
    pub fn ensure_data(
        &mut self,
        c: &CorpusSet,
        backend: Backend,
    ) -> Result<Option<(Value, Vec<String>)>> {
        let marker = self.data_of(c, backend).join(".complete");
        let expected = c.desc["notes"].as_u64();
        if fs::read_to_string(&marker).ok() == Some(c.desc["params"].to_string())
            && (backend != Backend::Postgres || self.pg_count(PG_100K) == expected)
        {
            return Ok(None);
        }
        eprintln!("   (ingesting the {} corpus over HTTP first)", c.label);
        let (v, _, cmds) = self.http_ingest_once(c, backend)?;
        Ok(Some((v, cmds)))
    }

    /// The raw tantivy reference index of corpus `c` (built once per corpus).
    pub fn ensure_tantivy(&self, c: &CorpusSet) -> Result<(PathBuf, Value, String)> {
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
}
