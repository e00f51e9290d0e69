//! How far each file of each flow has been acknowledged, kept durably
//! (docs/design/agent.md, "Checkpoints"): written whole through a temporary file, synced and
//! renamed into place, with a checksum that a damaged file fails.

use crate::AgentError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A file as the tracker knows it: its identity on its file system and its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FileId {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
}

/// The xxh3 of a file's first `len` bytes (at most [`FINGERPRINT_BYTES`]): the same for a
/// file and its copy, different for a file truncated and written again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// How many first bytes it covers.
    pub len: u64,
    /// Their xxh3.
    pub hash: u64,
}

/// How many of a file's first bytes its fingerprint covers, once it has them.
pub const FINGERPRINT_BYTES: u64 = 1024;

/// How far a file has been acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilePosition {
    /// Where it was last seen.
    pub path: PathBuf,
    /// Its identity.
    pub id: FileId,
    /// Its first bytes.
    pub fingerprint: Fingerprint,
    /// Bytes acknowledged: the records before it are in the destination.
    pub offset: u64,
}

/// Every flow's file positions, and where they are kept.
#[derive(Debug)]
pub struct Checkpoints {
    path: PathBuf,
    flows: BTreeMap<String, Vec<FilePosition>>,
    /// `<checkpoint file>.lock`, locked while this agent runs: two agents on one file
    /// would overwrite each other's positions.
    _lock: std::fs::File,
}

#[derive(Serialize, Deserialize)]
struct Saved {
    version: u32,
    flows: BTreeMap<String, Vec<FilePosition>>,
}

const VERSION: u32 = 1;
/// The last line of the file: the checksum of what comes before it.
const CHECKSUM_PREFIX: &str = "xxh3 ";

impl Checkpoints {
    /// Reads the checkpoint file at `path`; none there is no flow read yet. A file that is
    /// damaged is refused, not guessed at.
    pub fn open(path: &Path) -> Result<Checkpoints, AgentError> {
        let lock = lock(path)?;
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Checkpoints {
                    path: path.to_owned(),
                    flows: BTreeMap::new(),
                    _lock: lock,
                });
            }
            Err(e) => return Err(AgentError::io("read", path, e)),
        };
        let damaged = |why: String| AgentError::Checkpoint {
            path: path.to_owned(),
            why,
        };
        let (body, last) = text
            .trim_end_matches('\n')
            .rsplit_once('\n')
            .ok_or_else(|| damaged("it has no checksum line".into()))?;
        let expected = last
            .strip_prefix(CHECKSUM_PREFIX)
            .ok_or_else(|| damaged("its last line is not its checksum".into()))?;
        let found = format!("{:016x}", xxhash_rust::xxh3::xxh3_64(body.as_bytes()));
        if expected != found {
            return Err(damaged(format!(
                "its checksum is {expected}, its contents' {found}"
            )));
        }
        let saved: Saved = serde_json::from_str(body).map_err(|e| damaged(e.to_string()))?;
        if saved.version != VERSION {
            return Err(damaged(format!(
                "version {} is not {VERSION}",
                saved.version
            )));
        }
        Ok(Checkpoints {
            path: path.to_owned(),
            flows: saved.flows,
            _lock: lock,
        })
    }

    /// Whether the file holds anything for `flow`.
    pub fn knows(&self, flow: &str) -> bool {
        self.flows.contains_key(flow)
    }

    /// `flow`'s file positions.
    pub fn flow(&self, flow: &str) -> &[FilePosition] {
        self.flows.get(flow).map_or(&[], Vec::as_slice)
    }

    /// Sets `flow`'s file positions (kept by [`Checkpoints::save`]).
    pub fn set_flow(&mut self, flow: &str, positions: Vec<FilePosition>) {
        self.flows.insert(flow.to_owned(), positions);
    }

    /// Writes every flow's positions durably: a temporary file beside the checkpoint file,
    /// synced, renamed over it, and the directory synced. A crash leaves the old file or
    /// the new one.
    pub fn save(&self) -> Result<(), AgentError> {
        let body = serde_json::to_string_pretty(&Saved {
            version: VERSION,
            flows: self.flows.clone(),
        })
        .map_err(|e| AgentError::io("encode", &self.path, e))?;
        let checksum = xxhash_rust::xxh3::xxh3_64(body.as_bytes());
        let text = format!("{body}\n{CHECKSUM_PREFIX}{checksum:016x}\n");
        let dir = match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
            _ => PathBuf::from("."),
        };
        let mut temporary = self.path.clone().into_os_string();
        temporary.push(".writing");
        let temporary = PathBuf::from(temporary);
        let mut file = std::fs::File::create(&temporary)
            .map_err(|e| AgentError::io("create", &temporary, e))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_data())
            .map_err(|e| AgentError::io("write", &temporary, e))?;
        std::fs::rename(&temporary, &self.path)
            .map_err(|e| AgentError::io("rename into", &self.path, e))?;
        std::fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| AgentError::io("sync", &dir, e))
    }
}

/// Locks `<path>.lock`, refusing when another agent holds it.
fn lock(path: &Path) -> Result<std::fs::File, AgentError> {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let lock_path = PathBuf::from(name);
    let file =
        std::fs::File::create(&lock_path).map_err(|e| AgentError::io("create", &lock_path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(AgentError::Checkpoint {
            path: path.to_owned(),
            why: "another agent is using it".into(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(AgentError::io("lock", &lock_path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn position(offset: u64) -> FilePosition {
        FilePosition {
            path: "/var/log/app.log".into(),
            id: FileId { dev: 1, ino: 2 },
            fingerprint: Fingerprint { len: 10, hash: 3 },
            offset,
        }
    }

    #[test]
    fn positions_saved_are_read_back_and_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoints.json");
        let mut checkpoints = Checkpoints::open(&path).unwrap();
        assert!(!checkpoints.knows("flow"));
        checkpoints.set_flow("flow", vec![position(42)]);
        checkpoints.save().unwrap();
        checkpoints.set_flow("flow", vec![position(43)]);
        checkpoints.save().unwrap();
        assert!(
            Checkpoints::open(&path).is_err(),
            "one agent a checkpoint file"
        );
        drop(checkpoints);
        let read = Checkpoints::open(&path).unwrap();
        assert_eq!(read.flow("flow"), [position(43)]);
        assert!(!dir.path().join("checkpoints.json.writing").exists());

        // One digit changed: the checksum no longer holds.
        drop(read);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("43", "44")).unwrap();
        let refused = Checkpoints::open(&path).unwrap_err().to_string();
        assert!(refused.contains("checksum"), "{refused}");
        std::fs::write(&path, "{}").unwrap();
        assert!(Checkpoints::open(&path).is_err());
    }
}
