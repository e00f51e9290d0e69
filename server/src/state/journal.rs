//! The state's files: a snapshot and a journal of changes since it.
//!
//! Journal frame: `SSJ1` (4 bytes), payload length (u32 LE), xxh3-64 of the payload (u64 LE),
//! then the payload: the JSON of the changes one update made. A change sets one stream's
//! extras (or removes them) or the account settings, so replaying frames in order over the
//! snapshot gives the state, and replaying them over a newer snapshot gives it too (the
//! snapshot already holds their effect): a crash between writing a snapshot and replacing the
//! journal loses nothing.
//!
//! Opening: a frame cut short, or whose checksum fails, at the end of the journal is a write
//! that never completed (never acknowledged): it is dropped and the journal cut there. A
//! damaged frame followed by more bytes is damage, refused with an error naming the file and
//! the offset: a corrupt byte is never read as state.

use super::{Persisted, StreamExtras};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use xxhash_rust::xxh3::xxh3_64;

/// The snapshot's file name.
pub(super) const SNAPSHOT: &str = "server-state.json";
/// The journal's file name.
pub(super) const JOURNAL: &str = "server-state.journal";
const MAGIC: &[u8; 4] = b"SSJ1";
const FRAME_HEADER_LEN: usize = 16;
/// The journal is folded into a new snapshot once it is larger than this and than the
/// snapshot.
const COMPACT_BYTES_MIN: u64 = 1 << 20;

/// One change to the state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) enum Change {
    /// A stream's extras set, or removed (`None`).
    Stream {
        name: String,
        extras: Option<Arc<StreamExtras>>,
    },
    /// The account's billing commitment.
    Billing(Option<String>),
    /// A data key added.
    DataKey(u32, super::WrappedDataKey),
}

/// The changes that turn `current` into `next`.
pub(super) fn diff(current: &Persisted, next: &Persisted) -> Vec<Change> {
    let mut changes = Vec::new();
    for (name, extras) in &next.streams {
        let same = current
            .streams
            .get(name)
            .is_some_and(|old| Arc::ptr_eq(old, extras) || old == extras);
        if !same {
            changes.push(Change::Stream {
                name: name.clone(),
                extras: Some(extras.clone()),
            });
        }
    }
    for name in current.streams.keys() {
        if !next.streams.contains_key(name) {
            changes.push(Change::Stream {
                name: name.clone(),
                extras: None,
            });
        }
    }
    if current.billing_commitment != next.billing_commitment {
        changes.push(Change::Billing(next.billing_commitment.clone()));
    }
    for (id, key) in &next.data_keys {
        if current.data_keys.get(id) != Some(key) {
            changes.push(Change::DataKey(*id, key.clone()));
        }
    }
    changes
}

fn apply(state: &mut Persisted, change: Change) {
    match change {
        Change::Stream {
            name,
            extras: Some(extras),
        } => {
            state.streams.insert(name, extras);
        }
        Change::Stream { name, extras: None } => {
            state.streams.remove(&name);
        }
        Change::Billing(commitment) => state.billing_commitment = commitment,
        Change::DataKey(id, key) => {
            state.data_keys.insert(id, key);
        }
    }
}

/// The files of one state, open for appending.
#[derive(Debug)]
pub(super) struct Store {
    dir: PathBuf,
    journal: File,
    /// Bytes of whole frames in the journal: the next frame goes here.
    journal_len: u64,
    snapshot_len: u64,
    /// Set when a write failed in a way that leaves the files uncertain (a failed sync):
    /// every later change is refused until a restart reads them again.
    broken: Option<String>,
}

fn damaged(path: &Path, what: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{} is damaged: {what}", path.display()),
    )
}

impl Store {
    /// Reads the snapshot and replays the journal.
    pub(super) fn open(dir: &Path) -> io::Result<(Store, Persisted)> {
        let snapshot_path = dir.join(SNAPSHOT);
        let (mut state, snapshot_len) = match std::fs::read(&snapshot_path) {
            Ok(bytes) => (
                serde_json::from_slice(&bytes).map_err(|e| damaged(&snapshot_path, e))?,
                bytes.len() as u64,
            ),
            Err(e) if e.kind() == io::ErrorKind::NotFound => (Persisted::default(), 0),
            Err(e) => return Err(e),
        };
        let journal_path = dir.join(JOURNAL);
        let bytes = match std::fs::read(&journal_path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let (frames, whole) = read_frames(&bytes).map_err(|e| damaged(&journal_path, e))?;
        for changes in frames {
            changes
                .into_iter()
                .for_each(|change| apply(&mut state, change));
        }
        let journal = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .mode(0o600)
            .open(&journal_path)?;
        if whole < bytes.len() as u64 {
            // A torn last frame: never acknowledged; cut so the next frame follows the last
            // whole one.
            journal.set_len(whole)?;
            journal.sync_all()?;
        }
        let store = Store {
            dir: dir.to_owned(),
            journal,
            journal_len: whole,
            snapshot_len,
            broken: None,
        };
        Ok((store, state))
    }

    /// Appends one update's changes and makes them durable; `next` is the state after them
    /// (written as the new snapshot when the journal has grown enough).
    pub(super) fn append(&mut self, changes: &[Change], next: &Persisted) -> io::Result<()> {
        if let Some(reason) = &self.broken {
            return Err(io::Error::other(format!(
                "an earlier write failed ({reason}); restart the server to read the state again"
            )));
        }
        let payload = serde_json::to_vec(changes).expect("changes serialize");
        let mut frame = Vec::with_capacity(FRAME_HEADER_LEN + payload.len());
        frame.extend_from_slice(MAGIC);
        frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        frame.extend_from_slice(&xxh3_64(&payload).to_le_bytes());
        frame.extend_from_slice(&payload);
        // At the end of the whole frames, not O_APPEND: a failed write is overwritten.
        let written = self
            .journal
            .write_all_at(&frame, self.journal_len)
            .and_then(|()| self.journal.sync_data());
        if let Err(e) = written {
            self.broken = Some(e.to_string());
            return Err(e);
        }
        self.journal_len += frame.len() as u64;
        if self.journal_len > COMPACT_BYTES_MIN.max(self.snapshot_len) {
            // The change is durable already. A compaction that fails before the journal is
            // replaced leaves a long journal (over the old snapshot or a newer one: both
            // replay to the same state), and appending goes on; one that replaced the
            // journal but cannot open it has nowhere to append.
            self.compact(next);
        }
        Ok(())
    }

    /// Writes `state` as the snapshot, then replaces the journal with an empty one.
    fn compact(&mut self, state: &Persisted) {
        let bytes = serde_json::to_vec(state).expect("state serializes");
        if crate::private_file::replace(&self.dir.join(SNAPSHOT), &bytes).is_err() {
            return;
        }
        self.snapshot_len = bytes.len() as u64;
        let replaced = crate::private_file::replace(&self.dir.join(JOURNAL), &[]);
        // Even a failed replacement may have renamed (only the directory's sync failed):
        // what decides is which file the name holds now.
        use std::os::unix::fs::MetadataExt as _;
        let ours = self.journal.metadata().map(|m| m.ino()).ok();
        let named = std::fs::metadata(self.dir.join(JOURNAL))
            .map(|m| m.ino())
            .ok();
        if replaced.is_err() && ours.is_some() && ours == named {
            return;
        }
        let reopened = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.dir.join(JOURNAL));
        match reopened {
            Ok(journal) => {
                self.journal = journal;
                self.journal_len = 0;
            }
            Err(e) => self.broken = Some(format!("opening the new journal: {e}")),
        }
    }
}

/// Whether a whole, sound frame starts anywhere in `bytes`.
fn holds_a_frame(bytes: &[u8]) -> bool {
    (0..bytes.len().saturating_sub(FRAME_HEADER_LEN - 1)).any(|i| {
        let rest = &bytes[i..];
        if &rest[..4] != MAGIC {
            return false;
        }
        let len = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes")) as usize;
        let checksum = u64::from_le_bytes(rest[8..16].try_into().expect("8 bytes"));
        rest.get(FRAME_HEADER_LEN..FRAME_HEADER_LEN.saturating_add(len))
            .is_some_and(|payload| xxh3_64(payload) == checksum)
    })
}

/// The frames of a journal, and the length of its whole frames (a torn last frame
/// excluded); an error for damage before the end.
fn read_frames(bytes: &[u8]) -> Result<(Vec<Vec<Change>>, u64), String> {
    let mut frames = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let rest = &bytes[at..];
        if rest.len() < FRAME_HEADER_LEN {
            break; // torn header
        }
        let len = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes")) as usize;
        let end = FRAME_HEADER_LEN.saturating_add(len);
        let whole = &rest[..end.min(rest.len())];
        let checksum = u64::from_le_bytes(rest[8..16].try_into().expect("8 bytes"));
        let sound = &rest[..4] == MAGIC
            && end <= rest.len()
            && xxh3_64(&whole[FRAME_HEADER_LEN..]) == checksum;
        if !sound {
            // The last write, cut short or never completed (its header too may be garbage):
            // nothing whole may follow it. A sound frame after it means damage.
            if !holds_a_frame(&rest[1..]) {
                break;
            }
            return Err(format!(
                "the frame at byte {at} is corrupt and more follow it"
            ));
        }
        let changes = serde_json::from_slice(&whole[FRAME_HEADER_LEN..])
            .map_err(|e| format!("the frame at byte {at} does not decode: {e}"))?;
        frames.push(changes);
        at += end;
    }
    Ok((frames, at as u64))
}
