//! Where an import reads its files: a folder, or a zip on local disk (an
//! upload is first copied from object storage to a local file: a zip is
//! read from its end, by seeking). Listing checks every entry before a
//! byte is written anywhere: a path that would escape, a link or a device
//! refuses the whole archive, and the count and the unpacked size are
//! bounded (a zip bomb). Reading is counted again as it happens, since
//! the sizes a zip declares may lie.

use std::{
    collections::HashSet,
    io::SeekFrom,
    path::{Path, PathBuf},
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, ReadBuf};
use tokio_util::compat::FuturesAsyncReadCompatExt;

use super::{error::ImportError, report::Skipped};
use crate::domain::vault_read::{EntryKind, entry_path, skip_reason};

/// One file of the vault.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Relative to the vault's root, `/`-separated, checked.
    pub path: String,
    /// As the file system or the zip's directory says.
    pub size: u64,
    loc: Loc,
}

#[derive(Debug, Clone)]
enum Loc {
    Zip(usize),
    File(PathBuf),
}

/// The limits of one import (NOTES_IMPORT_MAX_BYTES, NOTES_IMPORT_MAX_FILES).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_bytes: u64,
    pub max_files: u64,
}

/// A readable vault: its files, and those skipped while listing.
pub struct Source {
    #[allow(deprecated)]
    zip: Option<async_zip::tokio::read::fs::ZipFileReader>,
    pub entries: Vec<Entry>,
    pub skipped: Vec<Skipped>,
    /// Set once an entry unpacked to more than it declared: the declared
    /// sizes (within NOTES_IMPORT_MAX_BYTES together) bound what is read.
    lied: Arc<AtomicBool>,
    max_bytes: u64,
}

/// A file's bytes as they are read.
pub type Reader = Pin<Box<dyn AsyncRead + Send>>;

impl Source {
    /// Opens a folder, or a zip file (by its content, not its name).
    pub async fn open(path: &Path, limits: Limits) -> Result<Self, ImportError> {
        let meta = tokio::fs::metadata(path)
            .await
            .map_err(|e| ImportError::Source(format!("{}: {e}", path.display())))?;
        if meta.is_dir() {
            let root = path.to_owned();
            tokio::task::spawn_blocking(move || list_dir(&root, limits))
                .await
                .map_err(std::io::Error::other)?
        } else {
            open_zip(path, limits).await
        }
    }

    /// Reads a whole file of at most `max` bytes (a note); `Ok(None)` when
    /// it is larger.
    pub async fn read_small(
        &self,
        entry: &Entry,
        max: u64,
    ) -> Result<Option<Vec<u8>>, ImportError> {
        if entry.size > max {
            return Ok(None);
        }
        let mut reader = self.open_entry(entry).await?.take(max + 1);
        let mut out = Vec::with_capacity(entry.size as usize);
        reader
            .read_to_end(&mut out)
            .await
            .map_err(|e| self.read_error(entry, e))?;
        if out.len() as u64 > max {
            return Ok(None);
        }
        Ok(Some(out))
    }

    /// A file's bytes as a stream, counted against the import's limit.
    pub async fn open_entry(&self, entry: &Entry) -> Result<Reader, ImportError> {
        let inner: Reader = match &entry.loc {
            Loc::File(p) => Box::pin(
                tokio::fs::File::open(p)
                    .await
                    .map_err(|e| ImportError::Source(format!("{}: {e}", entry.path)))?,
            ),
            #[allow(deprecated)]
            Loc::Zip(i) => {
                let zip = self.zip.as_ref().expect("a zip entry has its zip");
                let r = zip
                    .reader_without_entry(*i)
                    .await
                    .map_err(|e| ImportError::BadZip(format!("entry {:?}: {e}", entry.path)))?;
                Box::pin(r.compat())
            }
        };
        Ok(Box::pin(Declared {
            inner,
            left: entry.size,
            lied: self.lied.clone(),
        }))
    }

    /// The entry of this path, if any.
    pub fn entry(&self, path: &str) -> Option<&Entry> {
        self.entries
            .binary_search_by(|e| e.path.as_str().cmp(path))
            .ok()
            .map(|i| &self.entries[i])
    }

    /// What a failed read means: an entry unpacked to more than it
    /// declared (a zip bomb with lying headers, which stops the import),
    /// or the file is unreadable.
    pub fn read_error(&self, entry: &Entry, e: std::io::Error) -> ImportError {
        if self.exhausted() {
            ImportError::BadZip(format!(
                "entry {:?} unpacks to more than the {} bytes it declares",
                entry.path, entry.size
            ))
        } else {
            ImportError::Source(format!("{}: {e}", entry.path))
        }
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Whether an entry unpacked to more than it declared.
    pub fn exhausted(&self) -> bool {
        self.lied.load(Ordering::Relaxed)
    }
}

fn check_totals(files: u64, bytes: u64, limits: Limits) -> Result<(), ImportError> {
    if files > limits.max_files {
        return Err(ImportError::TooManyFiles {
            limit: limits.max_files,
            found: files,
        });
    }
    if bytes > limits.max_bytes {
        return Err(ImportError::TooLarge {
            limit: limits.max_bytes,
        });
    }
    Ok(())
}

fn list_dir(root: &Path, limits: Limits) -> Result<Source, ImportError> {
    let mut entries = Vec::new();
    let mut skipped = Vec::new();
    let mut total: u64 = 0;
    let mut listed: u64 = 0;
    // A folder skipped as a whole (`.obsidian/`) is still walked, so that
    // each of its files is listed, as a zip's entries are.
    let mut stack: Vec<(PathBuf, Option<&'static str>)> = vec![(root.to_owned(), None)];
    while let Some((dir, skip)) = stack.pop() {
        let mut children: Vec<_> = std::fs::read_dir(&dir)
            .map_err(|e| ImportError::Source(format!("{}: {e}", dir.display())))?
            .collect::<Result<_, _>>()
            .map_err(|e| ImportError::Source(format!("{}: {e}", dir.display())))?;
        children.sort_by_key(|c| c.file_name());
        for child in children {
            let full = child.path();
            let rel = full.strip_prefix(root).unwrap_or(&full);
            let Some(rel) = rel
                .to_str()
                .map(|r| r.replace(std::path::MAIN_SEPARATOR, "/"))
            else {
                skipped.push(Skipped::new(
                    rel.to_string_lossy(),
                    "the file name is not valid UTF-8",
                ));
                continue;
            };
            let meta = std::fs::symlink_metadata(&full)
                .map_err(|e| ImportError::Source(format!("{rel}: {e}")))?;
            let kind = meta.file_type();
            let reason = skip.or_else(|| skip_reason(&rel));
            listed += 1;
            // The count bounds the walk itself: a folder of a million
            // files is refused before it is all listed.
            check_totals(listed, total, limits)?;
            if kind.is_dir() && !kind.is_symlink() {
                stack.push((full, reason));
                continue;
            }
            if let Some(reason) = reason {
                skipped.push(Skipped::new(rel, reason));
            } else if kind.is_symlink() {
                // A folder is the user's own: a link is skipped, never
                // followed (it may lead out of the vault).
                skipped.push(Skipped::new(rel, "symbolic link (not followed)"));
            } else if kind.is_file() {
                total += meta.len();
                check_totals(listed, total, limits)?;
                entries.push(Entry {
                    path: rel,
                    size: meta.len(),
                    loc: Loc::File(full),
                });
            } else {
                skipped.push(Skipped::new(
                    rel,
                    "not a regular file (device, pipe or socket)",
                ));
            }
        }
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    skipped.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Source {
        zip: None,
        entries,
        skipped,
        lied: Arc::default(),
        max_bytes: limits.max_bytes,
    })
}

async fn open_zip(path: &Path, limits: Limits) -> Result<Source, ImportError> {
    // The entry count is read from the end record before the central
    // directory is: async_zip holds every entry of it in memory.
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| ImportError::Source(format!("{}: {e}", path.display())))?;
    let declared = declared_entries(&mut file).await?;
    if declared > limits.max_files {
        return Err(ImportError::TooManyFiles {
            limit: limits.max_files,
            found: declared,
        });
    }
    drop(file);
    #[allow(deprecated)]
    let zip = async_zip::tokio::read::fs::ZipFileReader::new(path)
        .await
        .map_err(|e| ImportError::BadZip(e.to_string()))?;
    let mut entries = Vec::new();
    let mut skipped = Vec::new();
    let mut seen = HashSet::new();
    let mut total: u64 = 0;
    for (i, stored) in zip.file().entries().iter().enumerate() {
        let entry: &async_zip::ZipEntry = stored;
        let name = match entry.filename().as_str() {
            Ok(name) => name.to_owned(),
            Err(_) => {
                skipped.push(Skipped::new(
                    String::from_utf8_lossy(entry.filename().as_bytes()),
                    "the file name is not valid UTF-8",
                ));
                continue;
            }
        };
        let kind =
            EntryKind::from_mode(entry.unix_permissions().map(u32::from), name.ends_with('/'));
        let rel = entry_path(&name, kind)?;
        if kind == EntryKind::Dir || rel.is_empty() {
            continue;
        }
        if let Some(reason) = skip_reason(&rel) {
            skipped.push(Skipped::new(rel, reason));
            continue;
        }
        if !seen.insert(rel.clone()) {
            skipped.push(Skipped::new(rel, "a second entry of the same name"));
            continue;
        }
        total = total.saturating_add(entry.uncompressed_size());
        entries.push(Entry {
            path: rel,
            size: entry.uncompressed_size(),
            loc: Loc::Zip(i),
        });
        check_totals(entries.len() as u64, total, limits)?;
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Source {
        zip: Some(zip),
        entries,
        skipped,
        lied: Arc::default(),
        max_bytes: limits.max_bytes,
    })
}

/// The number of entries a zip's end record declares (zip64's when the
/// classic field is saturated), read from the last 64 KiB.
async fn declared_entries(file: &mut tokio::fs::File) -> Result<u64, ImportError> {
    let bad = |m: &str| ImportError::BadZip(m.to_owned());
    let len = file.metadata().await?.len();
    if len < 22 {
        return Err(bad("too short to be a zip file"));
    }
    let tail_len = len.min(22 + 65_535 + 20);
    file.seek(SeekFrom::Start(len - tail_len)).await?;
    let mut tail = vec![0; tail_len as usize];
    file.read_exact(&mut tail).await?;
    let eocd = (0..=tail.len() - 22)
        .rev()
        .find(|&i| tail[i..i + 4] == [0x50, 0x4b, 0x05, 0x06])
        .ok_or_else(|| bad("no end of central directory record: not a zip file"))?;
    let total = u64::from(u16::from_le_bytes([tail[eocd + 10], tail[eocd + 11]]));
    if total != 0xffff || eocd < 20 {
        return Ok(total);
    }
    // Zip64: the locator, 20 bytes before, points at the zip64 end record.
    let loc = eocd - 20;
    if tail[loc..loc + 4] != [0x50, 0x4b, 0x06, 0x07] {
        return Ok(total);
    }
    let offset = u64::from_le_bytes(tail[loc + 8..loc + 16].try_into().expect("8 bytes"));
    file.seek(SeekFrom::Start(offset)).await?;
    let mut rec = [0u8; 56];
    file.read_exact(&mut rec).await?;
    if rec[..4] != [0x50, 0x4b, 0x06, 0x06] {
        return Err(bad("a broken zip64 end record"));
    }
    Ok(u64::from_le_bytes(rec[32..40].try_into().expect("8 bytes")))
}

/// A reader that fails once its entry gives more bytes than it declared:
/// the declared sizes were checked against NOTES_IMPORT_MAX_BYTES
/// together, so what is unpacked stays within it whatever the headers
/// claim.
struct Declared {
    inner: Reader,
    left: u64,
    lied: Arc<AtomicBool>,
}

impl AsyncRead for Declared {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = self.inner.as_mut().poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &poll {
            let n = (buf.filled().len() - before) as u64;
            match self.left.checked_sub(n) {
                Some(left) => self.left = left,
                None => {
                    self.lied.store(true, Ordering::Relaxed);
                    return Poll::Ready(Err(std::io::Error::other(
                        "the entry unpacks to more than it declares",
                    )));
                }
            }
        }
        poll
    }
}
