//! Zero-copy reads from any thread, straight from the mapped segments.

use crate::error::{Result, StorageError};
use crate::format::{RecordIter, RecordView};
use crate::segment::{BatchLoc, Segment};
use crate::shared::{SegmentTable, Shared};
use crate::sync::Arc;

/// Bounds on one read.
#[derive(Debug, Clone, Copy)]
pub struct ReadLimits {
    /// Most records returned.
    pub records_max: usize,
    /// Stop adding batches once this many bytes are in the result (at least one batch is
    /// always returned).
    pub bytes_max: u64,
}

impl Default for ReadLimits {
    /// Kinesis' GetRecords bounds: 10,000 records, 10 MiB.
    fn default() -> Self {
        ReadLimits {
            records_max: 10_000,
            bytes_max: 10 * 1024 * 1024,
        }
    }
}

/// A read handle on one shard log. Cheap to clone, `Send + Sync`: use it from any thread.
#[derive(Debug, Clone)]
pub struct LogReader {
    shared: Arc<Shared>,
}

/// Records returned by one read: verified batches of one segment, borrowed from its mapping.
/// Holding a `ReadBatch` holds a lease on the segment, so its bytes stay as they are.
#[derive(Debug)]
pub struct ReadBatch {
    segment: Option<Arc<Segment>>,
    start_pos: u64,
    first_seq: u64,
    count: usize,
}

impl ReadBatch {
    fn empty(next_seq: u64) -> ReadBatch {
        ReadBatch {
            segment: None,
            start_pos: 0,
            first_seq: next_seq,
            count: 0,
        }
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when the reader was caught up.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The sequence number to continue from.
    pub fn next_seq(&self) -> u64 {
        self.first_seq + self.count as u64
    }

    /// Arrival time of the last record (0 when empty), from the batch headers alone: no
    /// record is decoded.
    pub fn last_timestamp_ms(&self) -> u64 {
        let (Some(segment), Some(last_seq)) =
            (self.segment.as_deref(), self.next_seq().checked_sub(1))
        else {
            return 0;
        };
        if self.count == 0 {
            return 0;
        }
        let mut pos = self.start_pos;
        loop {
            let header = segment.header_at(pos).expect("batch verified by the read");
            if header.end_seq() > last_seq {
                return header.max_timestamp_ms;
            }
            pos += u64::from(header.length);
        }
    }

    /// Key plus data bytes of the records, from their headers alone (no record view is built):
    /// for metrics and read limits, which must not cost a pass over the records.
    pub fn payload_bytes(&self) -> u64 {
        let Some(segment) = self.segment.as_deref() else {
            return 0;
        };
        let (first, end) = (self.first_seq, self.next_seq());
        let mut total = 0;
        let mut pos = self.start_pos;
        let mut seq = first;
        while seq < end {
            let header = segment.header_at(pos).expect("batch verified by the read");
            let bytes = segment.bytes(pos, pos + u64::from(header.length));
            let mut at = header.header_len();
            for record_seq in header.base_seq..header.end_seq() {
                let data_len = u64::from(crate::format::read_u32(bytes, at));
                let key_len = u64::from(crate::format::read_u16(bytes, at + 4));
                if (first..end).contains(&record_seq) {
                    total += key_len + data_len;
                }
                at += crate::format::RECORD_HEADER_LEN
                    + crate::format::align8(key_len + data_len) as usize;
            }
            seq = header.end_seq();
            pos += u64::from(header.length);
        }
        total
    }

    /// The records, in sequence order, borrowed from the mapping.
    pub fn records(&self) -> impl Iterator<Item = RecordView<'_>> {
        let segment = self.segment.as_deref();
        let mut pos = self.start_pos;
        let batches = std::iter::from_fn(move || {
            let segment = segment?;
            let header = segment.header_at(pos).expect("batch verified by the read");
            let bytes = segment.bytes(pos, pos + u64::from(header.length));
            pos += u64::from(header.length);
            Some(RecordIter::new(bytes, &header).map(|r| r.expect("batch verified by the read")))
        });
        let first_seq = self.first_seq;
        batches
            .flatten()
            .skip_while(move |r| r.seq < first_seq)
            .take(self.count)
    }
}

impl LogReader {
    pub(crate) fn new(shared: Arc<Shared>) -> LogReader {
        LogReader { shared }
    }

    /// A reader of a log whose every record is gone (its files removed after they all
    /// expired): empty, with its trim horizon and its end at `end_seq`. Reads below it answer
    /// `SequenceTrimmed`, as they did once the records expired.
    pub fn exhausted(end_seq: u64) -> LogReader {
        let clock: std::sync::Arc<dyn crate::clock::Clock> =
            std::sync::Arc::new(crate::clock::SystemClock);
        let shared = Shared::new(
            std::path::PathBuf::new(),
            Vec::new(),
            end_seq,
            end_seq,
            crate::config::RETENTION_MS_DEFAULT,
            clock,
        );
        LogReader::new(Arc::new(shared))
    }

    /// The sequence number the next appended record will get (the visibility watermark).
    pub fn next_seq(&self) -> u64 {
        self.shared.next_seq()
    }

    /// A listener woken when the watermark next moves (or the log latches). To wait for new
    /// records without missing one: take the listener, read again, and only then wait on it.
    pub fn listen(&self) -> event_listener::EventListener {
        self.shared.listen()
    }

    /// Wakes every reader waiting on [`LogReader::listen`] without new records: something
    /// else they check changed (the shard was closed by a reshard, its stream deleted).
    pub fn wake_waiters(&self) {
        self.shared.wake_waiters();
    }

    /// The reason the log refuses writes, if it latched after a failed write or sync.
    pub fn latch_cause(&self) -> Option<String> {
        self.shared.latch_cause()
    }

    /// The oldest readable sequence number: older records are expired by retention.
    pub fn trim_horizon(&self) -> u64 {
        let cutoff = self.shared.expiry_cutoff_ms();
        if cutoff <= self.shared.trim_valid_until_ms() {
            return self.shared.trim_seq();
        }
        // The cut-off moved past the record at the horizon: find the first unexpired record.
        let next_seq = self.shared.next_seq();
        match seek_timestamp_in(&self.shared.table(), cutoff, next_seq) {
            Ok(Some((seq, timestamp_ms))) => {
                let horizon = self.shared.raise_trim(seq);
                self.shared.raise_trim_valid_until(timestamp_ms);
                horizon
            }
            Ok(None) => self.shared.raise_trim(next_seq),
            // Damage near the horizon is reported by the read that touches it.
            Err(_) => self.shared.trim_seq(),
        }
    }

    /// Reads records starting at `from_seq`.
    ///
    /// Returns an empty batch when `from_seq` is the watermark (or lies in a gap recovery left
    /// after damage; its `next_seq` then skips the gap), `SequenceTrimmed` below the trim
    /// horizon, `SequenceBeyondEnd` past the watermark, `Corrupt` when a batch on the way fails
    /// verification. Continue from [`ReadBatch::next_seq`].
    pub fn read(&self, from_seq: u64, limits: ReadLimits) -> Result<ReadBatch> {
        let next_seq = self.shared.next_seq();
        if from_seq > next_seq {
            return Err(StorageError::SequenceBeyondEnd {
                seq: from_seq,
                next_seq,
            });
        }
        let trim_horizon = self.trim_horizon();
        if from_seq < trim_horizon {
            return Err(StorageError::SequenceTrimmed {
                seq: from_seq,
                trim_horizon,
            });
        }
        if from_seq == next_seq || limits.records_max == 0 {
            return Ok(ReadBatch::empty(from_seq));
        }
        // The owner publishes a batch in its segment before it moves the watermark: read no
        // further than the watermark loaded above, or the position this read returns could be
        // past the end the next read loads.
        let limits = ReadLimits {
            records_max: limits
                .records_max
                .min(usize::try_from(next_seq - from_seq).unwrap_or(usize::MAX)),
            ..limits
        };
        let table = self.shared.table();
        match segment_for(&table, from_seq) {
            Some(segment) => read_from(segment, from_seq, limits),
            // Retired between the horizon check and the table snapshot.
            None if table.first().is_some_and(|s| from_seq < s.base_seq) => {
                let trim_horizon = self.trim_horizon();
                Err(StorageError::SequenceTrimmed {
                    seq: from_seq,
                    trim_horizon,
                })
            }
            None => {
                // A gap recovery left where records were lost to damage: continue after it.
                let next = table.iter().map(|s| s.base_seq).find(|&b| b > from_seq);
                Ok(ReadBatch::empty(next.unwrap_or(next_seq)))
            }
        }
    }

    /// The first record at or after `timestamp_ms` (clamped to the trim horizon), or the
    /// watermark when every record is older.
    pub fn seek_timestamp(&self, timestamp_ms: u64) -> Result<u64> {
        let trim_horizon = self.trim_horizon();
        let next_seq = self.shared.next_seq();
        let found = seek_timestamp_in(&self.shared.table(), timestamp_ms, next_seq)?;
        // Capped at the watermark for the same reason as `read`.
        Ok(found
            .map_or(next_seq, |(seq, _)| seq.min(next_seq))
            .max(trim_horizon))
    }

    /// Arrival time of the newest record (0 for an empty log).
    pub fn latest_timestamp_ms(&self) -> u64 {
        if let Some(visible) = self.shared.visible_timestamp_ms() {
            return visible;
        }
        self.shared
            .table()
            .last()
            .map_or(0, |s| s.max_timestamp_ms())
    }
}

/// The live segment holding `seq`.
fn segment_for(table: &SegmentTable, seq: u64) -> Option<&Arc<Segment>> {
    let after = table.partition_point(|s| s.base_seq <= seq);
    let segment = &table[after.checked_sub(1)?];
    (seq < segment.end_seq()).then_some(segment)
}

/// The first record at or after `timestamp_ms` and below `end_seq`: its sequence number and
/// arrival time. A segment whose times reach `timestamp_ms` may hold no such record (its last
/// batch a control entry): the search goes on in the next one.
fn seek_timestamp_in(
    table: &SegmentTable,
    timestamp_ms: u64,
    end_seq: u64,
) -> Result<Option<(u64, u64)>> {
    let first = table.partition_point(|s| s.max_timestamp_ms() < timestamp_ms);
    for segment in &table[first..] {
        if segment.base_seq >= end_seq {
            break;
        }
        if let Some(found) = segment.seek_timestamp(timestamp_ms, end_seq)? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

fn read_from(segment: &Arc<Segment>, from_seq: u64, limits: ReadLimits) -> Result<ReadBatch> {
    let limit = segment.visible_end();
    let first: BatchLoc = segment.locate_seq(from_seq)?;
    let mut loc = segment.verified_batch_at(first.pos, limit, first.header.base_seq)?;
    let mut count = 0u64;
    let mut bytes = 0u64;
    loop {
        count += loc.header.end_seq() - from_seq.max(loc.header.base_seq);
        bytes += u64::from(loc.header.length);
        if count >= limits.records_max as u64 || loc.end() >= limit {
            break;
        }
        let next = segment.verified_batch_at(loc.end(), limit, loc.header.end_seq())?;
        if bytes + u64::from(next.header.length) > limits.bytes_max {
            break;
        }
        loc = next;
    }
    Ok(ReadBatch {
        segment: Some(segment.clone()),
        start_pos: first.pos,
        first_seq: from_seq,
        count: usize::try_from(count)
            .unwrap_or(usize::MAX)
            .min(limits.records_max),
    })
}
