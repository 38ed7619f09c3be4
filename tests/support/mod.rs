//! Fixtures the API and contract suites share: the PostgreSQL and Redis
//! servers they run against, a database or a key prefix of its own per
//! test, removed when the test ends (pass or fail), and what happens when a
//! server is not there.
//!
//! `scripts/test.sh`, the README's test command, starts both servers and
//! sets `TEST_REQUIRE_SERVERS=1`: there a missing server fails the test. A
//! plain `cargo test` on a machine without them skips the tests that need
//! them, each with a line that says so.

#![allow(dead_code)] // Each suite uses its own part of this module.

use std::time::Duration;

use sqlx::{AssertSqlSafe, Connection};

/// The PostgreSQL server's administrative URL (`TEST_PG_URL`, default the
/// local server).
pub fn pg_admin_url() -> String {
    std::env::var("TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432/postgres".into())
}

/// The Redis server (`TEST_REDIS_URL`, default the local server).
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into())
}

/// Whether every server must be there: under `scripts/test.sh`.
pub fn servers_required() -> bool {
    std::env::var("TEST_REQUIRE_SERVERS").is_ok_and(|v| v == "1")
}

/// Says on stderr that a test is skipped, and why. Straight to stderr: the
/// harness captures `eprintln!` of a test that passes, and a skip must be
/// seen.
fn skipped(why: &str) {
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "skipped: {why} (scripts/test.sh provides it and requires it; \
         TEST_REQUIRE_SERVERS=1 makes this a failure)"
    );
}

/// The setting `name` that points a test at `server`, or `None` (the test
/// is skipped, saying so) when it is not set and servers are not required.
pub fn setting_or_skip(name: &str, server: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(value) => Some(value),
        Err(_) if !servers_required() => {
            skipped(&format!("{name} is not set, so there is no {server}"));
            None
        }
        Err(_) => panic!("{name} is not set: run scripts/test.sh, which starts {server}"),
    }
}

/// Whether a test that needs `server` at `url` runs: always when the
/// servers are required; otherwise only if the server answers, with a line
/// on stderr when it does not.
pub async fn server_answers(server: &str, url: &str) -> bool {
    if servers_required() {
        return true;
    }
    // scheme://[user:password@]host:port[/path][?query]
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = after_scheme.split(['/', '?']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    let reachable = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::TcpStream::connect(host.to_owned()),
    )
    .await
    .is_ok_and(|c| c.is_ok());
    if !reachable {
        skipped(&format!("no {server} at {host}"));
    }
    reachable
}

/// A database of its own on a PostgreSQL server, dropped when this is.
pub struct PgDatabase {
    /// The URL to connect to it.
    pub url: String,
    admin: String,
    name: String,
}

impl PgDatabase {
    /// Creates `<prefix>_<random>` on the server at `admin`.
    pub async fn create(admin: &str, prefix: &str) -> Self {
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(admin)
            .await
            .expect("connect to PostgreSQL (is it running? scripts/test.sh starts it)");
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let _ = conn.close().await;
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(admin);
        Self {
            url: format!("{base}/{name}"),
            admin: admin.to_owned(),
            name,
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Drop runs outside async context (and maybe while a failing test
        // unwinds): a small runtime on its own thread does the I/O, and
        // nothing here panics.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                    let _ = sqlx::query(AssertSqlSafe(sql)).execute(&mut conn).await;
                }
            });
        })
        .join();
    }
}

/// A key prefix of its own on a Redis server, its keys deleted when this
/// is dropped.
pub struct RedisPrefix {
    /// The server's URL, without the prefix.
    pub server: String,
    pub prefix: String,
}

impl RedisPrefix {
    pub fn new(server: &str, label: &str) -> Self {
        Self {
            server: server.to_owned(),
            prefix: format!("{label}-{}", uuid::Uuid::new_v4().simple()),
        }
    }

    /// The queue URL that keeps every key under the prefix.
    pub fn queue_url(&self) -> String {
        format!("{}?prefix={}", self.server, self.prefix)
    }
}

impl Drop for RedisPrefix {
    fn drop(&mut self) {
        // No panics here: a failing test may be unwinding.
        let Ok(mut conn) =
            redis::Client::open(self.server.as_str()).and_then(|c| c.get_connection())
        else {
            return;
        };
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:*", self.prefix))
            .query(&mut conn)
            .unwrap_or_default();
        for chunk in keys.chunks(500) {
            let _: Result<(), _> = redis::cmd("DEL").arg(chunk).query(&mut conn);
        }
    }
}
