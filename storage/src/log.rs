//! The shard log: the owning core's write side of one ring of segments.
//!
//! One `ShardLog` lives on one core and is used by that core's tasks only (it is `!Send`).
//! Appends are pipelined: an append reserves its place and sequence numbers and encodes its
//! batch synchronously, then its write runs concurrently with other appends' writes. Batches
//! become visible strictly in sequence order, as their writes complete (`in_flight`).
//! Durable appends then meet at the group-commit gate: one fdatasync covers every batch
//! visible when it started, and appends continue while it runs.

use crate::clock::Clock;
use crate::config::LogConfig;
use crate::error::{Result, StorageError};
use crate::format::{
    EncodedBatch, IndexEntry, KEY_BYTES_MAX, RecordIn, SEGMENT_DATA_START, SegmentFooter,
    SegmentHeader, SegmentState, TRAILER_LEN, Trailer, encode_footer, encoded_batch_len,
};
use crate::index::SparseIndex;
use crate::io::{SegmentFile, SegmentIo};
use crate::reader::LogReader;
use crate::recovery::{self, RecoveryReport, segment_file_name};
use crate::segment::{BatchLoc, Segment, map_file};
use crate::shared::Shared;
use crate::sync::Arc;
use async_lock::Mutex;
use event_listener::Event;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fs::File;
use std::path::{Path, PathBuf};
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
    /// Retired segments still leased by a reader.
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
}

/// A reserved batch whose write may still be running.
struct InFlight {
    segment: Arc<Segment>,
    loc: BatchLoc,
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
    durable_seq: Cell<u64>,
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
    /// Opens (or creates) the log in `dir`, recovering whatever is there.
    pub async fn open(
        io: I,
        dir: &Path,
        config: LogConfig,
        clock: std::sync::Arc<dyn Clock>,
    ) -> Result<Self> {
        config.validate()?;
        std::fs::create_dir_all(dir).map_err(|e| StorageError::io("create log dir", dir, e))?;
        let lock = lock_dir(dir)?;
        let recovered = recovery::recover(dir, &config)?;
        let live: Vec<Arc<Segment>> = recovered.live.into_iter().map(Arc::new).collect();
        let trim_seq = live.first().map_or(recovered.next_seq, |s| s.base_seq);
        let shared = Arc::new(Shared::new(
            dir.to_path_buf(),
            live.clone(),
            recovered.next_seq,
            trim_seq,
            config.retention_ms,
            clock,
        ));
        let last_timestamp_ms = live.last().map_or(0, |s| s.max_timestamp_ms());
        let discarded: Vec<Arc<Segment>> = recovered.discarded.into_iter().map(Arc::new).collect();
        let free: Vec<Arc<Segment>> = recovered
            .free
            .into_iter()
            .map(Arc::new)
            .chain(discarded.iter().cloned())
            .collect();
        let files_on_disk = live.len() + free.len();
        let writer = Writer {
            active: None,
            rolling: false,
            in_flight: VecDeque::new(),
            live,
            retiring: Vec::new(),
            free,
            unsynced: Vec::new(),
            sealing: Vec::new(),
            allocating_spare: false,
            gap_from: (recovered.chain_end != recovered.next_seq).then_some(recovered.chain_end),
            dirty_epoch: 0,
            clean_epoch: 0,
            next_seq: recovered.next_seq,
            last_timestamp_ms,
            generation: recovered.generation,
            next_slot: recovered.next_slot,
            files_on_disk,
            files_created: 0,
            files_created_on_roll: 0,
            segments_recycled: 0,
        };
        let log = ShardLog {
            io,
            config,
            durable_seq: Cell::new(recovered.next_seq),
            shared,
            writer: RefCell::new(writer),
            ring_lock: Mutex::new(()),
            published: Event::new(),
            spare_ready: Event::new(),
            sync_gate: Mutex::new(()),
            report: recovered.report,
            _lock: lock,
        };
        let marker = dir.join(SYNC_FAILED);
        let after_failed_sync = marker.exists();
        if after_failed_sync {
            log.rewrite_live().await?;
        }
        log.sync_recovered().await?;
        log.release_discarded(&discarded).await?;
        drop(discarded); // the free list must hold the only references (see `reclaim`)
        for (index, tail) in recovered.unsealed {
            log.seal_recovered(index, tail).await?;
        }
        if after_failed_sync {
            // Everything recovered is on the device now: the marker has done its work.
            std::fs::remove_file(&marker).map_err(|e| StorageError::io("remove", &marker, e))?;
            sync_dir_std(dir)?;
        }
        Ok(log)
    }

    /// A failed fdatasync. Linux may mark the pages it could not write clean, so a later
    /// fdatasync, even from another process after a restart, succeeds without writing them.
    /// A marker in the log's directory makes the next open write every live segment again
    /// before syncing it (`rewrite_live`); then the log latches. A marker that cannot be
    /// written is named in the error.
    fn sync_failed(&self, path: &Path, e: std::io::Error) -> StorageError {
        let error = self.fail("fdatasync", path, e);
        match write_sync_failed_marker(&self.shared.dir) {
            Ok(()) => error,
            Err(marker) => StorageError::Latched {
                cause: format!("{error}; and the marker for the next open failed: {marker}"),
            },
        }
    }

    /// After a failed fdatasync (the marker is there): the bytes recovery read may come from
    /// pages Linux marked clean without writing them, and a sync would not write them. Writing
    /// every live segment again, whole, makes them dirty, so the sync that follows writes them.
    /// Costly (every live segment's full size), and only ever after a failed sync.
    async fn rewrite_live(&self) -> Result<()> {
        let live = self.writer.borrow().live.clone();
        for segment in live {
            let path = &segment.path;
            let file = self.open_file(path).await?;
            let mut pos = 0;
            while pos < segment.len() {
                let end = (pos + REWRITE_CHUNK_BYTES).min(segment.len());
                file.write_at(pos, segment.bytes(pos, end).to_vec())
                    .await
                    .map_err(|e| StorageError::io("rewrite segment", path, e))?;
                pos = end;
            }
        }
        Ok(())
    }

    /// Seals a segment recovery found unsealed, at its last intact batch: the next open finds it
    /// in O(1), and appends start a fresh segment with a new generation. Whatever lies past the
    /// end (a torn batch, stale bytes, intact batches after damage) can then never be taken for
    /// a continuation of the log, even if a new batch were byte-identical to the one it replaced.
    async fn seal_recovered(&self, live_index: usize, tail: recovery::Tail) -> Result<()> {
        let segment = self.writer.borrow().live[live_index].clone();
        let end_seq = segment.end_seq();
        let file = self.open_file(&segment.path).await?;
        let index =
            SparseIndex::from_entries(segment.index_entries(), self.config.index_interval_bytes);
        let full = Active {
            segment,
            file: Rc::new(file),
            write_pos: tail.write_pos,
            last_checksum: tail.last_checksum,
            index,
            writeback_from: tail.write_pos,
        };
        self.seal(&full, end_seq).await?;
        full.file
            .sync_data()
            .await
            .map_err(|e| self.sync_failed(&full.segment.path, e))
    }

    /// Marks segments recovery released (empty, retired, or after a cut) before anything new is
    /// written, so they can never be taken for a continuation of the log later. Their header
    /// carries the sequence floor the log continues from. Called after `sync_recovered`, so a
    /// floor on disk never outruns the data it sits above.
    async fn release_discarded(&self, discarded: &[Arc<Segment>]) -> Result<()> {
        let floor = self.writer.borrow().next_seq;
        for segment in discarded {
            let now_ms = self.shared.clock.now_ms();
            let header = free_header(segment, SegmentState::Released, floor, &self.config, now_ms);
            let path = &segment.path;
            let file = self.open_file(path).await?;
            file.write_at(0, header.to_vec())
                .await
                .map_err(|e| StorageError::io("release segment", path, e))?;
            file.sync_data()
                .await
                .map_err(|e| self.sync_failed(path, e))?;
        }
        Ok(())
    }

    /// Recovered data may have come from the page cache of a process that never synced it:
    /// sync every live file before counting it durable.
    async fn sync_recovered(&self) -> Result<()> {
        let live = self.writer.borrow().live.clone();
        for segment in live {
            let file = self.open_file(&segment.path).await?;
            file.sync_data()
                .await
                .map_err(|e| self.sync_failed(&segment.path, e))?;
        }
        Ok(())
    }

    /// Opens one of the log's segment files for writing.
    async fn open_file(&self, path: &Path) -> Result<I::File> {
        self.io
            .open(path)
            .await
            .map_err(|e| StorageError::io("open", path, e))
    }

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

    /// Changes the retention period; a decrease hides expired records at once.
    pub fn set_retention_ms(&self, retention_ms: u64) -> Result<()> {
        let config = LogConfig {
            retention_ms,
            ..self.config.clone()
        };
        config.validate()?;
        self.shared.set_retention_ms(retention_ms);
        Ok(())
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

    /// Appends one batch; every record gets the same arrival time. Returns once the batch is
    /// visible, or durable, as asked. On error nothing of the batch is visible.
    pub async fn append(
        &self,
        records: &[RecordIn<'_>],
        durability: Durability,
    ) -> Result<Appended> {
        // Refused before anything is copied, naming the first record at fault.
        self.validate_records(records)?;
        self.append_encoded(EncodedBatch::from_records(records), durability)
            .await
    }

    /// `append` of a batch the caller encoded (on any thread): the log only fills its header,
    /// hashes it and writes it, without copying the records again.
    pub async fn append_encoded(
        &self,
        mut batch: EncodedBatch,
        durability: Durability,
    ) -> Result<Appended> {
        self.check_writable()?;
        self.validate(&batch)?;
        let length = batch.len_bytes();
        let data_limit = self.config.data_limit();
        let (file, pos, appended) = loop {
            if self.writer.borrow().fits(length, data_limit) {
                break self.reserve(&mut batch);
            }
            let _ring = self.ring_lock.lock().await;
            self.check_writable()?;
            if !self.writer.borrow().fits(length, data_limit) {
                self.roll().await?;
            }
        };
        let in_flight = CancelLatch::arm(self, "an append");
        let written = file.write_at(pos, batch.into_bytes()).await;
        in_flight.disarm();
        self.complete(appended.base_seq, written)?;
        self.wait_visible(appended.end_seq()).await?;
        if durability == Durability::Durable {
            self.wait_durable(appended.end_seq()).await?;
        }
        Ok(appended)
    }

    /// Makes everything visible so far durable.
    pub async fn sync(&self) -> Result<()> {
        self.wait_durable(self.shared.next_seq()).await
    }

    /// Returns once every record below `end_seq` is durable (sharing syncs with concurrent
    /// callers, as durable appends do). `append(.., Visible)` followed by this is
    /// `append(.., Durable)` split in two, for callers that act between the two points.
    pub async fn make_durable(&self, end_seq: u64) -> Result<()> {
        self.wait_durable(end_seq).await
    }

    fn check_writable(&self) -> Result<()> {
        match self.shared.latch_cause() {
            Some(cause) => Err(StorageError::Latched { cause }),
            None => Ok(()),
        }
    }

    /// The checks of `validate` on records before they are encoded: the first record that
    /// breaks a rule is the one named.
    fn validate_records(&self, records: &[RecordIn<'_>]) -> Result<()> {
        self.validate_count(records.len())?;
        for (index, record) in records.iter().enumerate() {
            if record.key.len() > KEY_BYTES_MAX {
                return Err(StorageError::KeyTooLong {
                    index,
                    key_bytes: record.key.len(),
                    max_bytes: KEY_BYTES_MAX,
                });
            }
            let size_bytes = (record.key.len() + record.data.len()) as u64;
            if size_bytes > self.config.record_size_bytes_max {
                return Err(StorageError::RecordTooLarge {
                    index,
                    size_bytes,
                    max_bytes: self.config.record_size_bytes_max,
                });
            }
        }
        self.validate_length(encoded_batch_len(records))
    }

    /// Checks an encoded batch against the configuration before it gets a place. For a batch
    /// encoded elsewhere the errors name the first oversized key and the largest record
    /// (`append` names the first record at fault).
    fn validate(&self, batch: &EncodedBatch) -> Result<()> {
        self.validate_count(batch.record_count())?;
        if let Some((index, key_bytes)) = batch.oversized_key() {
            return Err(StorageError::KeyTooLong {
                index,
                key_bytes,
                max_bytes: KEY_BYTES_MAX,
            });
        }
        let (index, size_bytes) = batch.largest_record();
        if size_bytes > self.config.record_size_bytes_max {
            return Err(StorageError::RecordTooLarge {
                index,
                size_bytes,
                max_bytes: self.config.record_size_bytes_max,
            });
        }
        self.validate_length(batch.len_bytes())
    }

    fn validate_count(&self, count: usize) -> Result<()> {
        if count == 0 {
            return Err(StorageError::EmptyBatch);
        }
        if count > self.config.batch_records_max {
            return Err(StorageError::TooManyRecords {
                count,
                max: self.config.batch_records_max,
            });
        }
        Ok(())
    }

    fn validate_length(&self, size_bytes: u64) -> Result<()> {
        if size_bytes > self.config.batch_bytes_max() {
            return Err(StorageError::BatchTooLarge {
                size_bytes,
                max_bytes: self.config.batch_bytes_max(),
            });
        }
        Ok(())
    }

    /// Latches the log read-only, wakes every waiter, and returns the error for the caller.
    fn fail(&self, op: &'static str, path: &Path, e: std::io::Error) -> StorageError {
        let error = StorageError::io(op, path, e);
        self.shared.latch(error.to_string());
        self.published.notify(usize::MAX);
        error
    }

    /// Takes the next place in the active segment and seals the batch for it.
    fn reserve(&self, batch: &mut EncodedBatch) -> (Rc<I::File>, u64, Appended) {
        let mut w = self.writer.borrow_mut();
        let w = &mut *w;
        // Arrival times never go back within a shard, so time seeks can binary-search.
        let timestamp_ms = self.shared.clock.now_ms().max(w.last_timestamp_ms);
        let active = w.active.as_mut().expect("reserve only after fits()");
        let generation = active.segment.generation;
        let header = batch.seal(w.next_seq, generation, timestamp_ms, active.last_checksum);
        let loc = BatchLoc {
            pos: active.write_pos,
            header,
        };
        active.index.observe(IndexEntry {
            seq: header.base_seq,
            timestamp_ms,
            pos: loc.pos,
        });
        active.write_pos = loc.end();
        active.last_checksum = header.checksum;
        w.next_seq = header.end_seq();
        w.last_timestamp_ms = timestamp_ms;
        w.in_flight.push_back(InFlight {
            segment: active.segment.clone(),
            loc,
            written: false,
        });
        let appended = Appended {
            base_seq: header.base_seq,
            record_count: header.record_count,
            timestamp_ms,
        };
        (active.file.clone(), loc.pos, appended)
    }

    /// Records a finished write and publishes every batch that is now complete in order.
    fn complete(&self, base_seq: u64, written: std::io::Result<()>) -> Result<()> {
        let mut w = self.writer.borrow_mut();
        let entry = w
            .in_flight
            .iter_mut()
            .find(|e| e.loc.header.base_seq == base_seq);
        let entry = entry.expect("a completed write was reserved");
        if let Err(e) = written {
            let path = entry.segment.path.clone();
            drop(w);
            return Err(self.fail("write batch", &path, e));
        }
        entry.written = true;
        let mut published = false;
        while w.in_flight.front().is_some_and(|e| e.written) {
            let entry = w.in_flight.pop_front().expect("checked above");
            entry.segment.publish(&entry.loc);
            self.shared.publish_next_seq(entry.loc.header.end_seq());
            published = true;
        }
        if published {
            w.dirty_epoch += 1;
            self.start_writeback(&mut w);
            self.published.notify(usize::MAX);
        }
        Ok(())
    }

    /// Starts background writeback of the active segment's newly visible bytes once enough
    /// have gathered (`writeback_interval_bytes`).
    fn start_writeback(&self, w: &mut Writer<I::File>) {
        let interval = self.config.writeback_interval_bytes;
        let Some(active) = w.active.as_mut() else {
            return;
        };
        let visible_end = active.segment.visible_end();
        if interval > 0 && visible_end - active.writeback_from >= interval {
            active
                .file
                .start_writeback(active.writeback_from, visible_end - active.writeback_from);
            active.writeback_from = visible_end;
        }
    }

    /// Waits until every record below `end_seq` is visible (or the log latched).
    async fn wait_visible(&self, end_seq: u64) -> Result<()> {
        loop {
            if self.shared.next_seq() >= end_seq {
                return Ok(());
            }
            self.check_writable()?;
            let listener = self.published.listen();
            if self.shared.next_seq() >= end_seq {
                return Ok(());
            }
            self.check_writable()?;
            listener.await;
        }
    }

    /// Seals the active segment (if any) and starts the next one. Called with the ring lock.
    async fn roll(&self) -> Result<()> {
        self.writer.borrow_mut().rolling = true;
        let in_flight = CancelLatch::arm(self, "a segment roll");
        let rolled = self.roll_inner().await;
        in_flight.disarm();
        self.writer.borrow_mut().rolling = false;
        rolled
    }

    async fn roll_inner(&self) -> Result<()> {
        // The seal describes every batch of the segment: let the writes in flight land first.
        let reserved_end = self.writer.borrow().next_seq;
        self.wait_visible(reserved_end).await?;
        // Get the next segment before touching the old one: if that fails, nothing changed.
        let (mut segment, file) = self.take_segment().await?;
        let (base_seq, generation) = {
            let mut w = self.writer.borrow_mut();
            w.generation += 1;
            if let Some(old) = w.active.take() {
                // No longer "the active one": syncs must still cover it, and `maintain` seals
                // it once its data is durable (never before: a seal on disk over missing data
                // would open in O(1) over a hole). Rolls never wait for a sync.
                w.unsynced.push(old.file.clone());
                let end_seq = w.next_seq;
                w.sealing.push((old, end_seq));
            }
            (w.next_seq, w.generation)
        };
        let latest_ms = self.writer.borrow().last_timestamp_ms;
        let index = SparseIndex::new(self.config.index_interval_bytes);
        Arc::get_mut(&mut segment)
            .expect("a segment being started has no readers")
            .reset(generation, base_seq, latest_ms, index);
        let follows_seq = self.writer.borrow_mut().gap_from.take().unwrap_or(base_seq);
        let header = SegmentHeader {
            state: SegmentState::Live,
            generation,
            base_seq,
            segment_size: self.config.segment_size_bytes,
            created_ms: self.shared.clock.now_ms(),
            follows_seq,
        };
        if let Err(e) = file.write_at(0, header.encode().to_vec()).await {
            return Err(self.fail("write segment header", &segment.path, e));
        }
        let mut w = self.writer.borrow_mut();
        w.live.push(segment.clone());
        self.shared.set_table(w.live.clone());
        let index = SparseIndex::new(self.config.index_interval_bytes);
        w.active = Some(Active {
            segment,
            file: Rc::new(file),
            write_pos: SEGMENT_DATA_START,
            last_checksum: 0,
            index,
            writeback_from: SEGMENT_DATA_START,
        });
        w.dirty_epoch += 1;
        Ok(())
    }

    /// A segment to start: a reclaimed one, or a new file while the ring may grow.
    async fn take_segment(&self) -> Result<(Arc<Segment>, I::File)> {
        let reused = {
            let mut w = self.writer.borrow_mut();
            w.reclaim();
            w.free.pop()
        };
        let Some(segment) = reused else {
            if self.writer.borrow().allocating_spare {
                // `maintain` is allocating one right now: wait for it rather than race it.
                let listener = self.spare_ready.listen();
                if self.writer.borrow().allocating_spare {
                    listener.await;
                }
                self.check_writable()?;
                return Box::pin(self.take_segment()).await;
            }
            // No spare was ready (`maintain` prepares one): create the file on the append path.
            self.writer.borrow_mut().files_created_on_roll += 1;
            return self.create_segment().await;
        };
        match self.io.open(&segment.path).await {
            Ok(file) => {
                // Generation 0 marks a spare that never held data.
                if segment.generation != 0 {
                    self.writer.borrow_mut().segments_recycled += 1;
                }
                Ok((segment, file))
            }
            Err(e) => {
                let error = StorageError::io("open", &segment.path, e);
                self.writer.borrow_mut().free.push(segment);
                Err(error)
            }
        }
    }

    /// Creates, allocates and maps a new segment file, if the ring may grow.
    async fn create_segment(&self) -> Result<(Arc<Segment>, I::File)> {
        // Reserve the slot before awaiting, so concurrent creations never collide or overshoot.
        let slot = {
            let mut w = self.writer.borrow_mut();
            if w.files_on_disk >= self.config.segments_max {
                return Err(StorageError::LogFull {
                    segments_max: self.config.segments_max,
                });
            }
            w.files_on_disk += 1;
            w.next_slot += 1;
            w.next_slot - 1
        };
        let path = self.shared.dir.join(segment_file_name(slot));
        let created = match self.io.create(&path, self.config.segment_size_bytes).await {
            Ok(file) => Ok(file),
            // glommio reports ENOSPC as an error of kind StorageFull without the errno.
            Err(e)
                if e.raw_os_error() == Some(libc::ENOSPC)
                    || e.kind() == std::io::ErrorKind::StorageFull =>
            {
                Err(StorageError::NoSpace { path: path.clone() })
            }
            Err(e) => Err(StorageError::io("create segment", &path, e)),
        };
        let file = match created {
            Ok(file) => file,
            Err(e) => {
                self.writer.borrow_mut().files_on_disk -= 1;
                return Err(e);
            }
        };
        self.writer.borrow_mut().files_created += 1;
        self.io
            .sync_dir(&self.shared.dir)
            .await
            .map_err(|e| self.fail("sync dir", &self.shared.dir, e))?;
        let segment = Segment::new(path.clone(), map_file(&path)?, 0, 0);
        Ok((Arc::new(segment), file))
    }

    /// Housekeeping for the owning core to run periodically (every 100 ms or so): retires
    /// expired segments, seals full segments once their data is durable (so a reopen finds
    /// them in O(1)), and once the active segment is half full makes sure a free segment is
    /// ready, so that rolls never create files on the append path. Returns segments retired.
    pub async fn maintain(&self) -> Result<usize> {
        self.check_writable()?;
        let retired = self.enforce_retention().await?;
        // Neither step below takes the ring lock: a roll must never wait behind a sync or a
        // file allocation.
        self.seal_full_segments().await?;
        let needs_spare = {
            let mut w = self.writer.borrow_mut();
            w.reclaim();
            let half_full = w.active.as_ref().is_some_and(|a| {
                a.write_pos - SEGMENT_DATA_START >= self.config.batch_bytes_max() / 2
            });
            let needs = half_full && w.free.is_empty() && !w.allocating_spare;
            w.allocating_spare |= needs;
            needs
        };
        if needs_spare {
            let in_flight = CancelLatch::arm(self, SPARE_ALLOCATION);
            let created = self.create_segment().await;
            let mut w = self.writer.borrow_mut();
            let created = match created {
                Ok((segment, _file)) => {
                    w.free.push(segment);
                    Ok(())
                }
                // A full ring is not an error for housekeeping: the roll will say so if it matters.
                Err(StorageError::LogFull { .. }) => Ok(()),
                Err(e) => Err(e),
            };
            drop(w);
            in_flight.disarm(); // clears `allocating_spare` and wakes waiting rolls
            created?;
        }
        Ok(retired)
    }

    /// Syncs each full segment's data, then writes its seal. A segment retired meanwhile is still
    /// leased by `pending`, so it cannot be reused under the seal's writes.
    async fn seal_full_segments(&self) -> Result<()> {
        let pending = std::mem::take(&mut self.writer.borrow_mut().sealing);
        if pending.is_empty() {
            return Ok(());
        }
        let in_flight = CancelLatch::arm(self, "sealing");
        for (full, end_seq) in pending {
            // Through the group-commit gate: the full segment's file is in `unsynced`, so this
            // makes its data durable, and a failure latches the log for every caller.
            self.wait_durable(end_seq).await?;
            self.check_writable()?;
            self.seal(&full, end_seq).await?;
            self.writer.borrow_mut().unsynced.push(full.file);
        }
        in_flight.disarm();
        Ok(())
    }

    /// Writes the footer and trailer of a full segment.
    async fn seal(&self, old: &Active<I::File>, end_seq: u64) -> Result<()> {
        let segment = &old.segment;
        let index = old.index.entries().to_vec();
        let footer = SegmentFooter {
            generation: segment.generation,
            base_seq: segment.base_seq,
            end_seq,
            data_end: old.write_pos,
            min_timestamp_ms: index.first().map_or(u64::MAX, |e| e.timestamp_ms),
            max_timestamp_ms: segment.max_timestamp_ms(),
            last_checksum: old.last_checksum,
            index,
        };
        let (bytes, footer_checksum) = encode_footer(&footer);
        let trailer_pos = self.config.segment_size_bytes - TRAILER_LEN as u64;
        assert!(
            old.write_pos + bytes.len() as u64 <= trailer_pos,
            "seal space is reserved"
        );
        let trailer = Trailer {
            generation: segment.generation,
            footer_pos: old.write_pos,
            footer_len: bytes.len() as u64,
            footer_checksum,
            end_seq,
        };
        let written = match old.file.write_at(old.write_pos, bytes).await {
            Ok(()) => {
                old.file
                    .write_at(trailer_pos, trailer.encode().to_vec())
                    .await
            }
            Err(e) => Err(e),
        };
        written.map_err(|e| self.fail("seal segment", &segment.path, e))
    }

    /// Waits until a sync has covered every record below `end_seq`, running one if needed.
    async fn wait_durable(&self, end_seq: u64) -> Result<()> {
        loop {
            if self.durable_seq.get() >= end_seq {
                return Ok(());
            }
            self.check_writable()?;
            let _gate = self.sync_gate.lock().await;
            if self.durable_seq.get() >= end_seq {
                return Ok(());
            }
            self.check_writable()?;
            // Every visible batch's write has completed into one of these files. Nothing is
            // marked clean until the syncs succeed, so a cancelled or failed sync loses nothing.
            let (target, files, sealed_files, epoch) = {
                let w = self.writer.borrow();
                let mut files: Vec<Rc<I::File>> = w.unsynced.clone();
                let sealed_files = files.len();
                if w.dirty_epoch > w.clean_epoch {
                    files.extend(w.active.as_ref().map(|a| a.file.clone()));
                }
                (self.shared.next_seq(), files, sealed_files, w.dirty_epoch)
            };
            for file in files {
                if let Err(e) = file.sync_data().await {
                    return Err(self.sync_failed(&self.shared.dir, e));
                }
            }
            // A failure reported to another caller (say, sealing) latched the log: this sync's
            // success proves nothing about data the device already lost.
            self.check_writable()?;
            {
                // Only this gate's holder removes from `unsynced`; others only append.
                let mut w = self.writer.borrow_mut();
                w.unsynced.drain(..sealed_files);
                w.clean_epoch = w.clean_epoch.max(epoch);
            }
            self.durable_seq.set(self.durable_seq.get().max(target));
        }
    }

    /// Retires sealed segments whose every record is past retention; returns how many.
    /// Their files are reused once no reader holds them.
    pub async fn enforce_retention(&self) -> Result<usize> {
        self.check_writable()?;
        let _ring = self.ring_lock.lock().await;
        self.check_writable()?;
        let cutoff = self.shared.expiry_cutoff_ms();
        let expired: Vec<Arc<Segment>> = {
            let mut w = self.writer.borrow_mut();
            let sealed = w.live.len().saturating_sub(usize::from(w.active.is_some()));
            let count = w.live[..sealed]
                .iter()
                .take_while(|s| s.max_timestamp_ms() < cutoff)
                .count();
            let expired: Vec<_> = w.live.drain(..count).collect();
            // A retired segment needs no seal any more.
            w.sealing
                .retain(|(full, _)| !expired.iter().any(|e| Arc::ptr_eq(e, &full.segment)));
            if let Some(last) = expired.last() {
                self.shared.raise_trim(last.end_seq());
                self.shared.set_table(w.live.clone());
            }
            expired
        };
        let in_flight = CancelLatch::arm(self, "a retention pass");
        for segment in &expired {
            // Record on disk that the segment is free, so a restart never brings it back.
            let header = free_header(
                segment,
                SegmentState::Free,
                segment.end_seq(),
                &self.config,
                self.shared.clock.now_ms(),
            );
            let file = self
                .io
                .open(&segment.path)
                .await
                .map_err(|e| self.fail("open", &segment.path, e))?;
            if let Err(e) = file.write_at(0, header.to_vec()).await {
                return Err(self.fail("retire segment", &segment.path, e));
            }
            let mut w = self.writer.borrow_mut();
            w.unsynced.push(Rc::new(file));
            w.retiring.push(segment.clone());
        }
        in_flight.disarm();
        let retired = expired.len();
        drop(expired); // our own references would keep the segments from being reclaimed
        self.writer.borrow_mut().reclaim();
        Ok(retired)
    }
}

/// Latches the log if dropped while armed: a future cancelled mid-I/O leaves the log in a state
/// it cannot vouch for (a write that may or may not have landed, a half-done roll), so it
/// refuses writes until reopened rather than wedge or guess. The engine never cancels these.
struct CancelLatch<'a, I: SegmentIo> {
    log: &'a ShardLog<I>,
    what: &'static str,
    armed: bool,
}

impl<'a, I: SegmentIo> CancelLatch<'a, I> {
    fn arm(log: &'a ShardLog<I>, what: &'static str) -> Self {
        CancelLatch {
            log,
            what,
            armed: true,
        }
    }

    /// The operation finished: dropping the latch now only does its wake-ups.
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl<I: SegmentIo> Drop for ShardLog<I> {
    /// Wakes readers waiting for new records: none will come from this writer.
    fn drop(&mut self) {
        self.shared.wake_waiters();
    }
}

impl<I: SegmentIo> Drop for CancelLatch<'_, I> {
    fn drop(&mut self) {
        if self.armed {
            self.log.shared.latch(format!(
                "{} was cancelled during its I/O; reopen the log",
                self.what
            ));
            self.log.published.notify(usize::MAX);
        }
        if self.what == SPARE_ALLOCATION {
            // Whether it finished or was cancelled, rolls waiting for the spare must wake.
            self.log.writer.borrow_mut().allocating_spare = false;
            self.log.spare_ready.notify(usize::MAX);
        }
    }
}

const SPARE_ALLOCATION: &str = "a segment allocation";

/// The marker a failed fdatasync leaves in a log's directory (see `ShardLog::sync_failed`).
const SYNC_FAILED: &str = "SYNC-FAILED";

/// How much `rewrite_live` writes per call.
const REWRITE_CHUNK_BYTES: u64 = 1 << 20;

/// Writes the marker and makes it durable (file, then directory), with std's blocking calls:
/// this only runs after a failed sync.
fn write_sync_failed_marker(dir: &Path) -> std::io::Result<()> {
    let path = dir.join(SYNC_FAILED);
    let text =
        "an fdatasync failed: the next open writes every live segment again before syncing\n";
    std::fs::write(&path, text)?;
    std::fs::File::open(&path)?.sync_all()?;
    std::fs::File::open(dir)?.sync_all()
}

/// Makes a directory's entries durable with std's blocking call.
fn sync_dir_std(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StorageError::io("sync dir", dir, e))
}

impl<F> Writer<F> {
    fn reclaim(&mut self) {
        reclaim(&mut self.retiring, &mut self.free);
    }
}

/// Moves retired segments that no reader holds any more from `retiring` to `free`.
pub(crate) fn reclaim(retiring: &mut Vec<Arc<Segment>>, free: &mut Vec<Arc<Segment>>) {
    let mut still_leased = Vec::new();
    for mut segment in retiring.drain(..) {
        // get_mut succeeds only for the last reference, with acquire ordering against the
        // readers' releases: no reader can still be looking at these bytes.
        if Arc::get_mut(&mut segment).is_some() {
            free.push(segment);
        } else {
            still_leased.push(segment);
        }
    }
    *retiring = still_leased;
}

/// The header that marks a segment free (retired by retention) or released (by recovery).
fn free_header(
    segment: &Segment,
    state: SegmentState,
    base_seq: u64,
    config: &LogConfig,
    now_ms: u64,
) -> [u8; 64] {
    assert_ne!(state, SegmentState::Live);
    SegmentHeader {
        state,
        generation: segment.generation,
        base_seq,
        segment_size: config.segment_size_bytes,
        created_ms: now_ms,
        follows_seq: base_seq,
    }
    .encode()
}

/// Takes an exclusive lock on the directory, so two logs never write the same files.
pub(crate) fn lock_dir(dir: &Path) -> Result<File> {
    let path: PathBuf = dir.join("LOCK");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| StorageError::io("open lock", &path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StorageError::InUse {
            path: dir.to_path_buf(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(StorageError::io("lock", &path, e)),
    }
}
