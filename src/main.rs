use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    notes_api::cli::Cli::parse().run().await
}
