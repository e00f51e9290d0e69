//! Rolling to the next segment: the full one leaves `active` for `sealing` (sealed later, once
//! its data is durable), and a reclaimed segment, or a new file while the ring may grow, takes
//! the appends. A roll never waits for a sync.

use super::cancel::CancelLatch;
use super::{Active, ShardLog};
use crate::error::{Result, StorageError};
use crate::format::{SEGMENT_DATA_START, SegmentHeader, SegmentState};
use crate::index::SparseIndex;
use crate::io::{SegmentFile, SegmentIo};
use crate::recovery::segment_file_name;
use crate::segment::{Segment, map_file};
use crate::sync::Arc;
use std::rc::Rc;

impl<I: SegmentIo> ShardLog<I> {
    /// Seals the active segment (if any) and starts the next one. Called with the ring lock.
    pub(super) async fn roll(&self) -> Result<()> {
        self.writer.borrow_mut().rolling = true;
        let in_flight = CancelLatch::arm(self, "a segment roll");
        let rolled = self.roll_inner().await;
        in_flight.disarm();
        self.writer.borrow_mut().rolling = false;
        rolled
    }

    async fn roll_inner(&self) -> Result<()> {
        // The seal describes every batch of the segment: let the writes in flight land first.
        let reserved = self.writer.borrow().reserved_batches;
        self.wait_written(reserved).await?;
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
            last_ordinal: 0,
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
    pub(super) async fn create_segment(&self) -> Result<(Arc<Segment>, I::File)> {
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
}
