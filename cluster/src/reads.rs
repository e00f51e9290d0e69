//! Reading a shard from any node: this node's replica when it runs the shard's group, else a
//! node that does, asked over the peer port (`read`). The replica that serves places the start
//! (trim horizon, latest, a time, a position) and reads up to its applied entry; where a read
//! must see every acknowledged write (`Latest`, `Timestamp`, and a read that finds nothing new
//! past its position) it first passes a read barrier. Records come back owned (a copy of the
//! mapped log), the price of one path for local and forwarded reads.

use crate::raft::{ClientError, ShardClient};
use crate::transport::GroupId;
use serde::{Deserialize, Serialize};
use sluice_core::{ReadLimits, Replica};

/// Where a read starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadFrom {
    /// The oldest record kept.
    TrimHorizon,
    /// Past the last acknowledged record (after a read barrier).
    Latest,
    /// The first record at or after this time, ms since the epoch (after a read barrier).
    Timestamp(u64),
    /// This log number (raised to the trim horizon if older).
    Position(u64),
}

/// A read of one shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadRequest {
    /// Where it starts.
    pub from: ReadFrom,
    /// Most records returned; 0 only places the start (an iterator being made).
    pub records_max: usize,
    /// Most bytes of record data returned (at least one record is); GetRecords' 10 MiB when
    /// not given (and from a node that predates it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_max: Option<u64>,
}

/// One record read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadRecord {
    /// Its log number.
    pub seq: u64,
    /// Its arrival time, ms since the epoch.
    pub timestamp_ms: u64,
    /// Its partition key.
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    /// Its data.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
    /// Its flags.
    pub flags: u16,
}

/// What a read found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadReply {
    /// Where it started (the request's start, placed): past `end` only for a position the
    /// shard never reached.
    pub from: u64,
    /// The records, in log order.
    pub records: Vec<ReadRecord>,
    /// Where the next read goes on.
    pub next: u64,
    /// The replica's end: the number after its last applied record.
    pub end: u64,
    /// The newest applied record's arrival time.
    pub latest_timestamp_ms: u64,
}

/// Reads `group` from this node's `replica`.
pub(crate) async fn read_local(
    client: &ShardClient,
    group: GroupId,
    replica: &Replica,
    request: ReadRequest,
) -> Result<ReadReply, ClientError> {
    let reader = replica.reader();
    let failed = |e: sluice_core::StorageError| ClientError::Failed(e.to_string());
    let from = match request.from {
        ReadFrom::TrimHorizon => reader.trim_horizon(),
        ReadFrom::Latest => {
            client.read_barrier(group).await?;
            reader.next_seq()
        }
        ReadFrom::Timestamp(ms) => {
            client.read_barrier(group).await?;
            reader.seek_timestamp(ms).map_err(failed)?
        }
        ReadFrom::Position(position) => {
            // Nothing new here, or a start past this replica's end: it may lag the leader
            // (a start still past the end after the barrier was never a position).
            let next = reader.next_seq();
            let lagging = match request.records_max {
                0 => position > next,
                _ => position >= next,
            };
            if lagging {
                client.read_barrier(group).await?;
            }
            position.max(reader.trim_horizon())
        }
    };
    let mut reply = ReadReply {
        from,
        records: Vec::new(),
        next: from,
        end: reader.next_seq(),
        latest_timestamp_ms: reader.latest_timestamp_ms(),
    };
    if request.records_max == 0 || from >= reply.end {
        return Ok(reply);
    }
    let mut limits = ReadLimits {
        records_max: request.records_max,
        ..ReadLimits::default()
    };
    if let Some(bytes_max) = request.bytes_max {
        limits.bytes_max = bytes_max.min(limits.bytes_max);
    }
    let batch = reader.read(from, limits).map_err(failed)?;
    reply.records = batch
        .records()
        .map(|r| ReadRecord {
            seq: r.seq,
            timestamp_ms: r.timestamp_ms,
            key: r.key.to_vec(),
            data: r.data.to_vec(),
            flags: r.flags,
        })
        .collect();
    reply.next = batch.next_seq();
    Ok(reply)
}
