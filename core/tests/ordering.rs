//! Per-shard order and exactly-once delivery under concurrent writers on many threads.

mod common;

use sluice_core::{Durability, Engine, PutRecord};
use std::collections::{BTreeMap, HashSet};

/// (partition key, data) → (shard id, sequence number) of every acknowledged record.
type Acknowledged = BTreeMap<(String, Vec<u8>), (String, u128)>;

const THREADS: usize = 6;
const BATCHES: usize = 40;
const PER_BATCH: usize = 25;

#[test]
fn concurrent_writers_lose_nothing_duplicate_nothing_and_each_shard_is_strictly_ordered() {
    let dir = tempfile::tempdir().unwrap();
    let engine = common::open(dir.path());
    common::create(&engine, "busy", 4);
    // Every acknowledged record: (key, data) -> (shard, sequence number).
    let acknowledged: Vec<Acknowledged> = std::thread::scope(|scope| {
        let writers: Vec<_> = (0..THREADS)
            .map(|t| {
                let engine = engine.clone();
                scope.spawn(move || write_batches(&engine, t))
            })
            .collect();
        writers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let mut expected = Acknowledged::new();
    for acked in acknowledged {
        expected.extend(acked);
    }
    assert_eq!(expected.len(), THREADS * BATCHES * PER_BATCH);

    let mut seen = HashSet::new();
    for shard in engine
        .stream("busy")
        .unwrap()
        .describe(None, None)
        .unwrap()
        .shards
    {
        let records = common::read_shard(&engine, "busy", &shard.shard_id);
        for pair in records.windows(2) {
            assert!(
                pair[0].0 < pair[1].0,
                "sequence numbers strictly increase in {}",
                shard.shard_id
            );
        }
        // Each writer put each of its keys' records in (batch, index) order: they must come
        // back in that order.
        let mut last_per_key: std::collections::HashMap<String, (u32, u32)> = Default::default();
        for (seq, key, data) in records {
            let text = String::from_utf8(data.clone()).unwrap();
            let mut parts = text.split('-').skip(1);
            let batch: u32 = parts.next().unwrap()[1..].parse().unwrap();
            let index: u32 = parts.next().unwrap()[1..].parse().unwrap();
            if let Some(last) = last_per_key.insert(key.clone(), (batch, index)) {
                assert!(
                    last < (batch, index),
                    "{key}: {last:?} then {:?}",
                    (batch, index)
                );
            }
            let at = expected
                .get(&(key.clone(), data.clone()))
                .expect("only acknowledged records are read");
            assert_eq!(
                at,
                &(shard.shard_id.to_string(), seq),
                "read where the put said"
            );
            assert!(seen.insert((key, data)), "read exactly once");
        }
    }
    assert_eq!(
        seen.len(),
        expected.len(),
        "every acknowledged record is read"
    );
}

/// Writer `t`'s part: `BATCHES` batches of `PER_BATCH` records over 7 keys of its own, visible
/// and durable in turn, every fifth as single puts through the async form; returns what was
/// acknowledged.
fn write_batches(engine: &Engine, t: usize) -> Acknowledged {
    let mut acked = BTreeMap::new();
    for b in 0..BATCHES {
        let owned: Vec<(String, Vec<u8>)> = (0..PER_BATCH)
            .map(|i| {
                (
                    format!("t{t}-k{}", i % 7),
                    format!("t{t}-b{b}-i{i}").into_bytes(),
                )
            })
            .collect();
        let records: Vec<PutRecord<'_>> = owned.iter().map(|(k, d)| PutRecord::new(k, d)).collect();
        let durability = if b % 2 == 0 {
            Durability::Visible
        } else {
            Durability::Durable
        };
        let results = if b % 5 == 0 {
            // Single puts too, through the async form on this thread.
            records
                .iter()
                .map(|r| {
                    futures_lite_block(
                        engine
                            .stream("busy")
                            .unwrap()
                            .put(*r)
                            .durability(durability),
                    )
                })
                .collect::<Vec<_>>()
        } else {
            engine
                .stream("busy")
                .unwrap()
                .put_batch(&records)
                .durability(durability)
                .wait()
                .unwrap()
        };
        for (record, result) in owned.into_iter().zip(results) {
            let put = result.expect("no throttling, no failure");
            acked.insert(record, (put.shard_id.to_string(), put.sequence_number.0));
        }
    }
    acked
}

#[test]
fn records_of_one_key_keep_their_put_order() {
    let dir = tempfile::tempdir().unwrap();
    let engine = common::open(dir.path());
    common::create(&engine, "ordered", 3);
    let mut sequence_numbers = Vec::new();
    for i in 0..300u32 {
        let data = i.to_le_bytes();
        sequence_numbers.push(
            engine
                .stream("ordered")
                .unwrap()
                .put(PutRecord::new("one-key", &data))
                .wait()
                .unwrap(),
        );
    }
    let shard = &sequence_numbers[0].shard_id;
    assert!(sequence_numbers.iter().all(|p| &p.shard_id == shard));
    let read = common::read_shard(&engine, "ordered", shard);
    let values: Vec<u32> = read
        .iter()
        .map(|(_, _, d)| u32::from_le_bytes(d[..4].try_into().unwrap()))
        .collect();
    assert_eq!(values, (0..300).collect::<Vec<_>>());
}

fn futures_lite_block<F: std::future::IntoFuture>(future: F) -> F::Output {
    futures_lite::future::block_on(future.into_future())
}

#[test]
fn sequence_number_for_ordering_must_be_issued_and_the_new_record_sorts_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let engine = common::open(dir.path());
    common::create(&engine, "chained", 2);
    // Kinesis guarantees the order for one client and one partition key.
    let first = engine
        .stream("chained")
        .unwrap()
        .put(PutRecord::new("a", b"1"))
        .wait()
        .unwrap();
    let mut previous = first.sequence_number;
    for i in 0..5 {
        let ordering = previous.to_string();
        let record = PutRecord {
            sequence_number_for_ordering: Some(&ordering),
            ..PutRecord::new("a", b"next")
        };
        let put = engine
            .stream("chained")
            .unwrap()
            .put(record)
            .wait()
            .unwrap();
        assert!(
            put.sequence_number > previous,
            "{i}: {} after {previous}",
            put.sequence_number
        );
        previous = put.sequence_number;
    }
    let never_issued = sluice_core::SequenceNumber::new(0, 1_000_000).to_string();
    for bad in [never_issued.as_str(), "abc", "01", &"9".repeat(130)] {
        let record = PutRecord {
            sequence_number_for_ordering: Some(bad),
            ..PutRecord::new("a", b"x")
        };
        let err = engine
            .stream("chained")
            .unwrap()
            .put(record)
            .wait()
            .unwrap_err();
        assert_eq!(err.code(), sluice_core::ErrorCode::InvalidArgument, "{bad}");
    }
    // The same key moved to a lower shard by an explicit hash key cannot sort after a
    // number from the higher shard: refused rather than silently out of order.
    let max = u128::MAX.to_string();
    let high = engine
        .stream("chained")
        .unwrap()
        .put(PutRecord::new("a", b"high").with_explicit_hash_key(&max))
        .wait()
        .unwrap();
    assert_eq!(high.shard_id, "shardId-000000000001");
    let ordering = high.sequence_number.to_string();
    let lower = PutRecord {
        sequence_number_for_ordering: Some(&ordering),
        ..PutRecord::new("a", b"x")
    };
    let err = engine
        .stream("chained")
        .unwrap()
        .put(lower)
        .wait()
        .unwrap_err();
    assert_eq!(err.code(), sluice_core::ErrorCode::InvalidArgument);

    let ordering = first.sequence_number.to_string();
    let in_batch = [PutRecord {
        sequence_number_for_ordering: Some(&ordering),
        ..PutRecord::new("a", b"x")
    }];
    let err = engine
        .stream("chained")
        .unwrap()
        .put_batch(&in_batch)
        .wait()
        .unwrap_err();
    assert_eq!(err.code(), sluice_core::ErrorCode::InvalidArgument);
}
