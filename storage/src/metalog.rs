//! The metadata log: an append-only file of checksummed rkyv entries, replayed on open and
//! compacted by rewriting a snapshot. Low-rate control-plane state (streams, shards, lineage),
//! so it uses plain blocking file I/O and syncs every append.

use crate::error::{Result, StorageError};
use crate::format::{align8, read_u32, read_u64};
use rkyv::api::high::{HighDeserializer, HighSerializer, HighValidator};
use rkyv::bytecheck::CheckBytes;
use rkyv::rancor;
use rkyv::ser::allocator::ArenaHandle;
use rkyv::util::AlignedVec;
use std::fs::File;
use std::io::Write;
use std::marker::PhantomData;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use xxhash_rust::xxh3::xxh3_64;

const FILE_MAGIC: &[u8; 8] = b"SLUICEMT";
const FILE_HEADER_LEN: u64 = 16;
const FRAME_MAGIC: u32 = u32::from_le_bytes(*b"SLME");
const FRAME_HEADER_LEN: usize = 16;
/// Largest entry accepted; bounds replay's allocations on a damaged length field.
pub const META_ENTRY_BYTES_MAX: usize = 16 * 1024 * 1024;

/// An append-only log of `T` entries.
#[derive(Debug)]
pub struct MetaLog<T> {
    path: PathBuf,
    file: File,
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
    /// Opens (or creates) the log at `path` and replays it. A torn or corrupt tail is cut off;
    /// everything before it is returned in append order.
    pub fn open(path: &Path) -> Result<(MetaLog<T>, Vec<T>)> {
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| StorageError::io("open metadata log", path, e))?;
        let bytes =
            std::fs::read(path).map_err(|e| StorageError::io("read metadata log", path, e))?;
        // A header that never fully reached the disk (a crash during creation) is an empty log.
        let short = bytes.len() < FILE_HEADER_LEN as usize;
        let magic_prefix = FILE_MAGIC.starts_with(&bytes[..bytes.len().min(FILE_MAGIC.len())]);
        let unwritten = bytes.iter().all(|&b| b == 0) || (short && magic_prefix);
        let (entries, valid_len) = if unwritten {
            let mut header = [0u8; FILE_HEADER_LEN as usize];
            header[..8].copy_from_slice(FILE_MAGIC);
            header[8..10].copy_from_slice(&crate::format::FORMAT_VERSION.to_le_bytes());
            file.write_all_at(&header, 0)
                .map_err(|e| StorageError::io("write metadata log", path, e))?;
            sync_parent(path)?;
            (Vec::new(), FILE_HEADER_LEN)
        } else {
            replay(path, &bytes)?
        };
        file.set_len(valid_len)
            .map_err(|e| StorageError::io("truncate metadata log", path, e))?;
        file.sync_data()
            .map_err(|e| StorageError::io("sync metadata log", path, e))?;
        let log = MetaLog {
            path: path.to_path_buf(),
            file,
            len: valid_len,
            entries_since_compaction: entries.len(),
            latched: None,
            _entry: PhantomData,
        };
        Ok((log, entries))
    }

    /// Appends one entry; it is durable when this returns.
    pub fn append(&mut self, entry: &T) -> Result<()> {
        self.check_writable()?;
        let frame = encode_frame(entry)?;
        let written = self
            .file
            .write_all_at(&frame, self.len)
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            let error = StorageError::io("append metadata", &self.path, e);
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
    /// or the new one.
    pub fn compact(&mut self, snapshot: &[T]) -> Result<()> {
        self.check_writable()?;
        let tmp = self.path.with_extension("tmp");
        let mut out = Vec::new();
        out.extend_from_slice(FILE_MAGIC);
        out.extend_from_slice(&crate::format::FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&[0u8; 6]);
        for entry in snapshot {
            out.extend_from_slice(&encode_frame(entry)?);
        }
        let mut file = File::create(&tmp).map_err(|e| StorageError::io("create", &tmp, e))?;
        file.write_all(&out)
            .map_err(|e| StorageError::io("write", &tmp, e))?;
        file.sync_all()
            .map_err(|e| StorageError::io("sync", &tmp, e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| StorageError::io("rename", &tmp, e))?;
        // From here the path names the new file: appends must go there, never to the old,
        // unlinked one.
        match File::options().read(true).write(true).open(&self.path) {
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
        sync_parent(&self.path).inspect_err(|e| self.latched = Some(e.to_string()))
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

fn encode_frame<T>(entry: &T) -> Result<Vec<u8>>
where
    T: for<'a> rkyv::Serialize<HighSerializer<AlignedVec, ArenaHandle<'a>, rancor::Error>>,
{
    let payload = rkyv::to_bytes::<rancor::Error>(entry).map_err(|e| {
        StorageError::InvalidConfig(format!("metadata entry does not serialize: {e}"))
    })?;
    assert!(
        payload.len() <= META_ENTRY_BYTES_MAX,
        "metadata entries are small"
    );
    let mut frame = Vec::with_capacity(FRAME_HEADER_LEN + payload.len() + 8);
    frame.extend_from_slice(
        &u32::try_from(payload.len())
            .expect("bounded above")
            .to_le_bytes(),
    );
    frame.extend_from_slice(&FRAME_MAGIC.to_le_bytes());
    frame.extend_from_slice(&xxh3_64(&payload).to_le_bytes());
    frame.extend_from_slice(&payload);
    frame.resize(FRAME_HEADER_LEN + align8(payload.len() as u64) as usize, 0);
    Ok(frame)
}

/// Decodes frames until the first torn or corrupt one; returns the entries and the length of
/// the valid prefix.
fn replay<T>(path: &Path, bytes: &[u8]) -> Result<(Vec<T>, u64)>
where
    T: rkyv::Archive,
    T::Archived: for<'a> CheckBytes<HighValidator<'a, rancor::Error>>
        + rkyv::Deserialize<T, HighDeserializer<rancor::Error>>,
{
    if bytes.len() < FILE_HEADER_LEN as usize || &bytes[..8] != FILE_MAGIC {
        return Err(StorageError::Corrupt {
            path: path.to_path_buf(),
            pos: 0,
            reason: "not a metadata log".into(),
        });
    }
    let mut entries = Vec::new();
    let mut pos = FILE_HEADER_LEN as usize;
    while pos + FRAME_HEADER_LEN <= bytes.len() {
        let len = read_u32(bytes, pos) as usize;
        let end = pos + FRAME_HEADER_LEN + align8(len as u64) as usize;
        if read_u32(bytes, pos + 4) != FRAME_MAGIC
            || len > META_ENTRY_BYTES_MAX
            || end > bytes.len()
        {
            break;
        }
        let payload = &bytes[pos + FRAME_HEADER_LEN..pos + FRAME_HEADER_LEN + len];
        if xxh3_64(payload) != read_u64(bytes, pos + 8) {
            break;
        }
        let mut aligned = AlignedVec::<16>::with_capacity(len);
        aligned.extend_from_slice(payload);
        match rkyv::from_bytes::<T, rancor::Error>(&aligned) {
            Ok(entry) => entries.push(entry),
            Err(_) => break,
        }
        pos = end;
    }
    Ok((entries, pos as u64))
}

fn sync_parent(path: &Path) -> Result<()> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    File::open(parent)
        .and_then(|dir| dir.sync_all())
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
        File::options()
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
    fn a_flipped_byte_stops_replay_at_the_damaged_entry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.log");
        let (mut log, _) = MetaLog::<Entry>::open(&path).unwrap();
        for i in 0..4 {
            log.append(&entry(i)).unwrap();
        }
        drop(log);
        let mut bytes = std::fs::read(&path).unwrap();
        let second_frame = FILE_HEADER_LEN as usize + encode_frame(&entry(0)).unwrap().len();
        bytes[second_frame + FRAME_HEADER_LEN + 2] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        let (_, replayed) = MetaLog::<Entry>::open(&path).unwrap();
        assert_eq!(replayed, vec![entry(0)]);
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
        assert!(!path.with_extension("tmp").exists());
    }
}
