//! Where an export's files go: a zip written as it goes (to a response
//! body or a file), or a folder.

use std::{
    path::{Path, PathBuf},
    time::SystemTime,
};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Datelike, Utc};
use futures::{StreamExt, stream::BoxStream};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::{Export, ExportError, Summary, zip::ZipWriter};

/// The files of an export, one after the other. Paths are relative, with
/// `/` between components each of which `domain::vault` made safe.
#[async_trait]
pub trait Sink: Send {
    /// A file whose bytes are at hand; `compress` when they are text.
    async fn file(
        &mut self,
        path: &str,
        modified: DateTime<Utc>,
        compress: bool,
        data: Vec<u8>,
    ) -> Result<(), ExportError>;
    /// A file streamed through; returns its size. An error from `body` ends
    /// the export with that error.
    async fn stream(
        &mut self,
        path: &str,
        modified: DateTime<Utc>,
        compress: bool,
        body: BoxStream<'static, Result<Bytes, ExportError>>,
    ) -> Result<u64, ExportError>;
    /// Completes the output (a zip's central directory).
    async fn finish(&mut self) -> Result<(), ExportError>;
}

/// A zip written front to back onto `W`, never seeking, its directory
/// spooled to a file until the end ([`super::zip`]).
pub struct ZipSink<W: AsyncWrite + Unpin + Send> {
    zip: Option<ZipWriter<W>>,
    done: Option<W>,
}

impl<W: AsyncWrite + Unpin + Send> ZipSink<W> {
    /// `spool`: an unnamed file for the directory ([`super::spool_file`]).
    pub fn new(out: W, spool: std::fs::File) -> Self {
        Self {
            zip: Some(ZipWriter::new(out, spool)),
            done: None,
        }
    }

    /// The writer, once [`Sink::finish`] has completed the zip.
    pub fn into_inner(self) -> Option<W> {
        self.done
    }

    fn zip(&mut self) -> Result<&mut ZipWriter<W>, ExportError> {
        self.zip
            .as_mut()
            .ok_or_else(|| ExportError::Destination("the zip is already finished".into()))
    }
}

/// A zip keeps time from 1980 on: earlier notes get the epoch.
fn zip_time(modified: DateTime<Utc>) -> DateTime<Utc> {
    if modified.year() < 1980 {
        super::epoch()
    } else {
        modified
    }
}

#[async_trait]
impl<W: AsyncWrite + Unpin + Send> Sink for ZipSink<W> {
    async fn file(
        &mut self,
        path: &str,
        modified: DateTime<Utc>,
        compress: bool,
        data: Vec<u8>,
    ) -> Result<(), ExportError> {
        let body = futures::stream::iter([Ok(Bytes::from(data))]);
        self.zip()?
            .entry(path, zip_time(modified), compress, body)
            .await?;
        Ok(())
    }

    async fn stream(
        &mut self,
        path: &str,
        modified: DateTime<Utc>,
        compress: bool,
        body: BoxStream<'static, Result<Bytes, ExportError>>,
    ) -> Result<u64, ExportError> {
        self.zip()?
            .entry(path, zip_time(modified), compress, body)
            .await
    }

    async fn finish(&mut self) -> Result<(), ExportError> {
        let zip = self
            .zip
            .take()
            .ok_or_else(|| ExportError::Destination("the zip is already finished".into()))?;
        let mut out = zip.finish().await?;
        out.shutdown().await?;
        self.done = Some(out);
        Ok(())
    }
}

/// The same files in a folder.
pub struct DirSink {
    root: PathBuf,
}

impl DirSink {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Where `path` goes, refusing any component that could leave the
    /// folder (the names are made safe before; this is the last word).
    async fn target(&self, path: &str) -> Result<PathBuf, ExportError> {
        let mut target = self.root.clone();
        for part in path.split('/') {
            if part.is_empty() || part == "." || part == ".." || part.contains(['\\', '\0']) {
                return Err(ExportError::Destination(format!(
                    "refusing to write {path:?}: not a plain relative path"
                )));
            }
            target.push(part);
        }
        if let Some(parent) = target.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        Ok(target)
    }
}

async fn set_modified(file: tokio::fs::File, modified: DateTime<Utc>) -> Result<(), ExportError> {
    let file = file.into_std().await;
    let when = SystemTime::from(modified);
    tokio::task::spawn_blocking(move || file.set_modified(when))
        .await
        .map_err(std::io::Error::other)??;
    Ok(())
}

#[async_trait]
impl Sink for DirSink {
    async fn file(
        &mut self,
        path: &str,
        modified: DateTime<Utc>,
        _compress: bool,
        data: Vec<u8>,
    ) -> Result<(), ExportError> {
        let target = self.target(path).await?;
        let mut file = tokio::fs::File::create(&target).await?;
        file.write_all(&data).await?;
        file.flush().await?;
        set_modified(file, modified).await
    }

    async fn stream(
        &mut self,
        path: &str,
        modified: DateTime<Utc>,
        _compress: bool,
        mut body: BoxStream<'static, Result<Bytes, ExportError>>,
    ) -> Result<u64, ExportError> {
        let target = self.target(path).await?;
        let mut file = tokio::fs::File::create(&target).await?;
        let mut size = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            file.write_all(&chunk).await?;
            size += chunk.len() as u64;
        }
        file.flush().await?;
        set_modified(file, modified).await?;
        Ok(size)
    }

    async fn finish(&mut self) -> Result<(), ExportError> {
        Ok(())
    }
}

/// The command line's `--to`: a path ending in `.zip` gets a zip (written
/// beside it as `….zip.partial`, renamed once complete; an existing file
/// is refused), anything else a folder that must be new or empty (a
/// previous export is not merged into: files of notes deleted since would
/// stay, and a vault's own edits would be overwritten).
pub async fn write_to_path(export: Export, to: &Path) -> Result<Summary, ExportError> {
    let is_zip = to
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("zip"));
    if is_zip {
        if tokio::fs::try_exists(to).await? {
            return Err(ExportError::Destination(format!(
                "{} already exists; remove it or choose another name",
                to.display()
            )));
        }
        let mut partial = to.as_os_str().to_owned();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        let file = tokio::fs::File::create(&partial).await?;
        let spool = super::spool_file(&export.options().spool_dir).await?;
        let mut sink = ZipSink::new(tokio::io::BufWriter::with_capacity(256 * 1024, file), spool);
        let written = export.write(&mut sink).await;
        let summary = match written {
            Ok(summary) => summary,
            Err(e) => {
                let _ = tokio::fs::remove_file(&partial).await;
                return Err(e);
            }
        };
        let file = sink.into_inner().expect("finished").into_inner();
        file.sync_all().await?;
        tokio::fs::rename(&partial, to).await?;
        Ok(summary)
    } else {
        match tokio::fs::read_dir(to).await {
            Ok(mut entries) => {
                if entries.next_entry().await?.is_some() {
                    return Err(ExportError::Destination(format!(
                        "{} is not empty; an export goes into a new or empty folder",
                        to.display()
                    )));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tokio::fs::create_dir_all(to).await?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
                return Err(ExportError::Destination(format!(
                    "{} is a file; give a folder, or a name ending in .zip",
                    to.display()
                )));
            }
            Err(e) => return Err(e.into()),
        }
        export.write(&mut DirSink::new(to)).await
    }
}
