//! Why settings are refused.

use std::{net::SocketAddr, path::PathBuf};

/// Minimum master-key length in production: 32 bytes is 256 bits of key
/// material when the key is random, the floor for a long-lived credential.
pub const MIN_MASTER_KEY_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "NOTES_ENV=production needs a master key: set NOTES_MASTER_KEY or NOTES_MASTER_KEY_FILE \
         (at least {MIN_MASTER_KEY_BYTES} bytes, e.g. `openssl rand -base64 48`)"
    )]
    MissingMasterKey,
    #[error("the master key is {0} bytes long; at least {MIN_MASTER_KEY_BYTES} bytes are required")]
    ShortMasterKey(usize),
    #[error("both {0} and {0}_FILE are set; set only one")]
    Ambiguous(&'static str),
    #[error("cannot read {var} from {path}: {source}")]
    SecretFile {
        var: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid value for {0}: {1}")]
    Invalid(&'static str, String),
    #[error(
        "refusing to serve the API without keys on {0}: development mode checks no key. Set \
         NOTES_MASTER_KEY (keys are then required), listen on 127.0.0.1, or set \
         NOTES_ALLOW_UNAUTHENTICATED=true to serve an open API on purpose"
    )]
    Unauthenticated(SocketAddr),
}
