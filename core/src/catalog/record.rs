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
    /// These closed shards of stream `uid` lost every record to retention; their files are
    /// removed (docs/design/resharding.md, "Expired shards"). Sticky: a later `Upsert` of the
    /// stream does not bring them back. (A variant added after the first release: new
    /// variants go last and stay no larger than `Upsert`, so older logs still decode.)
    ShardsExpired {
        /// The stream.
        uid: u64,
        /// The shards, each with its ending (which an `Upsert` may not have recorded yet).
        shards: Vec<ExpiredShard>,
    },
}

/// A shard whose records all expired, and where it ended.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, Clone, Copy, PartialEq)]
pub(crate) struct ExpiredShard {
    pub index: u32,
    pub ending_log_seq: u64,
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

#[cfg(test)]
mod format_tests {
    use super::*;

    /// Entries as the first release wrote them (rkyv bytes, hex): a metadata log written then
    /// must still replay, so a change to these types may add enum variants no larger than
    /// the largest one, and nothing else.
    const WRITTEN_BY_0_1: [&str; 3] = [
        concat!(
            "7465616dffffffff7061796d656e747300000000000000000000000000000000000000000000000000000000",
            "00000000ffffffffffffffffffffffffffffffff000000000000000000000000000000000068e5cf8b010000",
            "01000000000000002a000000000000000100000000000000a0eee6cf8b010000000000000000000001000000",
            "00000000000000000000000000000000000000000000000000000000ffffffffffffffffffffffffffffff7f",
            "01000000000000000000000000000000a0eee6cf8b0100000000000000000000000000000000000000000000",
            "0000000000000000000000000000000000000000000000000000000007000000000000006f7264657273ffff",
            "000000003000000000001000000000000068e5cf8b010000e0feffff01000000e8feffff02000000",
        ),
        concat!(
            "0100000000000000090000000000000000000000000000000000000000000000000000000000000000000000",
            "0000000000000000000000000000000000000000",
        ),
        concat!(
            "02000000000000000c0000000000000000000000000000000000000000000000000000000000000000000000",
            "0000000000000000000000000000000000000000",
        ),
    ];

    fn samples() -> Vec<MetaEntry> {
        let shard = |index, hash_end, parent, ending_log_seq, closed_ms, created_ms| ShardRecord {
            index,
            hash_start: 0,
            hash_end,
            parent,
            adjacent_parent: None,
            created_ms,
            ending_log_seq,
            closed_ms,
        };
        vec![
            MetaEntry::Upsert(StreamRecord {
                uid: 7,
                name: "orders".into(),
                on_demand: false,
                retention_hours: 48,
                max_record_size_bytes: 1 << 20,
                created_ms: 1_700_000_000_000,
                tags: vec![("team".into(), "payments".into())],
                shards: vec![
                    shard(
                        0,
                        u128::MAX,
                        None,
                        Some(42),
                        Some(1_700_000_100_000),
                        1_700_000_000_000,
                    ),
                    shard(1, u128::MAX / 2, Some(0), None, None, 1_700_000_100_000),
                ],
            }),
            MetaEntry::Delete { uid: 9 },
            MetaEntry::UidFloor { next_uid: 12 },
        ]
    }

    #[test]
    fn new_variants_leave_the_entry_size_as_the_first_release_wrote_it() {
        // rkyv finds an entry's root at a fixed distance from its end: the archived size
        // must not change, or every older entry decodes wrongly.
        assert_eq!(size_of::<ArchivedMetaEntry>(), WRITTEN_BY_0_1[1].len() / 2);
        let entry = MetaEntry::ShardsExpired {
            uid: 7,
            shards: vec![ExpiredShard {
                index: 3,
                ending_log_seq: 99,
            }],
        };
        let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&entry).unwrap();
        let decoded = rkyv::from_bytes::<MetaEntry, rkyv::rancor::Error>(&bytes).unwrap();
        assert_eq!(decoded, entry);
    }

    #[test]
    fn entries_written_by_the_first_release_still_decode() {
        for (hex, expected) in WRITTEN_BY_0_1.iter().zip(samples()) {
            let bytes: Vec<u8> = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            let mut aligned = rkyv::util::AlignedVec::<16>::new();
            aligned.extend_from_slice(&bytes);
            let decoded = rkyv::from_bytes::<MetaEntry, rkyv::rancor::Error>(&aligned).unwrap();
            assert_eq!(decoded, expected);
        }
    }
}
