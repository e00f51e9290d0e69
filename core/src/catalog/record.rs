//! What the metadata log stores: whole stream records, so one entry is one atomic change.

/// One metadata log entry.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, Clone, PartialEq)]
pub(crate) enum MetaEntry {
    /// The stream as it is now (created or changed).
    Upsert(StreamRecord),
    /// The stream with this uid is gone.
    Delete {
        /// Its uid.
        uid: u64,
    },
    /// Uids below this were issued (kept by compaction, so deleted streams' uids, which
    /// tokens may still name, are never issued again).
    UidFloor {
        /// The next uid to issue, at least.
        next_uid: u64,
    },
}

/// A stream's durable state.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, Clone, PartialEq)]
pub(crate) struct StreamRecord {
    /// Never reused while the stream's directory exists; names its directory.
    pub uid: u64,
    pub name: String,
    pub on_demand: bool,
    pub retention_hours: u32,
    pub max_record_size_bytes: u64,
    pub created_ms: u64,
    /// Sorted by key.
    pub tags: Vec<(String, String)>,
    /// By shard index.
    pub shards: Vec<ShardRecord>,
}

/// A shard's durable state.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, Clone, PartialEq)]
pub(crate) struct ShardRecord {
    pub index: u32,
    pub hash_start: u128,
    pub hash_end: u128,
    pub parent: Option<u32>,
    pub adjacent_parent: Option<u32>,
    pub created_ms: u64,
    /// Log position after the shard's last record, once it is closed.
    pub ending_log_seq: Option<u64>,
    /// When it was closed.
    pub closed_ms: Option<u64>,
}
