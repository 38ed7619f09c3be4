//! Every knob of `notes-bench run`: a command-line option and a BENCH_*
//! environment variable each, recorded whole in `latest.json` ("settings").

use clap::{ArgAction, builder::BoolishValueParser};
use serde::Serialize;

#[derive(Debug, Clone, Serialize, clap::Args)]
pub struct Settings {
    /// The benchmarks to run, comma-separated, or `all` (run.sh passes its
    /// first argument, else BENCH_ONLY).
    #[arg(long, env = "BENCH_ONLY", default_value = "all")]
    pub only: String,
    /// The budget run.sh gives the whole run, seconds (it stops the run
    /// when it is spent; recorded here).
    #[arg(long = "timeout", env = "BENCH_TIMEOUT", default_value_t = 2400)]
    pub timeout_s: u64,
    /// run.sh did not build the binaries (they were built before).
    #[arg(long, env = "BENCH_SKIP_BUILD", default_value = "0", value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub skip_build: bool,
    #[arg(long, env = "BENCH_WRK_THREADS", default_value_t = 2)]
    pub wrk_threads: u32,
    #[arg(long, env = "BENCH_HEALTHZ_CONNECTIONS", default_value_t = 64)]
    pub healthz_connections: u32,
    #[arg(
        long = "healthz-duration",
        env = "BENCH_HEALTHZ_DURATION",
        default_value_t = 10
    )]
    pub healthz_duration_s: u32,
    #[arg(long, env = "BENCH_SEARCH_CONNECTIONS", default_value_t = 8)]
    pub search_connections: u32,
    #[arg(
        long = "search-duration",
        env = "BENCH_SEARCH_DURATION",
        default_value_t = 10
    )]
    pub search_duration_s: u32,
    #[arg(
        long = "search-aux-duration",
        env = "BENCH_SEARCH_AUX_DURATION",
        default_value_t = 5
    )]
    pub search_aux_duration_s: u32,
    /// search also runs on the real-text corpus.
    #[arg(long, env = "BENCH_SEARCH_REAL", default_value = "1", value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub search_real: bool,
    #[arg(long, env = "BENCH_INGEST_REPS", default_value_t = 3)]
    pub ingest_reps: u32,
    /// PostgreSQL ingests take about 3x longer: fewer reps keep the
    /// benchmark near 5 minutes.
    #[arg(long, env = "BENCH_INGEST_PG_REPS", default_value_t = 2)]
    pub ingest_pg_reps: u32,
    #[arg(long, env = "BENCH_STARTUP_RUNS", default_value_t = 15)]
    pub startup_runs: u32,
    #[arg(long, env = "BENCH_STARTUP_POLL_MS", default_value_t = 2)]
    pub startup_poll_ms: u64,
    #[arg(
        long = "writes-duration",
        env = "BENCH_WRITES_DURATION",
        default_value_t = 10
    )]
    pub writes_duration_s: u32,
    #[arg(long, env = "BENCH_WRITES_SEARCH_CONNECTIONS", default_value_t = 4)]
    pub writes_search_connections: u32,
    /// Notes of the search-1m corpus.
    #[arg(
        long = "million-notes",
        env = "BENCH_1M_NOTES",
        default_value_t = 1_000_000
    )]
    pub million_notes: usize,
    /// Pin the /healthz server and wrk to CPUs (also runs unpinned).
    #[arg(long, env = "BENCH_PIN", default_value = "1", value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub pin: bool,
    /// NOTES_LOG of the service under test.
    #[arg(long, env = "BENCH_NOTES_LOG", default_value = "warn")]
    pub notes_log: String,
    /// Where ingest-pg and search-pg create their databases (admin URL).
    #[arg(
        long,
        env = "BENCH_PG_URL",
        default_value = "postgres://postgres:postgres@127.0.0.1:5432/postgres"
    )]
    pub pg_url: String,
    #[arg(long, env = "BENCH_STORAGE_BIG_MIB", default_value_t = 200)]
    pub storage_big_mib: u64,
    /// A file of the service's default upload limit (100 MiB), uploaded raw
    /// and as multipart/form-data (issue #20).
    #[arg(long, env = "BENCH_STORAGE_MID_MIB", default_value_t = 100)]
    pub storage_mid_mib: u64,
    #[arg(long, env = "BENCH_STORAGE_SMALL_MIB", default_value_t = 16)]
    pub storage_small_mib: u64,
    #[arg(long, env = "BENCH_STORAGE_SMALL_COUNT", default_value_t = 8)]
    pub storage_small_count: usize,
    #[arg(long, env = "BENCH_STORAGE_REPS", default_value_t = 3)]
    pub storage_reps: usize,
    /// Queue backends of the jobs benchmark, comma-separated.
    #[arg(
        long,
        env = "BENCH_JOBS_BACKENDS",
        default_value = "sqlite,postgres,redis"
    )]
    pub jobs_backends: String,
    #[arg(long, env = "BENCH_JOBS_COUNT", default_value_t = 10_000)]
    pub jobs_count: u64,
    #[arg(long, env = "BENCH_JOBS_CONCURRENCY", default_value_t = 16)]
    pub jobs_concurrency: usize,
    /// Workers per worker process.
    #[arg(long, env = "BENCH_JOBS_WORKERS", default_value_t = 4)]
    pub jobs_workers: usize,
    #[arg(long, env = "BENCH_JOBS_PACED_RATE", default_value_t = 50.0)]
    pub jobs_paced_rate: f64,
    #[arg(long, env = "BENCH_JOBS_PACED_SECS", default_value_t = 10.0)]
    pub jobs_paced_secs: f64,
    #[arg(long, env = "BENCH_JOBS_IDLE_SECS", default_value_t = 30.0)]
    pub jobs_idle_secs: f64,
    /// The PostgreSQL server of the jobs benchmark (no database in the URL).
    #[arg(
        long,
        env = "BENCH_JOBS_PG",
        default_value = "postgres://postgres@127.0.0.1:5432"
    )]
    pub jobs_pg: String,
    #[arg(
        long,
        env = "BENCH_JOBS_REDIS",
        default_value = "redis://127.0.0.1:6379"
    )]
    pub jobs_redis: String,
    #[arg(long, env = "BENCH_JOBS_REDIS_DB", default_value_t = 13)]
    pub jobs_redis_db: u32,
    /// Known items of the relevance benchmark (issue #22).
    #[arg(long, env = "BENCH_RELEVANCE_TARGETS", default_value_t = 300)]
    pub relevance_targets: usize,
    /// Queries per kind of search-tolerant's typo, as-you-type and mixed
    /// files.
    #[arg(long, env = "BENCH_TOLERANT_QUERIES", default_value_t = 2000)]
    pub tolerant_queries: usize,
    /// A notes-api binary of an earlier commit: search-tolerant runs the
    /// exact-word search mixes on it too, on its own data dirs (its index
    /// format may differ), for the q/s ratio new/old.
    #[arg(long, env = "BENCH_OLD_SERVICE_BIN")]
    pub old_service_bin: Option<std::path::PathBuf>,
    /// A Meilisearch binary: relevance and search-tolerant measure it as
    /// the reference (on 127.0.0.1:18700, its own data dir under the work
    /// dir), on the same real-text notes. Built outside this repository.
    #[arg(long, env = "BENCH_MEILI_BIN")]
    pub meili_bin: Option<std::path::PathBuf>,
}
