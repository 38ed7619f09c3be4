//! SQLite files built to be served read-only (`NOTES_READ_ONLY=true`):
//! what makes a file fit to open immutable, and how one is built.

use std::{io::Read, path::Path, str::FromStr, time::Duration};

use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

use super::{
    Maintenance, PoolSettings, StoreError,
    sqlite::{SqliteStore, map_err},
};

/// The first 16 bytes of every SQLite database file.
const HEADER_MAGIC: &[u8; 16] = b"SQLite format 3\0";

fn refused(path: &Path, why: &str) -> StoreError {
    StoreError::Internal(format!("dataset {}: {why}", path.display()).into())
}

/// A dataset is opened `immutable`, so SQLite reads the main file only.
/// A database left in WAL mode is fine once its WAL was checkpointed away
/// (a clean close deletes it), but a non-empty `-wal` beside it holds
/// commits the main file lacks: refused, as those would be silently missed.
pub fn check_header(path: &Path) -> Result<(), StoreError> {
    let mut header = [0u8; 100];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut header))
        .map_err(|e| refused(path, &format!("cannot be read: {e}")))?;
    if &header[..16] != HEADER_MAGIC {
        return Err(refused(path, "is not an SQLite database"));
    }
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let pending = std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0);
    // Header bytes 18 and 19: 1 = rollback journal, 2 = WAL.
    if (header[18] == 2 || header[19] == 2) && pending {
        return Err(refused(
            path,
            "has commits in its -wal file that the database file lacks; build \
             datasets with `notes-api dataset pack` (or checkpoint it first)",
        ));
    }
    Ok(())
}

/// The file a `sqlite:` URL names: what a read-only process watches for a
/// new dataset.
pub fn file_of(url: &str) -> Result<std::path::PathBuf, StoreError> {
    Ok(SqliteConnectOptions::from_str(url)
        .map_err(|e| StoreError::Internal(e.into()))?
        .get_filename()
        .to_owned())
}

/// A read-only dataset, possibly on a read-only volume shared by many
/// replicas: `immutable` tells SQLite the file never changes under it, so
/// it takes no locks and creates no WAL or shm file. That holds because a
/// new dataset replaces the file (a rename), never edits it.
pub async fn open(url: &str, settings: &PoolSettings) -> Result<SqliteStore, StoreError> {
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| StoreError::Internal(e.into()))?
        .create_if_missing(false)
        .read_only(true)
        .immutable(true)
        .foreign_keys(true)
        .pragma("temp_store", "memory")
        .pragma("cache_size", "-2000");
    check_header(options.get_filename())?;
    // Every connection is opened now and kept for the life of the process:
    // a connection opened later would open whatever file has the name by
    // then, and a process must serve one dataset, not a mix, until it
    // swaps dataset and index together (`server::swap`).
    let connections = settings.max_connections.max(1);
    let reader = SqlitePoolOptions::new()
        .max_connections(connections)
        .min_connections(connections)
        .idle_timeout(None)
        .max_lifetime(None)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options.clone())
        .await
        .map_err(map_err)?;
    // Never connected: every write is answered 405 before the store.
    let writer = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_lazy_with(options);
    Ok(SqliteStore { writer, reader })
}

/// A new, migrated, writable database at `path`, which must not exist.
pub async fn create(path: &Path) -> Result<SqliteStore, StoreError> {
    if path.exists() {
        return Err(refused(path, "already exists"));
    }
    let url = format!("sqlite://{}", path.display());
    let store = SqliteStore::connect(&url, &PoolSettings::default()).await?;
    store.migrate().await?;
    Ok(store)
}

/// Makes the database compact and self-contained: the WAL folded in and
/// gone (rollback journal mode), free pages dropped, every page written.
pub async fn finish(store: SqliteStore) -> Result<(), StoreError> {
    store.compact().await
}
