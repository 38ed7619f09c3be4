//! The settings and state that the index's callers and its writer thread
//! share: a file of its own so that neither side imports the other.

use std::{
    fs::File,
    path::PathBuf,
    sync::{Arc, Condvar, Mutex, RwLock, atomic::AtomicBool, atomic::Ordering},
    time::Duration,
};

use tokio::sync::watch;

use super::{IndexStatus, engine::Engine};
use crate::store::FeedReader;

#[derive(Debug, Clone)]
pub struct IndexSettings {
    pub dir: PathBuf,
    /// The writer's buffer, in bytes, before it flushes a segment.
    pub memory_bytes: usize,
    /// How often the index looks at the feed when nothing asks it to: the
    /// bound on how stale an idle replica gets.
    pub poll: Duration,
    /// How long a refresh waits for the index to catch up.
    pub refresh_timeout: Duration,
    /// Between two log lines of a build's progress.
    pub progress_every: Duration,
}

impl IndexSettings {
    pub fn new(dir: PathBuf, memory_mb: u32) -> Self {
        Self {
            dir,
            memory_bytes: memory_mb as usize * 1024 * 1024,
            poll: Duration::from_secs(1),
            refresh_timeout: Duration::from_secs(30),
            progress_every: Duration::from_secs(5),
        }
    }
}

/// What the index's callers and its writer thread share.
pub(super) struct Shared {
    pub(super) store: Arc<dyn FeedReader>,
    pub(super) settings: IndexSettings,
    /// The build that answers searches.
    pub(super) serving: RwLock<Option<Arc<Engine>>>,
    pub(super) status: watch::Sender<IndexStatus>,
    wake: Mutex<bool>,
    woken: Condvar,
    pub(super) stop: AtomicBool,
    /// Held for the process's life: one process per index directory.
    _lock: File,
}

impl Shared {
    pub(super) fn new(
        store: Arc<dyn FeedReader>,
        settings: IndexSettings,
        status: watch::Sender<IndexStatus>,
        lock: File,
    ) -> Self {
        Self {
            store,
            settings,
            serving: RwLock::new(None),
            status,
            wake: Mutex::new(false),
            woken: Condvar::new(),
            stop: AtomicBool::new(false),
            _lock: lock,
        }
    }

    pub(super) fn wake(&self) {
        *self.wake.lock().expect("wake lock") = true;
        self.woken.notify_one();
    }

    /// Sleeps until woken, stopped or `timeout`.
    pub(super) fn sleep(&self, timeout: Duration) {
        let guard = self.wake.lock().expect("wake lock");
        let (mut woken, _) = self
            .woken
            .wait_timeout_while(guard, timeout, |w| !*w && !self.stop.load(Ordering::SeqCst))
            .expect("wake lock");
        *woken = false;
    }

    pub(super) fn engine(&self) -> Option<Arc<Engine>> {
        self.serving.read().expect("serving lock").clone()
    }
}
