//! Reading a stream along its shard lineage: parents to their end before their children, so
//! each key's records come out in put order across splits and merges.

use crate::engine::Engine;
use crate::error::ReadError;
use crate::iterator::{IteratorStart, ShardIterator};
use crate::read::Records;
use crate::seqnum::ShardId;
use std::collections::{BTreeMap, BTreeSet};

/// Reads every shard of a stream from the trim horizon, starting a shard only once every
/// parent it has (both, for a merge) was read to its end.
#[derive(Debug)]
pub struct StreamReader {
    engine: Engine,
    stream: String,
    /// Shards being read, by index.
    active: BTreeMap<u32, ShardIterator>,
    /// Shards read to their end.
    finished: BTreeSet<u32>,
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

impl Engine {
    /// A reader of `stream` along its lineage, from the trim horizon.
    pub fn stream_reader(&self, stream: &str) -> Result<StreamReader, ReadError> {
        let mut reader = StreamReader {
            engine: self.clone(),
            stream: stream.to_owned(),
            active: BTreeMap::new(),
            finished: BTreeSet::new(),
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
        let records = self.engine.get_records(iterator, limit)?;
        if records.end_of_shard {
            self.active.remove(&index);
            self.finished.insert(index);
            self.start_ready_shards()?;
        }
        Ok(Some(ShardRecords {
            shard_id: ShardId::new(index),
            records,
        }))
    }

    /// True when no shard is being read and none can start (every shard finished).
    pub fn is_finished(&self) -> bool {
        self.active.is_empty()
    }

    /// Starts every shard not started yet whose parents are finished or gone.
    fn start_ready_shards(&mut self) -> Result<(), ReadError> {
        let description = self
            .engine
            .describe_stream_all_shards(&self.stream)
            .map_err(|_| ReadError::StreamNotFound(self.stream.clone()))?;
        let known: BTreeSet<u32> = description.iter().map(|s| s.0).collect();
        for &(index, parent, adjacent) in &description {
            if self.active.contains_key(&index) || self.finished.contains(&index) {
                continue;
            }
            // A parent that expired (no longer listed) does not hold its children back.
            let done = |p: Option<u32>| {
                p.is_none_or(|p| self.finished.contains(&p) || !known.contains(&p))
            };
            if done(parent) && done(adjacent) {
                let id = ShardId::new(index);
                let iterator =
                    self.engine
                        .shard_iterator(&self.stream, &id, IteratorStart::TrimHorizon)?;
                self.active.insert(index, iterator);
            }
        }
        Ok(())
    }
}

impl Engine {
    /// (index, parent, adjacent parent) of every shard of `stream` still holding data.
    fn describe_stream_all_shards(&self, stream: &str) -> Result<Vec<Lineage>, crate::AdminError> {
        let state = self.stream(stream)?;
        let retention_ms = u64::from(state.settings().retention_hours) * 3_600_000;
        let now_ms = self.shared().config.clock.now_ms();
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
