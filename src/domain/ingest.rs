//! Bulk ingest: reads a batch (NDJSON or a JSON array) from a blocking reader,
//! validating every note as it streams past. The batch is all-or-nothing, so
//! this returns either every note or every problem, never a part.

use std::{
    cell::Cell,
    collections::HashMap,
    fmt,
    io::{BufRead, Read},
};

use serde::{
    Serialize,
    de::{self, SeqAccess, Visitor},
};
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::{
    note::{MAX_NOTE_JSON_BYTES, NoteDraft, NoteInput},
    validation::{FieldError, json_error, json_field_error},
};

/// A client sending a million broken lines gets the first thousand problems,
/// which is enough to fix them, and the count of the rest.
pub const MAX_REPORTED_ERRORS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Ndjson,
    JsonArray,
}

#[derive(Debug)]
pub struct Batch {
    pub notes: Vec<NoteInput>,
}

#[derive(Debug)]
pub enum BatchError {
    /// Lines that failed; `total` counts all of them, `errors` lists at most
    /// [`MAX_REPORTED_ERRORS`].
    Invalid {
        errors: Vec<FieldError>,
        total: usize,
        /// Some line (or the body) is not JSON at all, which the contract
        /// answers with 400 rather than 422.
        malformed: bool,
    },
    /// The reader failed (the body stream broke or went over its limit).
    Io(std::io::Error),
    /// More notes than a batch may hold; reading stopped at the first one
    /// past the limit.
    TooMany { limit: usize },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct IngestCounts {
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IngestReport {
    pub received: u64,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub took_ms: u64,
}

/// Collects notes and problems line by line.
#[derive(Default)]
struct Collector {
    /// Notes (lines or elements, good or bad) a batch may hold: what a
    /// batch costs grows with the count, not only the bytes.
    max_notes: usize,
    seen: usize,
    notes: Vec<NoteInput>,
    errors: Vec<FieldError>,
    total_errors: usize,
    malformed: bool,
    seen_external_ids: HashMap<String, usize>,
}

impl Collector {
    fn error(&mut self, err: FieldError) {
        self.total_errors += 1;
        if self.errors.len() < MAX_REPORTED_ERRORS {
            self.errors.push(err);
        }
    }

    fn draft(&mut self, line: usize, draft: NoteDraft) {
        match draft.validate() {
            Ok(note) => {
                if let Some(ext) = &note.external_id {
                    // Two lines upserting one external id would make the
                    // outcome depend on order; ask the client to choose.
                    if let Some(first) = self.seen_external_ids.get(ext) {
                        let msg = format!("repeats the external_id of line {first}");
                        self.error(FieldError::new("external_id", msg).at_line(line));
                        return;
                    }
                    self.seen_external_ids.insert(ext.clone(), line);
                }
                if self.total_errors == 0 {
                    self.notes.push(note);
                }
            }
            Err(errors) => {
                for e in errors {
                    self.error(e.at_line(line));
                }
            }
        }
    }

    /// One line or element: straight into a draft, never into a tree.
    fn parse(&mut self, line: usize, bytes: &[u8]) {
        self.seen += 1;
        if self.too_many() {
            return;
        }
        let mut de = serde_json::Deserializer::from_slice(bytes);
        match serde_path_to_error::deserialize::<_, NoteDraft>(&mut de) {
            Ok(draft) => match de.end() {
                Ok(()) => self.draft(line, draft),
                Err(e) => self.syntax_error(json_error(&e).at_line(line)),
            },
            Err(e) if is_syntax(e.inner()) => {
                self.syntax_error(json_error(e.inner()).at_line(line))
            }
            Err(e) => self.error(json_field_error(&e).at_line(line)),
        }
    }

    fn too_many(&self) -> bool {
        self.seen > self.max_notes
    }

    fn syntax_error(&mut self, err: FieldError) {
        self.malformed = true;
        self.error(err);
    }

    fn too_long(&mut self, line: usize) {
        self.error(
            FieldError::new(
                "",
                format!("a note may take at most {MAX_NOTE_JSON_BYTES} bytes of JSON"),
            )
            .at_line(line),
        );
    }

    fn finish(self) -> Result<Batch, BatchError> {
        if self.too_many() {
            Err(BatchError::TooMany {
                limit: self.max_notes,
            })
        } else if self.total_errors == 0 {
            Ok(Batch { notes: self.notes })
        } else {
            Err(BatchError::Invalid {
                errors: self.errors,
                total: self.total_errors,
                malformed: self.malformed,
            })
        }
    }
}

pub fn read_batch<R: BufRead>(reader: R, format: Format) -> Result<Batch, BatchError> {
    read_batch_of_at_most(reader, format, usize::MAX)
}

/// As [`read_batch`], refusing a batch of more than `max_notes` notes
/// as soon as the one past the limit is read.
pub fn read_batch_of_at_most<R: BufRead>(
    reader: R,
    format: Format,
    max_notes: usize,
) -> Result<Batch, BatchError> {
    let c = Collector {
        max_notes,
        ..Collector::default()
    };
    match format {
        Format::Ndjson => read_ndjson(reader, c),
        Format::JsonArray => read_array(reader, c),
    }
}

fn read_ndjson<R: BufRead>(mut reader: R, mut c: Collector) -> Result<Batch, BatchError> {
    let mut buf = Vec::new();
    let mut line = 0;
    loop {
        buf.clear();
        let limit = MAX_NOTE_JSON_BYTES as u64 + 1;
        if (&mut reader)
            .take(limit)
            .read_until(b'\n', &mut buf)
            .map_err(BatchError::Io)?
            == 0
        {
            break;
        }
        line += 1;
        if buf.len() as u64 == limit && buf.last() != Some(&b'\n') {
            // Never buffer a line past the limit: skip the rest of it.
            skip_line(&mut reader).map_err(BatchError::Io)?;
            c.too_long(line);
            continue;
        }
        let bytes = buf.trim_ascii();
        if !bytes.is_empty() {
            c.parse(line, bytes);
            if c.too_many() {
                break;
            }
        }
    }
    c.finish()
}

/// Consumes the rest of the current line without holding it.
pub fn skip_line<R: BufRead>(reader: &mut R) -> std::io::Result<()> {
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return Ok(());
        }
        match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => {
                reader.consume(i + 1);
                return Ok(());
            }
            None => {
                let n = chunk.len();
                reader.consume(n);
            }
        }
    }
}

fn read_array<R: Read>(reader: R, mut c: Collector) -> Result<Batch, BatchError> {
    let left = Cell::new(ELEMENT_BUDGET);
    let mut de = serde_json::Deserializer::from_reader(Budgeted {
        inner: reader,
        left: &left,
    });
    let outcome = de::Deserializer::deserialize_seq(
        &mut de,
        Elements {
            collector: &mut c,
            left: &left,
        },
    )
    .and_then(|()| de.end());
    if let Err(e) = outcome
        && !c.too_many()
    {
        // A syntax error stops the parser; say where, counting elements.
        let element = c.notes.len() + c.total_errors + 1;
        if e.is_io() && left.get() == 0 {
            c.too_long(element);
            return c.finish();
        }
        if e.is_io() {
            return Err(BatchError::Io(std::io::Error::other(e)));
        }
        let mut err = json_error(&e);
        if is_syntax(&e) {
            c.syntax_error(err.at_line(element));
        } else {
            if element == 1 {
                err.message = "the body must be a JSON array of notes".to_owned();
            }
            c.error(err.at_line(element));
        }
    }
    c.finish()
}

/// Not JSON at all (bad syntax, bad UTF-8, cut short), as opposed to JSON
/// of the wrong shape.
fn is_syntax(e: &serde_json::Error) -> bool {
    matches!(
        e.classify(),
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof
    )
}

/// What one array element (with the separator before it) may take; the
/// reader fails past it, so an element is never buffered beyond the limit.
const ELEMENT_BUDGET: u64 = MAX_NOTE_JSON_BYTES as u64 + 64;

struct Budgeted<'a, R> {
    inner: R,
    left: &'a Cell<u64>,
}

impl<R: Read> Read for Budgeted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.left.get();
        if left == 0 {
            return Err(std::io::Error::other("an array element is too large"));
        }
        let max = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        self.left.set(left - n as u64);
        Ok(n)
    }
}

/// Visits the top-level array one element at a time, so memory holds the
/// validated notes and one raw element, never the whole document tree.
struct Elements<'a, 'b> {
    collector: &'a mut Collector,
    left: &'b Cell<u64>,
}

impl<'de> Visitor<'de> for Elements<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON array of notes")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut line = 0;
        loop {
            self.left.set(ELEMENT_BUDGET);
            let Some(raw) = seq.next_element::<Box<RawValue>>()? else {
                break;
            };
            line += 1;
            self.collector.parse(line, raw.get().as_bytes());
            if self.collector.too_many() {
                return Err(<A::Error as de::Error>::custom("too many notes"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ndjson(s: &str) -> Result<Batch, BatchError> {
        read_batch(s.as_bytes(), Format::Ndjson)
    }
    fn array(s: &str) -> Result<Batch, BatchError> {
        read_batch(s.as_bytes(), Format::JsonArray)
    }
    fn invalid(r: Result<Batch, BatchError>) -> (Vec<FieldError>, usize) {
        match r {
            Err(BatchError::Invalid { errors, total, .. }) => (errors, total),
            other => panic!("expected invalid, got {other:?}"),
        }
    }

    fn malformed(r: Result<Batch, BatchError>) -> bool {
        match r {
            Err(BatchError::Invalid { malformed, .. }) => malformed,
            other => panic!("expected invalid, got {other:?}"),
        }
    }

    #[test]
    fn text_that_is_not_json_is_told_from_json_of_the_wrong_shape() {
        // Cut short, not JSON, trailing text, a raw control character.
        for body in [
            "{\"title\":",
            "not json",
            "{\"title\":\"a\"} x",
            "{\"title\":\"\u{1}\"}",
        ] {
            assert!(malformed(ndjson(body)), "{body:?}");
        }
        assert!(malformed(read_batch(
            &b"{\"title\":\"\xff\"}"[..],
            Format::Ndjson
        )));
        for body in ["{\"title\":[1]}", "{\"title\":\"\"}", "{}"] {
            assert!(!malformed(ndjson(body)), "{body:?}");
        }
        assert!(malformed(array("[{\"title\":\"a\"}, {\"title\":")));
        assert!(malformed(array("[{\"title\":\"a\"},]")));
        assert!(!malformed(array("{\"title\":\"not an array\"}")));
        assert!(!malformed(array("[{\"title\":5}]")));
    }

    #[test]
    fn a_batch_past_its_note_limit_is_refused_without_reading_on() {
        let ndjson: String = (0..1000)
            .map(|i| format!("{{\"title\":\"t{i}\"}}\n"))
            .collect();
        for format in [Format::Ndjson, Format::JsonArray] {
            let body = match format {
                Format::Ndjson => ndjson.clone(),
                Format::JsonArray => format!("[{}]", ndjson.trim_end().replace('\n', ",")),
            };
            assert_eq!(
                read_batch_of_at_most(body.as_bytes(), format, 1000)
                    .unwrap()
                    .notes
                    .len(),
                1000
            );
            assert!(matches!(
                read_batch_of_at_most(body.as_bytes(), format, 999),
                Err(BatchError::TooMany { limit: 999 })
            ));
            // Stops at the note past the limit: what follows is never read,
            // so garbage there changes nothing.
            let cut = format!("{}garbage", &body[..body.len() / 2]);
            assert!(matches!(
                read_batch_of_at_most(cut.as_bytes(), format, 10),
                Err(BatchError::TooMany { limit: 10 })
            ));
        }
    }

    #[test]
    fn ndjson_reads_lines_and_skips_blank_ones() {
        let b = ndjson("{\"title\":\"a\"}\n\n{\"title\":\"b\"}\r\n{\"title\":\"c\"}").unwrap();
        let titles: Vec<_> = b.notes.iter().map(|n| n.title.as_str()).collect();
        assert_eq!(titles, ["a", "b", "c"]);
    }

    #[test]
    fn ndjson_names_each_bad_line() {
        let (errors, total) = invalid(ndjson(
            "{\"title\":\"a\"}\n{\"title\":\"\"}\nnot json\n{\"title\":5}\n",
        ));
        assert_eq!(total, 3);
        let lines: Vec<_> = errors.iter().map(|e| e.line.unwrap()).collect();
        assert_eq!(lines, [2, 3, 4]);
        assert_eq!(errors[0].field, "title");
        assert_eq!(errors[2].field, "title");
    }

    #[test]
    fn ndjson_rejects_bad_utf8_and_trailing_garbage() {
        let mut body = b"{\"title\":\"ok\"}\n{\"title\":\"".to_vec();
        body.extend_from_slice(&[0xff, 0xfe]);
        body.extend_from_slice(b"\"}\n{\"title\":\"x\"} trailing\n");
        let (errors, _) = invalid(read_batch(&body[..], Format::Ndjson));
        let lines: Vec<_> = errors.iter().map(|e| e.line.unwrap()).collect();
        assert_eq!(lines, [2, 3]);
    }

    #[test]
    fn duplicate_external_id_is_refused() {
        let (errors, _) = invalid(ndjson(
            "{\"title\":\"a\",\"external_id\":\"x\"}\n{\"title\":\"b\",\"external_id\":\"x\"}",
        ));
        assert_eq!(errors[0].line, Some(2));
        assert!(errors[0].message.contains("line 1"));
    }

    #[test]
    fn array_reads_elements_and_reports_by_index() {
        assert_eq!(
            array("[{\"title\":\"a\"},{\"title\":\"b\"}]")
                .unwrap()
                .notes
                .len(),
            2
        );
        assert_eq!(array("[]").unwrap().notes.len(), 0);
        let (errors, _) = invalid(array("[{\"title\":\"a\"},{\"tags\":[]},{\"title\":\"c\"}]"));
        assert_eq!(errors[0].line, Some(2));
        assert_eq!(errors[0].field, "title");
    }

    #[test]
    fn array_syntax_errors_and_wrong_top_level() {
        let (errors, _) = invalid(array("[{\"title\":\"a\"}, {\"title\": }]"));
        assert_eq!(errors[0].line, Some(2));
        let (errors, _) = invalid(array("{\"title\":\"a\"}"));
        assert!(errors[0].message.contains("JSON array"), "{:?}", errors);
        let (errors, _) = invalid(array("[{\"title\":\"a\"}] x"));
        assert_eq!(errors.len(), 1);
    }

    /// A line or element past the limit is refused without being held:
    /// the reader never buffers more than the limit, and the batch goes on
    /// to report the lines after it.
    #[test]
    fn an_oversized_line_or_element_is_refused_by_position() {
        let huge = format!("{{\"title\":\"{}\"}}", "x".repeat(MAX_NOTE_JSON_BYTES));
        let body = format!("{{\"title\":\"a\"}}\n{huge}\n{{\"title\":\"\"}}\n");
        let (errors, total) = invalid(ndjson(&body));
        assert_eq!(total, 2);
        assert_eq!(errors[0].line, Some(2));
        assert!(errors[0].message.contains("at most"), "{errors:?}");
        assert_eq!(
            (errors[1].line, errors[1].field.as_str()),
            (Some(3), "title")
        );

        let (errors, _) = invalid(array(&format!("[{{\"title\":\"a\"}},{huge}]")));
        assert_eq!(errors[0].line, Some(2));
        assert!(errors[0].message.contains("at most"), "{errors:?}");
        let padded = format!(
            "[{{\"title\":\"a\"}},{}{{\"title\":\"b\"}}]",
            " ".repeat(MAX_NOTE_JSON_BYTES + 100)
        );
        let (errors, _) = invalid(array(&padded));
        assert_eq!(errors[0].line, Some(2), "whitespace counts too");
    }

    /// Metadata and tags are refused while they are read: a 4 MiB array
    /// of zeros never becomes a 64 MiB tree.
    #[test]
    fn hostile_metadata_and_tags_are_refused_while_read() {
        let zeros = format!("[{}0]", "0,".repeat(1_000_000));
        let (errors, _) = invalid(ndjson(&format!(
            "{{\"title\":\"a\",\"metadata\":{{\"z\":{zeros}}}}}"
        )));
        assert!(errors[0].field.starts_with("metadata"), "{errors:?}");
        let tags = format!("[{}\"\"]", "\"\",".repeat(1_000_000));
        let (errors, _) = invalid(ndjson(&format!("{{\"title\":\"a\",\"tags\":{tags}}}")));
        assert_eq!(errors[0].field, "tags", "{errors:?}");
    }

    #[test]
    fn errors_are_capped_but_counted() {
        let body = "{}\n".repeat(MAX_REPORTED_ERRORS + 10);
        let (errors, total) = invalid(ndjson(&body));
        assert_eq!(errors.len(), MAX_REPORTED_ERRORS);
        assert_eq!(total, MAX_REPORTED_ERRORS + 10);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// Whatever arrives, the reader answers; it never panics.
        #[test]
        fn reader_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048)) {
            let _ = read_batch(&bytes[..], Format::Ndjson);
            let _ = read_batch(&bytes[..], Format::JsonArray);
        }

        /// JSON-ish noise, more likely to reach the validators than random bytes.
        #[test]
        fn reader_never_panics_on_json_like_input(s in r#"[\[\]{}",:0-9a-z\\ \n-]{0,400}"#) {
            let _ = read_batch(s.as_bytes(), Format::Ndjson);
            let _ = read_batch(s.as_bytes(), Format::JsonArray);
        }

        /// Valid notes always come back, in order, whatever their text.
        #[test]
        fn valid_lines_round_trip(titles in proptest::collection::vec("[^\u{0}]{1,40}", 1..20)) {
            let titles: Vec<String> = titles.into_iter().filter(|t| !t.chars().all(crate::domain::unicode::is_invisible)).collect();
            let body: String = titles
                .iter()
                .map(|t| format!("{}\n", serde_json::json!({"title": t})))
                .collect();
            let batch = read_batch(body.as_bytes(), Format::Ndjson).unwrap();
            let got: Vec<&str> = batch.notes.iter().map(|n| n.title.as_str()).collect();
            proptest::prop_assert_eq!(got, titles.iter().map(String::as_str).collect::<Vec<_>>());
        }
    }
}
