//! What the control plane stores: nodes and the stream map, as JSON values.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::MetaError;
pub use crate::settings::StreamSettings;

/// A store revision (etcd's: it grows by one with every write transaction).
pub type Revision = i64;

/// A node's identity in the cluster: 1 to 64 of `A-Z a-z 0-9 . _ -` (it is part of keys).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NodeId(String);

impl NodeId {
    /// Checks `id` and wraps it.
    pub fn new(id: impl Into<String>) -> Result<NodeId, MetaError> {
        let id = id.into();
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if id.is_empty() || id.len() > 64 || !id.chars().all(allowed) {
            return Err(MetaError::InvalidName {
                what: "node id",
                name: id,
            });
        }
        Ok(NodeId(id))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number the node goes by in Raft groups (openraft's node ids are numbers): the
    /// 64-bit xxh3 hash of its id, the same on every node and across restarts.
    pub fn raft_id(&self) -> u64 {
        xxhash_rust::xxh3::xxh3_64(self.0.as_bytes())
    }
}

impl TryFrom<String> for NodeId {
    type Error = MetaError;
    fn try_from(id: String) -> Result<NodeId, MetaError> {
        NodeId::new(id)
    }
}

impl From<NodeId> for String {
    fn from(id: NodeId) -> String {
        id.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A live node, as it registered itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Its identity.
    pub id: NodeId,
    /// Where other nodes reach it (Raft traffic, forwarded requests): `host:port`.
    pub peer_address: String,
    /// Where clients reach it: the Kinesis endpoint URL.
    pub client_endpoint: String,
    /// A label (rack, zone) replicas of one shard are spread across; `None` is a domain of
    /// its own.
    pub failure_domain: Option<String>,
    /// When the process started, in ms since the Unix epoch (tells a restart from a node that
    /// never left).
    pub started_ms: u64,
}

/// Where a stream is in its life, as Kinesis names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StreamStatus {
    /// Placed, its shards' groups being started.
    Creating,
    /// Serving.
    Active,
    /// Resharding or changing settings.
    Updating,
    /// Being removed.
    Deleting,
}

/// One shard of a stream's map: its keys, lineage and the nodes holding its replicas.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardPlacement {
    /// The shard's index in its stream (`shardId-000000000007` is 7).
    pub index: u32,
    /// The lowest hash key routed to it.
    #[serde(with = "decimal")]
    pub starting_hash_key: u128,
    /// The highest hash key routed to it.
    #[serde(with = "decimal")]
    pub ending_hash_key: u128,
    /// The shards it was split or merged from.
    pub parents: Vec<u32>,
    /// The nodes holding a replica, the preferred leader first.
    pub replicas: Vec<NodeId>,
    /// Bumped whenever the replica set changes: a node acting on an older map refuses.
    pub epoch: u64,
    /// Closed by a split or merge: read-only.
    pub closed: bool,
    /// A closed shard's end: the log number of its close entry (every record of the shard is
    /// numbered below it). `None` while open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ending_seq: Option<u64>,
    /// When the controller recorded it closed, in ms since the Unix epoch (its children
    /// opened then). `None` while open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_ms: Option<u64>,
    /// A closed shard whose records have all expired (retention passed since `closed_ms`):
    /// no replica holds it any more (`replicas` is empty), nothing lists it, and an iterator
    /// taken before answers its end and its children. It keeps its place (indexes are
    /// positions) and its lineage.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub expired: bool,
}

/// A reshard the controller has begun: the parents being closed and the children placed for
/// them, not yet in the stream's shards (no node starts them before the parents are closed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resharding {
    /// The shards being closed.
    pub parents: Vec<u32>,
    /// The shards that replace them, placed.
    pub children: Vec<ShardPlacement>,
    /// UpdateShardCount's target: further rounds follow until the open shards are its
    /// uniform ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<u32>,
}

/// A stream in the map.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamPlacement {
    /// Never reused, also across deletions (from the store's `uid-next`).
    pub uid: u64,
    /// The stream's name (1 to 128 of `A-Z a-z 0-9 . _ -`).
    pub name: String,
    /// Its state.
    pub status: StreamStatus,
    /// Copies of each shard.
    pub replication: u8,
    /// Every shard, open and closed, by index.
    pub shards: Vec<ShardPlacement>,
    /// When the controller created it, in ms since the Unix epoch (Kinesis'
    /// StreamCreationTimestamp; 0 in maps written before it was kept).
    #[serde(default)]
    pub created_ms: u64,
    /// Retention, capacity mode and tags (their defaults in maps written before them).
    #[serde(default)]
    pub settings: StreamSettings,
    /// The reshard under way, while the stream is `UPDATING` for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resharding: Option<Resharding>,
}

impl StreamPlacement {
    /// Checks the name before it becomes part of a key.
    pub fn check_name(name: &str) -> Result<(), MetaError> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if name.is_empty() || name.len() > 128 || !name.chars().all(allowed) {
            return Err(MetaError::InvalidName {
                what: "stream name",
                name: name.to_owned(),
            });
        }
        Ok(())
    }
}

/// A value with the revision that last wrote it: what a change must name to replace it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Versioned<T> {
    /// The value.
    pub value: T,
    /// The revision of its last write.
    pub revision: Revision,
}

/// Hash keys as decimal strings: Kinesis' own rendering, and safe for JSON readers that hold
/// numbers as doubles.
mod decimal {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &u128, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u128, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_are_checked() {
        assert!(NodeId::new("node-1.rack_a").is_ok());
        for bad in ["", "a/b", "a b", &"x".repeat(65)] {
            assert!(
                matches!(NodeId::new(bad), Err(MetaError::InvalidName { .. })),
                "{bad:?}"
            );
        }
        let parsed: Result<NodeId, _> = serde_json::from_str("\"../etc\"");
        assert!(
            parsed.is_err(),
            "a bad id in the store is refused when read"
        );
    }

    #[test]
    fn a_placement_reads_back_with_hash_keys_as_decimal_text() {
        let shard = ShardPlacement {
            index: 3,
            starting_hash_key: 0,
            ending_hash_key: u128::MAX,
            parents: vec![1, 2],
            replicas: vec![NodeId::new("a").unwrap(), NodeId::new("b").unwrap()],
            epoch: 4,
            closed: false,
            ending_seq: None,
            closed_ms: None,
            expired: false,
        };
        let stream = StreamPlacement {
            uid: 9,
            name: "orders".into(),
            status: StreamStatus::Active,
            replication: 2,
            shards: vec![shard],
            created_ms: 0,
            settings: StreamSettings::default(),
            resharding: None,
        };
        let json = serde_json::to_string(&stream).unwrap();
        assert!(
            json.contains("\"ending_hash_key\":\"340282366920938463463374607431768211455\""),
            "{json}"
        );
        assert!(json.contains("\"status\":\"ACTIVE\""), "{json}");
        assert_eq!(
            serde_json::from_str::<StreamPlacement>(&json).unwrap(),
            stream
        );
        assert!(StreamPlacement::check_name("a/b").is_err());
        assert!(StreamPlacement::check_name("orders-2024.v1_x").is_ok());
    }
}
