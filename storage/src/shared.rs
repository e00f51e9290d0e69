//! State the owning core publishes for readers on any thread.
//!
//! Protocol: the owner writes a batch, then `Segment::publish` (release stores of the
//! segment's progress), then stores `next_seq` (release). A reader loads `next_seq` (acquire)
//! and a table snapshot; everything below a segment's `visible_end` is then complete.
//! The segment table changes only on roll, retirement and recycling; a new segment is in the
//! table before any of its batches is visible.

use crate::clock::Clock;
use crate::segment::Segment;
use crate::sync::{Arc, AtomicBool, AtomicU64, Mutex, Ordering, RwLock};
use event_listener::{Event, EventListener};
use std::path::PathBuf;

/// Live segments in sequence order.
pub(crate) type SegmentTable = Arc<Vec<Arc<Segment>>>;

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) dir: PathBuf,
    table: RwLock<SegmentTable>,
    /// The visibility watermark: the sequence number the next record will get.
    next_seq: AtomicU64,
    /// Oldest sequence still readable; never moves back.
    trim_seq: AtomicU64,
    /// `trim_seq` stays the horizon while the retention cut-off is at or below this time
    /// (the arrival time of the record at `trim_seq`).
    trim_valid_until_ms: AtomicU64,
    retention_ms: AtomicU64,
    /// std's `Arc` even under loom: the clock is no part of a cross-thread protocol.
    pub(crate) clock: std::sync::Arc<dyn Clock>,
    latched: AtomicBool,
    latch_cause: Mutex<Option<String>>,
    /// Notified after every advance of `next_seq` (and on latch), for readers that wait.
    watermark_moved: Event,
    /// A replicated log's: arrival time of the newest visible record (the segments' times
    /// include written records above the commit).
    replicated: AtomicBool,
    visible_timestamp_ms: AtomicU64,
}

impl std::fmt::Debug for dyn Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Clock({})", self.now_ms())
    }
}

impl Shared {
    pub(crate) fn new(
        dir: PathBuf,
        table: Vec<Arc<Segment>>,
        next_seq: u64,
        trim_seq: u64,
        retention_ms: u64,
        clock: std::sync::Arc<dyn Clock>,
    ) -> Shared {
        Shared {
            dir,
            table: RwLock::new(Arc::new(table)),
            next_seq: AtomicU64::new(next_seq),
            trim_seq: AtomicU64::new(trim_seq),
            trim_valid_until_ms: AtomicU64::new(0),
            retention_ms: AtomicU64::new(retention_ms),
            clock,
            latched: AtomicBool::new(false),
            latch_cause: Mutex::new(None),
            watermark_moved: Event::new(),
            replicated: AtomicBool::new(false),
            visible_timestamp_ms: AtomicU64::new(0),
        }
    }

    /// Marks the log replicated: readers take the newest record's time from
    /// `publish_visible_timestamp`, not from the segments.
    pub(crate) fn mark_replicated(&self) {
        self.replicated.store(true, Ordering::Release);
    }

    /// The newest visible record's arrival time, in a replicated log (`None` otherwise).
    pub(crate) fn visible_timestamp_ms(&self) -> Option<u64> {
        self.replicated
            .load(Ordering::Acquire)
            .then(|| self.visible_timestamp_ms.load(Ordering::Acquire))
    }

    /// A replicated log's writer: the newest visible record arrived at `timestamp_ms`.
    pub(crate) fn publish_visible_timestamp(&self, timestamp_ms: u64) {
        self.visible_timestamp_ms
            .fetch_max(timestamp_ms, Ordering::AcqRel);
    }

    pub(crate) fn table(&self) -> SegmentTable {
        self.table.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn set_table(&self, table: Vec<Arc<Segment>>) {
        *self.table.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(table);
    }

    pub(crate) fn next_seq(&self) -> u64 {
        self.next_seq.load(Ordering::Acquire)
    }

    pub(crate) fn publish_next_seq(&self, next_seq: u64) {
        let previous = self.next_seq.swap(next_seq, Ordering::Release);
        assert!(next_seq > previous, "the watermark only moves forward");
        self.watermark_moved.notify(usize::MAX);
    }

    /// Wakes every waiting reader without moving the watermark (the writer closed).
    pub(crate) fn wake_waiters(&self) {
        self.watermark_moved.notify(usize::MAX);
    }

    /// A listener woken by the next watermark advance. Register it, re-check, then wait.
    pub(crate) fn listen(&self) -> EventListener {
        self.watermark_moved.listen()
    }

    pub(crate) fn retention_ms(&self) -> u64 {
        self.retention_ms.load(Ordering::Relaxed)
    }

    pub(crate) fn set_retention_ms(&self, retention_ms: u64) {
        self.retention_ms.store(retention_ms, Ordering::Relaxed);
    }

    /// Raises the trim horizon (never lowers it); returns the new value.
    pub(crate) fn raise_trim(&self, seq: u64) -> u64 {
        self.trim_seq.fetch_max(seq, Ordering::AcqRel).max(seq)
    }

    /// Records that the horizon `trim_seq` holds until the cut-off passes `until_ms`.
    /// Call after [`Shared::raise_trim`]: a reader that sees the new time sees the new seq.
    pub(crate) fn raise_trim_valid_until(&self, until_ms: u64) {
        self.trim_valid_until_ms
            .fetch_max(until_ms, Ordering::AcqRel);
    }

    pub(crate) fn trim_valid_until_ms(&self) -> u64 {
        self.trim_valid_until_ms.load(Ordering::Acquire)
    }

    pub(crate) fn trim_seq(&self) -> u64 {
        self.trim_seq.load(Ordering::Acquire)
    }

    /// Retention cut-off: records that arrived before this are expired.
    pub(crate) fn expiry_cutoff_ms(&self) -> u64 {
        self.clock.now_ms().saturating_sub(self.retention_ms())
    }

    pub(crate) fn latch(&self, cause: String) {
        let mut slot = self.latch_cause.lock().unwrap_or_else(|e| e.into_inner());
        slot.get_or_insert(cause);
        self.latched.store(true, Ordering::Release);
        self.watermark_moved.notify(usize::MAX);
    }

    pub(crate) fn latch_cause(&self) -> Option<String> {
        if !self.latched.load(Ordering::Acquire) {
            return None;
        }
        self.latch_cause
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
