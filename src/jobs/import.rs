//! The `import` job: reads a zip that `POST /api/v1/import` staged in
//! object storage into the store (`crate::import`), writing its progress
//! into the job's `result` as it goes, and removes the staged zip at the
//! end.

use std::{sync::Arc, time::Duration};

use futures::{StreamExt, future::BoxFuture};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

use super::context::Context;
use crate::{
    blobs::BlobError,
    domain::attachment::Attachment,
    import::{self, AfterAttachment, Import, ImportError, Limits, Report, Source},
    progress::Progress,
    queue::{JobKind, JobListQuery, JobStatus, NewJob},
    store::StoreError,
};

/// Where staged uploads wait, beside (never under) the attachments'
/// prefix, so `purge` never takes one for an orphaned attachment.
pub const STAGED_PREFIX: &str = "imports/";
/// How often the job's `result` is rewritten while it runs.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// The object a staged upload is stored as: chosen by the server.
pub fn staged_key(upload: Uuid) -> String {
    format!("{STAGED_PREFIX}{upload}.zip")
}

/// Removes staged uploads last written before `cutoff` that no import job
/// will read: their job finished, died, or was never queued (a server
/// killed between storing the upload and queueing it). A job killed on
/// its last attempt never reaches its own clean-up; this is that clean-up.
/// Answers how many went.
pub async fn purge_staged(
    ctx: &Context,
    cutoff: chrono::DateTime<chrono::Utc>,
) -> Result<u64, PurgeError> {
    let old: Vec<_> = ctx
        .blobs
        .list(STAGED_PREFIX)
        .await?
        .into_iter()
        .filter(|o| o.last_modified < cutoff)
        .collect();
    if old.is_empty() {
        return Ok(0);
    }
    // Uploads an import job may still read: queued, running, or failed
    // with an attempt to come. Few at any time.
    let mut awaited = std::collections::HashSet::new();
    for status in [JobStatus::Queued, JobStatus::Running, JobStatus::Failed] {
        let mut after = None;
        loop {
            let page = ctx
                .queue
                .list(&JobListQuery {
                    status: Some(status),
                    kind: Some(JobKind::Import),
                    limit: 500,
                    after,
                })
                .await?;
            awaited.extend(page.items.iter().filter_map(|j| {
                j.args["upload"]
                    .as_str()
                    .and_then(|u| u.parse::<Uuid>().ok())
                    .map(staged_key)
            }));
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
    }
    let mut removed = 0;
    for object in old.into_iter().filter(|o| !awaited.contains(&o.key)) {
        ctx.blobs.delete(&object.key).await?;
        tracing::info!(key = %object.key, "removed a staged import no job will read");
        removed += 1;
    }
    Ok(removed)
}

/// Why [`purge_staged`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum PurgeError {
    #[error(transparent)]
    Storage(#[from] BlobError),
    #[error(transparent)]
    Queue(#[from] crate::queue::QueueError),
}

/// The attempt under way: the progress is written under its lease.
#[derive(Debug, Clone, Copy)]
pub struct Running {
    pub id: Uuid,
    pub token: Uuid,
    /// No attempt follows this one: what it leaves behind is removed.
    pub last_attempt: bool,
}

/// Queues the text extraction of each text-like attachment stored, as an
/// upload does.
struct QueueExtraction(Context);

impl AfterAttachment for QueueExtraction {
    fn stored<'a>(&'a self, a: &'a Attachment) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let job = NewJob::new(JobKind::ExtractText, json!({ "attachment_id": a.id }));
            if let Err(e) = self.0.enqueue(job).await {
                // The next `reindex` queues it again.
                tracing::error!(error = %e, attachment = %a.id, "could not queue text extraction");
            }
        })
    }
}

/// Why an import job failed (`jobs::kinds` makes a `JobError` of it).
#[derive(Debug)]
pub enum Failed {
    /// The upload cannot be imported, however often it is tried.
    Rejected(String),
    Store(StoreError),
    Storage(BlobError),
    /// Something else, detail in the log.
    Other(&'static str),
}

pub async fn run(
    ctx: &Context,
    running: Running,
    upload: Uuid,
    format: Option<String>,
    tag: Option<String>,
    folder_tags: bool,
) -> Result<Value, Failed> {
    let key = staged_key(upload);
    let outcome = import_staged(ctx, running, &key, format, tag, folder_tags).await;
    // Removed once it has been read through, once it is refused (no
    // attempt reads it better), or when no attempt follows; a failure
    // that may pass (the database, storage) leaves it for the retry.
    let done = match &outcome {
        Ok(_) => true,
        Err(Failure::Input(_)) => true,
        Err(Failure::Other(_)) => running.last_attempt,
    };
    if done && let Err(e) = ctx.blobs.delete(&key).await {
        tracing::warn!(error = %e, key, "could not remove a staged import");
    }
    match outcome {
        Ok(report) => Ok(serde_json::to_value(report).expect("a report serializes")),
        Err(Failure::Input(why)) => Err(Failed::Rejected(why)),
        Err(Failure::Other(e)) => Err(e),
    }
}

enum Failure {
    /// The upload cannot be imported, however often it is tried.
    Input(String),
    Other(Failed),
}

fn failure(e: ImportError) -> Failure {
    if e.is_input() {
        return Failure::Input(e.to_string());
    }
    tracing::warn!(error = %e, "import failed");
    Failure::Other(match e {
        ImportError::Store(source) => Failed::Store(source),
        ImportError::Blob(source) => Failed::Storage(source),
        // Paths and I/O detail stay in the log.
        _ => Failed::Other("the staged file could not be read"),
    })
}

async fn import_staged(
    ctx: &Context,
    running: Running,
    key: &str,
    format: Option<String>,
    tag: Option<String>,
    folder_tags: bool,
) -> Result<Report, Failure> {
    let format = format
        .as_deref()
        .unwrap_or("auto")
        .parse::<import::Format>()
        .map_err(Failure::Input)?;
    // A zip is read from its end, by seeking: the upload is copied to a
    // local file on the data volume first (never into memory).
    let spool = ctx.settings.server.data_dir.join("spool");
    let local = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&spool)?;
        tempfile::NamedTempFile::new_in(&spool)
    })
    .await
    .map_err(std::io::Error::other)
    .and_then(|r| r)
    .map_err(|e| failure(ImportError::Io(e)))?;
    let mut body = match ctx.blobs.get(key, None).await {
        Ok(body) => body,
        Err(BlobError::NotFound) => {
            return Err(Failure::Input(
                "the uploaded zip is no longer staged (an earlier attempt finished with it)".into(),
            ));
        }
        Err(e) => return Err(failure(ImportError::Blob(e))),
    };
    let mut file =
        tokio::fs::File::from_std(local.reopen().map_err(|e| failure(ImportError::Io(e)))?);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| failure(ImportError::Blob(e)))?;
        file.write_all(&chunk)
            .await
            .map_err(|e| failure(ImportError::Io(e)))?;
    }
    file.flush()
        .await
        .map_err(|e| failure(ImportError::Io(e)))?;
    drop(file);

    let limits = Limits {
        max_bytes: ctx.settings.limits.import_max_bytes,
        max_files: ctx.settings.limits.import_max_files,
    };
    let source = Source::open(local.path(), limits).await.map_err(failure)?;
    let (report, mut watch) = tokio::sync::watch::channel(Report::default());
    let reporter = tokio::spawn({
        let queue = ctx.queue.clone();
        async move {
            while watch.changed().await.is_ok() {
                let value =
                    serde_json::to_value(&*watch.borrow_and_update()).expect("a report serializes");
                if let Err(e) = queue.progress(running.id, running.token, &value).await {
                    tracing::warn!(error = %e, job = %running.id, "could not record an import's progress");
                }
                tokio::time::sleep(PROGRESS_EVERY).await;
            }
        }
    });
    let import = Import {
        store: ctx.store.clone(),
        blobs: ctx.blobs.clone(),
        options: import::Options {
            format,
            tag,
            folder_tags,
            dry_run: false,
            max_upload_bytes: ctx.settings.storage.max_upload_bytes,
        },
        after_attachment: Some(Arc::new(QueueExtraction(ctx.clone()))),
        report,
        // The job's result shows the progress; the log, the outcome.
        progress: Progress::new("import"),
    };
    let report = import.run(&source).await;
    drop(import);
    // The last progress written may lag; the outcome replaces it.
    reporter.abort();
    let report = report.map_err(failure)?;
    tracing::info!(
        notes = report.total,
        created = report.created,
        updated = report.updated,
        unchanged = report.unchanged,
        skipped = report.skipped_total,
        errors = report.errors_total,
        took_ms = report.took_ms,
        "import finished"
    );
    Ok(report)
}
