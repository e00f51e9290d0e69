//! The reading half of a delivery task: reads the source along its lineage into the
//! buffer until the buffer is due.

use super::buffer::{Buffer, BufferBudget, Flush};
use super::{Interrupted, failed, now_ms, sleep};
use crate::envelopes::Envelopes;
use crate::spec::BufferingHints;
use crate::stats::DeliveryStats;
use sluice_core::{Consumer, ReadError, ShardRecords, StreamReader};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// Records read from the source per call.
const READ_RECORDS_MAX: usize = 1000;
/// Empty reads in a row (a round over the shards, roughly) before the task naps.
const EMPTY_READS_BEFORE_NAP: u32 = 8;
/// An idle task's naps double from the first to the longest while nothing comes.
const NAP_FIRST: Duration = Duration::from_millis(20);
const NAP_MAX: Duration = Duration::from_millis(500);
/// A throttled read (the source's read limits) waits this long and reads again.
const THROTTLED_NAP: Duration = Duration::from_millis(250);

pub(super) struct Reading {
    /// The lineage reader, after the buffer's last record (after the committed positions
    /// when made); dropped with the buffer after a failure.
    reader: Option<StreamReader>,
    buffer: Buffer,
    budget: Arc<BufferBudget>,
    hints: BufferingHints,
    /// Appended to every record (`AppendDelimiterToRecord`); empty for none.
    delimiter: Vec<u8>,
    /// What opens encrypted records, and the name they were sealed for.
    envelopes: Option<(Arc<dyn Envelopes>, String)>,
    stats: Arc<DeliveryStats>,
    stop: watch::Receiver<bool>,
}

impl Reading {
    pub(super) fn new(
        budget: Arc<BufferBudget>,
        hints: BufferingHints,
        delimiter: Vec<u8>,
        envelopes: Option<(Arc<dyn Envelopes>, String)>,
        stats: Arc<DeliveryStats>,
        stop: watch::Receiver<bool>,
    ) -> Reading {
        Reading {
            reader: None,
            buffer: Buffer::new(budget.clone()),
            budget,
            hints,
            delimiter,
            envelopes,
            stats,
            stop,
        }
    }

    /// Forgets the reader and the buffer: the next fill reads from the committed positions.
    pub(super) fn reset(&mut self) {
        self.reader = None;
        self.buffer = Buffer::new(self.budget.clone());
    }

    /// The records of the next object (as many as fit in the buffer size, at least one).
    pub(super) fn take(&mut self) -> Flush {
        self.buffer.take(self.hints.size_bytes)
    }

    /// Adds a read's records to the buffer, encrypted ones opened first: all of them, or
    /// (one cannot be opened) none.
    fn add(&mut self, read: &ShardRecords) -> Result<u64, Interrupted> {
        let shard = read.shard_id.to_string();
        if !read.records.records().any(|r| r.encrypted) {
            let plain = read
                .records
                .records()
                .map(|r| (r.data, r.sequence_number, r.arrival_timestamp_ms));
            return Ok(self.buffer.add(&shard, plain, &self.delimiter));
        }
        let Some((envelopes, scope)) = &self.envelopes else {
            return Err(failed(
                "read the source",
                "its records are encrypted and this Firehose has no keys to open them (FirehoseConfig::envelopes)",
            ));
        };
        let mut opened = Vec::new();
        for record in read.records.records() {
            let data = if record.encrypted {
                envelopes
                    .open(scope, record.data)
                    .map_err(|e| failed("open an encrypted record", e))?
            } else {
                record.data.to_vec()
            };
            opened.push((data, record.sequence_number, record.arrival_timestamp_ms));
        }
        let plain = opened
            .iter()
            .map(|(data, seq, arrival)| (data.as_slice(), *seq, *arrival));
        Ok(self.buffer.add(&shard, plain, &self.delimiter))
    }

    /// Reads until the buffer is due: full, old enough, or holding bytes while every
    /// buffer together is over the budget. Safe to drop at any await: each read is added
    /// to the buffer whole, before the next await.
    pub(super) async fn fill(&mut self, consumer: &Consumer) -> Result<(), Interrupted> {
        if self.reader.is_none() {
            let reader = consumer
                .reader()
                .map_err(|e| failed("read the source", e))?;
            self.reader = Some(reader);
        }
        let interval = Duration::from_millis(self.hints.interval_ms);
        let (mut empty_reads, mut nap) = (0, NAP_FIRST);
        loop {
            let due_at = self.buffer.first_at.map(|first| first + interval);
            let held = self.buffer.data.len() as u64;
            if held >= self.hints.size_bytes
                || due_at.is_some_and(|due| Instant::now() >= due)
                || (held > 0 && self.budget.exceeded())
            {
                return Ok(());
            }
            if *self.stop.borrow() || self.stop.has_changed().is_err() {
                return Err(Interrupted::Stop);
            }
            let reader = self.reader.as_mut().expect("made above");
            let read = match reader.read(Some(READ_RECORDS_MAX)) {
                Ok(read) => read,
                Err(ReadError::Throttled { .. }) => {
                    sleep(&mut self.stop, THROTTLED_NAP).await?;
                    continue;
                }
                Err(e) => return Err(failed("read the source", e)),
            };
            let added = match read {
                Some(read) => self.add(&read)?,
                None => 0,
            };
            self.stats.read(added);
            let oldest = self.buffer.records.front().map(|r| r.arrival_ms);
            self.stats
                .freshness(oldest.map_or(0, |arrival| now_ms().saturating_sub(arrival)));
            // Reads are synchronous: let the runtime's other tasks (and the write of the
            // previous object) in between.
            tokio::task::yield_now().await;
            if added > 0 {
                (empty_reads, nap) = (0, NAP_FIRST);
                continue;
            }
            empty_reads += 1;
            if empty_reads >= EMPTY_READS_BEFORE_NAP {
                empty_reads = 0;
                let until_due = due_at.map(|due| due.saturating_duration_since(Instant::now()));
                sleep(&mut self.stop, until_due.map_or(nap, |d| d.min(nap))).await?;
                nap = (nap * 2).min(NAP_MAX);
            }
        }
    }
}
