//! ingest and ingest-pg: the 100k-note corpus over HTTP against raw sqlx
//! bulk inserts plus raw tantivy indexing of the same rows.

use std::fs;

use anyhow::Result;
use serde_json::{Map, Value, json};

use super::{
    Ctx,
    backend::{Backend, PG_REF},
    ctx::{Figure, f, push_run},
    data::batches_in,
};
use crate::stats;

impl Ctx {
    /// The ingest benchmark on `backend`: the service over HTTP against raw
    /// sqlx bulk inserts of the same rows into the same schema plus raw
    /// tantivy indexing of them, in the same run.
    pub fn ingest(&mut self, backend: Backend) -> Result<()> {
        let c = self.synthetic();
        let files = batches_in(&c.dir)?;
        let dbdir = self.work.join("ingest");
        fs::create_dir_all(&dbdir)?;
        let mut runs: Map<String, Value> = Map::new();
        let mut cmds: Map<String, Value> = Map::new();
        let mut secs: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
        let raw_modes: &[&str] = match backend {
            Backend::Sqlite | Backend::Redis => &["multirow", "batchjson"],
            Backend::Postgres => &["pg-unnest"],
        };
        let ref_db = |name: &str| -> Result<String> {
            Ok(match backend {
                Backend::Sqlite | Backend::Redis => {
                    dbdir.join(format!("{name}.db")).display().to_string()
                }
                Backend::Postgres => {
                    self.fresh_pg_db(PG_REF)?;
                    self.pg_url(PG_REF)
                }
            })
        };
        let reps = match backend {
            Backend::Sqlite | Backend::Redis => self.set.ingest_reps,
            Backend::Postgres => self.set.ingest_pg_reps,
        };
        for rep in 0..reps {
            for &mode in raw_modes {
                let mut a = vec![
                    "raw-ingest".to_owned(),
                    "--db".into(),
                    ref_db(&format!("raw-{mode}"))?,
                    "--mode".into(),
                    mode.into(),
                    "--index".into(),
                    dbdir.join(format!("tantivy-{mode}")).display().to_string(),
                ];
                a.extend(files.iter().cloned());
                let (v, cmd) = self.sub(&a)?;
                let key = format!("raw_{}", mode.replace('-', "_"));
                secs.entry(key.clone()).or_default().push(f(&v, &["secs"]));
                secs.entry(format!("{key}_sql"))
                    .or_default()
                    .push(f(&v, &["sql_secs"]));
                secs.entry(format!("{key}_index"))
                    .or_default()
                    .push(f(&v, &["index_secs"]));
                push_run(&mut runs, &key, v);
                cmds.insert(key, json!(cmd));
            }
            if rep == 0 {
                let mut a = vec!["inproc-ingest".to_owned(), "--db".into(), ref_db("inproc")?];
                a.extend(files.iter().cloned());
                let (v, cmd) = self.sub(&a)?;
                secs.entry("inproc_store".into())
                    .or_default()
                    .push(f(&v, &["secs"]));
                push_run(&mut runs, "inproc_store", v);
                cmds.insert("inproc_store".into(), json!(cmd));
            }
            let (mut v, hwm, cm) = self.http_ingest_once(&c, backend)?;
            v["server_vmhwm_kb"] = json!(hwm);
            secs.entry("http".into())
                .or_default()
                .push(f(&v, &["secs"]));
            push_run(&mut runs, "http", v);
            cmds.insert("http".into(), json!(cm));
            eprintln!(
                "   rep {}: {:?}",
                rep + 1,
                secs.iter()
                    .map(|(k, v)| (k, v.last().copied().unwrap_or(0.0)))
                    .collect::<Vec<_>>()
            );
        }
        let notes = c.desc["notes"].as_f64().unwrap_or(100_000.0);
        let med: std::collections::BTreeMap<String, f64> = secs
            .iter()
            .map(|(k, v)| (k.clone(), stats::median(v)))
            .collect();
        let ref_key = if backend == Backend::Postgres {
            "raw_pg_unnest"
        } else if med["raw_batchjson"] <= med["raw_multirow"] {
            "raw_batchjson"
        } else {
            "raw_multirow"
        };
        let ref_secs = med[ref_key];
        let (sx, db) = (backend.suffix(), backend.label());
        let target = match backend {
            Backend::Sqlite | Backend::Redis => 20_000.0,
            Backend::Postgres => 10_000.0,
        };
        let http = med["http"];
        let mut commands: Vec<String> = cmds["http"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap_or_default().to_owned())
            .collect();
        commands.push(cmds[ref_key].as_str().unwrap_or_default().to_owned());
        let rate = notes / http;
        self.push(Figure {
            id: format!("ingest_http_notes_per_s{sx}"),
            name: format!(
                "Ingest over HTTP, {db}, NDJSON {}-line batches, searchable on return (median of {reps})",
                c.desc["params"]["batch"]
            ),
            value: rate,
            unit: "notes/s".into(),
            target: format!(">= {target:.0}"),
            pass: Some(rate >= target),
            reference: format!(
                "raw sqlx insert of the same rows + raw tantivy indexing, one commit each per batch ({ref_key}), notes/s"
            ),
            reference_value: Some(notes / ref_secs),
            ratio: Some(rate / (notes / ref_secs)),
            commands: commands.clone(),
        });
        self.push(Figure {
            id: format!("ingest_http_time_vs_raw{sx}"),
            name: format!("Ingest over HTTP, {db}: time / (raw sqlx + raw tantivy) time"),
            value: http / ref_secs,
            unit: "x".into(),
            target: "<= 1.5".into(),
            pass: Some(http / ref_secs <= 1.5),
            reference: format!(
                "raw reference ({ref_key}): {ref_secs:.2} s = sqlx {:.2} s + tantivy {:.2} s",
                med[&format!("{ref_key}_sql")],
                med[&format!("{ref_key}_index")]
            ),
            reference_value: Some(ref_secs),
            ratio: Some(http / ref_secs),
            commands: commands.clone(),
        });
        self.push(Figure {
            id: format!("ingest_inproc_store_notes_per_s{sx}"),
            name: format!("Ingest, {db}: the service's reader + Store::ingest in-process, no HTTP, no index (what the index adds)"),
            value: notes / med["inproc_store"],
            unit: "notes/s".into(),
            target: "(reported)".into(),
            pass: None,
            reference: "over HTTP with the index, notes/s".into(),
            reference_value: Some(rate),
            ratio: Some((notes / med["inproc_store"]) / rate),
            commands: vec![cmds["inproc_store"].as_str().unwrap_or_default().to_owned()],
        });
        self.details.insert(
            self.current.clone(),
            json!({"backend": db, "median_secs": med, "runs": runs, "commands": cmds, "reference": ref_key}),
        );
        Ok(())
    }
}
