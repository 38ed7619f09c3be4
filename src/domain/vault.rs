//! The rules of an exported vault (issue #26): what a note's file and its
//! attachments are called, and the YAML front matter a note's file opens
//! with. Pure functions, so they are tested without a database or HTTP;
//! `export` lays the files out with them.
//!
//! File names must survive every file system a vault is opened on
//! (Windows, macOS, Linux, a phone's), and Obsidian's wiki links:
//! - no `/ \ : * ? " < > |` (Windows), nor `# ^ [ ]` (a link's syntax):
//!   each becomes `-`;
//! - no control characters (newlines become spaces) nor bidi controls;
//!   runs of white space become one space;
//! - no leading dots (hidden files, `..`), no trailing dots or spaces
//!   (Windows drops them);
//! - not a name Windows reserves (`CON`, `NUL`, `COM1`, … with any
//!   extension): an underscore is added;
//! - at most [`MAX_STEM_BYTES`] bytes of UTF-8, cut at a character;
//! - never empty: `Untitled`.
//!
//! Names are unique case-insensitively (`Notes` and `notes` are one file on
//! macOS and Windows): the second becomes `Notes (2)`, and so on. Given
//! the notes in the same order, the names are the same, so two exports of
//! the same data name every file alike.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use unicode_normalization::UnicodeNormalization;

use super::{timestamp, unicode::is_bidi_control};

/// The most bytes of a file name's stem: room under the 255 bytes most file
/// systems allow for ` (99999)`, an extension and a partial download's
/// suffix.
pub const MAX_STEM_BYTES: usize = 200;
/// The most bytes of an attachment's extension that are kept as one.
const MAX_EXTENSION_BYTES: usize = 16;
/// The stem of a note whose title leaves nothing usable.
pub const UNTITLED: &str = "Untitled";

const RESERVED: &[&str] = &[
    "con", "prn", "aux", "nul", "com1", "com2", "com3", "com4", "com5", "com6", "com7", "com8",
    "com9", "lpt1", "lpt2", "lpt3", "lpt4", "lpt5", "lpt6", "lpt7", "lpt8", "lpt9", "com0", "lpt0",
];

/// `raw` made safe as one path component (see the module's rules), or
/// `None` when nothing usable is left.
fn safe_component(raw: &str, max_bytes: usize) -> Option<String> {
    let mut out = String::with_capacity(raw.len().min(max_bytes + 4));
    let mut space = false;
    for c in raw.nfc() {
        let c = match c {
            '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|' | '#' | '^' | '[' | ']' => '-',
            c if is_bidi_control(c) || c == '\u{feff}' => continue,
            c if c.is_control() || c.is_whitespace() => ' ',
            c => c,
        };
        if c == ' ' {
            space = true;
            continue;
        }
        if space && !out.is_empty() {
            out.push(' ');
        }
        space = false;
        out.push(c);
    }
    let trimmed = trim_ends(out.trim_start_matches(['.', ' ']));
    let mut name = truncate_bytes(trimmed, max_bytes).to_owned();
    name = trim_ends(&name).to_owned();
    if name.is_empty() {
        return None;
    }
    let base = name.split('.').next().unwrap_or_default().trim_end();
    if RESERVED.contains(&base.to_ascii_lowercase().as_str()) {
        name.insert(base.len(), '_');
    }
    Some(name)
}

/// Without trailing dots and spaces (Windows drops them).
fn trim_ends(s: &str) -> &str {
    s.trim_end_matches(['.', ' '])
}

/// The longest prefix of `s` of at most `max` bytes that ends at a
/// character.
pub fn truncate_bytes(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The stem of a note's file, from its title (before it is made unique).
pub fn note_stem(title: &str) -> String {
    safe_component(title, MAX_STEM_BYTES).unwrap_or_else(|| UNTITLED.to_owned())
}

/// An attachment's file name made path-safe, its extension kept when the
/// name is cut.
pub fn attachment_name(filename: &str) -> String {
    let (stem, ext) = split_extension(filename);
    let ext = ext.and_then(|e| safe_component(e, MAX_EXTENSION_BYTES));
    let stem = safe_component(stem, MAX_STEM_BYTES).unwrap_or_else(|| "attachment".to_owned());
    match ext {
        Some(ext) => format!("{stem}.{ext}"),
        None => stem,
    }
}

/// (stem, extension) of a file name; a leading dot starts no extension.
fn split_extension(name: &str) -> (&str, Option<&str>) {
    match name.rfind('.') {
        Some(i) if i > 0 && i + 1 < name.len() => (&name[..i], Some(&name[i + 1..])),
        _ => (name, None),
    }
}

/// The names taken so far in one folder, compared case-insensitively.
/// Holds a 128-bit digest per name, not the name: an export of a million
/// notes keeps 16 MB of them, whatever the titles' length.
#[derive(Default)]
pub struct NameSet {
    taken: HashSet<u128>,
}

impl NameSet {
    fn key(name: &str) -> u128 {
        let folded: String = name.nfc().flat_map(char::to_lowercase).collect();
        let digest = Sha256::digest(folded.as_bytes());
        u128::from_be_bytes(digest[..16].try_into().expect("16 bytes"))
    }

    fn try_take(&mut self, name: &str) -> bool {
        self.taken.insert(Self::key(name))
    }

    /// `stem` with `ext`, or the first of `stem (2)`, `stem (3)`, … that is
    /// free; the stem is cut so that the suffix fits in its bytes. Returns
    /// the stem as taken.
    pub fn claim(&mut self, stem: &str, ext: &str) -> String {
        if self.try_take(&format!("{stem}{ext}")) {
            return stem.to_owned();
        }
        for n in 2u64.. {
            let suffix = format!(" ({n})");
            let base = trim_ends(truncate_bytes(stem, MAX_STEM_BYTES - suffix.len()));
            let candidate = format!("{base}{suffix}");
            if self.try_take(&format!("{candidate}{ext}")) {
                return candidate;
            }
        }
        unreachable!("a free name is found before u64 runs out")
    }

    /// A file name (with its extension) made unique as [`Self::claim`]
    /// does, the counter going before the extension: `photo (2).jpg`.
    pub fn claim_file(&mut self, name: &str) -> String {
        let (stem, ext) = split_extension(name);
        let ext = ext.map(|e| format!(".{e}")).unwrap_or_default();
        let stem = self.claim(stem, &ext);
        format!("{stem}{ext}")
    }
}

/// Whether Obsidian shows the file inline (`![[…]]`) rather than as a link.
pub fn is_image(content_type: &str, filename: &str) -> bool {
    if content_type.starts_with("image/") {
        return true;
    }
    let ext = split_extension(filename).1.unwrap_or_default();
    [
        "png", "jpg", "jpeg", "gif", "bmp", "svg", "webp", "avif", "tif", "tiff",
    ]
    .contains(&ext.to_ascii_lowercase().as_str())
}

/// The link to an attachment at `path` (relative to the vault's root).
pub fn attachment_link(path: &str, image: bool) -> String {
    if image {
        format!("![[{path}]]")
    } else {
        format!("[[{path}]]")
    }
}

/// What a note's front matter holds.
pub struct FrontMatter<'a> {
    pub id: uuid::Uuid,
    /// Only when the file name does not hold the title exactly.
    pub title: Option<&'a str>,
    pub tags: &'a [String],
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    pub external_id: Option<&'a str>,
    pub metadata: &'a Map<String, Value>,
}

impl FrontMatter<'_> {
    /// The block between `---` lines, each line ending in `\n`. Every
    /// string is a double-quoted YAML scalar with everything a YAML parser
    /// would read otherwise escaped, so no title, tag or metadata can end
    /// the block, start a new key, or read as another type (`yes`, `null`,
    /// `1e3`, `: x`, `#tag`, `---`).
    pub fn render(&self) -> String {
        let mut out = String::from("---\n");
        out.push_str(&format!("id: {}\n", quote(&self.id.to_string())));
        if let Some(title) = self.title {
            out.push_str(&format!("title: {}\n", quote(title)));
        }
        if self.tags.is_empty() {
            out.push_str("tags: []\n");
        } else {
            out.push_str("tags:\n");
            for tag in self.tags {
                out.push_str(&format!("  - {}\n", quote(tag)));
            }
        }
        out.push_str(&format!(
            "created: {}\n",
            quote(&timestamp::format(&self.created))
        ));
        out.push_str(&format!(
            "updated: {}\n",
            quote(&timestamp::format(&self.updated))
        ));
        if let Some(ext) = self.external_id {
            out.push_str(&format!("external_id: {}\n", quote(ext)));
        }
        if !self.metadata.is_empty() {
            out.push_str("metadata: ");
            flow(&Value::Object(self.metadata.clone()), &mut out);
            out.push('\n');
        }
        out.push_str("---\n");
        out
    }
}

/// `value` as a YAML flow node: JSON's shape with YAML's double-quoted
/// strings. Numbers, booleans and null are written as JSON writes them,
/// which YAML's core schema reads back as the same values.
fn flow(value: &Value, out: &mut String) {
    match value {
        Value::Null | Value::Bool(_) | Value::Number(_) => out.push_str(&value.to_string()),
        Value::String(s) => out.push_str(&quote(s)),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                flow(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&quote(k));
                out.push_str(": ");
                flow(v, out);
            }
            out.push('}');
        }
    }
}

/// `s` as a YAML double-quoted scalar. Escaped: `"` and `\`, every C0 and
/// C1 control and DEL, the characters YAML reads as line breaks inside a
/// quoted scalar (NEL, LS, PS, which it would fold into spaces), the byte
/// order mark and the non-characters U+FFFE and U+FFFF, which YAML does not
/// allow in a stream. Everything else is written as it is.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_become_path_safe_names() {
        for (title, stem) in [
            ("Kubernetes upgrade", "Kubernetes upgrade"),
            ("../../etc/passwd", "-..-etc-passwd"),
            ("a/b\\c:d", "a-b-c-d"),
            ("CON", "CON_"),
            ("con.txt", "con_.txt"),
            ("Lpt9", "Lpt9_"),
            ("CONSOLE", "CONSOLE"),
            ("...", UNTITLED),
            ("   ", UNTITLED),
            (".hidden", "hidden"),
            ("ends with dots...", "ends with dots"),
            ("line\nbreak\r\n\ttab", "line break tab"),
            ("what? <yes> |no| \"q\" *", "what- -yes- -no- -q- -"),
            ("[[link]] #tag ^block", "--link-- -tag -block"),
            ("\u{202e}gnp.exe", "gnp.exe"),
            ("café 🍰 日本語", "café 🍰 日本語"),
            ("---", "---"),
        ] {
            assert_eq!(note_stem(title), stem, "{title:?}");
        }
        // Decomposed and composed forms name one file.
        assert_eq!(note_stem("cafe\u{301}"), "café");
    }

    #[test]
    fn long_titles_are_cut_on_bytes_at_a_character() {
        let title = "é".repeat(300);
        let stem = note_stem(&title);
        assert!(stem.len() <= MAX_STEM_BYTES);
        assert_eq!(stem, "é".repeat(MAX_STEM_BYTES / 2));
        let emoji = format!("a{}", "🍰".repeat(100));
        let stem = note_stem(&emoji);
        assert!(stem.len() <= MAX_STEM_BYTES && stem.len() > MAX_STEM_BYTES - 4);
        assert!(stem.ends_with('🍰'));
    }

    #[test]
    fn names_are_unique_case_insensitively_and_the_suffix_fits() {
        let mut set = NameSet::default();
        assert_eq!(set.claim("Notes", ".md"), "Notes");
        assert_eq!(set.claim("notes", ".md"), "notes (2)");
        assert_eq!(set.claim("NOTES", ".md"), "NOTES (3)");
        // A title that is already what a suffix would make.
        assert_eq!(set.claim("Notes (4)", ".md"), "Notes (4)");
        assert_eq!(set.claim("Notes", ".md"), "Notes (5)");
        let long = "x".repeat(MAX_STEM_BYTES);
        assert_eq!(set.claim(&long, ".md"), long);
        let second = set.claim(&long, ".md");
        assert!(second.len() <= MAX_STEM_BYTES && second.ends_with(" (2)"));
        let mut files = NameSet::default();
        assert_eq!(files.claim_file("photo.jpg"), "photo.jpg");
        assert_eq!(files.claim_file("Photo.JPG"), "Photo (2).JPG");
        assert_eq!(files.claim_file("README"), "README");
        assert_eq!(files.claim_file("readme"), "readme (2)");
    }

    #[test]
    fn attachment_names_keep_their_extension() {
        assert_eq!(attachment_name("report.pdf"), "report.pdf");
        assert_eq!(attachment_name("../x.png"), "-x.png");
        assert_eq!(attachment_name("a/b:c.tar.gz"), "a-b-c.tar.gz");
        assert_eq!(attachment_name(".env"), "env");
        assert_eq!(attachment_name("nul.txt"), "nul_.txt");
        let long = format!("{}.jpeg", "a".repeat(400));
        let name = attachment_name(&long);
        assert!(name.ends_with(".jpeg") && name.len() <= MAX_STEM_BYTES + 5);
        assert!(is_image("image/png", "x"));
        assert!(is_image("application/octet-stream", "x.JPG"));
        assert!(!is_image("application/pdf", "x.pdf"));
    }

    /// The front matter as a YAML parser reads it: the block between the
    /// first two `---` lines, which must be the only two.
    fn read_back(front: &str) -> Value {
        assert_eq!(
            front.lines().filter(|l| *l == "---").count(),
            2,
            "exactly the opening and closing lines: {front}"
        );
        let inner = front
            .strip_prefix("---\n")
            .and_then(|f| f.strip_suffix("---\n"))
            .expect("delimited");
        serde_norway::from_str(inner).unwrap_or_else(|e| panic!("{e}: {front}"))
    }

    fn front<'a>(
        title: &'a str,
        tags: &'a [String],
        ext: Option<&'a str>,
        metadata: &'a Map<String, Value>,
    ) -> String {
        let t = timestamp::parse("2026-12-06T01:02:03.456789Z").unwrap();
        FrontMatter {
            id: uuid::Uuid::nil(),
            title: Some(title),
            tags,
            created: t,
            updated: t,
            external_id: ext,
            metadata,
        }
        .render()
    }

    #[test]
    fn hostile_values_read_back_as_themselves() {
        let hostile = [
            "yes",
            "no",
            "null",
            "~",
            "true",
            "1e3",
            "0x1f",
            "0o17",
            ": x",
            "#tag",
            "- item",
            "---",
            "...",
            "a: b",
            "{x}",
            "[y]",
            "&anchor",
            "*alias",
            "!tag",
            "%dir",
            "@at",
            "`tick`",
            "|",
            ">",
            "'single'",
            "\"double\"",
            "back\\slash",
            "line\nbreak",
            "tab\there",
            "\r\n",
            "\u{0}nul",
            "\u{7f}\u{85}\u{a0}",
            "\u{2028}\u{2029}",
            "\u{feff}bom",
            "emoji 🍰",
            "日本語",
            "../../etc/passwd",
            "CON",
            "  spaces  ",
            "",
        ];
        let tags: Vec<String> = ["yes", "null", "-", ".", "1.0", "---"]
            .map(String::from)
            .into();
        for h in hostile {
            let mut metadata = Map::new();
            metadata.insert(h.to_owned(), Value::String(h.to_owned()));
            metadata.insert(
                "nested".into(),
                serde_json::json!({"list": [h, 1, 2.5, true, null, {"k": h}], "n": -7}),
            );
            let text = front(h, &tags, Some(h), &metadata);
            let v = read_back(&text);
            assert_eq!(v["title"], h, "{text}");
            assert_eq!(v["external_id"], h, "{text}");
            assert_eq!(v["tags"], serde_json::json!(tags), "{text}");
            assert_eq!(v["metadata"], Value::Object(metadata.clone()), "{text}");
            assert_eq!(v["id"], uuid::Uuid::nil().to_string());
            assert_eq!(v["created"], "2026-12-06T01:02:03.456789Z");
        }
        let v = read_back(&front("t", &[], None, &Map::new()));
        assert_eq!(v["tags"], serde_json::json!([]));
        assert!(v.get("external_id").is_none() && v.get("metadata").is_none());
    }

    proptest::proptest! {
        #[test]
        fn any_string_reads_back_as_itself(s in ".*", k in "\\PC*") {
            let mut metadata = Map::new();
            metadata.insert(k.clone(), Value::String(s.clone()));
            let v = read_back(&front(&s, &[], Some(&s), &metadata));
            proptest::prop_assert_eq!(&v["title"], &Value::String(s.clone()));
            proptest::prop_assert_eq!(&v["metadata"][&k], &Value::String(s));
        }
    }

    #[test]
    fn quoting_escapes_what_yaml_would_read_otherwise() {
        assert_eq!(quote("plain"), "\"plain\"");
        assert_eq!(quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(quote("x\ny"), "\"x\\ny\"");
        assert_eq!(quote("\u{85}\u{2028}"), "\"\\x85\\u2028\"");
    }
}
