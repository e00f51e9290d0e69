//! Reading a stream along its shard lineage: parents to their end before their children, so
//! each key's records come out in put order across splits and merges.

use crate::catalog::ShardState;
use crate::error::ReadError;
use crate::iterator::ShardIterator;
use crate::read::Records;
use crate::seqnum::{SequenceNumber, ShardId};
use crate::stream::Stream;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Reads every shard of a stream from the trim horizon (or, for a consumer's reader, after
/// its committed positions), starting a shard only once every parent it has (both, for a
/// merge) was read to its end.
#[derive(Debug)]
pub struct StreamReader {
    stream: Stream,
    /// Per shard index, the position after which this reader starts it (a consumer's).
    committed: BTreeMap<u32, SequenceNumber>,
    /// Shards being read, by index.
    active: BTreeMap<u32, ShardIterator>,
    /// Shards read to their end.
    finished: BTreeSet<u32>,
    /// A shard ended and its children may not have been started yet.
    starts_pending: bool,
    /// Round-robin position among the active shards.
    cursor: u32,
}

/// One read of [`StreamReader::read`]: records of one shard.
#[derive(Debug)]
pub struct ShardRecords {
    /// The shard they come from.
    pub shard_id: ShardId,
    /// The records (zero-copy), with end-of-shard information.
    pub records: Records,
}

impl Stream {
    /// A reader of this stream along its lineage, from the trim horizon.
    pub fn reader(&self) -> Result<StreamReader, ReadError> {
        StreamReader::after(self, BTreeMap::new())
    }

    /// A reader of this stream along its lineage that starts each shard just after its
    /// position in `after` (the last record processed, or the shard's start), and shards
    /// `after` does not name at the trim horizon: an application resuming from positions it
    /// keeps itself, beside state the engine cannot hold in one commit with them.
    pub fn reader_after(
        &self,
        after: &BTreeMap<ShardId, SequenceNumber>,
    ) -> Result<StreamReader, ReadError> {
        let committed = after
            .iter()
            .map(|(shard, position)| (shard.index(), *position))
            .collect();
        StreamReader::after(self, committed)
    }

    /// Per retained shard, the number of its newest record (its start when it has none):
    /// where a [`Stream::reader_after`] made later reads only what was written after now.
    pub fn ends(&self) -> Result<BTreeMap<ShardId, SequenceNumber>, ReadError> {
        let state = self.live_state()?;
        Ok(state
            .shards()
            .by_index
            .iter()
            .filter(|s| !s.expired)
            .map(|s| {
                (
                    ShardId::new(s.index),
                    SequenceNumber::last_before(s.index, s.reader.next_seq()),
                )
            })
            .collect())
    }
}

impl StreamReader {
    /// The shards being read now (started, not read to their end), in order. A shard whose
    /// parents are not finished is not among them yet.
    pub fn active_shards(&self) -> Vec<ShardId> {
        self.active
            .keys()
            .map(|&index| ShardId::new(index))
            .collect()
    }

    /// A reader that starts each shard after its position in `committed`.
    pub(crate) fn after(
        stream: &Stream,
        committed: BTreeMap<u32, SequenceNumber>,
    ) -> Result<StreamReader, ReadError> {
        let mut reader = StreamReader {
            stream: stream.clone(),
            committed,
            active: BTreeMap::new(),
            finished: BTreeSet::new(),
            starts_pending: true,
            cursor: 0,
        };
        reader.start_ready_shards()?;
        Ok(reader)
    }

    /// Reads the next batch from the next shard in turn (at most `limit` records). Returns
    /// `None` once every shard is finished; a returned batch may be empty when the shard has
    /// nothing new. A shard read to its end starts its children.
    pub fn read(&mut self, limit: Option<usize>) -> Result<Option<ShardRecords>, ReadError> {
        if self.starts_pending {
            self.start_ready_shards()?;
        }
        let Some((&index, _)) = self
            .active
            .range(self.cursor..)
            .next()
            .or_else(|| self.active.iter().next())
        else {
            return Ok(None);
        };
        self.cursor = index + 1;
        let iterator = self.active.get_mut(&index).expect("picked from the map");
        let records = self.stream.engine.get_records(iterator, limit)?;
        if records.end_of_shard {
            self.active.remove(&index);
            self.finished.insert(index);
            self.starts_pending = true;
            // If this fails, the next call retries it; these records are returned either way.
            let _ = self.start_ready_shards();
        }
        Ok(Some(ShardRecords {
            shard_id: ShardId::new(index),
            records,
        }))
    }

    /// True when every shard was read to its end and none is left to start.
    pub fn is_finished(&self) -> bool {
        self.active.is_empty() && !self.starts_pending
    }

    /// Starts every shard not started yet whose parents are finished or gone. A closed shard
    /// whose every record is committed is finished at once, which may make its children
    /// ready: repeat until nothing changes.
    fn start_ready_shards(&mut self) -> Result<(), ReadError> {
        let lineage = self.lineage()?;
        let known: BTreeSet<u32> = lineage.iter().map(|s| s.index).collect();
        loop {
            let mut finished_any = false;
            for shard in &lineage {
                let index = shard.index;
                if self.active.contains_key(&index) || self.finished.contains(&index) {
                    continue;
                }
                // A parent that expired (no longer listed) does not hold its children back,
                // unless this reader is still reading it.
                let done = |p: Option<u32>| {
                    p.is_none_or(|p| {
                        self.finished.contains(&p)
                            || (!known.contains(&p) && !self.active.contains_key(&p))
                    })
                };
                if !(done(shard.parent) && done(shard.adjacent_parent)) {
                    continue;
                }
                match self.start_position(shard) {
                    Some(position) => {
                        let iterator = ShardIterator {
                            stream: self.stream.live_state()?.clone(),
                            shard_index: index,
                            position,
                        };
                        self.active.insert(index, iterator);
                    }
                    None => {
                        self.finished.insert(index);
                        finished_any = true;
                    }
                }
            }
            if !finished_any {
                break;
            }
        }
        self.starts_pending = false;
        Ok(())
    }

    /// Where this reader starts `shard`: after its committed position (the trim horizon if
    /// that expired), else at the trim horizon; `None` for a closed shard committed to its
    /// end.
    fn start_position(&self, shard: &ShardState) -> Option<u64> {
        let reader = &shard.reader;
        let Some(committed) = self.committed.get(&shard.index) else {
            return Some(reader.trim_horizon());
        };
        let after = committed.position_after();
        // As `read_shard`: a closed shard ends at its ending, or where a power cut left it.
        let end = shard.ending_log_seq.map(|end| end.min(reader.next_seq()));
        if end.is_some_and(|end| after >= end) {
            return None;
        }
        Some(after.max(reader.trim_horizon()).min(reader.next_seq()))
    }

    /// Every shard of the stream still holding data.
    fn lineage(&self) -> Result<Vec<Arc<ShardState>>, ReadError> {
        let state = self.stream.live_state()?;
        let retention_ms = state.retention_ms();
        let now_ms = self.stream.engine.shared().config.clock.now_ms();
        Ok(state
            .shards()
            .by_index
            .iter()
            .filter(|s| {
                !s.expired
                    && s.closed_ms
                        .is_none_or(|closed| closed.saturating_add(retention_ms) > now_ms)
            })
            .cloned()
            .collect())
    }
}
