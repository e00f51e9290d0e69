//! The log directory's guards: the LOCK file that keeps two logs off the same files, and the
//! SYNC-FAILED marker a failed fdatasync leaves so that the next open writes the data again.

use super::ShardLog;
use crate::error::{Result, StorageError};
use crate::io::SegmentIo;
use std::fs::File;
use std::path::{Path, PathBuf};

impl<I: SegmentIo> ShardLog<I> {
    /// A failed fdatasync. Linux may mark the pages it could not write clean, so a later
    /// fdatasync, even from another process after a restart, succeeds without writing them.
    /// A marker in the log's directory makes the next open write every live segment again
    /// before syncing it (`rewrite_live`); then the log latches. A marker that cannot be
    /// written is named in the error.
    pub(super) fn sync_failed(&self, path: &Path, e: std::io::Error) -> StorageError {
        let error = self.fail("fdatasync", path, e);
        match write_sync_failed_marker(&self.shared.dir) {
            Ok(()) => error,
            Err(marker) => StorageError::Latched {
                cause: format!("{error}; and the marker for the next open failed: {marker}"),
            },
        }
    }
}

/// The marker a failed fdatasync leaves in a log's directory (see `ShardLog::sync_failed`).
pub(super) const SYNC_FAILED: &str = "SYNC-FAILED";

/// Writes the marker and makes it durable (file, then directory), with std's blocking calls:
/// this only runs after a failed sync.
pub(crate) fn write_sync_failed_marker(dir: &Path) -> std::io::Result<()> {
    let path = dir.join(SYNC_FAILED);
    let text =
        "an fdatasync failed: the next open writes every live segment again before syncing\n";
    std::fs::write(&path, text)?;
    std::fs::File::open(&path)?.sync_all()?;
    std::fs::File::open(dir)?.sync_all()
}

/// Makes a directory's entries durable with std's blocking call.
pub(super) fn sync_dir_std(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StorageError::io("sync dir", dir, e))
}

/// Takes an exclusive lock on the directory, so two logs never write the same files.
pub(crate) fn lock_dir(dir: &Path) -> Result<File> {
    let path: PathBuf = dir.join("LOCK");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| StorageError::io("open lock", &path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StorageError::InUse {
            path: dir.to_path_buf(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(StorageError::io("lock", &path, e)),
    }
}
