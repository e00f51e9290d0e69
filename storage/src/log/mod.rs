//! The shard log: the owning core's write side of one ring of segments.
//!
//! One `ShardLog` lives on one core and is used by that core's tasks only (it is `!Send`).
//! Appends are pipelined: an append reserves its place and sequence numbers and encodes its
//! batch synchronously, then its write runs concurrently with other appends' writes. Batches
//! become visible strictly in sequence order, as their writes complete (`in_flight`).
//! Durable appends then meet at the group-commit gate: one fdatasync covers every batch
//! visible when it started, and appends continue while it runs (through a filesystem sync,
//! each waiter only asks at the gate and waits outside it: `commit`).
//!
//! The state lives here; each stage of a log's life has its own file: `open` (recovery's
//! follow-ups), `append`, `roll`, `seal` (and `maintain`), `commit` (group commit),
//! `retention`, `replicated` (a Raft log's entries and commit), `truncate` (removing entries
//! above the commit), `read_only` (what a closed log keeps), `lock` (the directory's LOCK file and SYNC-FAILED marker) and `cancel` (the
//! drop guard that latches the log when an operation is cancelled mid-I/O).

mod append;
mod cancel;
mod commit;
mod entries;
mod lock;
pub(crate) use self::lock::write_sync_failed_marker;
mod open;
mod read_only;
mod replicated;
mod restart;
mod retention;
mod roll;
mod seal;
mod state;
mod truncate;

pub(crate) use lock::lock_dir;
pub use read_only::ReadOnlyLog;
pub use restart::RetentionPoint;
pub(crate) use retention::reclaim;

use crate::config::LogConfig;
use crate::error::{Result, StorageError};
use crate::format::EntryId;
use crate::index::SparseIndex;
use crate::io::SegmentIo;
use crate::reader::LogReader;
use crate::recovery::RecoveryReport;
use crate::segment::{BatchLoc, Segment};
use crate::shared::Shared;
use crate::sync::Arc;
use async_lock::Mutex;
use event_listener::Event;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fs::File;
use std::path::Path;
use std::rc::Rc;

/// When an append is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Readers can see it (it is in the page cache); nothing waits for the device.
    Visible,
    /// An fdatasync covering it has completed.
    Durable,
}

/// Where an appended batch landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Sequence number of the first record; record *i* has `base_seq + i`.
    pub base_seq: u64,
    /// Records appended.
    pub record_count: u32,
    /// Arrival time given to every record of the batch.
    pub timestamp_ms: u64,
}

impl Appended {
    /// Sequence number after the last record.
    pub fn end_seq(&self) -> u64 {
        self.base_seq + u64::from(self.record_count)
    }
}

/// Segment counts, for tests and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogStats {
    /// Segments holding readable data (the active one included).
    pub live_segments: usize,
    /// Retired segments (or segments found free on open) still leased by a reader, through
    /// this log or an earlier one on the same directory in this process.
    pub retiring_segments: usize,
    /// Segments ready for reuse.
    pub free_segments: usize,
    /// Segment files on disk.
    pub files: usize,
    /// Segments created since open.
    pub files_created: u64,
    /// Of those, created by a roll because no free segment was ready (on an append's path).
    pub files_created_on_roll: u64,
    /// Segments that held expired data and were reused, since open.
    pub segments_recycled: u64,
}

/// The segment taking appends, as far as reservations go (which may be ahead of what is
/// visible).
struct Active<F> {
    segment: Arc<Segment>,
    file: Rc<F>,
    /// End of the last reserved batch.
    write_pos: u64,
    /// Checksum of the last reserved batch.
    last_checksum: u64,
    /// Index of every reserved batch, for the footer.
    index: SparseIndex,
    /// Background writeback has been started up to here.
    writeback_from: u64,
    /// Ordinal (`Writer::reserved_batches`) of the last batch reserved in this segment.
    last_ordinal: u64,
}

/// A reserved batch whose write may still be running.
struct InFlight {
    segment: Arc<Segment>,
    loc: BatchLoc,
    /// Its place among the batches reserved since open (1 for the first).
    ordinal: u64,
    written: bool,
}

/// Owner-only state. Borrowed only between awaits, never across one.
struct Writer<F> {
    active: Option<Active<F>>,
    /// A roll is running: reservations wait for it.
    rolling: bool,
    /// Reserved batches in sequence order, until they are published.
    in_flight: VecDeque<InFlight>,
    /// Mirrors the published segment table: sealed segments, then the active one.
    live: Vec<Arc<Segment>>,
    retiring: Vec<Arc<Segment>>,
    free: Vec<Arc<Segment>>,
    /// Sealed or retired files with writes that no sync has covered yet.
    unsynced: Vec<Rc<F>>,
    /// Files removed from the front of `unsynced` since open, once a sync covered them.
    unsynced_drained: u64,
    /// Rewrites of the log's end (truncations, restarts) started since open: a filesystem
    /// sync's point read before one must not mark the numbers it removed durable.
    rewrites: u64,
    /// Full segments (and their end sequence) waiting for `maintain` to seal them.
    sealing: Vec<(Active<F>, u64)>,
    /// A `maintain` is creating a spare segment.
    allocating_spare: bool,
    /// Set after recovery cut the log and numbering jumps: where the data ended, for the
    /// header of the next segment (`follows_seq`).
    gap_from: Option<u64>,
    /// Bumped whenever the active file gets completed writes; the active file needs a sync
    /// while `dirty_epoch > clean_epoch`. Counters rather than a flag, so a sync that is
    /// cancelled or fails half-way never marks anything clean.
    dirty_epoch: u64,
    clean_epoch: u64,
    /// Next sequence number to reserve.
    next_seq: u64,
    /// Batches reserved since open: the ordinal of the last one.
    reserved_batches: u64,
    /// A replicated log's last reserved entry.
    last_entry: Option<EntryId>,
    /// A replicated log's visibility: the commit index and how far it has been applied.
    commit: replicated::Commit,
    /// Where the last reads of entries stopped (`entries`): the next read from there starts
    /// at its batch instead of walking the segment's headers from its start.
    entry_cursors: entries::Cursors,
    last_timestamp_ms: u64,
    generation: u64,
    next_slot: u32,
    /// Segment files on disk (never deleted; creations in progress count).
    files_on_disk: usize,
    files_created: u64,
    files_created_on_roll: u64,
    segments_recycled: u64,
}

impl<F> Writer<F> {
    fn fits(&self, length: u64, data_limit: u64) -> bool {
        !self.rolling
            && self
                .active
                .as_ref()
                .is_some_and(|a| a.write_pos + length <= data_limit)
    }

    fn reclaim(&mut self) {
        reclaim(&mut self.retiring, &mut self.free);
    }
}

/// One shard's log, owned by one core.
pub struct ShardLog<I: SegmentIo> {
    io: I,
    config: LogConfig,
    shared: Arc<Shared>,
    writer: RefCell<Writer<I::File>>,
    /// Serialises rolls and retention passes (they await I/O while changing the ring).
    ring_lock: Mutex<()>,
    /// Notified whenever batches become visible or the log latches.
    published: Event,
    /// Notified when `maintain` finishes allocating a spare segment.
    spare_ready: Event,
    sync_gate: Mutex<()>,
    /// The replication layer's saved state, and the lock that orders its saves.
    state: RefCell<state::StateFile<I::File>>,
    state_lock: Mutex<()>,
    /// Held by a sealing pass and by a truncation: a truncation may reopen a full segment for
    /// appends, which must not be sealed under it.
    seal_lock: Mutex<()>,
    durable_seq: Cell<u64>,
    /// Batches (by ordinal) whose write completed, in order, and those a sync covered:
    /// durability is counted in batches, so a control entry (no records) is synced too.
    written_batches: Cell<u64>,
    durable_batches: Cell<u64>,
    /// Sequence after the last written record; the visible one (`Shared`) trails it in a
    /// replicated log, equals it otherwise.
    written_seq: Cell<u64>,
    report: RecoveryReport,
    _lock: File,
}

impl<I: SegmentIo> std::fmt::Debug for ShardLog<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardLog")
            .field("dir", &self.shared.dir)
            .finish_non_exhaustive()
    }
}

impl<I: SegmentIo> ShardLog<I> {
    /// A read handle for any thread.
    pub fn reader(&self) -> LogReader {
        LogReader::new(self.shared.clone())
    }

    /// What recovery found when this log was opened.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.report
    }

    /// The configuration the log was opened with.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// The sequence number the next visible record will get (the visibility watermark).
    pub fn next_seq(&self) -> u64 {
        self.shared.next_seq()
    }

    /// Every record below this is durable.
    pub fn durable_seq(&self) -> u64 {
        self.durable_seq.get()
    }

    /// The retention period, in ms.
    pub fn retention_ms(&self) -> u64 {
        self.shared.retention_ms()
    }

    /// Changes the retention period; a decrease hides expired records at once.
    pub fn set_retention_ms(&self, retention_ms: u64) -> Result<()> {
        read_only::set_retention_ms(&self.shared, &self.config, retention_ms)
    }

    /// Segment counts.
    pub fn stats(&self) -> LogStats {
        let w = self.writer.borrow();
        LogStats {
            live_segments: w.live.len(),
            retiring_segments: w.retiring.len(),
            free_segments: w.free.len(),
            files: w.files_on_disk,
            files_created: w.files_created,
            files_created_on_roll: w.files_created_on_roll,
            segments_recycled: w.segments_recycled,
        }
    }

    fn check_writable(&self) -> Result<()> {
        match self.shared.latch_cause() {
            Some(cause) => Err(StorageError::Latched { cause }),
            None => Ok(()),
        }
    }

    /// Latches the log read-only, wakes every waiter, and returns the error for the caller.
    fn fail(&self, op: &'static str, path: &Path, e: std::io::Error) -> StorageError {
        let error = StorageError::io(op, path, e);
        self.shared.latch(error.to_string());
        self.published.notify(usize::MAX);
        error
    }
}

impl<I: SegmentIo> Drop for ShardLog<I> {
    /// Wakes readers waiting for new records: none will come from this writer.
    fn drop(&mut self) {
        self.shared.wake_waiters();
    }
}
