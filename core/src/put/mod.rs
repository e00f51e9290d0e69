//! Writing records, the caller's half: validation, routing by hash key, encoding on the
//! caller's thread, one message per core, results in request order. The core's half is in
//! `append`.

mod append;

use crate::call::block_spinning;
use crate::catalog::{ShardSet, ShardState, StreamState};
use crate::engine::Engine;
use crate::error::PutError;
use crate::hashkey::{parse_hash_key, partition_key_hash};
use crate::limits::{PARTITION_KEY_CHARS_MAX, PUT_BATCH_BYTES_MAX, PUT_BATCH_RECORDS_MAX};
use crate::names::check_partition_key;
use crate::runtime::CoreMessage;
use crate::seqnum::{SequenceNumber, ShardId};
use crate::stream::Stream;
use append::{Packed, ShardAppend, ShardReply};
use sluice_storage::{Appended, Durability, StorageError};
use std::collections::BTreeMap;
use std::future::IntoFuture;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// A record to write.
#[derive(Debug, Clone, Copy)]
pub struct PutRecord<'a> {
    /// 1..=256 characters; its MD5 picks the shard unless `explicit_hash_key` is set.
    pub partition_key: &'a str,
    /// The payload.
    pub data: &'a [u8],
    /// A decimal hash key (0..=2^128−1) that picks the shard instead of the partition key.
    pub explicit_hash_key: Option<&'a str>,
    /// `put` only: the sequence number of this client's previous record with the same
    /// partition key (Kinesis' `SequenceNumberForOrdering`); the new record sorts after it.
    /// It must be a number this stream issued. Records of one key go to one shard, whose
    /// numbers only grow, and a reshard's children sort after their parents, so the order
    /// holds by construction; across different keys Kinesis promises none.
    pub sequence_number_for_ordering: Option<&'a str>,
    /// `data` is an envelope the caller sealed (encrypted) itself: stored with the flag and
    /// reported on reads ([`Record::encrypted`](crate::Record::encrypted)); the engine never
    /// looks inside, and the envelope counts against the record size limit like any data.
    pub encrypted: bool,
}

impl<'a> PutRecord<'a> {
    /// A record routed by `partition_key`.
    pub fn new(partition_key: &'a str, data: &'a [u8]) -> PutRecord<'a> {
        PutRecord {
            partition_key,
            data,
            explicit_hash_key: None,
            sequence_number_for_ordering: None,
            encrypted: false,
        }
    }

    /// Routes by `hash_key` (decimal) instead of the partition key's hash.
    pub fn with_explicit_hash_key(mut self, hash_key: &'a str) -> PutRecord<'a> {
        self.explicit_hash_key = Some(hash_key);
        self
    }

    fn size_bytes(&self) -> usize {
        self.partition_key.len() + self.data.len()
    }
}

/// Where a record landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutResult {
    /// The shard.
    pub shard_id: ShardId,
    /// The record's sequence number.
    pub sequence_number: SequenceNumber,
}

/// One record's outcome in a batch: Kinesis lets some records of a batch fail (throttled
/// shard, failed shard) while the others succeed.
pub type PutRecordResult = Result<PutResult, PutError>;

impl Stream {
    /// Writes one record, acknowledged at the engine's default durability unless the call
    /// says otherwise ([`Put::durability`]). `.await` it, or [`Put::wait`] on a plain thread.
    pub fn put<'a>(&'a self, record: PutRecord<'a>) -> Put<'a> {
        Put {
            stream: self,
            record,
            durability: None,
        }
    }

    /// Writes 1..=500 records (10 MiB at most, keys included). Returns one result per
    /// record, in request order: records for one shard keep their request order; records
    /// for different shards are not ordered, and some may fail (throttled, failed shard)
    /// while others are written.
    pub fn put_batch<'a>(&'a self, records: &'a [PutRecord<'a>]) -> PutBatch<'a> {
        PutBatch {
            stream: self,
            records,
            durability: None,
        }
    }

    fn durability_or_default(&self, durability: Option<Durability>) -> Durability {
        durability.unwrap_or(self.engine.shared().config.durability)
    }

    /// Waits for a put on this thread, polling first for `caller_spin_us`.
    fn wait_put<T>(&self, put: impl Future<Output = T>) -> T {
        let spin = Duration::from_micros(self.engine.shared().config.caller_spin_us);
        block_spinning(put, spin)
    }
}

/// A pending [`Stream::put`]: set its options, then `.await` it or [`Put::wait`].
#[must_use = "a put does nothing until it is awaited or waited for"]
#[derive(Debug)]
pub struct Put<'a> {
    stream: &'a Stream,
    record: PutRecord<'a>,
    durability: Option<Durability>,
}

impl<'a> Put<'a> {
    /// Acknowledge the record at `durability` instead of the engine's default.
    pub fn durability(mut self, durability: Durability) -> Put<'a> {
        self.durability = Some(durability);
        self
    }

    /// Writes the record, blocking this thread until it is acknowledged. Do not call it from
    /// inside an async task.
    pub fn wait(self) -> Result<PutResult, PutError> {
        let stream = self.stream;
        stream.wait_put(self.run())
    }

    async fn run(self) -> Result<PutResult, PutError> {
        let stream = self.stream;
        let state = &stream.state;
        let record = self.record;
        if let Some(ordering) = record.sequence_number_for_ordering {
            // The record's own checks first, so a bad record is reported as such.
            check_batch(&[record], state.max_record_size_bytes())?;
            check_ordering(state, &record, ordering)?;
        }
        let durability = stream.durability_or_default(self.durability);
        let mut results = stream
            .engine
            .put_checked(state, &[record], durability)
            .await?;
        results.pop().expect("one result per record")
    }
}

impl<'a> IntoFuture for Put<'a> {
    type Output = Result<PutResult, PutError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

/// A pending [`Stream::put_batch`]: set its options, then `.await` it or [`PutBatch::wait`].
#[must_use = "a put does nothing until it is awaited or waited for"]
#[derive(Debug)]
pub struct PutBatch<'a> {
    stream: &'a Stream,
    records: &'a [PutRecord<'a>],
    durability: Option<Durability>,
}

impl<'a> PutBatch<'a> {
    /// Acknowledge the records at `durability` instead of the engine's default.
    pub fn durability(mut self, durability: Durability) -> PutBatch<'a> {
        self.durability = Some(durability);
        self
    }

    /// Writes the records, blocking this thread until each has its result. Do not call it
    /// from inside an async task.
    pub fn wait(self) -> Result<Vec<PutRecordResult>, PutError> {
        let stream = self.stream;
        stream.wait_put(self.run())
    }

    async fn run(self) -> Result<Vec<PutRecordResult>, PutError> {
        let stream = self.stream;
        if self
            .records
            .iter()
            .any(|r| r.sequence_number_for_ordering.is_some())
        {
            return Err(PutError::OrderingInBatch);
        }
        let durability = stream.durability_or_default(self.durability);
        stream
            .engine
            .put_checked(&stream.state, self.records, durability)
            .await
    }
}

impl<'a> IntoFuture for PutBatch<'a> {
    type Output = Result<Vec<PutRecordResult>, PutError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

impl Engine {
    async fn put_checked(
        &self,
        stream: &StreamState,
        records: &[PutRecord<'_>],
        durability: Durability,
    ) -> Result<Vec<PutRecordResult>, PutError> {
        // A handle of a deleted stream: nothing to route to.
        if stream.is_deleted() {
            return Err(PutError::stream_not_found(&stream.name));
        }
        let max_record = stream.max_record_size_bytes();
        let hashes = check_batch(records, max_record)?;
        // Every record gets its own result below (written, failed, or routed again until one
        // of those); the placeholder never reaches the caller.
        let mut results: Vec<PutRecordResult> = (0..records.len())
            .map(|_| Err(PutError::Shutdown))
            .collect();
        let mut todo: Vec<usize> = (0..records.len()).collect();
        // Records sent to a shard a reshard was closing come back; they go again, routed by
        // the layout the reshard committed.
        loop {
            let shards = stream.shards();
            let resharded = self
                .put_round(
                    stream,
                    &shards,
                    records,
                    &hashes,
                    &todo,
                    durability,
                    &mut results,
                )
                .await;
            if resharded.is_empty() {
                break;
            }
            if wait_for_new_layout(stream, &shards).await.is_err() {
                // Deleted while these waited: they were not written; the others keep
                // their results.
                fail_all(&mut results, &resharded, || {
                    PutError::stream_not_found(&stream.name)
                });
                break;
            }
            todo = resharded;
        }
        Ok(results)
    }

    /// Sends the records `todo` to their shards under the layout `shards` and fills their
    /// results; returns the records whose shard was being closed by a reshard.
    #[allow(clippy::too_many_arguments)]
    async fn put_round(
        &self,
        stream: &StreamState,
        shards: &ShardSet,
        records: &[PutRecord<'_>],
        hashes: &[u128],
        todo: &[usize],
        durability: Durability,
        results: &mut [PutRecordResult],
    ) -> Vec<usize> {
        let now_ms = self.shared().config.clock.now_ms();
        // One message per core, carrying every shard's records for that core, and one reply
        // per core: a batch spread over many shards costs one queue hop and one wake-up of
        // this thread per core, not per shard.
        let mut per_core: Vec<(Vec<ShardAppend>, Vec<ShardGroup>)> = Vec::new();
        per_core.resize_with(self.shared().cores.len(), Default::default);
        for (shard, members) in group_by_shard(shards, hashes, todo) {
            let bytes: usize = members.iter().map(|&i| records[i].size_bytes()).sum();
            if !shard.admit_write(members.len() as u64, bytes as u64, now_ms) {
                shard.metrics.write_throttles.increment(1);
                fail_all(results, &members, || PutError::Throttled {
                    stream: stream.name.clone(),
                    shard: shard.id,
                });
                continue;
            }
            let (appends, targets) = &mut per_core[shard.core];
            appends.push(ShardAppend {
                key: (stream.uid, shard.index),
                packed: Packed::new(records, &members, self.shared().batch_bytes_max),
            });
            targets.push((shard, members));
        }
        let mut pending = Vec::new();
        for (core, (appends, targets)) in per_core.into_iter().enumerate() {
            if !appends.is_empty() {
                pending.push((targets, self.send_appends(core, appends, durability).await));
            }
        }
        let mut resharded = Vec::new();
        for (targets, replies) in pending {
            // A core that stopped (or never took the message) leaves its records' outcome
            // unknown.
            let replies = match replies {
                Ok(reply) => reply.await.ok(),
                Err(_) => None,
            };
            let Some(replies) = replies else {
                for (_, members) in &targets {
                    fail_all(results, members, || PutError::Shutdown);
                }
                continue;
            };
            for ((shard, members), reply) in targets.into_iter().zip(replies) {
                match reply {
                    ShardReply::Appended { batches, failure } => {
                        let written = fill_results(results, &shard, &members, &batches, failure);
                        let bytes: usize = members[..written]
                            .iter()
                            .map(|&i| records[i].size_bytes())
                            .sum();
                        shard.metrics.incoming_records.increment(written as u64);
                        shard.metrics.incoming_bytes.increment(bytes as u64);
                    }
                    ShardReply::Resharded => resharded.extend(members),
                    // The stream was deleted while the put was on its way: these records were
                    // not written (other shards' may have been, and keep their results).
                    ShardReply::Closed => {
                        fail_all(results, &members, || {
                            PutError::stream_not_found(&stream.name)
                        });
                    }
                }
            }
        }
        resharded
    }

    /// Sends one core the appends of its shards. Each runs as its own task there, so the
    /// shards of one put write (and sync) concurrently; the replies come back together, in
    /// the order of `appends`.
    async fn send_appends(
        &self,
        core: usize,
        appends: Vec<ShardAppend>,
        durability: Durability,
    ) -> Result<oneshot::Receiver<Vec<ShardReply>>, PutError> {
        let (reply_tx, reply) = oneshot::channel();
        let job = append::core_job(appends, durability, reply_tx);
        self.shared().cores[core]
            .send(CoreMessage::Job(job))
            .await
            .map_err(|_| PutError::Shutdown)?;
        Ok(reply)
    }
}

/// Checks every record and the batch; returns each record's hash key. Nothing is written
/// when any check fails.
fn check_batch(records: &[PutRecord<'_>], max_record: u64) -> Result<Vec<u128>, PutError> {
    if records.is_empty() || records.len() > PUT_BATCH_RECORDS_MAX {
        return Err(PutError::BatchRecordCount {
            count: records.len(),
            max: PUT_BATCH_RECORDS_MAX,
        });
    }
    let total: usize = records.iter().map(PutRecord::size_bytes).sum();
    if total > PUT_BATCH_BYTES_MAX {
        return Err(PutError::BatchTooLarge {
            size_bytes: total as u64,
            max_bytes: PUT_BATCH_BYTES_MAX as u64,
        });
    }
    records
        .iter()
        .enumerate()
        .map(|(index, record)| {
            check_partition_key(record.partition_key).map_err(|chars| {
                PutError::InvalidPartitionKey {
                    index,
                    chars,
                    max: PARTITION_KEY_CHARS_MAX,
                }
            })?;
            if record.size_bytes() as u64 > max_record {
                return Err(PutError::RecordTooLarge {
                    index,
                    size_bytes: record.size_bytes() as u64,
                    max_bytes: max_record,
                });
            }
            match record.explicit_hash_key {
                Some(text) => {
                    parse_hash_key(text).map_err(|error| PutError::InvalidHashKey { index, error })
                }
                None => Ok(partition_key_hash(record.partition_key)),
            }
        })
        .collect()
}

/// A `SequenceNumberForOrdering` must name a record this stream issued, and the record must
/// be able to sort after it: records go to shards of the same or a higher index (one key stays
/// in one shard; reshard children have higher indexes). A record routed to a lower-index shard
/// than the one the number came from (an explicit hash key moved it) is refused.
fn check_ordering(
    stream: &StreamState,
    record: &PutRecord<'_>,
    text: &str,
) -> Result<(), PutError> {
    let seq = SequenceNumber::parse(text).map_err(PutError::InvalidOrderingNumber)?;
    let shards = stream.shards();
    let issued = seq
        .shard_index()
        .and_then(|index| shards.get(index))
        .zip(seq.record_log_seq())
        .is_some_and(|(shard, log_seq)| log_seq < shard.reader.next_seq());
    if !issued {
        return Err(PutError::OrderingNumberNotIssued {
            stream: stream.name.clone(),
            sequence_number: text.to_owned(),
        });
    }
    let hash = match record.explicit_hash_key {
        Some(key) => parse_hash_key(key).ok(),
        None => Some(partition_key_hash(record.partition_key)),
    };
    // A malformed hash key is reported by the batch checks.
    let Some(hash) = hash else { return Ok(()) };
    let target = shards.route(hash).index;
    if seq.shard_index().is_some_and(|from| from > target) {
        return Err(PutError::OrderingAfterShard {
            sequence_number: text.to_owned(),
            shard: ShardId::new(target),
        });
    }
    Ok(())
}

/// A shard and the indexes of the records of a put that go to it, in request order.
type ShardGroup = (Arc<ShardState>, Vec<usize>);

/// Record indexes per shard, in request order within each shard; shards in index order.
fn group_by_shard(shards: &ShardSet, hashes: &[u128], todo: &[usize]) -> Vec<ShardGroup> {
    let mut groups: Vec<ShardGroup> = Vec::new();
    // Shard index → place in `groups`, for records that go elsewhere than the one before.
    let mut places: BTreeMap<u32, usize> = BTreeMap::new();
    let mut last = usize::MAX;
    for &i in todo {
        let shard = shards.route(hashes[i]);
        if groups.get(last).is_none_or(|(s, _)| s.index != shard.index) {
            last = *places.entry(shard.index).or_insert_with(|| {
                // Sized for the common case of a batch for one shard.
                let members = Vec::with_capacity(if groups.is_empty() { todo.len() } else { 0 });
                groups.push((shard.clone(), members));
                groups.len() - 1
            });
        }
        groups[last].1.push(i);
    }
    groups.sort_unstable_by_key(|(shard, _)| shard.index);
    groups
}

/// Waits until a reshard has committed a new layout for `stream` (or given up and restored
/// the old one): the shard set is no longer `seen`.
async fn wait_for_new_layout(stream: &StreamState, seen: &Arc<ShardSet>) -> Result<(), PutError> {
    loop {
        let changed = stream.listen_for_layout();
        if stream.is_deleted() {
            return Err(PutError::stream_not_found(&stream.name));
        }
        if !Arc::ptr_eq(&stream.shards(), seen) {
            return Ok(());
        }
        changed.await;
    }
}

/// Gives the records the batches covered their sequence numbers, and the rest the failure
/// that stopped the appends. Returns how many records were written.
fn fill_results(
    results: &mut [PutRecordResult],
    shard: &ShardState,
    members: &[usize],
    batches: &[Appended],
    failure: Option<Arc<StorageError>>,
) -> usize {
    let seqs = batches.iter().flat_map(|a| a.base_seq..a.end_seq());
    let shard_id = ShardId::new(shard.index);
    let mut written = 0;
    for (&i, log_seq) in members.iter().zip(seqs) {
        results[i] = Ok(PutResult {
            shard_id,
            sequence_number: SequenceNumber::new(shard.index, log_seq),
        });
        written += 1;
    }
    fail_all(results, &members[written..], || match &failure {
        Some(error) => PutError::Storage {
            shard: shard_id,
            error: error.clone(),
        },
        None => PutError::Unwritten { shard: shard_id },
    });
    written
}

fn fail_all(results: &mut [PutRecordResult], members: &[usize], error: impl Fn() -> PutError) {
    for &i in members {
        results[i] = Err(error());
    }
}
