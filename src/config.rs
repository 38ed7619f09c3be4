//! Every setting in one place: flags and `NOTES_*` environment variables (clap
//! derive), secrets also from `NOTES_..._FILE` (the Kubernetes secret-volume
//! convention).

use std::{fmt, net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, ValueEnum, builder::BoolishValueParser};
use serde::{Serialize, Serializer};

/// Minimum master-key length in production: 32 bytes is 256 bits of key
/// material when the key is random, the floor for a long-lived credential.
pub const MIN_MASTER_KEY_BYTES: usize = 32;

/// Requests per second per client in production unless NOTES_RATE_LIMIT
/// says otherwise: far above what a person or a well-behaved integration
/// sends, low enough that one client cannot take a pod's capacity alone.
pub const DEFAULT_RATE_LIMIT: u32 = 100;

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

/// A value that must never reach a log line, a `Debug` print or `notes-api config`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "NOTES_ENV=production needs a master key: set NOTES_MASTER_KEY or NOTES_MASTER_KEY_FILE \
         (at least {MIN_MASTER_KEY_BYTES} bytes, e.g. `openssl rand -base64 48`)"
    )]
    MissingMasterKey,
    #[error("the master key is {0} bytes long; at least {MIN_MASTER_KEY_BYTES} bytes are required")]
    ShortMasterKey(usize),
    #[error("both {0} and {0}_FILE are set; set only one")]
    Ambiguous(&'static str),
    #[error("cannot read {var} from {path}: {source}")]
    SecretFile {
        var: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid value for {0}: {1}")]
    Invalid(&'static str, String),
    #[error(
        "refusing to serve the API without keys on {0}: development mode checks no key. Set \
         NOTES_MASTER_KEY (keys are then required), listen on 127.0.0.1, or set \
         NOTES_ALLOW_UNAUTHENTICATED=true to serve an open API on purpose"
    )]
    Unauthenticated(SocketAddr),
}

/// The service configuration, shared by every subcommand that needs it.
#[derive(Debug, Clone, Args, Serialize)]
pub struct Config {
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

    /// Master key: manages API keys; required in production (≥ 32 bytes).
    #[arg(long, env = "NOTES_MASTER_KEY", hide_env_values = true)]
    #[serde(serialize_with = "redact_opt")]
    pub master_key: Option<Secret>,
    #[arg(long, env = "NOTES_MASTER_KEY_FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master_key_file: Option<PathBuf>,

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

    /// Origins allowed by CORS, comma-separated; none by default.
    #[arg(long, env = "NOTES_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// Largest accepted ingest body in bytes.
    #[arg(long, env = "NOTES_MAX_INGEST_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub max_ingest_bytes: u64,
    /// Most notes one ingest batch may hold (413 past it). A batch is held
    /// in memory until it is written, at about 1.5 KiB a note however
    /// small the note: bytes alone do not bound it.
    #[arg(long, env = "NOTES_MAX_INGEST_NOTES", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub max_ingest_notes: u64,

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
    /// Proxies (addresses or CIDR blocks, comma-separated) whose
    /// `X-Forwarded-For` names the client; nobody else's is believed.
    #[arg(long, env = "NOTES_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<ipnet::IpNet>,
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
    /// Uploads and ingests one client (an API key, else an address) may
    /// run at once; more are 429. Keeps one client from holding every
    /// upload slot. 0 turns it off. Default: 2 in production, off in
    /// development (one person, one address), as the rate limit.
    #[arg(long, env = "NOTES_MAX_UPLOADS_PER_CLIENT")]
    pub max_uploads_per_client: Option<usize>,
    /// Slowest an upload or ingest body may arrive, in bytes per second
    /// over any 10 s while the server waits for it (408 below it); 0 turns
    /// the check off.
    #[arg(long, env = "NOTES_MIN_BODY_RATE", default_value_t = 1024)]
    pub min_body_rate: u64,
    /// Seconds in-flight requests get to finish after SIGTERM.
    #[arg(long, env = "NOTES_SHUTDOWN_TIMEOUT", default_value_t = 25)]
    pub shutdown_timeout: u64,

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

    /// Mark the admin UI's session cookie `Secure` (sent over HTTPS only).
    /// Default: on in production, off in development (plain-HTTP loopback).
    #[arg(long, env = "NOTES_ADMIN_SECURE_COOKIE", value_parser = BoolishValueParser::new())]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_secure_cookie: Option<bool>,
    /// Minutes an admin UI session lasts without a request (it ends after
    /// 8 hours in any case).
    #[arg(long, env = "NOTES_ADMIN_SESSION_IDLE_MINUTES", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=480))]
    pub admin_session_idle_minutes: u64,

    /// Answer every write with 405; reads and search keep working.
    #[arg(long, env = "NOTES_READ_ONLY", default_value_t = false, value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub read_only: bool,

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
    /// Where the `backup` job writes: a directory, `file://DIR` or
    /// `s3://BUCKET/PREFIX`. Default: `backups/` next to the attachments.
    #[arg(long, env = "NOTES_BACKUP_TO")]
    pub backup_to: Option<String>,

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

    /// Where a `backup` job submitted through the API may write: prefixes
    /// (directories, `file://DIR`, `s3://BUCKET/PREFIX`), comma-separated.
    /// Default: NOTES_BACKUP_TO alone. The `backup` command is not limited.
    #[arg(long, env = "NOTES_BACKUP_DESTINATIONS", value_delimiter = ',')]
    pub backup_destinations: Vec<String>,

    /// Apply database migrations when `serve` starts (turn off when they run
    /// as a separate step, e.g. an Argo CD PreSync Job).
    #[arg(long, env = "NOTES_MIGRATE_ON_START", default_value_t = true, value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub migrate_on_start: bool,
}

fn redact_opt<S: Serializer>(v: &Option<Secret>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(_) => s.serialize_str("<redacted>"),
        None => s.serialize_none(),
    }
}

impl Config {
    /// Defaults with no flags and no environment: what tests and `serve` start from.
    pub fn defaults() -> Self {
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            config: Config,
        }
        <Wrapper as clap::Parser>::parse_from(["notes-api"]).config
    }

    /// Reads `*_FILE` secrets and checks the rules that span several settings.
    /// Call once at start-up; the result is what the process runs with.
    pub fn resolve(mut self) -> Result<Self, ConfigError> {
        self.master_key = resolve_secret(
            "NOTES_MASTER_KEY",
            self.master_key.take(),
            self.master_key_file.as_deref(),
        )?;
        self.database_url = resolve_secret(
            "NOTES_DATABASE_URL",
            self.database_url.take(),
            self.database_url_file.as_deref(),
        )?;
        self.s3_access_key_id = resolve_secret(
            "NOTES_S3_ACCESS_KEY_ID",
            self.s3_access_key_id.take(),
            self.s3_access_key_id_file.as_deref(),
        )?;
        self.s3_secret_access_key = resolve_secret(
            "NOTES_S3_SECRET_ACCESS_KEY",
            self.s3_secret_access_key.take(),
            self.s3_secret_access_key_file.as_deref(),
        )?;
        self.queue_url = resolve_secret(
            "NOTES_QUEUE_URL",
            self.queue_url.take(),
            self.queue_url_file.as_deref(),
        )?;
        self.sentry_dsn = resolve_secret(
            "NOTES_SENTRY_DSN",
            self.sentry_dsn.take(),
            self.sentry_dsn_file.as_deref(),
        )?;
        if self.storage_url.is_none() {
            self.storage_url = Some(format!("file://{}", self.data_dir.join("blobs").display()));
        }
        if self.index_dir.is_none() {
            self.index_dir = Some(self.data_dir.join("index"));
        }
        if self.index_memory_mb < 15 {
            return Err(ConfigError::Invalid(
                "NOTES_INDEX_MEMORY_MB",
                "must be at least 15".into(),
            ));
        }
        if self.database_url.is_none() {
            let path = self.data_dir.join("notes.db");
            self.database_url = Some(Secret::new(format!("sqlite://{}", path.display())));
        }
        if let Some(key) = &self.master_key {
            let len = key.expose().len();
            if len < MIN_MASTER_KEY_BYTES {
                return Err(ConfigError::ShortMasterKey(len));
            }
        } else if self.env == Environment::Production {
            return Err(ConfigError::MissingMasterKey);
        }
        if self.request_timeout == 0 || self.ingest_timeout == 0 {
            return Err(ConfigError::Invalid(
                "NOTES_REQUEST_TIMEOUT / NOTES_INGEST_TIMEOUT",
                "must be at least 1 second".into(),
            ));
        }
        if let Some(url) = &self.public_url {
            public_host(url).ok_or_else(|| {
                ConfigError::Invalid(
                    "NOTES_PUBLIC_URL",
                    format!("{url:?} is not an http:// or https:// URL with a host"),
                )
            })?;
        }
        for origin in &self.cors_origins {
            if origin.parse::<axum::http::HeaderValue>().is_err() || !origin.contains("://") {
                return Err(ConfigError::Invalid("NOTES_CORS_ORIGINS", origin.clone()));
            }
        }
        Ok(self)
    }

    pub fn database_url(&self) -> &str {
        self.database_url.as_ref().map(Secret::expose).unwrap_or("")
    }

    pub fn index_dir(&self) -> PathBuf {
        self.index_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("index"))
    }

    pub fn storage_url(&self) -> &str {
        self.storage_url.as_deref().unwrap_or("")
    }

    pub fn is_production(&self) -> bool {
        self.env == Environment::Production
    }

    /// Whether the admin UI's session cookie is `Secure`: as configured,
    /// else in production only (development serves plain HTTP).
    pub fn admin_secure_cookie(&self) -> bool {
        self.admin_secure_cookie.unwrap_or(self.is_production())
    }

    /// Whether API keys are checked: whenever a master key is set, in either
    /// mode. (Production without one never gets this far.)
    pub fn requires_keys(&self) -> bool {
        self.master_key.is_some()
    }

    /// The host of NOTES_PUBLIC_URL, lowercase (checked by `resolve`).
    pub fn public_host(&self) -> Option<String> {
        self.public_url.as_deref().and_then(public_host)
    }

    /// The rule for a process that serves the API: without keys, only on
    /// loopback unless NOTES_ALLOW_UNAUTHENTICATED says otherwise.
    pub fn check_exposure(&self) -> Result<(), ConfigError> {
        if self.requires_keys() || self.listen.ip().is_loopback() || self.allow_unauthenticated {
            Ok(())
        } else {
            Err(ConfigError::Unauthenticated(self.listen))
        }
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout)
    }
    pub fn ingest_timeout(&self) -> Duration {
        Duration::from_secs(self.ingest_timeout)
    }
    /// NOTES_RATE_LIMIT, or its default for the mode.
    pub fn rate_limit(&self) -> u32 {
        self.rate_limit.unwrap_or(if self.is_production() {
            DEFAULT_RATE_LIMIT
        } else {
            0
        })
    }
    pub fn max_uploads_per_client(&self) -> usize {
        match self.max_uploads_per_client {
            Some(0) => usize::MAX,
            Some(n) => n,
            None if self.is_production() => 2,
            None => usize::MAX,
        }
    }
    pub fn rate_burst(&self) -> u32 {
        self.rate_burst
            .unwrap_or_else(|| self.rate_limit().saturating_mul(2))
    }
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout)
    }

    /// Every secret value this process holds: what error reports scrub.
    pub fn secrets(&self) -> Vec<String> {
        [
            &self.master_key,
            &self.database_url,
            &self.s3_access_key_id,
            &self.s3_secret_access_key,
            &self.queue_url,
            &self.sentry_dsn,
        ]
        .into_iter()
        .flatten()
        .flat_map(|s| {
            let whole = s.expose().to_owned();
            // A URL's password may be quoted alone, e.g. by a driver.
            let password = whole
                .split_once("://")
                .and_then(|(_, rest)| rest.rsplit_once('@'))
                .and_then(|(userinfo, _)| userinfo.split_once(':'))
                .map(|(_, password)| password.to_owned());
            std::iter::once(whole).chain(password)
        })
        .filter(|s| s.len() >= 6)
        .collect()
    }

    pub fn queue_url(&self) -> Option<&str> {
        self.queue_url.as_ref().map(Secret::expose)
    }
    pub fn purge_grace(&self) -> Duration {
        Duration::from_secs(self.purge_grace)
    }
    pub fn job_retention(&self) -> Duration {
        Duration::from_secs(self.job_retention_hours * 3600)
    }
    /// The backup destination: NOTES_BACKUP_TO, else `backups/` beside the
    /// attachments (in their bucket, or under the data directory).
    pub fn backup_to(&self) -> String {
        if let Some(to) = &self.backup_to {
            return to.clone();
        }
        match self.storage_url().strip_prefix("s3://") {
            Some(bucket) => format!("s3://{}/backups", bucket.trim_end_matches('/')),
            None => format!("file://{}", self.data_dir.join("backups").display()),
        }
    }
}

/// The host of an `http(s)://` URL, lowercase, without port or brackets.
fn public_host(url: &str) -> Option<String> {
    let uri: axum::http::Uri = url.parse().ok()?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return None;
    }
    let host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// A destination as a URL: a bare path is a `file://` one; no trailing `/`.
fn destination_url(to: &str) -> String {
    let url = if to.contains("://") {
        to.to_owned()
    } else {
        format!("file://{to}")
    };
    url.trim_end_matches('/').to_owned()
}

impl Config {
    /// Whether a backup requested through the API may write to `to`: under
    /// one of NOTES_BACKUP_DESTINATIONS (default NOTES_BACKUP_TO), with no
    /// `..` to climb out of it.
    pub fn check_backup_destination(&self, to: &str) -> Result<(), String> {
        let url = destination_url(to);
        if url.split('/').any(|segment| segment == "..") || url.contains(['\0', '\\']) {
            return Err("must not contain '..' segments".into());
        }
        let allowed: Vec<String> = if self.backup_destinations.is_empty() {
            vec![destination_url(&self.backup_to())]
        } else {
            self.backup_destinations
                .iter()
                .map(|d| destination_url(d))
                .collect()
        };
        if allowed
            .iter()
            .any(|prefix| url == *prefix || url.starts_with(&format!("{prefix}/")))
        {
            Ok(())
        } else {
            Err(format!(
                "must be under a configured backup destination (NOTES_BACKUP_DESTINATIONS): {}",
                allowed.join(", ")
            ))
        }
    }
}

fn resolve_secret(
    var: &'static str,
    direct: Option<Secret>,
    file: Option<&std::path::Path>,
) -> Result<Option<Secret>, ConfigError> {
    match (direct, file) {
        (Some(_), Some(_)) => Err(ConfigError::Ambiguous(var)),
        (Some(v), None) => Ok(Some(v).filter(|v| !v.expose().is_empty())),
        (None, Some(path)) => {
            let raw = std::fs::read_to_string(path).map_err(|source| ConfigError::SecretFile {
                var,
                path: path.to_owned(),
                source,
            })?;
            // Secret files usually end with a newline that is not part of the value.
            let value = raw.trim_end_matches(['\n', '\r']);
            Ok(Some(Secret::new(value)).filter(|v| !v.expose().is_empty()))
        }
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_without_key_is_refused() {
        let mut c = Config::defaults();
        c.env = Environment::Production;
        let err = c.resolve().unwrap_err();
        assert!(matches!(err, ConfigError::MissingMasterKey));
        assert!(err.to_string().contains("NOTES_MASTER_KEY"));
    }

    #[test]
    fn short_key_is_refused() {
        let mut c = Config::defaults();
        c.env = Environment::Production;
        c.master_key = Some(Secret::new("short"));
        assert!(matches!(c.resolve(), Err(ConfigError::ShortMasterKey(5))));
    }

    #[test]
    fn key_file_is_read_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, format!("{}\n", "k".repeat(40))).unwrap();
        let mut c = Config::defaults();
        c.env = Environment::Production;
        c.master_key_file = Some(path);
        let c = c.resolve().unwrap();
        assert_eq!(c.master_key.unwrap().expose(), "k".repeat(40));
    }

    #[test]
    fn both_key_and_file_is_ambiguous() {
        let mut c = Config::defaults();
        c.master_key = Some(Secret::new("k".repeat(40)));
        c.master_key_file = Some("/nonexistent".into());
        assert!(matches!(c.resolve(), Err(ConfigError::Ambiguous(_))));
    }

    #[test]
    fn secrets_are_redacted_in_debug_and_json() {
        let mut c = Config::defaults();
        c.master_key = Some(Secret::new("super-secret-value-that-is-long-enough"));
        c.database_url = Some(Secret::new("postgres://u:hunter2@db/x"));
        let json = serde_json::to_string(&c).unwrap();
        let debug = format!("{c:?}");
        for out in [json, debug] {
            assert!(!out.contains("super-secret"), "{out}");
            assert!(!out.contains("hunter2"), "{out}");
        }
    }

    #[test]
    fn an_open_api_beyond_loopback_must_be_asked_for() {
        let mut c = Config::defaults();
        assert!(c.check_exposure().is_ok(), "loopback needs nothing");
        c.listen = "0.0.0.0:8000".parse().unwrap();
        let err = c.check_exposure().unwrap_err();
        assert!(
            err.to_string().contains("NOTES_ALLOW_UNAUTHENTICATED"),
            "{err}"
        );
        c.listen = "[::]:8000".parse().unwrap();
        assert!(c.check_exposure().is_err());
        c.allow_unauthenticated = true;
        assert!(c.check_exposure().is_ok());
        c.allow_unauthenticated = false;
        c.master_key = Some(Secret::new("k".repeat(40)));
        assert!(
            c.requires_keys(),
            "a master key is enforced in development too"
        );
        assert!(c.check_exposure().is_ok());
    }

    #[test]
    fn backup_destinations_are_limited_to_configured_prefixes() {
        let mut c = Config::defaults();
        c.backup_to = Some("s3://backups/notes".into());
        assert!(c.check_backup_destination("s3://backups/notes").is_ok());
        assert!(
            c.check_backup_destination("s3://backups/notes/weekly")
                .is_ok()
        );
        for bad in [
            "file:///tmp",
            "/tmp/x",
            "s3://backups/notes-evil",
            "s3://backups/notes/../other",
            "s3://other/notes",
        ] {
            assert!(c.check_backup_destination(bad).is_err(), "{bad}");
        }
        c.backup_destinations = vec!["/var/backups/".into(), "s3://dr/site".into()];
        assert!(c.check_backup_destination("/var/backups/nightly").is_ok());
        assert!(c.check_backup_destination("file:///var/backups").is_ok());
        assert!(c.check_backup_destination("s3://dr/site/x").is_ok());
        assert!(
            c.check_backup_destination("s3://backups/notes").is_err(),
            "the list replaces the default"
        );
    }

    #[test]
    fn the_public_url_must_name_a_host() {
        let mut c = Config::defaults();
        c.public_url = Some("https://Notes.Example.com:8443/base".into());
        assert_eq!(
            c.clone().resolve().unwrap().public_host().as_deref(),
            Some("notes.example.com")
        );
        for bad in [
            "notes.example.com",
            "ftp://notes.example.com",
            "https://",
            "/notes",
        ] {
            c.public_url = Some(bad.into());
            let err = c.clone().resolve().unwrap_err();
            assert!(err.to_string().contains("NOTES_PUBLIC_URL"), "{bad}: {err}");
        }
    }

    #[test]
    fn default_database_is_sqlite_under_data_dir() {
        let c = Config::defaults().resolve().unwrap();
        assert_eq!(c.database_url(), "sqlite://./data/notes.db");
        assert_eq!(c.listen.to_string(), "127.0.0.1:8000");
    }
}
