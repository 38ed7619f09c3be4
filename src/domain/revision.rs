//! Revisions: the states a note had before each change, and what differs
//! between two of them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use similar::TextDiff;
use utoipa::ToSchema;

use super::{note::Note, timestamp};

/// How long a body diff may search for the smallest edit.
const DIFF_DEADLINE: std::time::Duration = std::time::Duration::from_millis(200);

/// A note as it was at one version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Revision {
    pub version: i64,
    pub title: String,
    pub body: String,
    pub tags: Vec<String>,
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    /// When this version was made.
    #[serde(with = "timestamp")]
    pub updated_at: DateTime<Utc>,
    /// Who made it: an API key's id, `master` or `dev`; null when not recorded.
    pub changed_by: Option<String>,
}

/// A revision in a listing: everything but the body.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct RevisionSummary {
    pub version: i64,
    pub title: String,
    pub tags: Vec<String>,
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    #[serde(with = "timestamp")]
    pub updated_at: DateTime<Utc>,
    pub changed_by: Option<String>,
    /// The body's length in bytes.
    pub body_bytes: u64,
}

impl From<Revision> for RevisionSummary {
    fn from(r: Revision) -> Self {
        Self {
            body_bytes: r.body.len() as u64,
            version: r.version,
            title: r.title,
            tags: r.tags,
            metadata: r.metadata,
            updated_at: r.updated_at,
            changed_by: r.changed_by,
        }
    }
}

impl Revision {
    /// The note's current state, as a revision to compare with.
    pub fn current(note: &Note, changed_by: Option<String>) -> Self {
        Self {
            version: note.version,
            title: note.title.clone(),
            body: note.body.clone(),
            tags: note.tags.clone(),
            metadata: note.metadata.clone(),
            updated_at: note.updated_at,
            changed_by,
        }
    }
}

/// A field whose value differs between two versions.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct FieldChange {
    /// `title`, `tags` or `metadata`.
    pub field: String,
    /// A string (title), an array (tags) or an object (metadata).
    pub from: Value,
    pub to: Value,
}

/// What changed from one version to another.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct RevisionDiff {
    pub from_version: i64,
    pub to_version: i64,
    /// The body's changes as a unified diff (3 lines of context); empty when
    /// the bodies are the same.
    pub body: String,
    /// Every other field that differs, old and new value.
    pub fields: Vec<FieldChange>,
}

/// The differences from `old` to `new`.
pub fn diff(old: &Revision, new: &Revision) -> RevisionDiff {
    let body = if old.body == new.body {
        String::new()
    } else {
        // Bodies of up to 1 MiB that share nothing would make an exact diff
        // quadratic; past the deadline `similar` settles for a coarser one.
        TextDiff::configure()
            .timeout(DIFF_DEADLINE)
            .diff_lines(&old.body, &new.body)
            .unified_diff()
            .context_radius(3)
            .header(
                &format!("version {}", old.version),
                &format!("version {}", new.version),
            )
            .to_string()
    };
    let mut fields = Vec::new();
    let mut field = |name: &str, from: Value, to: Value| {
        if from != to {
            fields.push(FieldChange {
                field: name.into(),
                from,
                to,
            });
        }
    };
    field("title", old.title.clone().into(), new.title.clone().into());
    field("tags", old.tags.clone().into(), new.tags.clone().into());
    field(
        "metadata",
        Value::Object(old.metadata.clone()),
        Value::Object(new.metadata.clone()),
    );
    RevisionDiff {
        from_version: old.version,
        to_version: new.version,
        body,
        fields,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(version: i64, title: &str, body: &str, tags: &[&str]) -> Revision {
        Revision {
            version,
            title: title.into(),
            body: body.into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            metadata: Map::new(),
            updated_at: timestamp::now(),
            changed_by: None,
        }
    }

    #[test]
    fn a_diff_shows_changed_lines_and_fields_only() {
        let old = rev(1, "Plan", "one\ntwo\nthree\n", &["a"]);
        let new = rev(3, "Plan", "one\n2\nthree\n", &["a", "b"]);
        let d = diff(&old, &new);
        assert_eq!((d.from_version, d.to_version), (1, 3));
        assert!(
            d.body.starts_with("--- version 1\n+++ version 3\n"),
            "{}",
            d.body
        );
        assert!(d.body.contains("-two\n+2\n"), "{}", d.body);
        assert_eq!(d.fields.len(), 1, "{:?}", d.fields);
        assert_eq!(d.fields[0].field, "tags");
        assert_eq!(d.fields[0].to, serde_json::json!(["a", "b"]));
        let same = diff(&old, &old);
        assert!(same.body.is_empty() && same.fields.is_empty());
    }
}
