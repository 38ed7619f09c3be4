//! One tantivy index on disk: its schema, the documents it holds, and how a
//! parsed [`Query`] becomes a tantivy query. Knows nothing of the feed.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tantivy::{
    DocAddress, Index, IndexReader, IndexWriter, ReloadPolicy, Score, TantivyDocument, Term,
    collector::{Count, TopDocs},
    merge_policy::LogMergePolicy,
    query::{
        BooleanQuery, BoostQuery, ConstScoreQuery, Occur, PhrasePrefixQuery, PhraseQuery, Query,
        TermQuery,
    },
    schema::{
        Field, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions, Value,
    },
};
use uuid::Uuid;

use super::{
    Excerpt, IndexError, SearchQuery, SearchResults, SearchRow, directory::NoSyncDirectory,
    tokenizer,
};
use crate::{store::IndexDoc, text::query::Clause};

/// Bumped whenever the schema, the tokenizer or the scoring fields change:
/// an index of another format is rebuilt, never read.
pub const FORMAT: u32 = 1;

/// Field weights: a title hit outranks a body hit, which outranks a hit in
/// an attachment's text.
const TITLE_BOOST: Score = 4.0;
const BODY_BOOST: Score = 1.0;
const EXTRA_BOOST: Score = 0.5;
/// Words a prefix inside a phrase (`"new yo*"`) may stand for. A lone
/// prefix (`yo*`) has no such limit: it is a range of the term dictionary.
const PHRASE_PREFIX_EXPANSIONS: u32 = 256;

/// What the index's last commit says it holds (the commit payload).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    pub format: u32,
    pub generation: String,
    /// Every feed change up to this one is in the index.
    pub seq: i64,
}

#[derive(Clone, Copy)]
struct Fields {
    id: Field,
    title: Field,
    body: Field,
    extra: Field,
    tags: Field,
}

pub struct Engine {
    pub dir: PathBuf,
    index: Index,
    reader: IndexReader,
    fields: Fields,
}

fn schema() -> (Schema, Fields) {
    let words = TextFieldIndexing::default()
        .set_tokenizer(tokenizer::NAME)
        .set_index_option(IndexRecordOption::WithFreqsAndPositions);
    let text = TextOptions::default().set_indexing_options(words);
    let mut b = Schema::builder();
    let fields = Fields {
        id: b.add_text_field("id", STRING | STORED),
        title: b.add_text_field("title", text.clone().set_stored()),
        body: b.add_text_field("body", text.clone().set_stored()),
        extra: b.add_text_field("extra", text),
        tags: b.add_text_field("tags", STRING | STORED),
    };
    (b.build(), fields)
}

fn engine_error(e: impl std::fmt::Display) -> IndexError {
    IndexError::Engine(e.to_string())
}

impl Engine {
    /// A new, empty index in `dir` (which must not hold one).
    pub fn create(dir: &Path) -> Result<Self, IndexError> {
        std::fs::create_dir_all(dir).map_err(engine_error)?;
        let (schema, fields) = schema();
        let directory = NoSyncDirectory::open(dir).map_err(engine_error)?;
        let index = Index::create(directory, schema, tantivy::IndexSettings::default())
            .map_err(engine_error)?;
        Self::with(dir, index, fields)
    }

    /// The index in `dir` and what it holds. Every file's checksum is
    /// checked first, so a damaged index is rebuilt instead of answering
    /// wrongly (or not at all) later.
    pub fn open(dir: &Path) -> Result<(Self, Payload), IndexError> {
        let directory = NoSyncDirectory::open(dir).map_err(engine_error)?;
        let index = Index::open(directory).map_err(engine_error)?;
        let (schema, fields) = schema();
        if index.schema() != schema {
            return Err(IndexError::Engine("built with another schema".into()));
        }
        let damaged = index.validate_checksum().map_err(engine_error)?;
        if !damaged.is_empty() {
            return Err(IndexError::Engine(format!("damaged files: {damaged:?}")));
        }
        let payload = index
            .load_metas()
            .map_err(engine_error)?
            .payload
            .and_then(|p| serde_json::from_str::<Payload>(&p).ok())
            .filter(|p| p.format == FORMAT)
            .ok_or_else(|| IndexError::Engine("no commit of this format".into()))?;
        Ok((Self::with(dir, index, fields)?, payload))
    }

    fn with(dir: &Path, index: Index, fields: Fields) -> Result<Self, IndexError> {
        index
            .tokenizers()
            .register(tokenizer::NAME, tokenizer::NotesTokenizer::default());
        // Reloaded by the writer after each commit, before it tells anyone
        // the commit is visible.
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(engine_error)?;
        Ok(Self {
            dir: dir.to_owned(),
            index,
            reader,
            fields,
        })
    }

    pub fn writer(&self, memory_bytes: usize) -> Result<IndexWriter, IndexError> {
        // One indexing thread per 2 cores' worth of budget at most: each
        // needs its own share of at least 15 MB.
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(memory_bytes / 15_000_000)
            .clamp(1, 4);
        let writer = self
            .index
            .writer_with_num_threads(threads, memory_bytes)
            .map_err(engine_error)?;
        // Log-structured merges keep the segment count logarithmic in the
        // documents even when every write commits on its own (eight small
        // segments become one); a level whose segments are 30% deleted
        // documents is merged too, so updates give their space back.
        let mut policy = LogMergePolicy::default();
        policy.set_del_docs_ratio_before_merge(0.3);
        writer.set_merge_policy(Box::new(policy));
        Ok(writer)
    }

    pub fn segments(&self) -> usize {
        self.reader.searcher().segment_readers().len()
    }

    pub fn reload(&self) -> Result<(), IndexError> {
        self.reader.reload().map_err(engine_error)
    }

    pub fn documents(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    pub fn id_term(&self, id: Uuid) -> Term {
        Term::from_field_text(self.fields.id, &id.to_string())
    }

    pub fn document(&self, doc: &IndexDoc) -> TantivyDocument {
        let f = self.fields;
        let mut d = TantivyDocument::new();
        d.add_text(f.id, doc.id.to_string());
        d.add_text(f.title, &doc.title);
        d.add_text(f.body, &doc.body);
        if !doc.extra.is_empty() {
            d.add_text(f.extra, &doc.extra);
        }
        for tag in &doc.tags {
            d.add_text(f.tags, tag);
        }
        d
    }

    /// Top hits by score and the exact number of matches.
    pub fn search(&self, q: &SearchQuery) -> Result<SearchResults, IndexError> {
        let query = self.query(q);
        let searcher = self.reader.searcher();
        let top = TopDocs::with_limit(q.limit as usize)
            .and_offset(q.offset as usize)
            .order_by_score();
        let (hits, total) = searcher
            .search(&query, &(top, Count))
            .map_err(engine_error)?;
        let rows = hits
            .into_iter()
            .map(|(score, address)| self.row(&searcher, score, address, &q.excerpt))
            .collect::<Result<_, _>>()?;
        Ok(SearchResults {
            rows,
            total: total as u64,
        })
    }

    fn row(
        &self,
        searcher: &tantivy::Searcher,
        score: Score,
        address: DocAddress,
        excerpt: &Excerpt,
    ) -> Result<SearchRow, IndexError> {
        let f = self.fields;
        let doc: TantivyDocument = searcher.doc(address).map_err(engine_error)?;
        let text = |field| {
            doc.get_first(field)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned()
        };
        let id = Uuid::parse_str(&text(f.id)).map_err(engine_error)?;
        let title = text(f.title);
        let body = doc
            .get_first(f.body)
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        Ok(SearchRow {
            id,
            excerpt: excerpt.cut(&title, body),
            title,
            tags: doc
                .get_all(f.tags)
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            score: f64::from(score),
        })
    }

    /// Every include clause must match in some field; no exclude clause may
    /// match in any. The tag filter does not score.
    fn query(&self, q: &SearchQuery) -> BooleanQuery {
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for c in &q.query.include {
            clauses.push((Occur::Must, self.clause(c)));
        }
        for c in &q.query.exclude {
            clauses.push((Occur::MustNot, self.clause(c)));
        }
        if let Some(tag) = &q.tag {
            let term = TermQuery::new(
                Term::from_field_text(self.fields.tags, tag),
                IndexRecordOption::Basic,
            );
            clauses.push((
                Occur::Must,
                Box::new(ConstScoreQuery::new(Box::new(term), 0.0)),
            ));
        }
        BooleanQuery::new(clauses)
    }

    fn clause(&self, c: &Clause) -> Box<dyn Query> {
        let f = self.fields;
        let per_field = [
            (f.title, TITLE_BOOST),
            (f.body, BODY_BOOST),
            (f.extra, EXTRA_BOOST),
        ]
        .into_iter()
        .map(|(field, boost)| {
            let q: Box<dyn Query> = Box::new(BoostQuery::new(field_query(field, c), boost));
            (Occur::Should, q)
        })
        .collect();
        Box::new(BooleanQuery::new(per_field))
    }
}

fn field_query(field: Field, c: &Clause) -> Box<dyn Query> {
    let mut terms: Vec<Term> = c
        .tokens
        .iter()
        .map(|t| Term::from_field_text(field, t))
        .collect();
    match (terms.len(), c.prefix) {
        (1, false) => Box::new(TermQuery::new(
            terms.remove(0),
            IndexRecordOption::WithFreqs,
        )),
        (_, false) => Box::new(PhraseQuery::new(terms)),
        (_, true) => {
            let mut q = PhrasePrefixQuery::new(terms);
            q.set_max_expansions(PHRASE_PREFIX_EXPANSIONS);
            Box::new(q)
        }
    }
}
