//! Fault injection behind the I/O seam: fail the Nth write or sync, or every create, with a
//! chosen error. Shared state so a test can arm faults while the log runs.

use super::{SegmentFile, SegmentIo};
use std::io;
use std::path::Path;
use std::rc::Rc;
use std::cell::RefCell;

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
    writes: u64,
    syncs: u64,
}

impl FaultPlan {
    fn hit(counter: &mut u64, from: Option<(u64, Fault)>) -> Option<Fault> {
        let n = *counter;
        *counter += 1;
        from.filter(|(first, _)| n >= *first).map(|(_, fault)| fault)
    }
}

/// Wraps another [`SegmentIo`], failing calls as its [`FaultPlan`] says.
#[derive(Debug, Clone)]
pub struct FaultyIo<I> {
    inner: I,
    plan: Rc<RefCell<FaultPlan>>,
}

/// A file of a [`FaultyIo`].
#[derive(Debug)]
pub struct FaultyFile<F> {
    inner: F,
    plan: Rc<RefCell<FaultPlan>>,
}

impl<I: SegmentIo> FaultyIo<I> {
    /// Wraps `inner` with no fault armed.
    pub fn new(inner: I) -> Self {
        FaultyIo { inner, plan: Rc::default() }
    }

    /// Replaces the plan; counters restart at zero.
    pub fn arm(&self, plan: FaultPlan) {
        *self.plan.borrow_mut() = FaultPlan { writes: 0, syncs: 0, ..plan };
    }

    /// Clears every fault.
    pub fn heal(&self) {
        self.arm(FaultPlan::default());
    }
}

impl<I: SegmentIo> SegmentIo for FaultyIo<I> {
    type File = FaultyFile<I::File>;

    async fn create(&self, path: &Path, len: u64) -> io::Result<Self::File> {
        let fault = self.plan.borrow().fail_create;
        if let Some(fault) = fault {
            return Err(fault.error());
        }
        let inner = self.inner.create(path, len).await?;
        Ok(FaultyFile { inner, plan: self.plan.clone() })
    }

    async fn open(&self, path: &Path) -> io::Result<Self::File> {
        let inner = self.inner.open(path).await?;
        Ok(FaultyFile { inner, plan: self.plan.clone() })
    }

    async fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.inner.sync_dir(dir).await
    }
}

impl<F: SegmentFile> SegmentFile for FaultyFile<F> {
    async fn write_at(&self, pos: u64, buf: Vec<u8>) -> io::Result<()> {
        let fault = {
            let mut plan = self.plan.borrow_mut();
            let from = plan.fail_write_from;
            FaultPlan::hit(&mut plan.writes, from)
        };
        match fault {
            Some(fault) => Err(fault.error()),
            None => self.inner.write_at(pos, buf).await,
        }
    }

    async fn sync_data(&self) -> io::Result<()> {
        let fault = {
            let mut plan = self.plan.borrow_mut();
            let from = plan.fail_sync_from;
            FaultPlan::hit(&mut plan.syncs, from)
        };
        match fault {
            Some(fault) => Err(fault.error()),
            None => self.inner.sync_data().await,
        }
    }
}
