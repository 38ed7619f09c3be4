//! `NOTES_SCHEDULE`: which kinds run periodically, and when. Pure parsing
//! and tick arithmetic, so start-up and `notes-api config` can check a
//! schedule without running anything.

use std::{fmt, str::FromStr, time::Duration};

use chrono::{DateTime, Utc};
use croner::{
    Cron,
    parser::{CronParser, Seconds},
};

use crate::queue::JobKind;

#[derive(Clone)]
pub struct Entry {
    pub kind: JobKind,
    pub pattern: String,
    cron: Cron,
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.kind, self.pattern)
    }
}

#[derive(Debug, Clone, Default)]
pub struct Schedule {
    pub entries: Vec<Entry>,
}

/// Kinds that need no arguments can be scheduled.
const SCHEDULABLE: [JobKind; 4] = [
    JobKind::Ping,
    JobKind::Reindex,
    JobKind::Backup,
    JobKind::Purge,
];

impl Schedule {
    /// `kind=CRON;kind=CRON`: five fields (or six, with seconds first) or a
    /// nickname such as `@hourly`, in UTC.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let parser = CronParser::builder().seconds(Seconds::Optional).build();
        let mut entries: Vec<Entry> = Vec::new();
        for part in spec.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (kind, pattern) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?} is not kind=CRON"))?;
            let kind = JobKind::from_str(kind.trim())?;
            if !SCHEDULABLE.contains(&kind) {
                return Err(format!("{kind} takes arguments and cannot be scheduled"));
            }
            if entries.iter().any(|e| e.kind == kind) {
                return Err(format!("{kind} is scheduled twice"));
            }
            let pattern = pattern.trim().to_owned();
            let cron = parser
                .parse(&pattern)
                .map_err(|e| format!("{kind}: {pattern:?} is not a cron pattern: {e}"))?;
            entries.push(Entry {
                kind,
                pattern,
                cron,
            });
        }
        Ok(Self { entries })
    }
}

impl Entry {
    /// The first tick to fire for a scheduler starting at `now`: the last
    /// one if it is at most `grace` old, else the next.
    pub fn first_tick(&self, now: DateTime<Utc>, grace: Duration) -> Option<DateTime<Utc>> {
        let grace = chrono::Duration::from_std(grace).unwrap_or_default();
        match self.cron.find_previous_occurrence(&now, true) {
            Ok(prev) if now - prev <= grace => Some(prev),
            _ => self.next_tick(now),
        }
    }

    pub fn next_tick(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_next_occurrence(&after, false).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_example() {
        let s = Schedule::parse("backup=0 3 * * *;purge=@hourly").unwrap();
        assert_eq!(s.entries.len(), 2);
        assert_eq!(s.entries[0].kind, JobKind::Backup);
        assert_eq!(s.entries[1].pattern, "@hourly");
        assert!(Schedule::parse("").unwrap().entries.is_empty());
        assert!(Schedule::parse(" ; ").unwrap().entries.is_empty());
    }

    #[test]
    fn rejects_bad_schedules_with_a_reason() {
        for (spec, needle) in [
            ("backup", "not kind=CRON"),
            ("rm=* * * * *", "unknown kind"),
            ("add=* * * * *", "cannot be scheduled"),
            ("purge=@hourly;purge=@daily", "twice"),
            ("purge=61 * * * *", "not a cron pattern"),
        ] {
            let err = Schedule::parse(spec).unwrap_err();
            assert!(err.contains(needle), "{spec}: {err}");
        }
    }

    #[test]
    fn a_recent_missed_tick_fires_on_start_an_old_one_does_not() {
        let entry = Schedule::parse("backup=0 3 * * *")
            .unwrap()
            .entries
            .remove(0);
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let hour = Duration::from_secs(3600);
        assert_eq!(
            entry.first_tick(at("2026-01-02T03:20:00Z"), hour),
            Some(at("2026-01-02T03:00:00Z"))
        );
        assert_eq!(
            entry.first_tick(at("2026-01-02T05:00:00Z"), hour),
            Some(at("2026-01-03T03:00:00Z"))
        );
        assert_eq!(
            entry.next_tick(at("2026-01-02T03:00:00Z")),
            Some(at("2026-01-03T03:00:00Z"))
        );
    }
}
