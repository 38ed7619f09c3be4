//! Which queue a process uses, opened. Apart from the trait in `mod.rs`,
//! so the backends' modules use the trait and this one uses them.

use std::sync::Arc;

use super::QueueError;
use super::{DynQueue, postgres, redis, sqlite};
use crate::store::Database;

/// The queue `url` names (`redis://…`), else the database the store uses.
pub async fn connect(url: Option<&str>, db: &Database) -> Result<DynQueue, QueueError> {
    match url {
        Some(url) if url.starts_with("redis://") || url.starts_with("rediss://") => {
            Ok(Arc::new(redis::RedisQueue::connect(url).await?))
        }
        Some(url) => Err(QueueError::Internal(
            format!(
                "unsupported queue URL scheme {:?}: use redis://HOST:PORT[/DB], or leave \
                 NOTES_QUEUE_URL unset to queue in the database",
                url.split(':').next().unwrap_or_default()
            )
            .into(),
        )),
        None => Ok(match db {
            Database::Sqlite(s) => Arc::new(sqlite::SqliteQueue::new(s)),
            Database::Postgres(p) => Arc::new(postgres::PgQueue::new(p).await?),
        }),
    }
}
