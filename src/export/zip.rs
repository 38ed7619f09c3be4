//! A zip written front to back whose central directory waits in a file,
//! not in memory.
//!
//! A zip ends with a directory of every entry, which a writer can only
//! write once the last entry is done. `async_zip` and `zip` keep it in
//! memory until then, about 330 bytes a file: 330 MiB for a vault of a
//! million notes, past a 256 MiB pod (docs/performance.md, "Export"). Here
//! each entry's directory record is appended to an unnamed spool file as
//! the entry ends, and copied to the output at the end, so memory stays
//! the same whatever the count (docs/decisions.md says why this is
//! hand-written).
//!
//! What it writes (PKWARE APPNOTE 6.3): entries stored or raw-deflated,
//! each with a data descriptor after its bytes (sizes and CRC are known
//! only then, and the output is never sought back into); UTF-8 names;
//! Unix mode 0644; zip64 fields where a size, an offset or the count
//! needs them.

use std::io::SeekFrom;

use bytes::Bytes;
use chrono::{DateTime, Datelike, Timelike, Utc};
use flate2::{Compress, Compression, FlushCompress, Status};
use futures::{Stream, StreamExt};
use tokio::io::{AsyncSeekExt, AsyncWrite, AsyncWriteExt, BufWriter};

use super::ExportError;

const LOCAL_HEADER: u32 = 0x0403_4b50;
const DATA_DESCRIPTOR: u32 = 0x0807_4b50;
const CENTRAL_HEADER: u32 = 0x0201_4b50;
const ZIP64_END: u32 = 0x0606_4b50;
const ZIP64_LOCATOR: u32 = 0x0706_4b50;
const END: u32 = 0x0605_4b50;
/// Bit 3: sizes and CRC follow the data; bit 11: the name is UTF-8.
const FLAGS: u16 = (1 << 3) | (1 << 11);
/// 4.5: zip64 (what a reader needs for the largest of these zips).
const VERSION_NEEDED: u16 = 45;
/// Unix (3), spec 4.5: the external attributes hold a Unix mode.
const VERSION_MADE_BY: u16 = (3 << 8) | 45;
/// A regular file, rw-r--r--.
const UNIX_MODE: u32 = 0o100_644;
const STORED: u16 = 0;
const DEFLATED: u16 = 8;
/// Past these, the zip64 fields hold the value.
const MAX_U32: u64 = 0xFFFF_FFFF;
const MAX_U16: u64 = 0xFFFF;
/// Deflate's output is written in chunks of this size.
const OUT_CHUNK: usize = 64 * 1024;

/// Writes entries to `out` one after the other; [`ZipWriter::finish`]
/// appends the directory.
pub struct ZipWriter<W> {
    out: W,
    /// Bytes written to `out` so far: the next entry's offset.
    offset: u64,
    /// The directory so far, in an unnamed file.
    directory: BufWriter<tokio::fs::File>,
    directory_len: u64,
    entries: u64,
}

impl<W: AsyncWrite + Unpin + Send> ZipWriter<W> {
    /// `spool` is an unnamed file (`tempfile::tempfile_in`) on a disk, not
    /// in memory.
    pub fn new(out: W, spool: std::fs::File) -> Self {
        Self {
            out,
            offset: 0,
            directory: BufWriter::with_capacity(64 * 1024, tokio::fs::File::from_std(spool)),
            directory_len: 0,
            entries: 0,
        }
    }

    /// Writes one entry from `body`; answers its uncompressed size.
    pub async fn entry<S>(
        &mut self,
        name: &str,
        modified: DateTime<Utc>,
        deflate: bool,
        mut body: S,
    ) -> Result<u64, ExportError>
    where
        S: Stream<Item = Result<Bytes, ExportError>> + Unpin,
    {
        let (time, date) = dos_time(modified);
        let method = if deflate { DEFLATED } else { STORED };
        let start = self.offset;

        let mut header = Vec::with_capacity(30 + name.len());
        put32(&mut header, LOCAL_HEADER);
        put16(&mut header, VERSION_NEEDED);
        put16(&mut header, FLAGS);
        put16(&mut header, method);
        put16(&mut header, time);
        put16(&mut header, date);
        // CRC and sizes: in the data descriptor.
        put32(&mut header, 0);
        put32(&mut header, 0);
        put32(&mut header, 0);
        put16(&mut header, name_len(name)?);
        put16(&mut header, 0);
        header.extend_from_slice(name.as_bytes());
        self.write(&header).await?;

        let mut crc = crc32fast::Hasher::new();
        let mut size = 0u64;
        let data_start = self.offset;
        let mut compress = deflate.then(|| Compress::new(Compression::default(), false));
        let mut buf = Vec::with_capacity(if deflate { OUT_CHUNK } else { 0 });
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            crc.update(&chunk);
            size += chunk.len() as u64;
            match compress.as_mut() {
                Some(c) => {
                    self.deflate(c, &chunk, &mut buf, FlushCompress::None)
                        .await?
                }
                None => self.write(&chunk).await?,
            }
        }
        if let Some(c) = compress.as_mut() {
            self.deflate(c, &[], &mut buf, FlushCompress::Finish)
                .await?;
        }
        let crc = crc.finalize();
        let compressed = self.offset - data_start;

        let zip64_sizes = size >= MAX_U32 || compressed >= MAX_U32;
        let mut descriptor = Vec::with_capacity(24);
        put32(&mut descriptor, DATA_DESCRIPTOR);
        put32(&mut descriptor, crc);
        if zip64_sizes {
            put64(&mut descriptor, compressed);
            put64(&mut descriptor, size);
        } else {
            put32(&mut descriptor, compressed as u32);
            put32(&mut descriptor, size as u32);
        }
        self.write(&descriptor).await?;

        // The directory's record: the zip64 extra field carries whichever
        // of the sizes and the offset do not fit, in this order (4.5.3).
        let mut extra = Vec::new();
        if zip64_sizes {
            put64(&mut extra, size);
            put64(&mut extra, compressed);
        }
        if start >= MAX_U32 {
            put64(&mut extra, start);
        }
        let mut record = Vec::with_capacity(46 + name.len() + 4 + extra.len());
        put32(&mut record, CENTRAL_HEADER);
        put16(&mut record, VERSION_MADE_BY);
        put16(&mut record, VERSION_NEEDED);
        put16(&mut record, FLAGS);
        put16(&mut record, method);
        put16(&mut record, time);
        put16(&mut record, date);
        put32(&mut record, crc);
        put32(
            &mut record,
            clamp32(if zip64_sizes { MAX_U32 } else { compressed }),
        );
        put32(
            &mut record,
            clamp32(if zip64_sizes { MAX_U32 } else { size }),
        );
        put16(&mut record, name_len(name)?);
        put16(
            &mut record,
            if extra.is_empty() {
                0
            } else {
                4 + extra.len() as u16
            },
        );
        put16(&mut record, 0); // comment
        put16(&mut record, 0); // disk
        put16(&mut record, 0); // internal attributes
        put32(&mut record, UNIX_MODE << 16);
        put32(&mut record, clamp32(start));
        record.extend_from_slice(name.as_bytes());
        if !extra.is_empty() {
            put16(&mut record, 0x0001);
            put16(&mut record, extra.len() as u16);
            record.extend_from_slice(&extra);
        }
        self.directory.write_all(&record).await?;
        self.directory_len += record.len() as u64;
        self.entries += 1;
        Ok(size)
    }

    /// Appends the directory and the end records; answers the output.
    pub async fn finish(mut self) -> Result<W, ExportError> {
        let directory_start = self.offset;
        self.directory.flush().await?;
        let mut spool = self.directory.into_inner();
        spool.seek(SeekFrom::Start(0)).await?;
        let copied = tokio::io::copy(&mut spool, &mut self.out).await?;
        debug_assert_eq!(copied, self.directory_len);
        self.offset += copied;

        let zip64 =
            self.entries >= MAX_U16 || directory_start >= MAX_U32 || self.directory_len >= MAX_U32;
        let mut end = Vec::with_capacity(56 + 20 + 22);
        if zip64 {
            let zip64_end = self.offset;
            put32(&mut end, ZIP64_END);
            put64(&mut end, 44); // the size of what follows
            put16(&mut end, VERSION_MADE_BY);
            put16(&mut end, VERSION_NEEDED);
            put32(&mut end, 0); // this disk
            put32(&mut end, 0); // the directory's disk
            put64(&mut end, self.entries);
            put64(&mut end, self.entries);
            put64(&mut end, self.directory_len);
            put64(&mut end, directory_start);
            put32(&mut end, ZIP64_LOCATOR);
            put32(&mut end, 0);
            put64(&mut end, zip64_end);
            put32(&mut end, 1); // disks
        }
        put32(&mut end, END);
        put16(&mut end, 0);
        put16(&mut end, 0);
        let count = self.entries.min(MAX_U16) as u16;
        put16(&mut end, count);
        put16(&mut end, count);
        put32(&mut end, clamp32(self.directory_len));
        put32(&mut end, clamp32(directory_start));
        put16(&mut end, 0); // comment
        self.out.write_all(&end).await?;
        self.out.flush().await?;
        Ok(self.out)
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), ExportError> {
        self.out.write_all(bytes).await?;
        self.offset += bytes.len() as u64;
        Ok(())
    }

    /// Feeds `input` to the compressor, writing what it gives out; with
    /// `Finish`, until the stream's end.
    async fn deflate(
        &mut self,
        c: &mut Compress,
        mut input: &[u8],
        buf: &mut Vec<u8>,
        flush: FlushCompress,
    ) -> Result<(), ExportError> {
        loop {
            buf.clear();
            let (read, wrote) = (c.total_in(), c.total_out());
            let status = c
                .compress_vec(input, buf, flush)
                .map_err(|e| ExportError::Write(std::io::Error::other(e)))?;
            input = &input[(c.total_in() - read) as usize..];
            let produced = (c.total_out() - wrote) as usize;
            if produced > 0 {
                self.write(buf).await?;
            }
            let done = match flush {
                FlushCompress::Finish => status == Status::StreamEnd,
                // All taken, and room was left: nothing is waiting to come
                // out but what deflate keeps for its next block.
                _ => input.is_empty() && produced < buf.capacity(),
            };
            if done {
                return Ok(());
            }
        }
    }
}

fn name_len(name: &str) -> Result<u16, ExportError> {
    u16::try_from(name.len())
        .map_err(|_| ExportError::Destination(format!("a zip entry's name is too long: {name:?}")))
}

fn clamp32(v: u64) -> u32 {
    v.min(MAX_U32) as u32
}

/// MS-DOS time and date (two-second steps, 1980 to 2107), as zips hold
/// them; the UTC time is written as it is.
fn dos_time(t: DateTime<Utc>) -> (u16, u16) {
    let year = t.year().clamp(1980, 2107) as u16;
    let time = ((t.hour() as u16) << 11) | ((t.minute() as u16) << 5) | (t.second() as u16 / 2);
    let date = ((year - 1980) << 9) | ((t.month() as u16) << 5) | t.day() as u16;
    (time, date)
}

fn put16(v: &mut Vec<u8>, x: u16) {
    v.extend_from_slice(&x.to_le_bytes());
}
fn put32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_le_bytes());
}
fn put64(v: &mut Vec<u8>, x: u64) {
    v.extend_from_slice(&x.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    async fn zip_of(entries: &[(&str, bool, Vec<Vec<u8>>)]) -> Vec<u8> {
        let mut zip = ZipWriter::new(Vec::new(), tempfile::tempfile().unwrap());
        let when = DateTime::parse_from_rfc3339("2024-02-29T13:45:58Z")
            .unwrap()
            .to_utc();
        for (name, deflate, chunks) in entries {
            let body = futures::stream::iter(
                chunks
                    .iter()
                    .map(|c| Ok::<_, ExportError>(Bytes::from(c.clone())))
                    .collect::<Vec<_>>(),
            );
            let size = zip.entry(name, when, *deflate, body).await.unwrap();
            assert_eq!(size, chunks.iter().map(|c| c.len() as u64).sum::<u64>());
        }
        zip.finish().await.unwrap()
    }

    /// Checks the archive as Python's `zipfile` reads it (every CRC), when
    /// there is a python3 to ask.
    fn python_reads(bytes: &[u8], entries: usize) {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), bytes).unwrap();
        let Ok(out) = std::process::Command::new("python3")
            .args([
                "-c",
                "import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1])\nassert z.testzip() is None\nprint(len(z.infolist()))",
            ])
            .arg(file.path())
            .output()
        else {
            eprintln!("no python3: the zip crate's reading stands alone");
            return;
        };
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            entries.to_string()
        );
    }

    #[tokio::test]
    async fn entries_stored_and_deflated_read_back_as_written() {
        let big: Vec<u8> = (0..300_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let random: Vec<u8> = (0..200_000u64)
            .map(|i| (i.wrapping_mul(6_364_136_223_846_793_005) >> 56) as u8)
            .collect();
        let entries = [
            (
                "notes/Zürich 東京.md",
                true,
                vec![b"# Hello\n".to_vec(), b"world\n".to_vec()],
            ),
            ("attachments/x/photo.bin", false, vec![random.clone()]),
            (
                "big.txt",
                true,
                big.chunks(70_000).map(<[u8]>::to_vec).collect(),
            ),
            ("empty.md", true, vec![]),
            ("empty.bin", false, vec![Vec::new()]),
        ];
        let bytes = zip_of(&entries).await;
        let mut archive = ::zip::ZipArchive::new(std::io::Cursor::new(&bytes)).unwrap();
        assert_eq!(archive.len(), entries.len());
        for (name, deflate, chunks) in &entries {
            let mut file = archive.by_name(name).unwrap();
            assert_eq!(
                file.compression(),
                if *deflate {
                    ::zip::CompressionMethod::Deflated
                } else {
                    ::zip::CompressionMethod::Stored
                }
            );
            assert_eq!(file.unix_mode(), Some(0o100_644));
            let modified = file.last_modified().unwrap();
            assert_eq!(
                (
                    modified.year(),
                    modified.month(),
                    modified.day(),
                    modified.hour(),
                    modified.minute(),
                    modified.second()
                ),
                (2024, 2, 29, 13, 45, 58)
            );
            let mut data = Vec::new();
            // Reading to the end checks the CRC.
            file.read_to_end(&mut data).unwrap();
            assert_eq!(data, chunks.concat(), "{name}");
        }
        // Deflate did its work on text.
        assert!(
            bytes.len() < big.len() / 4 + random.len() + 4096,
            "{}",
            bytes.len()
        );
        python_reads(&bytes, entries.len());
    }

    #[tokio::test]
    async fn more_entries_than_a_zip_counts_take_the_zip64_end() {
        let n = 70_000;
        let mut zip = ZipWriter::new(Vec::new(), tempfile::tempfile().unwrap());
        for i in 0..n {
            let body = futures::stream::iter([Ok::<_, ExportError>(Bytes::from(format!("{i}")))]);
            zip.entry(&format!("n/{i}.md"), Utc::now(), false, body)
                .await
                .unwrap();
        }
        let bytes = zip.finish().await.unwrap();
        let mut archive = ::zip::ZipArchive::new(std::io::Cursor::new(&bytes)).unwrap();
        assert_eq!(archive.len(), n);
        let mut last = String::new();
        archive
            .by_name(&format!("n/{}.md", n - 1))
            .unwrap()
            .read_to_string(&mut last)
            .unwrap();
        assert_eq!(last, (n - 1).to_string());
        python_reads(&bytes, n);
    }
}
