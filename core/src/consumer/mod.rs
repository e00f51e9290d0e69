//! Durable named consumer checkpoints: per consumer and shard, the sequence number up to which
//! every record is processed, and a lineage reader that resumes after those positions
//! (docs/design/checkpoints.md).

pub(crate) mod file;
pub(crate) mod format;

use crate::call::block;
use crate::catalog::StreamState;
use crate::control::consumers;
use crate::error::{ConsumerError, ReadError};
use crate::lineage::StreamReader;
use crate::names::stream_name_is_valid;
use crate::seqnum::{SequenceNumber, ShardId, parse_shard_id};
use crate::stream::Stream;
use format::PositionEntry;
use sluice_storage::Durability;
use std::collections::BTreeMap;
use std::future::IntoFuture;
use std::pin::Pin;

/// A named consumer of a stream: its committed positions, one per shard, kept durably in the
/// stream's consumers log and deleted with the stream. Cheap to clone; it keeps the engine
/// open while it exists.
#[derive(Debug, Clone)]
pub struct Consumer {
    stream: Stream,
    name: String,
}

impl Stream {
    /// The consumer called `name` (`[a-zA-Z0-9_.-]{1,128}`, as stream names): its positions
    /// if it committed any, none if it is new. Nothing is written until its first commit.
    pub fn consumer(&self, name: &str) -> Result<Consumer, ConsumerError> {
        if !stream_name_is_valid(name) {
            return Err(ConsumerError::InvalidConsumerName {
                name: name.to_owned(),
            });
        }
        self.consumer_state()?;
        Ok(Consumer {
            stream: self.clone(),
            name: name.to_owned(),
        })
    }

    /// The names of the consumers that hold positions in this stream, in order.
    pub fn consumers(&self) -> Result<Vec<String>, ConsumerError> {
        Ok(self.consumer_state()?.consumers().keys().cloned().collect())
    }

    fn consumer_state(&self) -> Result<&StreamState, ConsumerError> {
        if self.state.is_deleted() {
            return Err(ConsumerError::stream_not_found(&self.state.name));
        }
        Ok(&self.state)
    }
}

impl Consumer {
    /// The consumer's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The stream it consumes.
    pub fn stream(&self) -> &Stream {
        &self.stream
    }

    /// Commits that every record of shard `shard_id` up to and including `sequence_number`
    /// is processed. The number is one of the shard's records or its start
    /// ([`SequenceNumber::shard_start`]: nothing processed); a commit sets the position, also
    /// below the current one. Durability is the engine's default unless the call sets it:
    /// `Durable` returns once the position is on disk, `Visible` once it is in the page cache
    /// (it survives a crash of the process, not a power cut).
    pub fn commit<'a>(&'a self, shard_id: &'a str, sequence_number: SequenceNumber) -> Commit<'a> {
        Commit {
            consumer: self,
            shard_id,
            sequence_number,
            durability: None,
        }
    }

    /// The committed position in shard `shard_id`; `None` if the consumer never committed
    /// one there.
    pub fn position(&self, shard_id: &str) -> Result<Option<SequenceNumber>, ConsumerError> {
        let state = self.stream.consumer_state()?;
        let index = shard_index(state, shard_id)?;
        Ok(state
            .consumers()
            .get(&self.name)
            .and_then(|per_shard| per_shard.get(&index).copied()))
    }

    /// Every committed position, by shard.
    pub fn positions(&self) -> Result<BTreeMap<ShardId, SequenceNumber>, ConsumerError> {
        let state = self.stream.consumer_state()?;
        let consumers = state.consumers();
        let Some(per_shard) = consumers.get(&self.name) else {
            return Ok(BTreeMap::new());
        };
        Ok(per_shard
            .iter()
            .map(|(&index, &seq)| (ShardId::new(index), seq))
            .collect())
    }

    /// A reader of the stream along its lineage that starts each shard just after this
    /// consumer's committed position (from the trim horizon where it has none), finishes
    /// parents before children, and counts a closed shard whose every record is committed as
    /// finished. Positions committed later do not move it.
    pub fn reader(&self) -> Result<StreamReader, ReadError> {
        let state = self.stream.live_state()?;
        let committed = state
            .consumers()
            .get(&self.name)
            .cloned()
            .unwrap_or_default();
        StreamReader::after(&self.stream, committed)
    }
}

/// A pending [`Consumer::commit`]: set its durability, then `.await` it or [`Commit::wait`].
#[must_use = "a commit does nothing until it is awaited or waited for"]
#[derive(Debug)]
pub struct Commit<'a> {
    consumer: &'a Consumer,
    shard_id: &'a str,
    sequence_number: SequenceNumber,
    durability: Option<Durability>,
}

impl<'a> Commit<'a> {
    /// Acknowledge the commit at `durability` instead of the engine's default.
    pub fn durability(mut self, durability: Durability) -> Commit<'a> {
        self.durability = Some(durability);
        self
    }

    /// Commits, blocking this thread until it is acknowledged. Do not call it from inside an
    /// async task.
    pub fn wait(self) -> Result<(), ConsumerError> {
        block(self.run())
    }

    async fn run(self) -> Result<(), ConsumerError> {
        let stream = &self.consumer.stream;
        let state = stream.consumer_state()?;
        let index = shard_index(state, self.shard_id)?;
        check_position(state, index, self.sequence_number)?;
        let entry = PositionEntry {
            consumer: self.consumer.name.clone(),
            shard_index: index,
            sequence_number: self.sequence_number,
        };
        let durability = self
            .durability
            .unwrap_or(stream.engine.shared().config.durability);
        let (name, uid) = (state.name.clone(), state.uid);
        let (tx, rx) = oneshot::channel();
        stream
            .engine
            .control(move |control| {
                let _ = tx.send(consumers::commit(control, &name, uid, entry, durability));
                Ok(())
            })
            .await
            .map_err(|_| ConsumerError::Shutdown)?;
        rx.await.map_err(|_| ConsumerError::Shutdown)?
    }
}

impl<'a> IntoFuture for Commit<'a> {
    type Output = Result<(), ConsumerError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

/// The index of shard `shard_id` of `state`.
fn shard_index(state: &StreamState, shard_id: &str) -> Result<u32, ConsumerError> {
    parse_shard_id(shard_id)
        .filter(|&index| state.shards().get(index).is_some())
        .ok_or_else(|| ConsumerError::ShardNotFound {
            stream: state.name.clone(),
            shard: shard_id.to_owned(),
        })
}

/// Checks that `seq` is the start or a record of shard `index` (invariant C2).
fn check_position(
    state: &StreamState,
    index: u32,
    seq: SequenceNumber,
) -> Result<(), ConsumerError> {
    let shards = state.shards();
    let shard = shards.get(index).expect("checked by shard_index");
    let next = shard.reader.next_seq();
    if seq.shard_index() == Some(index) && seq.position_after() <= next {
        return Ok(());
    }
    Err(ConsumerError::PositionOutsideShard {
        sequence_number: seq,
        shard: shard.id,
        last: SequenceNumber::last_before(index, next),
    })
}
