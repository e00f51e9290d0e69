//! A stream's consumers log on disk: `streams/<uid>/consumers.log`, written by the control
//! thread only (docs/design/checkpoints.md). Plain blocking file I/O, as the metadata log.

use super::format::{FILE_HEADER_LEN, HeaderError, PositionEntry, decode, encode, file_header};
use sluice_storage::{Durability, StorageError};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The file's name in its stream's directory.
pub(crate) const CONSUMERS_LOG: &str = "consumers.log";

/// An open consumers log.
#[derive(Debug)]
pub(crate) struct ConsumersLog {
    path: PathBuf,
    file: File,
    /// Where the next frame goes.
    len: u64,
    /// Frames in the file.
    frames: usize,
    /// Set after a failed write, sync or compaction: what reached the disk is unknown, so
    /// commits are refused until the engine is reopened (invariant C4).
    latched: Option<String>,
}

impl ConsumersLog {
    /// Opens the log in `stream_dir` and replays it, cutting a torn or damaged tail; `None`
    /// when the stream has no consumers log yet.
    pub(crate) fn open(
        stream_dir: &Path,
    ) -> Result<Option<(ConsumersLog, Vec<PositionEntry>)>, StorageError> {
        let path = stream_dir.join(CONSUMERS_LOG);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StorageError::io("read consumers log", &path, e)),
        };
        let (entries, valid_len) = decode(&bytes).map_err(|e| StorageError::Corrupt {
            path: path.clone(),
            pos: 0,
            reason: match e {
                HeaderError::NotAConsumersLog => "not a consumers log".to_owned(),
                HeaderError::Version(v) => format!("consumers log version {v} is unknown"),
            },
        })?;
        let file = File::options()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| StorageError::io("open consumers log", &path, e))?;
        if valid_len < bytes.len() {
            file.set_len(valid_len as u64)
                .and_then(|()| file.sync_data())
                .map_err(|e| StorageError::io("cut consumers log", &path, e))?;
        }
        let log = ConsumersLog {
            path,
            file,
            len: valid_len as u64,
            frames: entries.len(),
            latched: None,
        };
        Ok(Some((log, entries)))
    }

    /// Creates an empty log in `stream_dir`, durably: the header is written to a temporary
    /// file, synced and renamed into place, so the log is either absent or whole.
    pub(crate) fn create(stream_dir: &Path) -> Result<ConsumersLog, StorageError> {
        let path = stream_dir.join(CONSUMERS_LOG);
        let file = replace_with(&path, &file_header())?;
        Ok(ConsumersLog {
            path,
            file,
            len: FILE_HEADER_LEN as u64,
            frames: 0,
            latched: None,
        })
    }

    /// Appends `entry`: in the page cache when this returns, and on disk too when
    /// `durability` is `Durable` (with every frame before it: invariant C1).
    pub(crate) fn append(
        &mut self,
        entry: &PositionEntry,
        durability: Durability,
    ) -> Result<(), StorageError> {
        self.check_writable()?;
        let mut frame = Vec::new();
        encode(entry, &mut frame);
        let written = self.file.write_all_at(&frame, self.len).and_then(|()| {
            if durability == Durability::Durable {
                self.file.sync_data()
            } else {
                Ok(())
            }
        });
        if let Err(e) = written {
            return Err(self.latch(StorageError::io("append consumer position", &self.path, e)));
        }
        self.len += frame.len() as u64;
        self.frames += 1;
        Ok(())
    }

    /// Makes every frame written so far durable.
    pub(crate) fn sync(&mut self) -> Result<(), StorageError> {
        self.check_writable()?;
        if let Err(e) = self.file.sync_data() {
            return Err(self.latch(StorageError::io("sync consumers log", &self.path, e)));
        }
        Ok(())
    }

    /// Frames in the file.
    pub(crate) fn frames(&self) -> usize {
        self.frames
    }

    /// Replaces the log with `live` (one frame per position), atomically and durably.
    pub(crate) fn compact(&mut self, live: &[PositionEntry]) -> Result<(), StorageError> {
        self.check_writable()?;
        let mut bytes = file_header().to_vec();
        for entry in live {
            encode(entry, &mut bytes);
        }
        match replace_with(&self.path, &bytes) {
            Ok(file) => {
                self.file = file;
                self.len = bytes.len() as u64;
                self.frames = live.len();
                Ok(())
            }
            Err(e) => Err(self.latch(e)),
        }
    }

    fn latch(&mut self, error: StorageError) -> StorageError {
        self.latched = Some(error.to_string());
        error
    }

    fn check_writable(&self) -> Result<(), StorageError> {
        match &self.latched {
            Some(cause) => Err(StorageError::Latched {
                cause: cause.clone(),
            }),
            None => Ok(()),
        }
    }
}

/// Writes `bytes` to a temporary file beside `path`, syncs it, renames it to `path` and syncs
/// the directory; returns the new file, open for appends.
fn replace_with(path: &Path, bytes: &[u8]) -> Result<File, StorageError> {
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp).map_err(|e| StorageError::io("create", &tmp, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| StorageError::io("write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| StorageError::io("rename", &tmp, e))?;
    let dir = path.parent().expect("the log is in its stream's directory");
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StorageError::io("sync directory", dir, e))?;
    File::options()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| StorageError::io("open consumers log", path, e))
}
