//! How a snapshot is laid out under its destination: one folder per
//! snapshot, named by when it began, holding the records, the objects and
//! the manifest (written last).

use chrono::{DateTime, NaiveDateTime, Utc};

pub const MANIFEST: &str = "manifest.json";
pub const RECORDS: &str = "records.ndjson";
pub const SNAPSHOT_PREFIX: &str = "notes-api-";
/// The time in a snapshot folder's name, after [`SNAPSHOT_PREFIX`] and
/// before a random 8-hex suffix. Fixed width, so names sort by time.
pub const STAMP: &str = "%Y%m%dT%H%M%S%.3fZ";

/// When the snapshot folder `name` was begun; `None` when the name is not
/// one of ours.
pub fn begun(name: &str) -> Option<DateTime<Utc>> {
    let (stamp, suffix) = name.strip_prefix(SNAPSHOT_PREFIX)?.rsplit_once('-')?;
    if suffix.len() != 8 || !suffix.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    NaiveDateTime::parse_from_str(stamp, STAMP)
        .ok()
        .map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_snapshot_names_have_a_start() {
        let t = begun("notes-api-20261205T031500.123Z-0a1b2c3d").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-12-05T03:15:00.123+00:00");
        for other in [
            "notes-api-20261205T031500.123Z",
            "notes-api-20261205T031500.123Z-xyz",
            "notes-api-yesterday-0a1b2c3d",
            "my-photos",
            "notes-api-20261205T031500.123Z-0a1b2c3d/extra",
        ] {
            assert!(begun(other).is_none(), "{other}");
        }
    }
}
