//! How each backend is opened fresh for one test, and cleaned up after it.
//!
//! - SQLite: a database file in a temporary directory.
//! - PostgreSQL: a new database on the server at `TEST_PG_URL` (default the
//!   local one), created per test and dropped afterwards.
//! - Redis: a key prefix of its own on the server at `TEST_REDIS_URL`
//!   (default the local one), whose keys are deleted afterwards.
//!
//! Every backend always runs: a server that does not answer fails the test
//! (scripts/test.sh provisions both before the tests).

use std::{collections::HashMap, sync::Arc, time::Duration};

use sqlx::{AssertSqlSafe, Connection};
use tempfile::TempDir;

// Every path into the service that this file names.
use notes_api::{
    queue::{self, DynQueue, redis::RedisQueue},
    store::{self, Database, DynStore, PoolSettings},
};

fn pg_admin_url() -> String {
    std::env::var("TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432/postgres".into())
}

fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into())
}

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

enum Cleanup {
    Dir(#[allow(dead_code)] TempDir),
    Postgres { admin: String, name: String },
    Redis { url: String, prefix: String },
}

async fn sqlite_db() -> (Database, Cleanup) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}/notes.db", dir.path().display());
    let db = store::open(&url, &settings()).await.expect("open SQLite");
    db.store().migrate().await.expect("migrate SQLite");
    (db, Cleanup::Dir(dir))
}

async fn postgres_db(settings: PoolSettings) -> (Database, Cleanup) {
    let admin = pg_admin_url();
    let name = format!("notes_contract_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .expect("connect to TEST_PG_URL (is PostgreSQL running? scripts/test.sh starts it)");
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let _ = conn.close().await;
    // The cleanup exists from here on, so a failure below still drops the database.
    let cleanup = Cleanup::Postgres {
        admin: admin.clone(),
        name: name.clone(),
    };
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    let db = store::open(&format!("{base}/{name}"), &settings)
        .await
        .expect("open PostgreSQL");
    db.store().migrate().await.expect("migrate PostgreSQL");
    (db, cleanup)
}

pub mod sqlite {
    use super::*;

    pub async fn store() -> Fresh<DynStore> {
        let (db, _cleanup) = sqlite_db().await;
        Fresh {
            it: db.store(),
            _cleanup,
        }
    }

    pub async fn queue() -> Fresh<DynQueue> {
        let (db, _cleanup) = sqlite_db().await;
        let it = queue::connect(None, &db).await.expect("SQLite queue");
        Fresh { it, _cleanup }
    }
}

pub mod postgres {
    use super::*;

    pub async fn store() -> Fresh<DynStore> {
        store_with(settings()).await
    }

    pub async fn store_with(settings: PoolSettings) -> Fresh<DynStore> {
        let (db, _cleanup) = postgres_db(settings).await;
        Fresh {
            it: db.store(),
            _cleanup,
        }
    }

    pub async fn queue() -> Fresh<DynQueue> {
        let (db, _cleanup) = postgres_db(settings()).await;
        let it = queue::connect(None, &db).await.expect("PostgreSQL queue");
        Fresh { it, _cleanup }
    }
}

pub mod redis {
    use super::*;

    pub async fn queue() -> Fresh<DynQueue> {
        let url = redis_url();
        let prefix = format!("notes-contract-{}", uuid::Uuid::new_v4().simple());
        let _cleanup = Cleanup::Redis {
            url: url.clone(),
            prefix: prefix.clone(),
        };
        let queue = RedisQueue::connect(&format!("{url}?prefix={prefix}"))
            .await
            .expect("connect to TEST_REDIS_URL (is Redis running? scripts/test.sh starts it)");
        wait_for_subscriber(&url, &format!("{prefix}:wake")).await;
        Fresh {
            it: Arc::new(queue),
            _cleanup,
        }
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

impl Drop for Cleanup {
    fn drop(&mut self) {
        match self {
            Cleanup::Dir(_) => {}
            Cleanup::Redis { url, prefix } => {
                // No panics here: a failing test is already unwinding.
                let deleted = ::redis::Client::open(url.as_str())
                    .and_then(|c| c.get_connection())
                    .and_then(|mut conn| {
                        let keys: Vec<String> = ::redis::cmd("KEYS")
                            .arg(format!("{prefix}:*"))
                            .query(&mut conn)?;
                        for chunk in keys.chunks(500) {
                            ::redis::cmd("DEL").arg(chunk).query::<()>(&mut conn)?;
                        }
                        Ok(())
                    });
                if let Err(e) = deleted {
                    eprintln!("could not delete the Redis keys under {prefix}: {e}");
                }
            }
            Cleanup::Postgres { admin, name } => {
                let (admin, db) = (admin.clone(), name.clone());
                // Drop runs outside async code: a small runtime on its own
                // thread does the I/O.
                let dropped = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("runtime");
                    rt.block_on(async {
                        let mut conn = sqlx::PgConnection::connect(&admin).await?;
                        let sql = format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)");
                        sqlx::query(AssertSqlSafe(sql)).execute(&mut conn).await?;
                        conn.close().await
                    })
                })
                .join();
                match dropped {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => eprintln!("could not drop test database {name}: {e}"),
                    Err(_) => eprintln!("could not drop test database {name}"),
                }
            }
        }
    }
}
