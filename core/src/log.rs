//! A plain log for users who want no Kinesis words: append bytes, get a dense `u64` offset,
//! read or tail from an offset. A thin layer over a one-shard stream
//! (docs/design/checkpoints.md, "The plain log").

use crate::admin::CreateStream;
use crate::call::Call;
use crate::engine::Engine;
use crate::error::{AdminError, PutError, ReadError};
use crate::iterator::IteratorStart;
use crate::put::PutRecord;
use crate::read::Records;
use crate::seqnum::{SequenceNumber, ShardId};
use crate::stream::Stream;
use crate::subscription::Subscription;
use sluice_storage::Durability;
use std::future::IntoFuture;
use std::pin::Pin;
use std::time::Duration;

/// The partition key of every record of a log (one byte: a log has one shard).
const LOG_PARTITION_KEY: &str = "0";

/// An append-only log of byte records with dense offsets from 0: a stream of one shard. Cheap
/// to clone; it keeps the engine open while it exists.
#[derive(Debug, Clone)]
pub struct Log {
    stream: Stream,
}

/// One record of a log, borrowed from the mapped segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogEntry<'a> {
    /// Its offset.
    pub offset: u64,
    /// Its bytes.
    pub data: &'a [u8],
}

/// Records read from a log (zero-copy: they hold a lease on their segment).
#[derive(Debug)]
pub struct LogRead {
    records: Records,
}

impl Engine {
    /// The log called `name` (stream-name rules), created if missing. A stream made another
    /// way is a log only while it has exactly one shard, open: `NotALog` otherwise.
    pub fn log<'a>(
        &'a self,
        name: &'a str,
    ) -> Call<impl Future<Output = Result<Log, AdminError>> + Send + 'a> {
        Call::new(async move {
            let stream = match self.stream(name) {
                Ok(stream) => stream,
                Err(_) => match self.create_stream(CreateStream::provisioned(name, 1)).await {
                    Ok(stream) => stream,
                    // Another caller made it meanwhile.
                    Err(AdminError::StreamExists { .. }) => self.stream(name)?,
                    Err(e) => return Err(e),
                },
            };
            let shards = stream.state.shards();
            let open = shards.open_by_start.len();
            if shards.by_index.len() != 1 || open != 1 {
                return Err(AdminError::NotALog {
                    stream: name.to_owned(),
                    shards: shards.by_index.len(),
                    open,
                });
            }
            Ok(Log { stream })
        })
    }
}

impl Log {
    /// The log's name.
    pub fn name(&self) -> &str {
        self.stream.name()
    }

    /// The stream under it, for what the log does not offer (retention, tags, consumers).
    pub fn stream(&self) -> &Stream {
        &self.stream
    }

    /// Appends `data`; answers its offset. Durability is the engine's default unless the call
    /// sets it ([`Append::durability`]).
    pub fn append<'a>(&'a self, data: &'a [u8]) -> Append<'a> {
        Append {
            batch: self.append_batch(&[data]),
        }
    }

    /// Appends 1..=500 records (10 MiB at most) in order; answers their offsets, increasing
    /// (consecutive unless the batch is split across segments while other appends run). On a
    /// failure, records before the failed one may have been written.
    pub fn append_batch<'a>(&'a self, records: &[&'a [u8]]) -> AppendBatch<'a> {
        AppendBatch {
            log: self,
            data: records.to_vec(),
            durability: None,
        }
    }

    /// The offset the next append gets.
    pub fn next_offset(&self) -> u64 {
        self.shard().reader.next_seq()
    }

    /// The oldest offset still retained.
    pub fn start_offset(&self) -> u64 {
        self.shard().reader.trim_horizon()
    }

    /// Reads up to `limit` records (1..=10,000, and at most 10 MiB) from offset `from` (at most
    /// [`Log::next_offset`]; an expired offset reads from the oldest retained record). A read
    /// may return fewer records than there are (it stops at a segment's end): continue from
    /// [`LogRead::next_offset`].
    pub fn read(&self, from: u64, limit: usize) -> Result<LogRead, ReadError> {
        let mut iterator = self.stream.shard_iterator(&ShardId::new(0), at(from))?;
        let records = self.stream.engine.get_records(&mut iterator, Some(limit))?;
        Ok(LogRead { records })
    }

    /// Follows the log from offset `from` (at most [`Log::next_offset`]): records as they are
    /// appended, blocking or async.
    pub fn tail(&self, from: u64) -> Result<LogTail, ReadError> {
        Ok(LogTail {
            subscription: self.stream.subscribe(&ShardId::new(0), at(from))?,
        })
    }

    fn shard(&self) -> std::sync::Arc<crate::catalog::ShardState> {
        self.stream
            .state
            .shards()
            .get(0)
            .expect("a log has shard 0")
            .clone()
    }
}

/// The iterator start of offset `from` (offsets past every possible one stay past the end).
fn at(from: u64) -> IteratorStart {
    IteratorStart::AtSequenceNumber(SequenceNumber::new(0, from.min(u64::MAX - 1)))
}

impl LogRead {
    /// The records, in offset order.
    pub fn entries(&self) -> impl Iterator<Item = LogEntry<'_>> {
        self.records.records().map(|r| LogEntry {
            offset: r
                .sequence_number
                .record_log_seq()
                .expect("a record's number"),
            data: r.data,
        })
    }

    /// Where the next read continues.
    pub fn next_offset(&self) -> u64 {
        self.records.next_position().log_seq()
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when there were no records.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// A follower of a log: [`LogTail::next`] on any runtime, [`LogTail::next_blocking`] on a
/// plain thread. It holds a clone of the engine, which stays open while it exists.
#[derive(Debug)]
pub struct LogTail {
    subscription: Subscription,
}

impl LogTail {
    /// Waits for the next records. `None` only if the stream under the log was resharded
    /// (its shard closed): a log then takes no more appends.
    pub async fn next(&mut self) -> Option<Result<LogRead, ReadError>> {
        let event = self.subscription.next().await?;
        Some(event.map(|event| LogRead {
            records: event.records,
        }))
    }

    /// Waits at most `timeout` for the next records; `Ok(None)` when none came in time.
    pub fn next_blocking(&mut self, timeout: Duration) -> Result<Option<LogRead>, ReadError> {
        Ok(self
            .subscription
            .next_blocking(timeout)?
            .map(|event| LogRead {
                records: event.records,
            }))
    }
}

/// A pending [`Log::append`]: set its durability, then `.await` it or [`Append::wait`].
/// Answers the record's offset.
#[must_use = "an append does nothing until it is awaited or waited for"]
#[derive(Debug)]
pub struct Append<'a> {
    batch: AppendBatch<'a>,
}

impl<'a> Append<'a> {
    /// Acknowledge the append at `durability` instead of the engine's default.
    pub fn durability(self, durability: Durability) -> Append<'a> {
        Append {
            batch: self.batch.durability(durability),
        }
    }

    /// Appends, blocking this thread until it is acknowledged; answers the offset. Do not
    /// call it from inside an async task.
    pub fn wait(self) -> Result<u64, PutError> {
        crate::call::block(self.run())
    }

    async fn run(self) -> Result<u64, PutError> {
        Ok(self.batch.run().await?[0])
    }
}

impl<'a> IntoFuture for Append<'a> {
    type Output = Result<u64, PutError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

/// A pending [`Log::append_batch`]: set its durability, then `.await` it or
/// [`AppendBatch::wait`]. Answers the records' offsets, in order.
#[must_use = "an append does nothing until it is awaited or waited for"]
#[derive(Debug)]
pub struct AppendBatch<'a> {
    log: &'a Log,
    data: Vec<&'a [u8]>,
    durability: Option<Durability>,
}

impl<'a> AppendBatch<'a> {
    /// Acknowledge the append at `durability` instead of the engine's default.
    pub fn durability(mut self, durability: Durability) -> AppendBatch<'a> {
        self.durability = Some(durability);
        self
    }

    /// Appends, blocking this thread until it is acknowledged; answers the offsets. Do not
    /// call it from inside an async task.
    pub fn wait(self) -> Result<Vec<u64>, PutError> {
        crate::call::block(self.run())
    }

    async fn run(self) -> Result<Vec<u64>, PutError> {
        let records: Vec<PutRecord<'_>> = self
            .data
            .iter()
            .map(|data| PutRecord::new(LOG_PARTITION_KEY, data))
            .collect();
        let mut put = self.log.stream.put_batch(&records);
        if let Some(durability) = self.durability {
            put = put.durability(durability);
        }
        put.await?
            .into_iter()
            .map(|result| {
                let log_seq = result?.sequence_number.record_log_seq();
                Ok(log_seq.expect("a record's number"))
            })
            .collect()
    }
}

impl<'a> IntoFuture for AppendBatch<'a> {
    type Output = Result<Vec<u64>, PutError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}
