//! HTTP-level tests of the whole app (one binary, so one link).

mod admin;
mod attachments;
mod auth;
mod changes;
mod common;
mod export;
mod hostile;
mod import;
mod index;
mod ingest;
mod jobs;
mod notes;
mod ops;
mod revisions;
mod search;
mod shutdown;
#[path = "../support/mod.rs"]
mod support;
mod trash;
mod webhook_deliveries;
mod webhooks;
mod workers;
