//! The binary's subcommands as an operator runs them, by subject.

mod backup;
mod common;
mod datasets;
mod durability;
mod errors;
mod export;
mod hostile;
mod import;
mod progress;
mod startup;
#[path = "../support/mod.rs"]
mod support;
mod uploads;
