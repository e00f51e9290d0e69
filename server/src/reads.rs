//! The read path's reply pieces that GetRecords and SubscribeToShard share: where an
//! iterator or subscription starts, records in reply form, and the children of a closed shard.

use crate::shapes::{ChildShard, hash_key_range};
use crate::tenant::Tenant;
use crate::wire::types::BlobRef;
use crate::wire::{ApiError, Incarnation, Protocol, Tagged, Timestamp};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
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
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RecordOut<'a> {
    #[serde(serialize_with = "display")]
    pub(crate) sequence_number: Tagged,
    pub(crate) approximate_arrival_timestamp: Timestamp,
    #[serde(serialize_with = "blob")]
    pub(crate) data: Cow<'a, [u8]>,
    pub(crate) partition_key: &'a str,
    pub(crate) encryption_type: &'static str,
}

/// A reply whose first member is `Records` (GetRecords, a SubscribeToShardEvent).
pub trait WithRecords<'a>: Serialize {
    /// Its records.
    fn records_mut(&mut self) -> &mut Vec<RecordOut<'a>>;
}

/// Encodes a reply with records. CBOR goes through serde, as every reply does. JSON is serde's
/// encoding of the reply without its records, with the records written in by
/// `write_records_json`: the same bytes serde writes (a test compares them), without serde's
/// escaping pass over every byte of base64 text (which never needs escaping) and without a
/// `String` per record. Profiled: 20 consumers subscribed to 4 shards spent 14% of the server's
/// time in serde_json's string escaping and 5% allocating and freeing the base64 `String`s.
pub fn encode_with_records<'a, T: WithRecords<'a>>(protocol: Protocol, mut reply: T) -> Vec<u8> {
    if protocol == Protocol::Cbor {
        return protocol.encode(&reply);
    }
    let records = std::mem::take(reply.records_mut());
    let skeleton = protocol.encode(&reply);
    const START: &[u8] = b"{\"Records\":[";
    if !skeleton.starts_with(START) {
        // Not a reply of the expected shape (a member moved before Records): serde's way.
        debug_assert!(false, "Records is the reply's first member");
        *reply.records_mut() = records;
        return protocol.encode(&reply);
    }
    let data: usize = records
        .iter()
        .map(|r| r.data.len() * 4 / 3 + r.partition_key.len() + 140)
        .sum();
    let mut out = Vec::with_capacity(skeleton.len() + data);
    out.extend_from_slice(START);
    write_records_json(&mut out, &records);
    out.extend_from_slice(&skeleton[START.len()..]);
    out
}

/// The JSON of `records`' elements, comma-separated, exactly as serde_json writes `RecordOut`.
fn write_records_json(out: &mut Vec<u8>, records: &[RecordOut<'_>]) {
    use std::io::Write as _;
    for (i, record) in records.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // Writes into a Vec cannot fail.
        let _ = write!(
            out,
            "{{\"SequenceNumber\":\"{}\",\"ApproximateArrivalTimestamp\":",
            record.sequence_number
        );
        let _ = serde_json::to_writer(&mut *out, &record.approximate_arrival_timestamp);
        out.extend_from_slice(b",\"Data\":\"");
        let start = out.len();
        out.resize(
            start + base64::encoded_len(record.data.len(), true).expect("a record's size fits"),
            0,
        );
        let written = BASE64
            .encode_slice(&record.data, &mut out[start..])
            .expect("sized by encoded_len");
        out.truncate(start + written);
        out.extend_from_slice(b"\",\"PartitionKey\":");
        let _ = serde_json::to_writer(&mut *out, record.partition_key);
        let _ = write!(out, ",\"EncryptionType\":\"{}\"}}", record.encryption_type);
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sluice_core::SequenceNumber;

    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Reply<'a> {
        records: Vec<RecordOut<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        next_shard_iterator: Option<String>,
        millis_behind_latest: u64,
    }

    impl<'a> WithRecords<'a> for Reply<'a> {
        fn records_mut(&mut self) -> &mut Vec<RecordOut<'a>> {
            &mut self.records
        }
    }

    proptest! {
        /// The records written by hand are the bytes serde writes: any sequence number,
        /// time, data, key (quotes, backslashes, control characters, any Unicode) and
        /// encryption type; with and without the members after the records.
        #[test]
        fn hand_written_records_are_serdes_bytes(
            records in prop::collection::vec(
                (any::<u128>(), any::<u64>(), prop::collection::vec(any::<u8>(), 0..300), any::<String>(), any::<bool>()),
                0..12,
            ),
            next in prop::option::of("[A-Za-z0-9+/=]{0,40}"),
            behind in any::<u64>(),
        ) {
            let incarnation = Incarnation::of(0);
            let records: Vec<RecordOut<'_>> = records
                .iter()
                .map(|(seq, ms, data, key, encrypted)| RecordOut {
                    sequence_number: incarnation.tag(SequenceNumber(*seq)),
                    approximate_arrival_timestamp: Timestamp::from_ms(*ms),
                    data: Cow::Borrowed(data),
                    partition_key: key,
                    encryption_type: crate::ops::encryption_type(*encrypted),
                })
                .collect();
            let reply = |records| Reply { records, next_shard_iterator: next.clone(), millis_behind_latest: behind };
            let by_serde = serde_json::to_vec(&reply(records.clone())).unwrap();
            let by_hand = encode_with_records(Protocol::Json, reply(records.clone()));
            prop_assert_eq!(String::from_utf8(by_hand).unwrap(), String::from_utf8(by_serde).unwrap());
            // CBOR is serde's, untouched.
            prop_assert_eq!(encode_with_records(Protocol::Cbor, reply(records.clone())), Protocol::Cbor.encode(&reply(records)));
        }
    }
}
