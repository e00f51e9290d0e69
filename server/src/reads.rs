//! The read path's reply pieces that GetRecords and SubscribeToShard share: where an
//! iterator or subscription starts, records in reply form, and the children of a closed shard.

use crate::shapes::{ChildShard, hash_key_range};
use crate::tenant::Tenant;
use crate::wire::types::BlobRef;
use crate::wire::{ApiError, Incarnation, Tagged, Timestamp};
use serde::Serialize;
use sluice_core::{IteratorStart, Records, SequenceNumber};
use std::borrow::Cow;

/// The model's iterator types.
pub const ITERATOR_TYPES: [&str; 5] = [
    "AT_SEQUENCE_NUMBER",
    "AFTER_SEQUENCE_NUMBER",
    "TRIM_HORIZON",
    "LATEST",
    "AT_TIMESTAMP",
];

/// Where an iterator or subscription on stream `stream` (of `incarnation`) starts, from the
/// wire members.
pub fn iterator_start(
    kind: &str,
    sequence_number: Option<&str>,
    timestamp: Option<Timestamp>,
    (stream, incarnation): (&str, Incarnation),
) -> Result<IteratorStart, ApiError> {
    let sequence = |what: &str| -> Result<SequenceNumber, ApiError> {
        let text = sequence_number.ok_or_else(|| {
            ApiError::invalid_argument(format!(
                "The StartingSequenceNumber must be specified for {what}."
            ))
        })?;
        incarnation.parse(text, "StartingSequenceNumber", stream)
    };
    Ok(match kind {
        "TRIM_HORIZON" => IteratorStart::TrimHorizon,
        "LATEST" => IteratorStart::Latest,
        "AT_SEQUENCE_NUMBER" => IteratorStart::AtSequenceNumber(sequence(kind)?),
        "AFTER_SEQUENCE_NUMBER" => IteratorStart::AfterSequenceNumber(sequence(kind)?),
        "AT_TIMESTAMP" => IteratorStart::AtTimestamp(
            timestamp
                .ok_or_else(|| {
                    ApiError::invalid_argument("The Timestamp must be specified for AT_TIMESTAMP.")
                })?
                .ms,
        ),
        other => unreachable!("validated iterator type {other}"),
    })
}

/// Writes a value through its `Display`, without an intermediate `String` (sequence numbers
/// in replies: one per record).
fn display<T: std::fmt::Display, S: serde::Serializer>(
    value: &T,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

/// A blob from the log (borrowed) or decrypted from it (owned).
#[expect(
    clippy::ptr_arg,
    reason = "serde's serialize_with passes the field as declared"
)]
fn blob<S: serde::Serializer>(data: &Cow<'_, [u8]>, serializer: S) -> Result<S::Ok, S::Error> {
    BlobRef(data).serialize(serializer)
}

/// A record in a reply, borrowed from the mapped log (or decrypted into a buffer).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RecordOut<'a> {
    #[serde(serialize_with = "display")]
    sequence_number: Tagged,
    approximate_arrival_timestamp: Timestamp,
    #[serde(serialize_with = "blob")]
    data: Cow<'a, [u8]>,
    partition_key: &'a str,
    encryption_type: &'static str,
}

/// The records of a read of stream `stream` (of `incarnation`), ready to encode: encrypted
/// ones opened with the tenant's data keys (a copy; the others are not copied).
pub fn records_out<'r>(
    tenant: &Tenant,
    (stream, incarnation): (&str, Incarnation),
    records: &'r Records,
) -> Result<Vec<RecordOut<'r>>, ApiError> {
    records
        .records()
        .map(|r| {
            let data = match r.encrypted {
                true => Cow::Owned(tenant.data_keys.open(tenant, stream, r.data)?),
                false => Cow::Borrowed(r.data),
            };
            Ok(RecordOut {
                sequence_number: incarnation.tag(r.sequence_number),
                approximate_arrival_timestamp: Timestamp::from_ms(r.arrival_timestamp_ms),
                data,
                partition_key: r.partition_key,
                encryption_type: crate::ops::encryption_type(r.encrypted),
            })
        })
        .collect()
}

/// The children of a closed shard read to its end, in the reply's form.
pub fn child_shards(
    tenant: &Tenant,
    stream: &str,
    records: &Records,
) -> Result<Vec<ChildShard>, ApiError> {
    if records.child_shard_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut children = Vec::with_capacity(records.child_shard_ids.len());
    for id in &records.child_shard_ids {
        let page = tenant.engine.list_shards(&sluice_core::ListShards {
            stream: Some(stream.to_owned()),
            filter: after_shard_before(id),
            max_results: Some(1000),
            ..Default::default()
        })?;
        let Some(child) = page.shards.into_iter().find(|s| &s.shard_id == id) else {
            continue; // expired since
        };
        let parents = child
            .parent_shard_id
            .iter()
            .chain(child.adjacent_parent_shard_id.iter())
            .map(|id| id.to_string())
            .collect();
        children.push(ChildShard {
            hash_key_range: hash_key_range(&child),
            shard_id: child.shard_id.to_string(),
            parent_shards: parents,
        });
    }
    Ok(children)
}

/// A filter whose listing starts at shard `id` (children always follow shard 0).
fn after_shard_before(id: &str) -> Option<sluice_core::ShardFilter> {
    let index = sluice_core::seqnum::parse_shard_id(id)?;
    let previous = index.checked_sub(1)?;
    Some(sluice_core::ShardFilter::AfterShardId(
        sluice_core::ShardId::new(previous).to_string(),
    ))
}
