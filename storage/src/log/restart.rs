//! Where retention ends in a replicated log, and a follower's log restarted past it: the Raft
//! layer snapshots at the last entry retention would retire, and a follower that lacks that
//! entry drops its whole log and continues at the next one, with the leader's numbering
//! (docs/design/cluster.md, "Snapshots at the retention point").

use super::ShardLog;
use super::retention::free_header;
use crate::error::{Result, StorageError};
use crate::format::{EntryId, SegmentState};
use crate::io::{SegmentFile, SegmentIo};
use crate::segment::Segment;
use crate::sync::Arc;

/// The last entry of a replicated log whose records have all expired, and the sequence
/// number the log continues at after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetentionPoint {
    /// The newest entry retention would retire once the Raft layer purged it.
    pub entry: EntryId,
    /// The sequence number of the first record after it.
    pub next_seq: u64,
}

impl<I: SegmentIo> ShardLog<I> {
    /// The last entry of the oldest segments that are sealed, wholly committed and expired:
    /// what retention retires once the Raft layer purges up to it (`set_retain_from`). `None`
    /// while no such segment exists.
    pub fn retention_point(&self) -> Result<Option<RetentionPoint>> {
        if !self.config.replicated {
            return Ok(None);
        }
        let w = self.writer.borrow();
        let cutoff = self.shared.expiry_cutoff_ms();
        let sealed = w.live.len().saturating_sub(usize::from(w.active.is_some()));
        let sealed = sealed.min(super::replicated::fully_visible_segments(&w));
        let expired = w.live[..sealed]
            .iter()
            .take_while(|s| s.max_timestamp_ms() < cutoff)
            .count();
        let Some(newest) = expired.checked_sub(1).map(|i| &w.live[i]) else {
            return Ok(None);
        };
        let Some(header) = newest.last_header() else {
            return Ok(None);
        };
        let reason = crate::format::FormatError("a batch of a replicated log is no entry");
        let entry = header
            .entry
            .ok_or_else(|| newest.corrupt(newest.visible_end(), reason))?;
        Ok(Some(RetentionPoint {
            entry,
            next_seq: header.end_seq(),
        }))
    }

    /// Drops every entry of a replicated log (committed ones too) and makes it continue at
    /// `next_seq`: the next entry received may have any index, and must start at that
    /// sequence number. For a follower whose log lacks the entry a snapshot names (the
    /// leader's retention point): what it drops had expired on the leader. Readers' trim
    /// horizon becomes `next_seq`. Every segment is marked free on the device before it
    /// returns, so a restart finds the log empty and continuing at `next_seq`.
    ///
    /// Refused when `next_seq` is below a number readers have seen: numbers never go back.
    pub async fn restart_at(&self, next_seq: u64) -> Result<()> {
        let refused = "only a replicated log restarts at a leader's numbering";
        self.rewriting_entries("a restart", refused, self.restart_inner(next_seq))
            .await
    }

    async fn restart_inner(&self, next_seq: u64) -> Result<()> {
        let reserved = self.writer.borrow().reserved_batches;
        self.wait_written(reserved).await?;
        let (visible_seq, live) = {
            let w = self.writer.borrow();
            (self.shared.next_seq(), w.live.clone())
        };
        if next_seq < visible_seq {
            return Err(StorageError::EntryRefused {
                reason: format!(
                    "a restart at sequence number {next_seq} goes back: readers have seen \
                     numbers up to {visible_seq}"
                ),
            });
        }
        // Oldest first: a crash half-way leaves a newest run of segments, a log that begins
        // past its first entry (as after retention), never one with a hole.
        for segment in &live {
            self.free_for_restart(segment, next_seq).await?;
        }
        let mut w = self.writer.borrow_mut();
        let dropped: Vec<Arc<Segment>> = w.live.drain(..).collect();
        w.active = None;
        w.sealing.clear();
        w.retiring.extend(dropped);
        w.commit = w.commit.restarted(next_seq);
        w.next_seq = next_seq;
        w.last_entry = None;
        w.entry_cursors.clear();
        // As a reopen finds it: no record is left to be later than.
        w.last_timestamp_ms = 0;
        w.gap_from = None;
        w.reclaim();
        // The horizon first, as retention does: a reader that finds the segments gone finds
        // its position trimmed, not a gap.
        self.shared.raise_trim(next_seq);
        self.shared.set_table(Vec::new());
        if next_seq > self.shared.next_seq() {
            self.shared.publish_next_seq(next_seq);
        }
        self.written_seq.set(next_seq);
        self.durable_seq.set(next_seq);
        Ok(())
    }

    /// Marks `segment` free with `floor` as the number the log continues at, on the device.
    async fn free_for_restart(&self, segment: &Segment, floor: u64) -> Result<()> {
        let now_ms = self.shared.clock.now_ms();
        let header = free_header(segment, SegmentState::Free, floor, &self.config, now_ms);
        let file = self
            .io
            .open(&segment.path)
            .await
            .map_err(|e| self.fail("open", &segment.path, e))?;
        if let Err(e) = file.write_at(0, header.to_vec()).await {
            return Err(self.fail("restart log", &segment.path, e));
        }
        self.sync_file(&file, &segment.path).await
    }
}
