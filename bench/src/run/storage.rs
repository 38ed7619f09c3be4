//! storage: attachments through the API against plain object_store, on
//! local files and on a real S3 server; and multipart/form-data uploads
//! against raw-body uploads of the same bytes.

use std::{fs, time::Duration};

use anyhow::{Result, bail};
use serde_json::{Map, Value, json};

use super::{
    Ctx,
    ctx::{Figure, S3_ADDR, SERVICE_ADDR, f, push_run},
};
use crate::{
    client,
    procs::{self, Spec},
    stats,
    storage::{self, Form},
};

/// The detail key of an upload step: raw bodies keep the key they had
/// before multipart uploads were measured.
fn upload_key(size: &str, form: Form) -> String {
    match form {
        Form::Raw => format!("{size}_upload"),
        Form::Multipart => format!("{size}_multipart_upload"),
    }
}

impl Ctx {
    /// Attachments through the API against plain `object_store` put/get of
    /// the same bytes to the same store, for local files and for a real S3
    /// server (s3s-fs on loopback), in the same run; and the service's RSS
    /// during the big upload and download. Every upload also goes as
    /// multipart/form-data, against the raw body as its reference, at the
    /// big and small sizes and at a third, the default upload limit's.
    pub fn storage(&mut self) -> Result<()> {
        let big_mib = self.set.storage_big_mib;
        let mid_mib = self.set.storage_mid_mib;
        let small_mib = self.set.storage_small_mib;
        let small_count = self.set.storage_small_count;
        let reps = self.set.storage_reps;
        let dir = self.work.join("storage");
        fs::create_dir_all(&dir)?;
        let big = dir.join(format!("blob-{big_mib}mib.bin"));
        let mid = dir.join(format!("blob-{mid_mib}mib.bin"));
        let small = dir.join(format!("blob-{small_mib}mib.bin"));
        storage::ensure_blob(&big, big_mib << 20)?;
        storage::ensure_blob(&mid, mid_mib << 20)?;
        storage::ensure_blob(&small, small_mib << 20)?;
        // (key, file, objects, with the references and downloads, label):
        // the mid size is there for its uploads only.
        let sizes = [
            ("big", &big, 1usize, true, format!("1 x {big_mib} MiB")),
            ("mid", &mid, 1, false, format!("1 x {mid_mib} MiB")),
            (
                "small",
                &small,
                small_count,
                true,
                format!("{small_count} x {small_mib} MiB"),
            ),
        ];
        let (key, secret) = ("bench-access", "bench-secret");

        // The S3 server, one for the whole benchmark, on an empty directory.
        let s3_root = dir.join("s3");
        procs::fresh_dir(&s3_root.join("notes"))?;
        let (host, port) = S3_ADDR.split_once(':').expect("host:port");
        let s3_spec = Spec {
            program: "s3s-fs".into(),
            args: vec![
                "--host".into(),
                host.into(),
                "--port".into(),
                port.into(),
                "--access-key".into(),
                key.into(),
                "--secret-key".into(),
                secret.into(),
                s3_root.display().to_string(),
            ],
            env: vec![],
            cpus: None,
            addr: S3_ADDR.into(),
            log: self.log("s3s-fs"),
        };
        let s3 = s3_spec.spawn()?;
        procs::wait_tcp(S3_ADDR, Duration::from_secs(10))?;
        let endpoint = format!("http://{S3_ADDR}");
        let files_dir = dir.join("files");
        let stores = [
            ("file", format!("file://{}", files_dir.display())),
            ("s3", "s3://notes".to_owned()),
        ];
        let mut detail = Map::new();
        for (label, url) in &stores {
            if *label == "file" {
                procs::fresh_dir(&files_dir)?;
            }
            let mut env = vec![
                ("NOTES_STORAGE_URL", url.clone()),
                // The limit counts the file's bytes (a multipart body may
                // carry 128 KiB more), so a file of the limit's size fits.
                (
                    "NOTES_MAX_UPLOAD_BYTES",
                    ((big_mib.max(mid_mib) + 1) << 20).to_string(),
                ),
            ];
            let mut ref_args = vec!["--store".to_owned(), url.clone()];
            if *label == "s3" {
                env.extend([
                    ("NOTES_S3_ENDPOINT", endpoint.clone()),
                    ("NOTES_S3_ACCESS_KEY_ID", key.to_owned()),
                    ("NOTES_S3_SECRET_ACCESS_KEY", secret.to_owned()),
                ]);
                ref_args.extend([
                    "--s3-endpoint".into(),
                    endpoint.clone(),
                    "--s3-key".into(),
                    key.into(),
                    "--s3-secret".into(),
                    secret.into(),
                ]);
            }
            let data = dir.join(format!("data-{label}"));
            procs::fresh_dir(&data)?;
            let spec = self.service_spec(&data, None, &env, &format!("service-storage-{label}"));
            let mut server = spec.spawn()?;
            server.wait_ready("/readyz", Duration::from_millis(5), Duration::from_secs(10))?;
            let t = Duration::from_secs(10);
            let r = client::request(
                SERVICE_ADDR,
                "POST",
                "/api/v1/notes",
                Some("application/json"),
                br#"{"title":"storage benchmark"}"#,
                t,
            )?;
            if r.status != 201 {
                bail!("creating a note: HTTP {}", r.status);
            }
            let note = r.json()?["id"].as_str().unwrap_or_default().to_owned();
            std::thread::sleep(Duration::from_secs(1));
            let rss_idle = server.status_kb("VmRSS")?;
            let mut res = Map::new();
            let mut cmds = Map::new();
            for rep in 0..reps {
                for (size, file, count, full, _) in &sizes {
                    let file_s = file.display().to_string();
                    // The in-process path runs once.
                    let modes: &[&str] = match (full, rep) {
                        (false, _) => &[],
                        (true, 0) => &["raw", "inproc"],
                        (true, _) => &["raw"],
                    };
                    for &mode in modes {
                        let mut a = vec!["storage-ref".to_owned()];
                        a.extend(ref_args.iter().cloned());
                        a.extend([
                            "--mode".into(),
                            mode.into(),
                            "--file".into(),
                            file_s.clone(),
                            "--count".into(),
                            count.to_string(),
                        ]);
                        let (v, cmd) = self.sub(&a)?;
                        push_run(&mut res, &format!("{size}_{mode}"), v);
                        cmds.insert(format!("{size}_{mode}"), json!(cmd));
                    }
                    let http = |op: &str, extra: &[String]| {
                        let mut a = vec![
                            "storage-http".to_owned(),
                            "--addr".into(),
                            SERVICE_ADDR.into(),
                            "--op".into(),
                            op.into(),
                            "--note".into(),
                            note.clone(),
                        ];
                        a.extend(extra.iter().cloned());
                        a
                    };
                    // Raw first in even reps, multipart first in odd ones:
                    // neither form always meets the state (allocator, page
                    // cache, S3 server) the other one leaves.
                    let mut forms = [Form::Raw, Form::Multipart];
                    if rep % 2 == 1 {
                        forms.reverse();
                    }
                    for form in forms {
                        let key = upload_key(size, form);
                        let before = server.status_kb("VmRSS")?;
                        let ticks = procs::cpu_ticks(server.pid());
                        let sampler =
                            procs::RssSampler::start(server.pid(), Duration::from_millis(5));
                        let (mut up, cmd) = self.sub(&http(
                            "upload",
                            &[
                                "--file".into(),
                                file_s.clone(),
                                "--count".into(),
                                count.to_string(),
                                "--form".into(),
                                form.name().into(),
                            ],
                        ))?;
                        let (peak, n) = sampler.stop();
                        // The server's CPU time for the upload: what a busy
                        // machine does not change much, unlike wall time.
                        let ticks = procs::cpu_ticks(server.pid()) - ticks;
                        up["server_cpu_s"] = json!(ticks as f64 / procs::ticks_per_sec());
                        up["server_rss_before_kb"] = json!(before);
                        up["server_rss_peak_kb"] = json!(peak);
                        up["rss_samples"] = json!(n);
                        cmds.insert(key.clone(), json!(cmd));
                        let ids = up["ids"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(",");
                        let ids_arg = ["--ids".to_owned(), ids];
                        // Downloads read the stored object, whichever form
                        // brought it: measured once, after the raw upload.
                        if *full && form == Form::Raw {
                            let before = server.status_kb("VmRSS")?;
                            let sampler =
                                procs::RssSampler::start(server.pid(), Duration::from_millis(5));
                            let (mut down, cmd) = self.sub(&http("download", &ids_arg))?;
                            let (peak, n) = sampler.stop();
                            down["server_rss_before_kb"] = json!(before);
                            down["server_rss_peak_kb"] = json!(peak);
                            down["rss_samples"] = json!(n);
                            cmds.insert(format!("{size}_download"), json!(cmd));
                            push_run(&mut res, &format!("{size}_download"), down);
                        }
                        self.sub(&http("delete", &ids_arg))?;
                        push_run(&mut res, &key, up);
                    }
                }
            }
            server.stop()?;

            // Medians over the reps (the in-process path ran once).
            let med = |k: &str, field: &str| {
                let v: Vec<f64> = res[k]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| f(r, &[field]))
                    .collect();
                stats::median(&v)
            };
            let peak = |k: &str| {
                res[k]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|r| r["server_rss_peak_kb"].as_u64())
                    .max()
                    .unwrap_or(0)
            };
            let store = if *label == "s3" {
                "S3 (s3s-fs on loopback)"
            } else {
                "local files"
            };
            let cmd = |k: &str| cmds[k].as_str().unwrap_or_default().to_owned();
            for (size, _, _, _, what) in sizes.iter().filter(|s| s.3) {
                for (op, field, raw_op) in [
                    ("upload", "put_mib_s", "put_multipart"),
                    ("download", "get_mib_s", "get"),
                ] {
                    let api = med(&format!("{size}_{op}"), "mib_s");
                    let raw = med(&format!("{size}_raw"), field);
                    let inproc = med(&format!("{size}_inproc"), field);
                    self.push(Figure {
                        id: format!("storage_{label}_{op}_{size}_mib_s"),
                        name: format!(
                            "Attachment {op} through the API, {store}, {what}, one at a time (median of {reps}; service's Blobs in-process: {inproc:.0} MiB/s)"
                        ),
                        value: api,
                        unit: "MiB/s".into(),
                        target: ">= 0.80 x raw".into(),
                        pass: Some(api / raw >= 0.80),
                        reference: format!(
                            "raw object_store {raw_op} of the same bytes to the same store, MiB/s"
                        ),
                        reference_value: Some(raw),
                        ratio: Some(api / raw),
                        commands: vec![
                            spec.command_line(),
                            cmd(&format!("{size}_{op}")),
                            cmd(&format!("{size}_raw")),
                        ],
                    });
                }
            }
            for (size, _, _, _, what) in &sizes {
                let (mp_key, raw_key) = (
                    upload_key(size, Form::Multipart),
                    upload_key(size, Form::Raw),
                );
                let (mp, raw) = (med(&mp_key, "mib_s"), med(&raw_key, "mib_s"));
                self.push(Figure {
                    id: format!("storage_{label}_multipart_upload_{size}_mib_s"),
                    name: format!(
                        "Attachment upload as multipart/form-data through the API, {store}, {what}, one at a time (median of {reps})"
                    ),
                    value: mp,
                    unit: "MiB/s".into(),
                    target: ">= 0.80 x raw body".into(),
                    pass: Some(mp / raw >= 0.80),
                    reference: "the same bytes as a raw body (?filename=) through the API, same run, MiB/s".into(),
                    reference_value: Some(raw),
                    ratio: Some(mp / raw),
                    commands: vec![spec.command_line(), cmd(&mp_key), cmd(&raw_key)],
                });
            }
            // Server CPU ms per MiB over every upload of one form.
            let cpu = |form: Form| {
                let (mut secs, mut bytes) = (0.0, 0.0);
                for (size, ..) in &sizes {
                    for r in res[&upload_key(size, form)]
                        .as_array()
                        .into_iter()
                        .flatten()
                    {
                        secs += f(r, &["server_cpu_s"]);
                        bytes += f(r, &["object_bytes"]) * f(r, &["objects"]);
                    }
                }
                secs * 1e3 / (bytes / 1048576.0)
            };
            let (mp, raw) = (cpu(Form::Multipart), cpu(Form::Raw));
            self.push(Figure {
                id: format!("storage_{label}_multipart_upload_cpu_ms_per_mib"),
                name: format!(
                    "Service CPU (user + system) per MiB uploaded as multipart/form-data, {store}, every size and rep together"
                ),
                value: mp,
                unit: "ms/MiB".into(),
                target: "(reported)".into(),
                pass: None,
                reference: "the same uploads as raw bodies, ms/MiB".into(),
                reference_value: Some(raw),
                ratio: Some(mp / raw),
                commands: vec![
                    spec.command_line(),
                    cmd(&upload_key("big", Form::Multipart)),
                    cmd(&upload_key("big", Form::Raw)),
                ],
            });
            let mb = |kb: u64| kb as f64 * 1024.0 / 1e6;
            for (size, mib) in [("big", big_mib), ("mid", mid_mib)] {
                let (mp_key, raw_key) = (
                    upload_key(size, Form::Multipart),
                    upload_key(size, Form::Raw),
                );
                let added = mb(peak(&mp_key).saturating_sub(rss_idle));
                self.push(Figure {
                    id: format!("storage_{label}_rss_multipart_upload_{size}_mb"),
                    name: format!(
                        "Service RSS added during a {mib} MiB multipart/form-data upload, {store} (peak VmRSS sampled every 5 ms, max of {reps}, minus idle)"
                    ),
                    value: added,
                    unit: "MB".into(),
                    target: "< 50".into(),
                    pass: Some(added < 50.0),
                    reference: "the same bytes as a raw body: RSS added (peak - idle), MB".into(),
                    reference_value: Some(mb(peak(&raw_key).saturating_sub(rss_idle))),
                    ratio: None,
                    commands: vec![spec.command_line(), cmd(&mp_key), cmd(&raw_key)],
                });
            }
            for op in ["upload", "download"] {
                let added = mb(peak(&format!("big_{op}")).saturating_sub(rss_idle));
                self.push(Figure {
                    id: format!("storage_{label}_rss_{op}_big_mb"),
                    name: format!(
                        "Service RSS added during a {big_mib} MiB {op}, {store} (peak VmRSS sampled every 5 ms, max of {reps}, minus idle)"
                    ),
                    value: added,
                    unit: "MB".into(),
                    target: "< 50".into(),
                    pass: Some(added < 50.0),
                    reference: "idle RSS before any transfer, MB".into(),
                    reference_value: Some(mb(rss_idle)),
                    ratio: None,
                    commands: vec![spec.command_line(), cmd(&format!("big_{op}"))],
                });
            }
            res.insert("rss_idle_kb".into(), json!(rss_idle));
            res.insert("commands".into(), Value::Object(cmds));
            detail.insert(label.to_string(), Value::Object(res));
        }
        s3.stop()?;
        detail.insert("s3_server".into(), json!(s3_spec.command_line()));
        self.details
            .insert(self.current.clone(), Value::Object(detail));
        Ok(())
    }
}
