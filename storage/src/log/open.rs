//! Opening a log: recovery's findings become the writer's state, then the follow-ups that make
//! what recovery found safe to build on before the first append: write everything again after a
//! failed fdatasync, sync what may never have been synced, release discarded segments and seal
//! the unsealed ones.

use super::lock::{SYNC_FAILED, lock_dir, sync_dir_std};
use super::retention::free_header;
use super::{Active, ShardLog, Writer};
use crate::clock::Clock;
use crate::config::LogConfig;
use crate::error::{Result, StorageError};
use crate::format::SegmentState;
use crate::index::SparseIndex;
use crate::io::{SegmentFile, SegmentIo};
use crate::recovery;
use crate::segment::Segment;
use crate::shared::Shared;
use crate::sync::Arc;
use async_lock::Mutex;
use event_listener::Event;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::path::Path;
use std::rc::Rc;

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
        let marker = dir.join(SYNC_FAILED);
        let after_failed_sync = marker.exists();
        let mut recovered = recovery::recover(dir, &config)?;
        let live: Vec<Arc<Segment>> = std::mem::take(&mut recovered.live)
            .into_iter()
            .map(Arc::new)
            .collect();
        let live_count = live.len();
        let trim_seq = live.first().map_or(recovered.next_seq, |s| s.base_seq);
        // A replicated log shows nothing until the Raft layer says what is committed.
        let visible_seq = if config.replicated {
            trim_seq.min(recovered.next_seq)
        } else {
            recovered.next_seq
        };
        let commit = super::replicated::Commit::new(live.first(), visible_seq);
        let shared = Arc::new(Shared::new(
            dir.to_path_buf(),
            live.clone(),
            visible_seq,
            trim_seq,
            config.retention_ms,
            clock,
        ));
        if config.replicated {
            shared.mark_replicated();
        }
        let discarded: Vec<Arc<Segment>> = std::mem::take(&mut recovered.discarded)
            .into_iter()
            .map(Arc::new)
            .collect();
        // Free on disk, but a reader of an earlier log in this process may still hold one:
        // they wait in `retiring` for `reclaim`, as retired segments do.
        let retiring: Vec<Arc<Segment>> = std::mem::take(&mut recovered.free)
            .into_iter()
            .map(Arc::new)
            .chain(discarded.iter().cloned())
            .collect();
        let writer = recovered_writer(&recovered, live, retiring, commit);
        let state = super::state::load_state(dir, &config)?;
        let log = ShardLog {
            io,
            config,
            durable_seq: Cell::new(recovered.next_seq),
            written_batches: Cell::new(0),
            durable_batches: Cell::new(0),
            written_seq: Cell::new(recovered.next_seq),
            shared,
            writer: RefCell::new(writer),
            ring_lock: Mutex::new(()),
            published: Event::new(),
            spare_ready: Event::new(),
            sync_gate: Mutex::new(()),
            seal_lock: Mutex::new(()),
            state: RefCell::new(state),
            state_lock: Mutex::new(()),
            report: recovered.report,
            _lock: lock,
        };
        if after_failed_sync {
            log.rewrite_live().await?;
        }
        log.sync_recovered().await?;
        log.settle_state(after_failed_sync).await?;
        log.release_discarded(&discarded).await?;
        drop(discarded); // `retiring` must hold the only references (see `reclaim`)
        log.writer.borrow_mut().reclaim();
        let resumable = recovered.chain_end == recovered.next_seq;
        log.settle_unsealed(recovered.unsealed, live_count, resumable)
            .await?;
        if after_failed_sync {
            // Everything recovered is on the device now: the marker has done its work.
            std::fs::remove_file(&marker).map_err(|e| StorageError::io("remove", &marker, e))?;
            sync_dir_std(dir)?;
        }
        Ok(log)
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

    /// The tail goes on taking appends if it ended cleanly where the log continues
    /// (`resumable`: no numbering jump); every other unsealed segment is sealed at its last
    /// intact batch.
    async fn settle_unsealed(
        &self,
        unsealed: Vec<(usize, recovery::Tail)>,
        live_count: usize,
        resumable: bool,
    ) -> Result<()> {
        let resumable = resumable && self.report.truncated.is_none();
        for (index, tail) in unsealed {
            let last = index + 1 == live_count;
            if resumable && last && self.resumable_tail(index, tail) {
                self.resume_tail(index, tail).await?;
            } else {
                self.seal_recovered(index, tail).await?;
            }
        }
        Ok(())
    }

    /// Whether the tail segment can take appends again: it has room left, and records still
    /// within retention (a tail of expired records is sealed, so retention can recycle it).
    fn resumable_tail(&self, live_index: usize, tail: recovery::Tail) -> bool {
        let segment = &self.writer.borrow().live[live_index];
        tail.write_pos < self.config.data_limit()
            && segment.max_timestamp_ms() >= self.shared.expiry_cutoff_ms()
    }

    /// Makes the segment recovery found at the tail, unsealed and ending cleanly where the
    /// log continues, the active one again, so a restart costs no new segment (a reopen used
    /// to seal it and start the next, pre-allocating a whole segment per shard per restart).
    /// Its data was synced by `sync_recovered`. Past its end lie zeroes, an earlier life's
    /// batches (another generation) or, after a power loss, batches of its own that follow
    /// lost pages: a new batch chains to the last intact one by checksum, so none of those
    /// can pass for its successor unless it is byte for byte the batch that was lost.
    async fn resume_tail(&self, live_index: usize, tail: recovery::Tail) -> Result<()> {
        let segment = self.writer.borrow().live[live_index].clone();
        let file = self.open_file(&segment.path).await?;
        let index =
            SparseIndex::from_entries(segment.index_entries(), self.config.index_interval_bytes);
        self.writer.borrow_mut().active = Some(Active {
            segment,
            file: Rc::new(file),
            write_pos: tail.write_pos,
            last_checksum: tail.last_checksum,
            index,
            writeback_from: tail.write_pos,
            last_ordinal: 0,
        });
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
            last_ordinal: 0,
        };
        self.seal(&full, end_seq).await?;
        self.sync_file(&full.file, &full.segment.path).await
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
            self.sync_file(&file, path).await?;
        }
        Ok(())
    }

    /// Recovered data may have come from the page cache of a process that never synced it:
    /// sync every live file before counting it durable.
    async fn sync_recovered(&self) -> Result<()> {
        let live = self.writer.borrow().live.clone();
        for segment in live {
            let file = self.open_file(&segment.path).await?;
            self.sync_file(&file, &segment.path).await?;
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
}

/// The writer's state over what recovery found.
fn recovered_writer<F>(
    recovered: &recovery::Recovered,
    live: Vec<Arc<Segment>>,
    retiring: Vec<Arc<Segment>>,
    commit: super::replicated::Commit,
) -> Writer<F> {
    let last_timestamp_ms = live.last().map_or(0, |s| s.max_timestamp_ms());
    let files_on_disk = live.len() + retiring.len();
    Writer {
        active: None,
        rolling: false,
        in_flight: VecDeque::new(),
        live,
        retiring,
        free: Vec::new(),
        unsynced: Vec::new(),
        unsynced_drained: 0,
        rewrites: 0,
        sealing: Vec::new(),
        allocating_spare: false,
        gap_from: (recovered.chain_end != recovered.next_seq).then_some(recovered.chain_end),
        dirty_epoch: 0,
        clean_epoch: 0,
        next_seq: recovered.next_seq,
        reserved_batches: 0,
        last_entry: recovered.last_entry,
        commit,
        entry_cursors: super::entries::Cursors::default(),
        last_timestamp_ms,
        generation: recovered.generation,
        next_slot: recovered.next_slot,
        files_on_disk,
        files_created: 0,
        files_created_on_roll: 0,
        segments_recycled: 0,
    }
}

/// How much `rewrite_live` writes per call.
const REWRITE_CHUNK_BYTES: u64 = 1 << 20;
