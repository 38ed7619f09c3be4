//! notes-api: a self-hostable notes and documents service.
//!
//! The modules form layers; each uses only the ones below it, and
//! `docs/architecture.md` draws them (a test, `tests/architecture.rs`,
//! keeps the code to that picture):
//!
//! - `config` (settings as data) and `text` (query language, tokenizer,
//!   snippets) are leaves;
//! - `domain` holds the rules of notes, keys, attachments, batches;
//! - `store` (the database), `blobs` (objects) and `queue` (jobs) persist,
//!   each behind one trait with one module per backend;
//! - `index` is the search index derived from the store, `search` the
//!   search use-case over it, `backup` snapshots of store and blobs;
//! - `webhooks` sends one signed delivery where the address policy allows;
//! - `jobs` runs the queue's jobs on a `jobs::Context`;
//! - `http` is the thin HTTP edge; `server` wires a process together and
//!   `cli` is the command line.

pub mod alloc;
pub mod backup;
pub mod blobs;
pub mod cli;
pub mod config;
pub mod dataset;
pub mod domain;
pub mod export;
pub mod figures;
pub mod healthcheck;
pub mod http;
pub mod import;
pub mod index;
pub mod jobs;
pub mod progress;
pub mod queue;
pub mod search;
pub mod server;
pub mod service;
pub mod store;
pub mod telemetry;
pub mod text;
pub mod webhooks;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Set at build time (build.rs): `NOTES_GIT_SHA`, else `git rev-parse`, else "unknown".
pub const GIT_SHA: &str = env!("NOTES_GIT_SHA");
