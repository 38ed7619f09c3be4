//! Read-only datasets: building one from NDJSON (`notes-api dataset pack`)
//! and checking one before it is served.
//!
//! A dataset is an ordinary notes database, built once, compacted, and
//! served by any number of replicas with `NOTES_READ_ONLY=true`.

use std::{
    io::{BufRead, BufReader, Read},
    path::{Path, PathBuf},
};

use serde::Serialize;

use crate::{
    domain::{
        ingest::{BatchError, Format, MAX_REPORTED_ERRORS, read_batch, skip_line},
        keys::{CreatedKey, IssuedKey, KeyRequest, Scope},
        note::MAX_NOTE_JSON_BYTES,
        validation::FieldError,
    },
    progress::{Progress, Unit},
    store::{self, Keys, Maintenance, NewKey, Notes, Store, StoreError, dataset},
};

/// Lines are validated and written this many bytes at a time, so packing a
/// file of any size holds one chunk of notes in memory.
const CHUNK_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{total} invalid line(s); nothing was written")]
    Invalid {
        errors: Vec<FieldError>,
        total: usize,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Serialize)]
pub struct PackReport {
    pub notes: u64,
    pub bytes: u64,
    /// Read-only keys packed into the dataset, with their secrets: shown
    /// this once.
    pub keys: Vec<CreatedKey>,
}

/// Builds the dataset `to` from the NDJSON file `from` with the validation
/// of `POST /api/v1/ingest`, all or nothing: it is written beside `to` and
/// renamed into place only when complete, so `to` is never half a dataset
/// (and a replica watching it never sees one).
///
/// Each of `key_names` becomes a read-only API key inside the dataset, so
/// that its readers need no master key: replicas check keys against the
/// dataset they serve, and a new file brings its own keys.
///
/// `progress` counts the input's bytes read.
pub async fn pack(
    from: &Path,
    to: &Path,
    key_names: &[String],
    progress: &Progress,
) -> Result<PackReport, PackError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| PackError::Io { path, source }
    };
    if to.exists() {
        return Err(io(to)(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "already exists (pack to a new file, then rename it over the old one)",
        )));
    }
    let keys = read_keys(key_names)?;
    let input = std::fs::File::open(from).map_err(io(from))?;
    let size = input.metadata().map_err(io(from))?.len();
    let partial = partial_path(to);
    let _ = std::fs::remove_file(&partial);
    progress.stage("reading notes", Unit::Bytes, Some(size));
    let outcome = fill(BufReader::new(input), &partial, from, &keys, progress).await;
    let notes = match outcome {
        Ok(notes) => notes,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    std::fs::File::open(&partial)
        .and_then(|f| f.sync_all())
        .map_err(io(&partial))?;
    std::fs::rename(&partial, to).map_err(io(to))?;
    let bytes = std::fs::metadata(to).map_err(io(to))?.len();
    Ok(PackReport {
        notes,
        bytes,
        keys: keys.into_iter().map(|k| k.created).collect(),
    })
}

/// A read-only key per name, checked like a key created through the API;
/// a bad or repeated name refuses the pack before anything is read.
fn read_keys(names: &[String]) -> Result<Vec<IssuedKey>, PackError> {
    let mut errors = Vec::new();
    let mut keys = Vec::new();
    for (i, name) in names.iter().enumerate() {
        if names[..i].contains(name) {
            errors.push(FieldError::new("--key", format!("{name:?} is given twice")));
            continue;
        }
        let request = KeyRequest {
            name: name.clone(),
            scopes: vec![Scope::Read],
        };
        match request.issue() {
            Ok(key) => keys.push(key),
            Err(found) => errors.extend(found.into_iter().map(|mut e| {
                e.field = "--key".into();
                e
            })),
        }
    }
    if errors.is_empty() {
        Ok(keys)
    } else {
        Err(PackError::Invalid {
            total: errors.len(),
            errors,
        })
    }
}

fn partial_path(to: &Path) -> PathBuf {
    let mut name = to.file_name().unwrap_or_default().to_owned();
    name.push(format!(".partial-{}", std::process::id()));
    to.with_file_name(name)
}

async fn fill<R: BufRead>(
    mut input: R,
    partial: &Path,
    from: &Path,
    keys: &[IssuedKey],
    progress: &Progress,
) -> Result<u64, PackError> {
    let db = dataset::create(partial).await?;
    let mut errors = Vec::new();
    let mut total = 0;
    let mut notes = 0;
    let mut line = 0;
    let mut chunk = Vec::new();
    loop {
        let first = line + 1;
        chunk.clear();
        let more =
            read_chunk(&mut input, &mut chunk, &mut line).map_err(|source| PackError::Io {
                path: from.to_owned(),
                source,
            })?;
        progress.add(chunk.len() as u64);
        match read_batch(&chunk[..], Format::Ndjson) {
            Ok(batch) if total == 0 => {
                let received = batch.notes.len() as u64;
                let counts = db.ingest(batch.notes).await?;
                notes += counts.created;
                if counts.created != received {
                    // A fresh database: anything but a creation is an
                    // external_id that an earlier chunk already used.
                    total += 1;
                    errors.push(FieldError::new(
                        "external_id",
                        format!("lines {first} to {line} repeat an external_id of an earlier line"),
                    ));
                }
            }
            Ok(_) => {}
            Err(BatchError::Invalid {
                errors: found,
                total: n,
                ..
            }) => {
                total += n;
                let room = MAX_REPORTED_ERRORS.saturating_sub(errors.len());
                errors.extend(found.into_iter().take(room).map(|mut e| {
                    e.line = e.line.map(|l| l + first - 1);
                    e
                }));
            }
            Err(BatchError::TooMany { .. }) => unreachable!("read without a note limit"),
            Err(BatchError::Io(source)) => {
                return Err(PackError::Io {
                    path: from.to_owned(),
                    source,
                });
            }
        }
        if !more {
            break;
        }
    }
    if total > 0 {
        db.close().await;
        return Err(PackError::Invalid { errors, total });
    }
    for key in keys {
        db.create_key(NewKey {
            key: key.created.api_key.clone(),
            hash: key.hash.clone(),
        })
        .await?;
    }
    dataset::finish(db).await?;
    Ok(notes)
}

/// Appends whole lines to `chunk` until it holds [`CHUNK_BYTES`] or the
/// input ends (false). Of a line longer than any note may be, only the
/// first bytes are kept: the ingest reader then refuses it as too long, at
/// its line number.
fn read_chunk<R: BufRead>(
    input: &mut R,
    chunk: &mut Vec<u8>,
    line: &mut usize,
) -> std::io::Result<bool> {
    let limit = MAX_NOTE_JSON_BYTES as u64 + 1;
    while chunk.len() < CHUNK_BYTES {
        let n = input.by_ref().take(limit).read_until(b'\n', chunk)?;
        if n == 0 {
            return Ok(false);
        }
        *line += 1;
        if n as u64 == limit && chunk.last() != Some(&b'\n') {
            skip_line(input)?;
            chunk.push(b'\n');
        }
    }
    Ok(true)
}

/// What a read-only process checks before it serves a dataset: the file
/// is sound and has the schema this binary reads.
pub async fn verify(db: &dyn Store) -> anyhow::Result<()> {
    db.check_integrity().await?;
    store::require_exact(db).await?;
    Ok(())
}
