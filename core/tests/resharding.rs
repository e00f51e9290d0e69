//! Split, merge and update_shard_count: layouts, lineage, reads across closed shards, invalid
//! requests, restart, and writers running through reshards.

mod common;

use sluice_core::{
    CreateStream, Engine, ErrorCode, HashKeyRange, IteratorStart, PutRecord, ShardDescription,
};
use std::collections::{BTreeMap, HashMap};

fn shards(engine: &Engine, stream: &str) -> Vec<ShardDescription> {
    let mut all = Vec::new();
    let mut after: Option<sluice_core::ShardId> = None;
    loop {
        let page = engine
            .stream(stream)
            .unwrap()
            .describe(Some(100), after.as_deref())
            .unwrap();
        all.extend(page.shards);
        if !page.has_more_shards {
            return all;
        }
        after = all.last().map(|s| s.shard_id);
    }
}

fn open_ranges(engine: &Engine, stream: &str) -> Vec<HashKeyRange> {
    let mut ranges: Vec<HashKeyRange> = shards(engine, stream)
        .into_iter()
        .filter(|s| s.ending_sequence_number.is_none())
        .map(|s| s.hash_key_range)
        .collect();
    ranges.sort_by_key(|r| r.start);
    ranges
}

/// Every record of the stream along its lineage: key → data in read order.
fn read_lineage(engine: &Engine, stream: &str) -> BTreeMap<String, Vec<Vec<u8>>> {
    let mut reader = engine.stream(stream).unwrap().reader().unwrap();
    let mut by_key: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    let mut idle_rounds = 0;
    while !reader.is_finished() && idle_rounds < 1000 {
        let batch = reader.read(None).unwrap().unwrap();
        if batch.records.is_empty() && !batch.records.end_of_shard {
            idle_rounds += 1;
        }
        for record in batch.records.records() {
            by_key
                .entry(record.partition_key.to_owned())
                .or_default()
                .push(record.data.to_vec());
        }
    }
    by_key
}

#[test]
fn a_split_closes_the_parent_and_its_children_split_its_range() {
    let dir = tempfile::tempdir().unwrap();
    let engine = common::open(dir.path());
    common::create(&engine, "s", 1);
    let before = engine
        .stream("s")
        .unwrap()
        .put(PutRecord::new("k", b"before"))
        .wait()
        .unwrap();
    let middle = (1u128 << 127).to_string();
    engine
        .stream("s")
        .unwrap()
        .split_shard("shardId-000000000000", &middle)
        .wait()
        .unwrap();
    let all = shards(&engine, "s");
    assert_eq!(all.len(), 3);
    let (parent, low, high) = (&all[0], &all[1], &all[2]);
    assert_eq!(parent.ending_sequence_number, Some(before.sequence_number));
    assert_eq!(
        (&*low.shard_id, &*high.shard_id),
        ("shardId-000000000001", "shardId-000000000002")
    );
    assert_eq!(low.parent_shard_id.as_deref(), Some("shardId-000000000000"));
    assert_eq!(
        high.parent_shard_id.as_deref(),
        Some("shardId-000000000000")
    );
    assert_eq!(
        low.hash_key_range,
        HashKeyRange {
            start: 0,
            end: (1u128 << 127) - 1
        }
    );
    assert_eq!(
        high.hash_key_range,
        HashKeyRange {
            start: 1u128 << 127,
            end: u128::MAX
        }
    );
    assert!(
        low.starting_sequence_number > before.sequence_number,
        "children sort after the parent"
    );
    // Puts now land in the children, by hash key.
    let low_put = engine
        .stream("s")
        .unwrap()
        .put(PutRecord::new("k", b"low").with_explicit_hash_key("5"))
        .wait()
        .unwrap();
    let max = u128::MAX.to_string();
    let high_put = engine
        .stream("s")
        .unwrap()
        .put(PutRecord::new("k", b"high").with_explicit_hash_key(&max))
        .wait()
        .unwrap();
    assert_eq!(low_put.shard_id, low.shard_id);
    assert_eq!(high_put.shard_id, high.shard_id);
    // The parent stays readable and ends with its children.
    let mut iterator = engine
        .stream("s")
        .unwrap()
        .shard_iterator("shardId-000000000000", IteratorStart::TrimHorizon)
        .unwrap();
    let batch = engine.get_records(&mut iterator, None).unwrap();
    assert_eq!(
        batch.records().map(|r| r.data.to_vec()).collect::<Vec<_>>(),
        vec![b"before".to_vec()]
    );
    assert!(batch.end_of_shard);
    assert_eq!(batch.child_shard_ids, vec![low.shard_id, high.shard_id]);
}

#[test]
fn a_merge_closes_both_parents_and_its_child_covers_their_union() {
    let dir = tempfile::tempdir().unwrap();
    let engine = common::open(dir.path());
    common::create(&engine, "m", 3);
    engine
        .stream("m")
        .unwrap()
        .merge_shards("shardId-000000000002", "shardId-000000000001")
        .wait()
        .unwrap();
    let all = shards(&engine, "m");
    assert_eq!(all.len(), 4);
    let child = &all[3];
    assert_eq!(
        child.parent_shard_id.as_deref(),
        Some("shardId-000000000002")
    );
    assert_eq!(
        child.adjacent_parent_shard_id.as_deref(),
        Some("shardId-000000000001")
    );
    assert_eq!(child.hash_key_range.start, all[1].hash_key_range.start);
    assert_eq!(child.hash_key_range.end, u128::MAX);
    assert!(all[1].ending_sequence_number.is_some() && all[2].ending_sequence_number.is_some());
    assert_eq!(open_ranges(&engine, "m").len(), 2);
    let put = engine
        .stream("m")
        .unwrap()
        .put(PutRecord::new("k", b"x").with_explicit_hash_key(&u128::MAX.to_string()))
        .wait()
        .unwrap();
    assert_eq!(put.shard_id, "shardId-000000000003");
}

#[test]
#[expect(
    clippy::too_many_lines,
    reason = "a table of invalid reshards and the Kinesis error each gets, checked against one stream that must stay unchanged"
)]
fn invalid_reshards_get_the_kinesis_error_and_change_nothing() {
    use ErrorCode::{InvalidArgument, LimitExceeded, ResourceNotFound, Validation};
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    config.shards_max = 6;
    let engine = Engine::open(config).unwrap();
    common::create(&engine, "r", 3);
    engine
        .stream("r")
        .unwrap()
        .merge_shards("shardId-000000000000", "shardId-000000000001")
        .wait()
        .unwrap();
    engine
        .create_stream(CreateStream::on_demand("od"))
        .wait()
        .unwrap();
    let before = shards(&engine, "r");
    let ranges = before.iter().map(|s| s.hash_key_range).collect::<Vec<_>>();
    let (start2, end2) = (ranges[2].start.to_string(), ranges[2].end.to_string());
    let inside2 = (ranges[2].start + 10).to_string();
    let start2_plus_1 = (ranges[2].start + 1).to_string();
    let cases: Vec<(&str, ErrorCode, ErrorCode)> = vec![
        (
            "key at the start edge",
            engine
                .stream("r")
                .unwrap()
                .split_shard("shardId-000000000002", &start2)
                .wait()
                .unwrap_err()
                .code(),
            InvalidArgument,
        ),
        (
            "key one past the start (a one-key child)",
            engine
                .stream("r")
                .unwrap()
                .split_shard("shardId-000000000002", &start2_plus_1)
                .wait()
                .unwrap_err()
                .code(),
            InvalidArgument,
        ),
        (
            "key at the end edge",
            engine
                .stream("r")
                .unwrap()
                .split_shard("shardId-000000000002", &end2)
                .wait()
                .unwrap_err()
                .code(),
            InvalidArgument,
        ),
        (
            "key outside the shard",
            engine
                .stream("r")
                .unwrap()
                .split_shard("shardId-000000000002", "5")
                .wait()
                .unwrap_err()
                .code(),
            InvalidArgument,
        ),
        (
            "malformed key",
            engine
                .stream("r")
                .unwrap()
                .split_shard("shardId-000000000002", "x5")
                .wait()
                .unwrap_err()
                .code(),
            Validation,
        ),
        (
            "split a closed shard",
            engine
                .stream("r")
                .unwrap()
                .split_shard("shardId-000000000000", "5")
                .wait()
                .unwrap_err()
                .code(),
            InvalidArgument,
        ),
        (
            "merge a closed shard",
            engine
                .stream("r")
                .unwrap()
                .merge_shards("shardId-000000000001", "shardId-000000000002")
                .wait()
                .unwrap_err()
                .code(),
            InvalidArgument,
        ),
        (
            "merge with itself",
            engine
                .stream("r")
                .unwrap()
                .merge_shards("shardId-000000000002", "shardId-000000000002")
                .wait()
                .unwrap_err()
                .code(),
            InvalidArgument,
        ),
        (
            "unknown shard",
            engine
                .stream("r")
                .unwrap()
                .split_shard("shardId-000000000042", &inside2)
                .wait()
                .unwrap_err()
                .code(),
            ResourceNotFound,
        ),
        (
            "unknown stream",
            engine.stream("nope").unwrap_err().code(),
            ResourceNotFound,
        ),
        (
            "on-demand stream",
            engine
                .stream("od")
                .unwrap()
                .split_shard("shardId-000000000000", "5")
                .wait()
                .unwrap_err()
                .code(),
            Validation,
        ),
        (
            "target above double",
            engine
                .stream("r")
                .unwrap()
                .update_shard_count(5)
                .wait()
                .unwrap_err()
                .code(),
            InvalidArgument,
        ),
        (
            "target below half",
            {
                // r has 2 open shards: 0 is below half.
                engine
                    .stream("r")
                    .unwrap()
                    .update_shard_count(0)
                    .wait()
                    .unwrap_err()
                    .code()
            },
            InvalidArgument,
        ),
        // 2 open in r + 4 in od = 6 = shards_max: one more is over the quota.
        (
            "over the shard quota",
            engine
                .stream("r")
                .unwrap()
                .split_shard("shardId-000000000002", &inside2)
                .wait()
                .unwrap_err()
                .code(),
            LimitExceeded,
        ),
    ];
    for (what, got, want) in &cases {
        assert_eq!(got, want, "{what}");
    }
    assert_eq!(shards(&engine, "r"), before, "nothing changed");
    // Non-adjacent merge on a stream with room: 0 and 2 of a 3-shard stream.
    engine.stream("od").unwrap().delete().wait().unwrap();
    common::create(&engine, "gap", 3);
    let err = engine
        .stream("gap")
        .unwrap()
        .merge_shards("shardId-000000000000", "shardId-000000000002")
        .wait()
        .unwrap_err();
    assert_eq!(err.code(), InvalidArgument, "non-adjacent merge");
    assert_eq!(shards(&engine, "gap").len(), 3);
}

#[test]
fn update_shard_count_commits_in_rounds_not_once_per_split() {
    let dir = tempfile::tempdir().unwrap();
    let engine = common::open(dir.path());
    common::create(&engine, "one", 32);
    common::create(&engine, "all", 32);
    let meta = || {
        std::fs::metadata(dir.path().join("meta.log"))
            .unwrap()
            .len()
    };
    let before = meta();
    let key = (u128::MAX / 64).to_string();
    let one = engine.stream("one").unwrap();
    one.split_shard("shardId-000000000000", &key)
        .wait()
        .unwrap();
    let one_split = meta() - before;
    let before = meta();
    let all = engine.stream("all").unwrap();
    all.update_shard_count(64).wait().unwrap();
    let doubling = meta() - before;
    // Doubling is one round of 32 splits: one commit of the stream (and its endings), each
    // about three times a split's entry (96 shards, not 33). A commit per split wrote 32
    // pairs of entries, each larger than the one before.
    println!("a split wrote {one_split} bytes, doubling 32 shards {doubling}");
    assert!(
        doubling < 6 * one_split,
        "a split wrote {one_split} bytes, doubling {doubling}"
    );
    assert_eq!(open_ranges(&engine, "all"), HashKeyRange::even_split(64));
}

#[test]
fn update_shard_count_reaches_an_even_partition_every_time() {
    let dir = tempfile::tempdir().unwrap();
    let engine = common::open(dir.path());
    common::create(&engine, "u", 1);
    let mut puts: Vec<(String, u32)> = Vec::new();
    let mut sequence = 0u32;
    // Kinesis allows at most doubling per call, so 3 → 8 goes through 6 (3 → 8 is refused).
    for target in [2u32, 4, 3, 6, 8, 4] {
        for key in 0..40 {
            let key = format!("key-{key}");
            engine
                .stream("u")
                .unwrap()
                .put(PutRecord::new(&key, &sequence.to_le_bytes()))
                .wait()
                .unwrap();
            puts.push((key, sequence));
            sequence += 1;
        }
        let update = engine
            .stream("u")
            .unwrap()
            .update_shard_count(target)
            .wait()
            .unwrap();
        assert_eq!(update.target_shard_count, target);
        assert_eq!(
            open_ranges(&engine, "u"),
            HashKeyRange::even_split(target),
            "target {target}"
        );
        if target == 3 {
            let err = engine
                .stream("u")
                .unwrap()
                .update_shard_count(8)
                .wait()
                .unwrap_err();
            assert_eq!(
                err.code(),
                ErrorCode::InvalidArgument,
                "3 → 8 is more than double"
            );
        }
    }
    // Along the lineage every key's records come back in put order.
    let read = read_lineage(&engine, "u");
    let mut expected: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    for (key, n) in puts {
        expected
            .entry(key)
            .or_default()
            .push(n.to_le_bytes().to_vec());
    }
    assert_eq!(read, expected);
}

#[test]
fn writers_running_through_splits_and_merges_lose_duplicate_and_reorder_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let engine = common::open(dir.path());
    common::create(&engine, "live", 2);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let acknowledged: Vec<BTreeMap<String, u32>> = std::thread::scope(|scope| {
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let (engine, stop) = (&engine, &stop);
                scope.spawn(move || put_numbered_batches_until(engine, w, stop))
            })
            .collect();
        // Reshard while they write: splits and merges on whatever is open.
        for round in 0..6 {
            split_widest_or_merge_first_two(&engine, round);
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        writers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let read = read_lineage(&engine, "live");
    let mut keys_checked = 0;
    for acked in acknowledged {
        for (key, last) in acked {
            let values: Vec<u32> = read[&key]
                .iter()
                .map(|d| u32::from_le_bytes(d[..4].try_into().unwrap()))
                .collect();
            assert_eq!(
                values,
                (0..=last).collect::<Vec<u32>>(),
                "{key}: every put once, in order"
            );
            keys_checked += 1;
        }
    }
    assert_eq!(keys_checked, 32);
    assert!(shards(&engine, "live").len() >= 8, "the reshards happened");
}

/// Writer `w`'s part: batch after batch of one record for each of its 8 keys, the n-th batch's
/// records all holding n, until `stop` is set and at least 200 were put.
fn put_numbered_batches_until(
    engine: &Engine,
    w: usize,
    stop: &std::sync::atomic::AtomicBool,
) -> BTreeMap<String, u32> {
    // Per key, the highest number acknowledged; numbers are put in order.
    let mut acked: BTreeMap<String, u32> = BTreeMap::new();
    let mut n = 0u32;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) || n < 200 {
        let keys: Vec<String> = (0..8).map(|k| format!("w{w}-k{k}")).collect();
        let data: Vec<[u8; 4]> = (0..8).map(|_| n.to_le_bytes()).collect();
        let records: Vec<PutRecord<'_>> = keys
            .iter()
            .zip(&data)
            .map(|(k, d)| PutRecord::new(k, d))
            .collect();
        for (key, result) in keys.iter().zip(
            engine
                .stream("live")
                .unwrap()
                .put_batch(&records)
                .wait()
                .unwrap(),
        ) {
            result.expect("no record fails during a reshard");
            acked.insert(key.clone(), n);
        }
        n += 1;
    }
    acked
}

/// A reshard on whatever is open: on even rounds a split of the widest open shard at its
/// middle, on odd ones a merge of the two lowest.
fn split_widest_or_merge_first_two(engine: &Engine, round: usize) {
    let open: Vec<ShardDescription> = shards(engine, "live")
        .into_iter()
        .filter(|s| s.ending_sequence_number.is_none())
        .collect();
    if round.is_multiple_of(2) {
        let widest = open
            .iter()
            .max_by_key(|s| s.hash_key_range.end - s.hash_key_range.start)
            .unwrap();
        let mid = widest.hash_key_range.start
            + (widest.hash_key_range.end - widest.hash_key_range.start) / 2;
        engine
            .stream("live")
            .unwrap()
            .split_shard(&widest.shard_id, &mid.to_string())
            .wait()
            .unwrap();
    } else {
        let mut sorted = open.clone();
        sorted.sort_by_key(|s| s.hash_key_range.start);
        engine
            .stream("live")
            .unwrap()
            .merge_shards(&sorted[0].shard_id, &sorted[1].shard_id)
            .wait()
            .unwrap();
    }
}

#[test]
fn the_layout_and_every_record_survive_a_restart_after_resharding() {
    let dir = tempfile::tempdir().unwrap();
    let layout = {
        let engine = common::open(dir.path());
        common::create(&engine, "p", 2);
        for i in 0..50u32 {
            engine
                .stream("p")
                .unwrap()
                .put(PutRecord::new(&format!("k{i}"), &i.to_le_bytes()))
                .wait()
                .unwrap();
        }
        engine
            .stream("p")
            .unwrap()
            .update_shard_count(3)
            .wait()
            .unwrap();
        for i in 50..100u32 {
            engine
                .stream("p")
                .unwrap()
                .put(PutRecord::new(&format!("k{i}"), &i.to_le_bytes()))
                .wait()
                .unwrap();
        }
        shards(&engine, "p")
    };
    let engine = common::open(dir.path());
    assert_eq!(shards(&engine, "p"), layout);
    let read = read_lineage(&engine, "p");
    let total: usize = read.values().map(Vec::len).sum();
    assert_eq!(total, 100);
    // Closed shards take no puts after the restart either: routing uses open shards only.
    let put = engine
        .stream("p")
        .unwrap()
        .put(PutRecord::new("k0", b"after"))
        .wait()
        .unwrap();
    let open: HashMap<sluice_core::ShardId, bool> = layout
        .iter()
        .map(|s| (s.shard_id, s.ending_sequence_number.is_none()))
        .collect();
    assert!(open[&put.shard_id]);
}

#[test]
fn a_subscription_on_a_parent_ends_with_its_children_when_it_closes() {
    let dir = tempfile::tempdir().unwrap();
    let engine = common::open(dir.path());
    common::create(&engine, "sub", 1);
    let mut subscription = engine
        .stream("sub")
        .unwrap()
        .subscribe("shardId-000000000000", IteratorStart::Latest)
        .unwrap();
    std::thread::scope(|scope| {
        let waiter = scope.spawn(move || futures_lite::future::block_on(subscription.next()));
        std::thread::sleep(std::time::Duration::from_millis(50));
        engine
            .stream("sub")
            .unwrap()
            .split_shard("shardId-000000000000", "1000")
            .wait()
            .unwrap();
        let event = waiter.join().unwrap().expect("an event").unwrap();
        assert!(event.records.end_of_shard);
        assert_eq!(
            event.records.child_shard_ids,
            vec![
                "shardId-000000000001".to_owned(),
                "shardId-000000000002".to_owned()
            ]
        );
    });
}

#[test]
fn list_shards_filters_follow_the_lineage_and_the_clock() {
    use sluice_core::{ListShards, ShardFilter};
    let dir = tempfile::tempdir().unwrap();
    let (engine, clock) = common::open_with_clock(dir.path(), 1_800_000_000_000);
    common::create(&engine, "f", 1);
    clock.advance_ms(1000);
    let split_at = sluice_core::Clock::now_ms(&*clock);
    engine
        .stream("f")
        .unwrap()
        .split_shard("shardId-000000000000", "1000")
        .wait()
        .unwrap();
    clock.advance_ms(1000);
    let ids = |filter: ShardFilter| -> Vec<String> {
        let request = ListShards {
            stream: Some("f".into()),
            filter: Some(filter),
            ..Default::default()
        };
        engine
            .list_shards(&request)
            .unwrap()
            .shards
            .into_iter()
            .map(|s| s.shard_id.to_string())
            .collect()
    };
    let (parent, low, high) = (
        "shardId-000000000000",
        "shardId-000000000001",
        "shardId-000000000002",
    );
    assert_eq!(ids(ShardFilter::AtLatest), [low, high]);
    assert_eq!(ids(ShardFilter::AtTrimHorizon), [parent]);
    assert_eq!(ids(ShardFilter::FromTrimHorizon), [parent, low, high]);
    assert_eq!(ids(ShardFilter::AtTimestamp(split_at - 500)), [parent]);
    assert_eq!(ids(ShardFilter::AtTimestamp(split_at + 500)), [low, high]);
    assert_eq!(
        ids(ShardFilter::FromTimestamp(split_at - 500)),
        [parent, low, high]
    );
    assert_eq!(ids(ShardFilter::FromTimestamp(split_at + 500)), [low, high]);
    // Once the parent's data has expired (24 h after it closed) it is no longer listed.
    clock.advance_ms(24 * 3_600_000);
    assert_eq!(ids(ShardFilter::FromTrimHorizon), [low, high]);
    assert_eq!(ids(ShardFilter::AtTrimHorizon), [low, high]);
}
