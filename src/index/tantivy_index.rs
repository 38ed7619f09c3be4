//! [`TantivyIndex`]: a tantivy index that follows the store's change feed.
//!
//! One thread owns the `IndexWriter` (`writer.rs`). Callers never write to
//! the index: they ask it to catch up ([`SearchIndex::refresh`]) and wait
//! until the commit that covers the feed's head, as read after their own
//! write, is visible. Every waiter shares the next commit (group commit),
//! so a commit per document only happens when writes arrive one at a time.

use std::{
    fs::File,
    path::Path,
    sync::{Arc, Mutex, atomic::Ordering},
};

use async_trait::async_trait;
use tokio::{runtime::Handle, sync::watch};

use super::{
    IndexError, IndexStatus, SearchIndex, SearchQuery, SearchResults, Suggestion, engine_error,
    shared::{IndexSettings, Shared},
    writer,
};
use crate::store::{FeedHead, FeedReader};

pub struct TantivyIndex {
    shared: Arc<Shared>,
    heads: HeadReads,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// The store's announcements of other processes' writes, if it has any.
    watch: Option<tokio::task::JoinHandle<()>>,
}

impl TantivyIndex {
    /// Takes the index directory and starts following the feed in the
    /// background; searches answer once an index serves (at once when the
    /// directory holds a usable one).
    pub fn open(store: Arc<dyn FeedReader>, settings: IndexSettings) -> Result<Self, IndexError> {
        std::fs::create_dir_all(&settings.dir).map_err(|e| dir_error(&settings.dir, e))?;
        let lock =
            File::create(settings.dir.join("lock")).map_err(|e| dir_error(&settings.dir, e))?;
        lock.try_lock()
            .map_err(|_| IndexError::Locked(settings.dir.clone()))?;
        let (status, _) = watch::channel(IndexStatus {
            serving: false,
            documents: 0,
            segments: 0,
            applied: 0,
            rebuilding: None,
            error: None,
        });
        let shared = Arc::new(Shared::new(store, settings, status, lock));
        let runtime = Handle::current();
        let waker = shared.clone();
        let watch = shared.store.watch_feed(Arc::new(move || waker.wake()));
        let worker = shared.clone();
        let thread = std::thread::Builder::new()
            .name("search-index".into())
            .spawn(move || writer::run(worker, runtime))
            .map_err(engine_error)?;
        Ok(Self {
            shared,
            heads: HeadReads::default(),
            thread: Mutex::new(Some(thread)),
            watch,
        })
    }
}

impl Drop for TantivyIndex {
    /// A process that ends without [`SearchIndex::close`] (a test's runtime
    /// going away) still stops its writer thread.
    fn drop(&mut self) {
        if let Some(w) = &self.watch {
            w.abort();
        }
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.wake();
    }
}

/// Reads of the feed's head, shared by the callers that wait at once. A
/// caller takes the result of a read that began after it arrived, which is
/// as fresh as a read of its own would be; so concurrent searches cost one
/// query per round trip instead of one each (on PostgreSQL, a round trip
/// per search was most of a search's time under load).
#[derive(Default)]
struct HeadReads {
    /// Reads begun so far; the round number of the next one.
    started: std::sync::atomic::AtomicU64,
    /// The last read that finished: its round and what it found.
    last: Mutex<Option<(u64, Result<FeedHead, String>)>>,
    /// Held by the caller whose read is in flight; the others queue on it.
    reading: tokio::sync::Mutex<()>,
}

impl HeadReads {
    async fn read(&self, store: &dyn FeedReader) -> Result<FeedHead, IndexError> {
        let arrived = self.started.load(Ordering::SeqCst);
        let fresh = || {
            self.last
                .lock()
                .expect("head lock")
                .as_ref()
                .filter(|(round, _)| *round > arrived)
                .map(|(_, head)| head.clone())
        };
        // Cancellation-safe: a caller dropped mid-read releases the lock,
        // and the next one in the queue reads for itself.
        let _turn = self.reading.lock().await;
        let head = match fresh() {
            Some(head) => head,
            None => {
                let round = self.started.fetch_add(1, Ordering::SeqCst) + 1;
                let head = store.feed_head().await.map_err(|e| e.to_string());
                *self.last.lock().expect("head lock") = Some((round, head.clone()));
                head
            }
        };
        head.map_err(|e| IndexError::Store(crate::store::StoreError::Unavailable(e.into())))
    }
}

fn dir_error(dir: &Path, source: std::io::Error) -> IndexError {
    IndexError::Directory {
        dir: dir.to_owned(),
        source,
    }
}

#[async_trait]
impl SearchIndex for TantivyIndex {
    async fn refresh(&self) -> Result<(), IndexError> {
        let head = self.heads.read(self.shared.store.as_ref()).await?;
        let mut status = self.shared.status.subscribe();
        {
            let now = status.borrow_and_update();
            if !now.serving || now.applied >= head.seq {
                return Ok(());
            }
        }
        self.shared.wake();
        let caught_up = status.wait_for(|s| !s.serving || s.applied >= head.seq);
        match tokio::time::timeout(self.shared.settings.refresh_timeout, caught_up).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(IndexError::Stopped),
            Err(_) => Err(IndexError::Lagging {
                seq: head.seq,
                secs: self.shared.settings.refresh_timeout.as_secs(),
            }),
        }
    }

    async fn search(&self, query: &SearchQuery) -> Result<SearchResults, IndexError> {
        self.refresh().await?;
        let Some(engine) = self.shared.engine() else {
            return Err(IndexError::NotReady(self.status().check()));
        };
        let query = query.clone();
        // Off the async workers: a query over a large index may take
        // milliseconds of CPU.
        tokio::task::spawn_blocking(move || engine.search(&query)).await?
    }

    async fn suggest(&self, prefix: &str, limit: usize) -> Result<Vec<Suggestion>, IndexError> {
        let Some(engine) = self.shared.engine() else {
            return Err(IndexError::NotReady(self.status().check()));
        };
        let prefix = prefix.to_owned();
        tokio::task::spawn_blocking(move || engine.suggest(&prefix, limit)).await?
    }

    fn status(&self) -> IndexStatus {
        self.shared.status.borrow().clone()
    }

    fn watch_status(&self) -> watch::Receiver<IndexStatus> {
        self.shared.status.subscribe()
    }

    async fn close(&self) {
        if let Some(w) = &self.watch {
            w.abort();
        }
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.wake();
        let thread = self.thread.lock().expect("thread lock").take();
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}
