//! The backends the service runs on, for every benchmark: the database of
//! ingest, search and the rest (SQLite or PostgreSQL), and the job queue of
//! `jobs` (the same two, or Redis with the store on SQLite).

use std::process::Command;

use anyhow::{Context, Result, bail};

use super::Ctx;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Backend {
    /// The embedded SQLite file (store and queue).
    Sqlite,
    /// The local PostgreSQL server: a database created for the run, dropped
    /// and created again before each ingest.
    Postgres,
    /// The queue on Redis, the store on SQLite (`jobs` only).
    Redis,
}

impl Backend {
    /// A queue backend as BENCH_JOBS_BACKENDS names it.
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s.trim() {
            "sqlite" => Self::Sqlite,
            "postgres" | "pg" => Self::Postgres,
            "redis" => Self::Redis,
            other => bail!("unknown jobs backend {other:?}: sqlite, postgres or redis"),
        })
    }

    /// The name in data dirs, logs and `details.jobs`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
            Self::Redis => "redis",
        }
    }

    /// The queue backend in the jobs figures' names.
    pub fn title(self) -> &'static str {
        match self {
            Self::Sqlite => "SQLite",
            Self::Postgres => "PostgreSQL",
            Self::Redis => "Redis queue (store on SQLite)",
        }
    }

    /// The database in figure names and details.
    pub fn label(self) -> &'static str {
        match self {
            Self::Sqlite | Self::Redis => "SQLite",
            Self::Postgres => "PostgreSQL",
        }
    }

    /// Appended to figure ids, data dirs and logs ("" for SQLite, so the
    /// existing figures keep their ids).
    pub fn suffix(self) -> &'static str {
        match self {
            Self::Sqlite => "",
            Self::Postgres => "_pg",
            Self::Redis => "_redis",
        }
    }
}

/// The database the 100k-note corpus is ingested into on PostgreSQL.
pub const PG_100K: &str = "notes_bench_100k";
/// The database the raw and in-process PostgreSQL ingest references write.
pub const PG_REF: &str = "notes_bench_ref";

impl Ctx {
    /// The URL of database `name` on the bench's PostgreSQL server
    /// (BENCH_PG_URL with its database replaced).
    pub fn pg_url(&self, name: &str) -> String {
        let admin = &self.set.pg_url;
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        format!("{base}/{name}")
    }

    /// The service's environment on `backend` for a database named `name`.
    pub fn backend_env(&self, backend: Backend, name: &str) -> Vec<(&'static str, String)> {
        match backend {
            Backend::Sqlite | Backend::Redis => vec![],
            Backend::Postgres => vec![("NOTES_DATABASE_URL", self.pg_url(name))],
        }
    }

    /// Drops and creates database `name` (psql, on the admin URL).
    pub fn fresh_pg_db(&self, name: &str) -> Result<()> {
        let out = Command::new("psql")
            .args([
                self.set.pg_url.as_str(),
                "-v",
                "ON_ERROR_STOP=1",
                "-qc",
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                "-c",
                &format!("CREATE DATABASE {name}"),
            ])
            .output()
            .context("running psql (PostgreSQL client)")?;
        if !out.status.success() {
            bail!(
                "psql: creating database {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// Notes in database `name`, if it answers.
    pub fn pg_count(&self, name: &str) -> Option<u64> {
        let out = Command::new("psql")
            .args([
                self.pg_url(name).as_str(),
                "-tAc",
                "SELECT count(*) FROM notes",
            ])
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    }
}
