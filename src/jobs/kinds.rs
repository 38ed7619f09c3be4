//! What each built-in kind does when a worker runs it.

use chrono::Utc;
use futures::TryStreamExt;
use serde_json::{Value, json};

use super::{
    Context,
    import::{Failed as ImportFailed, Running},
};
use crate::{
    backup,
    domain::attachment,
    progress::{
        Progress,
        display::{self, Mode},
    },
    queue::{JobKind, NewJob, model::JobArgs},
    service::{
        ServiceError,
        notes::NoteService,
        trash,
        webhooks::{self, AttemptOutcome},
    },
};

/// Why an attempt failed. Its text (`Display`) is what the job record
/// shows any reader: a short message that says what failed; the detail
/// (driver errors, paths, hosts) is in the source, which goes to the log
/// only.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The arguments cannot be worked with, although they were valid when
    /// the job was queued (an integer overflow, a destination the
    /// configuration no longer allows).
    #[error("{0}")]
    Refused(String),
    #[error("{what} failed: {}", .source.brief())]
    Store {
        what: &'static str,
        #[source]
        source: crate::store::StoreError,
    },
    #[error("{what} failed: {}", .source.brief())]
    Storage {
        what: &'static str,
        #[source]
        source: crate::blobs::BlobError,
    },
    #[error("{what} failed: {}", .source.brief())]
    Queue {
        what: &'static str,
        #[source]
        source: crate::queue::QueueError,
    },
    #[error("{what} failed: {}", .source.brief())]
    Backup {
        what: &'static str,
        #[source]
        source: backup::BackupError,
    },
    /// The job panicked (the panic's message is in the log).
    #[error("the job panicked")]
    Panicked,
    /// Not done: run again at `at` (a webhook delivery's own schedule,
    /// rather than the queue's backoff).
    #[error("{error}")]
    RetryAt {
        error: String,
        at: chrono::DateTime<Utc>,
    },
    /// The input cannot be worked with however often it is tried (an
    /// import of a file that is not a zip): no retry, the job is dead.
    #[error("{0}")]
    Rejected(String),
}

impl JobError {
    /// Whether another attempt cannot do better.
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Rejected(_))
    }
}

/// Runs one job to its result; `running` is the attempt (a job that
/// reports progress writes it under its lease).
pub async fn execute(ctx: &Context, args: JobArgs, running: Running) -> Result<Value, JobError> {
    match args {
        JobArgs::Ping { delay_ms } => {
            tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
            Ok(json!("pong"))
        }
        JobArgs::Add { x, y } => add(&x, &y),
        JobArgs::Reindex => {
            // A new feed generation: every process's index rebuilds itself
            // from the store, serving its old build until the new one is done.
            ctx.store.renew_feed().await.map_err(fail("reindex"))?;
            let notes = ctx.store.count_notes().await.map_err(fail("reindex"))?;
            // Text whose extraction never ran (its enqueue failed) gets
            // another chance.
            let missing = ctx
                .store
                .attachments_without_text(&attachment::TEXT_LIKE)
                .await
                .map_err(fail("reindex"))?;
            for id in &missing {
                let job = NewJob::new(JobKind::ExtractText, json!({ "attachment_id": id }));
                ctx.enqueue(job).await.map_err(fail("reindex"))?;
            }
            Ok(json!({ "notes": notes, "extractions_queued": missing.len() }))
        }
        JobArgs::ExtractText { attachment_id } => extract_text(ctx, attachment_id).await,
        JobArgs::Backup { to } => {
            // Checked again here: the job may have been queued under an
            // earlier configuration.
            if let Some(to) = &to {
                ctx.settings
                    .storage
                    .check_backup_destination(to)
                    .map_err(|e| JobError::Refused(format!("backup destination {to:?} {e}")))?;
            }
            let to = to.unwrap_or_else(|| ctx.settings.storage.backup_to.clone());
            // A long backup says how far it got in the worker's log.
            let progress = Progress::new("backup");
            let shown = display::show(&progress, Mode::Log(ctx.settings.telemetry.progress_every));
            let target = backup::Target {
                progress: Some(progress),
                ..backup::Target::from(ctx)
            };
            let created = backup::create(target, &to).await;
            shown.finish().await;
            let created = created.map_err(fail("backup"))?;
            let counts = &created.manifest.counts;
            let mut result = json!({
                "to": to,
                "notes": counts.notes,
                "attachments": counts.attachments,
                "bytes": counts.bytes,
                "removed": created.pruned.removed,
                "interrupted_removed": created.pruned.interrupted,
            });
            if let Some(e) = created.prune_error {
                result["prune_error"] = e.into();
            }
            Ok(result)
        }
        JobArgs::Purge => purge(ctx).await,
        JobArgs::Import {
            upload,
            format,
            tag,
            folder_tags,
        } => super::import::run(ctx, running, upload, format, tag, folder_tags)
            .await
            .map_err(|e| match e {
                ImportFailed::Rejected(why) => JobError::Rejected(why),
                ImportFailed::Store(source) => JobError::Store {
                    what: "import",
                    source,
                },
                ImportFailed::Storage(source) => JobError::Storage {
                    what: "import",
                    source,
                },
                ImportFailed::Other(why) => JobError::Refused(format!("import failed: {why}")),
            }),
        JobArgs::DeliverWebhook { delivery_id } => deliver_webhook(ctx, delivery_id).await,
    }
}

async fn deliver_webhook(ctx: &Context, id: uuid::Uuid) -> Result<Value, JobError> {
    let outcome = webhooks::attempt(ctx.store.as_ref(), &ctx.sender, id)
        .await
        .map_err(fail("webhook delivery"))?;
    match outcome {
        AttemptOutcome::Settled(status) => Ok(json!({ "delivery": status.as_str() })),
        AttemptOutcome::Gone => Ok(json!({ "delivery": "deleted" })),
        AttemptOutcome::RetryAt { at, error } => Err(JobError::RetryAt { error, at }),
    }
}

/// What a step of a job may fail with, as the [`JobError`] that names the
/// step.
trait Cause: std::fmt::Display {
    fn failed(self, what: &'static str) -> JobError;
}
impl Cause for crate::store::StoreError {
    fn failed(self, what: &'static str) -> JobError {
        JobError::Store { what, source: self }
    }
}
impl Cause for crate::blobs::BlobError {
    fn failed(self, what: &'static str) -> JobError {
        JobError::Storage { what, source: self }
    }
}
impl Cause for crate::queue::QueueError {
    fn failed(self, what: &'static str) -> JobError {
        JobError::Queue { what, source: self }
    }
}
impl Cause for ServiceError {
    fn failed(self, what: &'static str) -> JobError {
        match self {
            ServiceError::Store(source) => JobError::Store { what, source },
            ServiceError::Queue(source) => JobError::Queue { what, source },
            other => JobError::Refused(format!("{what} failed: {other}")),
        }
    }
}
impl Cause for super::import::PurgeError {
    fn failed(self, what: &'static str) -> JobError {
        match self {
            Self::Storage(e) => e.failed(what),
            Self::Queue(e) => e.failed(what),
        }
    }
}
impl Cause for backup::BackupError {
    fn failed(self, what: &'static str) -> JobError {
        JobError::Backup { what, source: self }
    }
}

/// `.map_err(fail("step"))`: the error, logged with its detail, as the
/// job's error naming the step.
fn fail<E: Cause>(what: &'static str) -> impl FnOnce(E) -> JobError {
    move |e| {
        tracing::warn!(error = %e, "{what} failed");
        e.failed(what)
    }
}

/// Integers add exactly (and refuse to overflow); anything else as f64.
fn add(x: &serde_json::Number, y: &serde_json::Number) -> Result<Value, JobError> {
    if let (Some(a), Some(b)) = (x.as_i64(), y.as_i64()) {
        return a
            .checked_add(b)
            .map(Value::from)
            .ok_or_else(|| JobError::Refused(format!("{a} + {b} overflows a 64-bit integer")));
    }
    let (a, b) = (
        x.as_f64().unwrap_or(f64::NAN),
        y.as_f64().unwrap_or(f64::NAN),
    );
    serde_json::Number::from_f64(a + b)
        .map(Value::Number)
        .ok_or_else(|| JobError::Refused(format!("{x} + {y} is not a finite number")))
}

/// Reads the head of a text-like attachment and makes it part of its note's
/// search document. An attachment deleted since the upload is no failure.
async fn extract_text(ctx: &Context, id: uuid::Uuid) -> Result<Value, JobError> {
    let Some(stored) = ctx
        .store
        .get_attachment(id)
        .await
        .map_err(fail("extract_text"))?
    else {
        return Ok(json!({ "skipped": "the attachment was deleted" }));
    };
    let a = &stored.attachment;
    if !attachment::is_text_like(&a.content_type) || a.size == 0 {
        return Ok(json!({ "chars": 0 }));
    }
    let len = a.size.min(ctx.settings.storage.extract_max_bytes);
    let bytes: Vec<u8> = ctx
        .blobs
        .get(&stored.storage_key, Some(0..len))
        .await
        .map_err(fail("extract_text"))?
        .map_ok(|chunk| chunk.to_vec())
        .try_concat()
        .await
        .map_err(fail("extract_text"))?;
    let text = attachment::extract_text(&a.content_type, &bytes).unwrap_or_default();
    let chars = text.chars().count();
    let updated = ctx
        .store
        .set_attachment_text(id, &text)
        .await
        .map_err(fail("extract_text"))?;
    if !updated {
        return Ok(json!({ "skipped": "the attachment was deleted" }));
    }
    Ok(json!({ "chars": chars }))
}

/// Objects under `attachments/` with no row and staged imports no job
/// will read, older than the grace period (an upload writes its object
/// before its row or its job), and finished jobs past their retention.
async fn purge(ctx: &Context) -> Result<Value, JobError> {
    let now = Utc::now();
    let jobs_settings = &ctx.settings.jobs;
    let cutoff = now - chrono::Duration::from_std(jobs_settings.purge_grace).unwrap_or_default();
    let objects = purge_orphans(ctx, cutoff).await?;
    let staged_imports = super::import::purge_staged(ctx, cutoff)
        .await
        .map_err(fail("purge"))?;
    // Tick records must outlive the schedule's grace, or a restart within it
    // would fire a tick again.
    let keep = jobs_settings.retention.max(jobs_settings.schedule_grace);
    let retention = chrono::Duration::from_std(keep).unwrap_or_default();
    let jobs = ctx
        .queue
        .purge(now - retention)
        .await
        .map_err(fail("purge"))?;
    let cutoff = |age: Option<std::time::Duration>| {
        age.and_then(|age| chrono::Duration::from_std(age).ok())
            .and_then(|age| now.checked_sub_signed(age))
    };
    let revisions = ctx
        .store
        .prune_revisions(
            jobs_settings.revisions_keep,
            cutoff(jobs_settings.revisions_max_age),
        )
        .await
        .map_err(fail("purge"))?;
    let trashed = match cutoff(jobs_settings.trash_retention) {
        Some(before) => {
            let notes = NoteService {
                store: ctx.store.as_ref(),
                index: None,
                blobs: &ctx.blobs,
            };
            trash::purge(&notes, Some(before))
                .await
                .map_err(fail("purge"))?
        }
        None => 0,
    };
    let changes = match cutoff(jobs_settings.changes_retention) {
        Some(before) => prune_changes(ctx, before).await?,
        None => 0,
    };
    let deliveries = match cutoff(Some(ctx.settings.webhooks.retention)) {
        Some(before) => prune_deliveries(ctx, before).await?,
        None => 0,
    };
    Ok(json!({
        "objects": objects, "jobs": jobs, "revisions": revisions, "trash": trashed,
        "changes": changes, "webhook_deliveries": deliveries, "staged_imports": staged_imports,
    }))
}

/// Prunes the change feed's events made before `before`.
async fn prune_changes(ctx: &Context, before: chrono::DateTime<Utc>) -> Result<u64, JobError> {
    in_batches(|batch| ctx.store.prune_changes(before, batch)).await
}

/// Deletes webhook deliveries that finished before `before`.
async fn prune_deliveries(ctx: &Context, before: chrono::DateTime<Utc>) -> Result<u64, JobError> {
    in_batches(|batch| ctx.store.prune_deliveries(before, batch)).await
}

/// Runs `prune` a batch at a time (each batch a short write) until a batch
/// comes back short; answers how many rows went.
async fn in_batches<F, Fut>(mut prune: F) -> Result<u64, JobError>
where
    F: FnMut(u32) -> Fut,
    Fut: std::future::Future<Output = Result<u64, crate::store::StoreError>>,
{
    let batch = crate::store::BATCH_ROWS as u32 * 10;
    let mut pruned = 0;
    loop {
        let n = prune(batch).await.map_err(fail("purge"))?;
        pruned += n;
        if n < u64::from(batch) {
            return Ok(pruned);
        }
    }
}

/// Deletes orphaned attachment objects last modified before `cutoff`.
pub async fn purge_orphans(ctx: &Context, cutoff: chrono::DateTime<Utc>) -> Result<u64, JobError> {
    let objects = ctx
        .blobs
        .list(attachment::KEY_PREFIX)
        .await
        .map_err(fail("purge"))?;
    let mut deleted = 0;
    for chunk in objects.chunks(crate::store::BATCH_ROWS) {
        let candidates: Vec<_> = chunk.iter().filter(|o| o.last_modified < cutoff).collect();
        let ids: Vec<uuid::Uuid> = candidates
            .iter()
            .filter_map(|o| attachment::id_of_key(&o.key))
            .collect();
        let present = ctx
            .store
            .attachments_present(&ids)
            .await
            .map_err(fail("purge"))?;
        for object in candidates {
            let known = attachment::id_of_key(&object.key).is_some_and(|id| present.contains(&id));
            if !known {
                ctx.blobs.delete(&object.key).await.map_err(fail("purge"))?;
                tracing::info!(key = %object.key, "purged an orphaned object");
                deleted += 1;
            }
        }
    }
    Ok(deleted)
}
