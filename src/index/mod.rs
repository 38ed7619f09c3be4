//! The search index: derived from the store's change feed, never the only
//! copy of anything, behind one small trait so handlers never see the
//! engine. One module per engine; today there is one, tantivy, in-process.
//!
//! Every process that serves search keeps its own index and follows the
//! feed. [`SearchIndex::refresh`] makes every change committed before the
//! call searchable, which is what gives "searchable as soon as the write
//! returned" on one replica and read-your-writes across replicas.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{store::StoreError, text::query::Query};

mod completing;
mod directory;
mod engine;
mod expand;
mod facets;
mod shared;
mod tantivy_index;
pub mod tokenizer;
mod writer;

pub use engine::{BODY_BOOST, EXTRA_BOOST, PHRASE_PREFIX_EXPANSIONS, TITLE_BOOST};
pub use facets::MAX_VALUES as MAX_FACET_VALUES;
pub use shared::IndexSettings;
pub use tantivy_index::TantivyIndex;

#[derive(Debug, Clone)]
pub struct SearchQuery {
    /// Parsed; `None` matches every note (a filtered, sorted listing).
    /// When given, `include` has at least one clause.
    pub query: Option<Query>,
    pub filter: Filter,
    pub sort: Sort,
    /// Count the tags over the whole match set.
    pub facets: bool,
    pub limit: u32,
    pub offset: u32,
    /// Cuts what a hit shows from its title and body.
    pub excerpt: Excerpt,
}

/// Conditions that narrow the matches without scoring them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// The note has every one.
    pub all_tags: Vec<String>,
    /// The note has at least one (when any are given).
    pub any_tags: Vec<String>,
    /// The note has none.
    pub not_tags: Vec<String>,
    pub created: TimeRange,
    pub updated: TimeRange,
    pub has_attachments: Option<bool>,
}

/// `from` inclusive, `before` exclusive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeRange {
    pub from: Option<DateTime<Utc>>,
    pub before: Option<DateTime<Utc>>,
}

/// The order of hits; every order but relevance ends with the note's id,
/// so pages never overlap or skip however the index's segments merge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Sort {
    #[default]
    Relevance,
    Created {
        descending: bool,
    },
    Updated {
        descending: bool,
    },
    /// By title, case-folded, A to Z.
    Title,
}

/// What a hit shows: its title and an excerpt, both HTML with the matches
/// marked.
#[derive(Debug, Clone, Default)]
pub struct Cut {
    pub title_html: String,
    pub snippet: String,
}

/// Turns a hit's `(title, body)` into what it shows as the engine reads
/// the hit, so a page of large notes never holds every body at once. The
/// caller supplies it: the index knows nothing of snippets.
///
/// The third argument is the words the search matched besides those typed
/// and the completions of a word being typed: the typo neighbours it looked
/// for (none unless nothing matched as typed). So an excerpt marks what
/// matched, and needs no edit distance per word of a body.
#[derive(Clone)]
pub struct Excerpt(Arc<CutFn>);

type CutFn = dyn Fn(&str, &str, &[String]) -> Cut + Send + Sync;

impl Excerpt {
    pub fn new(cut: impl Fn(&str, &str, &[String]) -> Cut + Send + Sync + 'static) -> Self {
        Self(Arc::new(cut))
    }
    pub fn cut(&self, title: &str, body: &str, also: &[String]) -> Cut {
        (self.0)(title, body, also)
    }
}

impl std::fmt::Debug for Excerpt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Excerpt")
    }
}

/// A search hit with its excerpt.
#[derive(Debug, Clone)]
pub struct SearchRow {
    pub id: Uuid,
    pub title: String,
    pub cut: Cut,
    pub tags: Vec<String>,
    /// Higher is better; 0 when sorted by anything but relevance.
    pub score: f64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug)]
pub struct SearchResults {
    pub rows: Vec<SearchRow>,
    /// Every match, counted exactly.
    pub total: u64,
    /// Tags over every match, the most frequent first (when asked for).
    pub tags: Option<Vec<(String, u64)>>,
}

/// A completion of a word being typed, and the notes it is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suggestion {
    pub text: String,
    pub count: u64,
}

/// What readiness and the admin pages show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexStatus {
    /// An index answers searches (possibly an older build while a new one
    /// is made).
    pub serving: bool,
    /// Documents in the index that serves.
    pub documents: u64,
    /// Its segments (merges keep them few).
    pub segments: usize,
    /// The last change of the feed the serving index holds.
    pub applied: i64,
    /// `(done, of)` notes while a build runs.
    pub rebuilding: Option<(u64, u64)>,
    /// The last failure to follow the feed, cleared by the next success.
    pub error: Option<String>,
}

impl IndexStatus {
    /// The readiness line: `ok`, or what keeps the index from serving. The
    /// error itself is logged where it happens, not shown on a public probe.
    pub fn check(&self) -> String {
        match (self.serving, self.rebuilding, &self.error) {
            (true, _, None) => "ok".into(),
            (false, Some((done, of)), _) => format!("rebuilding {done}/{of}"),
            (_, _, Some(_)) => "unavailable".into(),
            (false, None, None) => "starting".into(),
        }
    }
}

/// Tantivy's own failure (reading, writing, committing, parsing a stored
/// value), with its source for the log.
fn engine_error(e: impl std::error::Error + Send + Sync + 'static) -> IndexError {
    IndexError::Engine(Box::new(e))
}

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// No index can answer yet: the first build is running.
    #[error("the search index is being built ({0})")]
    NotReady(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("search engine error: {0}")]
    Engine(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The index directory cannot be created, read or locked.
    #[error("index directory {dir}: {source}")]
    Directory {
        dir: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0} is in use by another process: every replica needs its own NOTES_INDEX_DIR")]
    Locked(std::path::PathBuf),
    /// The files on disk are not an index this binary can serve (another
    /// schema, damaged files, no commit of this format): it is rebuilt.
    #[error("the index on disk is unusable: {0}")]
    Unusable(String),
    /// The index did not take in a committed change within the refresh
    /// timeout.
    #[error("the index did not catch up with change {seq} within {secs}s")]
    Lagging { seq: i64, secs: u64 },
    /// The feed ended before the change a rebuild must reach.
    #[error("the feed stopped at {at} short of {target}")]
    FeedShort { at: i64, target: i64 },
    /// The writer thread, or the runtime it reads the store on, stopped.
    #[error("the index writer stopped")]
    Stopped,
    /// A search or suggestion task failed (it panicked or was cancelled).
    #[error("a search task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

#[async_trait]
pub trait SearchIndex: Send + Sync + 'static {
    /// Returns once every change the store committed before this call is
    /// searchable, or at once when no index serves yet.
    async fn refresh(&self) -> Result<(), IndexError>;
    /// Refreshes, then searches.
    async fn search(&self, query: &SearchQuery) -> Result<SearchResults, IndexError>;
    /// Words of the index that complete `prefix` or are within its typos,
    /// the most frequent first; no refresh (a search box asks often).
    async fn suggest(&self, prefix: &str, limit: usize) -> Result<Vec<Suggestion>, IndexError>;
    fn status(&self) -> IndexStatus;
    /// The status as it changes: `applied` moves each time the index has
    /// read further changes of the feed, which this process's followers of
    /// the feed (the change streams) take as their wake-up.
    fn watch_status(&self) -> tokio::sync::watch::Receiver<IndexStatus>;
    /// Stops following the feed and releases the index (its writer lock).
    async fn close(&self);
}

pub type DynIndex = std::sync::Arc<dyn SearchIndex>;
