//! Records read and not yet delivered, in read order, counted against a budget shared by
//! every delivery stream of a `Firehose`.

use sluice_core::SequenceNumber;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::time::Instant;

/// Bytes all buffers of a `Firehose` hold together, and the most they should: past it a
/// delivery stream with anything buffered flushes at once instead of waiting for its hints.
#[derive(Debug)]
pub(crate) struct BufferBudget {
    max: u64,
    held: AtomicU64,
}

impl BufferBudget {
    pub(crate) fn new(max: u64) -> BufferBudget {
        BufferBudget {
            max,
            held: AtomicU64::new(0),
        }
    }

    pub(crate) fn exceeded(&self) -> bool {
        self.held.load(Ordering::Relaxed) > self.max
    }
}

/// One delivery stream's buffer.
pub(crate) struct Buffer {
    pub(super) data: Vec<u8>,
    pub(super) records: VecDeque<Buffered>,
    /// When the oldest record came into the buffer.
    pub(super) first_at: Option<Instant>,
    budget: Arc<BufferBudget>,
}

/// One buffered record: where it came from, and where its bytes end in `data`.
pub(super) struct Buffered {
    shard: String,
    seq: SequenceNumber,
    end: usize,
    /// When the engine accepted it (ms since the epoch).
    pub(super) arrival_ms: u64,
}

/// The records of one object.
pub(super) struct Flush {
    pub(super) data: Vec<u8>,
    /// When the oldest record arrived (ms since the epoch): a custom prefix's instant.
    pub(super) oldest_ms: u64,
    /// Per record, where it ends in `data`, and when it arrived.
    pub(super) ends: Vec<usize>,
    pub(super) arrivals: Vec<u64>,
    /// Per shard id, the last record in the object.
    pub(super) positions: BTreeMap<String, SequenceNumber>,
}

/// Records as an object or a request carries them: their data back to back, where each
/// ends, and when each arrived.
#[derive(Default)]
pub(super) struct Records {
    pub(super) data: Vec<u8>,
    pub(super) ends: Vec<usize>,
    pub(super) arrivals: Vec<u64>,
}

impl Records {
    /// Each record's data and arrival.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&[u8], u64)> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .map(|(start, end)| &self.data[start..end])
            .zip(self.arrivals.iter().copied())
    }

    pub(super) fn len(&self) -> u64 {
        self.ends.len() as u64
    }

    /// Appends a record.
    pub(super) fn push(&mut self, data: &[u8], arrival: u64) {
        self.data.extend_from_slice(data);
        self.ends.push(self.data.len());
        self.arrivals.push(arrival);
    }

    /// The same records, each followed by `delimiter`.
    pub(super) fn delimited(self, delimiter: &[u8]) -> Records {
        let mut out = Records {
            data: Vec::with_capacity(self.data.len() + delimiter.len() * self.ends.len()),
            ..Records::default()
        };
        for (data, arrival) in self.iter() {
            out.data.extend_from_slice(data);
            out.push(delimiter, arrival);
        }
        out
    }
}

impl Buffer {
    pub(crate) fn new(budget: Arc<BufferBudget>) -> Buffer {
        Buffer {
            data: Vec::new(),
            records: VecDeque::new(),
            first_at: None,
            budget,
        }
    }

    /// Appends records of `shard` (data, sequence number, arrival), each followed by
    /// `delimiter`; returns how many.
    pub(super) fn add<'a>(
        &mut self,
        shard: &str,
        records: impl Iterator<Item = (&'a [u8], SequenceNumber, u64)>,
        delimiter: &[u8],
    ) -> u64 {
        let before = self.data.len();
        let mut added = 0;
        for (data, seq, arrival_ms) in records {
            self.data.extend_from_slice(data);
            self.data.extend_from_slice(delimiter);
            self.records.push_back(Buffered {
                shard: shard.to_owned(),
                seq,
                end: self.data.len(),
                arrival_ms,
            });
            added += 1;
        }
        self.budget
            .held
            .fetch_add((self.data.len() - before) as u64, Ordering::Relaxed);
        if added > 0 && self.first_at.is_none() {
            self.first_at = Some(Instant::now());
        }
        added
    }

    /// Takes the records of the next object: as many as fit in `size_bytes` (at least one).
    /// Those left start the next buffer, which is as old as now.
    pub(super) fn take(&mut self, size_bytes: u64) -> Flush {
        let fit = self
            .records
            .iter()
            .take_while(|r| r.end as u64 <= size_bytes)
            .count();
        let count = fit.max(1).min(self.records.len());
        let mut positions = BTreeMap::new();
        let (mut ends, mut arrivals) = (Vec::with_capacity(count), Vec::with_capacity(count));
        let mut cut = 0;
        for record in self.records.drain(..count) {
            cut = record.end;
            ends.push(record.end);
            arrivals.push(record.arrival_ms);
            positions.insert(record.shard, record.seq);
        }
        // Moves the object's bytes out and copies only the rest (usually less than one
        // read) into a new buffer, as large as this one grew (no regrowing as it fills).
        let mut rest = Vec::with_capacity(self.data.len());
        rest.extend_from_slice(&self.data[cut..]);
        self.data.truncate(cut);
        let data = std::mem::replace(&mut self.data, rest);
        self.budget
            .held
            .fetch_sub(data.len() as u64, Ordering::Relaxed);
        for record in &mut self.records {
            record.end -= cut;
        }
        self.first_at = (!self.records.is_empty()).then(Instant::now);
        // Reads of several shards interleave: the oldest is not always the first.
        let oldest_ms = arrivals.iter().copied().min().unwrap_or(0);
        Flush {
            data,
            oldest_ms,
            ends,
            arrivals,
            positions,
        }
    }
}

impl Drop for Buffer {
    /// A buffer dropped (after a failure, or at stop) gives its bytes back to the budget.
    fn drop(&mut self) {
        self.budget
            .held
            .fetch_sub(self.data.len() as u64, Ordering::Relaxed);
    }
}
