//! Writing records: validation, routing by hash key, encoding on the caller's thread, one
//! message per core, results in request order.

use crate::catalog::{ShardKey, ShardSet, ShardState, StreamState};
use crate::engine::{Engine, block_spinning};
use crate::error::PutError;
use crate::hashkey::{HashKeyError, parse_hash_key, partition_key_hash};
use crate::limits::{PUT_BATCH_BYTES_MAX, PUT_BATCH_RECORDS_MAX};
use crate::names::validate_partition_key;
use crate::runtime::{AppendGuard, CoreJob, CoreMessage, CoreState};
use crate::seqnum::{SequenceNumber, ShardId};
use sluice_storage::{Appended, Durability, EncodedBatch};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
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
}

impl<'a> PutRecord<'a> {
    /// A record routed by `partition_key`.
    pub fn new(partition_key: &'a str, data: &'a [u8]) -> PutRecord<'a> {
        PutRecord {
            partition_key,
            data,
            explicit_hash_key: None,
            sequence_number_for_ordering: None,
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

impl Engine {
    /// Writes one record with the engine's default durability.
    pub async fn put(&self, stream: &str, record: PutRecord<'_>) -> Result<PutResult, PutError> {
        self.put_with(stream, record, self.shared().config.durability)
            .await
    }

    /// Blocking form of [`Engine::put`].
    pub fn put_blocking(&self, stream: &str, record: PutRecord<'_>) -> Result<PutResult, PutError> {
        self.block_put(self.put(stream, record))
    }

    /// Writes one record, acknowledged at `durability`.
    pub async fn put_with(
        &self,
        stream: &str,
        record: PutRecord<'_>,
        durability: Durability,
    ) -> Result<PutResult, PutError> {
        let state = self.put_stream(stream)?;
        if let Some(ordering) = record.sequence_number_for_ordering {
            // The record's own checks first, so a bad record is reported as such.
            check_batch(&[record], state.max_record_size_bytes())?;
            check_ordering(&state, &record, ordering)?;
        }
        let mut results = self.put_checked(&state, &[record], durability).await?;
        results.pop().expect("one result per record")
    }

    /// Blocking form of [`Engine::put_with`].
    pub fn put_with_blocking(
        &self,
        stream: &str,
        record: PutRecord<'_>,
        durability: Durability,
    ) -> Result<PutResult, PutError> {
        self.block_put(self.put_with(stream, record, durability))
    }

    /// Writes 1..=500 records (10 MiB at most, keys included) with the engine's default
    /// durability. Returns one result per record, in request order. Records for one shard
    /// keep their request order; records for different shards are not ordered.
    pub async fn put_batch(
        &self,
        stream: &str,
        records: &[PutRecord<'_>],
    ) -> Result<Vec<PutRecordResult>, PutError> {
        self.put_batch_with(stream, records, self.shared().config.durability)
            .await
    }

    /// Blocking form of [`Engine::put_batch`].
    pub fn put_batch_blocking(
        &self,
        stream: &str,
        records: &[PutRecord<'_>],
    ) -> Result<Vec<PutRecordResult>, PutError> {
        self.block_put(self.put_batch(stream, records))
    }

    /// [`Engine::put_batch`] acknowledged at `durability`.
    pub async fn put_batch_with(
        &self,
        stream: &str,
        records: &[PutRecord<'_>],
        durability: Durability,
    ) -> Result<Vec<PutRecordResult>, PutError> {
        let state = self.put_stream(stream)?;
        if records
            .iter()
            .any(|r| r.sequence_number_for_ordering.is_some())
        {
            return Err(PutError::InvalidArgument(
                "SequenceNumberForOrdering applies to single puts only".into(),
            ));
        }
        self.put_checked(&state, records, durability).await
    }

    /// Blocking form of [`Engine::put_batch_with`].
    pub fn put_batch_with_blocking(
        &self,
        stream: &str,
        records: &[PutRecord<'_>],
        durability: Durability,
    ) -> Result<Vec<PutRecordResult>, PutError> {
        self.block_put(self.put_batch_with(stream, records, durability))
    }

    /// Waits for a put on this thread, polling first for `caller_spin_us`.
    fn block_put<T>(&self, put: impl Future<Output = T>) -> T {
        let spin = Duration::from_micros(self.shared().config.caller_spin_us);
        block_spinning(put, spin)
    }

    fn put_stream(&self, stream: &str) -> Result<Arc<StreamState>, PutError> {
        self.shared()
            .catalog
            .get(stream)
            .ok_or_else(|| PutError::StreamNotFound(stream.to_owned()))
    }

    async fn put_checked(
        &self,
        stream: &StreamState,
        records: &[PutRecord<'_>],
        durability: Durability,
    ) -> Result<Vec<PutRecordResult>, PutError> {
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
                    PutError::StreamNotFound(stream.name.clone())
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
                    shard: shard.id.clone(),
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
                            PutError::StreamNotFound(stream.name.clone())
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
        let job: CoreJob = Box::new(move |core: &Rc<CoreState>| {
            let gather = Rc::new(ReplyGather::new(appends.len(), reply_tx));
            for (slot, append) in appends.into_iter().enumerate() {
                append.start(core, durability, &gather, slot);
            }
        });
        self.shared().cores[core]
            .send(CoreMessage::Job(job))
            .await
            .map_err(|_| PutError::Shutdown)?;
        Ok(reply)
    }
}

/// One shard's part of a put, on its way to the shard's core.
struct ShardAppend {
    key: ShardKey,
    packed: Packed,
}

impl ShardAppend {
    fn start(
        self,
        core: &Rc<CoreState>,
        durability: Durability,
        gather: &Rc<ReplyGather>,
        slot: usize,
    ) {
        let ShardAppend { key, packed } = self;
        let Some(log) = core.log(key) else {
            gather.put(slot, ShardReply::Closed);
            return;
        };
        if core.is_closing(key) {
            gather.put(slot, ShardReply::Resharded);
            return;
        }
        let visible = core.begin_append(key);
        let gather = gather.clone();
        core.spawn(async move {
            gather.put(slot, append_packed(&log, packed, durability, visible).await);
        });
    }
}

/// The replies of one core message's shard appends, sent back together once the last is in.
/// Dropped unsent (the core stopped), the caller sees the whole message's outcome unknown.
struct ReplyGather {
    replies: RefCell<Vec<Option<ShardReply>>>,
    left: Cell<usize>,
    reply: Cell<Option<oneshot::Sender<Vec<ShardReply>>>>,
}

impl ReplyGather {
    fn new(count: usize, reply: oneshot::Sender<Vec<ShardReply>>) -> ReplyGather {
        ReplyGather {
            replies: RefCell::new((0..count).map(|_| None).collect()),
            left: Cell::new(count),
            reply: Cell::new(Some(reply)),
        }
    }

    fn put(&self, slot: usize, reply: ShardReply) {
        self.replies.borrow_mut()[slot] = Some(reply);
        self.left.set(self.left.get() - 1);
        if self.left.get() == 0 {
            let replies = self
                .replies
                .take()
                .into_iter()
                .map(|r| r.expect("every slot replied"))
                .collect();
            if let Some(reply) = self.reply.take() {
                let _ = reply.send(replies);
            }
        }
    }
}

/// Checks every record and the batch; returns each record's hash key. Nothing is written
/// when any check fails.
fn check_batch(records: &[PutRecord<'_>], max_record: u64) -> Result<Vec<u128>, PutError> {
    if records.is_empty() || records.len() > PUT_BATCH_RECORDS_MAX {
        return Err(PutError::Validation(format!(
            "1 validation error detected: Value '{}' at 'records' failed to satisfy constraint: Member must have length between 1 and {PUT_BATCH_RECORDS_MAX}",
            records.len()
        )));
    }
    let total: usize = records.iter().map(PutRecord::size_bytes).sum();
    if total > PUT_BATCH_BYTES_MAX {
        return Err(PutError::InvalidArgument(format!(
            "Records size exceeds {PUT_BATCH_BYTES_MAX} bytes limit: {total} bytes"
        )));
    }
    records
        .iter()
        .enumerate()
        .map(|(i, record)| {
            validate_partition_key(record.partition_key).map_err(PutError::Validation)?;
            if record.size_bytes() as u64 > max_record {
                return Err(PutError::InvalidArgument(format!(
                    "Record {i} is {} bytes (data + partition key); the stream accepts at most {max_record}",
                    record.size_bytes()
                )));
            }
            match record.explicit_hash_key {
                Some(text) => parse_hash_key(text).map_err(|e| match e {
                    HashKeyError::Malformed(_) => PutError::Validation(e.to_string()),
                    HashKeyError::OutOfRange(_) => PutError::InvalidArgument(e.to_string()),
                }),
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
    let seq = SequenceNumber::parse(text).map_err(PutError::InvalidArgument)?;
    let shards = stream.shards();
    let issued = seq
        .shard_index()
        .and_then(|index| shards.get(index))
        .zip(seq.record_log_seq())
        .is_some_and(|(shard, log_seq)| log_seq < shard.reader.next_seq());
    if !issued {
        return Err(PutError::InvalidArgument(format!(
            "ExclusiveMinimumSequenceNumber {text} used in PutRecord on stream {} under account 000000000000 is invalid.",
            stream.name
        )));
    }
    let hash = match record.explicit_hash_key {
        Some(key) => parse_hash_key(key).ok(),
        None => Some(partition_key_hash(record.partition_key)),
    };
    // A malformed hash key is reported by the batch checks.
    let Some(hash) = hash else { return Ok(()) };
    let target = shards.route(hash).index;
    if seq.shard_index().is_some_and(|from| from > target) {
        return Err(PutError::InvalidArgument(format!(
            "SequenceNumberForOrdering {text} belongs to a shard after {} where this record goes, so the record cannot sort after it; use the same partition key (and hash key) as that record.",
            crate::seqnum::ShardId::new(target)
        )));
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
            return Err(PutError::StreamNotFound(stream.name.clone()));
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
    failure: Option<String>,
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
    let cause = failure.unwrap_or_else(|| "the shard stopped before the record".into());
    fail_all(results, &members[written..], || PutError::Storage {
        shard: shard.id.clone(),
        cause: cause.clone(),
    });
    written
}

fn fail_all(results: &mut [PutRecordResult], members: &[usize], error: impl Fn() -> PutError) {
    for &i in members {
        results[i] = Err(error());
    }
}

/// What the owning core answers to an append.
enum ShardReply {
    /// The batches written, in order, and the failure that stopped the rest, if any.
    Appended {
        batches: Vec<Appended>,
        failure: Option<String>,
    },
    /// The shard's log is closed: its stream was deleted.
    Closed,
    /// A reshard is closing the shard: nothing was written; route the records again once the
    /// new layout is in the catalog.
    Resharded,
}

/// Records for one shard, encoded on the caller's thread as the batches the shard's log will
/// write (split where one would outgrow a segment), so the owning core copies nothing: it
/// fills each header, hashes and writes.
struct Packed {
    batches: Vec<EncodedBatch>,
}

impl Packed {
    fn new(records: &[PutRecord<'_>], members: &[usize], batch_bytes_max: u64) -> Packed {
        let encoded_len = |i: usize| {
            let record = &records[i];
            EncodedBatch::encoded_record_len(record.partition_key.len(), record.data.len())
        };
        let mut left: u64 = members.iter().map(|&i| encoded_len(i)).sum();
        let mut batches = Vec::with_capacity(1);
        let mut batch = EncodedBatch::with_capacity(left.min(batch_bytes_max) as usize);
        for &i in members {
            let record = &records[i];
            let len = encoded_len(i);
            // A batch holds at least one record; a record too large for any batch is refused
            // by the log, as it always was.
            if batch.record_count() > 0 && batch.len_bytes() + len > batch_bytes_max {
                let rest = EncodedBatch::with_capacity(left.min(batch_bytes_max) as usize);
                batches.push(std::mem::replace(&mut batch, rest));
            }
            batch.push(record.partition_key.as_bytes(), record.data);
            left -= len;
        }
        batches.push(batch);
        Packed { batches }
    }
}

/// Appends the batches in order; stops at the first failure and says which batches were
/// written. `visible` is released as soon as the batches are visible, before waiting for
/// durability, so a reshard closing the shard waits only for visibility.
async fn append_packed(
    log: &crate::runtime::Log,
    packed: Packed,
    durability: Durability,
    visible: AppendGuard,
) -> ShardReply {
    let mut batches = Vec::with_capacity(packed.batches.len());
    for batch in packed.batches {
        match log.append_encoded(batch, Durability::Visible).await {
            Ok(appended) => batches.push(appended),
            Err(e) => {
                return ShardReply::Appended {
                    batches,
                    failure: Some(e.to_string()),
                };
            }
        }
    }
    drop(visible);
    let end_seq = batches.last().map_or(0, Appended::end_seq);
    if durability == Durability::Durable
        && let Err(e) = log.make_durable(end_seq).await
    {
        // Visible but maybe not durable: the outcome is unknown, report every record failed.
        return ShardReply::Appended {
            batches: Vec::new(),
            failure: Some(e.to_string()),
        };
    }
    ShardReply::Appended {
        batches,
        failure: None,
    }
}
