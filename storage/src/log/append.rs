//! The append path: a batch is checked, reserves its place and sequence numbers synchronously,
//! is written concurrently with other appends' batches, and becomes visible strictly in sequence
//! order as the writes complete (`in_flight`).

use super::cancel::CancelLatch;
use super::{Appended, Durability, InFlight, ShardLog, Writer};
use crate::error::{Result, StorageError};
use crate::format::{EncodedBatch, IndexEntry, KEY_BYTES_MAX, RecordIn, encoded_batch_len};
use crate::io::{SegmentFile, SegmentIo};
use crate::segment::BatchLoc;
use std::rc::Rc;

impl<I: SegmentIo> ShardLog<I> {
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
    pub(super) async fn wait_visible(&self, end_seq: u64) -> Result<()> {
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
}
