//! One tantivy index on disk: its schema, the documents it holds, and how a
//! parsed [`Query`] becomes a tantivy query. Knows nothing of the feed.

use std::{
    collections::HashMap,
    ops::Bound,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tantivy::{
    DocAddress, Index, IndexReader, IndexWriter, Order, ReloadPolicy, Score, Searcher,
    TantivyDocument, Term,
    collector::{
        Count, TopDocs,
        sort_key::{SortByStaticFastValue, SortByString},
    },
    merge_policy::LogMergePolicy,
    query::{
        AllQuery, BooleanQuery, BoostQuery, ConstScoreQuery, DisjunctionMaxQuery, Occur,
        PhrasePrefixQuery, PhraseQuery, Query, RangeQuery, TermQuery,
    },
    schema::{
        DateOptions, DateTimePrecision, FAST, Field, INDEXED, IndexRecordOption, NumericOptions,
        STORED, STRING, Schema, TextFieldIndexing, TextOptions, Value,
    },
};
use uuid::Uuid;

use super::{
    Excerpt, Filter, IndexError, SearchQuery, SearchResults, SearchRow, Sort, Suggestion,
    TimeRange,
    completing::Completing,
    directory::NoSyncDirectory,
    engine_error,
    expand::{self, Lexicon},
    facets, tokenizer,
};
use crate::{
    store::IndexDoc,
    text::query::{Clause, Query as Parsed},
};

/// Bumped whenever the schema, the tokenizer or the scoring fields change:
/// an index of another format is rebuilt, never read.
pub const FORMAT: u32 = 2;

/// Field weights: a title hit outranks a body hit, which outranks a hit in
/// an attachment's text.
/// Public so that the raw-tantivy reference in `bench/` ranks with the
/// same weights instead of a copy of them.
pub const TITLE_BOOST: Score = 4.0;
pub const BODY_BOOST: Score = 1.0;
pub const EXTRA_BOOST: Score = 0.5;
/// Words a prefix inside a phrase (`"new yo*"`) may stand for. A lone
/// prefix (`yo*`) has no such limit: it is a range of the term dictionary.
pub const PHRASE_PREFIX_EXPANSIONS: u32 = 256;
/// A word matched through a typo, or as the completion of a word being
/// typed, scores this share of what the word as typed would.
const TYPO_WEIGHT: Score = 0.5;
const COMPLETION_WEIGHT: Score = 0.6;
/// Words a typo or a word being typed may stand for, the most frequent
/// first. Each is a posting list to merge and count, so few: Typesense's
/// `max_candidates` default is 4 for the same reason. Completions keep a
/// few more, since a prefix has more of them than a word has neighbours.
const KEEP_TYPOS: usize = 4;
const KEEP_COMPLETIONS: usize = 8;
/// A word being typed needs this many letters before its completions in
/// the titles are searched ([`Completing`]): one or two letters say too
/// little to pick a note, and have the most completions to read.
const TITLE_COMPLETIONS_FROM_CHARS: usize = 3;
/// A last word found as typed in this share of the notes or more is taken
/// as finished: its notes already fill the first pages, and completing it
/// (include: included, includes, including) would merge and count posting
/// lists as long as its own for hits ranked below all of them.
const COMPLETE_BELOW_SHARE: u64 = 100;
const COMPLETE_BELOW_NOTES_AT_LEAST: u64 = 100;
/// What a note gains for each word it matches as typed, when that word
/// could also have matched otherwise. It is above any sum of BM25 scores
/// (a term's is below 50 even at 10^8 notes, times the field weights), so
/// every note that matches more words as typed ranks above every note that
/// needs more typos or completions: a typo never pushes an exact match
/// out of the first page, as in Meilisearch's `typo` ranking rule.
const AS_TYPED_BONUS: Score = 10_000.0;

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
    created: Field,
    updated: Field,
    attachments: Field,
    title_sort: Field,
}

/// A page of hits, the number of matches, the tag counts.
type Found = (
    Vec<(Score, DocAddress)>,
    usize,
    Option<HashMap<String, u64>>,
);

/// How far a search pass looks beyond the words as typed; each looks as
/// far as the one before it and further.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Tolerate {
    /// Completions of a last word that is not common; no typos.
    AsTyped,
    /// Every completion; no typos.
    Completions,
    /// Every typo and completion the query allows.
    All,
    /// And a letter more for the words one letter short of a typo.
    Stretched,
}

/// What a pass left out that a more tolerant one would look for.
#[derive(Clone, Copy, Default)]
struct Withheld {
    typos: bool,
    completions: bool,
    letters: bool,
}

/// A pass's query, what it left out, and the typo neighbours it searched
/// (for the excerpts to mark).
type Built = (BooleanQuery, Withheld, Vec<String>);

/// A clause's query, what it left out, and the neighbours it searched.
type BuiltClause = (Box<dyn Query>, Withheld, Vec<String>);

/// Where a search's passes look words up: the searcher that answers, and
/// the lexicon, when one is built.
struct Words<'s> {
    searcher: &'s Searcher,
    lexicon: Option<Arc<Lexicon>>,
}

/// Fast-field names, as the sort keys and the tag counts read them.
const ID: &str = "id";
const TAGS: &str = "tags";
const CREATED: &str = "created";
const UPDATED: &str = "updated";
const TITLE_SORT: &str = "title_sort";
/// Bytes of the folded title kept to sort by.
const TITLE_SORT_BYTES: usize = 256;

/// A lexicon is rebuilt once the segments it does not cover hold this
/// share of the documents or more (1/4): until then the walks read it and
/// the few newer segments' own dictionaries.
const LEXICON_STALE_SHARE: u64 = 4;

pub struct Engine {
    pub dir: PathBuf,
    index: Index,
    reader: IndexReader,
    fields: Fields,
    /// The words of titles and bodies in one dictionary, for the typo and
    /// completion walks (see [`expand::Lexicon`]); built off the request
    /// path, by one thread at a time.
    lexicon: Arc<Mutex<Option<Arc<Lexicon>>>>,
    building: Arc<AtomicBool>,
}

fn schema() -> (Schema, Fields) {
    let words = TextFieldIndexing::default()
        .set_tokenizer(tokenizer::NAME)
        .set_index_option(IndexRecordOption::WithFreqsAndPositions);
    let text = TextOptions::default().set_indexing_options(words);
    // Microseconds: what both databases keep, so the filters' bounds
    // (after inclusive, before exclusive) are exact.
    let date = DateOptions::from(FAST | STORED).set_precision(DateTimePrecision::Microseconds);
    let mut b = Schema::builder();
    let fields = Fields {
        id: b.add_text_field(ID, STRING | STORED | FAST),
        title: b.add_text_field("title", text.clone().set_stored()),
        body: b.add_text_field("body", text.clone().set_stored()),
        extra: b.add_text_field("extra", text),
        tags: b.add_text_field(TAGS, STRING | STORED | FAST),
        created: b.add_date_field(CREATED, date.clone()),
        updated: b.add_date_field(UPDATED, date),
        attachments: b.add_u64_field("attachments", NumericOptions::from(FAST | INDEXED)),
        title_sort: b.add_text_field(TITLE_SORT, TextOptions::default().set_fast("raw")),
    };
    (b.build(), fields)
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
            return Err(IndexError::Unusable("built with another schema".into()));
        }
        let damaged = index.validate_checksum().map_err(engine_error)?;
        if !damaged.is_empty() {
            return Err(IndexError::Unusable(format!("damaged files: {damaged:?}")));
        }
        let payload = index
            .load_metas()
            .map_err(engine_error)?
            .payload
            .and_then(|p| serde_json::from_str::<Payload>(&p).ok())
            .filter(|p| p.format == FORMAT)
            .ok_or_else(|| IndexError::Unusable("no commit of this format".into()))?;
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
            lexicon: Arc::default(),
            building: Arc::default(),
        })
    }

    /// The lexicon to walk with `searcher`, if one is built. When there is
    /// none, or the segments it does not cover hold a quarter of the
    /// documents or more, a new one is built on a thread of its own over
    /// `searcher`'s segments: at 100k notes that reads every word of the
    /// index (a few hundred milliseconds), which no request should wait
    /// for; meanwhile the walks read what they can.
    fn lexicon(&self, searcher: &Searcher) -> Option<Arc<Lexicon>> {
        let current = self.lexicon.lock().ok()?.clone();
        let stale = current.as_ref().is_none_or(|l| {
            let (outside, all) = l.uncovered(searcher);
            outside > 0 && outside * LEXICON_STALE_SHARE >= all
        });
        if stale && !self.building.swap(true, Ordering::AcqRel) {
            let (searcher, slot, building) = (
                searcher.clone(),
                Arc::clone(&self.lexicon),
                Arc::clone(&self.building),
            );
            let fields = [self.fields.title, self.fields.body];
            let spawned = std::thread::Builder::new()
                .name("lexicon".into())
                .spawn(move || {
                    match Lexicon::build(&searcher, &fields) {
                        Ok(built) => {
                            if let Ok(mut slot) = slot.lock() {
                                *slot = Some(Arc::new(built));
                            }
                        }
                        // The walks read every segment meanwhile; the next
                        // search tries again.
                        Err(e) => tracing::warn!(error = %e, "building the search lexicon failed"),
                    }
                    building.store(false, Ordering::Release);
                });
            if spawned.is_err() {
                self.building.store(false, Ordering::Release);
            }
        }
        current
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
        d.add_date(f.created, date(doc.created_at));
        d.add_date(f.updated, date(doc.updated_at));
        d.add_u64(f.attachments, u64::from(doc.attachments));
        d.add_text(f.title_sort, title_sort_key(&doc.title));
        d
    }

    /// One page of hits in the order asked for, the exact number of
    /// matches, and the tag counts over all of them when asked for.
    ///
    /// First with the words as typed (and the completions of a last word
    /// that is not common); when that does not fill the page asked for,
    /// again with every completion; when nothing matched, again with every
    /// typo the query allows. The last is Typesense's `typo_tokens_threshold`
    /// at its default (1): a query whose words match as typed costs what it
    /// did before typos existed. When even that found nothing, once more
    /// with a letter inserted into the words one letter short of a typo
    /// ([`crate::text::typo::may_gain_a_letter`]).
    pub fn search(&self, q: &SearchQuery) -> Result<SearchResults, IndexError> {
        let searcher = self.reader.searcher();
        let words = Words {
            searcher: &searcher,
            lexicon: q.query.as_ref().and_then(|_| self.lexicon(&searcher)),
        };
        let (query, withheld, mut neighbours) = self.query(&words, q, Tolerate::AsTyped)?;
        let mut found = self.collect(&searcher, &query, q)?;
        if withheld.completions && found.1 < (q.offset + q.limit) as usize {
            let (query, _, _) = self.query(&words, q, Tolerate::Completions)?;
            found = self.collect(&searcher, &query, q)?;
        }
        if withheld.typos && found.1 == 0 {
            let query;
            (query, _, neighbours) = self.query(&words, q, Tolerate::All)?;
            found = self.collect(&searcher, &query, q)?;
        }
        if withheld.letters && found.1 == 0 {
            let query;
            (query, _, neighbours) = self.query(&words, q, Tolerate::Stretched)?;
            found = self.collect(&searcher, &query, q)?;
        }
        let (hits, total, tags) = found;
        let rows = hits
            .into_iter()
            .map(|(score, address)| self.row(&searcher, score, address, &q.excerpt, &neighbours))
            .collect::<Result<_, _>>()?;
        Ok(SearchResults {
            rows,
            total: total as u64,
            tags: tags.map(facets::ranked),
        })
    }

    /// The page, the number of matches and the tag counts of `query`.
    fn collect(
        &self,
        searcher: &Searcher,
        query: &BooleanQuery,
        q: &SearchQuery,
    ) -> Result<Found, IndexError> {
        let page = TopDocs::with_limit(q.limit as usize).and_offset(q.offset as usize);
        let tags = q.facets.then_some(facets::TagCounts { field: TAGS });
        let order = |descending: bool| if descending { Order::Desc } else { Order::Asc };
        let by_id = (SortByString::for_field(ID), Order::Asc);
        Ok(match q.sort {
            Sort::Relevance => {
                // Equal scores keep the index's order, which a merge of
                // segments may change between two pages; breaking ties by
                // id cost a third of the throughput (a key per match).
                searcher
                    .search(query, &(page.order_by_score(), Count, tags))
                    .map_err(engine_error)?
            }
            Sort::Created { descending } | Sort::Updated { descending } => {
                let field = if matches!(q.sort, Sort::Created { .. }) {
                    CREATED
                } else {
                    UPDATED
                };
                let key = (
                    (
                        SortByStaticFastValue::<tantivy::DateTime>::for_field(field),
                        order(descending),
                    ),
                    by_id,
                );
                let (hits, total, tags) = searcher
                    .search(query, &(page.order_by(key), Count, tags))
                    .map_err(engine_error)?;
                (unscored(hits), total, tags)
            }
            Sort::Title => {
                let key = ((SortByString::for_field(TITLE_SORT), Order::Asc), by_id);
                let (hits, total, tags) = searcher
                    .search(query, &(page.order_by(key), Count, tags))
                    .map_err(engine_error)?;
                (unscored(hits), total, tags)
            }
        })
    }

    /// Words of the titles and bodies that complete `prefix`, or are
    /// within its typos, with the notes they are in; the most frequent
    /// first. The word itself counts when it is a word of the index.
    pub fn suggest(&self, prefix: &str, limit: usize) -> Result<Vec<Suggestion>, IndexError> {
        let searcher = self.reader.searcher();
        let lexicon = self.lexicon(&searcher);
        let lexicon = lexicon.as_deref();
        let f = self.fields;
        let fields = [f.title, f.body];
        // Candidates by their document frequencies, which the walks read
        // for free; only the few kept are counted exactly.
        let mut candidates = vec![(prefix.to_owned(), u64::MAX)];
        candidates.extend(expand::completions(
            &searcher, lexicon, &fields, prefix, limit,
        )?);
        let edits = crate::text::typo::max_edits(prefix);
        if edits > 0 {
            candidates.extend(expand::typos(
                &searcher, lexicon, &fields, prefix, edits, limit,
            )?);
        }
        candidates.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        candidates.dedup_by(|a, b| a.0 == b.0);
        let mut found = Vec::new();
        for (word, _) in candidates.into_iter().take(limit + 1) {
            let either = BooleanQuery::new(
                fields
                    .iter()
                    .map(|&field| (Occur::Should, present(field, &word)))
                    .collect(),
            );
            let count = searcher.search(&either, &Count).map_err(engine_error)? as u64;
            if count > 0 {
                found.push(Suggestion { text: word, count });
            }
        }
        found.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.text.cmp(&b.text)));
        found.truncate(limit);
        Ok(found)
    }

    fn row(
        &self,
        searcher: &tantivy::Searcher,
        score: Score,
        address: DocAddress,
        excerpt: &Excerpt,
        neighbours: &[String],
    ) -> Result<SearchRow, IndexError> {
        let f = self.fields;
        let doc: TantivyDocument = searcher.doc(address).map_err(engine_error)?;
        let text = |field| {
            doc.get_first(field)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned()
        };
        let time = |field| {
            doc.get_first(field)
                .and_then(|v| v.as_datetime())
                .and_then(|d| DateTime::from_timestamp_micros(d.into_timestamp_micros()))
                .ok_or_else(|| IndexError::Unusable("a document without its dates".into()))
        };
        let id = Uuid::parse_str(&text(f.id)).map_err(engine_error)?;
        let title = text(f.title);
        let body = doc
            .get_first(f.body)
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        Ok(SearchRow {
            id,
            cut: excerpt.cut(&title, body, neighbours),
            title,
            tags: doc
                .get_all(f.tags)
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            score: f64::from(score),
            created_at: time(f.created)?,
            updated_at: time(f.updated)?,
        })
    }

    /// Every include clause must match in some field; no exclude clause may
    /// match in any. Filters do not score. No query at all matches every
    /// note the filters let through.
    /// The query, what it left out that a more tolerant pass would look
    /// for, and the typo neighbours it searched.
    fn query(
        &self,
        words: &Words,
        q: &SearchQuery,
        tolerate: Tolerate,
    ) -> Result<Built, IndexError> {
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let mut withheld = Withheld::default();
        let mut neighbours = Vec::new();
        match &q.query {
            Some(Parsed { include, exclude }) if !include.is_empty() => {
                // The lone words of the query: none stands for another.
                let lone: Vec<&str> = include
                    .iter()
                    .filter_map(|c| match c.tokens.as_slice() {
                        [w] if !c.prefix => Some(w.as_str()),
                        _ => None,
                    })
                    .collect();
                let others = include.len() > 1;
                for c in include {
                    let (clause, held, found) = self.clause(words, c, others, &lone, tolerate)?;
                    withheld.typos |= held.typos;
                    withheld.completions |= held.completions;
                    withheld.letters |= held.letters;
                    neighbours.extend(found);
                    clauses.push((Occur::Must, clause));
                }
                for c in exclude {
                    clauses.push((Occur::MustNot, self.exact_clause(c)));
                }
            }
            _ => clauses.push((Occur::Must, Box::new(AllQuery))),
        }
        self.filters(&q.filter, &mut clauses);
        Ok((BooleanQuery::new(clauses), withheld, neighbours))
    }

    fn filters(&self, filter: &Filter, clauses: &mut Vec<(Occur, Box<dyn Query>)>) {
        let f = self.fields;
        let unscored =
            |q: Box<dyn Query>| -> Box<dyn Query> { Box::new(ConstScoreQuery::new(q, 0.0)) };
        let tag = |tag: &str| -> Box<dyn Query> {
            Box::new(TermQuery::new(
                Term::from_field_text(f.tags, tag),
                IndexRecordOption::Basic,
            ))
        };
        for t in &filter.all_tags {
            clauses.push((Occur::Must, unscored(tag(t))));
        }
        if !filter.any_tags.is_empty() {
            let any = filter
                .any_tags
                .iter()
                .map(|t| (Occur::Should, tag(t)))
                .collect();
            clauses.push((Occur::Must, unscored(Box::new(BooleanQuery::new(any)))));
        }
        for t in &filter.not_tags {
            clauses.push((Occur::MustNot, tag(t)));
        }
        for (field, range) in [(f.created, filter.created), (f.updated, filter.updated)] {
            if let Some(q) = time_range(field, range) {
                clauses.push((Occur::Must, unscored(q)));
            }
        }
        if let Some(has) = filter.has_attachments {
            let zero = || Term::from_field_u64(f.attachments, 0);
            let range = if has {
                RangeQuery::new(Bound::Excluded(zero()), Bound::Unbounded)
            } else {
                RangeQuery::new(Bound::Included(zero()), Bound::Included(zero()))
            };
            clauses.push((Occur::Must, unscored(Box::new(range))));
        }
    }

    /// A clause as the user means it: a lone word that may match through a
    /// typo or as a completion matches the words it stands for. The word
    /// as typed and its completions score their BM25 (completions at
    /// [`COMPLETION_WEIGHT`]): a word being typed is matched as Meilisearch
    /// matches it, a prefix counting as typed. When typo neighbours are
    /// looked for, a note with the word as typed or completed also gains
    /// [`AS_TYPED_BONUS`], and one with only neighbours scores the best of
    /// theirs (a disjunction-max, so neighbours never add to an exact
    /// match's score). Also says what it left out for a later pass, and
    /// which neighbours it searched.
    ///
    /// With `others` (the query has other words), a word being typed also
    /// matches every completion in the titles, each by its own BM25 (also
    /// at [`COMPLETION_WEIGHT`]), in every pass: the other words choose
    /// the notes, and among them the one whose title holds a rare
    /// completion is most likely the one meant, while the most frequent
    /// completions kept for all fields are the least telling. It also
    /// keeps the page from being filled by the word as typed alone when it
    /// is itself a common word ("conf" for "config").
    fn clause(
        &self,
        words: &Words,
        c: &Clause,
        others: bool,
        lone: &[&str],
        tolerate: Tolerate,
    ) -> Result<BuiltClause, IndexError> {
        let none = Withheld::default();
        let [word] = c.tokens.as_slice() else {
            return Ok((self.exact_clause(c), none, Vec::new()));
        };
        if c.prefix || (c.typos == 0 && !c.completes && !c.gains_a_letter) {
            return Ok((self.exact_clause(c), none, Vec::new()));
        }
        let (searcher, lexicon) = (words.searcher, words.lexicon.as_deref());
        let f = self.fields;
        // Attachment text is searched for the word as typed but neither
        // walked nor searched for the words it stands for: titles and
        // bodies hold nearly all of the words, at a third less of the work.
        let walked = [f.title, f.body];
        let mut withheld = none;
        let common =
            (searcher.num_docs() / COMPLETE_BELOW_SHARE).max(COMPLETE_BELOW_NOTES_AT_LEAST);
        let mut completions = Vec::new();
        if c.completes {
            if tolerate != Tolerate::AsTyped || self.notes_with(searcher, &walked, word)? < common {
                completions =
                    expand::completions(searcher, lexicon, &walked, word, KEEP_COMPLETIONS)?;
            } else {
                withheld.completions = true;
            }
        }
        // Another word of the query is not what this one stands for
        // ("backup back" is not after "backup" twice): counted again, it
        // would rank highest the notes that repeat it.
        let elsewhere: Vec<String> = lone
            .iter()
            .filter(|l| **l != word)
            .map(|l| (*l).to_owned())
            .collect();
        completions.retain(|(n, _)| !elsewhere.contains(n));
        // Neither a completion nor another word of the query.
        let other = |found: Vec<(String, u64)>| -> Vec<(String, u64)> {
            found
                .into_iter()
                .filter(|(n, _)| !completions.iter().any(|(c, _)| c == n) && !elsewhere.contains(n))
                .collect()
        };
        let mut neighbours = Vec::new();
        if c.typos > 0 {
            // A word found as typed in 1 % of the notes or more is taken as
            // meant: the query missed through another word, and a common
            // word's neighbours are common words too, long posting lists
            // to merge for notes that rank below every note with it.
            if tolerate < Tolerate::All {
                withheld.typos = true;
            } else if self.notes_with(searcher, &walked, word)? < common {
                // The nearest words first, as Typesense widens its typos:
                // a word allowed 2 edits matches the words 2 away only
                // when none is 1 away. One typo is what people make most,
                // and the 1-edit walk costs a fraction of the 2-edit one.
                for edits in 1..=c.typos {
                    neighbours = other(expand::typos(
                        searcher, lexicon, &walked, word, edits, KEEP_TYPOS,
                    )?);
                    if !neighbours.is_empty() {
                        break;
                    }
                }
            }
        }
        if c.gains_a_letter {
            if tolerate != Tolerate::Stretched {
                withheld.letters = true;
            } else if self.notes_with(searcher, &walked, word)? < common {
                neighbours = other(expand::insertions(
                    searcher, lexicon, &walked, word, KEEP_TYPOS,
                )?);
            }
        }
        let in_titles =
            if c.completes && others && word.chars().count() >= TITLE_COMPLETIONS_FROM_CHARS {
                let boost = TITLE_BOOST * COMPLETION_WEIGHT;
                Completing::find(searcher, f.title, word, boost, elsewhere).map_err(engine_error)?
            } else {
                None
            };
        if neighbours.is_empty() && completions.is_empty() && in_titles.is_none() {
            return Ok((self.exact_clause(c), withheld, Vec::new()));
        }
        // The word as typed and its completions, scored.
        let mut typed: Vec<Box<dyn Query>> = Vec::new();
        let mut typed_any: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let mut exact: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let mut otherwise: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        // A word being typed is one word: a note scores as the best word
        // it could be (summed over the fields that hold it), not the sum
        // of every completion it holds, which ranked highest the notes
        // that hold many ("multiple multi multiplex" for "mult").
        for (t, _) in &completions {
            let per_field = [(f.title, TITLE_BOOST), (f.body, BODY_BOOST)]
                .into_iter()
                .map(|(field, boost)| {
                    let q = scored(field, t, boost * COMPLETION_WEIGHT);
                    (Occur::Should, q)
                })
                .collect();
            typed.push(Box::new(BooleanQuery::new(per_field)));
        }
        for (field, boost) in self.weighted() {
            exact.push((Occur::Should, scored(field, word, boost)));
            typed_any.push((Occur::Should, present(field, word)));
            // The words it stands for are looked for where they were found:
            // each is a posting list per field to merge.
            if field == f.extra {
                continue;
            }
            for (t, _) in &completions {
                typed_any.push((Occur::Should, present(field, t)));
            }
            for (t, _) in &neighbours {
                otherwise.push((Occur::Should, scored(field, t, boost * TYPO_WEIGHT)));
            }
        }
        typed.push(Box::new(BooleanQuery::new(exact)));
        if let Some(in_titles) = in_titles {
            typed_any.push((Occur::Should, Box::new(in_titles.clone())));
            typed.push(Box::new(in_titles));
        }
        let typed = DisjunctionMaxQuery::new(typed);
        if otherwise.is_empty() {
            return Ok((Box::new(typed), withheld, Vec::new()));
        }
        let tiered = BooleanQuery::new(vec![
            (
                Occur::Must,
                Box::new(ConstScoreQuery::new(
                    Box::new(BooleanQuery::new(typed_any)),
                    AS_TYPED_BONUS,
                )),
            ),
            (Occur::Should, Box::new(typed)),
        ]);
        let either = DisjunctionMaxQuery::new(vec![
            Box::new(tiered),
            Box::new(BooleanQuery::new(otherwise)),
        ]);
        let words = neighbours.into_iter().map(|(n, _)| n).collect();
        Ok((Box::new(either), withheld, words))
    }

    /// Notes (with deleted ones not yet merged away) that hold `word` in
    /// any of `fields`, counted per field: an upper bound, read from the
    /// term dictionaries alone.
    fn notes_with(
        &self,
        searcher: &Searcher,
        fields: &[Field],
        word: &str,
    ) -> Result<u64, IndexError> {
        let mut n = 0;
        for &field in fields {
            n += searcher
                .doc_freq(&Term::from_field_text(field, word))
                .map_err(engine_error)?;
        }
        Ok(n)
    }

    fn weighted(&self) -> [(Field, Score); 3] {
        let f = self.fields;
        [
            (f.title, TITLE_BOOST),
            (f.body, BODY_BOOST),
            (f.extra, EXTRA_BOOST),
        ]
    }

    /// The clause exactly as typed, in any field.
    fn exact_clause(&self, c: &Clause) -> Box<dyn Query> {
        let per_field = self
            .weighted()
            .into_iter()
            .map(|(field, boost)| {
                let q: Box<dyn Query> = Box::new(BoostQuery::new(field_query(field, c), boost));
                (Occur::Should, q)
            })
            .collect();
        Box::new(BooleanQuery::new(per_field))
    }
}

fn scored(field: Field, word: &str, boost: Score) -> Box<dyn Query> {
    Box::new(BoostQuery::new(
        Box::new(TermQuery::new(
            Term::from_field_text(field, word),
            IndexRecordOption::WithFreqs,
        )),
        boost,
    ))
}

/// Whether `word` is in `field`, unscored (postings without frequencies).
fn present(field: Field, word: &str) -> Box<dyn Query> {
    Box::new(TermQuery::new(
        Term::from_field_text(field, word),
        IndexRecordOption::Basic,
    ))
}

fn unscored<K>(hits: Vec<(K, DocAddress)>) -> Vec<(Score, DocAddress)> {
    hits.into_iter().map(|(_, a)| (0.0, a)).collect()
}

/// tantivy keeps nanoseconds in an i64 (years 1677 to 2262): a bound
/// beyond them is clamped to the nearest one it can hold, which keeps its
/// meaning, as no note is dated outside them.
fn date(t: DateTime<Utc>) -> tantivy::DateTime {
    const LIMIT: i64 = i64::MAX / 1000;
    tantivy::DateTime::from_timestamp_micros(t.timestamp_micros().clamp(-LIMIT, LIMIT))
}

fn time_range(field: Field, range: TimeRange) -> Option<Box<dyn Query>> {
    let bound = |t: Option<DateTime<Utc>>, included: bool| match t {
        Some(t) if included => Bound::Included(Term::from_field_date(field, date(t))),
        Some(t) => Bound::Excluded(Term::from_field_date(field, date(t))),
        None => Bound::Unbounded,
    };
    if range.from.is_none() && range.before.is_none() {
        return None;
    }
    Some(Box::new(RangeQuery::new(
        bound(range.from, true),
        bound(range.before, false),
    )))
}

/// A title as it sorts: case-folded (so "apple" and "Banana" sort as a
/// reader expects), cut to a bounded length.
fn title_sort_key(title: &str) -> String {
    let mut key = title.trim().to_lowercase();
    key.truncate(key.floor_char_boundary(TITLE_SORT_BYTES));
    key
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

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(title: &str, body: &str) -> IndexDoc {
        IndexDoc {
            id: Uuid::new_v4(),
            title: title.into(),
            body: body.into(),
            tags: Vec::new(),
            extra: String::new(),
            created_at: DateTime::UNIX_EPOCH,
            updated_at: DateTime::UNIX_EPOCH,
            attachments: 0,
        }
    }

    fn engine_with(docs: &[IndexDoc]) -> (tempfile::TempDir, Engine) {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::create(dir.path()).unwrap();
        let mut writer = engine.writer(20_000_000).unwrap();
        for d in docs {
            writer.add_document(engine.document(d)).unwrap();
        }
        writer.commit().unwrap();
        engine.reload().unwrap();
        (dir, engine)
    }

    /// A one-letter word being typed expands to the most frequent of its
    /// completions only, however many the index holds.
    #[test]
    fn expansions_keep_the_most_frequent_words_only() {
        // k000..k199: word i is in i + 1 notes' bodies.
        let mut docs = Vec::new();
        for n in 0..200 {
            let body: Vec<String> = (n..200).map(|i| format!("k{i:03}")).collect();
            docs.push(doc("t", &body.join(" ")));
        }
        let (_dir, engine) = engine_with(&docs);
        let searcher = engine.reader.searcher();
        let f = engine.fields;
        let got = expand::completions(&searcher, None, &[f.title, f.body], "k", 32).unwrap();
        assert_eq!(got.len(), 32);
        let expected: Vec<(String, u64)> = (0..32)
            .map(|i| (format!("k{:03}", 199 - i), 200 - i as u64))
            .collect();
        assert_eq!(got, expected);
        let typos = expand::typos(&searcher, None, &[f.body], "k150x", 1, 8).unwrap();
        assert_eq!(typos, [("k150".to_owned(), 151)]);
    }

    /// A lexicon finds what the segments' own dictionaries find, with the
    /// same counts; a segment written after it is walked on its own.
    #[test]
    fn a_lexicon_walks_like_the_segments_it_covers() {
        let (_dir, engine) = engine_with(&[
            doc("Kubernetes upgrade", "drain the nodes, kubelet and kubectl"),
            doc("Notes", "kubernetes nodes node"),
        ]);
        let f = engine.fields;
        let fields = [f.title, f.body];
        let older = Lexicon::build(&engine.reader.searcher(), &fields).unwrap();
        let mut writer = engine.writer(20_000_000).unwrap();
        writer
            .add_document(engine.document(&doc("Kubectl", "kubectl kubeadm nodse")))
            .unwrap();
        writer.commit().unwrap();
        engine.reload().unwrap();
        let searcher = engine.reader.searcher();
        assert_eq!(searcher.segment_readers().len(), 2);
        let walks = |lexicon: Option<&Lexicon>| {
            (
                expand::completions(&searcher, lexicon, &fields, "kube", 8).unwrap(),
                expand::typos(&searcher, lexicon, &fields, "nodez", 1, 8).unwrap(),
            )
        };
        let by_segments = walks(None);
        assert_eq!(
            by_segments.1,
            [("nodes".to_owned(), 2), ("node".to_owned(), 1)]
        );
        assert_eq!(
            by_segments.0,
            [
                ("kubectl".to_owned(), 3),
                ("kubernetes".to_owned(), 2),
                ("kubeadm".to_owned(), 1),
                ("kubelet".to_owned(), 1)
            ],
            "a note with the word in its title and body counts twice"
        );
        let whole = Lexicon::build(&searcher, &fields).unwrap();
        assert_eq!(whole.uncovered(&searcher), (0, 3));
        assert_eq!(walks(Some(&whole)), by_segments);
        assert_eq!(older.uncovered(&searcher), (1, 3));
        assert_eq!(walks(Some(&older)), by_segments);
    }
}
