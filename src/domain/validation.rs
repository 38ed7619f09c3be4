//! Validation results shared by every input type: a list of what is wrong,
//! each naming the field (and, for ingest, the line).

use std::fmt;

use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// 1-based line (NDJSON) or element (JSON array) of an ingest batch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            line: None,
            field: field.into(),
            message: message.into(),
        }
    }
    pub fn at_line(mut self, line: usize) -> Self {
        self.line = Some(line);
        self
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// Turns a serde_json error (with its path) into the field it names. serde's
/// messages say what was expected; they never echo the input value.
pub fn json_field_error(err: &serde_path_to_error::Error<serde_json::Error>) -> FieldError {
    let path = err.path().to_string();
    let mut field = if path == "." { String::new() } else { path };
    let message = strip_position(&err.inner().to_string());
    // serde names a missing field in its message, at the parent's path.
    if let Some(name) = message
        .strip_prefix("missing field `")
        .and_then(|m| m.strip_suffix('`'))
    {
        field = if field.is_empty() {
            name.to_owned()
        } else {
            format!("{field}.{name}")
        };
    }
    FieldError::new(field, message)
}

/// A JSON error that names no field (syntax, trailing characters).
pub fn json_error(err: &serde_json::Error) -> FieldError {
    FieldError::new("", strip_position(&err.to_string()))
}

/// serde_json appends "at line 1 column 42"; the field name says more to a client.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}
