//! The replication layer's small state (vote, commit, membership), kept beside the log in
//! `raft.state` and replaced whole by each save (docs/design/segment-format.md, "Raft state").

use super::ShardLog;
use crate::error::{Result, StorageError};
use crate::format::{
    STATE_BYTES_MAX, STATE_SLOT_BYTES, decode_state, encode_state_slot, state_slot_offset,
};
use crate::io::{SegmentFile, SegmentIo};
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// The state file's name in a log's directory.
pub(super) const STATE_FILE: &str = "raft.state";

/// The state as last saved (or found at open), and the file to save the next one in.
pub(super) struct StateFile<F> {
    file: Option<Rc<F>>,
    generation: u64,
    current: Option<Vec<u8>>,
}

/// Reads the state file of the log in `dir`, if there is one: its newest intact copy. A file
/// whose copies are both damaged is an error, never an empty state (a Raft vote forgotten
/// could be cast twice).
pub(super) fn load_state<F>(dir: &Path) -> Result<StateFile<F>> {
    let path = dir.join(STATE_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(StorageError::io("read", &path, e)),
    };
    let found = decode_state(&bytes).map_err(|e| StorageError::Corrupt {
        path: path.clone(),
        pos: 0,
        reason: e.0.to_string(),
    })?;
    let (generation, current) = found.map_or((0, None), |(g, state)| (g, Some(state)));
    Ok(StateFile {
        file: None,
        generation,
        current,
    })
}

impl<I: SegmentIo> ShardLog<I> {
    /// The state the replication layer last saved with `save_raft_state` (before this open
    /// too), or `None` if it never saved one.
    pub fn raft_state(&self) -> Option<Vec<u8>> {
        self.state.borrow().current.clone()
    }

    /// Replaces the replication layer's state (opaque to the log, at most `STATE_BYTES_MAX`
    /// bytes) and returns once it is durable. A save cut by a crash leaves the previous one.
    pub async fn save_raft_state(&self, state: &[u8]) -> Result<()> {
        if state.len() > STATE_BYTES_MAX {
            return Err(StorageError::StateTooLarge {
                size_bytes: state.len(),
                max_bytes: STATE_BYTES_MAX,
            });
        }
        self.check_writable()?;
        let _saving = self.state_lock.lock().await;
        let path: PathBuf = self.shared.dir.join(STATE_FILE);
        let file = self.state_file(&path).await?;
        let generation = self.state.borrow().generation + 1;
        let slot = encode_state_slot(generation, state);
        if let Err(e) = file.write_at(state_slot_offset(generation), slot).await {
            return Err(self.fail("write state", &path, e));
        }
        if let Err(e) = file.sync_data().await {
            return Err(self.sync_failed(&path, e));
        }
        let mut saved = self.state.borrow_mut();
        saved.generation = generation;
        saved.current = Some(state.to_vec());
        Ok(())
    }

    /// The state file, created (both slots allocated, the name durable) on the first save.
    async fn state_file(&self, path: &Path) -> Result<Rc<I::File>> {
        if let Some(file) = self.state.borrow().file.clone() {
            return Ok(file);
        }
        let opened = match path.exists() {
            true => self.io.open(path).await,
            false => match self.io.create(path, 2 * STATE_SLOT_BYTES).await {
                Ok(file) => match self.io.sync_dir(&self.shared.dir).await {
                    Ok(()) => Ok(file),
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            },
        };
        let file = Rc::new(opened.map_err(|e| self.fail("open state", path, e))?);
        self.state.borrow_mut().file = Some(file.clone());
        Ok(file)
    }
}
