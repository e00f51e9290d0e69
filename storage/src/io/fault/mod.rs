//! Fault injection behind the I/O seam: fail the Nth write or sync, or every create, with a
//! chosen error; and power loss: the writes no sync has covered are undone, all of them, a
//! suffix per file, or any subset of their pages (`power_loss`), as if the machine lost power.
//! The state is shared and thread-safe, so one injector serves every core of an engine and a
//! test arms faults while logs run; its [`BlockingIo`](super::BlockingIo) puts the metadata
//! log under the same plan and journal (docs/design/engine-faults.md).

mod power_loss;

use self::power_loss::{Journaled, UndoRecord, lose_pages, lose_prefixes, undo_all};
pub use self::power_loss::{PAGE_BYTES, PageFate, PageLoss, PowerLoss, SECTOR_BYTES};
use super::{BlockingIo, SegmentFile, SegmentIo};
use crate::fs_sync::FilesystemSync;
use std::collections::HashMap;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

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

/// The bytes a write of `len` bytes at `pos` into `path` is about to replace (fewer when it
/// reaches past the end of the file).
pub(super) fn bytes_replaced(path: &Path, pos: u64, len: usize) -> io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    let present = file.metadata()?.len().saturating_sub(pos).min(len as u64);
    let mut old = vec![0u8; present as usize];
    file.read_exact_at(&mut old, pos)?;
    Ok(old)
}

/// The plan and the journal, behind one mutex (never held across an await).
#[derive(Debug, Default)]
struct Journal {
    plan: FaultPlan,
    writes: u64,
    syncs: u64,
    /// Per file, the bytes each write since the file's last sync replaced, oldest first.
    unsynced: HashMap<PathBuf, Vec<UndoRecord>>,
    /// Per file, writes a failed sync should have covered. Linux may mark such pages clean
    /// after the error, so a later sync succeeds without writing them: they are lost on power
    /// loss unless written again and synced (see `FaultyFile::sync_data`).
    poisoned: HashMap<PathBuf, Vec<UndoRecord>>,
    /// Numbers completed writes, so a sync knows which ones finished before it started.
    writes_completed: u64,
    /// The plan is a power cut (`cut_power`): its failures stand for a machine going down,
    /// which leaves no writeback error for anyone to report afterwards.
    power_cut: bool,
    /// A failed file sync the next filesystem sync reports (Linux records a writeback error
    /// for the filesystem as well as for the file).
    unreported_to_filesystem: bool,
}

impl Journal {
    /// A sync of `path` covered its writes up to `covered`: they are durable, or (`failed`)
    /// poisoned. True when it covered any.
    fn retire(&mut self, path: &Path, covered: u64, failed: bool) -> bool {
        let writes = self.unsynced.entry(path.to_path_buf()).or_default();
        let (retired, pending): (Vec<UndoRecord>, Vec<UndoRecord>) = std::mem::take(writes)
            .into_iter()
            .partition(|w| w.id <= covered);
        *writes = pending;
        let any = !retired.is_empty();
        if failed {
            // Linux may mark the pages clean after a failed sync: the writes it should have
            // covered are lost on power loss even if a later sync succeeds.
            let poisoned = self.poisoned.entry(path.to_path_buf()).or_default();
            poisoned.extend(retired);
        } else if let Some(poisoned) = self.poisoned.get_mut(path) {
            // Poisoned bytes written again and synced now are safe.
            let mut ranges: Vec<(u64, u64)> = retired.iter().map(|w| (w.pos, w.end())).collect();
            ranges.sort_unstable();
            poisoned.retain(|p| !covered_by(p.pos, p.end(), &ranges));
        }
        any
    }
}

/// Counters and the gates, shared by the io, its clones and its files.
#[derive(Debug, Default)]
pub(super) struct FaultState {
    journal: Mutex<Journal>,
    syncs_completed: AtomicU64,
    /// Syncs started, never reset (the plan's own count is, when a plan is armed).
    syncs_started: AtomicU64,
    /// Calls that failed because of an injected fault, since the injector was made.
    faults_fired: AtomicU64,
    /// Syncs wait for a read guard; a test holding the write guard stalls them.
    sync_gate: Arc<async_lock::RwLock<()>>,
    /// The same for writes.
    write_gate: Arc<async_lock::RwLock<()>>,
    writes_waiting: AtomicU64,
}

impl FaultState {
    fn journal(&self) -> MutexGuard<'_, Journal> {
        self.journal.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The error of a fault that fires now.
    pub(super) fn fire(&self, fault: Fault) -> io::Error {
        self.faults_fired.fetch_add(1, Ordering::AcqRel);
        fault.error()
    }

    /// A file creation is about to start: the error the plan fails it with, if any.
    pub(super) fn create_fault(&self) -> Option<io::Error> {
        let fault = self.journal().plan.fail_create;
        fault.map(|fault| self.fire(fault))
    }

    /// A write is about to start: the error the plan fails it with, if any.
    pub(super) fn write_fault(&self) -> Option<io::Error> {
        let fault = {
            let mut journal = self.journal();
            let from = journal.plan.fail_write_from;
            hit(&mut journal.writes, from)
        };
        fault.map(|fault| self.fire(fault))
    }

    /// Journals a completed write of `len` bytes at `pos` into `path` that replaced `old`.
    /// Only a sync that starts after this can cover it.
    pub(super) fn journal_write(&self, path: &Path, pos: u64, len: usize, old: Vec<u8>) {
        let mut journal = self.journal();
        journal.writes_completed += 1;
        let id = journal.writes_completed;
        let record = UndoRecord { id, pos, len, old };
        journal
            .unsynced
            .entry(path.to_path_buf())
            .or_default()
            .push(record);
    }

    /// A sync is about to start: the plan's fault for it, if any, and the last write it is
    /// sure to cover (only writes that completed before it started).
    pub(super) fn sync_start(&self) -> (Option<Fault>, u64) {
        let mut journal = self.journal();
        let from = journal.plan.fail_sync_from;
        self.syncs_started.fetch_add(1, Ordering::AcqRel);
        (hit(&mut journal.syncs, from), journal.writes_completed)
    }

    /// A sync of `path` that covered writes up to `covered` ended with `synced`: retires
    /// those writes, or (it failed) poisons them.
    pub(super) fn sync_end(
        &self,
        path: &Path,
        covered: u64,
        synced: io::Result<()>,
    ) -> io::Result<()> {
        let mut journal = self.journal();
        let failed = synced.is_err();
        journal.retire(path, covered, failed);
        // Linux records a file's writeback error for its filesystem too.
        journal.unreported_to_filesystem |= failed && !journal.power_cut;
        drop(journal);
        if synced.is_ok() {
            self.syncs_completed.fetch_add(1, Ordering::AcqRel);
        }
        synced
    }

    /// A filesystem sync that covered every file's writes up to `covered` ended with
    /// `synced`: retires them, or (it failed) poisons them. A failure is modelled as an error
    /// of the filesystem's own commit (journal, device cache), the worst case: no file's
    /// descriptor learns of it, so a later fdatasync of a poisoned file succeeds.
    pub(super) fn filesystem_sync_end(
        &self,
        covered: u64,
        synced: io::Result<()>,
    ) -> io::Result<()> {
        let mut journal = self.journal();
        let paths: Vec<PathBuf> = journal.unsynced.keys().cloned().collect();
        for path in paths {
            journal.retire(&path, covered, synced.is_err());
        }
        // A file's earlier failed sync, reported once to the next syncfs as well.
        let reported = std::mem::take(&mut journal.unreported_to_filesystem);
        drop(journal);
        if synced.is_ok() {
            self.syncs_completed.fetch_add(1, Ordering::AcqRel);
        }
        synced?;
        if reported {
            // Counted as a fault fired: an injected one caused it.
            return Err(self.fire(Fault::Eio));
        }
        Ok(())
    }

    /// `path` was truncated to `len` (and is synced next): writes wholly past it are gone.
    pub(super) fn truncated(&self, path: &Path, len: u64) {
        let mut journal = self.journal();
        let journal = &mut *journal;
        for records in [&mut journal.unsynced, &mut journal.poisoned] {
            if let Some(writes) = records.get_mut(path) {
                writes.retain(|w| w.pos < len);
            }
        }
    }

    /// `path` was created afresh (emptied): its earlier writes no longer describe it.
    pub(super) fn replaced(&self, path: &Path) {
        let mut journal = self.journal();
        journal.unsynced.remove(path);
        journal.poisoned.remove(path);
    }

    /// `from` was renamed over `to`: its writes now belong to `to`; `to`'s old file is gone.
    pub(super) fn renamed(&self, from: &Path, to: &Path) {
        let mut journal = self.journal();
        let journal = &mut *journal;
        for records in [&mut journal.unsynced, &mut journal.poisoned] {
            records.remove(to);
            if let Some(writes) = records.remove(from) {
                records.insert(to.to_path_buf(), writes);
            }
        }
    }
}

/// Counts one more call; returns the fault if this call is at or past the first failing one.
fn hit(counter: &mut u64, from: Option<(u64, Fault)>) -> Option<Fault> {
    let n = *counter;
    *counter += 1;
    from.filter(|(first, _)| n >= *first)
        .map(|(_, fault)| fault)
}

/// True when `[pos, end)` lies inside the union of `ranges` (sorted by start).
fn covered_by(pos: u64, end: u64, ranges: &[(u64, u64)]) -> bool {
    let mut reached = pos;
    for &(from, to) in ranges {
        if from > reached {
            break;
        }
        reached = reached.max(to);
        if reached >= end {
            return true;
        }
    }
    reached >= end
}

/// While alive, every sync (or write) of the [`FaultyIo`] that made it waits.
#[derive(Debug)]
pub struct SyncHold(#[allow(dead_code)] async_lock::RwLockWriteGuardArc<()>);

/// Wraps another [`SegmentIo`], failing calls as its [`FaultPlan`] says. Clones share one
/// plan and one journal, across threads.
#[derive(Debug, Clone)]
pub struct FaultyIo<I> {
    inner: I,
    state: Arc<FaultState>,
}

/// A file of a [`FaultyIo`].
#[derive(Debug)]
pub struct FaultyFile<F> {
    inner: F,
    path: PathBuf,
    state: Arc<FaultState>,
}

impl<I: SegmentIo> FaultyIo<I> {
    /// Wraps `inner` with no fault armed.
    pub fn new(inner: I) -> Self {
        FaultyIo {
            inner,
            state: Arc::default(),
        }
    }

    /// Replaces the plan; counters restart at zero.
    pub fn arm(&self, plan: FaultPlan) {
        self.arm_plan(plan, false);
    }

    /// Replaces the plan, saying (under the same lock, so no sync sees one without the
    /// other) whether it is a power cut.
    fn arm_plan(&self, plan: FaultPlan, power_cut: bool) {
        let mut journal = self.state.journal();
        journal.plan = plan;
        journal.writes = 0;
        journal.syncs = 0;
        journal.power_cut = power_cut;
    }

    /// A power cut: from now on every write, sync and creation fails with EIO, so nothing
    /// more reaches the files. Follow with closing the logs, then [`FaultyIo::lose_power`]
    /// (or nothing, for a crash that keeps the page cache), then [`FaultyIo::heal`].
    pub fn cut_power(&self) {
        let plan = FaultPlan {
            fail_write_from: Some((0, Fault::Eio)),
            fail_sync_from: Some((0, Fault::Eio)),
            fail_create: Some(Fault::Eio),
        };
        self.arm_plan(plan, true);
    }

    /// A filesystem syncer for the files under `dir` that goes through this injector: its
    /// syncs count and fail as the plan says, a successful one makes every file's completed
    /// writes durable, a failed one poisons them without any file learning of it (an error of
    /// the filesystem's own commit). Like the real one, a failure leaves its marker in `dir`.
    pub fn filesystem_sync(&self, dir: &Path) -> io::Result<FilesystemSync> {
        let state = self.state.clone();
        FilesystemSync::open_through(dir, move |syncfs| {
            let (fault, covered) = state.sync_start();
            let synced = match fault {
                Some(fault) => Err(state.fire(fault)),
                None => syncfs(),
            };
            // As a file's: a held sync has done its work but does not report back.
            let _gate = state.sync_gate.read_blocking();
            state.filesystem_sync_end(covered, synced)
        })
    }

    /// Clears every fault.
    pub fn heal(&self) {
        self.arm(FaultPlan::default());
    }

    /// Calls failed by an injected fault so far (a test can tell a fault that fired from one
    /// that was armed but never reached).
    pub fn faults_fired(&self) -> u64 {
        self.state.faults_fired.load(Ordering::Acquire)
    }

    /// Syncs started so far (file and filesystem syncs; failed and held ones included).
    pub fn syncs_started(&self) -> u64 {
        self.state.syncs_started.load(Ordering::Acquire)
    }

    /// Syncs that completed successfully so far.
    pub fn syncs_completed(&self) -> u64 {
        self.state.syncs_completed.load(Ordering::Acquire)
    }

    /// Simulates power loss: undoes every write that no completed sync covered, newest first,
    /// leaving the files as the device would hold them. Call with the log closed.
    pub fn lose_unsynced_writes(&self) -> io::Result<usize> {
        self.lose_power(PowerLoss::Everything)
    }

    /// Simulates power loss as `loss` says; returns how many writes (or, for the page model,
    /// pages) were undone or torn. Call with the logs closed. Files that are gone (a deleted
    /// stream) are skipped.
    pub fn lose_power(&self, loss: PowerLoss) -> io::Result<usize> {
        match loss {
            PowerLoss::Everything | PowerLoss::Seeded(_) => {
                let (unsynced, poisoned) = self.take_journal();
                // Writes a failed sync left behind never reached the device: undone first.
                let mut lost = undo_all(&poisoned)?;
                lost += match loss {
                    PowerLoss::Seeded(seed) => lose_prefixes(&unsynced, seed)?,
                    _ => undo_all(&unsynced)?,
                };
                Ok(lost)
            }
            PowerLoss::Pages(pages) => self.lose_power_pages(|path, page| pages.fate(path, page)),
        }
    }

    /// Simulates power loss page by page: `fate` says what became of each dirty 4 KiB page of
    /// each file (pages that only a failed sync's writes dirtied are lost). Returns the pages
    /// lost or torn. Call with the logs closed.
    pub fn lose_power_pages(
        &self,
        mut fate: impl FnMut(&Path, u64) -> PageFate,
    ) -> io::Result<usize> {
        let (unsynced, poisoned) = self.take_journal();
        lose_pages(unsynced, poisoned, &mut fate)
    }

    /// Takes the journal of unsynced and poisoned writes, files in a fixed order (so a seed
    /// always picks the same outcome).
    fn take_journal(&self) -> (Journaled, Journaled) {
        let mut journal = self.state.journal();
        // The kernel's memory of writeback errors goes with the power.
        journal.unreported_to_filesystem = false;
        let sorted = |map: HashMap<PathBuf, Vec<UndoRecord>>| {
            let mut files: Journaled = map.into_iter().collect();
            files.sort_by(|a, b| a.0.cmp(&b.0));
            files
        };
        (
            sorted(std::mem::take(&mut journal.unsynced)),
            sorted(std::mem::take(&mut journal.poisoned)),
        )
    }

    /// Writes no completed sync has covered yet: file, offset and length.
    pub fn unsynced_writes(&self) -> Vec<(PathBuf, u64, usize)> {
        let journal = self.state.journal();
        let per_file = journal
            .unsynced
            .iter()
            .flat_map(|(path, writes)| writes.iter().map(move |w| (path.clone(), w.pos, w.len)));
        per_file.collect()
    }

    /// Blocking file I/O through this injector: its plan fails the writes, syncs and
    /// creations of those files too (counted with the segment files'), its journal records
    /// their unsynced writes, and power loss undoes them. For the metadata log
    /// (`MetaLog::open_with_io`). The sync and write gates hold segment I/O only.
    pub fn blocking(&self) -> BlockingIo {
        BlockingIo::faulty(self.state.clone())
    }

    /// Stalls every sync until the returned guard is dropped.
    pub async fn hold_syncs(&self) -> SyncHold {
        SyncHold(self.state.sync_gate.write_arc().await)
    }

    /// Writes waiting at the gate of [`FaultyIo::hold_writes`].
    pub fn writes_waiting(&self) -> u64 {
        self.state.writes_waiting.load(Ordering::Acquire)
    }

    /// Stalls every write (after its fault check) until the returned guard is dropped.
    pub async fn hold_writes(&self) -> SyncHold {
        SyncHold(self.state.write_gate.write_arc().await)
    }
}

impl<I: SegmentIo> SegmentIo for FaultyIo<I> {
    type File = FaultyFile<I::File>;

    async fn create(&self, path: &Path, len: u64) -> io::Result<Self::File> {
        if let Some(error) = self.state.create_fault() {
            return Err(error);
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
        if let Some(error) = self.state.write_fault() {
            return Err(error);
        }
        self.state.writes_waiting.fetch_add(1, Ordering::AcqRel);
        let _gate = self.state.write_gate.read().await;
        self.state.writes_waiting.fetch_sub(1, Ordering::AcqRel);
        let len = buf.len();
        let old = bytes_replaced(&self.path, pos, len)?;
        self.inner.write_at(pos, buf).await?;
        // Journal it once complete: only then can a sync that starts afterwards cover it.
        self.state.journal_write(&self.path, pos, len, old);
        Ok(())
    }

    async fn sync_data(&self) -> io::Result<()> {
        let (fault, covered) = self.state.sync_start();
        let synced = match fault {
            Some(fault) => Err(self.state.fire(fault)),
            None => self.inner.sync_data().await,
        };
        // A held sync has done its work but does not report back: a long sync in flight.
        let _gate = self.state.sync_gate.read().await;
        self.state.sync_end(&self.path, covered, synced)
    }

    fn start_writeback(&self, pos: u64, len: u64) {
        self.inner.start_writeback(pos, len);
    }

    fn writeback_error(&self) -> Option<io::Error> {
        self.inner.writeback_error()
    }
}
