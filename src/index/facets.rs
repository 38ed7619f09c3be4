//! Tag counts over a whole match set, read from the `tags` fast field: one
//! counter per distinct tag of a segment while the engine collects, the
//! names looked up only for the tags that occurred.

use std::collections::HashMap;

use tantivy::{
    DocId, Score, SegmentReader,
    collector::{Collector, SegmentCollector},
    columnar::StrColumn,
};

/// At most this many tags are answered, the most frequent first.
pub const MAX_VALUES: usize = 100;

pub struct TagCounts {
    pub field: &'static str,
}

pub struct SegmentTagCounts {
    column: Option<StrColumn>,
    counts: Vec<u64>,
}

impl Collector for TagCounts {
    type Fruit = HashMap<String, u64>;
    type Child = SegmentTagCounts;

    fn for_segment(
        &self,
        _segment: u32,
        reader: &SegmentReader,
    ) -> tantivy::Result<SegmentTagCounts> {
        let column = reader.fast_fields().str(self.field)?;
        let terms = column.as_ref().map_or(0, |c| c.num_terms());
        Ok(SegmentTagCounts {
            column,
            counts: vec![0; terms],
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(
        &self,
        segments: Vec<HashMap<String, u64>>,
    ) -> tantivy::Result<HashMap<String, u64>> {
        let mut all = HashMap::new();
        for segment in segments {
            for (tag, n) in segment {
                *all.entry(tag).or_default() += n;
            }
        }
        Ok(all)
    }
}

impl SegmentCollector for SegmentTagCounts {
    type Fruit = HashMap<String, u64>;

    fn collect(&mut self, doc: DocId, _score: Score) {
        if let Some(column) = &self.column {
            for ord in column.term_ords(doc) {
                self.counts[ord as usize] += 1;
            }
        }
    }

    fn harvest(self) -> HashMap<String, u64> {
        let mut out = HashMap::new();
        let Some(column) = self.column else {
            return out;
        };
        for (ord, &n) in self.counts.iter().enumerate() {
            let mut tag = String::new();
            if n > 0 && column.ord_to_str(ord as u64, &mut tag).unwrap_or(false) {
                out.insert(tag, n);
            }
        }
        out
    }
}

/// The most frequent tags first, then by name; at most [`MAX_VALUES`].
pub fn ranked(counts: HashMap<String, u64>) -> Vec<(String, u64)> {
    let mut ranked: Vec<(String, u64)> = counts.into_iter().collect();
    ranked.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    ranked.truncate(MAX_VALUES);
    ranked
}
