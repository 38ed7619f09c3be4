//! Every completion of a word being typed in one field, each scored by
//! its own BM25: a tantivy query of its own, since a query of a term per
//! completion costs a dictionary look-up per term, field and segment, and
//! so can only afford the few most frequent completions
//! ([`super::expand::completions`]).
//!
//! The most frequent completions are the wrong ones to keep when the
//! query has other words: those pick the notes, and the completion that
//! names a note among them is usually a rare word ("multicast mult" is
//! after "MulticastGroups", 3 notes, not "multiple", 8,141). Walking the
//! field's own dictionaries keeps every completion, and BM25 ranks the
//! rare one that a note holds above the common ones. It is meant for
//! titles: few words a note, so even a short prefix's completions have
//! short posting lists, read once per search.

use std::{collections::HashMap, fmt, sync::Arc};

use tantivy::{
    DocId, DocSet, Score, Searcher, SegmentReader, TERMINATED,
    index::SegmentId,
    postings::{Postings, TermInfo},
    query::{
        Bm25StatisticsProvider, Bm25Weight, EnableScoring, Explanation, Query, Scorer, Weight,
    },
    schema::{Field, IndexRecordOption},
};

use super::expand::prefix_end;

/// Terms of one segment's dictionary read at most: a bound on the work of
/// a short prefix, whatever the index holds.
pub const SCAN: usize = 4096;

/// The words of `field` that start with `prefix`, `prefix` itself and
/// `skip` left out (the caller scores the word as typed), the best of them
/// scoring per note, as a term query of it would (times the boost).
#[derive(Clone)]
pub struct Completing {
    field: Field,
    prefix: String,
    boost: Score,
    /// Words left out: the query's other words.
    skip: Vec<String>,
    /// Each segment's completions, as [`Completing::find`] read them.
    found: Arc<HashMap<SegmentId, Terms>>,
}

/// Completions in one segment's dictionary, with their postings' addresses.
type Terms = Vec<(Vec<u8>, TermInfo)>;

impl fmt::Debug for Completing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Completing")
            .field("field", &self.field)
            .field("prefix", &self.prefix)
            .field("boost", &self.boost)
            .finish()
    }
}

impl Completing {
    /// The query over `searcher`'s segments, or `None` when none of them
    /// holds a completion: a clause that can match nothing is left out
    /// rather than searched (most words typed in full have none in titles).
    pub fn find(
        searcher: &Searcher,
        field: Field,
        prefix: &str,
        boost: Score,
        skip: Vec<String>,
    ) -> tantivy::Result<Option<Self>> {
        let mut query = Self {
            field,
            prefix: prefix.to_owned(),
            boost,
            skip,
            found: Arc::default(),
        };
        let mut found = HashMap::new();
        for reader in searcher.segment_readers() {
            found.insert(reader.segment_id(), query.terms(reader)?);
        }
        if found.values().all(Vec::is_empty) {
            return Ok(None);
        }
        query.found = Arc::new(found);
        Ok(Some(query))
    }

    /// The completions of one segment's dictionary.
    fn terms(&self, reader: &SegmentReader) -> tantivy::Result<Terms> {
        let index = reader.inverted_index(self.field)?;
        let from = self.prefix.as_bytes();
        let range = index.terms().range().ge(from);
        let mut stream = match prefix_end(from) {
            Some(end) => range.lt(end).into_stream()?,
            None => range.into_stream()?,
        };
        let mut terms = Vec::new();
        while terms.len() < SCAN && stream.advance() {
            let key = stream.key();
            if key != from && !self.skip.iter().any(|w| w.as_bytes() == key) {
                terms.push((key.to_vec(), stream.value().clone()));
            }
        }
        Ok(terms)
    }
}

impl Query for Completing {
    fn weight(&self, scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        let mut idf = None;
        if let Some(searcher) = scoring.searcher()
            && scoring.is_scoring_enabled()
        {
            let mut notes: HashMap<Vec<u8>, u64> = HashMap::new();
            for reader in searcher.segment_readers() {
                let own;
                let terms = match self.found.get(&reader.segment_id()) {
                    Some(terms) => terms,
                    None => {
                        own = self.terms(reader)?;
                        &own
                    }
                };
                for (term, info) in terms {
                    *notes.entry(term.clone()).or_default() += u64::from(info.doc_freq);
                }
            }
            // The statistics tantivy's own term queries score by, so a
            // completion and the word as typed compare.
            let all = searcher.total_num_docs()?.max(1);
            let tokens = searcher.total_num_tokens(self.field)?;
            let average = tokens as Score / all as Score;
            idf = Some((
                Bm25Weight::for_one_term_without_explain(0, all, average),
                notes,
                all,
            ));
        }
        // One tf table for all: a weight of its own per completion would
        // compute one each.
        let weights = idf.map(|(base, notes, all)| {
            let base_idf = idf_of(0, all);
            notes
                .into_iter()
                .map(|(term, n)| {
                    let n = n.min(all);
                    let w = base.boost_by(self.boost * idf_of(n, all) / base_idf);
                    (term, w)
                })
                .collect()
        });
        Ok(Box::new(CompletingWeight {
            query: self.clone(),
            weights,
        }))
    }
}

struct CompletingWeight {
    query: Completing,
    /// Each completion's BM25 over every segment; `None` when not scoring.
    weights: Option<HashMap<Vec<u8>, Bm25Weight>>,
}

impl CompletingWeight {
    fn matches(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Matches> {
        // A segment `find` did not see (another searcher's) reads its own.
        let own;
        let terms = match self.query.found.get(&reader.segment_id()) {
            Some(terms) => terms,
            None => {
                own = self.query.terms(reader)?;
                &own
            }
        };
        let index = reader.inverted_index(self.query.field)?;
        let norms = reader.get_fieldnorms_reader(self.query.field)?;
        let option = if self.weights.is_some() {
            IndexRecordOption::WithFreqs
        } else {
            IndexRecordOption::Basic
        };
        let mut found: Vec<(DocId, Score)> = Vec::new();
        for (term, info) in terms {
            let weight = self.weights.as_ref().and_then(|w| w.get(term));
            let mut postings = index.read_postings_from_terminfo(info, option)?;
            let mut doc = postings.doc();
            while doc != TERMINATED {
                let score = weight.map_or(1.0, |w| {
                    w.score(norms.fieldnorm_id(doc), postings.term_freq())
                });
                found.push((doc, score * boost));
                doc = postings.advance();
            }
        }
        found.sort_unstable_by_key(|&(doc, _)| doc);
        let mut docs: Vec<DocId> = Vec::with_capacity(found.len());
        let mut scores: Vec<Score> = Vec::with_capacity(found.len());
        for (doc, score) in found {
            if docs.last() == Some(&doc) {
                if let Some(best) = scores.last_mut() {
                    *best = best.max(score);
                }
            } else {
                docs.push(doc);
                scores.push(score);
            }
        }
        Ok(Matches {
            docs,
            scores,
            at: 0,
        })
    }
}

impl Weight for CompletingWeight {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        Ok(Box::new(self.matches(reader, boost)?))
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        let mut matches = self.matches(reader, 1.0)?;
        if matches.seek(doc) != doc {
            return Err(tantivy::TantivyError::InvalidArgument(format!(
                "document #{doc} holds no completion of {:?}",
                self.query.prefix
            )));
        }
        Ok(Explanation::new(
            "the best completion's BM25",
            matches.score(),
        ))
    }
}

/// A segment's notes with a completion, in order, with their scores.
struct Matches {
    docs: Vec<DocId>,
    scores: Vec<Score>,
    at: usize,
}

impl DocSet for Matches {
    fn advance(&mut self) -> DocId {
        self.at = (self.at + 1).min(self.docs.len());
        self.doc()
    }

    fn seek(&mut self, target: DocId) -> DocId {
        let rest = &self.docs[self.at..];
        self.at += rest.partition_point(|&d| d < target);
        self.doc()
    }

    fn doc(&self) -> DocId {
        self.docs.get(self.at).copied().unwrap_or(TERMINATED)
    }

    fn size_hint(&self) -> u32 {
        u32::try_from(self.docs.len() - self.at).unwrap_or(u32::MAX)
    }
}

impl Scorer for Matches {
    fn score(&mut self) -> Score {
        self.scores.get(self.at).copied().unwrap_or(0.0)
    }
}

/// BM25's inverse document frequency, as tantivy computes it.
fn idf_of(notes: u64, all: u64) -> Score {
    let (n, all) = (notes as Score, all as Score);
    (1.0 + (all - n + 0.5) / (n + 0.5)).ln()
}

#[cfg(test)]
mod tests {
    use tantivy::{
        Index, TantivyDocument,
        collector::{Count, TopDocs},
        schema::{STORED, Schema, TEXT, Value},
    };

    use super::*;

    #[test]
    fn every_completion_matches_and_the_rarest_scores_best() {
        let mut schema = Schema::builder();
        let title = schema.add_text_field("title", TEXT | STORED);
        let index = Index::create_in_ram(schema.build());
        let mut writer = index.writer_with_num_threads(1, 15_000_000).unwrap();
        for (i, text) in [
            "network multicastgroups",
            "multiple things",
            "multiple more things",
            "mult",
            "other",
        ]
        .into_iter()
        .enumerate()
        {
            let mut doc = TantivyDocument::new();
            doc.add_text(title, text);
            writer.add_document(doc).unwrap();
            // Two segments, so the statistics are summed over both.
            if i == 2 {
                writer.commit().unwrap();
            }
        }
        writer.commit().unwrap();
        let searcher = index.reader().unwrap().searcher();
        assert_eq!(searcher.segment_readers().len(), 2);
        let find = |prefix: &str, skip: &[&str]| {
            let skip = skip.iter().map(|s| (*s).to_owned()).collect();
            Completing::find(&searcher, title, prefix, 2.0, skip).unwrap()
        };
        assert!(find("netw", &["network"]).is_none(), "nothing to search");
        assert!(find("zzz", &[]).is_none());
        let skipping = find("mult", &["multiple"]).unwrap();
        assert_eq!(searcher.search(&skipping, &Count).unwrap(), 1);
        let query = find("mult", &[]).unwrap();
        assert_eq!(
            searcher.search(&query, &Count).unwrap(),
            3,
            "not the word as typed"
        );
        let top = searcher
            .search(&query, &TopDocs::with_limit(5).order_by_score())
            .unwrap();
        let texts: Vec<String> = top
            .iter()
            .map(|(_, a)| {
                let d: TantivyDocument = searcher.doc(*a).unwrap();
                d.get_first(title)
                    .and_then(|v| v.as_str())
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(texts[0], "network multicastgroups", "{top:?}");
        let (best, _) = top[0];
        let explained = query.explain(&searcher, top[0].1).unwrap();
        assert!((explained.value() - best).abs() < 1e-4);
    }
}
