//! The command line: one binary, one subcommand per role.

use std::{process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};

use crate::{config::Config, healthcheck, server, store, telemetry};

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
    /// Apply database migrations and exit (e.g. as a pre-deploy Job).
    Migrate(#[command(flatten)] Config),
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
            Command::Serve(config) => with_config(config, server::serve).await,
            Command::Migrate(config) => with_config(config, migrate).await,
            Command::Config(config) => match config.resolve() {
                Ok(config) => {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&config).expect("config serializes")
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
                let addr = healthcheck::probe_addr(config.listen);
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

async fn with_config<F, Fut>(config: Config, run: F) -> ExitCode
where
    F: FnOnce(Config) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    telemetry::init_logging(&config);
    let config = match config.resolve() {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&*e),
    }
}

fn fail(err: &dyn std::fmt::Display) -> ExitCode {
    // Logged once, where operators look; the exit code tells the supervisor.
    tracing::error!("{err}");
    eprintln!("notes-api: {err}");
    ExitCode::from(2)
}

async fn migrate(config: Config) -> anyhow::Result<()> {
    let store = store::connect(config.database_url(), &config.pool_settings()).await?;
    store.migrate().await?;
    store.close().await;
    tracing::info!(backend = store.backend(), "migrations applied");
    Ok(())
}
