//! The append path: a batch is checked, reserves its place and sequence numbers synchronously,
//! is written concurrently with other appends' batches, and becomes visible strictly in sequence
//! order as the writes complete (`in_flight`).

use super::cancel::CancelLatch;
use super::{Appended, Durability, InFlight, ShardLog, Writer};
use crate::error::{Result, StorageError};
use crate::format::{
    EncodedBatch, EntryId, IndexEntry, KEY_BYTES_MAX, RecordIn, encoded_batch_len,
};
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
        batch: EncodedBatch,
        durability: Durability,
    ) -> Result<Appended> {
        self.append_sealed(batch, Seal::Plain, durability).await
    }

    /// The append path of every kind of batch: checked, reserved, written, published.
    pub(super) async fn append_sealed(
        &self,
        mut batch: EncodedBatch,
        seal: Seal,
        durability: Durability,
    ) -> Result<Appended> {
        self.check_writable()?;
        if matches!(seal, Seal::Plain) && batch.is_entry() {
            return Err(StorageError::EntryRefused {
                reason: "append_encoded takes plain batches; entries go through append_entry \
                    or append_received"
                    .into(),
            });
        }
        self.validate(&batch)?;
        let length = batch.len_bytes();
        let data_limit = self.config.data_limit();
        let (file, pos, appended, ordinal) = loop {
            if self.writer.borrow().fits(length, data_limit) {
                break self.reserve(&mut batch, seal)?;
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
        self.complete(ordinal, written)?;
        self.wait_written(ordinal).await?;
        if durability == Durability::Durable {
            self.wait_batches_durable(ordinal).await?;
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
        if batch.is_entry() != self.config.replicated {
            let reason = if self.config.replicated {
                "a replicated log takes entries only (append_entry, append_received)"
            } else {
                "a single-node log takes no entries of a replicated log"
            };
            return Err(StorageError::EntryRefused {
                reason: reason.to_string(),
            });
        }
        if batch.is_control() {
            return self.validate_length(batch.len_bytes());
        }
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

    /// Takes the next place in the active segment and seals the batch for it: the place, what
    /// the batch holds, and its ordinal. An entry that does not follow the log's last one is
    /// refused here, before it has a place.
    fn reserve(
        &self,
        batch: &mut EncodedBatch,
        seal: Seal,
    ) -> Result<(Rc<I::File>, u64, Appended, u64)> {
        let mut w = self.writer.borrow_mut();
        let w = &mut *w;
        // Arrival times never go back within a shard, so time seeks can binary-search. A
        // control entry holds no record: it carries the last record's time and moves no time
        // forward (each replica makes its own, and a follower's clock ahead of the leader's
        // would refuse the leader's next records).
        let now_ms = if batch.is_control() {
            w.last_timestamp_ms
        } else {
            self.shared.clock.now_ms().max(w.last_timestamp_ms)
        };
        let entry = match seal {
            Seal::Plain => None,
            Seal::Entry(entry) => Some(entry),
            Seal::Received => batch.received_header().and_then(|h| h.entry),
        };
        if let Some(entry) = entry {
            super::replicated::check_follows(w, entry, batch.received_header())?;
        }
        let active = w.active.as_mut().expect("reserve only after fits()");
        let (generation, chain) = (active.segment.generation, active.last_checksum);
        let header = match seal {
            Seal::Plain => batch.seal(w.next_seq, generation, now_ms, chain),
            Seal::Entry(entry) => batch.seal_entry(w.next_seq, generation, now_ms, chain, entry),
            Seal::Received => batch.seal_received(generation, chain),
        };
        let loc = BatchLoc {
            pos: active.write_pos,
            header,
        };
        if !header.is_control() {
            active.index.observe(IndexEntry {
                seq: header.base_seq,
                timestamp_ms: header.min_timestamp_ms,
                pos: loc.pos,
            });
        }
        w.reserved_batches += 1;
        active.last_ordinal = w.reserved_batches;
        active.write_pos = loc.end();
        active.last_checksum = header.checksum;
        w.next_seq = header.end_seq();
        w.last_timestamp_ms = header.max_timestamp_ms;
        w.last_entry = header.entry.or(w.last_entry);
        w.in_flight.push_back(InFlight {
            segment: active.segment.clone(),
            loc,
            ordinal: w.reserved_batches,
            written: false,
        });
        let appended = Appended {
            base_seq: header.base_seq,
            record_count: header.record_count,
            timestamp_ms: header.max_timestamp_ms,
        };
        Ok((active.file.clone(), loc.pos, appended, w.reserved_batches))
    }

    /// Records a finished write and publishes every batch that is now complete in order.
    fn complete(&self, ordinal: u64, written: std::io::Result<()>) -> Result<()> {
        let mut w = self.writer.borrow_mut();
        let entry = w.in_flight.iter_mut().find(|e| e.ordinal == ordinal);
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
            self.written_batches.set(entry.ordinal);
            self.written_seq.set(entry.loc.header.end_seq());
            if !self.config.replicated {
                self.shared.publish_next_seq(entry.loc.header.end_seq());
            }
            published = true;
        }
        if published {
            if self.config.replicated {
                self.advance_visible(&mut w)?;
            }
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

    /// Waits until the batches up to `ordinal` are written, in order (or the log latched):
    /// visible, in a single-node log.
    pub(super) async fn wait_written(&self, ordinal: u64) -> Result<()> {
        loop {
            if self.written_batches.get() >= ordinal {
                return Ok(());
            }
            self.check_writable()?;
            let listener = self.published.listen();
            if self.written_batches.get() >= ordinal {
                return Ok(());
            }
            self.check_writable()?;
            listener.await;
        }
    }
}

/// How a reserved batch gets its header.
#[derive(Debug, Clone, Copy)]
pub(super) enum Seal {
    /// A single-node log's batch.
    Plain,
    /// A new entry of a replicated log (its leader's append).
    Entry(EntryId),
    /// An entry received from the leader, numbered as the leader numbered it.
    Received,
}
