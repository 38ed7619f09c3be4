//! Secret values: redacted wherever they could be printed, and read from
//! `NOTES_..._FILE` (the Kubernetes secret-volume convention).

use std::{fmt, path::Path};

use serde::{Serialize, Serializer};

use super::error::ConfigError;

/// A value that must never reach a log line, a `Debug` print or `notes-api config`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

pub(super) fn redact_opt<S: Serializer>(v: &Option<Secret>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(_) => s.serialize_str("<redacted>"),
        None => s.serialize_none(),
    }
}

/// The secret from `VAR` or from the file `VAR_FILE` names (not both); an
/// empty value is no value.
pub(super) fn resolve(
    var: &'static str,
    direct: Option<Secret>,
    file: Option<&Path>,
) -> Result<Option<Secret>, ConfigError> {
    match (direct, file) {
        (Some(_), Some(_)) => Err(ConfigError::Ambiguous(var)),
        (Some(v), None) => Ok(Some(v).filter(|v| !v.expose().is_empty())),
        (None, Some(path)) => {
            let raw = std::fs::read_to_string(path).map_err(|source| ConfigError::SecretFile {
                var,
                path: path.to_owned(),
                source,
            })?;
            // Secret files usually end with a newline that is not part of the value.
            let value = raw.trim_end_matches(['\n', '\r']);
            Ok(Some(Secret::new(value)).filter(|v| !v.expose().is_empty()))
        }
        (None, None) => Ok(None),
    }
}
