//! The settings as given: flags and `NOTES_*` environment variables (clap
//! derive), one struct per concern. `Config::resolve` turns them into the
//! `Settings` (`settings.rs`) each layer takes.

use std::{net::SocketAddr, path::PathBuf};

use clap::{Args, ValueEnum, builder::BoolishValueParser};
use serde::Serialize;

use super::secret::{Secret, redact_opt};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Development,
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Text,
}

/// The settings as given, shared by every subcommand that needs them. The
/// sections are flattened: every flag, `NOTES_*` name and key of
/// `notes-api config` is the one a flat list would have.
#[derive(Debug, Clone, Args, Serialize)]
pub struct Config {
    #[command(flatten)]
    #[serde(flatten)]
    pub server: ServerArgs,
    #[command(flatten, next_help_heading = "Database")]
    #[serde(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten, next_help_heading = "Attachments and backups")]
    #[serde(flatten)]
    pub storage: StorageArgs,
    #[command(flatten, next_help_heading = "Search index")]
    #[serde(flatten)]
    pub index: IndexArgs,
    #[command(flatten, next_help_heading = "Jobs")]
    #[serde(flatten)]
    pub jobs: JobsArgs,
    #[command(flatten, next_help_heading = "Limits")]
    #[serde(flatten)]
    pub limits: LimitsArgs,
    #[command(flatten, next_help_heading = "Admin UI")]
    #[serde(flatten)]
    pub admin: AdminArgs,
    #[command(flatten, next_help_heading = "Webhooks")]
    #[serde(flatten)]
    pub webhooks: WebhooksArgs,
    #[command(flatten, next_help_heading = "Logs and error reports")]
    #[serde(flatten)]
    pub telemetry: TelemetryArgs,
}

impl Config {
    /// Every default, and nothing from the environment or the command line:
    /// what tests start from, whatever `NOTES_*` the machine has set.
    pub fn defaults() -> Self {
        use clap::{CommandFactory, FromArgMatches};
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            config: Config,
        }
        let matches = Wrapper::command()
            .mut_args(|arg| arg.env(None))
            .get_matches_from(["notes-api"]);
        Wrapper::from_arg_matches(&matches)
            .expect("the defaults parse")
            .config
    }
}

/// The process: its mode, address, data directory, master key and who may reach it.
#[derive(Debug, Clone, Args, Serialize)]
pub struct ServerArgs {
    /// `development` needs no API key (and says so at start-up); `production`
    /// requires a master key and scoped API keys on every /api route.
    #[arg(
        long = "env",
        env = "NOTES_ENV",
        value_enum,
        default_value = "development"
    )]
    pub env: Environment,
    /// Address to listen on. Loopback by default so that an unauthenticated
    /// development server never faces the network by accident.
    #[arg(long, env = "NOTES_LISTEN", default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,
    /// Where the embedded defaults live: the SQLite database (`notes.db`),
    /// attachments (`blobs/`) and the search index (`index/`).
    #[arg(long, env = "NOTES_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Master key: manages API keys; required in production (≥ 32 bytes).
    #[arg(long, env = "NOTES_MASTER_KEY", hide_env_values = true)]
    #[serde(serialize_with = "redact_opt")]
    pub master_key: Option<Secret>,
    #[arg(long, env = "NOTES_MASTER_KEY_FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master_key_file: Option<PathBuf>,
    /// Lets a development-mode server (no master key, so no key is checked)
    /// listen on a non-loopback address. Without it such a server refuses to
    /// start: an open API must be chosen, never stumbled into.
    #[arg(long, env = "NOTES_ALLOW_UNAUTHENTICATED", default_value_t = false, value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub allow_unauthenticated: bool,
    /// The URL clients reach this server by (`https://notes.example.com`),
    /// when that is not loopback or an IP address. Development mode (no
    /// key checked) answers only requests whose `Host` is loopback, an IP
    /// address or this URL's host: a page elsewhere that rebinds its own
    /// name to this server's address is refused (421).
    #[arg(long, env = "NOTES_PUBLIC_URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// Origins allowed by CORS, comma-separated; none by default.
    #[arg(long, env = "NOTES_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// Proxies (addresses or CIDR blocks, comma-separated) whose
    /// `X-Forwarded-For` names the client; nobody else's is believed.
    #[arg(long, env = "NOTES_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Answer every write with 405; reads and search keep working.
    #[arg(long, env = "NOTES_READ_ONLY", default_value_t = false, value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub read_only: bool,
    /// Apply database migrations when `serve` starts (turn off when they run
    /// as a separate step, e.g. an Argo CD PreSync Job).
    #[arg(long, env = "NOTES_MIGRATE_ON_START", default_value_t = true, value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub migrate_on_start: bool,
    /// Seconds in-flight requests get to finish after SIGTERM.
    #[arg(long, env = "NOTES_SHUTDOWN_TIMEOUT", default_value_t = 25)]
    pub shutdown_timeout: u64,
}

/// The database and its connection pool.
#[derive(Debug, Clone, Args, Serialize)]
pub struct DatabaseArgs {
    /// Database URL; default `sqlite://<data_dir>/notes.db`.
    #[arg(long, env = "NOTES_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<Secret>,
    #[arg(long, env = "NOTES_DATABASE_URL_FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url_file: Option<PathBuf>,
    /// Maximum database connections (for SQLite: readers; writes go through one connection).
    #[arg(long, env = "NOTES_DB_MAX_CONNECTIONS", default_value_t = 8)]
    pub db_max_connections: u32,
    /// Seconds to wait for a database connection.
    #[arg(long, env = "NOTES_DB_CONNECT_TIMEOUT", default_value_t = 5)]
    pub db_connect_timeout: u64,
    /// Seconds a single database statement may run (PostgreSQL
    /// statement_timeout; SQLite: how long to wait for a lock, capped at 10).
    #[arg(long, env = "NOTES_DB_STATEMENT_TIMEOUT", default_value_t = 30)]
    pub db_statement_timeout: u64,
}

/// Where attachment bytes and backups live.
#[derive(Debug, Clone, Args, Serialize)]
pub struct StorageArgs {
    /// Where attachment bytes live: `file://DIR` or `s3://BUCKET`;
    /// default `file://<data_dir>/blobs`.
    #[arg(long, env = "NOTES_STORAGE_URL")]
    pub storage_url: Option<String>,
    /// S3 endpoint for MinIO, Garage or another S3-compatible server (AWS needs none).
    #[arg(long, env = "NOTES_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// S3 region (else AWS_REGION, else us-east-1).
    #[arg(long, env = "NOTES_S3_REGION")]
    pub s3_region: Option<String>,
    /// Path-style requests (`endpoint/bucket/key`), what MinIO and Garage
    /// expect; applies with NOTES_S3_ENDPOINT.
    #[arg(long, env = "NOTES_S3_PATH_STYLE", default_value_t = true, value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub s3_path_style: bool,
    /// S3 credentials; AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY work too.
    #[arg(long, env = "NOTES_S3_ACCESS_KEY_ID", hide_env_values = true)]
    #[serde(serialize_with = "redact_opt")]
    pub s3_access_key_id: Option<Secret>,
    #[arg(long, env = "NOTES_S3_ACCESS_KEY_ID_FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_access_key_id_file: Option<PathBuf>,
    #[arg(long, env = "NOTES_S3_SECRET_ACCESS_KEY", hide_env_values = true)]
    #[serde(serialize_with = "redact_opt")]
    pub s3_secret_access_key: Option<Secret>,
    #[arg(long, env = "NOTES_S3_SECRET_ACCESS_KEY_FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_secret_access_key_file: Option<PathBuf>,
    /// Largest accepted attachment in bytes.
    #[arg(long, env = "NOTES_MAX_UPLOAD_BYTES", default_value_t = 100 * 1024 * 1024)]
    pub max_upload_bytes: u64,
    /// Text-like attachments up to this size become searchable.
    #[arg(long, env = "NOTES_EXTRACT_MAX_BYTES", default_value_t = 1024 * 1024)]
    pub extract_max_bytes: u64,
    /// Where the `backup` job writes: a directory, `file://DIR` or
    /// `s3://BUCKET/PREFIX`. Default: `backups/` next to the attachments.
    #[arg(long, env = "NOTES_BACKUP_TO")]
    pub backup_to: Option<String>,
    /// Where a `backup` job submitted through the API may write: prefixes
    /// (directories, `file://DIR`, `s3://BUCKET/PREFIX`), comma-separated.
    /// Default: NOTES_BACKUP_TO alone. The `backup` command is not limited.
    #[arg(long, env = "NOTES_BACKUP_DESTINATIONS", value_delimiter = ',')]
    pub backup_destinations: Vec<String>,
    /// Complete snapshots a backup keeps where it writes: once a new one is
    /// complete, the oldest past this many are removed, and interrupted
    /// ones older than a day. 0 keeps every snapshot.
    #[arg(long, env = "NOTES_BACKUP_KEEP", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=100_000))]
    pub backup_keep: u32,
}

/// This process's search index.
#[derive(Debug, Clone, Args, Serialize)]
pub struct IndexArgs {
    /// Directory of this process's search index; default `<data_dir>/index`.
    /// Derived from the database and rebuilt from it when lost, so an
    /// emptyDir is enough. Every replica needs its own.
    #[arg(long, env = "NOTES_INDEX_DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index_dir: Option<PathBuf>,
    /// Memory the search index writer may buffer before it flushes a
    /// segment, in MiB (at least 15 per indexing thread).
    #[arg(long, env = "NOTES_INDEX_MEMORY_MB", default_value_t = 48)]
    pub index_memory_mb: u32,
}

/// The job queue, its workers and the schedule.
#[derive(Debug, Clone, Args, Serialize)]
pub struct JobsArgs {
    /// `redis://HOST:PORT[/DB]` puts the job queue in Redis; unset, jobs
    /// queue in the database.
    #[arg(long, env = "NOTES_QUEUE_URL", hide_env_values = true)]
    #[serde(serialize_with = "redact_opt")]
    pub queue_url: Option<Secret>,
    #[arg(long, env = "NOTES_QUEUE_URL_FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_url_file: Option<PathBuf>,
    /// Job workers this process runs (`serve`: in-process, 0 turns them off;
    /// `worker`: the pool size).
    #[arg(long, env = "NOTES_WORKERS", default_value_t = 2)]
    pub workers: usize,
    /// Jobs one API key may have queued, failed (a retry due) or running at
    /// once; past it `POST /jobs` answers 429. The master key is not counted.
    #[arg(long, env = "NOTES_MAX_QUEUED_JOBS_PER_KEY", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_queued_jobs_per_key: u32,
    /// Attempts before a failing job becomes `dead`.
    #[arg(long, env = "NOTES_JOB_MAX_ATTEMPTS", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub job_max_attempts: u32,
    /// Seconds a worker holds a job without renewing its lease; a job whose
    /// worker died runs again after this.
    #[arg(long, env = "NOTES_JOB_LEASE", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub job_lease: u64,
    /// First retry delay in milliseconds; doubles per attempt (with jitter).
    #[arg(long, env = "NOTES_JOB_BACKOFF_MS", default_value_t = 1000)]
    pub job_backoff_ms: u64,
    /// Milliseconds an idle worker waits between looks at the queue when no
    /// notification wakes it (SQLite across processes, missed notifications).
    #[arg(long, env = "NOTES_JOB_POLL_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(50..=60_000))]
    pub job_poll_ms: u64,
    /// Hours finished jobs are kept before `purge` deletes them.
    #[arg(long, env = "NOTES_JOB_RETENTION_HOURS", default_value_t = 168, value_parser = clap::value_parser!(u64).range(1..=87_600))]
    pub job_retention_hours: u64,
    /// Revisions `purge` keeps per note (the newest).
    #[arg(long, env = "NOTES_REVISIONS_KEEP", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub revisions_keep: u32,
    /// Days a revision is kept before `purge` deletes it; 0 keeps them
    /// for good (within NOTES_REVISIONS_KEEP).
    #[arg(long, env = "NOTES_REVISIONS_MAX_DAYS", default_value_t = 365, value_parser = clap::value_parser!(u32).range(0..=36_500))]
    pub revisions_max_days: u32,
    /// Days a deleted note waits in the trash before `purge` deletes it for
    /// good; 0 keeps the trash until it is emptied.
    #[arg(long, env = "NOTES_TRASH_RETENTION_DAYS", default_value_t = 30, value_parser = clap::value_parser!(u32).range(0..=36_500))]
    pub trash_retention_days: u32,
    /// Days the change feed keeps deletions and attachment events before
    /// `purge` prunes them (a client's cursor older than that is answered
    /// 410: resync); 0 keeps them for good.
    #[arg(long, env = "NOTES_CHANGES_RETENTION_DAYS", default_value_t = 30, value_parser = clap::value_parser!(u32).range(0..=36_500))]
    pub changes_retention_days: u32,
    /// Seconds an object without a row is left alone by `purge` (an upload
    /// writes its object before its row).
    #[arg(long, env = "NOTES_PURGE_GRACE", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(0..=31_536_000))]
    pub purge_grace: u64,
    /// Periodic jobs: `kind=CRON;kind=CRON`, e.g. `backup=0 3 * * *;purge=@hourly`
    /// (five fields or @hourly/@daily/@weekly/@monthly, UTC).
    #[arg(long, env = "NOTES_SCHEDULE", default_value = "")]
    pub schedule: String,
    /// Seconds after a tick during which a replica that was down still fires
    /// it on start; older missed ticks are skipped. At most a week.
    #[arg(long, env = "NOTES_SCHEDULE_GRACE", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(0..=604_800))]
    pub schedule_grace: u64,
}

/// What one request, one client and the whole process may take.
#[derive(Debug, Clone, Args, Serialize)]
pub struct LimitsArgs {
    /// Largest accepted ingest body in bytes.
    #[arg(long, env = "NOTES_MAX_INGEST_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub max_ingest_bytes: u64,
    /// Most notes one ingest batch may hold (413 past it). A batch is held
    /// in memory until it is written, at about 1.5 KiB a note however
    /// small the note: bytes alone do not bound it.
    #[arg(long, env = "NOTES_MAX_INGEST_NOTES", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub max_ingest_notes: u64,
    /// Largest import (issue #26): the zip upload, and the bytes its
    /// files unpack to, all together. A zip bomb stops here.
    #[arg(long, env = "NOTES_IMPORT_MAX_BYTES", default_value_t = 10 * 1024 * 1024 * 1024)]
    pub import_max_bytes: u64,
    /// Most files (entries) one import may hold: a zip of a million empty
    /// files costs its central directory in memory, so it stops here.
    #[arg(long, env = "NOTES_IMPORT_MAX_FILES", default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub import_max_files: u64,
    /// Seconds a request may take before it is answered 503.
    #[arg(long, env = "NOTES_REQUEST_TIMEOUT", default_value_t = 30)]
    pub request_timeout: u64,
    /// Seconds an ingest request may take (large uploads from slow clients).
    #[arg(long, env = "NOTES_INGEST_TIMEOUT", default_value_t = 300)]
    pub ingest_timeout: u64,
    /// Seconds a client has to send a request's headers, counted from when
    /// its connection opens or goes idle after a response; so also how long
    /// an idle keep-alive connection stays open.
    #[arg(long, env = "NOTES_HEADER_TIMEOUT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_timeout: u64,
    /// Seconds a connection may wait with no byte moving while it reads a
    /// request body or writes a response: a stalled upload or download.
    #[arg(long, env = "NOTES_IDLE_TIMEOUT", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub idle_timeout: u64,
    /// Connections served at once; further clients wait in the listen backlog.
    #[arg(long, env = "NOTES_MAX_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: u64,
    /// Requests per second one client (an API key, else an address) may
    /// make; 0 turns the limit off. Default: 100 in production, off in
    /// development.
    #[arg(long, env = "NOTES_RATE_LIMIT")]
    pub rate_limit: Option<u32>,
    /// Requests a client may make at once above its rate; default twice
    /// the rate.
    #[arg(long, env = "NOTES_RATE_BURST")]
    pub rate_burst: Option<u32>,
    /// Bulk ingests written at once (each holds its batch in memory: a
    /// 64 MiB batch peaks near 200 MiB). A batch streams to disk first and
    /// then waits up to 30 s for its turn, then gets 503.
    #[arg(long, env = "NOTES_MAX_INGESTS", default_value_t = 1)]
    pub max_ingests: usize,
    /// Note writes, listings, searches and job submissions run at once;
    /// more wait a second, then get 503. A JSON body is read before its
    /// request takes a slot, so a slow client holds none.
    #[arg(long, env = "NOTES_MAX_HEAVY_REQUESTS", default_value_t = 8)]
    pub max_heavy_requests: usize,
    /// Attachment uploads streaming at once (each holds up to about
    /// 20 MiB of parts in flight); more wait a second, then get 503.
    #[arg(long, env = "NOTES_MAX_UPLOADS", default_value_t = 8)]
    pub max_uploads: usize,
    /// Exports (`GET /api/v1/export`) streaming at once; more wait a
    /// second, then get 503. An export holds its slot until its last byte
    /// is sent, so it has a pool of its own and cannot take the uploads'.
    #[arg(long, env = "NOTES_MAX_EXPORTS", default_value_t = 2)]
    pub max_exports: usize,
    /// Uploads, ingests and exports one client (an API key, else an
    /// address) may run at once; more are 429. Keeps one client from
    /// holding every upload slot. 0 turns it off. Default: 2 in production, off in
    /// development (one person, one address), as the rate limit.
    #[arg(long, env = "NOTES_MAX_UPLOADS_PER_CLIENT")]
    pub max_uploads_per_client: Option<usize>,
    /// Slowest an upload or ingest body may arrive, in bytes per second
    /// over any 10 s while the server waits for it (408 below it); 0 turns
    /// the check off.
    #[arg(long, env = "NOTES_MIN_BODY_RATE", default_value_t = 1024)]
    pub min_body_rate: u64,
    /// Live change streams (`/api/v1/changes/stream`) a process serves at
    /// once; more are 503.
    #[arg(long, env = "NOTES_MAX_STREAMS", default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub max_streams: u64,
    /// Live change streams one key (or, without keys, one address) may hold
    /// open on a process; more are 429.
    #[arg(long, env = "NOTES_MAX_STREAMS_PER_KEY", default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub max_streams_per_key: u64,
}

/// The admin UI's sessions.
#[derive(Debug, Clone, Args, Serialize)]
pub struct AdminArgs {
    /// Mark the admin UI's session cookie `Secure` (sent over HTTPS only).
    /// Default: on in production, off in development (plain-HTTP loopback).
    #[arg(long, env = "NOTES_ADMIN_SECURE_COOKIE", value_parser = BoolishValueParser::new())]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_secure_cookie: Option<bool>,
    /// Minutes an admin UI session lasts without a request (it ends after
    /// 8 hours in any case).
    #[arg(long, env = "NOTES_ADMIN_SESSION_IDLE_MINUTES", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=480))]
    pub admin_session_idle_minutes: u64,
}

/// Webhooks: where deliveries may go, how their secrets are kept, and how
/// long a failing one is retried.
#[derive(Debug, Clone, Args, Serialize)]
pub struct WebhooksArgs {
    /// Key that seals webhook signing secrets in the database (≥ 32
    /// bytes); the master key when unset. Changing it: give the old one in
    /// NOTES_SECRET_KEY_PREVIOUS until every secret was used once.
    #[arg(long, env = "NOTES_SECRET_KEY", hide_env_values = true)]
    #[serde(serialize_with = "redact_opt")]
    pub secret_key: Option<Secret>,
    #[arg(long, env = "NOTES_SECRET_KEY_FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_key_file: Option<PathBuf>,
    /// The key secrets were sealed with before NOTES_SECRET_KEY changed:
    /// they are opened with it and sealed again with the new one.
    #[arg(long, env = "NOTES_SECRET_KEY_PREVIOUS", hide_env_values = true)]
    #[serde(serialize_with = "redact_opt")]
    pub secret_key_previous: Option<Secret>,
    #[arg(long, env = "NOTES_SECRET_KEY_PREVIOUS_FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_key_previous_file: Option<PathBuf>,
    /// Networks (CIDR, comma-separated) webhooks may deliver to although
    /// they are loopback, private or link-local: the cluster's pod and
    /// service ranges, for receivers inside it. Empty by default.
    #[arg(long, env = "NOTES_WEBHOOK_ALLOW_NETWORKS", value_delimiter = ',')]
    pub webhook_allow_networks: Vec<ipnet::IpNet>,
    /// Delays between a failed delivery attempt and the next one
    /// (`5s,5m,2h`: s, m, h or d each); after the last, the delivery fails.
    #[arg(
        long,
        env = "NOTES_WEBHOOK_RETRY_SCHEDULE",
        default_value = "5s,5m,30m,2h,5h,10h,10h"
    )]
    pub webhook_retry_schedule: String,
    /// A webhook whose every attempt failed for this long is disabled
    /// (`3d`, `12h`, …).
    #[arg(long, env = "NOTES_WEBHOOK_DISABLE_AFTER", default_value = "3d")]
    pub webhook_disable_after: String,
    /// Days finished deliveries are listed before `purge` deletes them.
    #[arg(long, env = "NOTES_WEBHOOK_RETENTION_DAYS", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub webhook_retention_days: u32,
}

/// Logs and error reports.
#[derive(Debug, Clone, Args, Serialize)]
pub struct TelemetryArgs {
    /// Log filter in `tracing` syntax, e.g. `info` or `notes_api=debug,info`.
    #[arg(long, env = "NOTES_LOG", default_value = "info")]
    pub log: String,
    #[arg(long, env = "NOTES_LOG_FORMAT", value_enum, default_value = "json")]
    pub log_format: LogFormat,
    /// Sentry-compatible DSN (Sentry, GlitchTip, Bugsink) for 5xx answers
    /// and failed jobs; unset, nothing is sent anywhere.
    #[arg(long, env = "NOTES_SENTRY_DSN", hide_env_values = true)]
    #[serde(serialize_with = "redact_opt")]
    pub sentry_dsn: Option<Secret>,
    #[arg(long, env = "NOTES_SENTRY_DSN_FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sentry_dsn_file: Option<PathBuf>,
    /// The environment events are filed under; default NOTES_ENV.
    #[arg(long, env = "NOTES_SENTRY_ENVIRONMENT")]
    pub sentry_environment: Option<String>,
    /// Seconds between two progress lines of a long command (`export`,
    /// `backup`, …) whose stderr is not a terminal, and of a server's index
    /// build; 0 logs at every look (ten a second).
    #[arg(long, env = "NOTES_PROGRESS_EVERY", default_value_t = 5, value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub progress_every: u64,
}
