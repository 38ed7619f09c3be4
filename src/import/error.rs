//! Why a whole import stops (a file's own problem is only listed).

use crate::{blobs::BlobError, domain::vault_read::UnsafePath, store::StoreError};

/// The NDJSON format's file, named in an error.
pub const NOTES_NDJSON: &str = "notes.ndjson";

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Unsafe(#[from] UnsafePath),
    #[error("the archive holds {found} files, over the limit of {limit} (NOTES_IMPORT_MAX_FILES)")]
    TooManyFiles { limit: u64, found: u64 },
    #[error("the archive unpacks to more than {limit} bytes (NOTES_IMPORT_MAX_BYTES)")]
    TooLarge { limit: u64 },
    #[error("not a readable zip file: {0}")]
    BadZip(String),
    #[error("cannot read the import: {0}")]
    Source(String),
    #[error("format ndjson needs a {NOTES_NDJSON} at the archive's root")]
    NoNdjson,
    #[error("reading the import failed: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("storing an attachment failed: {0}")]
    Blob(#[source] BlobError),
}

impl ImportError {
    /// The input is at fault (a client's 4xx), not the service.
    pub fn is_input(&self) -> bool {
        matches!(
            self,
            Self::Unsafe(_)
                | Self::TooManyFiles { .. }
                | Self::TooLarge { .. }
                | Self::BadZip(_)
                | Self::NoNdjson
        )
    }
}
