//! The data plane in cluster mode: puts through each shard's leader, iterators and reads on
//! this node's replicas.
//!
//! A put is acknowledged once its shard's group committed it (on a majority, durable); its
//! number is the log's, which every replica repeats, so it never changes across failovers.
//! A read is served by this node's replica up to its commit; a LATEST or AT_TIMESTAMP
//! iterator, and a GetRecords that finds nothing new here, first pass a read barrier, so no
//! read misses a put acknowledged before it began (on any node).

use super::admin::retained;
use super::token::Position;
use super::{ClusterFront, incarnation};
use crate::clock::now_ms;
use crate::encryption::ENVELOPE_BYTES;
use crate::ops::records::{
    GetRecordsInput, GetRecordsOutput, GetShardIteratorInput, GetShardIteratorOutput,
    PutRecordInput, PutRecordOutput, PutRecordsEntry, PutRecordsInput, PutRecordsOutput,
    PutRecordsResultEntry, encryption_type,
};
use crate::reads::{RecordOut, iterator_start};
use crate::shapes::{ChildShard, HashKeyRange};
use crate::wire::{ApiError, Incarnation, Protocol, Timestamp};
use sluice_cluster::raft::{ClientError, NewRecord, ShardWritten};
use sluice_cluster::reads::{ReadFrom, ReadRecord, ReadReply, ReadRequest};
use sluice_cluster::{Backend, StreamPlacement, StreamStatus, Versioned};
use sluice_core::hashkey::{parse_hash_key, partition_key_hash};
use sluice_core::limits::{GET_RECORDS_MAX, PUT_BATCH_BYTES_MAX};
use sluice_core::{IteratorStart, PutError, ReadError, ShardId};
use sluice_storage::RECORD_FLAG_ENCRYPTED;
use std::borrow::Cow;
use std::collections::BTreeMap;

/// The open shard whose keys hold the record's hash key (explicit, or its partition key's).
fn route(
    stream: &StreamPlacement,
    index: usize,
    (partition_key, explicit): (&str, Option<&str>),
) -> Result<u32, ApiError> {
    let hash = match explicit {
        Some(text) => parse_hash_key(text)
            .map_err(|error| ApiError::from(PutError::InvalidHashKey { index, error }))?,
        None => partition_key_hash(partition_key),
    };
    stream
        .shards
        .iter()
        .find(|s| !s.closed && (s.starting_hash_key..=s.ending_hash_key).contains(&hash))
        .map(|s| s.index)
        .ok_or_else(|| {
            ApiError::internal(format!(
                "no open shard of {} holds hash key {hash}",
                stream.name
            ))
        })
}

/// A record must fit the stream's record size limit (partition key and data), with its
/// envelope when the stream encrypts (the limit is then 33 bytes less, as in single-node
/// mode).
fn check_size(
    stream: &StreamPlacement,
    index: usize,
    key: &str,
    data: &[u8],
) -> Result<(), ApiError> {
    let size_bytes = (key.len() + data.len()) as u64;
    let envelope = match stream.settings.encryption_key {
        Some(_) => ENVELOPE_BYTES,
        None => 0,
    };
    let max_bytes = stream.settings.max_record_bytes() - envelope;
    if size_bytes > max_bytes {
        return Err(PutError::RecordTooLarge {
            index,
            size_bytes,
            max_bytes,
        }
        .into());
    }
    Ok(())
}

/// Seals `records` when `stream` encrypts (their sizes checked with their envelopes);
/// returns the encryption type a reply reports.
async fn seal<B: Backend>(
    front: &ClusterFront<B>,
    stream: &StreamPlacement,
    records: &mut [NewRecord],
) -> Result<&'static str, ApiError> {
    let Some(key) = &stream.settings.encryption_key else {
        return Ok(encryption_type(false));
    };
    let data: Vec<&[u8]> = records.iter().map(|r| r.data.as_slice()).collect();
    let envelopes = front.keys.seal(stream, key, &data).await?;
    for (record, envelope) in records.iter_mut().zip(envelopes) {
        record.data = envelope;
        record.flags |= RECORD_FLAG_ENCRYPTED;
    }
    Ok(encryption_type(true))
}

/// A write the group did not take, as Kinesis reports it: a refusal is the caller's; no
/// leader, no answer or a failure is InternalFailure (500), which SDKs retry.
fn write_error(error: ClientError) -> ApiError {
    match error {
        ClientError::Refused(why) => ApiError::invalid_argument(why),
        other => ApiError::internal(format!("The record was not acknowledged: {other}")),
    }
}

pub async fn put_record<B: Backend>(
    front: &ClusterFront<B>,
    input: PutRecordInput,
) -> Result<PutRecordOutput, ApiError> {
    let name = front
        .tenant
        .resolve(&input.stream_name, &input.stream_arn)?;
    let mut stream = front.serving_stream(&name).await?;
    let data = input.data.expect("validated").0;
    let key = input.partition_key.expect("validated");
    if check_size(&stream, 0, &key, &data).is_err() {
        // A limit raised through another node a moment ago holds here at once.
        stream = front.serving_stream_now(&name).await?;
        check_size(&stream, 0, &key, &data)?;
    }
    // Every record written after a put has a greater number than it (the log numbers in
    // order), so the ordering number is only checked to be this stream's.
    if let Some(text) = input.sequence_number_for_ordering.as_deref() {
        incarnation(&stream).parse(text, "SequenceNumberForOrdering", &name)?;
    }
    let explicit = input.explicit_hash_key.as_deref();
    let mut records = [NewRecord {
        partition_key: key,
        data,
        flags: 0,
    }];
    let mut shard = route(&stream, 0, (&records[0].partition_key, explicit))?;
    let encryption_type = seal(front, &stream, &mut records).await?;
    let mut written = front.node.put(&stream, shard, &records).await;
    for _ in 0..REROUTES_MAX {
        if !matches!(written, Err(ClientError::Closed)) {
            break;
        }
        // A reshard closed the shard first (nothing of the put is readable there): again,
        // by the map that shows it closed.
        let stream = front.serving_stream(&name).await?;
        shard = route(&stream, 0, (&records[0].partition_key, explicit))?;
        written = front.node.put(&stream, shard, &records).await;
    }
    let written = written.map_err(write_error)?;
    Ok(PutRecordOutput {
        shard_id: ShardId::new(shard).to_string(),
        sequence_number: incarnation(&stream)
            .tag(sluice_core::SequenceNumber::new(shard, written.base_seq))
            .to_string(),
        encryption_type,
    })
}

/// Each shard's records of a batch (their places in it), checked whole before anything is
/// written, as the engine does.
fn route_batch(
    stream: &StreamPlacement,
    entries: &[PutRecordsEntry],
) -> Result<BTreeMap<u32, Vec<usize>>, ApiError> {
    let mut by_shard: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    let mut total = 0u64;
    for (index, entry) in entries.iter().enumerate() {
        let key = entry.partition_key.as_deref().expect("validated");
        let data = &entry.data.as_ref().expect("validated").0;
        check_size(stream, index, key, data)?;
        total += (key.len() + data.len()) as u64;
        let shard = route(stream, index, (key, entry.explicit_hash_key.as_deref()))?;
        by_shard.entry(shard).or_default().push(index);
    }
    if total > PUT_BATCH_BYTES_MAX as u64 {
        return Err(PutError::BatchTooLarge {
            size_bytes: total,
            max_bytes: PUT_BATCH_BYTES_MAX as u64,
        }
        .into());
    }
    Ok(by_shard)
}

pub async fn put_records<B: Backend>(
    front: &ClusterFront<B>,
    input: PutRecordsInput,
) -> Result<PutRecordsOutput, ApiError> {
    let name = front
        .tenant
        .resolve(&input.stream_name, &input.stream_arn)?;
    let mut stream = front.serving_stream(&name).await?;
    let entries = input.records.expect("validated").into_items();
    let mut by_shard = match route_batch(&stream, &entries) {
        Ok(by_shard) => by_shard,
        // A limit raised through another node a moment ago holds here at once.
        Err(_) => {
            stream = front.serving_stream_now(&name).await?;
            route_batch(&stream, &entries)?
        }
    };
    let explicit: Vec<Option<String>> = entries
        .iter()
        .map(|e| e.explicit_hash_key.clone())
        .collect();
    let mut records: Vec<NewRecord> = entries
        .into_iter()
        .map(|entry| NewRecord {
            partition_key: entry.partition_key.expect("validated"),
            data: entry.data.expect("validated").0,
            flags: 0,
        })
        .collect();
    let encryption_type = seal(front, &stream, &mut records).await?;
    let mut records: Vec<Option<NewRecord>> = records.into_iter().map(Some).collect();
    let mut results: Vec<Option<PutRecordsResultEntry>> = Vec::new();
    results.resize_with(records.len(), || None);
    for reroute in 0..=REROUTES_MAX {
        let mut closed = Vec::new();
        for (shard, indexes, outcome, written) in
            write_shards(front, &stream, by_shard, &mut records).await
        {
            if matches!(outcome, Err(ClientError::Closed)) && reroute < REROUTES_MAX {
                // A reshard closed the shard first: nothing of them is readable there.
                for (&i, record) in indexes.iter().zip(written) {
                    records[i] = Some(record);
                }
                closed.extend(indexes);
                continue;
            }
            for (offset, &i) in indexes.iter().enumerate() {
                results[i] = Some(put_result(&stream, shard, offset, &outcome));
            }
        }
        if closed.is_empty() {
            break;
        }
        // Again, by the map that shows the shard closed, in the batch's order.
        closed.sort_unstable();
        stream = front.serving_stream(&name).await?;
        by_shard = BTreeMap::new();
        for i in closed {
            let key = &records[i].as_ref().expect("given back").partition_key;
            match route(&stream, i, (key, explicit[i].as_deref())) {
                Ok(shard) => by_shard.entry(shard).or_default().push(i),
                Err(e) => {
                    results[i] = Some(put_result(
                        &stream,
                        0,
                        0,
                        &Err(ClientError::Failed(e.message.clone())),
                    ))
                }
            }
        }
    }
    let failed = results
        .iter()
        .filter(|r| r.as_ref().is_some_and(|r| r.error_code.is_some()))
        .count();
    Ok(PutRecordsOutput {
        failed_record_count: failed,
        records: results
            .into_iter()
            .map(|r| r.expect("every record has a result"))
            .collect(),
        encryption_type,
    })
}

/// How old a token may be for GetRecords to look for its stream in the store when this
/// node's map does not hold it (its map follows the store well within this).
const FRESH_TOKEN_MS: u64 = 10_000;

/// How many times a put refused by a closed shard is routed again (a scaling's next round
/// may close the child it went to).
const REROUTES_MAX: usize = 3;

/// A write of a shard's records: the shard, their places in the batch, the outcome, and the
/// records themselves (given back to be routed again).
type ShardOutcome = (
    u32,
    Vec<usize>,
    Result<ShardWritten, ClientError>,
    Vec<NewRecord>,
);

/// One write per shard, all at once (each on a task of its own, so a caller that goes away
/// does not cut a write off half-way): a shard's records keep their order in one entry.
async fn write_shards<B: Backend>(
    front: &ClusterFront<B>,
    stream: &StreamPlacement,
    by_shard: BTreeMap<u32, Vec<usize>>,
    records: &mut [Option<NewRecord>],
) -> Vec<ShardOutcome> {
    let writes: Vec<_> = by_shard
        .into_iter()
        .map(|(shard, indexes)| {
            let batch: Vec<NewRecord> = indexes
                .iter()
                .map(|&i| records[i].take().expect("each record routed once"))
                .collect();
            let (node, stream) = (front.node.clone(), stream.clone());
            let write = tokio::spawn(async move {
                let outcome = node.put(&stream, shard, &batch).await;
                (outcome, batch)
            });
            (shard, indexes, write)
        })
        .collect();
    let mut outcomes = Vec::with_capacity(writes.len());
    for (shard, indexes, write) in writes {
        let (outcome, batch) = write.await.unwrap_or_else(|e| {
            let failed = ClientError::Failed(format!("the write's task: {e}"));
            (Err(failed), Vec::new())
        });
        outcomes.push((shard, indexes, outcome, batch));
    }
    outcomes
}

/// The result of the record at `offset` of a shard's write.
fn put_result(
    stream: &StreamPlacement,
    shard: u32,
    offset: usize,
    outcome: &Result<ShardWritten, ClientError>,
) -> PutRecordsResultEntry {
    match outcome {
        Ok(written) => PutRecordsResultEntry {
            sequence_number: Some(incarnation(stream).tag(sluice_core::SequenceNumber::new(
                shard,
                written.base_seq + offset as u64,
            ))),
            shard_id: Some(ShardId::new(shard)),
            error_code: None,
            error_message: None,
        },
        Err(error) => PutRecordsResultEntry {
            sequence_number: None,
            shard_id: None,
            error_code: Some("InternalFailure"),
            error_message: Some(format!("The record was not acknowledged: {error}")),
        },
    }
}

/// Shard `shard` of `stream`, if the stream has it and it is retained (one whose records
/// may all have expired is listed no more: as Kinesis, no new iterator on it).
fn check_shard(stream: &StreamPlacement, shard: u32) -> Result<(), ApiError> {
    let now = now_ms();
    if (stream.shards.iter()).any(|s| s.index == shard && retained(stream, s, now)) {
        return Ok(());
    }
    Err(ReadError::ShardNotFound {
        stream: stream.name.clone(),
        shard: ShardId::new(shard).to_string(),
    }
    .into())
}

/// Reads the shard through this node (its replica, or a replica's node).
pub(super) async fn read<B: Backend>(
    front: &ClusterFront<B>,
    stream: &StreamPlacement,
    shard: u32,
    request: ReadRequest,
) -> Result<ReadReply, ApiError> {
    front
        .node
        .read(stream, shard, request)
        .await
        .map_err(|e| ApiError::internal(format!("The shard could not be read: {e}")))
}

pub async fn get_shard_iterator<B: Backend>(
    front: &ClusterFront<B>,
    input: GetShardIteratorInput,
) -> Result<GetShardIteratorOutput, ApiError> {
    let name = front
        .tenant
        .resolve(&input.stream_name, &input.stream_arn)?;
    let stream = front.serving_stream(&name).await?;
    let shard = retained_shard(&stream, input.shard_id.as_deref().expect("validated"))?;
    let start = iterator_start(
        input.shard_iterator_type.as_deref().expect("validated"),
        input.starting_sequence_number.as_deref(),
        input.timestamp,
        (&name, incarnation(&stream)),
    )?;
    let text = input
        .starting_sequence_number
        .as_deref()
        .unwrap_or_default();
    let next_seq = place(front, &stream, shard, (start, text)).await?;
    Ok(GetShardIteratorOutput {
        shard_iterator: front.tokens.issue(Position {
            stream_uid: stream.uid,
            shard,
            next_seq,
            issued_ms: now_ms(),
        }),
    })
}

/// The index of the shard `text` names, which `stream` must have and retain.
pub(super) fn retained_shard(stream: &StreamPlacement, text: &str) -> Result<u32, ApiError> {
    let shard = sluice_core::seqnum::parse_shard_id(text).ok_or_else(|| {
        ApiError::from(ReadError::ShardNotFound {
            stream: stream.name.clone(),
            shard: text.to_owned(),
        })
    })?;
    check_shard(stream, shard)?;
    Ok(shard)
}

/// The log number a read of `shard` from `start` begins at, placed by a replica (a number
/// given, `text` as the client spelled it, must be of this shard and one it reached).
pub(super) async fn place<B: Backend>(
    front: &ClusterFront<B>,
    stream: &StreamPlacement,
    shard: u32,
    (start, text): (IteratorStart, &str),
) -> Result<u64, ApiError> {
    let mut given = None;
    let from = match start {
        IteratorStart::TrimHorizon => ReadFrom::TrimHorizon,
        IteratorStart::Latest => ReadFrom::Latest,
        IteratorStart::AtTimestamp(ms) => ReadFrom::Timestamp(ms),
        IteratorStart::AtSequenceNumber(number) | IteratorStart::AfterSequenceNumber(number) => {
            if number.shard_index() != Some(shard) {
                return Err(ApiError::invalid_argument(format!(
                    "StartingSequenceNumber {text} used in GetShardIterator on shard {} is invalid because it did not come from this shard.",
                    ShardId::new(shard)
                )));
            }
            given = Some(number);
            ReadFrom::Position(match start {
                IteratorStart::AtSequenceNumber(_) => number.log_seq(),
                _ => number.position_after(),
            })
        }
    };
    let placed = ReadRequest {
        from,
        records_max: 0,
        bytes_max: None,
    };
    let placed = read(front, stream, shard, placed).await?;
    if let Some(number) = given
        && placed.from > placed.end
    {
        // Not a position of the shard (as single-node mode answers).
        return Err(ReadError::InvalidStartingSequenceNumber {
            sequence_number: number,
            shard: ShardId::new(shard),
            next: sluice_core::SequenceNumber::new(shard, placed.end),
        }
        .into());
    }
    Ok(placed.from)
}

/// GetRecords' Limit: at most Kinesis' 10,000 (the default).
fn read_limit(limit: Option<i64>) -> Result<usize, ApiError> {
    match limit {
        Some(limit) if limit as usize > GET_RECORDS_MAX => Err(ReadError::LimitOutOfRange {
            limit: limit as usize,
            max: GET_RECORDS_MAX,
        }
        .into()),
        Some(limit) => Ok(limit as usize),
        None => Ok(GET_RECORDS_MAX),
    }
}

/// The stream of uid `uid` in `streams`; gone or being deleted since the iterator was made
/// is ResourceNotFoundException.
pub(super) fn stream_of<'m, B: Backend>(
    front: &ClusterFront<B>,
    streams: &'m BTreeMap<String, Versioned<StreamPlacement>>,
    uid: u64,
    token: &str,
) -> Result<&'m StreamPlacement, ApiError> {
    streams
        .values()
        .map(|s| &s.value)
        .find(|s| s.uid == uid && s.status != StreamStatus::Deleting)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "The stream of shard iterator {token} under account {} no longer exists.",
                front.tenant.account
            ))
        })
}

/// The shards split or merged from shard `parent`, as GetRecords names them at its end (but
/// one that expired since: it can no longer be read).
pub(super) fn children_of(stream: &StreamPlacement, parent: u32) -> Vec<ChildShard> {
    let now = now_ms();
    stream
        .shards
        .iter()
        .filter(|s| s.parents.contains(&parent) && retained(stream, s, now))
        .map(|child| ChildShard {
            shard_id: ShardId::new(child.index).to_string(),
            parent_shards: child
                .parents
                .iter()
                .map(|p| ShardId::new(*p).to_string())
                .collect(),
            hash_key_range: HashKeyRange {
                starting_hash_key: child.starting_hash_key.to_string(),
                ending_hash_key: child.ending_hash_key.to_string(),
            },
        })
        .collect()
}

/// GetRecords encodes its reply itself (the records borrow the read's buffers).
pub async fn get_records<B: Backend>(
    front: &ClusterFront<B>,
    input: GetRecordsInput,
    protocol: Protocol,
) -> Result<Vec<u8>, ApiError> {
    let token = input.shard_iterator.expect("validated");
    let position = front.tokens.open(&token, now_ms())?;
    let limit = read_limit(input.limit)?;
    let map = front.node.map();
    let fresh;
    let stream = match stream_of(front, &map.streams, position.stream_uid, &token) {
        Ok(stream) => stream,
        // A token made a moment ago on a node whose map is ahead of this one's (a stream
        // just made)? The store says; an older token's stream is gone, without reading the
        // whole map for every call a client repeats.
        Err(_) if now_ms().saturating_sub(position.issued_ms) < FRESH_TOKEN_MS => {
            fresh = front.streams_now().await?;
            stream_of(front, &fresh, position.stream_uid, &token)?
        }
        Err(gone) => return Err(gone),
    };
    if let Some(arn) = &input.stream_arn
        && front.tenant.resolve(&None, &Some(arn.clone()))? != stream.name
    {
        return Err(ApiError::invalid_argument(format!(
            "StreamARN {arn} does not match the shard iterator's stream."
        )));
    }
    let shard = stream.shards.iter().find(|s| s.index == position.shard);
    let ending = shard.and_then(|s| s.ending_seq);
    // A shard whose records have all expired (its replicas may be gone): an iterator taken
    // before goes on to its end and its children.
    let expired = shard.is_some_and(|s| !retained(stream, s, now_ms()));
    let request = ReadRequest {
        from: ReadFrom::Position(position.next_seq),
        records_max: limit,
        bytes_max: None,
    };
    let ended_at = match ending {
        Some(end) if position.next_seq >= end || expired => Some(position.next_seq.max(end)),
        None if expired => Some(position.next_seq),
        _ => None,
    };
    let mut reply = match ended_at {
        // At a closed shard's end, or anywhere in an expired one, the map answers: its
        // group need not be asked (it may have lost its quorum since, or be gone).
        Some(at) => ReadReply {
            records: Vec::new(),
            from: at,
            next: at,
            end: at,
            latest_timestamp_ms: 0,
        },
        _ => read(front, stream, position.shard, request).await?,
    };
    front
        .keys
        .open_records(&stream.name, &mut reply.records)
        .await?;
    let records = records_out(incarnation(stream), position.shard, &reply.records);
    let next_seq = reply.next;
    let millis_behind_latest = millis_behind(&reply);
    // A closed shard read to its end: no next iterator, its children instead.
    let ended = ended_at.is_some() || ending.is_some_and(|end| next_seq >= end);
    let output = GetRecordsOutput {
        records,
        next_shard_iterator: (!ended).then(|| {
            front.tokens.issue(Position {
                next_seq,
                issued_ms: now_ms(),
                ..position
            })
        }),
        millis_behind_latest,
        child_shards: if ended {
            children_of(stream, position.shard)
        } else {
            vec![]
        },
    };
    Ok(crate::reads::encode_with_records(protocol, output))
}

/// `records` of shard `shard` as a reply lists them (borrowing their data).
pub(super) fn records_out(
    incarnation: Incarnation,
    shard: u32,
    records: &[ReadRecord],
) -> Vec<RecordOut<'_>> {
    records
        .iter()
        .map(|r| RecordOut {
            sequence_number: incarnation.tag(sluice_core::SequenceNumber::new(shard, r.seq)),
            approximate_arrival_timestamp: Timestamp::from_ms(r.timestamp_ms),
            data: Cow::Borrowed(&r.data),
            partition_key: std::str::from_utf8(&r.key).unwrap_or_default(),
            encryption_type: encryption_type(r.flags & RECORD_FLAG_ENCRYPTED != 0),
        })
        .collect()
}

/// How far behind the replica's newest record a read ends (0 when it reached it).
pub(super) fn millis_behind(reply: &ReadReply) -> u64 {
    match reply.records.last() {
        Some(last) if reply.next < reply.end => {
            reply.latest_timestamp_ms.saturating_sub(last.timestamp_ms)
        }
        _ => 0,
    }
}
