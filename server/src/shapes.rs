//! Reply shapes shared by several operations.

use crate::wire::{Incarnation, Timestamp};
use serde::{Deserialize, Serialize};
use sluice_core::{ShardDescription, StreamMode, StreamStatus};

/// `{"StreamMode": ...}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamModeDetails {
    /// `PROVISIONED` or `ON_DEMAND`.
    pub stream_mode: Option<String>,
}

/// The model's names for the modes.
pub const STREAM_MODES: [&str; 2] = ["PROVISIONED", "ON_DEMAND"];

impl StreamModeDetails {
    /// The reply form of a mode.
    pub fn of(mode: StreamMode) -> StreamModeDetails {
        let name = match mode {
            StreamMode::Provisioned => "PROVISIONED",
            StreamMode::OnDemand => "ON_DEMAND",
        };
        StreamModeDetails {
            stream_mode: Some(name.to_owned()),
        }
    }

    /// The mode asked for (validated against [`STREAM_MODES`] before).
    pub fn mode(&self) -> Option<StreamMode> {
        match self.stream_mode.as_deref() {
            Some("ON_DEMAND") => Some(StreamMode::OnDemand),
            Some("PROVISIONED") => Some(StreamMode::Provisioned),
            _ => None,
        }
    }
}

/// The wire name of a status.
pub fn status_name(status: StreamStatus) -> &'static str {
    match status {
        StreamStatus::Creating => "CREATING",
        StreamStatus::Active => "ACTIVE",
        StreamStatus::Updating => "UPDATING",
        StreamStatus::Deleting => "DELETING",
    }
}

/// `{"StartingHashKey", "EndingHashKey"}`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HashKeyRange {
    /// Decimal.
    pub starting_hash_key: String,
    /// Decimal.
    pub ending_hash_key: String,
}

/// `{"StartingSequenceNumber", "EndingSequenceNumber"?}`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SequenceNumberRange {
    /// First number the shard can hold.
    pub starting_sequence_number: String,
    /// Its last number, once closed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ending_sequence_number: Option<String>,
}

/// A shard in DescribeStream and ListShards.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Shard {
    /// `shardId-000000000000`.
    pub shard_id: String,
    /// The shard it came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_shard_id: Option<String>,
    /// The other parent of a merge.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adjacent_parent_shard_id: Option<String>,
    /// Its keys.
    pub hash_key_range: HashKeyRange,
    /// Its numbers.
    pub sequence_number_range: SequenceNumberRange,
}

impl Shard {
    /// The reply form of an engine shard description, of a stream of `incarnation`.
    pub fn of(shard: &ShardDescription, incarnation: Incarnation) -> Shard {
        Shard {
            shard_id: shard.shard_id.to_string(),
            parent_shard_id: shard.parent_shard_id.map(String::from),
            adjacent_parent_shard_id: shard.adjacent_parent_shard_id.map(String::from),
            hash_key_range: hash_key_range(shard),
            sequence_number_range: SequenceNumberRange {
                starting_sequence_number: incarnation
                    .tag(shard.starting_sequence_number)
                    .to_string(),
                ending_sequence_number: shard
                    .ending_sequence_number
                    .map(|s| incarnation.tag(s).to_string()),
            },
        }
    }
}

/// The reply form of a shard's key range.
pub fn hash_key_range(shard: &ShardDescription) -> HashKeyRange {
    HashKeyRange {
        starting_hash_key: shard.hash_key_range.start.to_string(),
        ending_hash_key: shard.hash_key_range.end.to_string(),
    }
}

/// A child shard at the end of a closed one.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ChildShard {
    /// The child.
    pub shard_id: String,
    /// Its parents.
    pub parent_shards: Vec<String>,
    /// Its keys.
    pub hash_key_range: HashKeyRange,
}

/// `{"Key", "Value"}`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    /// Key.
    pub key: String,
    /// Value.
    pub value: String,
}

/// An empty reply (`{}`), or the input of an operation without members.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Empty {}

/// A timestamp in ms as its reply form.
pub fn timestamp(ms: u64) -> Timestamp {
    Timestamp::from_ms(ms)
}
