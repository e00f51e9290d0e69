//! Fault injection behind the I/O seam: fail the Nth write or sync, or every create, with a
//! chosen error; and power loss: every write no sync has covered can be undone, as if the
//! machine lost power. Shared state so a test can arm faults while the log runs.

use super::{SegmentFile, SegmentIo};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// The error an injected fault returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// EIO.
    Eio,
    /// ENOSPC.
    NoSpace,
}

impl Fault {
    fn error(self) -> io::Error {
        match self {
            Fault::Eio => io::Error::from_raw_os_error(libc::EIO),
            Fault::NoSpace => io::Error::from_raw_os_error(libc::ENOSPC),
        }
    }
}

/// What to fail. Counters count calls since the plan was armed; `None` never fails.
#[derive(Debug, Default, Clone)]
pub struct FaultPlan {
    /// Fail the write with this index (0 = the next write), and every write after it.
    pub fail_write_from: Option<(u64, Fault)>,
    /// Fail the sync with this index, and every sync after it.
    pub fail_sync_from: Option<(u64, Fault)>,
    /// Fail every file creation.
    pub fail_create: Option<Fault>,
}

/// A completed write no sync has covered yet: its number, offset and the bytes it replaced.
#[derive(Debug)]
struct UndoRecord {
    id: u64,
    pos: u64,
    old: Vec<u8>,
}

/// Counters and the sync gate, shared by the io and its files.
#[derive(Debug, Default)]
struct FaultState {
    plan: RefCell<FaultPlan>,
    writes: Cell<u64>,
    syncs: Cell<u64>,
    syncs_completed: Cell<u64>,
    /// Syncs wait for a read guard; a test holding the write guard stalls them.
    sync_gate: std::sync::Arc<async_lock::RwLock<()>>,
    /// The same for writes.
    write_gate: std::sync::Arc<async_lock::RwLock<()>>,
    writes_waiting: Cell<u64>,
    /// Per file, the bytes each write since the file's last sync replaced, oldest first.
    unsynced: RefCell<HashMap<PathBuf, Vec<UndoRecord>>>,
    /// Numbers completed writes, so a sync knows which ones finished before it started.
    writes_completed: Cell<u64>,
}

/// Counts one more call; returns the fault if this call is at or past the first failing one.
fn hit(counter: &Cell<u64>, from: Option<(u64, Fault)>) -> Option<Fault> {
    let n = counter.get();
    counter.set(n + 1);
    from.filter(|(first, _)| n >= *first)
        .map(|(_, fault)| fault)
}

/// While alive, every sync (or write) of the [`FaultyIo`] that made it waits.
#[derive(Debug)]
pub struct SyncHold(#[allow(dead_code)] async_lock::RwLockWriteGuardArc<()>);

/// Wraps another [`SegmentIo`], failing calls as its [`FaultPlan`] says.
#[derive(Debug, Clone)]
pub struct FaultyIo<I> {
    inner: I,
    state: Rc<FaultState>,
}

/// A file of a [`FaultyIo`].
#[derive(Debug)]
pub struct FaultyFile<F> {
    inner: F,
    path: PathBuf,
    state: Rc<FaultState>,
}

impl<I: SegmentIo> FaultyIo<I> {
    /// Wraps `inner` with no fault armed.
    pub fn new(inner: I) -> Self {
        FaultyIo {
            inner,
            state: Rc::default(),
        }
    }

    /// Replaces the plan; counters restart at zero.
    pub fn arm(&self, plan: FaultPlan) {
        *self.state.plan.borrow_mut() = plan;
        self.state.writes.set(0);
        self.state.syncs.set(0);
    }

    /// Clears every fault.
    pub fn heal(&self) {
        self.arm(FaultPlan::default());
    }

    /// Syncs that completed successfully so far.
    pub fn syncs_completed(&self) -> u64 {
        self.state.syncs_completed.get()
    }

    /// Simulates power loss: undoes every write that no completed sync covered, newest first,
    /// leaving the files as the device would hold them. Call with the log closed.
    pub fn lose_unsynced_writes(&self) -> io::Result<usize> {
        let mut lost = 0;
        for (path, writes) in self.state.unsynced.borrow_mut().drain() {
            let file = std::fs::File::options().write(true).open(&path)?;
            for UndoRecord { pos, old, .. } in writes.iter().rev() {
                file.write_all_at(old, *pos)?;
                lost += 1;
            }
        }
        Ok(lost)
    }

    /// Writes no completed sync has covered yet: file, offset and length.
    pub fn unsynced_writes(&self) -> Vec<(PathBuf, u64, usize)> {
        let unsynced = self.state.unsynced.borrow();
        let per_file = unsynced.iter().flat_map(|(path, writes)| {
            writes
                .iter()
                .map(move |w| (path.clone(), w.pos, w.old.len()))
        });
        per_file.collect()
    }

    /// Stalls every sync until the returned guard is dropped.
    pub async fn hold_syncs(&self) -> SyncHold {
        SyncHold(self.state.sync_gate.write_arc().await)
    }

    /// Writes waiting at the gate of [`FaultyIo::hold_writes`].
    pub fn writes_waiting(&self) -> u64 {
        self.state.writes_waiting.get()
    }

    /// Stalls every write (after its fault check) until the returned guard is dropped.
    pub async fn hold_writes(&self) -> SyncHold {
        SyncHold(self.state.write_gate.write_arc().await)
    }
}

impl<I: SegmentIo> SegmentIo for FaultyIo<I> {
    type File = FaultyFile<I::File>;

    async fn create(&self, path: &Path, len: u64) -> io::Result<Self::File> {
        let fault = self.state.plan.borrow().fail_create;
        if let Some(fault) = fault {
            return Err(fault.error());
        }
        let inner = self.inner.create(path, len).await?;
        Ok(FaultyFile {
            inner,
            path: path.to_path_buf(),
            state: self.state.clone(),
        })
    }

    async fn open(&self, path: &Path) -> io::Result<Self::File> {
        let inner = self.inner.open(path).await?;
        Ok(FaultyFile {
            inner,
            path: path.to_path_buf(),
            state: self.state.clone(),
        })
    }

    async fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.inner.sync_dir(dir).await
    }
}

impl<F: SegmentFile> SegmentFile for FaultyFile<F> {
    async fn write_at(&self, pos: u64, buf: Vec<u8>) -> io::Result<()> {
        let fault = hit(&self.state.writes, self.state.plan.borrow().fail_write_from);
        if let Some(fault) = fault {
            return Err(fault.error());
        }
        self.state
            .writes_waiting
            .set(self.state.writes_waiting.get() + 1);
        let _gate = self.state.write_gate.read().await;
        self.state
            .writes_waiting
            .set(self.state.writes_waiting.get() - 1);
        let mut old = vec![0u8; buf.len()];
        std::fs::File::open(&self.path)?.read_exact_at(&mut old, pos)?;
        self.inner.write_at(pos, buf).await?;
        // Journal it once complete: only then can a sync that starts afterwards cover it.
        let id = self.state.writes_completed.get() + 1;
        self.state.writes_completed.set(id);
        let record = UndoRecord { id, pos, old };
        self.state
            .unsynced
            .borrow_mut()
            .entry(self.path.clone())
            .or_default()
            .push(record);
        Ok(())
    }

    async fn sync_data(&self) -> io::Result<()> {
        let fault = hit(&self.state.syncs, self.state.plan.borrow().fail_sync_from);
        // Only writes that completed before the sync started are sure to be covered by it.
        let covered = self.state.writes_completed.get();
        let synced = match fault {
            Some(fault) => Err(fault.error()),
            None => self.inner.sync_data().await,
        };
        // A held sync has done its work but does not report back: a long sync in flight.
        let _gate = self.state.sync_gate.read().await;
        synced?;
        if let Some(writes) = self.state.unsynced.borrow_mut().get_mut(&self.path) {
            writes.retain(|w| w.id > covered);
        }
        let completed = self.state.syncs_completed.get() + 1;
        self.state.syncs_completed.set(completed);
        Ok(())
    }

    fn start_writeback(&self, pos: u64, len: u64) {
        self.inner.start_writeback(pos, len);
    }
}
