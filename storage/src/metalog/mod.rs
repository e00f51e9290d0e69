//! The metadata log: an append-only file of checksummed rkyv entries, replayed on open and
//! compacted by rewriting a snapshot. Low-rate control-plane state (streams, shards, lineage),
//! so it uses blocking file I/O ([`BlockingIo`]: std files, or a fault injector's) and syncs
//! every append.
//!
//! Replay keeps every valid frame up to a torn tail and cuts the tail off; damage before the
//! end (a bad frame with a whole frame after it) is refused with
//! [`StorageError::MetadataDamaged`] and the file is left as found, for a deliberate
//! [`MetaLog::repair`] (the rule and why it is sound: `scan.rs`).

mod frame;
mod repair;
mod scan;

pub use self::repair::{MetaLogRepair, MetaLogScan};

use self::frame::{FILE_HEADER_LEN, encode_frame, file_header, header_unwritten};
use self::scan::{Scanned, scan};
use crate::error::{Result, StorageError};
use crate::io::{BlockingFile, BlockingIo};
use rkyv::api::high::{HighDeserializer, HighSerializer, HighValidator};
use rkyv::bytecheck::CheckBytes;
use rkyv::rancor;
use rkyv::ser::allocator::ArenaHandle;
use rkyv::util::AlignedVec;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

/// An append-only log of `T` entries.
#[derive(Debug)]
pub struct MetaLog<T> {
    io: BlockingIo,
    path: PathBuf,
    file: BlockingFile,
    len: u64,
    entries_since_compaction: usize,
    /// Set after a failed write or sync: what reached the disk is unknown, so the log
    /// refuses appends until reopened (replay then decides what is there).
    latched: Option<String>,
    _entry: PhantomData<fn(T) -> T>,
}

impl<T> MetaLog<T>
where
    T: rkyv::Archive
        + for<'a> rkyv::Serialize<HighSerializer<AlignedVec, ArenaHandle<'a>, rancor::Error>>,
    T::Archived: for<'a> CheckBytes<HighValidator<'a, rancor::Error>>
        + rkyv::Deserialize<T, HighDeserializer<rancor::Error>>,
{
    /// Opens (or creates) the log at `path` with std files and replays it; see
    /// [`MetaLog::open_with_io`].
    pub fn open(path: &Path) -> Result<(MetaLog<T>, Vec<T>)> {
        MetaLog::open_with_io(BlockingIo::plain(), path)
    }

    /// Opens (or creates) the log at `path`, writing through `io`, and replays it: every
    /// entry in append order. A torn tail is cut off. Damage before the end is
    /// [`StorageError::MetadataDamaged`], and then the file is not changed. After a failed
    /// sync (a marker beside the log says so) the whole valid prefix is written again before
    /// it is synced: the pages that sync failed to write may have been marked clean.
    pub fn open_with_io(io: BlockingIo, path: &Path) -> Result<(MetaLog<T>, Vec<T>)> {
        let file = io
            .open(path)
            .map_err(|e| StorageError::io("open metadata log", path, e))?;
        // Read whole, then cut to what replay keeps: the valid prefix.
        let mut valid =
            std::fs::read(path).map_err(|e| StorageError::io("read metadata log", path, e))?;
        let fresh = header_unwritten(&valid);
        let entries = if fresh {
            valid = file_header().to_vec();
            Vec::new()
        } else {
            let scanned = scan(&valid, decode::<T>);
            check_replayable(path, &scanned)?;
            valid.truncate(scanned.torn_from.unwrap_or(valid.len()));
            scanned.entries
        };
        let marker = sync_failed_marker(path);
        let rewrite = fresh || marker.exists();
        if rewrite {
            file.write_at(0, &valid)
                .map_err(|e| StorageError::io("write metadata log", path, e))?;
        }
        file.set_len(valid.len() as u64)
            .map_err(|e| StorageError::io("truncate metadata log", path, e))?;
        sync_or_mark(&file, "sync metadata log")?;
        if rewrite {
            if marker.exists() {
                std::fs::remove_file(&marker)
                    .map_err(|e| StorageError::io("remove marker", &marker, e))?;
            }
            sync_parent(&io, path)?;
        }
        let log = MetaLog {
            io,
            path: path.to_path_buf(),
            file,
            len: valid.len() as u64,
            entries_since_compaction: entries.len(),
            latched: None,
            _entry: PhantomData,
        };
        Ok((log, entries))
    }

    /// Appends one entry; it is durable when this returns.
    pub fn append(&mut self, entry: &T) -> Result<()> {
        self.check_writable()?;
        let frame = encode_frame(&serialize(entry)?);
        if let Err(e) = self.file.write_at(self.len, &frame) {
            let error = StorageError::io("append metadata", &self.path, e);
            self.latched = Some(error.to_string());
            return Err(error);
        }
        if let Err(error) = sync_or_mark(&self.file, "sync metadata") {
            self.latched = Some(error.to_string());
            return Err(error);
        }
        self.len += frame.len() as u64;
        self.entries_since_compaction += 1;
        Ok(())
    }

    /// Entries appended since the last compaction (or open): a hint for when to compact.
    pub fn entries_since_compaction(&self) -> usize {
        self.entries_since_compaction
    }

    /// Replaces the whole log with `snapshot`, atomically: a crash leaves either the old log
    /// or the new one. The snapshot is written to `<path>.tmp`, synced and renamed over the
    /// log; then the directory is synced.
    pub fn compact(&mut self, snapshot: &[T]) -> Result<()> {
        self.check_writable()?;
        let tmp = sibling(&self.path, ".tmp");
        let mut out = file_header().to_vec();
        for entry in snapshot {
            out.extend_from_slice(&encode_frame(&serialize(entry)?));
        }
        // Until the rename the log is untouched: a failure here needs no latch.
        let file = self
            .io
            .create(&tmp)
            .map_err(|e| StorageError::io("create", &tmp, e))?;
        file.write_at(0, &out)
            .map_err(|e| StorageError::io("write", &tmp, e))?;
        file.sync_data()
            .map_err(|e| StorageError::io("sync", &tmp, e))?;
        drop(file);
        self.io
            .rename(&tmp, &self.path)
            .map_err(|e| StorageError::io("rename", &tmp, e))?;
        // From here the path names the new file: appends must go there, never to the old,
        // unlinked one.
        match self.io.open(&self.path) {
            Ok(file) => self.file = file,
            Err(e) => {
                let error = StorageError::io("reopen metadata log", &self.path, e);
                self.latched = Some(error.to_string());
                return Err(error);
            }
        }
        self.len = out.len() as u64;
        self.entries_since_compaction = snapshot.len();
        // Until the rename is durable a crash may bring the old file back, and entries
        // appended to the new one would vanish: refuse appends if that cannot be made sure.
        sync_parent(&self.io, &self.path).inspect_err(|e| self.latched = Some(e.to_string()))
    }

    /// Why the log refuses appends, if it latched after a failed write, sync or compaction.
    pub fn latch_cause(&self) -> Option<&str> {
        self.latched.as_deref()
    }

    fn check_writable(&self) -> Result<()> {
        match &self.latched {
            Some(cause) => Err(StorageError::Latched {
                cause: cause.clone(),
            }),
            None => Ok(()),
        }
    }
}

/// Refuses a file replay must not cut: damage before the end, or no header and nothing whole
/// after it (not a metadata log).
fn check_replayable<T>(path: &Path, scanned: &Scanned<T>) -> Result<()> {
    if let Some(first) = scanned.damaged.first() {
        return Err(StorageError::MetadataDamaged {
            path: path.to_path_buf(),
            pos: first.start as u64,
            frames_after: scanned.frames_from(first.start),
        });
    }
    if !scanned.header_ok {
        return Err(StorageError::Corrupt {
            path: path.to_path_buf(),
            pos: 0,
            reason: "not a metadata log".into(),
        });
    }
    debug_assert!(scanned.torn_from.is_none_or(|t| t >= FILE_HEADER_LEN));
    Ok(())
}

fn serialize<T>(entry: &T) -> Result<AlignedVec>
where
    T: for<'a> rkyv::Serialize<HighSerializer<AlignedVec, ArenaHandle<'a>, rancor::Error>>,
{
    rkyv::to_bytes::<rancor::Error>(entry)
        .map_err(|e| StorageError::InvalidConfig(format!("metadata entry does not serialize: {e}")))
}

/// The entry a payload holds, if it validates.
fn decode<T>(payload: &[u8]) -> Option<T>
where
    T: rkyv::Archive,
    T::Archived: for<'a> CheckBytes<HighValidator<'a, rancor::Error>>
        + rkyv::Deserialize<T, HighDeserializer<rancor::Error>>,
{
    let mut aligned = AlignedVec::<16>::with_capacity(payload.len());
    aligned.extend_from_slice(payload);
    rkyv::from_bytes::<T, rancor::Error>(&aligned).ok()
}

/// `path` with `suffix` added to its file name.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

/// The marker a failed sync of the log at `path` leaves beside it.
fn sync_failed_marker(path: &Path) -> PathBuf {
    sibling(path, ".SYNC-FAILED")
}

/// fdatasync of the log. After a failure Linux may mark the pages it could not write clean,
/// so a later fdatasync, even a restarted process's, succeeds without writing them: a marker
/// beside the log (written and synced with std's calls) makes the next open write the log's
/// whole valid prefix again before syncing it, as the shard logs do. A marker that cannot be
/// written is named in the error.
fn sync_or_mark(file: &BlockingFile, op: &'static str) -> Result<()> {
    let Err(e) = file.sync_data() else {
        return Ok(());
    };
    let error = StorageError::io(op, file.path(), e);
    match write_sync_failed_marker(file.path()) {
        Ok(()) => Err(error),
        Err(marker) => Err(StorageError::Latched {
            cause: format!("{error}; and the marker for the next open failed: {marker}"),
        }),
    }
}

pub(crate) fn write_sync_failed_marker(path: &Path) -> std::io::Result<()> {
    let marker = sync_failed_marker(path);
    let text = "an fdatasync of the metadata log failed: the next open writes it again\n";
    std::fs::write(&marker, text)?;
    std::fs::File::open(&marker)?.sync_all()?;
    std::fs::File::open(parent(path))?.sync_all()
}

fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

fn sync_parent(io: &BlockingIo, path: &Path) -> Result<()> {
    let parent = parent(path);
    io.sync_dir(parent)
        .map_err(|e| StorageError::io("sync directory", parent, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
    struct Entry {
        stream: String,
        shards: Vec<u64>,
    }

    fn entry(i: u64) -> Entry {
        Entry {
            stream: format!("stream-{i}"),
            shards: (0..i).collect(),
        }
    }

    #[test]
    fn entries_survive_reopen_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.log");
        let (mut log, replayed) = MetaLog::<Entry>::open(&path).unwrap();
        assert!(replayed.is_empty());
        for i in 0..10 {
            log.append(&entry(i)).unwrap();
        }
        drop(log);
        let (_, replayed) = MetaLog::<Entry>::open(&path).unwrap();
        assert_eq!(replayed, (0..10).map(entry).collect::<Vec<_>>());
    }

    #[test]
    fn torn_tail_is_cut_and_appends_continue_after_the_valid_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.log");
        let (mut log, _) = MetaLog::<Entry>::open(&path).unwrap();
        for i in 0..3 {
            log.append(&entry(i)).unwrap();
        }
        drop(log);
        let full = std::fs::metadata(&path).unwrap().len();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(full - 5)
            .unwrap();
        let (mut log, replayed) = MetaLog::<Entry>::open(&path).unwrap();
        assert_eq!(replayed, vec![entry(0), entry(1)]);
        log.append(&entry(7)).unwrap();
        drop(log);
        let (_, replayed) = MetaLog::<Entry>::open(&path).unwrap();
        assert_eq!(replayed, vec![entry(0), entry(1), entry(7)]);
    }

    #[test]
    fn a_flipped_byte_in_the_last_entry_is_cut_off_like_a_torn_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.log");
        let (mut log, _) = MetaLog::<Entry>::open(&path).unwrap();
        for i in 0..4 {
            log.append(&entry(i)).unwrap();
        }
        let last = log.len as usize;
        log.append(&entry(4)).unwrap();
        drop(log);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[last + frame::FRAME_HEADER_LEN + 2] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        let (_, replayed) = MetaLog::<Entry>::open(&path).unwrap();
        assert_eq!(replayed, (0..4).map(entry).collect::<Vec<_>>());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), last as u64);
    }

    #[test]
    fn a_log_whose_header_was_torn_at_creation_opens_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.log");
        for torn in [&b""[..], b"SLUIC", &[0u8; 16][..], &[0u8; 9][..]] {
            std::fs::write(&path, torn).unwrap();
            let (mut log, replayed) = MetaLog::<Entry>::open(&path).unwrap();
            assert!(replayed.is_empty());
            log.append(&entry(1)).unwrap();
            drop(log);
            assert_eq!(MetaLog::<Entry>::open(&path).unwrap().1, vec![entry(1)]);
        }
        std::fs::write(&path, b"not a metadata log at all").unwrap();
        assert!(
            MetaLog::<Entry>::open(&path).is_err(),
            "real garbage is reported"
        );
    }

    #[test]
    fn compaction_replaces_history_with_the_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.log");
        let (mut log, _) = MetaLog::<Entry>::open(&path).unwrap();
        for i in 0..20 {
            log.append(&entry(i)).unwrap();
        }
        let before = std::fs::metadata(&path).unwrap().len();
        log.compact(&[entry(19)]).unwrap();
        assert!(std::fs::metadata(&path).unwrap().len() < before);
        log.append(&entry(21)).unwrap();
        drop(log);
        let (_, replayed) = MetaLog::<Entry>::open(&path).unwrap();
        assert_eq!(replayed, vec![entry(19), entry(21)]);
        assert!(!sibling(&path, ".tmp").exists());
    }
}
