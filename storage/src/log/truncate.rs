//! Removing a replicated log's entries above the commit: a follower whose uncommitted suffix
//! conflicts with a new leader's log (docs/design/segment-format.md, "Replicated logs").

use super::cancel::CancelLatch;
use super::entries::Cut;
use super::retention::free_header;
use super::{Active, ShardLog};
use crate::error::{Result, StorageError};
use crate::format::{BATCH_HEADER_MAX_LEN, SegmentState, TRAILER_LEN};
use crate::index::SparseIndex;
use crate::io::{SegmentFile, SegmentIo};
use crate::segment::Segment;
use crate::sync::Arc;
use std::rc::Rc;

impl<I: SegmentIo> ShardLog<I> {
    /// Removes the entries from `index` on (all of them above the commit: a visible entry is
    /// refused with `TruncateCommitted`); the next entry appended is `index`. Everything it
    /// changes on disk is synced before it returns.
    ///
    /// The Raft layer orders its appends and truncations: an append still running when a
    /// truncation starts may return `Ok` for an entry the truncation removed. After a reopen
    /// nothing is visible until the first `commit_to`, so only the Raft layer's own commit
    /// index keeps a truncation above committed entries then.
    pub async fn truncate_from(&self, index: u64) -> Result<()> {
        let refused = "a single-node log has no entries to truncate";
        self.rewriting_entries("a truncation", refused, self.truncate_inner(index))
            .await
    }

    /// Runs `rewrite` (a future: nothing of it runs before the locks are held) on a
    /// replicated log with everything else that moves its end held off; a single-node log is
    /// refused with `refused`. A cancellation half-way latches the log (`what` names it).
    pub(super) async fn rewriting_entries<T>(
        &self,
        what: &'static str,
        refused: &str,
        rewrite: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        self.check_writable()?;
        if !self.config.replicated {
            return Err(StorageError::EntryRefused {
                reason: refused.into(),
            });
        }
        let _ring = self.ring_lock.lock().await;
        let _sealing = self.seal_lock.lock().await;
        // No group commit runs across the rewrite: one that read the written end before it
        // would count removed entries' sequence numbers durable when it finishes. (Filesystem
        // syncs are waited for outside the gate: they see `rewrites` move and count none of
        // their point's numbers.)
        let _syncs = self.sync_gate.lock().await;
        self.check_writable()?;
        // Appends wait (as during a roll) until the log ends where the rewrite left it.
        {
            let mut w = self.writer.borrow_mut();
            w.rolling = true;
            // Filesystem syncs asked for before this and waited for outside the gate.
            w.rewrites += 1;
        }
        let in_flight = CancelLatch::arm(self, what);
        let rewritten = rewrite.await;
        in_flight.disarm();
        self.writer.borrow_mut().rolling = false;
        rewritten
    }

    async fn truncate_inner(&self, index: u64) -> Result<()> {
        let reserved = self.writer.borrow().reserved_batches;
        self.wait_written(reserved).await?;
        let (visible, last) = {
            let w = self.writer.borrow();
            (w.commit.visible_entry(), w.last_entry)
        };
        if let Some(visible) = visible
            && index <= visible.index
        {
            return Err(StorageError::TruncateCommitted {
                index,
                visible_index: visible.index,
            });
        }
        if last.is_none_or(|last| index > last.index) {
            return Ok(());
        }
        let Some(cut) = self.find_cut(index)? else {
            return Ok(());
        };
        self.cut_on_disk(&cut).await?;
        self.cut_in_memory(cut).await
    }

    fn find_cut(&self, index: u64) -> Result<Option<Cut>> {
        let cut = self.locate_entry(index)?;
        if let Some(cut) = &cut {
            let w = self.writer.borrow();
            w.commit.check_below(&w.live[cut.live_index], cut.pos);
        }
        Ok(cut)
    }

    /// Zeroes the first removed batch's header (and the seal of its segment, which takes
    /// appends again), marks every later segment released, and syncs all of it.
    async fn cut_on_disk(&self, cut: &Cut) -> Result<()> {
        let (segment, later, floor, sealed) = {
            let w = self.writer.borrow();
            let segment = w.live[cut.live_index].clone();
            let floor = cut.previous.map_or(segment.base_seq, |h| h.end_seq());
            // Not the active segment, nor a full one waiting for `maintain` (which cannot seal
            // it now: this holds the seal lock): its seal is on the device.
            let is = |other: &Arc<Segment>| Arc::ptr_eq(other, &segment);
            let sealed = !w.active.as_ref().is_some_and(|a| is(&a.segment))
                && !w.sealing.iter().any(|(full, _)| is(&full.segment));
            (
                segment,
                w.live[cut.live_index + 1..].to_vec(),
                floor,
                sealed,
            )
        };
        let file = self.open_for_cut(&segment.path).await?;
        // The seal goes first, on the device before the cut: a seal over a zeroed batch would
        // open in O(1) and describe batches a walk cannot pass. Pages reach the device in any
        // order, so the order is made by a sync, not by the order of the writes.
        let trailer_pos = self.config.segment_size_bytes - TRAILER_LEN as u64;
        let seal = sealed.then_some((trailer_pos, TRAILER_LEN));
        for (pos, len) in seal.into_iter().chain([(cut.pos, BATCH_HEADER_MAX_LEN)]) {
            if let Err(e) = file.write_at(pos, vec![0u8; len]).await {
                return Err(self.fail("truncate segment", &segment.path, e));
            }
            self.sync_file(&file, &segment.path).await?;
        }
        for released in &later {
            let now_ms = self.shared.clock.now_ms();
            let header = free_header(
                released,
                SegmentState::Released,
                floor,
                &self.config,
                now_ms,
            );
            let file = self.open_for_cut(&released.path).await?;
            if let Err(e) = file.write_at(0, header.to_vec()).await {
                return Err(self.fail("release segment", &released.path, e));
            }
            self.sync_file(&file, &released.path).await?;
        }
        Ok(())
    }

    async fn open_for_cut(&self, path: &std::path::Path) -> Result<I::File> {
        self.io
            .open(path)
            .await
            .map_err(|e| self.fail("open", path, e))
    }

    /// The writer's state after the cut: the cut segment is the active one again, ending
    /// where the kept entries end; later segments wait for reuse.
    async fn cut_in_memory(&self, cut: Cut) -> Result<()> {
        let segment = self.writer.borrow().live[cut.live_index].clone();
        let before = cut.live_index.checked_sub(1);
        let (last_entry, max_timestamp_ms) = match cut.previous {
            Some(header) => (header.entry, header.max_timestamp_ms),
            None => {
                let w = self.writer.borrow();
                let previous = before.and_then(|i| w.live[i].last_header());
                let max_ms = before.map_or(0, |i| w.live[i].max_timestamp_ms());
                (previous.and_then(|h| h.entry), max_ms)
            }
        };
        let end_seq = cut.previous.map_or(segment.base_seq, |h| h.end_seq());
        let reopened = self.reopened_active(&segment, &cut).await?;
        segment.truncate_to(cut.pos, end_seq, max_timestamp_ms);
        let mut w = self.writer.borrow_mut();
        let released: Vec<Arc<Segment>> = w.live.drain(cut.live_index + 1..).collect();
        w.sealing.retain(|(full, _)| {
            !Arc::ptr_eq(&full.segment, &segment)
                && !released.iter().any(|r| Arc::ptr_eq(r, &full.segment))
        });
        w.retiring.extend(released);
        self.shared.set_table(w.live.clone());
        w.active = Some(Active {
            last_ordinal: w.reserved_batches,
            ..reopened
        });
        w.next_seq = end_seq;
        w.last_entry = last_entry;
        w.entry_cursors.clear();
        w.last_timestamp_ms = max_timestamp_ms;
        w.gap_from = None;
        w.dirty_epoch += 1;
        w.reclaim();
        self.written_seq.set(end_seq);
        self.durable_seq.set(self.durable_seq.get().min(end_seq));
        Ok(())
    }

    /// The cut segment as the active one, its appends continuing at the cut.
    async fn reopened_active(&self, segment: &Arc<Segment>, cut: &Cut) -> Result<Active<I::File>> {
        let current = {
            let mut w = self.writer.borrow_mut();
            let is_active = w
                .active
                .as_ref()
                .is_some_and(|a| Arc::ptr_eq(&a.segment, segment));
            if is_active { w.active.take() } else { None }
        };
        let (file, writeback_from) = match current {
            Some(active) => (active.file, active.writeback_from.min(cut.pos)),
            None => (Rc::new(self.open_for_cut(&segment.path).await?), cut.pos),
        };
        let mut index =
            SparseIndex::from_entries(segment.index_entries(), self.config.index_interval_bytes);
        index.truncate(cut.pos);
        Ok(Active {
            segment: segment.clone(),
            file,
            write_pos: cut.pos,
            last_checksum: cut.previous.map_or(0, |h| h.checksum),
            index,
            writeback_from,
            last_ordinal: 0,
        })
    }
}
