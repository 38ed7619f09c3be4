//! How each backend is opened fresh for one test, and cleaned up after it.
//!
//! - SQLite: a database file in a temporary directory.
//! - PostgreSQL: a new database on the server at `TEST_PG_URL` (default the
//!   local one), created per test and dropped afterwards.
//! - Redis: a key prefix of its own on the server at `TEST_REDIS_URL`
//!   (default the local one), whose keys are deleted afterwards.
//!
//! Under `scripts/test.sh` every backend runs and a server that does not
//! answer fails its tests; a plain `cargo test` without the servers skips
//! them, saying so (`support`). Each opener answers `None` for a skip.

use std::{collections::HashMap, sync::Arc, time::Duration};

use tempfile::TempDir;

use crate::support::{self, PgDatabase, RedisPrefix};

// Every path into the service that this file names.
use notes_api::{
    queue::{self, DynQueue, redis::RedisQueue},
    store::{self, Database, DynStore, PoolSettings},
};

/// Small pools: tests run in parallel against one server.
pub fn settings() -> PoolSettings {
    PoolSettings {
        max_connections: 4,
        ..PoolSettings::default()
    }
}

/// A backend opened for one test; what it needs removed goes with it.
pub struct Fresh<T> {
    pub it: T,
    /// Dropped after `it` (fields drop in order): the database outlives its pools.
    _cleanup: Cleanup,
}

#[allow(dead_code)] // Held for their Drop.
enum Cleanup {
    Dir(TempDir),
    Postgres(PgDatabase),
    Redis(RedisPrefix),
}

async fn sqlite_db() -> (Database, Cleanup) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}/notes.db", dir.path().display());
    let db = store::open(&url, &settings()).await.expect("open SQLite");
    db.store().migrate().await.expect("migrate SQLite");
    (db, Cleanup::Dir(dir))
}

async fn postgres_db(settings: PoolSettings) -> Option<(Database, Cleanup)> {
    let admin = support::pg_admin_url();
    if !support::server_answers("PostgreSQL", &admin).await {
        return None;
    }
    // The cleanup exists from here on, so a failure below still drops the database.
    let database = PgDatabase::create(&admin, "notes_contract").await;
    let db = store::open(&database.url, &settings)
        .await
        .expect("open PostgreSQL");
    db.store().migrate().await.expect("migrate PostgreSQL");
    Some((db, Cleanup::Postgres(database)))
}

pub mod sqlite {
    use super::*;

    pub async fn store() -> Option<Fresh<DynStore>> {
        let (db, _cleanup) = sqlite_db().await;
        Some(Fresh {
            it: db.store(),
            _cleanup,
        })
    }

    pub async fn queue() -> Option<Fresh<DynQueue>> {
        let (db, _cleanup) = sqlite_db().await;
        let it = queue::connect(None, &db).await.expect("SQLite queue");
        Some(Fresh { it, _cleanup })
    }
}

pub mod postgres {
    use super::*;

    pub async fn store() -> Option<Fresh<DynStore>> {
        store_with(settings()).await
    }

    pub async fn store_with(settings: PoolSettings) -> Option<Fresh<DynStore>> {
        let (db, _cleanup) = postgres_db(settings).await?;
        Some(Fresh {
            it: db.store(),
            _cleanup,
        })
    }

    pub async fn queue() -> Option<Fresh<DynQueue>> {
        let (db, _cleanup) = postgres_db(settings()).await?;
        let it = queue::connect(None, &db).await.expect("PostgreSQL queue");
        Some(Fresh { it, _cleanup })
    }
}

pub mod redis {
    use super::*;

    pub async fn queue() -> Option<Fresh<DynQueue>> {
        let url = support::redis_url();
        if !support::server_answers("Redis", &url).await {
            return None;
        }
        let prefix = RedisPrefix::new(&url, "notes-contract");
        let queue = RedisQueue::connect(&prefix.queue_url())
            .await
            .expect("connect to TEST_REDIS_URL (is Redis running? scripts/test.sh starts it)");
        wait_for_subscriber(&url, &format!("{}:wake", prefix.prefix)).await;
        Some(Fresh {
            it: Arc::new(queue),
            _cleanup: Cleanup::Redis(prefix),
        })
    }

    /// The queue subscribes to its wake-up channel in a task of its own: a
    /// job enqueued before that subscription holds would announce nothing.
    /// A fresh queue counts as open once it listens.
    async fn wait_for_subscriber(url: &str, channel: &str) {
        let client = ::redis::Client::open(url).expect("Redis URL");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("connect to Redis");
        for _ in 0..200 {
            let counts: HashMap<String, u64> = ::redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg(channel)
                .query_async(&mut conn)
                .await
                .expect("PUBSUB NUMSUB");
            if counts.get(channel).is_some_and(|n| *n > 0) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the Redis queue never subscribed to {channel}");
    }
}
