//! A segment file mapped read-only, counted in the process-wide registry of mappings that
//! segment leases rest on (docs/design/leases.md).
//!
//! A reader's lease is an `Arc<Segment>`, and each `Segment` owns one `Mapping`. A log reuses a
//! file only when it holds the last `Arc` of its own segment (`reclaim`) *and* that segment's
//! mapping is the only one of the file in the process: a segment of an earlier log on the same
//! directory (closed, but kept alive by a reader's `ReadBatch`, `Records` or `sluice_batch`, or
//! by a `LogReader`) still maps the file, and its bytes must not change under it.
//!
//! The registry is touched when a file is mapped, when a segment is dropped and when a log
//! looks for a file to reuse: never on a read. A read's lease stays one `Arc` clone.

use crate::error::{Result, StorageError};
use crate::sync::{Mutex, MutexGuard};
use memmap2::{Advice, Mmap};
use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// A file's identity: device and inode. Names the file, whatever path reached it (a
/// relative or symlinked directory, a hard link). An inode number is never reused while a
/// mapping of it exists (the mapping holds the inode), and an entry lives only as long as
/// its mappings, so an entry never names two files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    pub(crate) fn new(dev: u64, ino: u64) -> FileId {
        FileId { dev, ino }
    }
}

/// Live mappings per file, over every log in the process. Entries with no mapping are removed.
#[cfg(not(loom))]
static MAPPINGS: Mutex<BTreeMap<FileId, usize>> = Mutex::new(BTreeMap::new());
#[cfg(loom)]
loom::lazy_static! {
    // loom's primitives are made inside a model: a fresh registry for each execution.
    static ref MAPPINGS: Mutex<BTreeMap<FileId, usize>> = Mutex::new(BTreeMap::new());
}

fn mappings() -> MutexGuard<'static, BTreeMap<FileId, usize>> {
    MAPPINGS.lock().unwrap_or_else(|e| e.into_inner())
}

/// One read-only mapping of a segment file, counted in the registry while it lives.
#[derive(Debug)]
pub(crate) struct Mapping {
    map: Mmap,
    file: FileId,
}

/// Maps a whole segment file read-only.
pub(crate) fn map_file(path: &Path) -> Result<Mapping> {
    let file = File::open(path).map_err(|e| StorageError::io("open for mapping", path, e))?;
    let meta = file
        .metadata()
        .map_err(|e| StorageError::io("stat for mapping", path, e))?;
    // SAFETY: the file is a pre-allocated segment of fixed size that Sluice never truncates, so
    // the mapping stays backed. Bytes are only read below a published `visible_end` (complete
    // writes) of a segment the reader holds a lease on; no log in this process rewrites such
    // bytes while the mapping exists (`Mapping::is_only_one`, checked by `reclaim`).
    // Outside modification of the data directory is not supported.
    #[allow(unsafe_code)]
    let map = unsafe { Mmap::map(&file) };
    let map = map.map_err(|e| StorageError::io("map", path, e))?;
    Ok(Mapping::register(map, FileId::new(meta.dev(), meta.ino())))
}

impl Mapping {
    /// Counts `map`, a mapping of `file`, in the registry.
    pub(crate) fn register(map: Mmap, file: FileId) -> Mapping {
        *mappings().entry(file).or_insert(0) += 1;
        Mapping { map, file }
    }

    /// True when no other mapping of this file exists in the process. Once true it stays true
    /// until the owner of this mapping maps the file again (only the log holding the
    /// directory's lock maps its files). The registry's lock orders the drop of every other
    /// mapping, and so every read made through it, before this returns true.
    pub(crate) fn is_only_one(&self) -> bool {
        mappings().get(&self.file) == Some(&1)
    }

    /// Advice to the kernel for the whole mapping; a hint, so a refusal changes nothing.
    pub(crate) fn advise(&self, advice: Advice) {
        let _ = self.map.advise(advice);
    }
}

impl std::ops::Deref for Mapping {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.map
    }
}

impl Drop for Mapping {
    /// Uncounts the mapping. Runs when the segment's last lease is dropped, on whichever thread
    /// dropped it, after every read through it.
    fn drop(&mut self) {
        let mut mappings = mappings();
        let count = mappings
            .get_mut(&self.file)
            .expect("a live mapping is counted");
        *count -= 1;
        if *count == 0 {
            mappings.remove(&self.file);
        }
    }
}
