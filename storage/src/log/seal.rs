//! Housekeeping and seals: `maintain` seals full segments only once their data is durable (a
//! seal on disk over missing data would open in O(1) over a hole) and keeps a spare segment
//! ready, so rolls never create files on the append path.

use super::cancel::{CancelLatch, SPARE_ALLOCATION};
use super::{Active, ShardLog};
use crate::error::{Result, StorageError};
use crate::format::{SEGMENT_DATA_START, SegmentFooter, TRAILER_LEN, Trailer, encode_footer};
use crate::io::{SegmentFile, SegmentIo};

impl<I: SegmentIo> ShardLog<I> {
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

    /// Runs [`ShardLog::maintain`] every `every` (100 ms suits most logs) until it fails:
    /// spawn it on the log's core beside the appends. It returns the error that stopped it,
    /// which is the one that latched the log.
    pub async fn run_maintenance(&self, every: std::time::Duration) -> Result<()> {
        loop {
            self.maintain().await?;
            crate::runtime::sleep(every).await;
        }
    }

    /// Syncs each full segment's data, then writes its seal. A segment retired meanwhile is still
    /// leased by `pending`, so it cannot be reused under the seal's writes.
    async fn seal_full_segments(&self) -> Result<()> {
        let _sealing = self.seal_lock.lock().await;
        let pending = std::mem::take(&mut self.writer.borrow_mut().sealing);
        if pending.is_empty() {
            return Ok(());
        }
        let in_flight = CancelLatch::arm(self, "sealing");
        for (full, end_seq) in pending {
            // Through the group-commit gate: the full segment's file is in `unsynced`, so this
            // makes its data durable, and a failure latches the log for every caller.
            self.wait_batches_durable(full.last_ordinal).await?;
            self.check_writable()?;
            self.seal(&full, end_seq).await?;
            self.writer.borrow_mut().unsynced.push(full.file);
        }
        in_flight.disarm();
        Ok(())
    }

    /// Writes the footer and trailer of a full segment.
    pub(super) async fn seal(&self, old: &Active<I::File>, end_seq: u64) -> Result<()> {
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
}
