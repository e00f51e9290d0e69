//! The metadata log of a data directory, for an operator: what it holds, and the deliberate
//! repair of one that is damaged before its end, which [`Engine::open`](crate::Engine::open)
//! refuses with [`OpenError::MetadataDamaged`]. `sluice repair-metadata` runs these.
//!
//! A repair keeps every valid entry in order and drops only the damaged bytes, so the engine
//! then holds what the surviving entries say: a stream whose only entry was damaged is gone
//! (its directory is set aside in `orphaned-streams/` on open, never deleted), and a stream
//! whose `Delete` entry was damaged comes back. The damaged file is copied aside first.
//!
//! ```
//! # fn main() -> Result<(), sluice_core::OpenError> {
//! # let dir = tempfile::tempdir().unwrap();
//! # let mut config = sluice_core::EngineConfig::new(dir.path());
//! # config.cores = 1;
//! # drop(sluice_core::Engine::open(config)?);
//! let report = sluice_core::metadata::inspect(dir.path())?;
//! assert!(!report.scan.is_damaged());
//! let repair = sluice_core::metadata::repair(dir.path())?;
//! assert_eq!(repair.damaged_copy, None, "nothing to repair: left alone");
//! # Ok(())
//! # }
//! ```

use crate::catalog::MetaEntry;
use crate::control::{META_LOG, ORPHANS_DIR, STREAMS_DIR, replay};
use crate::error::OpenError;
use sluice_storage::{DataDir, MetaLog, StorageError};
use std::path::{Path, PathBuf};

pub use sluice_storage::MetaLogScan;

/// What [`inspect`] found, or [`repair`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetadataReport {
    /// The metadata log (`<data dir>/meta.log`).
    pub path: PathBuf,
    /// The log as it was found.
    pub scan: MetaLogScan,
    /// Where the damaged log was copied before it was rewritten (`meta.log.damaged-<unix
    /// ms>`); `None` when nothing was rewritten.
    pub damaged_copy: Option<PathBuf>,
    /// After a repair: the uid floor recorded because stream directories name uids the
    /// surviving entries no longer account for, so those uids are never issued again.
    pub uid_floor: Option<u64>,
}

/// Reads the metadata log of the engine in `data_dir` and says what a replay would make of
/// it. Changes nothing. Fails with [`StorageError::InUse`] while an engine has the directory
/// open.
pub fn inspect(data_dir: impl AsRef<Path>) -> Result<MetadataReport, OpenError> {
    let (dir, _lock) = lock(data_dir.as_ref())?;
    let path = dir.root().join(META_LOG);
    let scan = MetaLog::<MetaEntry>::inspect(&path)?;
    Ok(MetadataReport {
        path,
        scan,
        damaged_copy: None,
        uid_floor: None,
    })
}

/// Repairs the metadata log of the engine in `data_dir` if it is damaged before its end:
/// copies it aside as found, then rewrites it with every valid entry (syncing the file and
/// the directory), and records a uid floor above every stream directory (live or set aside)
/// so no uid is issued twice. A log without such damage is left alone. Fails with
/// [`StorageError::InUse`] while an engine has the directory open.
pub fn repair(data_dir: impl AsRef<Path>) -> Result<MetadataReport, OpenError> {
    let (dir, _lock) = lock(data_dir.as_ref())?;
    let path = dir.root().join(META_LOG);
    let repaired = MetaLog::<MetaEntry>::repair(&path)?;
    let uid_floor = match repaired.damaged_copy {
        Some(_) => record_uid_floor(dir.root(), &path)?,
        None => None,
    };
    Ok(MetadataReport {
        path,
        scan: repaired.scan,
        damaged_copy: repaired.damaged_copy,
        uid_floor,
    })
}

/// The data directory, which must exist, and its lock.
fn lock(data_dir: &Path) -> Result<(DataDir, std::fs::File), OpenError> {
    if let Err(e) = std::fs::read_dir(data_dir) {
        return Err(StorageError::io("open data dir", data_dir, e).into());
    }
    let dir = DataDir::new(data_dir)?;
    let lock = dir.lock()?;
    Ok((dir, lock))
}

/// Appends a uid floor above the highest uid a stream directory names, if the log's entries
/// would issue that uid again.
fn record_uid_floor(root: &Path, path: &Path) -> Result<Option<u64>, OpenError> {
    let Some(highest) = highest_dir_uid(root)? else {
        return Ok(None);
    };
    let (mut log, entries) = MetaLog::<MetaEntry>::open(path)?;
    let next_uid = replay(entries).next_uid;
    if highest < next_uid {
        return Ok(None);
    }
    log.append(&MetaEntry::UidFloor {
        next_uid: highest + 1,
    })?;
    Ok(Some(highest + 1))
}

/// The highest uid named by `streams/<uid>` or `orphaned-streams/<uid>-<ms>`.
fn highest_dir_uid(root: &Path) -> Result<Option<u64>, OpenError> {
    let mut highest = None;
    for dir in [STREAMS_DIR, ORPHANS_DIR] {
        let dir = root.join(dir);
        let listing = match std::fs::read_dir(&dir) {
            Ok(listing) => listing,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(StorageError::io("list streams", &dir, e).into()),
        };
        for entry in listing {
            let entry = entry.map_err(|e| StorageError::io("list streams", &dir, e))?;
            let name = entry.file_name();
            let uid = name
                .to_str()
                .and_then(|n| n.split('-').next())
                .and_then(|n| n.parse::<u64>().ok());
            highest = highest.max(uid);
        }
    }
    Ok(highest)
}
