//! How a database's applied migrations compare with this binary's: what
//! [`super::Store::schema_versions`] answers, apart from the trait so the
//! checks built on it (`schema.rs`) and the trait do not import each other.

use sqlx::migrate::Migrator;

/// How a database's applied migrations compare with this binary's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchemaVersions {
    /// Carried by this binary, not applied: the database is behind.
    pub pending: Vec<i64>,
    /// Applied, unknown to this binary: written by a newer one.
    pub unknown: Vec<i64>,
}

pub(crate) fn compare(migrator: &Migrator, applied: &[i64]) -> SchemaVersions {
    let known: Vec<i64> = migrator
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .map(|m| m.version)
        .collect();
    SchemaVersions {
        pending: known
            .iter()
            .copied()
            .filter(|v| !applied.contains(v))
            .collect(),
        unknown: applied
            .iter()
            .copied()
            .filter(|v| !known.contains(v))
            .collect(),
    }
}
