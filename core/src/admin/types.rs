//! The requests and answers of stream administration.

use crate::catalog::{ShardState, StreamSettings};
use crate::hashkey::HashKeyRange;
use crate::limits::ON_DEMAND_SHARDS_INITIAL;
use crate::seqnum::{SequenceNumber, ShardId};

/// Capacity mode of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamMode {
    /// A fixed shard count, changed by resharding.
    Provisioned,
    /// Sluice starts it with four shards; manual resharding is refused.
    OnDemand,
}

/// Lifecycle state. The library applies changes synchronously, so streams it reports are
/// `Active`; the others exist for the wire protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamStatus {
    /// Being created.
    Creating,
    /// Usable.
    Active,
    /// Being changed; still readable and writable.
    Updating,
    /// Being deleted.
    Deleting,
}

/// A stream to create.
#[derive(Debug, Clone)]
pub struct CreateStream {
    /// `[a-zA-Z0-9_.-]{1,128}`.
    pub name: String,
    /// Shards of a provisioned stream (1..=10,000). Ignored for on-demand streams.
    pub shard_count: u32,
    /// Capacity mode.
    pub mode: StreamMode,
    /// Largest record, partition key included (1..=10 MiB; 1 MiB by default).
    pub max_record_size_bytes: Option<u64>,
    /// Up to 50 tags.
    pub tags: Vec<(String, String)>,
}

impl CreateStream {
    /// A provisioned stream of `shard_count` shards.
    pub fn provisioned(name: impl Into<String>, shard_count: u32) -> CreateStream {
        CreateStream {
            name: name.into(),
            shard_count,
            mode: StreamMode::Provisioned,
            max_record_size_bytes: None,
            tags: Vec::new(),
        }
    }

    /// An on-demand stream.
    pub fn on_demand(name: impl Into<String>) -> CreateStream {
        CreateStream {
            mode: StreamMode::OnDemand,
            ..CreateStream::provisioned(name, ON_DEMAND_SHARDS_INITIAL)
        }
    }
}

/// One shard as `describe_stream` and `list_shards` report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardDescription {
    /// `shardId-` and 12 digits.
    pub shard_id: ShardId,
    /// The shard it was split from or merged from.
    pub parent_shard_id: Option<ShardId>,
    /// The other parent of a merge.
    pub adjacent_parent_shard_id: Option<ShardId>,
    /// Hash keys routed to it while open.
    pub hash_key_range: HashKeyRange,
    /// Its starting sequence number: below every record it holds.
    pub starting_sequence_number: SequenceNumber,
    /// Once closed: the number of its last record (its starting number if it held none).
    pub ending_sequence_number: Option<SequenceNumber>,
}

/// `describe_stream`'s answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamDescription {
    /// Name.
    pub name: String,
    /// Status.
    pub status: StreamStatus,
    /// Mode.
    pub mode: StreamMode,
    /// Creation time, ms since the epoch.
    pub created_ms: u64,
    /// Retention.
    pub retention_hours: u32,
    /// Largest record.
    pub max_record_size_bytes: u64,
    /// A page of shards, by shard id.
    pub shards: Vec<ShardDescription>,
    /// More shards follow the page.
    pub has_more_shards: bool,
}

/// The disk one shard takes (`Stream::disk_space`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShardSpace {
    /// The shard.
    pub shard: ShardId,
    /// Closed by a reshard: it takes no more records and goes once they expire.
    pub closed: bool,
    /// Its segment files.
    pub space: sluice_storage::LogSpace,
}

/// `describe_stream_summary`'s answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSummary {
    /// Name.
    pub name: String,
    /// Status.
    pub status: StreamStatus,
    /// Mode.
    pub mode: StreamMode,
    /// Creation time, ms since the epoch.
    pub created_ms: u64,
    /// Retention.
    pub retention_hours: u32,
    /// Largest record.
    pub max_record_size_bytes: u64,
    /// Shards open for writes.
    pub open_shard_count: usize,
}

/// `list_streams`' answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamPage {
    /// Names, in order.
    pub names: Vec<String>,
    /// More names follow.
    pub has_more: bool,
}

/// Which shards `list_shards` returns (Kinesis' `ShardFilter`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardFilter {
    /// Shards after this shard id.
    AfterShardId(String),
    /// Shards that were open at the trim horizon: those with no retained parent.
    AtTrimHorizon,
    /// Every shard whose data is retained (the default).
    FromTrimHorizon,
    /// Open shards.
    AtLatest,
    /// Shards open at this time (ms since the epoch).
    AtTimestamp(u64),
    /// Shards open at or after this time.
    FromTimestamp(u64),
}

/// A `list_shards` request: a stream and options, or the token of the previous page.
#[derive(Debug, Clone, Default)]
pub struct ListShards {
    /// The stream (not with `next_token`).
    pub stream: Option<String>,
    /// The previous page's token (not with `stream`).
    pub next_token: Option<String>,
    /// Start after this shard id.
    pub exclusive_start_shard_id: Option<String>,
    /// Page size, 1..=1000 (1000 by default).
    pub max_results: Option<usize>,
    /// Which shards.
    pub filter: Option<ShardFilter>,
}

/// `list_shards`' answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardPage {
    /// Shards by id.
    pub shards: Vec<ShardDescription>,
    /// Pass it back for the next page; `None` on the last page. Expires like an iterator.
    pub next_token: Option<String>,
    /// The stream the shards belong to (a page asked for by token names none).
    pub stream: String,
    /// When that stream was created: tells it from an earlier stream of the same name.
    pub stream_created_ms: u64,
}

pub(crate) fn describe_shard(shard: &ShardState) -> ShardDescription {
    ShardDescription {
        shard_id: shard.id,
        parent_shard_id: shard.parent.map(ShardId::new),
        adjacent_parent_shard_id: shard.adjacent_parent.map(ShardId::new),
        hash_key_range: shard.range,
        starting_sequence_number: SequenceNumber::shard_start(shard.index),
        ending_sequence_number: shard
            .ending_log_seq
            .map(|end| SequenceNumber::last_before(shard.index, end)),
    }
}

pub(super) fn mode_of(settings: &StreamSettings) -> StreamMode {
    if settings.on_demand {
        StreamMode::OnDemand
    } else {
        StreamMode::Provisioned
    }
}
