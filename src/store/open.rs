//! Which backend a database URL names, opened. Apart from the trait in
//! `mod.rs`, so the backends' modules use the trait and this one uses them.

use std::sync::Arc;

use super::{DynStore, PoolSettings, StoreError, dataset, postgres, sqlite};

/// An open database, by backend: the store, and the job queue when jobs
/// live in the same database.
#[derive(Clone)]
pub enum Database {
    Sqlite(Arc<sqlite::SqliteStore>),
    Postgres(Arc<postgres::PgStore>),
}

impl Database {
    pub fn store(&self) -> DynStore {
        match self {
            Self::Sqlite(s) => s.clone(),
            Self::Postgres(p) => p.clone(),
        }
    }
}

/// Opens the store a database URL names.
pub async fn connect(url: &str, settings: &PoolSettings) -> Result<DynStore, StoreError> {
    open(url, settings).await.map(|db| db.store())
}

/// Opens the database a URL names.
pub async fn open(url: &str, settings: &PoolSettings) -> Result<Database, StoreError> {
    if url.starts_with("sqlite:") {
        let store = if settings.read_only {
            dataset::open(url, settings).await?
        } else {
            sqlite::SqliteStore::connect(url, settings).await?
        };
        Ok(Database::Sqlite(Arc::new(store)))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Database::Postgres(Arc::new(
            postgres::PgStore::connect(url, settings).await?,
        )))
    } else {
        let scheme = url.split(':').next().unwrap_or_default();
        Err(StoreError::Internal(
            format!(
                "unsupported database URL scheme {scheme:?}: use sqlite://PATH or postgres://…"
            )
            .into(),
        ))
    }
}
