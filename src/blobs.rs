//! Object storage for attachment bytes, through the `object_store` crate: a
//! local directory (the embedded default) or any S3-compatible server
//! (AWS, MinIO, Garage). Uploads stream through; nothing is buffered whole.

use std::{ops::Range, sync::Arc, time::Duration};

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt, stream::BoxStream};
use object_store::{
    ClientOptions, GetOptions, GetRange, GetResultPayload, ObjectStore, ObjectStoreExt,
    RetryConfig, WriteMultipart, aws::AmazonS3Builder, local::LocalFileSystem, path::Path,
    prefix::PrefixStore,
};
use sha2::{Digest, Sha256};

use crate::config::{S3, Storage};

/// Parts uploaded at once: bounds memory to about this many 5 MiB parts.
pub const UPLOAD_CONCURRENCY: usize = 4;
/// Read size when streaming a local file to a client.
const FILE_CHUNK: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("object not found")]
    NotFound,
    #[error("object storage unavailable: {0}")]
    Unavailable(#[source] object_store::Error),
    #[error("the upload is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("the upload stream failed: {0}")]
    Source(String),
    #[error("invalid storage configuration: {0}")]
    Config(String),
}

impl BlobError {
    /// What went wrong without paths, hosts or provider messages.
    pub fn brief(&self) -> String {
        match self {
            Self::NotFound => "an object is missing from storage".into(),
            Self::TooLarge { limit } => format!("larger than {limit} bytes"),
            Self::Unavailable(_) => "object storage is unavailable".into(),
            Self::Source(_) => "the data could not be read to its end".into(),
            Self::Config(_) => "the storage location is not usable (see the worker's log)".into(),
        }
    }
}

fn unavailable(e: object_store::Error) -> BlobError {
    match e {
        object_store::Error::NotFound { .. } => BlobError::NotFound,
        e => BlobError::Unavailable(e),
    }
}

/// The S3 client's retry schedule and timeouts, shared with the bench's raw
/// reference so that it measures the same client. Replaces the client
/// options, so settings such as `allow_http` must come after it.
pub fn s3_client_settings(builder: AmazonS3Builder) -> AmazonS3Builder {
    builder
        // Fail over to 503 quickly when the store is down rather than
        // holding requests through a long retry schedule.
        .with_retry(RetryConfig {
            max_retries: 2,
            retry_timeout: Duration::from_secs(10),
            ..Default::default()
        })
        .with_client_options(
            ClientOptions::new()
                .with_connect_timeout(Duration::from_secs(5))
                .with_timeout(Duration::from_secs(300)),
        )
}

fn local_io(e: std::io::Error) -> BlobError {
    BlobError::Unavailable(object_store::Error::Generic {
        store: "LocalFileSystem",
        source: Box::new(e),
    })
}

/// What an upload wrote.
#[derive(Debug)]
pub struct Written {
    pub size: u64,
    pub sha256: String,
}

/// An object as a listing shows it.
#[derive(Debug, Clone)]
pub struct Listed {
    pub key: String,
    pub size: u64,
    pub last_modified: chrono::DateTime<chrono::Utc>,
}

#[derive(Clone)]
pub struct Blobs {
    store: Arc<dyn ObjectStore>,
    /// The directory of a local store: object_store leaves the folders of
    /// deleted files behind, and [`Self::delete_folder`] removes them.
    local: Option<std::path::PathBuf>,
}

impl Blobs {
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self { store, local: None }
    }

    /// The attachments' store: `file://DIR` or `s3://BUCKET`, with the S3
    /// settings given (and the standard AWS_* variables as fallback).
    pub fn open(storage: &Storage) -> Result<Self, BlobError> {
        Self::open_url(&storage.url, &storage.s3)
    }

    /// A store rooted at `url`: `file://DIR`, a plain directory path, or
    /// `s3://BUCKET[/PREFIX]` (with the S3 settings `s3`). Backups use
    /// this for their destination.
    pub fn open_url(url: &str, s3: &S3) -> Result<Self, BlobError> {
        let url = if url.contains("://") {
            url.to_owned()
        } else {
            format!("file://{url}")
        };
        let url = url.as_str();
        if let Some(dir) = url.strip_prefix("file://") {
            std::fs::create_dir_all(dir)
                .map_err(|e| BlobError::Config(format!("cannot create {dir}: {e}")))?;
            // No automatic cleanup: its delete removes a directory that
            // has just emptied while another upload is creating a file in
            // it, and that upload fails (object_store's `create_dir_all`
            // races its `remove_dir`). The cost is an empty directory per
            // note that once had an attachment.
            let fs = LocalFileSystem::new_with_prefix(dir)
                .map_err(|e| BlobError::Config(e.to_string()))?;
            return Ok(Self {
                local: Some(dir.into()),
                ..Self::new(Arc::new(fs))
            });
        }
        let Some(bucket) = url.strip_prefix("s3://") else {
            return Err(BlobError::Config(format!(
                "NOTES_STORAGE_URL must be file://DIR or s3://BUCKET, got {url:?}"
            )));
        };
        let (bucket, prefix) = match bucket.trim_end_matches('/').split_once('/') {
            Some((bucket, prefix)) => (bucket, Some(prefix)),
            None => (bucket.trim_end_matches('/'), None),
        };
        let mut builder = s3_client_settings(AmazonS3Builder::from_env().with_bucket_name(bucket));
        if let Some(region) = &s3.region {
            builder = builder.with_region(region);
        }
        if let Some(endpoint) = &s3.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"))
                .with_virtual_hosted_style_request(!s3.path_style);
        }
        if let Some(id) = &s3.access_key_id {
            builder = builder.with_access_key_id(id.expose());
        }
        if let Some(secret) = &s3.secret_access_key {
            builder = builder.with_secret_access_key(secret.expose());
        }
        let client = builder
            .build()
            .map_err(|e| BlobError::Config(e.to_string()))?;
        Ok(match prefix {
            Some(prefix) => Self::new(Arc::new(PrefixStore::new(client, prefix))),
            None => Self::new(Arc::new(client)),
        })
    }

    /// The store answers: a HEAD of a key that need not exist.
    pub async fn ping(&self) -> Result<(), BlobError> {
        match self
            .store
            .head(&Path::from("notes-api/readiness-probe"))
            .await
        {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(BlobError::Unavailable(e)),
        }
    }

    /// Streams `body` to `key`, hashing on the way. Over `limit` bytes the
    /// upload is aborted and nothing is left behind.
    pub async fn put_stream<S, E>(
        &self,
        key: &str,
        body: S,
        limit: u64,
    ) -> Result<Written, BlobError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        let upload = self
            .store
            .put_multipart(&Path::from(key))
            .await
            .map_err(unavailable)?;
        let mut writer = Unfinished(Some(WriteMultipart::new(upload)), key.to_owned());
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        let mut body = std::pin::pin!(body);
        let outcome: Result<(), BlobError> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| BlobError::Source(e.to_string()))?;
                size += chunk.len() as u64;
                if size > limit {
                    return Err(BlobError::TooLarge { limit });
                }
                hasher.update(&chunk);
                let w = writer.get();
                w.wait_for_capacity(UPLOAD_CONCURRENCY)
                    .await
                    .map_err(unavailable)?;
                w.put(chunk);
            }
            Ok(())
        }
        .await;
        let writer = writer.take();
        match outcome {
            Ok(()) => {
                writer.finish().await.map_err(unavailable)?;
                Ok(Written {
                    size,
                    sha256: hex::encode(hasher.finalize()),
                })
            }
            Err(e) => {
                abort(writer, key).await;
                Err(e)
            }
        }
    }

    /// The object's bytes, or the given (exclusive-end) range of them.
    pub async fn get(
        &self,
        key: &str,
        range: Option<Range<u64>>,
    ) -> Result<BoxStream<'static, Result<Bytes, BlobError>>, BlobError> {
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..Default::default()
        };
        let result = self
            .store
            .get_opts(&Path::from(key), options)
            .await
            .map_err(unavailable)?;
        let range = result.range.clone();
        match result.payload {
            // object_store streams a local file in 8 KiB blocking reads,
            // which caps downloads near 180 MiB/s (bench: storage).
            GetResultPayload::File(mut file, _) => {
                use std::io::{Seek, SeekFrom};
                use tokio::io::AsyncReadExt;
                file.seek(SeekFrom::Start(range.start)).map_err(local_io)?;
                let reader = tokio::fs::File::from_std(file).take(range.end - range.start);
                Ok(
                    tokio_util::io::ReaderStream::with_capacity(reader, FILE_CHUNK)
                        .map_err(local_io)
                        .boxed(),
                )
            }
            GetResultPayload::Stream(stream) => Ok(stream.map_err(unavailable).boxed()),
        }
    }

    /// Every object under `prefix`, with when it was last written.
    pub async fn list(&self, prefix: &str) -> Result<Vec<Listed>, BlobError> {
        self.store
            .list(Some(&Path::from(prefix)))
            .map_ok(|meta| Listed {
                key: meta.location.to_string(),
                size: meta.size,
                last_modified: meta.last_modified,
            })
            .try_collect()
            .await
            .map_err(unavailable)
    }

    /// Whether an object exists.
    pub async fn exists(&self, key: &str) -> Result<bool, BlobError> {
        match self.store.head(&Path::from(key)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(BlobError::Unavailable(e)),
        }
    }

    /// A small object, whole (manifests).
    /// A small object whole; one larger than `max` bytes is refused
    /// before it is read.
    pub async fn get_bytes(&self, key: &str, max: u64) -> Result<Bytes, BlobError> {
        let result = self
            .store
            .get(&Path::from(key))
            .await
            .map_err(unavailable)?;
        if result.meta.size > max {
            return Err(BlobError::TooLarge { limit: max });
        }
        result.bytes().await.map_err(unavailable)
    }

    /// Streams `key` of this store into `to_key` of `to`; returns what was
    /// written (size and sha256 computed on the way). Past `limit` bytes the
    /// copy is aborted (`TooLarge`) and nothing is left at `to_key`.
    pub async fn copy_to(
        &self,
        key: &str,
        to: &Blobs,
        to_key: &str,
        limit: u64,
    ) -> Result<Written, BlobError> {
        let body = self.get(key, None).await?;
        to.put_stream(to_key, body, limit).await
    }

    /// Deletes an object; one that is already gone is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), BlobError> {
        match self.store.delete(&Path::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(BlobError::Unavailable(e)),
        }
    }

    /// The folders directly under `prefix` (`""`: the root), without
    /// listing what is in them: as many entries as folders, however many
    /// objects they hold.
    pub async fn folders(&self, prefix: &str) -> Result<Vec<String>, BlobError> {
        let prefix = (!prefix.is_empty()).then(|| Path::from(prefix));
        let listed = self
            .store
            .list_with_delimiter(prefix.as_ref())
            .await
            .map_err(unavailable)?;
        Ok(listed
            .common_prefixes
            .into_iter()
            .filter_map(|p| p.filename().map(str::to_owned))
            .collect())
    }

    /// Deletes every object under the folder `prefix`, streaming the
    /// listing into the deletes (batched on S3); returns how many went.
    pub async fn delete_folder(&self, prefix: &str) -> Result<u64, BlobError> {
        let folder = Path::from(prefix);
        let locations = self
            .store
            .list(Some(&folder))
            .map_ok(|meta| meta.location)
            .boxed();
        let deleted = self
            .store
            .delete_stream(locations)
            .try_fold(0u64, |n, _| async move { Ok(n + 1) })
            .await
            .map_err(unavailable)?;
        if let Some(root) = &self.local {
            // Only empty folders are left once every file is deleted.
            match std::fs::remove_dir_all(root.join(folder.as_ref())) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(BlobError::Unavailable(object_store::Error::Generic {
                        store: "LocalFileSystem",
                        source: Box::new(e),
                    }));
                }
            }
        }
        Ok(deleted)
    }

    /// Deletes objects after their rows are gone; a failure leaves an orphan
    /// for the purge job, never a row without its object.
    pub async fn delete_all(&self, keys: &[String]) {
        for key in keys {
            if let Err(e) = self.delete(key).await {
                tracing::warn!(error = %e, key, "could not delete an object; the purge job will reclaim it");
            }
        }
    }
}

/// An upload that has not been finished or aborted yet. When the request
/// that feeds it goes away (the client disconnected, the timeout fired), its
/// future is dropped mid-upload: this aborts the upload then, so no
/// incomplete multipart upload (or staging file) is left in storage.
struct Unfinished(Option<WriteMultipart>, String);

impl Unfinished {
    fn get(&mut self) -> &mut WriteMultipart {
        self.0.as_mut().expect("taken only once the upload is over")
    }
    fn take(&mut self) -> WriteMultipart {
        self.0.take().expect("taken once")
    }
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if let Some(writer) = self.0.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let key = std::mem::take(&mut self.1);
            tracing::info!(key, "upload abandoned mid-stream; aborting it");
            runtime.spawn(async move { abort(writer, &key).await });
        }
    }
}

async fn abort(writer: WriteMultipart, key: &str) {
    if let Err(e) = writer.abort().await {
        tracing::warn!(error = %e, key, "aborting an unfinished upload failed; a storage lifecycle rule must reclaim it");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Uploads and deletes on local storage, many at once, as the soak
    /// runs them: every directory empties and fills again all the time.
    /// With object_store's automatic cleanup a delete removed a directory
    /// another upload had just created, and that upload failed (one 503 in
    /// 637,910 requests of the 30-minute soak).
    fn test_s3() -> S3 {
        crate::config::Config::defaults()
            .resolve()
            .expect("the defaults resolve")
            .storage
            .s3
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_uploads_and_deletes_on_local_storage_never_fail() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        let blobs = Blobs::open_url(&url, &test_s3()).unwrap();
        let tasks: Vec<_> =
            (0..8)
                .map(|t| {
                    let blobs = blobs.clone();
                    tokio::spawn(async move {
                        let mut failures = Vec::new();
                        for i in 0..400 {
                            let key = format!("attachments/note-{}/{t}-{i}", i % 3);
                            let body = futures::stream::iter([Ok::<_, std::io::Error>(
                                Bytes::from(vec![7u8; 4096]),
                            )]);
                            if let Err(e) = blobs.put_stream(&key, body, 1 << 20).await {
                                failures.push(format!("put {key}: {e:?}"));
                                continue;
                            }
                            if let Err(e) = blobs.delete(&key).await {
                                failures.push(format!("delete {key}: {e:?}"));
                            }
                        }
                        failures
                    })
                })
                .collect();
        let mut failures = Vec::new();
        for t in tasks {
            failures.extend(t.await.unwrap());
        }
        assert!(
            failures.is_empty(),
            "{} failed: {:#?}",
            failures.len(),
            &failures[..failures.len().min(5)]
        );
    }
}
