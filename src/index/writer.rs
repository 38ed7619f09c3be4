//! The index's writer thread: follows the store's change feed into the
//! serving build, and makes a new build from the store when the serving
//! one is missing, damaged, of another format or of another feed
//! generation.
//!
//! The index directory holds one sub-directory per build. While a new
//! build is made, the old one (if it is of the same database) keeps
//! answering and following the feed, and readiness says so.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, atomic::Ordering},
};

use tantivy::IndexWriter;
use tokio::runtime::Handle;
use uuid::Uuid;

use super::{
    IndexError, IndexStatus,
    engine::{Engine, FORMAT, Payload},
    engine_error,
    shared::Shared,
};
use crate::{
    progress::{LogLines, Progress, Unit},
    store::{Change, FeedHead},
};

/// Notes read from the store per query while catching up or building.
const PAGE: u32 = 1000;
/// Notes a build adds between two catch-ups of the serving index, so that
/// writes stay searchable at once while a rebuild runs.
const BUILD_STEP: u64 = 20_000;

/// The thread's body: follows the feed until the index stops.
pub(super) fn run(shared: Arc<Shared>, runtime: Handle) {
    Writer::new(shared, runtime).run();
}

/// A build and its writer, with how far it has got.
struct Live {
    engine: Arc<Engine>,
    writer: IndexWriter,
    generation: String,
    /// Committed and visible.
    applied: i64,
}

/// A new build in progress: notes up to `target` are loaded in pages.
struct Build {
    live: Live,
    target: i64,
    done: u64,
    of: u64,
    /// The log's view of `done` of `of` (a build of a large database
    /// takes minutes).
    progress: Progress,
    lines: LogLines,
}

/// The writer thread's state.
struct Writer {
    shared: Arc<Shared>,
    runtime: Handle,
    current: Option<Live>,
    build: Option<Build>,
}

impl Writer {
    fn new(shared: Arc<Shared>, runtime: Handle) -> Self {
        Self {
            shared,
            runtime,
            current: None,
            build: None,
        }
    }

    fn run(mut self) {
        self.current = self.open_existing();
        if let Some(live) = &self.current {
            tracing::info!(
                dir = %live.engine.dir.display(),
                applied = live.applied,
                documents = live.engine.documents(),
                "search index opened"
            );
            self.publish();
        }
        while !self.shared.stop.load(Ordering::SeqCst) {
            match self.step() {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "search index: cannot follow the feed");
                    self.shared
                        .status
                        .send_modify(|s| s.error = Some(e.to_string()));
                }
            }
            self.shared.sleep(self.shared.settings.poll);
        }
        // Writers drop here, which releases their directory locks.
    }

    /// One round: read the head, catch the serving index up, advance a
    /// build. `true` when there is more work right away.
    fn step(&mut self) -> Result<bool, IndexError> {
        let store = self.shared.store.clone();
        let head = self.on_runtime(async move { store.feed_head().await })??;
        if self.current.as_ref().is_some_and(|c| c.applied > head.seq) {
            // Ahead of the feed: built for another database. Nothing of
            // it can be caught up or trusted.
            tracing::warn!("search index is ahead of the database's feed: rebuilding");
            self.retire_current();
        }
        // Behind the feed's floor: events it never read (deletions) have
        // been pruned. It serves on while a build from the notes replaces it.
        let stale = self
            .current
            .as_ref()
            .is_none_or(|c| c.generation != head.generation || c.applied < head.floor);
        let building_other = self
            .build
            .as_ref()
            .is_some_and(|b| b.live.generation != head.generation);
        if building_other && let Some(b) = self.build.take() {
            discard(b.live);
        }
        if stale && self.build.is_none() {
            self.start_build(&head)?;
        }
        if let Some(live) = &self.current {
            metrics::gauge!("search_index_lag").set((head.seq - live.applied).max(0) as f64);
        }
        if let Some(mut live) = self.current.take() {
            let caught_up = self.catch_up(&mut live, head.seq);
            self.current = Some(live);
            caught_up?;
            self.publish();
        }
        if self.build.is_some() {
            self.advance_build(&head)?;
            return Ok(self.build.is_some());
        }
        Ok(false)
    }

    /// Runs `f` on the service's runtime and waits for it. A task rather
    /// than `Handle::block_on`: when the runtime shuts down under a process
    /// that never called `close`, the task is dropped and the writer stops,
    /// instead of polling drivers that are gone.
    fn on_runtime<F>(&self, f: F) -> Result<F::Output, IndexError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.runtime.spawn(async move {
            let _ = tx.send(f.await);
        });
        rx.recv().map_err(|_| {
            self.shared.stop.store(true, Ordering::SeqCst);
            IndexError::Stopped
        })
    }

    fn changes(
        &self,
        after: i64,
        upto: Option<i64>,
        deletes: bool,
    ) -> Result<crate::store::ChangePage, IndexError> {
        let store = self.shared.store.clone();
        Ok(self.on_runtime(async move { store.feed_changes(after, upto, PAGE, deletes).await })??)
    }

    /// The newest build in the directory that opens cleanly; every other
    /// one is removed.
    fn open_existing(&self) -> Option<Live> {
        let mut builds: Vec<PathBuf> = std::fs::read_dir(&self.shared.settings.dir)
            .ok()?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path())
            .collect();
        builds.sort();
        let mut found = None;
        while let Some(dir) = builds.pop() {
            if found.is_some() {
                remove(&dir);
                continue;
            }
            match self.open_build(&dir) {
                Ok(live) => found = Some(live),
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "search index unusable: rebuilding");
                    remove(&dir);
                }
            }
        }
        found
    }

    fn open_build(&self, dir: &Path) -> Result<Live, IndexError> {
        let (engine, payload) = Engine::open(dir)?;
        let writer = engine.writer(self.shared.settings.memory_bytes)?;
        Ok(Live {
            engine: Arc::new(engine),
            writer,
            generation: payload.generation,
            applied: payload.seq,
        })
    }

    fn start_build(&mut self, head: &FeedHead) -> Result<(), IndexError> {
        let store = self.shared.store.clone();
        let of = self.on_runtime(async move { store.count_notes().await })??;
        let dir = self
            .shared
            .settings
            .dir
            .join(Uuid::now_v7().simple().to_string());
        let engine = Engine::create(&dir)?;
        let writer = engine.writer(self.shared.settings.memory_bytes)?;
        tracing::info!(
            notes = of,
            through = head.seq,
            dir = %dir.display(),
            "search index: building from the database"
        );
        self.build = Some(Build {
            live: Live {
                engine: Arc::new(engine),
                writer,
                generation: head.generation.clone(),
                applied: 0,
            },
            target: head.seq,
            done: 0,
            of,
            progress: {
                let p = Progress::new("search index");
                p.stage("building", Unit::Items("notes"), Some(of));
                p
            },
            lines: LogLines::new(self.shared.settings.progress_every),
        });
        self.publish();
        Ok(())
    }

    /// Loads up to [`BUILD_STEP`] notes into the build; once it holds every
    /// note up to its target, commits it, catches it up and makes it the
    /// serving index.
    fn advance_build(&mut self, head: &FeedHead) -> Result<(), IndexError> {
        let Some(mut build) = self.build.take() else {
            return Ok(());
        };
        let mut cursor = build.live.applied;
        let mut added = 0;
        let result = (|| {
            while cursor < build.target && added < BUILD_STEP {
                // Capped: what changes past the target reaches the build
                // through its catch-up, deletions included.
                let page = self.changes(cursor, Some(build.target), false)?;
                for (_, change) in &page.changes {
                    if let Change::Upsert(doc) = change {
                        build
                            .live
                            .writer
                            .add_document(build.live.engine.document(doc))
                            .map_err(engine_error)?;
                        added += 1;
                    }
                }
                cursor = page.through;
            }
            Ok::<_, IndexError>(())
        })();
        if let Err(e) = result {
            // A build that lost a page starts over.
            discard(build.live);
            self.publish();
            return Err(e);
        }
        // The build's cursor lives uncommitted until the build commits.
        build.live.applied = cursor;
        build.done += added;
        build.progress.add(added);
        build.lines.tick(&build.progress);
        if cursor < build.target {
            self.build = Some(build);
            self.publish();
            return Ok(());
        }
        build.lines.finish(&build.progress);
        commit(&mut build.live, build.target)?;
        self.catch_up(&mut build.live, head.seq)?;
        tracing::info!(
            documents = build.live.engine.documents(),
            applied = build.live.applied,
            "search index: build finished, serving it"
        );
        let old = self.current.replace(build.live);
        self.publish();
        if let Some(old) = old {
            discard(old);
        }
        Ok(())
    }

    /// Applies every change after `live.applied` up to at least `target`
    /// in one commit, and makes it visible.
    fn catch_up(&self, live: &mut Live, target: i64) -> Result<(), IndexError> {
        if live.applied >= target {
            return Ok(());
        }
        let mut cursor = live.applied;
        let result = (|| {
            while cursor < target {
                let page = self.changes(cursor, None, true)?;
                if page.through <= cursor {
                    return Err(IndexError::FeedShort { at: cursor, target });
                }
                metrics::counter!("search_index_changes_total")
                    .increment(page.changes.len() as u64);
                for (_, change) in &page.changes {
                    match change {
                        Change::Upsert(doc) => {
                            live.writer.delete_term(live.engine.id_term(doc.id));
                            live.writer
                                .add_document(live.engine.document(doc))
                                .map_err(engine_error)?;
                        }
                        Change::Delete(id) => {
                            live.writer.delete_term(live.engine.id_term(*id));
                        }
                    }
                }
                cursor = page.through;
            }
            fail_point("index-commit");
            commit(live, cursor)
        })();
        if result.is_err() {
            // Nothing half-applied may reach a later commit.
            let _ = live.writer.rollback();
        }
        result
    }

    fn retire_current(&mut self) {
        *self.shared.serving.write().expect("serving lock") = None;
        if let Some(old) = self.current.take() {
            discard(old);
        }
        self.publish();
    }

    fn publish(&self) {
        if let Some(live) = &self.current {
            let mut serving = self.shared.serving.write().expect("serving lock");
            if serving
                .as_ref()
                .is_none_or(|e| !Arc::ptr_eq(e, &live.engine))
            {
                *serving = Some(live.engine.clone());
            }
        }
        let status = IndexStatus {
            serving: self.current.is_some(),
            documents: self.current.as_ref().map_or(0, |c| c.engine.documents()),
            segments: self.current.as_ref().map_or(0, |c| c.engine.segments()),
            applied: self.current.as_ref().map_or(0, |c| c.applied),
            rebuilding: self.build.as_ref().map(|b| (b.done, b.of)),
            error: None,
        };
        metrics::gauge!("search_index_documents").set(status.documents as f64);
        metrics::gauge!("search_index_segments").set(status.segments as f64);
        metrics::gauge!("search_index_rebuilding")
            .set(f64::from(u8::from(status.rebuilding.is_some())));
        metrics::gauge!("search_index_serving").set(f64::from(u8::from(status.serving)));
        self.shared.status.send_replace(status);
    }
}

/// Commits what the writer holds as everything up to `seq`, and reloads the
/// searchers before anyone is told.
fn commit(live: &mut Live, seq: i64) -> Result<(), IndexError> {
    let payload = Payload {
        format: FORMAT,
        generation: live.generation.clone(),
        seq,
    };
    let started = std::time::Instant::now();
    let mut prepared = live.writer.prepare_commit().map_err(engine_error)?;
    prepared.set_payload(&serde_json::to_string(&payload).expect("payload serializes"));
    prepared.commit().map_err(engine_error)?;
    live.engine.reload()?;
    metrics::histogram!("search_index_commit_seconds").record(started.elapsed().as_secs_f64());
    live.applied = seq;
    Ok(())
}

/// Test builds only: `NOTES_FAILPOINT=<name>` kills the process at that
/// point, as a crash would (`kill -9`), to prove what survives it.
fn fail_point(name: &str) {
    if cfg!(debug_assertions) && std::env::var("NOTES_FAILPOINT").as_deref() == Ok(name) {
        eprintln!("fail point {name}: aborting");
        std::process::abort();
    }
}

/// Drops a build's writer (and its lock), then its files. Searches that
/// still hold its segments keep reading them: the files stay mapped.
fn discard(live: Live) {
    let dir = live.engine.dir.clone();
    drop(live);
    remove(&dir);
}

fn remove(dir: &Path) {
    if let Err(e) = std::fs::remove_dir_all(dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot remove an old search index");
    }
}
