//! What an import reports as it goes: a job's result while it runs, the
//! command line's summary.

use serde::{Deserialize, Serialize};

use crate::store::Upserted;

/// Paths listed in `skipped`, `errors` and `warnings` each; past this they
/// are only counted (`*_total`).
pub const MAX_LISTED: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// An NDJSON export when the archive has `notes.ndjson`, else Markdown.
    #[default]
    Auto,
    Markdown,
    /// Markdown as Obsidian writes it (the same reader: it understands
    /// both).
    Obsidian,
    Ndjson,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "markdown" => Ok(Self::Markdown),
            "obsidian" => Ok(Self::Obsidian),
            "ndjson" => Ok(Self::Ndjson),
            other => Err(format!(
                "unknown import format {other:?}; expected auto, markdown, obsidian or ndjson"
            )),
        }
    }
}

/// A file not read, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    pub path: String,
    pub reason: String,
}

impl Skipped {
    pub fn new(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// A file that could not be imported (or, in `warnings`, a note imported
/// without something it names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failed {
    pub path: String,
    pub error: String,
}

/// How far an import got: a job's result while it runs and when it ends,
/// the command line's summary.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub format: Format,
    pub dry_run: bool,
    /// Notes read so far, and to read (files or NDJSON lines).
    pub done: u64,
    pub total: u64,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// Attachments added (or, in a dry run, to add).
    pub attachments: u64,
    pub skipped: Vec<Skipped>,
    pub errors: Vec<Failed>,
    pub warnings: Vec<Failed>,
    pub skipped_total: u64,
    pub errors_total: u64,
    pub warnings_total: u64,
    pub took_ms: u64,
}

impl Report {
    pub(super) fn skip(&mut self, s: Skipped) {
        self.skipped_total += 1;
        if self.skipped.len() < MAX_LISTED {
            self.skipped.push(s);
        }
    }
    pub(super) fn error(&mut self, path: &str, error: impl ToString) {
        self.errors_total += 1;
        if self.errors.len() < MAX_LISTED {
            self.errors.push(Failed {
                path: path.to_owned(),
                error: error.to_string(),
            });
        }
    }
    pub(super) fn warn(&mut self, path: &str, error: impl ToString) {
        self.warnings_total += 1;
        if self.warnings.len() < MAX_LISTED {
            self.warnings.push(Failed {
                path: path.to_owned(),
                error: error.to_string(),
            });
        }
    }
    pub(super) fn count(&mut self, outcome: Upserted) {
        match outcome {
            Upserted::Created => self.created += 1,
            Upserted::Updated => self.updated += 1,
            Upserted::Unchanged => self.unchanged += 1,
        }
    }
}
