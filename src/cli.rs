//! The command line: one binary, one subcommand per role.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};

use crate::{
    backup,
    blobs::Blobs,
    config::{Config, Settings, TelemetryArgs},
    domain::note::normalize_tag_filter,
    export, healthcheck, import,
    jobs::schedule::Schedule,
    progress::{
        Progress,
        display::{self, Mode},
    },
    server,
    store::{self, DynStore, PoolSettings},
    telemetry::{self, LogTo},
};

#[derive(Debug, Parser)]
#[command(name = "notes-api", version = crate::VERSION, about = "Notes, bulk ingest and full-text search")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API (the default when no subcommand is given).
    Serve(#[command(flatten)] Config),
    /// Run job workers (NOTES_WORKERS of them) and the scheduler, with
    /// /healthz, /readyz and /metrics on NOTES_LISTEN.
    Worker(#[command(flatten)] Config),
    /// Apply database migrations and exit (e.g. as a pre-deploy Job).
    Migrate {
        #[command(flatten)]
        config: Config,
        /// Apply nothing: exit 0 when every migration of this binary is
        /// applied, else fail (an init container waiting for the Job).
        #[arg(long)]
        check: bool,
        /// With --check, keep polling for up to this many seconds.
        #[arg(long, default_value_t = 0, requires = "check")]
        wait: u64,
    },
    /// Write a snapshot (database records + attachment objects) under a
    /// directory, `file://DIR` or `s3://BUCKET/PREFIX`.
    Backup {
        #[command(flatten)]
        config: Config,
        /// Destination; default NOTES_BACKUP_TO, else backups/ beside the attachments.
        #[arg(long)]
        to: Option<String>,
        /// Keep this many complete snapshots there, removing older ones
        /// once this one is complete (default NOTES_BACKUP_KEEP; 0 keeps all).
        #[arg(long, value_parser = clap::value_parser!(u32).range(0..=100_000))]
        keep: Option<u32>,
    },
    /// Restore an empty deployment from a snapshot (or the newest one under
    /// the given location). Refuses a database that already holds data.
    Restore {
        #[command(flatten)]
        config: Config,
        #[arg(long)]
        from: String,
    },
    /// Write every note outside the trash (or a tag's) as an Obsidian
    /// vault (Markdown with front matter) or NDJSON, with the attachments:
    /// to FILE.zip, or into a new or empty folder (docs/export.md).
    Export {
        #[command(flatten)]
        config: Config,
        /// A path ending in .zip (which must not exist), else a folder
        /// (new, or empty).
        #[arg(long)]
        to: PathBuf,
        /// markdown (an Obsidian vault) or ndjson (as ingest reads it).
        #[arg(long, default_value = "markdown")]
        format: export::Format,
        /// Only notes with this tag.
        #[arg(long)]
        tag: Option<String>,
    },
    /// Read a Markdown folder, an Obsidian vault or a notes-api export
    /// (a folder or a .zip) into the database; prints the report as JSON
    /// (docs/export.md). Importing the same files again changes nothing.
    Import {
        #[command(flatten)]
        config: Config,
        /// A folder, or a zip file.
        #[arg(long)]
        from: PathBuf,
        /// auto (an NDJSON export if notes.ndjson is there, else Markdown),
        /// markdown, obsidian or ndjson.
        #[arg(long, default_value = "auto")]
        format: import::Format,
        /// Add this tag to every imported note.
        #[arg(long)]
        tag: Option<String>,
        /// Also tag each note with its folder (`Projects/2024` becomes
        /// `projects.2024`); the folder is kept in metadata.path either way.
        #[arg(long)]
        folder_tags: bool,
        /// Read everything and report what would change; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Exit 0 when the local server answers /readyz with 200, else 1.
    Healthcheck {
        #[command(flatten)]
        config: Config,
        /// Path to probe.
        #[arg(long, default_value = "/readyz")]
        path: String,
        /// Seconds to wait for an answer.
        #[arg(long, default_value_t = 3)]
        timeout: u64,
    },
    /// Print the effective configuration as JSON, secrets redacted.
    Config(#[command(flatten)] Config),
    /// Read-only datasets, served with NOTES_READ_ONLY=true.
    #[command(subcommand)]
    Dataset(DatasetCommand),
}

#[derive(Debug, Subcommand)]
pub enum DatasetCommand {
    /// Build a dataset file from NDJSON with the validation of
    /// POST /api/v1/ingest, all or nothing: compact, no WAL, and renamed
    /// into place only when complete.
    Pack {
        /// One note per line, as for POST /api/v1/ingest.
        #[arg(long)]
        from: PathBuf,
        /// The dataset file to create; it must not exist.
        #[arg(long)]
        to: PathBuf,
        /// A read-only API key to pack into the dataset (repeatable), so
        /// its readers need no master key. Each key's secret is printed
        /// once, in the report.
        #[arg(long = "key", value_name = "NAME")]
        keys: Vec<String>,
        #[command(flatten)]
        telemetry: TelemetryArgs,
    },
}

impl Cli {
    pub async fn run(self) -> ExitCode {
        let command =
            self.command
                .unwrap_or_else(|| match Cli::parse_from(["notes-api", "serve"]).command {
                    Some(cmd) => cmd,
                    None => unreachable!("serve was given"),
                });
        match command {
            Command::Serve(config) => with_config(config, LogTo::Stdout, server::run_api).await,
            Command::Worker(config) => with_config(config, LogTo::Stdout, server::run_worker).await,
            Command::Migrate {
                config,
                check: false,
                ..
            } => with_config(config, LogTo::Stderr, migrate).await,
            Command::Migrate {
                config,
                check: true,
                wait,
            } => {
                with_config(config, LogTo::Stderr, |config| async move {
                    wait_for_schema(config, Duration::from_secs(wait)).await
                })
                .await
            }
            Command::Backup {
                mut config,
                to,
                keep,
            } => {
                if let Some(keep) = keep {
                    config.storage.backup_keep = keep;
                }
                with_config(config, LogTo::Stderr, |config| async move {
                    let to = to.unwrap_or_else(|| config.storage.backup_to.clone());
                    let (store, blobs) = open_data(&config).await?;
                    let progress = Progress::new("backup");
                    let created = showing(
                        &progress,
                        config.telemetry.progress_every,
                        backup::create(target(&store, &blobs, &config, &progress), &to),
                    )
                    .await;
                    store.close().await;
                    let created = created?;
                    println!("{}", serde_json::to_string_pretty(&created.summary(&to))?);
                    Ok(())
                })
                .await
            }
            Command::Restore { config, from } => {
                with_config(config, LogTo::Stderr, |config| async move {
                    let (store, blobs) = open_data(&config).await?;
                    let progress = Progress::new("restore");
                    let manifest = showing(
                        &progress,
                        config.telemetry.progress_every,
                        backup::restore(target(&store, &blobs, &config, &progress), &from),
                    )
                    .await;
                    store.close().await;
                    let manifest = manifest?;
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&manifest.summary(&from))?
                    );
                    Ok(())
                })
                .await
            }
            Command::Export {
                config,
                to,
                format,
                tag,
            } => {
                with_config(config, LogTo::Stderr, |config| async move {
                    let tag = tag_option(tag.as_deref())?;
                    let (store, blobs) = open_data(&config).await?;
                    let options = export::Options {
                        format,
                        tag,
                        spool_dir: config.server.data_dir.join("spool"),
                    };
                    let written = match export::Export::begin(store.clone(), blobs, options).await {
                        Ok(export) => {
                            let progress = export.progress().clone();
                            showing(
                                &progress,
                                config.telemetry.progress_every,
                                export::write_to_path(export, &to),
                            )
                            .await
                        }
                        Err(e) => Err(e),
                    };
                    store.close().await;
                    let summary = written?;
                    println!("{}", serde_json::to_string_pretty(&summary)?);
                    Ok(())
                })
                .await
            }
            Command::Import {
                config,
                from,
                format,
                tag,
                folder_tags,
                dry_run,
            } => {
                with_config(config, LogTo::Stderr, |config| async move {
                    let tag = tag_option(tag.as_deref())?;
                    let limits = import::Limits {
                        max_bytes: config.limits.import_max_bytes,
                        max_files: config.limits.import_max_files,
                    };
                    let source = import::Source::open(&from, limits).await?;
                    let (store, blobs) = open_data(&config).await?;
                    let progress = Progress::new("import");
                    let run = import::Import {
                        store: store.clone(),
                        blobs,
                        options: import::Options {
                            format,
                            tag,
                            folder_tags,
                            dry_run,
                            max_upload_bytes: config.storage.max_upload_bytes,
                        },
                        // The next `reindex` queues the text extraction of
                        // what a command-line import stored.
                        after_attachment: None,
                        // The report is printed at the end; meanwhile the
                        // count is shown.
                        report: tokio::sync::watch::channel(import::Report::default()).0,
                        progress: progress.clone(),
                    };
                    let report =
                        showing(&progress, config.telemetry.progress_every, run.run(&source)).await;
                    store.close().await;
                    let report = report?;
                    println!("{}", serde_json::to_string_pretty(&report)?);
                    Ok(())
                })
                .await
            }
            Command::Dataset(DatasetCommand::Pack {
                from,
                to,
                keys,
                telemetry,
            }) => {
                telemetry::init_logging_unresolved(&telemetry, LogTo::Stderr);
                let progress = Progress::new("dataset pack");
                let every = Duration::from_secs(telemetry.progress_every);
                showing(&progress, every, pack(&from, &to, &keys, &progress)).await
            }
            Command::Config(config) => match check(config) {
                Ok(settings) => {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(settings.given()).expect("config serializes")
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e),
            },
            Command::Healthcheck {
                config,
                path,
                timeout,
            } => {
                let addr = healthcheck::probe_addr(config.server.listen);
                match healthcheck::check(addr, &path, Duration::from_secs(timeout)).await {
                    Ok(200) => ExitCode::SUCCESS,
                    Ok(status) => {
                        eprintln!("{path} answered {status}");
                        ExitCode::FAILURE
                    }
                    Err(reason) => {
                        eprintln!("{reason}");
                        ExitCode::FAILURE
                    }
                }
            }
        }
    }
}

async fn with_config<F, Fut>(config: Config, log_to: LogTo, run: F) -> ExitCode
where
    F: FnOnce(Settings) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let telemetry = config.telemetry.clone();
    let settings = match check(config) {
        Ok(settings) => settings,
        Err(e) => {
            telemetry::init_logging_unresolved(&telemetry, log_to);
            return fail(&e);
        }
    };
    telemetry::init_logging(&settings, log_to);
    let code = match run(settings).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&*e),
    };
    telemetry::flush_errors();
    code
}

/// The settings every subcommand starts from: resolved, and the schedule
/// parsed, so a bad NOTES_SCHEDULE stops any process before it starts.
fn check(config: Config) -> Result<Settings, String> {
    let settings = config.resolve().map_err(|e| e.to_string())?;
    Schedule::parse(&settings.jobs.schedule)
        .map_err(|e| format!("invalid value for NOTES_SCHEDULE: {e}"))?;
    Ok(settings)
}

fn fail(err: &dyn std::fmt::Display) -> ExitCode {
    // Logged once, where operators look; the exit code tells the supervisor.
    tracing::error!("{err}");
    eprintln!("notes-api: {err}");
    ExitCode::from(2)
}

/// Runs `work` while `progress` is shown on stderr: a bar on a
/// terminal, else a log line every NOTES_PROGRESS_EVERY.
async fn showing<T>(progress: &Progress, every: Duration, work: impl Future<Output = T>) -> T {
    let shown = display::show(progress, Mode::detect(every));
    let out = work.await;
    shown.finish().await;
    out
}

/// What a backup or a restore needs, and nothing more: the database
/// (migrated when configured, as a serving process would) and the blobs.
async fn open_data(settings: &Settings) -> anyhow::Result<(DynStore, Blobs)> {
    let store = connect(settings).await?;
    if settings.server.migrate_on_start && !settings.server.read_only {
        store.migrate().await?;
    }
    Ok((store, Blobs::open(&settings.storage)?))
}

async fn connect(settings: &Settings) -> Result<DynStore, store::StoreError> {
    let db = &settings.database;
    store::connect(db.url.expose(), &PoolSettings::new(db)).await
}

fn target<'a>(
    store: &'a DynStore,
    blobs: &'a Blobs,
    settings: &'a Settings,
    progress: &Progress,
) -> backup::Target<'a> {
    backup::Target {
        store,
        blobs,
        storage: &settings.storage,
        progress: Some(progress.clone()),
    }
}

async fn pack(
    from: &std::path::Path,
    to: &std::path::Path,
    keys: &[String],
    progress: &Progress,
) -> ExitCode {
    match crate::dataset::pack(from, to, keys, progress).await {
        Ok(report) => {
            println!(
                "{}",
                serde_json::to_string(&report).expect("report serializes")
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            if let crate::dataset::PackError::Invalid { errors, .. } = &err {
                for e in errors {
                    let line = e.line.map(|l| format!("line {l}: ")).unwrap_or_default();
                    let field = if e.field.is_empty() {
                        String::new()
                    } else {
                        format!("{}: ", e.field)
                    };
                    eprintln!("notes-api: {line}{field}{}", e.message);
                }
            }
            fail(&err)
        }
    }
}

/// Polls until the schema has every migration of this binary, or `wait`
/// has passed. The database may not even accept connections yet.
async fn wait_for_schema(settings: Settings, wait: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let outcome = match connect(&settings).await {
            Ok(store) => {
                let outcome = store::require_current(store.as_ref()).await;
                store.close().await;
                outcome.map_err(anyhow::Error::from)
            }
            Err(err) => Err(err.into()),
        };
        match outcome {
            Ok(()) => {
                tracing::info!("the database schema is current");
                return Ok(());
            }
            Err(err) if tokio::time::Instant::now() >= deadline => return Err(err),
            Err(err) => tracing::info!("waiting for migrations: {err}"),
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

async fn migrate(settings: Settings) -> anyhow::Result<()> {
    let store = connect(&settings).await?;
    store.migrate().await?;
    store.close().await;
    tracing::info!(backend = store.backend(), "migrations applied");
    Ok(())
}

/// `--tag`, normalized by the tag rules, or why it breaks them.
fn tag_option(tag: Option<&str>) -> anyhow::Result<Option<String>> {
    tag.map(normalize_tag_filter)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--tag: {}", e.message))
}
