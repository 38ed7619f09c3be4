//! What each built-in kind does when a worker runs it.

use chrono::Utc;
use futures::TryStreamExt;
use serde_json::{Value, json};

use super::Context;
use crate::{
    backup,
    domain::attachment,
    queue::{JobKind, NewJob, model::JobArgs},
};

/// Why an attempt failed, as the job record shows it to any reader: a short
/// message; the detail (driver errors, paths, hosts) goes to the log only.
pub type JobError = String;

/// Runs one job to its result.
pub async fn execute(ctx: &Context, args: JobArgs) -> Result<Value, JobError> {
    match args {
        JobArgs::Ping { delay_ms } => {
            tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
            Ok(json!("pong"))
        }
        JobArgs::Add { x, y } => add(&x, &y),
        JobArgs::Reindex => {
            // A new feed generation: every process's index rebuilds itself
            // from the store, serving its old build until the new one is done.
            ctx.store
                .renew_feed()
                .await
                .map_err(|e| fail("reindex", e))?;
            let notes = ctx
                .store
                .count_notes()
                .await
                .map_err(|e| fail("reindex", e))?;
            // Text whose extraction never ran (its enqueue failed) gets
            // another chance.
            let missing = ctx
                .store
                .attachments_without_text(&attachment::TEXT_LIKE)
                .await
                .map_err(|e| fail("reindex", e))?;
            for id in &missing {
                let job = NewJob::new(JobKind::ExtractText, json!({ "attachment_id": id }));
                ctx.enqueue(job).await.map_err(|e| fail("reindex", e))?;
            }
            Ok(json!({ "notes": notes, "extractions_queued": missing.len() }))
        }
        JobArgs::ExtractText { attachment_id } => extract_text(ctx, attachment_id).await,
        JobArgs::Backup { to } => {
            // Checked again here: the job may have been queued under an
            // earlier configuration.
            if let Some(to) = &to {
                ctx.config
                    .check_backup_destination(to)
                    .map_err(|e| format!("backup destination {to:?} {e}"))?;
            }
            let to = to.unwrap_or_else(|| ctx.config.backup_to());
            let manifest = backup::create(ctx, &to)
                .await
                .map_err(|e| fail("backup", e))?;
            Ok(json!({
                "to": to,
                "notes": manifest.counts.notes,
                "attachments": manifest.counts.attachments,
                "bytes": manifest.counts.bytes,
            }))
        }
        JobArgs::Purge => purge(ctx).await,
    }
}

trait Brief: std::fmt::Display {
    fn brief(&self) -> String;
}
impl Brief for crate::store::StoreError {
    fn brief(&self) -> String {
        crate::store::StoreError::brief(self)
    }
}
impl Brief for crate::blobs::BlobError {
    fn brief(&self) -> String {
        crate::blobs::BlobError::brief(self)
    }
}
impl Brief for backup::BackupError {
    fn brief(&self) -> String {
        backup::BackupError::brief(self)
    }
}

fn fail(what: &str, e: impl Brief) -> JobError {
    tracing::warn!(error = %e, "{what} failed");
    format!("{what} failed: {}", e.brief())
}

/// Integers add exactly (and refuse to overflow); anything else as f64.
fn add(x: &serde_json::Number, y: &serde_json::Number) -> Result<Value, JobError> {
    if let (Some(a), Some(b)) = (x.as_i64(), y.as_i64()) {
        return a
            .checked_add(b)
            .map(Value::from)
            .ok_or_else(|| format!("{a} + {b} overflows a 64-bit integer"));
    }
    let (a, b) = (
        x.as_f64().unwrap_or(f64::NAN),
        y.as_f64().unwrap_or(f64::NAN),
    );
    serde_json::Number::from_f64(a + b)
        .map(Value::Number)
        .ok_or_else(|| format!("{x} + {y} is not a finite number"))
}

/// Reads the head of a text-like attachment and makes it part of its note's
/// search document. An attachment deleted since the upload is no failure.
async fn extract_text(ctx: &Context, id: uuid::Uuid) -> Result<Value, JobError> {
    let Some(stored) = ctx
        .store
        .get_attachment(id)
        .await
        .map_err(|e| fail("extract_text", e))?
    else {
        return Ok(json!({ "skipped": "the attachment was deleted" }));
    };
    let a = &stored.attachment;
    if !attachment::is_text_like(&a.content_type) || a.size == 0 {
        return Ok(json!({ "chars": 0 }));
    }
    let len = a.size.min(ctx.config.extract_max_bytes);
    let bytes: Vec<u8> = ctx
        .blobs
        .get(&stored.storage_key, Some(0..len))
        .await
        .map_err(|e| fail("extract_text", e))?
        .map_ok(|chunk| chunk.to_vec())
        .try_concat()
        .await
        .map_err(|e| fail("extract_text", e))?;
    let text = attachment::extract_text(&a.content_type, &bytes).unwrap_or_default();
    let chars = text.chars().count();
    let updated = ctx
        .store
        .set_attachment_text(id, &text)
        .await
        .map_err(|e| fail("extract_text", e))?;
    if !updated {
        return Ok(json!({ "skipped": "the attachment was deleted" }));
    }
    Ok(json!({ "chars": chars }))
}

/// Objects under `attachments/` with no row, older than the grace period
/// (an upload writes its object before its row), and finished jobs past
/// their retention.
async fn purge(ctx: &Context) -> Result<Value, JobError> {
    let now = Utc::now();
    let cutoff = now - chrono::Duration::from_std(ctx.config.purge_grace()).unwrap_or_default();
    let objects = purge_orphans(ctx, cutoff).await?;
    // Tick records must outlive the schedule's grace, or a restart within it
    // would fire a tick again.
    let keep = ctx
        .config
        .job_retention()
        .max(std::time::Duration::from_secs(ctx.config.schedule_grace));
    let retention = chrono::Duration::from_std(keep).unwrap_or_default();
    let jobs = ctx
        .queue
        .purge(now - retention)
        .await
        .map_err(|e| fail("purge", e))?;
    Ok(json!({ "objects": objects, "jobs": jobs }))
}

/// Deletes orphaned attachment objects last modified before `cutoff`.
pub async fn purge_orphans(ctx: &Context, cutoff: chrono::DateTime<Utc>) -> Result<u64, JobError> {
    let objects = ctx
        .blobs
        .list(attachment::KEY_PREFIX)
        .await
        .map_err(|e| fail("purge", e))?;
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
            .map_err(|e| fail("purge", e))?;
        for object in candidates {
            let known = attachment::id_of_key(&object.key).is_some_and(|id| present.contains(&id));
            if !known {
                ctx.blobs
                    .delete(&object.key)
                    .await
                    .map_err(|e| fail("purge", e))?;
                tracing::info!(key = %object.key, "purged an orphaned object");
                deleted += 1;
            }
        }
    }
    Ok(deleted)
}
