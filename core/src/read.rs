//! Reading records: `get_records` through an iterator, `get` by sequence number. Reads run on
//! the caller's thread against the mapped log; records borrow the mapping.

use crate::catalog::ShardState;
use crate::engine::Engine;
use crate::error::ReadError;
use crate::iterator::ShardIterator;
use crate::limits::{GET_RECORDS_BYTES_MAX, GET_RECORDS_MAX};
use crate::seqnum::{SequenceNumber, ShardId};
use crate::stream::Stream;
use sluice_storage::{ReadBatch, ReadLimits, StorageError};

/// A record, borrowed from the shard's mapped segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// Its sequence number.
    pub sequence_number: SequenceNumber,
    /// Its partition key. Keys are checked to be UTF-8 on put; a key written by other means
    /// that is not UTF-8 reads as U+FFFD.
    pub partition_key: &'a str,
    /// Its payload.
    pub data: &'a [u8],
    /// When the engine accepted it, ms since the epoch.
    pub arrival_timestamp_ms: u64,
    /// `data` is an envelope its writer sealed ([`PutRecord::encrypted`](crate::PutRecord)).
    pub encrypted: bool,
}

/// A record as [`Records::raw_records`] gives it: the partition key's bytes unchecked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawRecord<'a> {
    /// Its sequence number.
    pub sequence_number: SequenceNumber,
    /// Its partition key's bytes (UTF-8 when written through the engine).
    pub partition_key: &'a [u8],
    /// Its payload.
    pub data: &'a [u8],
    /// When the engine accepted it, ms since the epoch.
    pub arrival_timestamp_ms: u64,
    /// `data` is an envelope its writer sealed.
    pub encrypted: bool,
}

/// The answer of one read: records (zero-copy, holding a lease on their segment), how far
/// behind the tip the reader is, and, at the end of a closed shard, its children.
#[derive(Debug)]
pub struct Records {
    batch: ReadBatch,
    shard_index: u32,
    /// Milliseconds between the last record returned and the newest record of the shard;
    /// 0 when the read reached the tip.
    pub millis_behind_latest: u64,
    /// The iterator reached the end of a closed shard: it will return nothing more.
    pub end_of_shard: bool,
    /// At the end of a closed shard: the shards its keys moved to.
    pub child_shard_ids: Vec<ShardId>,
}

impl Records {
    /// The records, in sequence order.
    pub fn records(&self) -> impl Iterator<Item = Record<'_>> {
        let shard_index = self.shard_index;
        self.batch.records().map(move |r| Record {
            sequence_number: SequenceNumber::new(shard_index, r.seq),
            partition_key: std::str::from_utf8(r.key).unwrap_or("\u{fffd}"),
            data: r.data,
            arrival_timestamp_ms: r.timestamp_ms,
            encrypted: r.flags & sluice_storage::RECORD_FLAG_ENCRYPTED != 0,
        })
    }

    /// The records with their partition keys as bytes, without the UTF-8 check
    /// [`Records::records`] makes: for bindings that hand the bytes on as they are.
    pub fn raw_records(&self) -> impl Iterator<Item = RawRecord<'_>> {
        let shard_index = self.shard_index;
        self.batch.records().map(move |r| RawRecord {
            sequence_number: SequenceNumber::new(shard_index, r.seq),
            partition_key: r.key,
            data: r.data,
            arrival_timestamp_ms: r.timestamp_ms,
            encrypted: r.flags & sluice_storage::RECORD_FLAG_ENCRYPTED != 0,
        })
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.batch.len()
    }

    /// True when there were no new records.
    pub fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }

    /// Where the next read continues.
    pub fn next_position(&self) -> SequenceNumber {
        SequenceNumber::new(self.shard_index, self.batch.next_seq())
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.batch.payload_bytes()
    }
}

impl Engine {
    /// Reads up to `limit` records (10,000 by default, and at most 10 MiB) from the
    /// iterator's position and moves the iterator past them.
    pub fn get_records(
        &self,
        iterator: &mut ShardIterator,
        limit: Option<usize>,
    ) -> Result<Records, ReadError> {
        let limit = limit.unwrap_or(GET_RECORDS_MAX);
        if !(1..=GET_RECORDS_MAX).contains(&limit) {
            return Err(ReadError::LimitOutOfRange {
                limit,
                max: GET_RECORDS_MAX,
            });
        }
        let shard = iterator.shard()?;
        let now_ms = self.shared().config.clock.now_ms();
        if !shard.admit_read(now_ms) {
            shard.metrics.read_throttles.increment(1);
            return Err(ReadError::Throttled {
                stream: iterator.stream.name.clone(),
                shard: shard.id,
            });
        }
        let records = self.read_shard(iterator, &shard, limit, GET_RECORDS_BYTES_MAX, now_ms)?;
        iterator.position = records.batch.next_seq();
        let bytes = records.bytes();
        shard.charge_read_bytes(bytes, now_ms);
        shard
            .metrics
            .outgoing_records
            .increment(records.len() as u64);
        shard.metrics.outgoing_bytes.increment(bytes);
        shard
            .metrics
            .iterator_age_ms
            .set(records.millis_behind_latest as f64);
        Ok(records)
    }

    pub(crate) fn read_shard(
        &self,
        iterator: &ShardIterator,
        shard: &ShardState,
        limit: usize,
        bytes_max: u64,
        now_ms: u64,
    ) -> Result<Records, ReadError> {
        // A closed shard is read up to its ending position and never past it: its records
        // are exactly those it took before the reshard closed it.
        let limits_from = |position: u64| ReadLimits {
            records_max: match shard.ending_log_seq {
                Some(end) => {
                    limit.min(usize::try_from(end.saturating_sub(position)).unwrap_or(usize::MAX))
                }
                None => limit,
            },
            bytes_max,
        };
        let batch = match shard
            .reader
            .read(iterator.position, limits_from(iterator.position))
        {
            // Only after a crash that lost records never made durable (readers see records
            // once visible): the position names records the shard no longer has.
            Err(StorageError::SequenceBeyondEnd { seq, next_seq }) => {
                return Err(ReadError::PositionPastEnd {
                    position: seq,
                    shard: shard.id,
                    next_position: next_seq,
                });
            }
            // Records under the iterator expired: continue from the oldest retained one.
            Err(StorageError::SequenceTrimmed { trim_horizon, .. }) => {
                shard.reader.read(trim_horizon, limits_from(trim_horizon))?
            }
            other => other?,
        };
        let next = batch.next_seq();
        let caught_up = next >= shard.reader.next_seq();
        // From the batch headers: reading it must not cost a pass over the records.
        let millis_behind_latest = if caught_up || batch.is_empty() {
            0
        } else {
            now_ms.saturating_sub(batch.last_timestamp_ms())
        };
        // A closed shard ends at its ending position, or earlier if a power loss took
        // visible-only records from its tail (its log can never grow again).
        let end_of_shard = shard
            .ending_log_seq
            .is_some_and(|end| next >= end.min(shard.reader.next_seq()));
        let child_shard_ids = if end_of_shard {
            iterator
                .stream
                .shards()
                .by_index
                .iter()
                .filter(|s| s.parent == Some(shard.index) || s.adjacent_parent == Some(shard.index))
                .map(|s| s.id)
                .collect()
        } else {
            Vec::new()
        };
        Ok(Records {
            batch,
            shard_index: shard.index,
            millis_behind_latest,
            end_of_shard,
            child_shard_ids,
        })
    }
}

impl Stream {
    /// The record with sequence number `sequence_number`: `RecordNotRetained` when the
    /// stream never issued it or it has expired.
    pub fn get(&self, sequence_number: SequenceNumber) -> Result<Records, ReadError> {
        let state = self.live_state()?;
        let not_found = || ReadError::RecordNotRetained {
            stream: state.name.clone(),
            sequence_number,
        };
        let index = sequence_number.shard_index().ok_or_else(not_found)?;
        let log_seq = sequence_number.record_log_seq().ok_or_else(not_found)?;
        let shard = state.shards().get(index).ok_or_else(not_found)?.clone();
        let limits = ReadLimits {
            records_max: 1,
            bytes_max: GET_RECORDS_BYTES_MAX,
        };
        let batch = match shard.reader.read(log_seq, limits) {
            Ok(batch) => batch,
            Err(StorageError::SequenceTrimmed { .. } | StorageError::SequenceBeyondEnd { .. }) => {
                return Err(not_found());
            }
            Err(e) => return Err(e.into()),
        };
        let found = batch.records().next().is_some_and(|r| r.seq == log_seq);
        if !found {
            return Err(not_found());
        }
        Ok(Records {
            batch,
            shard_index: index,
            millis_behind_latest: 0,
            end_of_shard: false,
            child_shard_ids: Vec::new(),
        })
    }
}
