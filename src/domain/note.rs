//! Notes: the shapes clients send and receive, and the rules a note obeys.
//! Validation lives here (not in handlers) so ingest, the notes routes and
//! later restore apply exactly the same rules.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{bounded, timestamp, unicode::is_invisible, validation::FieldError};

pub const MAX_TITLE_CHARS: usize = 500;
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
pub const MAX_TAGS: usize = 64;
pub const MAX_TAG_CHARS: usize = 64;
pub const MAX_EXTERNAL_ID_CHARS: usize = 255;
pub const MAX_METADATA_BYTES: usize = 64 * 1024;
/// The highest version a note reaches: 2^53 − 1, the largest integer a
/// client that reads JSON numbers as doubles (JavaScript) holds exactly.
/// A restore refuses a note beyond it, and a change to a note at it is a
/// conflict, so the databases' `version + 1` never overflows (it was a 500).
pub const MAX_NOTE_VERSION: i64 = (1 << 53) - 1;
/// One note as JSON: a 1 MiB body may grow when escaped. The limit of a
/// single-note request body and of one ingest line or element.
pub const MAX_NOTE_JSON_BYTES: usize = 4 * 1024 * 1024;

/// A stored note, as every route returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Note {
    pub id: Uuid,
    pub title: String,
    pub body: String,
    pub tags: Vec<String>,
    pub external_id: Option<String>,
    #[schema(value_type = crate::domain::json_shape::Metadata)]
    pub metadata: Map<String, Value>,
    #[serde(with = "timestamp")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "timestamp")]
    pub updated_at: DateTime<Utc>,
    pub version: i64,
}

/// What a client sends to create a note (POST /notes, one ingest line).
/// Unknown fields are ignored, as FastAPI does, so exports from other tools
/// ingest as they are.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct NoteDraft {
    /// 1 to 500 characters, not blank or invisible, no NUL.
    // "Not blank" is spelled out as the characters `unicode::is_invisible`
    // names (white space, controls, default-ignorable code points): regex
    // engines disagree on `\s` (Python's includes U+001C..U+001F,
    // ECMAScript's U+FEFF), and a client's validator must agree with ours.
    // The pattern lists the BMP ones only: ECMAScript without the `u` flag
    // cannot range over astral characters, so a title made only of tag
    // characters (U+E0000..) passes it and is still refused.
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = r"^[^\u0000]*[^\u0000-\u0020\u007f-\u00a0\u00ad\u034f\u061c\u115f\u1160\u1680\u17b4\u17b5\u180b-\u180f\u2000-\u200f\u2028-\u202f\u205f-\u206f\u3000\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8][^\u0000]*$"
    )]
    pub title: String,
    #[serde(default)]
    #[schema(pattern = r"^[^\u0000]*$")]
    pub body: String,
    /// At most 64, each 1 to 64 of a-z, 0-9, '.', '_', '-' (upper case is
    /// lowered).
    #[serde(default, deserialize_with = "tag_list")]
    #[schema(max_items = 64, value_type = Vec<Tag>)]
    pub tags: Vec<String>,
    /// 1 to 255 characters, no NUL.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 255, pattern = r"^[^\u0000]*$")]
    pub external_id: Option<String>,
    #[serde(default, deserialize_with = "metadata")]
    #[schema(value_type = Option<crate::domain::json_shape::Metadata>)]
    pub metadata: Option<Value>,
}

/// One tag as a client may send it.
#[derive(ToSchema)]
#[schema(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
#[allow(dead_code)]
pub struct Tag(String);

/// A partial update: absent fields stay as they are; `external_id: null`
/// clears it; the other fields cannot be null.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct NotePatch {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = String, required = false, min_length = 1, max_length = 500, pattern = r"^[^\u0000]*[^\u0000-\u0020\u007f-\u00a0\u00ad\u034f\u061c\u115f\u1160\u1680\u17b4\u17b5\u180b-\u180f\u2000-\u200f\u2028-\u202f\u205f-\u206f\u3000\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8][^\u0000]*$")]
    pub title: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = String, required = false, pattern = r"^[^\u0000]*$")]
    pub body: Option<Option<String>>,
    #[serde(default, deserialize_with = "present_tags")]
    #[schema(value_type = Vec<Tag>, required = false, max_items = 64)]
    pub tags: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 255, pattern = r"^[^\u0000]*$")]
    pub external_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "present_metadata")]
    #[schema(value_type = Option<crate::domain::json_shape::Metadata>)]
    pub metadata: Option<Option<Value>>,
}

/// Tag lists are refused while they are read once far past any valid one;
/// near the limit, validation still says by how much.
const MAX_TAGS_READ: usize = 4 * MAX_TAGS;
/// Metadata is measured exactly after reading; reading stops at twice the
/// limit (the estimate ignores escapes).
const METADATA_READ_BYTES: usize = 2 * MAX_METADATA_BYTES;

fn tag_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    bounded::vec(d, MAX_TAGS_READ)
}

fn metadata<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    bounded::option(d, METADATA_READ_BYTES)
}

struct Tags(Vec<String>);
impl<'de> Deserialize<'de> for Tags {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        tag_list(d).map(Tags)
    }
}

struct Metadata(Value);
impl<'de> Deserialize<'de> for Metadata {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        bounded::value(d, METADATA_READ_BYTES).map(Metadata)
    }
}

fn present_tags<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<Vec<String>>>, D::Error> {
    present::<_, Tags>(d).map(|t| t.map(|t| t.map(|t| t.0)))
}

fn present_metadata<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<Value>>, D::Error> {
    present::<_, Metadata>(d).map(|m| m.map(|m| m.map(|m| m.0)))
}

/// Distinguishes a field that is present but null (`Some(None)`) from an absent one (`None`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A note in the trash: the note as it was, and when and by whom it was
/// deleted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TrashedNote {
    #[serde(flatten)]
    pub note: Note,
    #[serde(with = "timestamp")]
    pub deleted_at: DateTime<Utc>,
    /// Who deleted it: an API key's id, `master` or `dev`.
    pub deleted_by: Option<String>,
}

/// A note that passed validation: the only thing the store accepts.
#[derive(Debug, Clone, PartialEq)]
pub struct NoteInput {
    pub title: String,
    pub body: String,
    pub tags: Vec<String>,
    pub external_id: Option<String>,
    pub metadata: Map<String, Value>,
    /// Who makes this version (an API key's id, `master` or `dev`): kept
    /// with it, and in its revision once it is replaced.
    pub changed_by: Option<String>,
}

impl NoteDraft {
    pub fn validate(self) -> Result<NoteInput, Vec<FieldError>> {
        let mut errors = Vec::new();
        check_title(&self.title, &mut errors);
        check_body(&self.body, &mut errors);
        let tags = normalize_tags(self.tags, &mut errors);
        if let Some(ext) = &self.external_id {
            check_external_id(ext, &mut errors);
        }
        let metadata = check_metadata(self.metadata, &mut errors);
        if errors.is_empty() {
            Ok(NoteInput {
                title: self.title,
                body: self.body,
                tags,
                external_id: self.external_id,
                metadata,
                changed_by: None,
            })
        } else {
            Err(errors)
        }
    }
}

impl NotePatch {
    pub fn is_empty(&self) -> bool {
        self.title.is_none()
            && self.body.is_none()
            && self.tags.is_none()
            && self.external_id.is_none()
            && self.metadata.is_none()
    }

    /// The note as it would be after this patch, validated as a whole.
    pub fn apply(&self, current: &Note) -> Result<NoteInput, Vec<FieldError>> {
        let mut null_errors = Vec::new();
        let mut take = |field: &str, v: &Option<Option<String>>, cur: &str| match v {
            None => cur.to_owned(),
            Some(Some(s)) => s.clone(),
            Some(None) => {
                null_errors.push(FieldError::new(field, "must not be null"));
                cur.to_owned()
            }
        };
        let title = take("title", &self.title, &current.title);
        let body = take("body", &self.body, &current.body);
        let tags = match &self.tags {
            None => current.tags.clone(),
            Some(Some(t)) => t.clone(),
            Some(None) => {
                null_errors.push(FieldError::new(
                    "tags",
                    "must not be null; send [] to remove all tags",
                ));
                current.tags.clone()
            }
        };
        let draft = NoteDraft {
            title,
            body,
            tags,
            external_id: match &self.external_id {
                None => current.external_id.clone(),
                Some(v) => v.clone(),
            },
            metadata: match &self.metadata {
                None => Some(Value::Object(current.metadata.clone())),
                Some(v) => v.clone(),
            },
        };
        match draft.validate() {
            Ok(input) if null_errors.is_empty() => Ok(input),
            Ok(_) => Err(null_errors),
            Err(mut errors) => {
                null_errors.append(&mut errors);
                Err(null_errors)
            }
        }
    }
}

impl NoteInput {
    /// The same input, made by `actor`.
    pub fn by(self, actor: &str) -> Self {
        Self {
            changed_by: Some(actor.to_owned()),
            ..self
        }
    }

    /// Whether storing `self` over `note` would change nothing a client can see.
    pub fn same_content(&self, note: &Note) -> bool {
        self.title == note.title
            && self.body == note.body
            && self.tags == note.tags
            && self.external_id == note.external_id
            && self.metadata == note.metadata
    }
}

// NUL is refused everywhere: PostgreSQL text and jsonb cannot store it, and a
// note must mean the same on every backend.
fn has_nul(s: &str) -> bool {
    s.contains('\0')
}

fn check_title(title: &str, errors: &mut Vec<FieldError>) {
    let chars = title.chars().count();
    // Blank includes invisible: a title of U+200B or U+FEFF alone shows
    // as nothing in a list.
    if title.chars().all(is_invisible) {
        errors.push(FieldError::new("title", "must not be blank or invisible"));
    } else if chars > MAX_TITLE_CHARS {
        errors.push(FieldError::new(
            "title",
            format!("must be at most {MAX_TITLE_CHARS} characters (got {chars})"),
        ));
    } else if has_nul(title) {
        errors.push(FieldError::new("title", "must not contain NUL characters"));
    }
}

fn check_body(body: &str, errors: &mut Vec<FieldError>) {
    if body.len() > MAX_BODY_BYTES {
        errors.push(FieldError::new(
            "body",
            format!(
                "must be at most {MAX_BODY_BYTES} bytes (got {})",
                body.len()
            ),
        ));
    } else if has_nul(body) {
        errors.push(FieldError::new("body", "must not contain NUL characters"));
    }
}

fn check_external_id(ext: &str, errors: &mut Vec<FieldError>) {
    let chars = ext.chars().count();
    if ext.is_empty() || chars > MAX_EXTERNAL_ID_CHARS {
        errors.push(FieldError::new(
            "external_id",
            format!("must be 1 to {MAX_EXTERNAL_ID_CHARS} characters"),
        ));
    } else if has_nul(ext) {
        errors.push(FieldError::new(
            "external_id",
            "must not contain NUL characters",
        ));
    }
}

pub const TAG_RULE: &str = "must be 1 to 64 characters of a-z, 0-9, '.', '_' or '-'";

/// Lower-cases a tag, or `None` when it breaks the tag rules.
pub fn normalize_tag(tag: &str) -> Option<String> {
    let tag = tag.to_lowercase();
    let valid = !tag.is_empty()
        && tag.len() <= MAX_TAG_CHARS
        && tag.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        });
    valid.then_some(tag)
}

/// Tag filters follow the tag rules (lower-cased), so a filter that can never
/// match a stored tag is a client error rather than a silent empty result.
pub fn normalize_tag_filter(tag: &str) -> Result<String, FieldError> {
    normalize_tag(tag).ok_or_else(|| FieldError::new("tag", TAG_RULE))
}

/// Lower-cases, checks and de-duplicates tags, keeping their first order.
fn normalize_tags(tags: Vec<String>, errors: &mut Vec<FieldError>) -> Vec<String> {
    if tags.len() > MAX_TAGS {
        errors.push(FieldError::new(
            "tags",
            format!("at most {MAX_TAGS} tags (got {})", tags.len()),
        ));
        return Vec::new();
    }
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for (i, tag) in tags.into_iter().enumerate() {
        match normalize_tag(&tag) {
            None => errors.push(FieldError::new(format!("tags[{i}]"), TAG_RULE)),
            Some(tag) if !out.contains(&tag) => out.push(tag),
            Some(_) => {}
        }
    }
    out
}

fn check_metadata(metadata: Option<Value>, errors: &mut Vec<FieldError>) -> Map<String, Value> {
    let map = match metadata {
        None | Some(Value::Null) => return Map::new(),
        Some(Value::Object(map)) => map,
        Some(_) => {
            errors.push(FieldError::new("metadata", "must be a JSON object"));
            return Map::new();
        }
    };
    let value = Value::Object(map);
    let size = serde_json::to_vec(&value)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > MAX_METADATA_BYTES {
        errors.push(FieldError::new(
            "metadata",
            format!("must be at most {MAX_METADATA_BYTES} bytes as JSON (got {size})"),
        ));
    } else if json_has_nul(&value) {
        errors.push(FieldError::new(
            "metadata",
            "must not contain NUL characters",
        ));
    }
    match value {
        Value::Object(map) => map,
        _ => unreachable!("built from an object above"),
    }
}

fn json_has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => has_nul(s),
        Value::Array(items) => items.iter().any(json_has_nul),
        Value::Object(map) => map.iter().any(|(k, v)| has_nul(k) || json_has_nul(v)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn draft(v: Value) -> NoteDraft {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn valid_note_is_normalized() {
        let input = draft(json!({"title":"T","tags":["Rust","rust","a.b_c-d"],"metadata":{"k":1}}))
            .validate()
            .unwrap();
        assert_eq!(input.tags, vec!["rust", "a.b_c-d"]);
        assert_eq!(input.body, "");
        assert_eq!(input.metadata["k"], 1);
    }

    #[test]
    fn every_bad_field_is_reported() {
        let errs = draft(json!({
            "title": " ",
            "body": "x\u{0}y",
            "tags": ["ok", "bad tag", ""],
            "external_id": "",
            "metadata": [1]
        }))
        .validate()
        .unwrap_err();
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "title",
                "body",
                "tags[1]",
                "tags[2]",
                "external_id",
                "metadata"
            ]
        );
    }

    #[test]
    fn a_title_of_invisible_characters_is_blank() {
        for title in [
            "\u{200b}",
            "\u{feff}",
            "\u{200b} \u{feff}\u{2060}",
            "\u{202e}\t\u{3164}",
        ] {
            let errs = draft(json!({ "title": title })).validate().unwrap_err();
            assert_eq!(errs[0].field, "title", "{title:?}");
        }
        assert!(draft(json!({"title": "\u{200b}x"})).validate().is_ok());
    }

    /// The spec's title pattern is what a client validates with: over the
    /// whole BMP it must refuse exactly the characters validation calls
    /// invisible (a title of one character, visible or not).
    #[test]
    fn the_title_pattern_refuses_exactly_the_invisible_characters() {
        use utoipa::PartialSchema;
        for schema in [NoteDraft::schema(), NotePatch::schema()] {
            let schema = serde_json::to_value(schema).unwrap();
            let pattern = schema["properties"]["title"]["pattern"].as_str().unwrap();
            let re = regex::Regex::new(pattern).unwrap();
            for c in (0..=0xFFFF).filter_map(char::from_u32) {
                assert_eq!(
                    re.is_match(&c.to_string()),
                    !is_invisible(c),
                    "U+{:04X}",
                    c as u32
                );
            }
        }
    }

    #[test]
    fn limits_are_enforced_at_the_boundary() {
        let ok = draft(json!({"title": "é".repeat(500), "body": "b".repeat(MAX_BODY_BYTES)}));
        assert!(ok.validate().is_ok());
        let long = draft(json!({"title": "é".repeat(501)}));
        assert_eq!(long.validate().unwrap_err()[0].field, "title");
        let big = draft(json!({"title": "t", "body": "b".repeat(MAX_BODY_BYTES + 1)}));
        assert_eq!(big.validate().unwrap_err()[0].field, "body");
        let tags: Vec<String> = (0..65).map(|i| format!("t{i}")).collect();
        let many = draft(json!({"title": "t", "tags": tags}));
        assert_eq!(many.validate().unwrap_err()[0].field, "tags");
    }

    #[test]
    fn nul_in_metadata_is_refused() {
        let errs = draft(json!({"title":"t","metadata":{"a":["x\u{0}"]}}))
            .validate()
            .unwrap_err();
        assert_eq!(errs[0].field, "metadata");
    }

    #[test]
    fn patch_distinguishes_null_from_absent() {
        let note = Note {
            id: Uuid::now_v7(),
            title: "old".into(),
            body: "body".into(),
            tags: vec!["a".into()],
            external_id: Some("x".into()),
            metadata: Map::new(),
            created_at: timestamp::now(),
            updated_at: timestamp::now(),
            version: 1,
        };
        let patch: NotePatch =
            serde_json::from_value(json!({"external_id": null, "body": "new"})).unwrap();
        let input = patch.apply(&note).unwrap();
        assert_eq!(input.title, "old");
        assert_eq!(input.body, "new");
        assert_eq!(input.external_id, None);
        let bad: NotePatch = serde_json::from_value(json!({"title": null})).unwrap();
        assert_eq!(bad.apply(&note).unwrap_err()[0].field, "title");
        assert!(NotePatch::default().is_empty());
    }

    #[test]
    fn timestamps_round_trip_at_microsecond_precision() {
        let t = timestamp::now();
        assert_eq!(timestamp::parse(&timestamp::format(&t)).unwrap(), t);
        assert!(timestamp::format(&t).ends_with('Z'));
    }
}
