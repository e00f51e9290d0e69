//! Reading a stream along its shard lineage: parents to their end before their children, so
//! each key's records come out in put order across splits and merges.

use crate::error::ReadError;
use crate::iterator::{IteratorStart, ShardIterator};
use crate::read::Records;
use crate::seqnum::ShardId;
use crate::stream::Stream;
use std::collections::{BTreeMap, BTreeSet};

/// Reads every shard of a stream from the trim horizon, starting a shard only once every
/// parent it has (both, for a merge) was read to its end.
#[derive(Debug)]
pub struct StreamReader {
    stream: Stream,
    /// Shards being read, by index.
    active: BTreeMap<u32, ShardIterator>,
    /// Shards read to their end.
    finished: BTreeSet<u32>,
    /// A shard ended and its children may not have been started yet.
    starts_pending: bool,
    /// Round-robin position among the active shards.
    cursor: u32,
}

/// A shard's index and its parents' indexes.
type Lineage = (u32, Option<u32>, Option<u32>);

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
        let mut reader = StreamReader {
            stream: self.clone(),
            active: BTreeMap::new(),
            finished: BTreeSet::new(),
            starts_pending: true,
            cursor: 0,
        };
        reader.start_ready_shards()?;
        Ok(reader)
    }
}

impl StreamReader {
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

    /// Starts every shard not started yet whose parents are finished or gone.
    fn start_ready_shards(&mut self) -> Result<(), ReadError> {
        let lineage = self.lineage()?;
        let known: BTreeSet<u32> = lineage.iter().map(|s| s.0).collect();
        for &(index, parent, adjacent) in &lineage {
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
            if done(parent) && done(adjacent) {
                let id = ShardId::new(index);
                let iterator = self
                    .stream
                    .shard_iterator(&id, IteratorStart::TrimHorizon)?;
                self.active.insert(index, iterator);
            }
        }
        self.starts_pending = false;
        Ok(())
    }

    /// (index, parent, adjacent parent) of every shard of the stream still holding data.
    fn lineage(&self) -> Result<Vec<Lineage>, ReadError> {
        let state = self.stream.live_state()?;
        let retention_ms = state.retention_ms();
        let now_ms = self.stream.engine.shared().config.clock.now_ms();
        Ok(state
            .shards()
            .by_index
            .iter()
            .filter(|s| {
                s.closed_ms
                    .is_none_or(|closed| closed.saturating_add(retention_ms) > now_ms)
            })
            .map(|s| (s.index, s.parent, s.adjacent_parent))
            .collect())
    }
}
