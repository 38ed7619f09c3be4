//! Attachments: metadata rules, where bytes are stored, and which files
//! become searchable text.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{timestamp, unicode::is_bidi_control};

pub const MAX_FILENAME_CHARS: usize = 255;

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, ToSchema)]
pub struct Attachment {
    pub id: Uuid,
    pub note_id: Uuid,
    pub filename: String,
    pub content_type: String,
    pub size: u64,
    /// Hex SHA-256 of the bytes; also the download's ETag.
    pub sha256: String,
    #[serde(with = "timestamp")]
    pub created_at: DateTime<Utc>,
}

/// An attachment as stored: what clients see plus where the bytes live and
/// the text it adds to its note's search document.
#[derive(Debug, Clone)]
pub struct StoredAttachment {
    pub attachment: Attachment,
    pub storage_key: String,
    pub search_text: String,
}

/// Server-generated storage key: a filename never chooses where bytes land,
/// and the note prefix lets the purge job find objects no row points to.
pub fn storage_key(note_id: Uuid, attachment_id: Uuid) -> String {
    format!("{KEY_PREFIX}{note_id}/{attachment_id}")
}

pub const KEY_PREFIX: &str = "attachments/";

/// The attachment id a storage key names (its last component), if it is one
/// of ours: how the purge job tells a known object from an orphan.
pub fn id_of_key(key: &str) -> Option<Uuid> {
    let (note, id) = key.strip_prefix(KEY_PREFIX)?.split_once('/')?;
    Uuid::parse_str(note).ok()?;
    Uuid::parse_str(id).ok()
}

/// A filename is metadata: keep its last path component, drop control
/// characters (NUL, newlines: they would break headers and logs) and bidi
/// controls (they make `\u{202e}gnp.exe` show as `exe.png`), bound it.
pub fn sanitize_filename(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base
        .chars()
        .filter(|&c| !c.is_control() && !is_bidi_control(c))
        .collect();
    let trimmed = cleaned.trim().trim_start_matches('.').trim();
    let bounded: String = trimmed.chars().take(MAX_FILENAME_CHARS).collect();
    if bounded.is_empty() {
        "attachment".to_owned()
    } else {
        bounded
    }
}

/// A declared content type, reduced to `type/subtype` (plus charset for
/// text); anything unparseable is stored as application/octet-stream.
pub fn normalize_content_type(raw: Option<&str>) -> String {
    let Some(raw) = raw else {
        return OCTET_STREAM.to_owned();
    };
    let mut parts = raw.split(';');
    let essence = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    let valid = essence.split_once('/').is_some_and(|(t, s)| {
        let token = |x: &str| {
            !x.is_empty()
                && x.len() <= 127
                && x.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
        };
        token(t) && token(s)
    });
    if valid {
        essence
    } else {
        OCTET_STREAM.to_owned()
    }
}

pub const OCTET_STREAM: &str = "application/octet-stream";

/// Formats whose bytes are text worth searching.
pub const TEXT_LIKE: [&str; 5] = [
    "text/plain",
    "text/markdown",
    "text/x-markdown",
    "application/json",
    "text/csv",
];

pub fn is_text_like(content_type: &str) -> bool {
    TEXT_LIKE.contains(&content_type)
}

/// The searchable text of an attachment (the `extract_text` job runs it).
/// `None` when the type is not
/// text-like; invalid UTF-8 is replaced, not rejected (the bytes are kept as
/// sent either way).
pub fn extract_text(content_type: &str, bytes: &[u8]) -> Option<String> {
    is_text_like(content_type)
        .then(|| crate::text::query::search_text(&String::from_utf8_lossy(bytes)))
}

/// `Content-Disposition: attachment` with an ASCII fallback and the exact
/// name in RFC 5987 form.
pub fn content_disposition(filename: &str) -> String {
    let ascii: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded =
        percent_encoding::utf8_percent_encode(filename, percent_encoding::NON_ALPHANUMERIC);
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// A single byte range of a `Range` header, resolved against `size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// Serve everything (no header, several ranges, or a header we ignore).
    Full,
    /// Inclusive start and end.
    Partial(u64, u64),
    /// 416.
    Unsatisfiable,
}

pub fn parse_range(header: Option<&str>, size: u64) -> RangeRequest {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeRequest::Full;
    };
    if spec.contains(',') {
        // Multipart/byteranges answers are rarely wanted; a full 200 is valid.
        return RangeRequest::Full;
    }
    let Some((start, end)) = spec.trim().split_once('-') else {
        return RangeRequest::Full;
    };
    let parsed = match (start.trim(), end.trim()) {
        ("", "") => return RangeRequest::Full,
        ("", suffix) => match suffix.parse::<u64>() {
            Ok(0) => return RangeRequest::Unsatisfiable,
            Ok(n) => Some((size.saturating_sub(n), size.saturating_sub(1))),
            Err(_) => return RangeRequest::Full,
        },
        (s, "") => s.parse::<u64>().ok().map(|s| (s, size.saturating_sub(1))),
        (s, e) => match (s.parse::<u64>(), e.parse::<u64>()) {
            (Ok(s), Ok(e)) if s <= e => Some((s, e.min(size.saturating_sub(1)))),
            (Ok(_), Ok(_)) => return RangeRequest::Unsatisfiable,
            _ => None,
        },
    };
    match parsed {
        None => RangeRequest::Full,
        Some((start, _)) if size == 0 || start >= size => RangeRequest::Unsatisfiable,
        Some((start, end)) => RangeRequest::Partial(start, end),
    }
}

pub fn new_id() -> Uuid {
    Uuid::now_v7()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames_are_tamed() {
        assert_eq!(sanitize_filename("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_filename("C:\\Users\\x\\report.pdf"), "report.pdf");
        assert_eq!(sanitize_filename("/abs/path/a.txt"), "a.txt");
        assert_eq!(sanitize_filename("a\u{0}b\nc.txt"), "abc.txt");
        assert_eq!(sanitize_filename("\u{202e}gnp.exe"), "gnp.exe");
        assert_eq!(
            sanitize_filename("a\u{2066}b\u{2069}\u{200e}\u{200f}\u{61c}\u{202a}c.txt"),
            "abc.txt"
        );
        assert_eq!(sanitize_filename("\u{202e}"), "attachment");
        assert_eq!(sanitize_filename(".."), "attachment");
        assert_eq!(sanitize_filename(".hidden"), "hidden");
        assert_eq!(sanitize_filename(""), "attachment");
        assert_eq!(
            sanitize_filename(&"é".repeat(1000)).chars().count(),
            MAX_FILENAME_CHARS
        );
        assert_eq!(sanitize_filename("naïve résumé.md"), "naïve résumé.md");
    }

    #[test]
    fn content_types_are_normalized() {
        assert_eq!(
            normalize_content_type(Some("Text/Plain; charset=utf-8")),
            "text/plain"
        );
        assert_eq!(normalize_content_type(Some("garbage")), OCTET_STREAM);
        assert_eq!(
            normalize_content_type(Some("text/plain\r\nX-Evil: 1")),
            OCTET_STREAM
        );
        assert_eq!(normalize_content_type(None), OCTET_STREAM);
        assert!(is_text_like("application/json"));
        assert!(!is_text_like("image/png"));
    }

    #[test]
    fn ranges() {
        use RangeRequest::*;
        assert_eq!(parse_range(None, 10), Full);
        assert_eq!(parse_range(Some("bytes=0-4"), 10), Partial(0, 4));
        assert_eq!(parse_range(Some("bytes=5-"), 10), Partial(5, 9));
        assert_eq!(parse_range(Some("bytes=-3"), 10), Partial(7, 9));
        assert_eq!(parse_range(Some("bytes=-30"), 10), Partial(0, 9));
        assert_eq!(parse_range(Some("bytes=8-100"), 10), Partial(8, 9));
        assert_eq!(parse_range(Some("bytes=10-"), 10), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=5-2"), 10), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-0"), 0), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-1,3-4"), 10), Full);
        assert_eq!(parse_range(Some("items=0-1"), 10), Full);
        assert_eq!(parse_range(Some("bytes=x-y"), 10), Full);
    }

    #[test]
    fn disposition_is_header_safe() {
        let d = content_disposition("résumé \"final\".pdf");
        assert!(
            d.starts_with("attachment; filename=\"r_sum_ _final_.pdf\""),
            "{d}"
        );
        assert!(
            d.contains("filename*=UTF-8''r%C3%A9sum%C3%A9%20%22final%22%2Epdf"),
            "{d}"
        );
        assert!(d.is_ascii());
    }

    #[test]
    fn only_text_like_files_are_extracted() {
        assert_eq!(
            extract_text("text/plain", "Héllo, World".as_bytes()).as_deref(),
            Some("hello world")
        );
        assert_eq!(extract_text("image/png", b"\x89PNG"), None);
    }
}
