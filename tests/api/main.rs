//! HTTP-level tests of the whole app (one binary, so one link).

mod attachments;
mod auth;
mod common;
mod ingest;
mod notes;
mod ops;
mod search;
mod shutdown;
