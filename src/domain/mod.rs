//! The domain: what notes, keys and batches are and the rules they follow,
//! independent of HTTP and of the database.

pub mod attachment;
pub mod bounded;
pub mod change;
pub mod delivery;
pub mod ingest;
pub mod json_shape;
pub mod keys;
pub mod note;
pub mod revision;
pub mod timestamp;
pub mod unicode;
pub mod validation;
pub mod vault;
pub mod vault_read;
pub mod webhook;
