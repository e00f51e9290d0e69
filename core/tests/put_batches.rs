//! Put batches are encoded on the caller's thread into the batches the shard logs write: a
//! put larger than a segment can hold goes as several storage batches, in order.

mod common;

use sluice_core::{Engine, PutRecord};
use sluice_storage::testing::{key, payload};

#[test]
fn a_put_larger_than_a_segment_is_written_whole_and_in_order_over_several_batches() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    // The smallest segment: a batch holds ~60 KiB, so 500 records of ~1 KiB make ~9 batches
    // (and rolls).
    config.segment_size_bytes = 64 << 10;
    let engine = Engine::open(config).unwrap();
    common::create(&engine, "wide", 2);
    let keys: Vec<String> = (0..500).map(key).collect();
    let data: Vec<Vec<u8>> = (0..500)
        .map(|i| payload(i, 1000 + i as usize % 17))
        .collect();
    let records: Vec<PutRecord<'_>> = keys
        .iter()
        .zip(&data)
        .map(|(k, d)| PutRecord::new(k, d))
        .collect();
    let results = engine
        .stream("wide")
        .unwrap()
        .put_batch(&records)
        .wait()
        .unwrap();
    let results: Vec<_> = results.into_iter().map(Result::unwrap).collect();
    for shard in engine
        .stream("wide")
        .unwrap()
        .describe(None, None)
        .unwrap()
        .shards
    {
        let stored = common::read_shard(&engine, "wide", &shard.shard_id);
        let sent: Vec<(u128, String, Vec<u8>)> = results
            .iter()
            .enumerate()
            .filter(|(_, r)| *r.shard_id == *shard.shard_id)
            .map(|(i, r)| (r.sequence_number.0, keys[i].clone(), data[i].clone()))
            .collect();
        assert!(sent.len() > 100, "both shards get a share: {}", sent.len());
        // Request order within the shard is sequence-number order, and every record is
        // there exactly as sent.
        assert!(sent.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(stored, sent, "{}", shard.shard_id);
    }
}

/// `caller_spin_us`: blocking puts poll for their answer before parking. Answers that come
/// within the spin and answers that take longer (durable puts wait for a sync) both arrive.
#[test]
fn blocking_puts_that_spin_before_parking_get_their_answers() {
    use sluice_core::Durability;
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    config.caller_spin_us = 50;
    config.spin_before_park_us = 50;
    let engine = Engine::open(config).unwrap();
    common::create(&engine, "spun", 1);
    let mut numbers = Vec::new();
    for i in 0..200u32 {
        let data = i.to_le_bytes();
        let durability = if i % 10 == 0 {
            Durability::Durable
        } else {
            Durability::Visible
        };
        let put = engine
            .stream("spun")
            .unwrap()
            .put(PutRecord::new("k", &data))
            .durability(durability)
            .wait()
            .unwrap();
        numbers.push(put.sequence_number.0);
    }
    let stored = common::read_shard(&engine, "spun", "shardId-000000000000");
    let stored_numbers: Vec<u128> = stored.iter().map(|r| r.0).collect();
    assert_eq!(stored_numbers, numbers);
    for (i, record) in stored.iter().enumerate() {
        assert_eq!(record.2, (i as u32).to_le_bytes());
    }
}
