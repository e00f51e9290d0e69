//! The flush journal: before an object is written, the key and the positions its records
//! end at are on disk, so a restart can tell a written object (commit its positions) from
//! one never written (deliver its records again). docs/design/firehose.md, "Crash argument".

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// A flush under way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Intent {
    /// The object's key in the destination bucket.
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
}

/// Writes `intent` durably and atomically.
pub(crate) fn write(path: &Path, intent: &Intent) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(intent).map_err(std::io::Error::other)?;
    crate::files::write_atomically(path, &bytes)
}

/// The intent left at `path`, if any. One that cannot be parsed was never renamed into
/// place whole, so no object was written after it: as good as none. A file that cannot be
/// read is an error (the flush it names is unknown).
pub(crate) fn read(path: &Path) -> std::io::Result<Option<Intent>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Removes the intent and syncs the directory: before a delivery stream of this name is
/// deleted or created, so no later life of it finds the journal.
pub(crate) fn remove_durably(path: &Path) -> std::io::Result<()> {
    clear(path)?;
    match path.parent() {
        Some(dir) if dir.exists() => std::fs::File::open(dir)?.sync_all(),
        _ => Ok(()),
    }
}

/// Removes the intent (its positions are committed). Not synced: an intent that comes back
/// after a crash names an object that exists, and its positions are only ever raised.
pub(crate) fn clear(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
