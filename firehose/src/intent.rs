//! The flush journal: before an object is written, the key and the positions its records
//! end at are on disk, so a restart can tell a written object (commit its positions) from
//! one never written (deliver its records again). docs/design/firehose.md, "Crash argument".

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;
use xxhash_rust::xxh3::xxh3_64;

/// A flush under way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Intent {
    /// The object's key in the destination bucket; empty when the flush writes none (a
    /// transform dropped or failed every record).
    pub(crate) key: String,
    /// Per shard id, the sequence number (decimal) of the last record in the object.
    pub(crate) positions: BTreeMap<String, String>,
    /// Records in the object.
    pub(crate) records: u64,
    /// The object's size: a shorter one was torn by a power cut before its sync.
    pub(crate) size: u64,
    /// The delivery stream's incarnation, and the source stream's creation time: a journal
    /// of another life of either is not settled.
    pub(crate) incarnation: String,
    pub(crate) source_created_ms: u64,
    /// The error output's object (records a transform failed) and its size; empty for none.
    #[serde(default)]
    pub(crate) error_key: String,
    #[serde(default)]
    pub(crate) error_size: u64,
    /// For an HTTP endpoint, the request's id (empty for objects): whether the endpoint
    /// took the request cannot be learnt, so `key` names the error output of the records
    /// it did not take, once known, and is empty while the request is under way.
    #[serde(default)]
    pub(crate) request_id: String,
    /// For a database, `key` is the staged object to load (whether it is loaded, the
    /// database's own record of loads says).
    #[serde(default)]
    pub(crate) load: bool,
    /// The flush's other objects (dynamic partitioning: one per partition), each with its
    /// size; `key` is the first.
    #[serde(default)]
    pub(crate) more: Vec<(String, u64)>,
    /// The source record backup's object (in the backup bucket) and its size; empty for
    /// none.
    #[serde(default)]
    pub(crate) backup_key: String,
    #[serde(default)]
    pub(crate) backup_size: u64,
    /// The buckets the objects went to: the destination's, and the backup's (empty when
    /// none): a restart settles there, whatever the destination says since (an update may
    /// have changed or removed either). Empty `bucket`: a journal written before buckets
    /// were named, settled in the destination's.
    #[serde(default)]
    pub(crate) bucket: String,
    #[serde(default)]
    pub(crate) backup_bucket: String,
}

/// The journal file's size at least: it is zero-filled once and then overwritten in place,
/// so writing an intent costs one `fdatasync` of blocks already allocated (no rename, no
/// directory sync, no metadata to commit).
const JOURNAL_BYTES_MIN: usize = 4096;
/// A record: length (u32 LE), xxh3 of the JSON (u64 LE), the JSON. A zero length is none.
const HEADER: usize = 12;

/// Writes `intent` durably: when this returns, a restart reads it back whole.
pub(crate) fn write(path: &Path, intent: &Intent) -> std::io::Result<()> {
    let json = serde_json::to_vec(intent).map_err(std::io::Error::other)?;
    let mut record = Vec::with_capacity(HEADER + json.len());
    record.extend_from_slice(&(json.len() as u32).to_le_bytes());
    record.extend_from_slice(&xxh3_64(&json).to_le_bytes());
    record.extend_from_slice(&json);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    if file.metadata()?.len() < record.len() as u64 {
        // New, or too small for this record (many shards): zero-filled to a size that
        // holds it, durably, once. A cut before the record is written leaves zeros: no
        // intent, and no object was written after it.
        let size = record.len().next_power_of_two().max(JOURNAL_BYTES_MIN);
        file.write_all_at(&vec![0; size], 0)?;
        file.sync_all()?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
    }
    file.write_all_at(&record, 0)?;
    file.sync_data()
}

/// The intent left at `path`, if any. A record torn by a power cut (its checksum does not
/// match) was never synced whole, so no object was written after it: as good as none. A
/// file that cannot be read is an error (the flush it names is unknown).
pub(crate) fn read(path: &Path) -> std::io::Result<Option<Intent>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let Some((header, rest)) = bytes.split_first_chunk::<HEADER>() else {
        return Ok(None);
    };
    let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
    let sum = u64::from_le_bytes(header[4..].try_into().expect("8 bytes"));
    match rest.get(..len) {
        Some(json) if len > 0 && xxh3_64(json) == sum => Ok(serde_json::from_slice(json).ok()),
        _ => Ok(None),
    }
}

/// Removes the intent and syncs the directory: before a delivery stream of this name is
/// deleted or created, so no later life of it finds the journal.
pub(crate) fn remove_durably(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    match path.parent() {
        Some(dir) if dir.exists() => std::fs::File::open(dir)?.sync_all(),
        _ => Ok(()),
    }
}

/// Clears the intent (its positions are committed, or it was settled): a zero length, in
/// place. Not synced: an intent that comes back after a crash is settled again, which
/// commits nothing new (positions are only ever raised) or finds no object.
pub(crate) fn clear(path: &Path) -> std::io::Result<()> {
    match OpenOptions::new().write(true).open(path) {
        Ok(file) => file.write_all_at(&[0; 4], 0),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intent(shards: usize) -> Intent {
        Intent {
            key: "2026/12/05/07/s-1-2026-12-05-07-00-00-x".into(),
            positions: (0..shards)
                .map(|i| {
                    (
                        format!("shardId-{i:012}"),
                        format!("{}", u128::MAX - i as u128),
                    )
                })
                .collect(),
            records: 7,
            size: 1234,
            incarnation: "inc".into(),
            source_created_ms: 42,
            error_key: String::new(),
            error_size: 0,
            request_id: String::new(),
            load: false,
            more: Vec::new(),
            backup_key: String::new(),
            backup_size: 0,
            bucket: String::new(),
            backup_bucket: String::new(),
        }
    }

    #[test]
    fn an_intent_reads_back_until_cleared_and_the_next_overwrites_it_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.intent");
        assert_eq!(read(&path).unwrap(), None);
        clear(&path).unwrap();
        write(&path, &intent(1)).unwrap();
        assert_eq!(read(&path).unwrap(), Some(intent(1)));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 4096);
        clear(&path).unwrap();
        assert_eq!(read(&path).unwrap(), None);
        write(&path, &intent(2)).unwrap();
        assert_eq!(read(&path).unwrap(), Some(intent(2)));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 4096);
    }

    #[test]
    fn a_record_larger_than_the_file_grows_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.intent");
        write(&path, &intent(1)).unwrap();
        write(&path, &intent(500)).unwrap();
        assert_eq!(read(&path).unwrap(), Some(intent(500)));
        assert!(std::fs::metadata(&path).unwrap().len() > 4096);
        // A smaller one after it: the stale tail past its length is never read.
        write(&path, &intent(3)).unwrap();
        assert_eq!(read(&path).unwrap(), Some(intent(3)));
    }

    #[test]
    fn a_torn_record_is_no_intent_whichever_byte_differs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.intent");
        write(&path, &intent(2)).unwrap();
        let whole = std::fs::read(&path).unwrap();
        let used = HEADER + serde_json::to_vec(&intent(2)).unwrap().len();
        for at in 0..used {
            let mut torn = whole.clone();
            torn[at] ^= 0x20;
            std::fs::write(&path, &torn).unwrap();
            assert_eq!(read(&path).unwrap(), None, "byte {at} changed");
        }
        // A file cut short (never zero-filled whole) is none too.
        std::fs::write(&path, &whole[..used - 1]).unwrap();
        assert_eq!(read(&path).unwrap(), None);
    }
}
