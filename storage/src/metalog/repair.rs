//! Looking at a metadata log without replaying it, and the deliberate repair of one that is
//! damaged before its end: the file as found is kept aside, and the log is rewritten with
//! every valid frame.

use super::frame::{FILE_HEADER_LEN, file_header, header_unwritten};
use super::scan::{Scanned, scan};
use super::{MetaLog, decode, parent, sibling};
use crate::error::{Result, StorageError};
use crate::io::BlockingIo;
use rkyv::api::high::{HighDeserializer, HighSerializer, HighValidator};
use rkyv::bytecheck::CheckBytes;
use rkyv::rancor;
use rkyv::ser::allocator::ArenaHandle;
use rkyv::util::AlignedVec;
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// What a metadata log file holds ([`MetaLog::inspect`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetaLogScan {
    /// The file's length.
    pub file_bytes: u64,
    /// Frames whose checksum holds and whose entry decodes: the entries a replay returns
    /// (after a repair, when there is damage).
    pub frames_valid: usize,
    /// Byte ranges that are not valid frames and have a valid or whole frame after them (or
    /// are a whole frame whose entry does not decode): damage to acknowledged entries, never a
    /// torn write. Opening refuses a log with any.
    pub damaged: Vec<Range<u64>>,
    /// Where a torn tail begins: bytes after the last valid frame with no whole frame among
    /// them (a write a crash interrupted). Opening cuts it off. 0 for a file whose header
    /// never reached the disk.
    pub torn_tail_from: Option<u64>,
}

impl MetaLogScan {
    /// Opening would refuse the log: it has damage before its end.
    pub fn is_damaged(&self) -> bool {
        !self.damaged.is_empty()
    }

    /// Bytes the damaged ranges cover.
    pub fn damaged_bytes(&self) -> u64 {
        self.damaged.iter().map(|r| r.end - r.start).sum()
    }
}

/// What [`MetaLog::repair`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetaLogRepair {
    /// The file as it was found.
    pub scan: MetaLogScan,
    /// Where the file as found was copied before it was rewritten; `None` when it had no
    /// damage and was left alone.
    pub damaged_copy: Option<PathBuf>,
}

impl<T> MetaLog<T>
where
    T: rkyv::Archive
        + for<'a> rkyv::Serialize<HighSerializer<AlignedVec, ArenaHandle<'a>, rancor::Error>>,
    T::Archived: for<'a> CheckBytes<HighValidator<'a, rancor::Error>>
        + rkyv::Deserialize<T, HighDeserializer<rancor::Error>>,
{
    /// Reads the log at `path` and says what a replay would make of it. Changes nothing.
    pub fn inspect(path: &Path) -> Result<MetaLogScan> {
        let bytes =
            std::fs::read(path).map_err(|e| StorageError::io("read metadata log", path, e))?;
        Ok(inspect_bytes::<T>(path, &bytes)?.0)
    }

    /// Rewrites a log that is damaged before its end, keeping every valid frame in order and
    /// dropping only the damaged bytes (and a torn tail). First the file as found is copied
    /// to `<path>.damaged-<unix ms>` and synced; then the header and the valid frames are
    /// written to `<path>.tmp`, synced, renamed over `path`, and the directory is synced. A
    /// log without such damage is left alone (opening cuts a torn tail by itself). Run it
    /// only on a log nothing has open: a data directory's lock is the caller's to take.
    pub fn repair(path: &Path) -> Result<MetaLogRepair> {
        let bytes =
            std::fs::read(path).map_err(|e| StorageError::io("read metadata log", path, e))?;
        let (scan, scanned) = inspect_bytes::<T>(path, &bytes)?;
        let Some(scanned) = scanned.filter(|_| scan.is_damaged()) else {
            return Ok(MetaLogRepair {
                scan,
                damaged_copy: None,
            });
        };
        let copy = keep_aside(path, &bytes)?;
        let mut repaired = file_header().to_vec();
        for frame in &scanned.frames {
            repaired.extend_from_slice(&bytes[frame.clone()]);
        }
        let io = BlockingIo::plain();
        let tmp = sibling(path, ".tmp");
        let file = io
            .create(&tmp)
            .map_err(|e| StorageError::io("create", &tmp, e))?;
        file.write_at(0, &repaired)
            .and_then(|()| file.sync_data())
            .map_err(|e| StorageError::io("write", &tmp, e))?;
        drop(file);
        io.rename(&tmp, path)
            .and_then(|()| io.sync_dir(parent(path)))
            .map_err(|e| StorageError::io("replace metadata log", path, e))?;
        Ok(MetaLogRepair {
            scan,
            damaged_copy: Some(copy),
        })
    }
}

/// The scan of a log's bytes, and its frames (`None` for a file whose header never reached
/// the disk). Not a metadata log at all is an error.
fn inspect_bytes<T>(path: &Path, bytes: &[u8]) -> Result<(MetaLogScan, Option<Scanned<T>>)>
where
    T: rkyv::Archive,
    T::Archived: for<'a> CheckBytes<HighValidator<'a, rancor::Error>>
        + rkyv::Deserialize<T, HighDeserializer<rancor::Error>>,
{
    let file_bytes = bytes.len() as u64;
    if header_unwritten(bytes) {
        let scan = MetaLogScan {
            file_bytes,
            frames_valid: 0,
            damaged: Vec::new(),
            torn_tail_from: (file_bytes > 0).then_some(0),
        };
        return Ok((scan, None));
    }
    let scanned = scan(bytes, decode::<T>);
    if !scanned.header_ok && scanned.damaged.is_empty() {
        return Err(StorageError::Corrupt {
            path: path.to_path_buf(),
            pos: 0,
            reason: "not a metadata log".into(),
        });
    }
    debug_assert!(scanned.torn_from.is_none_or(|t| t >= FILE_HEADER_LEN));
    let scan = MetaLogScan {
        file_bytes,
        frames_valid: scanned.frames.len(),
        damaged: scanned
            .damaged
            .iter()
            .map(|r| r.start as u64..r.end as u64)
            .collect(),
        torn_tail_from: scanned.torn_from.map(|t| t as u64),
    };
    Ok((scan, Some(scanned)))
}

/// Copies the log's bytes as found to a new `<path>.damaged-<unix ms>` (never over another
/// file) and makes the copy durable; returns its path.
fn keep_aside(path: &Path, bytes: &[u8]) -> Result<PathBuf> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let mut copy = sibling(path, &format!(".damaged-{now_ms}"));
    loop {
        let created = std::fs::File::options()
            .write(true)
            .create_new(true)
            .open(&copy);
        match created {
            Ok(mut file) => {
                file.write_all(bytes)
                    .and_then(|()| file.sync_all())
                    .map_err(|e| StorageError::io("write damaged copy", &copy, e))?;
                break;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                copy.as_mut_os_string().push("+");
            }
            Err(e) => return Err(StorageError::io("create damaged copy", &copy, e)),
        }
    }
    BlockingIo::plain()
        .sync_dir(parent(path))
        .map_err(|e| StorageError::io("sync directory", parent(path), e))?;
    Ok(copy)
}
