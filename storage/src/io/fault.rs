//! Fault injection behind the I/O seam: fail the Nth write or sync, or every create, with a
//! chosen error. Shared state so a test can arm faults while the log runs.

use super::{SegmentFile, SegmentIo};
use std::cell::{Cell, RefCell};
use std::io;
use std::path::Path;
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

/// Counters and the sync gate, shared by the io and its files.
#[derive(Debug, Default)]
struct FaultState {
    plan: RefCell<FaultPlan>,
    writes: Cell<u64>,
    syncs: Cell<u64>,
    syncs_completed: Cell<u64>,
    /// Syncs wait for a read guard; a test holding the write guard stalls them.
    sync_gate: std::sync::Arc<async_lock::RwLock<()>>,
}

/// Counts one more call; returns the fault if this call is at or past the first failing one.
fn hit(counter: &Cell<u64>, from: Option<(u64, Fault)>) -> Option<Fault> {
    let n = counter.get();
    counter.set(n + 1);
    from.filter(|(first, _)| n >= *first)
        .map(|(_, fault)| fault)
}

/// While alive, every sync of the [`FaultyIo`] that made it waits.
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

    /// Stalls every sync until the returned guard is dropped.
    pub async fn hold_syncs(&self) -> SyncHold {
        SyncHold(self.state.sync_gate.write_arc().await)
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
            state: self.state.clone(),
        })
    }

    async fn open(&self, path: &Path) -> io::Result<Self::File> {
        let inner = self.inner.open(path).await?;
        Ok(FaultyFile {
            inner,
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
        match fault {
            Some(fault) => Err(fault.error()),
            None => self.inner.write_at(pos, buf).await,
        }
    }

    async fn sync_data(&self) -> io::Result<()> {
        let fault = hit(&self.state.syncs, self.state.plan.borrow().fail_sync_from);
        let _gate = self.state.sync_gate.read().await;
        match fault {
            Some(fault) => Err(fault.error()),
            None => {
                self.inner.sync_data().await?;
                self.state
                    .syncs_completed
                    .set(self.state.syncs_completed.get() + 1);
                Ok(())
            }
        }
    }
}
