//! The words of the index a typed word stands for: those within its typos,
//! and the completions of a word being typed. Read from the term
//! dictionaries of the searcher that will answer, so the expansion and the
//! search see the same segments.
//!
//! Both are bounded, whatever the word: the dictionaries are walked for at
//! most [`SCAN`] terms each, and only the `keep` words found in the most
//! notes are kept (the caller's bound: a search keeps few, since each word
//! kept is a posting list to merge). A one-letter word being typed
//! therefore costs a bounded walk and a union of a few posting lists,
//! never every word that starts with it.
//!
//! A walk reads one dictionary per field and segment. With a [`Lexicon`]
//! (the words of the segments it covers merged into one dictionary), it
//! reads that one instead of theirs, and the dictionaries of the segments
//! written since: a word's typo neighbours cost one automaton walk rather
//! than one per field and segment.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
};

use tantivy::{
    Searcher, SegmentReader, Term,
    index::SegmentId,
    query::{DfaWrapper, FuzzyTermQuery},
    schema::Field,
    termdict::{TermMerger, TermStreamer},
};
use tantivy_fst::{Automaton, IntoStreamer, Map, MapBuilder, Streamer};

use super::{IndexError, engine_error};

/// The words of the walked fields of some segments, each with the notes it
/// is in summed over them (a note that has it in two fields counts twice,
/// as a walk of the segments' own dictionaries counts it). Segments never
/// change, so a lexicon stays true for the segments it covers; a segment
/// written since is walked on its own, and a segment merged away leaves
/// its words counted until the next lexicon (the counts only choose which
/// words are kept; the search reads the postings of the searcher).
pub struct Lexicon {
    covered: HashSet<SegmentId>,
    words: Map<Vec<u8>>,
    /// What its walks found, by walk and word: a lexicon never changes,
    /// and a search box asks for the same words again at every key
    /// pressed. Bounded: [`MEMO_WALKS`] walks of at most
    /// [`MEMO_MAX_FOUND`] words each; emptied when full.
    memo: Mutex<HashMap<(WalkKind, String), Found>>,
}

/// Words a walk found, with their note counts.
type Found = Arc<[(Vec<u8>, u64)]>;

/// Walks a lexicon remembers, and the most words one may have found.
const MEMO_WALKS: usize = 4096;
const MEMO_MAX_FOUND: usize = 64;

/// What a remembered walk looked for: completions, or words within
/// this many edits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum WalkKind {
    Completions,
    Typos(u8),
}

impl Lexicon {
    /// Merges the dictionaries of `fields` in every segment of `searcher`.
    pub fn build(searcher: &Searcher, fields: &[Field]) -> Result<Self, IndexError> {
        let mut indexes = Vec::new();
        for segment in searcher.segment_readers() {
            for &field in fields {
                indexes.push(segment.inverted_index(field).map_err(engine_error)?);
            }
        }
        let streams = indexes
            .iter()
            .map(|index| index.terms().stream())
            .collect::<Result<Vec<_>, _>>()
            .map_err(engine_error)?;
        let mut merged = TermMerger::new(streams);
        let mut builder = MapBuilder::memory();
        while merged.advance() {
            let notes: u64 = merged
                .current_segment_ords_and_term_infos()
                .map(|(_, info)| u64::from(info.doc_freq))
                .sum();
            builder.insert(merged.key(), notes).map_err(engine_error)?;
        }
        let words =
            Map::from_bytes(builder.into_inner().map_err(engine_error)?).map_err(engine_error)?;
        Ok(Self {
            covered: searcher
                .segment_readers()
                .iter()
                .map(SegmentReader::segment_id)
                .collect(),
            words,
            memo: Mutex::default(),
        })
    }

    /// Documents of `searcher` (deleted ones included) in segments this
    /// lexicon does not cover, and in all of its segments.
    pub fn uncovered(&self, searcher: &Searcher) -> (u64, u64) {
        let (mut outside, mut all) = (0, 0);
        for segment in searcher.segment_readers() {
            let docs = u64::from(segment.max_doc());
            all += docs;
            if !self.covered.contains(&segment.segment_id()) {
                outside += docs;
            }
        }
        (outside, all)
    }
}

/// Terms read per dictionary (per field and segment) at most.
pub const SCAN: usize = 20_000;

/// Words of `fields` within `edits` of `word` (an adjacent swap is one
/// edit), `word` itself left out, with the documents they are in over all
/// the fields (a document that has one in two fields counts twice).
pub fn typos(
    searcher: &Searcher,
    lexicon: Option<&Lexicon>,
    fields: &[Field],
    word: &str,
    edits: u8,
    keep: usize,
) -> Result<Vec<(String, u64)>, IndexError> {
    let Some(&first) = fields.first() else {
        return Ok(Vec::new());
    };
    // The automaton depends on the word only, not the field; it is built
    // only when a dictionary is walked (not for a remembered walk).
    let automaton = || {
        FuzzyTermQuery::new(Term::from_field_text(first, word), edits, true)
            .automaton()
            .map_err(engine_error)
    };
    tally(
        searcher,
        lexicon,
        fields,
        word,
        &Walk::Within(edits, &automaton),
        keep,
    )
}

/// Words of `fields` that are `word` with one letter inserted, as
/// [`typos`] finds and counts them: the walk is the 1-edit one (and
/// remembered as such), of which only the words one letter longer are
/// kept, the `keep` most frequent.
pub fn insertions(
    searcher: &Searcher,
    lexicon: Option<&Lexicon>,
    fields: &[Field],
    word: &str,
    keep: usize,
) -> Result<Vec<(String, u64)>, IndexError> {
    let longer = word.chars().count() + 1;
    let mut found = typos(searcher, lexicon, fields, word, 1, usize::MAX)?;
    found.retain(|(w, _)| w.chars().count() == longer);
    found.truncate(keep);
    Ok(found)
}

/// Words of `fields` that start with `prefix`, `prefix` itself left out,
/// with their documents as [`typos`] counts them.
pub fn completions(
    searcher: &Searcher,
    lexicon: Option<&Lexicon>,
    fields: &[Field],
    prefix: &str,
    keep: usize,
) -> Result<Vec<(String, u64)>, IndexError> {
    let end = prefix_end(prefix.as_bytes());
    let walk = Walk::Completing(prefix.as_bytes(), end.as_deref());
    tally(searcher, lexicon, fields, prefix, &walk, keep)
}

type Dfa<'a> = &'a dyn Fn() -> Result<DfaWrapper, IndexError>;

/// Which terms of a dictionary to read.
enum Walk<'a> {
    /// Within this many edits: the terms the automaton accepts.
    Within(u8, Dfa<'a>),
    /// From the prefix up to (not including) the end of its range.
    Completing(&'a [u8], Option<&'a [u8]>),
}

impl Walk<'_> {
    fn kind(&self) -> WalkKind {
        match self {
            Walk::Within(edits, _) => WalkKind::Typos(*edits),
            Walk::Completing(..) => WalkKind::Completions,
        }
    }
}

/// Sums the document frequency of each word the walk finds over every
/// dictionary (up to [`SCAN`] terms each): the lexicon's, and those of the
/// segments it does not cover; then keeps the `keep` most frequent.
fn tally(
    searcher: &Searcher,
    lexicon: Option<&Lexicon>,
    fields: &[Field],
    word: &str,
    walk: &Walk,
    keep: usize,
) -> Result<Vec<(String, u64)>, IndexError> {
    let mut counts: HashMap<Vec<u8>, u64> = HashMap::new();
    // Built once, at the first dictionary walked.
    let mut dfa: Option<DfaWrapper> = None;
    if let Some(lexicon) = lexicon {
        let key = (walk.kind(), word.to_owned());
        let remembered = lexicon.memo.lock().ok().and_then(|m| m.get(&key).cloned());
        let found = match remembered {
            Some(found) => found,
            None => {
                let mut found = HashMap::new();
                let words = &lexicon.words;
                match walk {
                    Walk::Within(_, make) => {
                        let a = match dfa.take() {
                            Some(a) => a,
                            None => make()?,
                        };
                        count_in(words.search(&a).into_stream(), word, &mut found);
                        dfa = Some(a);
                    }
                    Walk::Completing(from, end) => {
                        let range = words.range().ge(from);
                        match end {
                            Some(end) => count_in(range.lt(end).into_stream(), word, &mut found),
                            None => count_in(range.into_stream(), word, &mut found),
                        }
                    }
                }
                let found: Found = found.into_iter().collect();
                if found.len() <= MEMO_MAX_FOUND
                    && let Ok(mut memo) = lexicon.memo.lock()
                {
                    if memo.len() >= MEMO_WALKS {
                        memo.clear();
                    }
                    memo.insert(key, Arc::clone(&found));
                }
                found
            }
        };
        for (term, notes) in found.iter() {
            *counts.entry(term.clone()).or_default() += notes;
        }
    }
    for segment in searcher.segment_readers() {
        if lexicon.is_some_and(|l| l.covered.contains(&segment.segment_id())) {
            continue;
        }
        for &field in fields {
            let index = segment.inverted_index(field).map_err(engine_error)?;
            let dict = index.terms();
            match walk {
                Walk::Within(_, make) => {
                    let a = match dfa.take() {
                        Some(a) => a,
                        None => make()?,
                    };
                    let terms = dict.search(&a).into_stream();
                    count(terms.map_err(engine_error)?, word, &mut counts);
                    dfa = Some(a);
                }
                Walk::Completing(from, end) => {
                    let range = dict.range().ge(from);
                    let terms = match end {
                        Some(end) => range.lt(end).into_stream(),
                        None => range.into_stream(),
                    };
                    count(terms.map_err(engine_error)?, word, &mut counts);
                }
            }
        }
    }
    let mut found: Vec<(Vec<u8>, u64)> = counts.into_iter().collect();
    found.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(found
        .into_iter()
        .take(keep)
        .filter_map(|(term, n)| Some((String::from_utf8(term).ok()?, n)))
        .collect())
}

fn count<A: Automaton>(
    mut terms: TermStreamer<'_, A>,
    word: &str,
    counts: &mut HashMap<Vec<u8>, u64>,
) {
    let mut read = 0;
    while read < SCAN && terms.advance() {
        read += 1;
        if terms.key() != word.as_bytes() {
            *counts.entry(terms.key().to_vec()).or_default() += u64::from(terms.value().doc_freq);
        }
    }
}

/// [`count`] over the lexicon's stream of words and note counts.
fn count_in<S>(mut words: S, word: &str, counts: &mut HashMap<Vec<u8>, u64>)
where
    S: for<'s> Streamer<'s, Item = (&'s [u8], u64)>,
{
    let mut read = 0;
    while read < SCAN {
        let Some((key, notes)) = words.next() else {
            break;
        };
        read += 1;
        if key != word.as_bytes() {
            *counts.entry(key.to_vec()).or_default() += notes;
        }
    }
}

/// The smallest byte string above every string that starts with `prefix`
/// (`None`: there is none, the prefix is all 0xFF).
pub(super) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_end_of_a_prefix_range() {
        assert_eq!(prefix_end(b"kube"), Some(b"kubf".to_vec()));
        assert_eq!(prefix_end(&[b'a', 0xFF]), Some(b"b".to_vec()));
        assert_eq!(prefix_end(&[0xFF, 0xFF]), None);
    }
}
