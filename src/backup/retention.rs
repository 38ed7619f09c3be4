//! Which snapshots under a destination stay: the newest `keep` complete
//! ones, and no interrupted one older than a day.
//!
//! Only folders named as this service names snapshots are ever looked at,
//! so other files under the same prefix are safe. Folders are listed, not
//! their objects, so the listing costs as many entries as snapshots.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::layout::{MANIFEST, begun};
use crate::blobs::{BlobError, Blobs};

/// A snapshot without a manifest this long after it began is an
/// interrupted one, not one still being written: a backup of this
/// service's sizes takes minutes to hours, never a day.
pub const INTERRUPTED_AFTER: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// What a retention pass removed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Pruned {
    /// Complete snapshots past the `keep` newest, oldest first.
    pub removed: Vec<String>,
    /// Interrupted snapshots (no manifest) older than [`INTERRUPTED_AFTER`].
    pub interrupted: Vec<String>,
}

/// The snapshot folders under `dest`'s root, oldest first, each with
/// whether it is complete (has its manifest).
pub(super) async fn snapshots(dest: &Blobs) -> Result<Vec<(String, bool)>, BlobError> {
    let mut names: Vec<String> = dest
        .folders("")
        .await?
        .into_iter()
        .filter(|f| begun(f).is_some())
        .collect();
    // The stamp is fixed-width, so names sort by when they were begun.
    names.sort();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let complete = dest.exists(&format!("{name}/{MANIFEST}")).await?;
        out.push((name, complete));
    }
    Ok(out)
}

/// Keeps the `keep` newest complete snapshots under `dest` (and `spare`,
/// the one just written, whatever the clocks say), removes older complete
/// ones and interrupted ones past [`INTERRUPTED_AFTER`].
pub async fn prune(
    dest: &Blobs,
    keep: usize,
    spare: &str,
    now: DateTime<Utc>,
) -> Result<Pruned, BlobError> {
    let mut pruned = Pruned::default();
    let mut complete = Vec::new();
    for (name, is_complete) in snapshots(dest).await? {
        if is_complete {
            complete.push(name);
        } else if begun(&name).is_some_and(|t| now - t > INTERRUPTED_AFTER) {
            dest.delete_folder(&name).await?;
            pruned.interrupted.push(name);
        }
    }
    let excess = complete.len().saturating_sub(keep.max(1));
    for name in complete.into_iter().take(excess) {
        if name == spare {
            continue;
        }
        // The manifest first: a removal cut short leaves an interrupted
        // snapshot, which restore ignores, never a complete-looking one
        // with objects missing.
        dest.delete(&format!("{name}/{MANIFEST}")).await?;
        dest.delete_folder(&name).await?;
        pruned.removed.push(name);
    }
    Ok(pruned)
}
