//! Whether the database's schema has caught up with this binary.
//!
//! A process that does not migrate on start (the migrations Job does it)
//! must not serve on an older schema: `kubectl apply` can roll new pods
//! while a finished, immutable Job keeps the migration from running.

use sqlx::migrate::Migrator;

/// The versions `migrator` carries that are not in `applied`, oldest first.
pub(crate) fn pending(migrator: &Migrator, applied: &[i64]) -> Vec<i64> {
    migrator
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .map(|m| m.version)
        .filter(|v| !applied.contains(v))
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error(
        "the database schema is behind this binary: migration(s) {pending:?} not applied; \
         run `notes-api migrate` (the migrations Job) first"
    )]
    Behind { pending: Vec<i64> },
    #[error(transparent)]
    Store(#[from] super::StoreError),
}

/// Fails with [`SchemaError::Behind`] unless every migration of this binary
/// is applied.
pub async fn require_current(store: &dyn super::Store) -> Result<(), SchemaError> {
    let pending = store.pending_migrations().await?;
    if pending.is_empty() {
        Ok(())
    } else {
        Err(SchemaError::Behind { pending })
    }
}
