//! The settings as resolved: every default filled in, every secret read,
//! every rule that spans settings checked, durations as durations. Each
//! layer takes its own section, so no code below `cli` re-derives a default.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use super::{
    error::{ConfigError, MIN_MASTER_KEY_BYTES},
    input::{Config, Environment, LogFormat},
    secret::{self, Secret},
};

#[derive(Debug, Clone)]
pub struct Settings {
    pub server: Server,
    pub database: Database,
    pub storage: Storage,
    pub index: Index,
    pub jobs: Jobs,
    pub limits: Limits,
    pub admin: Admin,
    pub webhooks: Webhooks,
    pub telemetry: Telemetry,
    /// What was given, with the defaults and secret files filled in: what
    /// `notes-api config` prints, key by key under the names operators set.
    pub(super) given: Config,
}

#[derive(Debug, Clone)]
pub struct Server {
    pub env: Environment,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub master_key: Option<Secret>,
    pub allow_unauthenticated: bool,
    /// The host of NOTES_PUBLIC_URL, lowercase.
    pub public_host: Option<String>,
    pub cors_origins: Vec<String>,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub read_only: bool,
    pub migrate_on_start: bool,
    pub shutdown_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct Database {
    pub url: Secret,
    pub max_connections: u32,
    pub connect_timeout: Duration,
    pub statement_timeout: Duration,
    /// A read-only process opens a dataset immutable.
    pub read_only: bool,
}

#[derive(Debug, Clone)]
pub struct Storage {
    /// `file://DIR` or `s3://BUCKET`.
    pub url: String,
    pub s3: S3,
    pub max_upload_bytes: u64,
    pub extract_max_bytes: u64,
    /// Where the `backup` job writes by default.
    pub backup_to: String,
    /// Where a `backup` job submitted through the API may write.
    pub backup_destinations: Vec<String>,
    /// Complete snapshots kept per destination; `None` keeps them all.
    pub backup_keep: Option<usize>,
}

/// How to reach an S3-compatible server; what is unset comes from the
/// `AWS_*` environment, as the SDKs do.
#[derive(Debug, Clone)]
pub struct S3 {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub path_style: bool,
    pub access_key_id: Option<Secret>,
    pub secret_access_key: Option<Secret>,
}

#[derive(Debug, Clone)]
pub struct Index {
    pub dir: PathBuf,
    pub memory_mb: u32,
}

#[derive(Debug, Clone)]
pub struct Jobs {
    pub queue_url: Option<Secret>,
    pub workers: usize,
    pub max_queued_per_key: u32,
    pub max_attempts: u32,
    pub lease: Duration,
    pub backoff: Duration,
    pub poll: Duration,
    pub retention: Duration,
    pub purge_grace: Duration,
    /// Revisions kept per note.
    pub revisions_keep: u32,
    /// How long a revision is kept; `None`: for good.
    pub revisions_max_age: Option<Duration>,
    /// How long a note stays in the trash; `None`: until it is emptied.
    pub trash_retention: Option<Duration>,
    /// How long the change feed keeps its events; `None`: for good.
    pub changes_retention: Option<Duration>,
    /// NOTES_SCHEDULE as given; `cli` parses it before anything starts.
    pub schedule: String,
    pub schedule_grace: Duration,
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_ingest_bytes: u64,
    pub max_ingest_notes: u64,
    pub import_max_bytes: u64,
    pub import_max_files: u64,
    pub request_timeout: Duration,
    pub ingest_timeout: Duration,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: u64,
    /// Requests per second per client; 0 is no limit.
    pub rate_limit: u32,
    pub rate_burst: u32,
    pub max_ingests: usize,
    pub max_heavy_requests: usize,
    pub max_uploads: usize,
    pub max_exports: usize,
    /// `usize::MAX` when off.
    pub max_uploads_per_client: usize,
    pub min_body_rate: u64,
    pub max_streams: usize,
    pub max_streams_per_key: usize,
}

#[derive(Debug, Clone)]
pub struct Admin {
    pub secure_cookie: bool,
    pub session_idle: Duration,
}

#[derive(Debug, Clone)]
pub struct Webhooks {
    /// What seals signing secrets: NOTES_SECRET_KEY, else the master key,
    /// else (development without keys) a fixed development key.
    pub secret_key: Secret,
    pub secret_key_previous: Option<Secret>,
    /// Whether `secret_key` is the development key (said at start-up).
    pub development_key: bool,
    pub allow_networks: Vec<ipnet::IpNet>,
    /// Production: `http://` targets only inside the allowed networks.
    pub require_https: bool,
    pub retry_schedule: Vec<Duration>,
    pub disable_after: Duration,
    pub retention: Duration,
}

#[derive(Debug, Clone)]
pub struct Telemetry {
    pub log: String,
    pub log_format: LogFormat,
    pub sentry_dsn: Option<Secret>,
    /// What error reports are filed under: NOTES_SENTRY_ENVIRONMENT, else the mode.
    pub sentry_environment: String,
    /// Between two progress lines in a log.
    pub progress_every: Duration,
}

/// Requests per second per client in production unless NOTES_RATE_LIMIT
/// says otherwise: far above what a person or a well-behaved integration
/// sends, low enough that one client cannot take a pod's capacity alone.
pub const DEFAULT_RATE_LIMIT: u32 = 100;

/// Uploads and ingests one client may run at once in production unless
/// NOTES_MAX_UPLOADS_PER_CLIENT says otherwise.
const DEFAULT_UPLOADS_PER_CLIENT: usize = 2;

impl Config {
    /// Reads `*_FILE` secrets, fills in the defaults that depend on other
    /// settings and checks the rules that span several. Call once at
    /// start-up; the result is what the process runs with.
    pub fn resolve(mut self) -> Result<Settings, ConfigError> {
        let s = &mut self;
        s.server.master_key = secret::resolve(
            "NOTES_MASTER_KEY",
            s.server.master_key.take(),
            s.server.master_key_file.as_deref(),
        )?;
        s.database.database_url = secret::resolve(
            "NOTES_DATABASE_URL",
            s.database.database_url.take(),
            s.database.database_url_file.as_deref(),
        )?;
        s.storage.s3_access_key_id = secret::resolve(
            "NOTES_S3_ACCESS_KEY_ID",
            s.storage.s3_access_key_id.take(),
            s.storage.s3_access_key_id_file.as_deref(),
        )?;
        s.storage.s3_secret_access_key = secret::resolve(
            "NOTES_S3_SECRET_ACCESS_KEY",
            s.storage.s3_secret_access_key.take(),
            s.storage.s3_secret_access_key_file.as_deref(),
        )?;
        s.jobs.queue_url = secret::resolve(
            "NOTES_QUEUE_URL",
            s.jobs.queue_url.take(),
            s.jobs.queue_url_file.as_deref(),
        )?;
        s.webhooks.secret_key = secret::resolve(
            "NOTES_SECRET_KEY",
            s.webhooks.secret_key.take(),
            s.webhooks.secret_key_file.as_deref(),
        )?;
        s.webhooks.secret_key_previous = secret::resolve(
            "NOTES_SECRET_KEY_PREVIOUS",
            s.webhooks.secret_key_previous.take(),
            s.webhooks.secret_key_previous_file.as_deref(),
        )?;
        s.telemetry.sentry_dsn = secret::resolve(
            "NOTES_SENTRY_DSN",
            s.telemetry.sentry_dsn.take(),
            s.telemetry.sentry_dsn_file.as_deref(),
        )?;
        Settings::from_given(self)
    }
}

impl Settings {
    /// Fills in what depends on other settings and checks what spans them;
    /// `given` has its secrets read already.
    pub(super) fn from_given(mut given: Config) -> Result<Self, ConfigError> {
        let production = given.server.env == Environment::Production;
        let data_dir = given.server.data_dir.clone();
        let storage_url = given
            .storage
            .storage_url
            .get_or_insert_with(|| format!("file://{}", data_dir.join("blobs").display()))
            .clone();
        let index_dir = given
            .index
            .index_dir
            .get_or_insert_with(|| data_dir.join("index"))
            .clone();
        let database_url = given
            .database
            .database_url
            .get_or_insert_with(|| {
                Secret::new(format!("sqlite://{}", data_dir.join("notes.db").display()))
            })
            .clone();
        let (server, database, storage, index, jobs, limits, admin, telemetry) = (
            &given.server,
            &given.database,
            &given.storage,
            &given.index,
            &given.jobs,
            &given.limits,
            &given.admin,
            &given.telemetry,
        );
        let webhooks = webhooks(&given, production)?;
        if index.index_memory_mb < 15 {
            return Err(ConfigError::Invalid(
                "NOTES_INDEX_MEMORY_MB",
                "must be at least 15".into(),
            ));
        }
        if let Some(key) = &server.master_key {
            let len = key.expose().len();
            if len < MIN_MASTER_KEY_BYTES {
                return Err(ConfigError::ShortMasterKey(len));
            }
        } else if production {
            return Err(ConfigError::MissingMasterKey);
        }
        if limits.request_timeout == 0 || limits.ingest_timeout == 0 {
            return Err(ConfigError::Invalid(
                "NOTES_REQUEST_TIMEOUT / NOTES_INGEST_TIMEOUT",
                "must be at least 1 second".into(),
            ));
        }
        let public_host = match &server.public_url {
            None => None,
            Some(url) => Some(public_host(url).ok_or_else(|| {
                ConfigError::Invalid(
                    "NOTES_PUBLIC_URL",
                    format!("{url:?} is not an http:// or https:// URL with a host"),
                )
            })?),
        };
        for origin in &server.cors_origins {
            if origin.parse::<axum::http::HeaderValue>().is_err() || !origin.contains("://") {
                return Err(ConfigError::Invalid("NOTES_CORS_ORIGINS", origin.clone()));
            }
        }
        let rate_limit =
            limits
                .rate_limit
                .unwrap_or(if production { DEFAULT_RATE_LIMIT } else { 0 });
        let backup_to = match (&storage.backup_to, storage_url.strip_prefix("s3://")) {
            (Some(to), _) => to.clone(),
            (None, Some(bucket)) => format!("s3://{}/backups", bucket.trim_end_matches('/')),
            (None, None) => format!("file://{}", data_dir.join("backups").display()),
        };
        Ok(Self {
            server: Server {
                env: server.env,
                listen: server.listen,
                data_dir: data_dir.clone(),
                master_key: server.master_key.clone(),
                allow_unauthenticated: server.allow_unauthenticated,
                public_host,
                cors_origins: server.cors_origins.clone(),
                trusted_proxies: server.trusted_proxies.clone(),
                read_only: server.read_only,
                migrate_on_start: server.migrate_on_start,
                shutdown_timeout: Duration::from_secs(server.shutdown_timeout),
            },
            database: Database {
                url: database_url,
                max_connections: database.db_max_connections,
                connect_timeout: Duration::from_secs(database.db_connect_timeout),
                statement_timeout: Duration::from_secs(database.db_statement_timeout),
                read_only: server.read_only,
            },
            storage: Storage {
                url: storage_url,
                s3: S3 {
                    endpoint: storage.s3_endpoint.clone(),
                    region: storage.s3_region.clone(),
                    path_style: storage.s3_path_style,
                    access_key_id: storage.s3_access_key_id.clone(),
                    secret_access_key: storage.s3_secret_access_key.clone(),
                },
                max_upload_bytes: storage.max_upload_bytes,
                extract_max_bytes: storage.extract_max_bytes,
                backup_destinations: if storage.backup_destinations.is_empty() {
                    vec![backup_to.clone()]
                } else {
                    storage.backup_destinations.clone()
                },
                backup_to,
                backup_keep: (storage.backup_keep > 0).then_some(storage.backup_keep as usize),
            },
            index: Index {
                dir: index_dir,
                memory_mb: index.index_memory_mb,
            },
            jobs: Jobs {
                queue_url: jobs.queue_url.clone(),
                workers: jobs.workers,
                max_queued_per_key: jobs.max_queued_jobs_per_key,
                max_attempts: jobs.job_max_attempts,
                lease: Duration::from_secs(jobs.job_lease),
                backoff: Duration::from_millis(jobs.job_backoff_ms),
                poll: Duration::from_millis(jobs.job_poll_ms),
                retention: Duration::from_secs(jobs.job_retention_hours * 3600),
                revisions_keep: jobs.revisions_keep,
                revisions_max_age: days(jobs.revisions_max_days),
                trash_retention: days(jobs.trash_retention_days),
                changes_retention: days(jobs.changes_retention_days),
                purge_grace: Duration::from_secs(jobs.purge_grace),
                schedule: jobs.schedule.clone(),
                schedule_grace: Duration::from_secs(jobs.schedule_grace),
            },
            limits: Limits {
                max_ingest_bytes: limits.max_ingest_bytes,
                max_ingest_notes: limits.max_ingest_notes,
                import_max_bytes: limits.import_max_bytes,
                import_max_files: limits.import_max_files,
                request_timeout: Duration::from_secs(limits.request_timeout),
                ingest_timeout: Duration::from_secs(limits.ingest_timeout),
                header_timeout: Duration::from_secs(limits.header_timeout),
                idle_timeout: Duration::from_secs(limits.idle_timeout),
                max_connections: limits.max_connections,
                rate_limit,
                rate_burst: limits
                    .rate_burst
                    .unwrap_or_else(|| rate_limit.saturating_mul(2)),
                max_ingests: limits.max_ingests,
                max_heavy_requests: limits.max_heavy_requests,
                max_uploads: limits.max_uploads,
                max_exports: limits.max_exports,
                max_uploads_per_client: match limits.max_uploads_per_client {
                    Some(0) => usize::MAX,
                    Some(n) => n,
                    None if production => DEFAULT_UPLOADS_PER_CLIENT,
                    None => usize::MAX,
                },
                min_body_rate: limits.min_body_rate,
                max_streams: limits.max_streams as usize,
                max_streams_per_key: limits.max_streams_per_key as usize,
            },
            admin: Admin {
                secure_cookie: admin.admin_secure_cookie.unwrap_or(production),
                session_idle: Duration::from_secs(admin.admin_session_idle_minutes * 60),
            },
            webhooks,
            telemetry: Telemetry {
                log: telemetry.log.clone(),
                log_format: telemetry.log_format,
                sentry_dsn: telemetry.sentry_dsn.clone(),
                sentry_environment: telemetry
                    .sentry_environment
                    .clone()
                    .unwrap_or_else(|| format!("{:?}", server.env).to_lowercase()),
                progress_every: Duration::from_secs(telemetry.progress_every),
            },
            given,
        })
    }

    /// The settings as given, defaults and secret files filled in.
    pub fn given(&self) -> &Config {
        &self.given
    }

    /// Every secret value this process holds: what error reports scrub.
    pub fn secrets(&self) -> Vec<String> {
        [
            self.server.master_key.as_ref(),
            Some(&self.database.url),
            self.storage.s3.access_key_id.as_ref(),
            self.storage.s3.secret_access_key.as_ref(),
            self.jobs.queue_url.as_ref(),
            self.telemetry.sentry_dsn.as_ref(),
            Some(&self.webhooks.secret_key),
            self.webhooks.secret_key_previous.as_ref(),
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
}

/// The key a development server without a master key seals webhook secrets
/// with: nothing is protected then, and start-up says so.
const DEVELOPMENT_SECRET_KEY: &str = "notes-api development key: webhook secrets are not protected";

fn webhooks(given: &Config, production: bool) -> Result<Webhooks, ConfigError> {
    let w = &given.webhooks;
    for (name, key) in [
        ("NOTES_SECRET_KEY", &w.secret_key),
        ("NOTES_SECRET_KEY_PREVIOUS", &w.secret_key_previous),
    ] {
        if let Some(key) = key
            && key.expose().len() < MIN_MASTER_KEY_BYTES
        {
            return Err(ConfigError::Invalid(
                name,
                format!("must be at least {MIN_MASTER_KEY_BYTES} bytes"),
            ));
        }
    }
    let (secret_key, development_key) = match (&w.secret_key, &given.server.master_key) {
        (Some(key), _) | (None, Some(key)) => (key.clone(), false),
        (None, None) => (Secret::new(DEVELOPMENT_SECRET_KEY), true),
    };
    let retry_schedule = durations(&w.webhook_retry_schedule)
        .map_err(|e| ConfigError::Invalid("NOTES_WEBHOOK_RETRY_SCHEDULE", e))?;
    if retry_schedule.len() > 20 {
        return Err(ConfigError::Invalid(
            "NOTES_WEBHOOK_RETRY_SCHEDULE",
            "at most 20 retries".into(),
        ));
    }
    let disable_after = match durations(&w.webhook_disable_after).as_deref() {
        Ok([one]) => *one,
        _ => {
            return Err(ConfigError::Invalid(
                "NOTES_WEBHOOK_DISABLE_AFTER",
                format!(
                    "{:?} is not one duration (e.g. 3d, 12h)",
                    w.webhook_disable_after
                ),
            ));
        }
    };
    Ok(Webhooks {
        secret_key,
        secret_key_previous: w.secret_key_previous.clone(),
        development_key,
        allow_networks: w.webhook_allow_networks.clone(),
        require_https: production,
        retry_schedule,
        disable_after,
        retention: Duration::from_secs(u64::from(w.webhook_retention_days) * 86_400),
    })
}

/// `5s,5m,2h,1d`: a number and a unit (s, m, h or d) each, at most a week
/// each; empty is none.
pub fn durations(text: &str) -> Result<Vec<Duration>, String> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || format!("{part:?} is not a number and a unit (s, m, h, d)");
        let split = part
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(part.len());
        let (n, unit) = part.split_at(split);
        let n: u64 = n.parse().map_err(|_| bad())?;
        let secs = match unit {
            "s" => n,
            "m" => n.saturating_mul(60),
            "h" => n.saturating_mul(3600),
            "d" => n.saturating_mul(86_400),
            _ => return Err(bad()),
        };
        if secs > 7 * 86_400 {
            return Err(format!("{part:?} is longer than a week"));
        }
        out.push(Duration::from_secs(secs));
    }
    Ok(out)
}

impl Server {
    pub fn is_production(&self) -> bool {
        self.env == Environment::Production
    }

    /// Whether API keys are checked: whenever a master key is set, in either
    /// mode. (Production without one never gets this far.)
    pub fn requires_keys(&self) -> bool {
        self.master_key.is_some()
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
}

impl Storage {
    /// Whether a backup requested through the API may write to `to`: under
    /// one of NOTES_BACKUP_DESTINATIONS (default NOTES_BACKUP_TO), with no
    /// `..` to climb out of it.
    pub fn check_backup_destination(&self, to: &str) -> Result<(), String> {
        let url = destination_url(to);
        if url.split('/').any(|segment| segment == "..") || url.contains(['\0', '\\']) {
            return Err("must not contain '..' segments".into());
        }
        let allowed: Vec<String> = self
            .backup_destinations
            .iter()
            .map(|d| destination_url(d))
            .collect();
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

/// `n` days; 0 is "for good".
fn days(n: u32) -> Option<Duration> {
    (n > 0).then(|| Duration::from_secs(u64::from(n) * 86_400))
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
