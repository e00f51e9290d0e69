//! Hash-key routing, checked against MD5 values computed outside Sluice (Python's hashlib).

mod common;

use sluice_core::{PutRecord, ShardDescription};

fn shards_of(engine: &sluice_core::Engine, stream: &str) -> Vec<ShardDescription> {
    engine
        .stream(stream)
        .unwrap()
        .describe(None, None)
        .unwrap()
        .shards
}

fn shard_for(shards: &[ShardDescription], hash: u128) -> sluice_core::ShardId {
    let found: Vec<_> = shards
        .iter()
        .filter(|s| s.hash_key_range.contains(hash))
        .collect();
    assert_eq!(found.len(), 1, "exactly one shard holds {hash}");
    found[0].shard_id
}

#[test]
fn partition_keys_route_by_their_md5_to_the_shard_whose_range_holds_it() {
    let dir = tempfile::tempdir().unwrap();
    let engine = common::open(dir.path());
    common::create(&engine, "routed", 3);
    let shards = shards_of(&engine, "routed");
    // int(hashlib.md5(key.encode()).hexdigest(), 16)
    let known: [(String, u128); 5] = [
        ("a".to_owned(), 16955237001963240173058271559858726497),
        (
            "customer-7".to_owned(),
            18423839322852854807796920976199280094,
        ),
        (
            "hello world".to_owned(),
            125893641179230474042701625388361764291,
        ),
        ("é".to_owned(), 136732923097551493579404309126273812335),
        ("x".repeat(256), 265353499944959180620795534685136097465),
    ];
    for (key, md5) in &known {
        let (key, md5) = (key.as_str(), *md5);
        let expected = shard_for(&shards, md5);
        for _ in 0..3 {
            let put = engine
                .stream("routed")
                .unwrap()
                .put(PutRecord::new(key, b"v"))
                .wait()
                .unwrap();
            assert_eq!(put.shard_id, expected, "key {key:?}");
        }
    }
    // The three shards got the records the MD5 values put there (one key is in shard 0,
    // the others spread over shards 1 and 2).
    let mut shard_ids: Vec<sluice_core::ShardId> =
        known.iter().map(|(_, h)| shard_for(&shards, *h)).collect();
    shard_ids.sort();
    shard_ids.dedup();
    assert_eq!(shard_ids.len(), 3);
}

#[test]
fn explicit_hash_keys_route_exactly_at_range_boundaries() {
    let dir = tempfile::tempdir().unwrap();
    let engine = common::open(dir.path());
    common::create(&engine, "edges", 4);
    let shards = shards_of(&engine, "edges");
    // ⌊2^128 / 4⌋ = 85070591730234615865843651857942052864, computed independently.
    let quarter: u128 = 85070591730234615865843651857942052864;
    assert_eq!(shards[1].hash_key_range.start, quarter);
    assert_eq!(shards[0].hash_key_range.end, quarter - 1);
    assert_eq!(shards[3].hash_key_range.end, u128::MAX);
    let cases: [(u128, usize); 6] = [
        (0, 0),
        (quarter - 1, 0),
        (quarter, 1),
        (2 * quarter - 1, 1),
        (3 * quarter, 3),
        (u128::MAX, 3),
    ];
    for (hash, shard) in cases {
        let key = hash.to_string();
        let put = engine
            .stream("edges")
            .unwrap()
            .put(PutRecord::new("ignored", b"v").with_explicit_hash_key(&key))
            .wait()
            .unwrap();
        assert_eq!(put.shard_id, shards[shard].shard_id, "hash {hash}");
    }
}

#[test]
fn a_hash_key_outside_the_space_is_rejected_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let engine = common::open(dir.path());
    common::create(&engine, "edges", 2);
    use sluice_core::ErrorCode::{InvalidArgument, Validation};
    for (bad, code) in [
        ("340282366920938463463374607431768211456", InvalidArgument),
        ("-1", Validation),
        ("01", Validation),
        ("abc", Validation),
        ("", Validation),
    ] {
        let err = engine
            .stream("edges")
            .unwrap()
            .put(PutRecord::new("k", b"v").with_explicit_hash_key(bad))
            .wait()
            .unwrap_err();
        assert_eq!(err.code(), code, "{bad:?}");
    }
    for shard in shards_of(&engine, "edges") {
        assert!(common::read_shard(&engine, "edges", &shard.shard_id).is_empty());
    }
}
