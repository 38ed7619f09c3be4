//! Whether the database's schema has caught up with this binary.
//!
//! A process that does not migrate on start (the migrations Job does it)
//! must not serve on an older schema: `kubectl apply` can roll new pods
//! while a finished, immutable Job keeps the migration from running.

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error(
        "the database schema is behind this binary: migration(s) {pending:?} not applied; \
         run `notes-api migrate` (the migrations Job) first"
    )]
    Behind { pending: Vec<i64> },
    #[error(
        "the database schema is ahead of this binary: migration(s) {unknown:?} are unknown \
         to it; it was written by a newer notes-api"
    )]
    Ahead { unknown: Vec<i64> },
    #[error(transparent)]
    Store(#[from] super::StoreError),
}

/// Fails with [`SchemaError::Behind`] unless every migration of this binary
/// is applied.
pub async fn require_current(store: &dyn super::Store) -> Result<(), SchemaError> {
    let pending = store.schema_versions().await?.pending;
    if pending.is_empty() {
        Ok(())
    } else {
        Err(SchemaError::Behind { pending })
    }
}

/// Also fails with [`SchemaError::Ahead`] when the database has migrations
/// this binary does not know. A read-only dataset must be of exactly this
/// schema; a writable database may be ahead during a rolling update, when
/// the new pods have migrated it and the old ones still serve.
pub async fn require_exact(store: &dyn super::Store) -> Result<(), SchemaError> {
    let versions = store.schema_versions().await?;
    if !versions.pending.is_empty() {
        Err(SchemaError::Behind {
            pending: versions.pending,
        })
    } else if !versions.unknown.is_empty() {
        Err(SchemaError::Ahead {
            unknown: versions.unknown,
        })
    } else {
        Ok(())
    }
}
