//! Timestamps as the API, the database rows and the snapshots write them:
//! RFC 3339 UTC with microseconds. Fixed width, so the text sorts like the
//! time. The serde helpers: `#[serde(with = "timestamp")]`, and
//! `#[serde(with = "timestamp::option")]` for an optional one.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serializer};

pub fn format(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}
pub fn parse(s: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc))
}
/// Now, truncated to what `format` keeps, so a value read back compares equal.
pub fn now() -> DateTime<Utc> {
    let t = Utc::now();
    parse(&format(&t)).unwrap_or(t)
}
/// Milliseconds since `since`: how long an answer took, as the API reports it.
pub fn elapsed_ms(since: std::time::Instant) -> u64 {
    since.elapsed().as_millis() as u64
}
pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(t))
}
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    let s = String::deserialize(d)?;
    parse(&s).map_err(serde::de::Error::custom)
}

pub mod option {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&super::format(t)),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| super::parse(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}
