//! Retention: sealed segments whose every record has expired are retired, marked free on disk
//! so a restart never brings them back, and reused once no reader leases them.

use super::ShardLog;
use super::cancel::CancelLatch;
use crate::config::LogConfig;
use crate::error::Result;
use crate::format::{SegmentHeader, SegmentState};
use crate::io::{SegmentFile, SegmentIo};
use crate::segment::Segment;
use crate::sync::Arc;

impl<I: SegmentIo> ShardLog<I> {
    /// Retires sealed segments whose every record is past retention; returns how many.
    /// Their files are reused once no reader holds them.
    pub async fn enforce_retention(&self) -> Result<usize> {
        self.check_writable()?;
        let ring = self.ring_lock.lock().await;
        self.check_writable()?;
        let cutoff = self.shared.expiry_cutoff_ms();
        let expired: Vec<Arc<Segment>> = {
            let mut w = self.writer.borrow_mut();
            let mut sealed = w.live.len().saturating_sub(usize::from(w.active.is_some()));
            if self.config.replicated {
                // Entries above the commit are the Raft layer's to keep or truncate, and those
                // it did not purge it may still ask for.
                sealed = sealed.min(super::replicated::fully_visible_segments(&w));
                sealed = sealed.min(super::replicated::purged_segments(&w)?);
            }
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
        if expired.is_empty() {
            // Readers may have let go of files retired earlier.
            self.writer.borrow_mut().reclaim();
            return Ok(0);
        }
        let in_flight = CancelLatch::arm(self, "a retention pass");
        // The ring changed in memory; what follows only concerns files no roll can take yet.
        drop(ring);
        let mut files = Vec::with_capacity(expired.len());
        for segment in &expired {
            files.push(self.write_free_header(segment).await?);
        }
        // Invariant: a retired file is reused only once its free header is on the device.
        // Otherwise a roll's new header could be lost while the new data pages were not, and
        // the file would show its old header over new data: a stale segment at the lowest
        // base, which recovery must not take for the start of the log.
        for (segment, file) in expired.iter().zip(&files) {
            self.sync_file(file, &segment.path).await?;
        }
        in_flight.disarm();
        let retired = expired.len();
        let mut w = self.writer.borrow_mut();
        w.retiring.extend(expired); // only references held by readers keep them from reuse
        w.reclaim();
        Ok(retired)
    }

    /// Records on disk that `segment` is free, so a restart never brings it back.
    async fn write_free_header(&self, segment: &Segment) -> Result<I::File> {
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
        match file.write_at(0, header.to_vec()).await {
            Ok(()) => Ok(file),
            Err(e) => Err(self.fail("retire segment", &segment.path, e)),
        }
    }
}

/// Moves retired segments that no reader holds any more from `retiring` to `free`.
pub(crate) fn reclaim(retiring: &mut Vec<Arc<Segment>>, free: &mut Vec<Arc<Segment>>) {
    let mut still_leased = Vec::new();
    for mut segment in retiring.drain(..) {
        // get_mut succeeds only for the last reference, with acquire ordering against the
        // readers' releases: no reader of this log can still be looking at these bytes. Nor of
        // an earlier log on this directory: its segment of the file, alive while a reader holds
        // it, is another mapping (the registry's lock orders its drop before this check).
        if Arc::get_mut(&mut segment).is_some_and(|s| s.is_only_mapping()) {
            free.push(segment);
        } else {
            still_leased.push(segment);
        }
    }
    *retiring = still_leased;
}

/// The header that marks a segment free (retired by retention) or released (by recovery).
pub(super) fn free_header(
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
