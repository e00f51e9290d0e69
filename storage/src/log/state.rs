//! The replication layer's small state (vote, commit, membership), kept beside the log in
//! `raft.state` and replaced whole by each save (docs/design/segment-format.md, "Raft state").

use super::ShardLog;
use crate::config::LogConfig;
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
    /// The file's bytes as the open read them, until `settle_state` made them durable.
    read_at_open: Option<Vec<u8>>,
    /// This process wrote the generation 0 copy (see `state_file`).
    zero_copy_written: bool,
}

/// Reads the state file of a replicated log in `dir`, if there is one: its newest intact copy.
/// A file whose copies are both damaged is an error, never an empty state (a Raft vote
/// forgotten could be cast twice). The open then makes what was read durable
/// (`settle_state`) before anyone sees it.
pub(super) fn load_state<F>(dir: &Path, config: &LogConfig) -> Result<StateFile<F>> {
    let empty = StateFile {
        file: None,
        generation: 0,
        current: None,
        read_at_open: None,
        zero_copy_written: false,
    };
    if !config.replicated {
        return Ok(empty);
    }
    let path = dir.join(STATE_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(empty),
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
        read_at_open: Some(bytes),
        zero_copy_written: false,
    })
}

impl<I: SegmentIo> ShardLog<I> {
    /// Makes the state file the open read durable, with its name: the bytes may come from the
    /// page cache of a save whose sync never completed, and a node must not act on a state (a
    /// vote) that a power loss would take back. After a failed sync (`rewrite`: the cache may
    /// hold pages marked clean that never reached the device) the bytes are written again.
    pub(super) async fn settle_state(&self, rewrite: bool) -> Result<()> {
        let Some(bytes) = self.state.borrow_mut().read_at_open.take() else {
            return Ok(());
        };
        let path = self.shared.dir.join(STATE_FILE);
        let file = self
            .io
            .open(&path)
            .await
            .map_err(|e| self.fail("open state", &path, e))?;
        if rewrite && let Err(e) = file.write_at(0, bytes).await {
            return Err(self.fail("rewrite state", &path, e));
        }
        self.sync_file(&file, &path).await?;
        if let Err(e) = self.io.sync_dir(&self.shared.dir).await {
            return Err(self.fail("sync dir", &self.shared.dir, e));
        }
        self.state.borrow_mut().file = Some(Rc::new(file));
        Ok(())
    }

    /// The state the replication layer last saved with `save_raft_state` (before this open
    /// too), or `None` if it never saved one.
    pub fn raft_state(&self) -> Option<Vec<u8>> {
        self.state.borrow().current.clone()
    }

    /// Replaces the replication layer's state (opaque to the log, at most `STATE_BYTES_MAX`
    /// bytes) and returns once it is durable. A save cut by a crash leaves the previous one.
    pub async fn save_raft_state(&self, state: &[u8]) -> Result<()> {
        if !self.config.replicated {
            return Err(StorageError::EntryRefused {
                reason: "a single-node log keeps no Raft state".into(),
            });
        }
        if state.len() > STATE_BYTES_MAX {
            return Err(StorageError::StateTooLarge {
                size_bytes: state.len(),
                max_bytes: STATE_BYTES_MAX,
            });
        }
        self.check_writable()?;
        let _saving = self.state_lock.lock().await;
        self.check_writable()?;
        let path: PathBuf = self.shared.dir.join(STATE_FILE);
        let file = self.state_file(&path).await?;
        let generation = self.state.borrow().generation + 1;
        let slot = encode_state_slot(generation, state);
        if let Err(e) = file.write_at(state_slot_offset(generation), slot).await {
            return Err(self.fail("write state", &path, e));
        }
        self.sync_file(&file, &path).await?;
        let mut saved = self.state.borrow_mut();
        saved.generation = generation;
        saved.current = Some(state.to_vec());
        Ok(())
    }

    /// The state file, created on the first save, with slot 0 holding an intact "no state"
    /// copy (generation 0) before any save writes slot 1: a torn first save then falls back
    /// to it rather than leave no intact copy. Written before this process's first save of a
    /// log that has none, also over a file whose creation a crash cut short of it.
    async fn state_file(&self, path: &Path) -> Result<Rc<I::File>> {
        let cached = self.state.borrow().file.clone();
        let file = match cached {
            Some(file) => file,
            None => {
                let file = match path.exists() {
                    true => self.io.open(path).await,
                    false => self.io.create(path, 2 * STATE_SLOT_BYTES).await,
                };
                Rc::new(file.map_err(|e| self.fail("create state", path, e))?)
            }
        };
        self.state.borrow_mut().file = Some(file.clone());
        let needs_zero_copy = {
            let state = self.state.borrow();
            state.generation == 0 && !state.zero_copy_written
        };
        if needs_zero_copy {
            let zero = encode_state_slot(0, &[]);
            if let Err(e) = file.write_at(state_slot_offset(0), zero).await {
                return Err(self.fail("write state", path, e));
            }
            self.sync_file(&file, path).await?;
            if let Err(e) = self.io.sync_dir(&self.shared.dir).await {
                return Err(self.fail("sync dir", &self.shared.dir, e));
            }
            self.state.borrow_mut().zero_copy_written = true;
        }
        Ok(file)
    }
}
