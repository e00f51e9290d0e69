//! Blocking file I/O for the metadata log: std's calls on the thread that runs the log (the
//! engine's control thread), or the same calls under a [`FaultyIo`](super::FaultyIo)'s plan
//! and journal, so injected faults and power loss reach the metadata log as they reach the
//! shard logs (docs/design/engine-faults.md).

use super::fault::{FaultState, bytes_replaced};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Blocking file I/O: plain std files (the default), or files under a fault injector
/// ([`FaultyIo::blocking`](super::FaultyIo::blocking)). Clones share the injector.
#[derive(Debug, Clone, Default)]
pub struct BlockingIo {
    faults: Option<Arc<FaultState>>,
}

/// A file of a [`BlockingIo`], open for reading and writing.
#[derive(Debug)]
pub struct BlockingFile {
    file: File,
    path: PathBuf,
    faults: Option<Arc<FaultState>>,
}

// The metadata log was unwind-safe with std files and stays so: the injector's state is
// consistent across a panic (its journal's mutex is taken past poisoning, and its gates guard
// no data), and production's `BlockingIo` holds none.
impl std::panic::UnwindSafe for BlockingIo {}
impl std::panic::RefUnwindSafe for BlockingIo {}
impl std::panic::UnwindSafe for BlockingFile {}
impl std::panic::RefUnwindSafe for BlockingFile {}

impl BlockingIo {
    /// Plain std files.
    pub fn plain() -> BlockingIo {
        BlockingIo::default()
    }

    pub(super) fn faulty(state: Arc<FaultState>) -> BlockingIo {
        BlockingIo {
            faults: Some(state),
        }
    }

    /// Opens `path` for reading and writing, creating it empty if it is missing (not a
    /// creation the fault plan fails: only [`BlockingIo::create`] is).
    pub fn open(&self, path: &Path) -> io::Result<BlockingFile> {
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        Ok(self.file(file, path))
    }

    /// Creates `path` empty, replacing a file there.
    pub fn create(&self, path: &Path) -> io::Result<BlockingFile> {
        if let Some(error) = self.faults.as_ref().and_then(|f| f.create_fault()) {
            return Err(error);
        }
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        if let Some(faults) = &self.faults {
            faults.replaced(path);
        }
        Ok(self.file(file, path))
    }

    /// Renames `from` over `to`; the journal's unsynced writes of `from` follow it.
    pub fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)?;
        if let Some(faults) = &self.faults {
            faults.renamed(from, to);
        }
        Ok(())
    }

    /// Makes the entries of `dir` (created, renamed files) durable.
    pub fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn file(&self, file: File, path: &Path) -> BlockingFile {
        BlockingFile {
            file,
            path: path.to_path_buf(),
            faults: self.faults.clone(),
        }
    }
}

impl BlockingFile {
    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes all of `buf` at `pos` (into the page cache), or fails.
    pub fn write_at(&self, pos: u64, buf: &[u8]) -> io::Result<()> {
        let Some(faults) = &self.faults else {
            return self.file.write_all_at(buf, pos);
        };
        if let Some(error) = faults.write_fault() {
            return Err(error);
        }
        let old = bytes_replaced(&self.path, pos, buf.len())?;
        self.file.write_all_at(buf, pos)?;
        faults.journal_write(&self.path, pos, buf.len(), old);
        Ok(())
    }

    /// fdatasync: everything written so far reaches the device.
    pub fn sync_data(&self) -> io::Result<()> {
        let Some(faults) = &self.faults else {
            return self.file.sync_data();
        };
        let (fault, covered) = faults.sync_start();
        let synced = match fault {
            Some(fault) => Err(faults.fire(fault)),
            None => self.file.sync_data(),
        };
        faults.sync_end(&self.path, covered, synced)
    }

    /// Cuts the file to `len` bytes; durable with the next sync.
    pub fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)?;
        if let Some(faults) = &self.faults {
            faults.truncated(&self.path, len);
        }
        Ok(())
    }
}
