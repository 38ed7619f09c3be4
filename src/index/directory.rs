//! tantivy's memory-mapped directory without `fsync`, and with a bounded
//! mmap cache.
//!
//! A commit of tantivy's own `MmapDirectory` syncs every file it wrote, the
//! directory and the metadata: about 16 `fdatasync` calls for a one-note
//! commit, 65 ms of a 75 ms write-to-searchable latency on our disks. The
//! index is derived from the database and may be lost at any time, so its
//! durability buys nothing: a process crash keeps what the kernel already
//! has, and after a power loss the start-up checksum check (or a metadata
//! file that no longer parses) triggers a rebuild from the database. What
//! a commit still guarantees is the order tantivy relies on: files are
//! complete before the metadata that names them is renamed into place.

use std::{
    fs::{File, OpenOptions},
    io::{self, BufWriter, Write},
    path::{Path, PathBuf},
    sync::Arc,
};

use tantivy::directory::{
    AntiCallToken, Directory, DirectoryLock, FileHandle, Lock, MmapDirectory, TerminatingWrite,
    WatchCallback, WatchHandle, WritePtr,
    error::{DeleteError, LockError, OpenDirectoryError, OpenReadError, OpenWriteError},
};

#[derive(Clone, Debug)]
pub struct NoSyncDirectory {
    root: PathBuf,
    inner: MmapDirectory,
}

impl NoSyncDirectory {
    pub fn open(root: &Path) -> Result<Self, OpenDirectoryError> {
        Ok(Self {
            root: root.to_owned(),
            inner: MmapDirectory::open(root)?,
        })
    }
}

struct Unsynced(File);

impl Write for Unsynced {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl TerminatingWrite for Unsynced {
    fn terminate_ref(&mut self, _: AntiCallToken) -> io::Result<()> {
        self.0.flush()
    }
}

impl Directory for NoSyncDirectory {
    fn get_file_handle(&self, path: &Path) -> Result<Arc<dyn FileHandle>, OpenReadError> {
        self.inner.get_file_handle(path)
    }

    fn delete(&self, path: &Path) -> Result<(), DeleteError> {
        self.inner.delete(path)?;
        // tantivy's mmap cache keeps an entry (the full path, a weak
        // reference) for every file it ever mapped, and drops the dead ones
        // only when asked for its statistics. An index that commits per
        // write maps and deletes files without end, so the cache grew by
        // megabytes a minute (the soak, docs/reliability.md). Asking after
        // each delete keeps it to the files that are still mapped.
        let _ = self.inner.get_cache_info();
        Ok(())
    }

    fn exists(&self, path: &Path) -> Result<bool, OpenReadError> {
        self.inner.exists(path)
    }

    fn open_write(&self, path: &Path) -> Result<WritePtr, OpenWriteError> {
        // Write-once, as the trait requires: an existing file is an error.
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(self.root.join(path))
            .map_err(|e| match e.kind() {
                io::ErrorKind::AlreadyExists => OpenWriteError::FileAlreadyExists(path.to_owned()),
                _ => OpenWriteError::wrap_io_error(e, path.to_owned()),
            })?;
        Ok(BufWriter::new(Box::new(Unsynced(file))))
    }

    fn atomic_read(&self, path: &Path) -> Result<Vec<u8>, OpenReadError> {
        self.inner.atomic_read(path)
    }

    fn atomic_write(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        // Readers see the old file or the new one, never a part: written
        // beside it, then renamed over it.
        let target = self.root.join(path);
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".{}.tmp", uuid::Uuid::new_v4().simple()));
        let temp = self.root.join(name);
        let written = std::fs::write(&temp, data).and_then(|()| std::fs::rename(&temp, &target));
        if written.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        written
    }

    fn sync_directory(&self) -> io::Result<()> {
        Ok(())
    }

    fn acquire_lock(&self, lock: &Lock) -> Result<DirectoryLock, LockError> {
        self.inner.acquire_lock(lock)
    }

    fn watch(&self, watch_callback: WatchCallback) -> tantivy::Result<WatchHandle> {
        self.inner.watch(watch_callback)
    }
}
