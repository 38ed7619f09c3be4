//! notes-api: a self-hostable notes and documents service.
//!
//! `domain` holds the rules, `store` the persistence behind one trait,
//! `search` the query language and snippets, `index` the search index
//! derived from the store, `http` the thin HTTP edge.

pub mod backup;
pub mod blobs;
pub mod cli;
pub mod config;
pub mod domain;
pub mod error;
pub mod healthcheck;
pub mod http;
pub mod index;
pub mod jobs;
pub mod search;
pub mod server;
pub mod store;
pub mod telemetry;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Set at build time (build.rs): `NOTES_GIT_SHA`, else `git rev-parse`, else "unknown".
pub const GIT_SHA: &str = env!("NOTES_GIT_SHA");
