//! Hot swap of a read-only dataset (`NOTES_READ_ONLY=true`).
//!
//! A new dataset arrives as a new file renamed over the old one. The
//! process notices (inotify on the directory, and a poll of the file's
//! identity every [`POLL`] for volumes that send no events: NFS, hostPath,
//! ConfigMap), opens and verifies the new file, builds its index in a
//! directory of its own while the old pair keeps serving, then routes new
//! requests to the new pair in one step ([`Routes::replace`]). Requests
//! already running finish on the old pair, which is closed, and its index
//! removed, once the last of them is done. A file that fails is logged,
//! counted and left alone; the old pair goes on serving.

use std::{
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use notify::Watcher;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::open::{Opened, Role, open};
use crate::{
    config::Settings,
    http::{self, AppState, Routes},
    store,
};

/// The bound on how late a replaced file is noticed without an event.
const POLL: Duration = Duration::from_secs(2);
/// A file must keep the same identity this long before it is opened: one
/// still being copied in place (against the advice) changes meanwhile.
const SETTLE: Duration = Duration::from_millis(300);
/// How long an old dataset waits for its requests before it is closed
/// anyway (the longest request timeout is far below it).
const DRAIN: Duration = Duration::from_secs(600);

/// What tells one file from another under the same name: a rename brings
/// another inode; a copy in place changes the size or the time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
}

impl Identity {
    pub fn of(path: &Path) -> Option<Self> {
        let m = std::fs::metadata(path).ok()?;
        Some(Self {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
        })
    }
}

/// The dataset file a read-only process serves, and its identity when the
/// serving pair was opened (read before opening, so a file replaced while
/// it opened is noticed afterwards).
pub struct Dataset {
    pub path: PathBuf,
    pub opened: Option<Identity>,
}

impl Dataset {
    pub fn of(settings: &Settings) -> anyhow::Result<Self> {
        let path = store::dataset::file_of(settings.database.url.expose())?;
        Ok(Self {
            opened: Identity::of(&path),
            path,
        })
    }
}

/// Removes every index in `root` but `keep`'s: those of datasets served
/// before this process started.
pub fn prune(root: &Path, keep: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path != keep && entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_index(&path);
        }
    }
}

/// Follows the dataset file until `stop`, swapping what `routes` serves
/// whenever a new file verifies.
pub async fn follow(
    routes: Routes,
    settings: Settings,
    mut dataset: Dataset,
    index_dir: PathBuf,
    stop: CancellationToken,
) {
    let (tx, mut events) = mpsc::channel::<()>(1);
    // inotify on the directory: a rename over the file is an event of the
    // directory, and the file's own watch would follow the old inode.
    let watcher = dataset.path.parent().and_then(|dir| {
        let mut w = notify::recommended_watcher(move |_: notify::Result<notify::Event>| {
            let _ = tx.try_send(());
        })
        .ok()?;
        w.watch(dir, notify::RecursiveMode::NonRecursive).ok()?;
        Some(w)
    });
    if watcher.is_none() {
        tracing::info!(path = %dataset.path.display(), "dataset: no file events here; polling only");
    }
    let mut serving_dir = index_dir;
    let mut tick = tokio::time::interval(POLL);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
            Some(()) = events.recv() => {}
        }
        let Some(seen) = settled(&dataset.path, &stop).await else {
            continue;
        };
        if dataset.opened.as_ref() == Some(&seen) {
            continue;
        }
        // Whatever happens to this file, it is not tried again: the next
        // attempt waits for another file.
        dataset.opened = Some(seen.clone());
        let started = Instant::now();
        match swap(
            &routes,
            &settings,
            &dataset.path,
            &seen,
            &serving_dir,
            &stop,
        )
        .await
        {
            Ok(dir) => {
                serving_dir = dir;
                routes
                    .state()
                    .update_dataset(|d| d.swapped_at = Some(chrono::Utc::now()));
                metrics::counter!("dataset_swaps_total", "outcome" => "swapped").increment(1);
                crate::figures::process().dataset_swap(true);
                metrics::gauge!("dataset_swapped_timestamp_seconds").set(unix_now());
                tracing::info!(
                    path = %dataset.path.display(),
                    seconds = started.elapsed().as_secs_f64(),
                    "dataset: swapped to the new file"
                );
            }
            Err(e) => {
                metrics::counter!("dataset_swaps_total", "outcome" => "rejected").increment(1);
                crate::figures::process().dataset_swap(false);
                let why = format!("{e:#}");
                tracing::error!(
                    path = %dataset.path.display(),
                    error = %why,
                    "dataset: the new file is rejected; the old dataset keeps serving"
                );
                routes
                    .state()
                    .update_dataset(|d| d.rejected = Some((chrono::Utc::now(), why)));
            }
        }
    }
}

/// The file's identity once it has held still for [`SETTLE`]; `None` when
/// there is no file (mid-replace) or on `stop`.
async fn settled(path: &Path, stop: &CancellationToken) -> Option<Identity> {
    let mut seen = Identity::of(path)?;
    loop {
        tokio::select! {
            () = stop.cancelled() => return None,
            () = tokio::time::sleep(SETTLE) => {}
        }
        let now = Identity::of(path)?;
        if now == seen {
            return Some(now);
        }
        seen = now;
    }
}

/// Opens, verifies and indexes the file `seen` names, then serves it;
/// returns the directory of its index.
async fn swap(
    routes: &Routes,
    settings: &Settings,
    path: &Path,
    seen: &Identity,
    serving_dir: &Path,
    stop: &CancellationToken,
) -> anyhow::Result<PathBuf> {
    let opened = open(settings, Role::Api, Some(serving_dir)).await?;
    let Opened {
        jobs,
        index,
        index_dir,
        generation,
    } = opened;
    let dir = index_dir.expect("a read-only open names its index directory");
    let index = index.expect("an API open has an index");
    let ready = async {
        // Every connection is open now: if the name still points at the
        // file that was verified, they all read that file.
        if Identity::of(path).as_ref() != Some(seen) {
            anyhow::bail!("the file changed while it was opened; waiting for it to settle");
        }
        wait_built(&index, stop).await
    };
    if let Err(e) = ready.await {
        index.close().await;
        jobs.close().await;
        remove_index(&dir);
        return Err(e);
    }
    let current = routes.state();
    current.update_dataset(|d| d.generation = generation.unwrap_or_default());
    let new = current.with_data(jobs, Some(index));
    let old = routes.replace(new.clone(), http::router(new));
    drop(current);
    tokio::spawn(retire(old, serving_dir.to_owned()));
    Ok(dir)
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Waits until the new index serves every change of its dataset.
async fn wait_built(
    index: &crate::index::DynIndex,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    loop {
        let status = index.status();
        if let Some(e) = status.error {
            anyhow::bail!("its search index cannot be built: {e}");
        }
        if status.serving && status.rebuilding.is_none() {
            index.refresh().await?;
            return Ok(());
        }
        tokio::select! {
            () = stop.cancelled() => anyhow::bail!("shutting down"),
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
}

/// Closes a dataset once the requests that began on it are done, then
/// removes its index.
async fn retire(old: AppState, index_dir: PathBuf) {
    let deadline = Instant::now() + DRAIN;
    while old.in_use() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    old.close().await;
    drop(old);
    remove_index(&index_dir);
    tracing::info!(dir = %index_dir.display(), "dataset: the old dataset is closed");
}

fn remove_index(dir: &Path) {
    if let Err(e) = std::fs::remove_dir_all(dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot remove an old dataset's index");
    }
}
