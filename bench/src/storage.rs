//! Attachment storage: the bytes a benchmark uploads, the HTTP client side
//! of uploads and downloads through the API, and the references in their
//! own process:
//!
//! - `storage-ref --mode raw`: plain `object_store`, built with the service's
//!   settings (retry, timeouts, path-style S3, `WriteMultipart` with 4 parts
//!   in flight), `put_multipart` then `get` of the same bytes;
//! - `storage-ref --mode inproc`: the service's own `Blobs` (`put_stream`
//!   with its sha256, `get`) without HTTP, to tell where time goes.

use std::{
    convert::Infallible,
    fs,
    io::{BufWriter, Read, Write},
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use futures::{StreamExt, stream};
use object_store::{
    ObjectStore, ObjectStoreExt, WriteMultipart, aws::AmazonS3Builder, local::LocalFileSystem,
    path::Path as ObjPath,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use notes_api::{
    blobs::{self, Blobs},
    config::{Config, Secret},
};

use crate::{client, corpus::Rng};

/// Chunks the references feed to the store: about what hyper hands the
/// service per body frame.
const CHUNK: usize = 64 * 1024;

/// A file of `bytes` incompressible, seeded bytes (kept when it already has
/// that size).
pub fn ensure_blob(path: &Path, bytes: u64) -> Result<()> {
    if fs::metadata(path).is_ok_and(|m| m.len() == bytes) {
        return Ok(());
    }
    let mut rng = Rng::new(bytes);
    let mut out = BufWriter::with_capacity(1 << 20, fs::File::create(path)?);
    let mut left = bytes;
    while left > 0 {
        let v = rng.next_u64().to_le_bytes();
        let n = left.min(8) as usize;
        out.write_all(&v[..n])?;
        left -= n as u64;
    }
    out.flush()?;
    Ok(())
}

/// Where the references write: `file://DIR` or `s3://BUCKET` with an
/// endpoint and keys.
pub struct Target {
    pub url: String,
    pub endpoint: Option<String>,
    pub key_id: Option<String>,
    pub secret: Option<String>,
}

impl Target {
    /// Plain `object_store`, with the settings of `Blobs::open_url`.
    fn raw(&self) -> Result<Arc<dyn ObjectStore>> {
        if let Some(dir) = self.url.strip_prefix("file://") {
            fs::create_dir_all(dir)?;
            return Ok(Arc::new(
                LocalFileSystem::new_with_prefix(dir)?.with_automatic_cleanup(true),
            ));
        }
        let Some(bucket) = self.url.strip_prefix("s3://") else {
            bail!("--store must be file://DIR or s3://BUCKET");
        };
        let endpoint = self.endpoint.as_deref().context("--s3-endpoint")?;
        // In the service's order: the client settings first, since they
        // replace the `allow_http` that `with_allow_http` sets.
        let s3 = blobs::s3_client_settings(AmazonS3Builder::new().with_bucket_name(bucket))
            .with_region("us-east-1")
            .with_endpoint(endpoint)
            .with_allow_http(endpoint.starts_with("http://"))
            .with_virtual_hosted_style_request(false)
            .with_access_key_id(self.key_id.as_deref().unwrap_or_default())
            .with_secret_access_key(self.secret.as_deref().unwrap_or_default())
            .build()?;
        Ok(Arc::new(s3))
    }

    /// The service's `Blobs`, opened as the service opens them.
    fn blobs(&self) -> Result<Blobs> {
        let mut config = Config::defaults();
        config.storage.storage_url = Some(self.url.clone());
        config.storage.s3_endpoint = self.endpoint.clone();
        config.storage.s3_access_key_id = self.key_id.clone().map(Secret::new);
        config.storage.s3_secret_access_key = self.secret.clone().map(Secret::new);
        let settings = config.resolve()?;
        Blobs::open(&settings.storage).map_err(|e| anyhow::anyhow!("{e}"))
    }
}

fn chunks(data: &Bytes) -> impl Iterator<Item = Bytes> + '_ {
    (0..data.len())
        .step_by(CHUNK)
        .map(move |i| data.slice(i..(i + CHUNK).min(data.len())))
}

/// Puts `count` copies of `file` one after the other, then gets each back;
/// times both, deletes them.
pub async fn storage_ref(target: &Target, file: &Path, count: usize, mode: &str) -> Result<Value> {
    let data = Bytes::from(fs::read(file)?);
    let prefix = format!("bench-ref/{}", uuid::Uuid::now_v7());
    let keys: Vec<String> = (0..count).map(|i| format!("{prefix}/{i}")).collect();
    let (mut put_secs, mut get_secs) = (Vec::new(), Vec::new());
    match mode {
        "raw" => {
            let store = target.raw()?;
            for key in &keys {
                let t = Instant::now();
                let upload = store.put_multipart(&ObjPath::from(key.as_str())).await?;
                let mut writer = WriteMultipart::new(upload);
                for chunk in chunks(&data) {
                    writer.wait_for_capacity(blobs::UPLOAD_CONCURRENCY).await?;
                    writer.put(chunk);
                }
                writer.finish().await?;
                put_secs.push(t.elapsed().as_secs_f64());
            }
            for key in &keys {
                let t = Instant::now();
                let mut s = store.get(&ObjPath::from(key.as_str())).await?.into_stream();
                let mut n = 0usize;
                while let Some(b) = s.next().await {
                    n += b?.len();
                }
                get_secs.push(t.elapsed().as_secs_f64());
                if n != data.len() {
                    bail!("{key}: got {n} bytes, put {}", data.len());
                }
            }
            for key in &keys {
                store.delete(&ObjPath::from(key.as_str())).await?;
            }
        }
        "inproc" => {
            let blobs = target.blobs()?;
            for key in &keys {
                let t = Instant::now();
                let body = stream::iter(chunks(&data).map(Ok::<_, Infallible>));
                let w = blobs
                    .put_stream(key, body, u64::MAX)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                put_secs.push(t.elapsed().as_secs_f64());
                if w.size != data.len() as u64 {
                    bail!("{key}: wrote {} bytes", w.size);
                }
            }
            for key in &keys {
                let t = Instant::now();
                let mut s = blobs
                    .get(key, None)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                let mut n = 0usize;
                while let Some(b) = s.next().await {
                    n += b.map_err(|e| anyhow::anyhow!("{e}"))?.len();
                }
                get_secs.push(t.elapsed().as_secs_f64());
                if n != data.len() {
                    bail!("{key}: got {n} bytes, put {}", data.len());
                }
            }
            blobs.delete_all(&keys).await;
        }
        other => bail!("unknown storage-ref mode {other:?}"),
    }
    Ok(summary(mode, data.len(), &put_secs, &get_secs))
}

fn summary(mode: &str, bytes: usize, put: &[f64], get: &[f64]) -> Value {
    let total = |v: &[f64]| v.iter().sum::<f64>();
    let mib = (bytes * put.len()) as f64 / 1048576.0;
    json!({
        "mode": mode,
        "object_bytes": bytes,
        "objects": put.len(),
        "put_secs": put,
        "get_secs": get,
        "put_mib_s": mib / total(put),
        "get_mib_s": mib / total(get),
    })
}

/// The multipart boundary of [`storage_http`]'s uploads, in curl's shape
/// (`curl -F` sends 24 dashes and 22 random alphanumerics).
const BOUNDARY: &str = "------------------------notesbenchboundary01";

/// How an upload carries the file: the raw body (`?filename=`), or
/// `multipart/form-data` with one `file` field, as `curl -F file=@F` sends it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Form {
    Raw,
    Multipart,
}

impl Form {
    /// Its `--form` value.
    pub fn name(self) -> &'static str {
        match self {
            Form::Raw => "raw",
            Form::Multipart => "multipart",
        }
    }
}

/// The request of one upload named `name`: its path, its content type, and
/// the bytes that go before and after the file's.
fn upload_request(form: Form, note: &str, name: &str) -> (String, String, Vec<u8>, Vec<u8>) {
    let path = format!("/api/v1/notes/{note}/attachments");
    match form {
        Form::Raw => (
            format!("{path}?filename={name}"),
            "application/octet-stream".into(),
            Vec::new(),
            Vec::new(),
        ),
        Form::Multipart => (
            path,
            format!("multipart/form-data; boundary={BOUNDARY}"),
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .into_bytes(),
            format!("\r\n--{BOUNDARY}--\r\n").into_bytes(),
        ),
    }
}

/// The sha256 of a file, read in 1 MiB pieces.
fn sha256_file(file: &Path) -> Result<(String, u64)> {
    let mut f = fs::File::open(file)?;
    let (mut h, mut buf, mut n) = (Sha256::new(), vec![0u8; 1 << 20], 0u64);
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            return Ok((hex::encode(h.finalize()), n));
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
}

/// `storage-http --op upload|download|delete`: one step of the API side, in
/// its own process so that the run can sample the server's RSS around it.
/// Uploads go one after the other, each streamed from the file (which the
/// sha256 taken before the clock has brought into the page cache).
pub fn storage_http(
    addr: &str,
    op: &str,
    form: Form,
    note: &str,
    file: &Path,
    count: usize,
    ids: &[String],
) -> Result<Value> {
    let timeout = Duration::from_secs(600);
    match op {
        "upload" => {
            let (sha, len) = sha256_file(file)?;
            let (mut secs, mut out_ids) = (Vec::new(), Vec::new());
            for i in 0..count {
                let name = format!("blob-{i}.bin");
                let (path, content_type, head, tail) = upload_request(form, note, &name);
                let t = Instant::now();
                let mut body = head
                    .as_slice()
                    .chain(fs::File::open(file)?)
                    .chain(tail.as_slice());
                let total = head.len() as u64 + len + tail.len() as u64;
                let r = client::request_from(
                    addr,
                    "POST",
                    &path,
                    Some(&content_type),
                    total,
                    &mut body,
                    timeout,
                )?;
                secs.push(t.elapsed().as_secs_f64());
                if r.status != 201 {
                    bail!(
                        "upload: HTTP {}: {}",
                        r.status,
                        String::from_utf8_lossy(&r.body[..r.body.len().min(500)])
                    );
                }
                let v = r.json()?;
                if v["sha256"].as_str() != Some(sha.as_str())
                    || v["size"].as_u64() != Some(len)
                    || v["filename"].as_str() != Some(name.as_str())
                {
                    bail!("upload: the service stored something else: {v}");
                }
                out_ids.push(v["id"].as_str().unwrap_or_default().to_owned());
            }
            let mib = (len * count as u64) as f64 / 1048576.0;
            Ok(json!({
                "op": op, "form": form.name(), "object_bytes": len, "objects": count, "secs": secs,
                "mib_s": mib / secs.iter().sum::<f64>(), "ids": out_ids, "sha256": sha,
            }))
        }
        "download" => {
            let mut secs = Vec::new();
            let mut bytes = 0u64;
            for id in ids {
                let t = Instant::now();
                let (status, n) =
                    client::download(addr, &format!("/api/v1/attachments/{id}/content"), timeout)?;
                secs.push(t.elapsed().as_secs_f64());
                if status != 200 {
                    bail!("download {id}: HTTP {status}");
                }
                bytes += n;
            }
            Ok(json!({
                "op": op, "objects": ids.len(), "bytes": bytes, "secs": secs,
                "mib_s": bytes as f64 / 1048576.0 / secs.iter().sum::<f64>(),
            }))
        }
        "delete" => {
            for id in ids {
                let r = client::request(
                    addr,
                    "DELETE",
                    &format!("/api/v1/attachments/{id}"),
                    None,
                    &[],
                    timeout,
                )?;
                if r.status != 204 {
                    bail!("delete {id}: HTTP {}", r.status);
                }
            }
            Ok(json!({"op": op, "objects": ids.len()}))
        }
        other => bail!("unknown storage-http op {other:?}"),
    }
}
