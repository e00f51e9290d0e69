//! A Raft entry and the storage batch that holds it: one entry, one batch. Record entries are
//! the batch itself; blank, membership and close entries are control batches (an empty body
//! for a blank entry, JSON for the others). A client's write the leader's log refuses (a key
//! too long, a record too large, no record) becomes a control entry naming the refusal, so a
//! bad write is answered with its reason and never stops the group.

use super::ShardRaft;
use openraft::{BasicNode, CommittedLeaderId, Entry, EntryPayload, LogId, Membership};
use serde::{Deserialize, Serialize};
use sluice_core::{EncodedBatch, EntryId};
use sluice_storage::format::{BatchHeader, RECORD_HEADER_LEN, control_body};

/// One record of a client's write, as the leader receives it (not numbered yet).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewRecord {
    /// Its partition key (the engine checks its length).
    pub partition_key: String,
    /// Its payload.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
    /// Record flags (`sluice_storage::RECORD_FLAG_ENCRYPTED`).
    pub flags: u16,
}

/// The application data of a shard's Raft entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShardWrite {
    /// Records a client wrote, handed to the leader's Raft group: its log numbers them and
    /// gives them their arrival time when it appends the entry.
    New(Vec<NewRecord>),
    /// An entry as a log holds it: the whole storage batch, numbers and times included. Logs
    /// read entries back in this form, so a leader ships its batch and followers append it
    /// as received (record-identical replicas). Only logs make these: clients write `New`
    /// ([`ShardClient`](super::ShardClient) does); a batch handed to `client_write` does not
    /// match the entry the leader makes of it and fails the group's storage.
    Stored(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Closes the shard for a reshard: applying it ends the shard at this entry; a write
    /// applied after it is refused with `CLOSED` and never readable.
    Close,
}

/// The refusal of a write applied after the shard's close entry.
pub const CLOSED: &str = "the shard was closed by a reshard";

/// What applying an entry answers: where its records landed (no records for blank and
/// membership entries), or why the leader's log refused them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardWritten {
    /// Sequence number of the first record; record *i* has `base_seq + i`.
    pub base_seq: u64,
    /// Records in the entry.
    pub record_count: u32,
    /// Arrival time the leader gave them, ms since the Unix epoch.
    pub timestamp_ms: u64,
    /// Why the leader's log refused the write (nothing of it was written).
    pub refused: Option<String>,
}

/// The body of a control entry other than a blank one.
#[derive(Serialize, Deserialize)]
enum Control {
    Membership(Membership<u64, BasicNode>),
    Refused(String),
    Closed,
}

/// A control entry standing for a client's write the leader's log refused.
pub(super) fn refused_entry(reason: &str) -> EncodedBatch {
    let body =
        serde_json::to_vec(&Control::Refused(reason.to_string())).expect("a refusal encodes");
    EncodedBatch::control(&body)
}

/// The Raft log id of a stored entry.
pub(super) fn log_id_of(entry: EntryId) -> LogId<u64> {
    LogId::new(
        CommittedLeaderId::new(entry.term, entry.leader),
        entry.index,
    )
}

/// The storage entry id of a Raft log id.
pub(super) fn entry_id_of(log_id: &LogId<u64>) -> EntryId {
    EntryId {
        term: log_id.leader_id.term,
        leader: log_id.leader_id.node_id,
        index: log_id.index,
    }
}

/// An entry to append: a new one the log stamps (a client's records as the leader appends
/// them, a blank or membership entry) or one as the leader's log holds it.
pub(super) enum ToAppend {
    New(EncodedBatch, EntryId),
    Received(Vec<u8>),
}

/// How `entry` goes into the log.
pub(super) fn to_append(entry: Entry<ShardRaft>) -> Result<ToAppend, String> {
    let id = entry_id_of(&entry.log_id);
    match entry.payload {
        EntryPayload::Blank => Ok(ToAppend::New(EncodedBatch::control(&[]), id)),
        EntryPayload::Membership(membership) => {
            let body =
                serde_json::to_vec(&Control::Membership(membership)).map_err(|e| e.to_string())?;
            Ok(ToAppend::New(EncodedBatch::control(&body), id))
        }
        EntryPayload::Normal(ShardWrite::New(records)) => {
            let bytes = records
                .iter()
                .map(|r| RECORD_HEADER_LEN + r.partition_key.len() + r.data.len() + 7)
                .sum();
            let mut batch = EncodedBatch::entry_with_capacity(bytes);
            for record in &records {
                batch.push_flagged(record.partition_key.as_bytes(), &record.data, record.flags);
            }
            Ok(ToAppend::New(batch, id))
        }
        EntryPayload::Normal(ShardWrite::Close) => {
            let body = serde_json::to_vec(&Control::Closed).map_err(|e| e.to_string())?;
            Ok(ToAppend::New(EncodedBatch::control(&body), id))
        }
        EntryPayload::Normal(ShardWrite::Stored(bytes)) => {
            let header = BatchHeader::parse(&bytes).map_err(|e| e.0.to_string())?;
            if header.entry != Some(id) {
                return Err(format!(
                    "a stored entry's batch holds {:?}, the Raft entry is {id:?}",
                    header.entry
                ));
            }
            Ok(ToAppend::Received(bytes))
        }
    }
}

/// The Raft entry a log's batch holds (checked by the log when it was read).
pub(super) fn from_stored(bytes: Vec<u8>) -> Result<Entry<ShardRaft>, String> {
    let header = BatchHeader::parse(&bytes).map_err(|e| e.0.to_string())?;
    let id = header
        .entry
        .ok_or("a batch of a replicated log is no entry")?;
    let payload = if header.is_control() {
        let body = control_body(&bytes, &header).ok_or("a control entry's body is cut short")?;
        if body.is_empty() {
            EntryPayload::Blank
        } else {
            match serde_json::from_slice(body).map_err(|e| e.to_string())? {
                Control::Membership(membership) => EntryPayload::Membership(membership),
                // A refused write and a close stay writes: the leader ships them as stored,
                // and applying them answers the refusal or the shard's end.
                Control::Refused(_) | Control::Closed => {
                    EntryPayload::Normal(ShardWrite::Stored(bytes))
                }
            }
        }
    } else {
        EntryPayload::Normal(ShardWrite::Stored(bytes))
    };
    Ok(Entry {
        log_id: log_id_of(id),
        payload,
    })
}

/// Where a stored entry's records landed, or why they were refused; and whether it is a
/// close entry (its number is the shard's end).
pub(super) fn written(bytes: &[u8]) -> Result<(ShardWritten, bool), String> {
    let header = BatchHeader::parse(bytes).map_err(|e| e.0.to_string())?;
    let control = match control_body(bytes, &header) {
        Some(body) if !body.is_empty() => serde_json::from_slice(body).ok(),
        _ => None,
    };
    let closes = matches!(control, Some(Control::Closed));
    let refused = match control {
        Some(Control::Refused(reason)) => Some(reason),
        _ => None,
    };
    let written = ShardWritten {
        base_seq: header.base_seq,
        record_count: header.record_count,
        timestamp_ms: header.max_timestamp_ms,
        refused,
    };
    Ok((written, closes))
}
