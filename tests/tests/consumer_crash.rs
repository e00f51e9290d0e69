//! Kill -9 while a consumer reads a stream along its lineage and commits each read's last
//! record durably, while two writers put durably and, in every other run, shards are split
//! and merged at random moments. After each kill the engine reopens and: every committed
//! position is one the child tried to commit, at or after its last acknowledged commit in
//! that shard; and the consumer's reader delivers exactly the records after the positions
//! (every one of them, none at or before), each key's in put order. The next run resumes the
//! same consumer. Cycles: SLUICE_CONSUMER_CRASH_CYCLES (default 10); seed: SLUICE_CRASH_SEED.

use sluice_core::{Engine, SequenceNumber};
use sluice_storage::testing::Rng;
use sluice_tests::crash::{ConsumerLine, run_consumer_crash_reader};
use sluice_tests::{
    CRASH_CONSUMER, CRASH_STREAM, crash_engine_config, crash_seed, drain_reader, env_u64,
    read_stream_records,
};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

#[test]
fn kill_9_while_a_consumer_commits_resumes_strictly_after_its_acknowledged_commits() {
    let cycles = env_u64("SLUICE_CONSUMER_CRASH_CYCLES").unwrap_or(10);
    let seed = crash_seed();
    println!("consumer crash test: {cycles} cycles, SLUICE_CRASH_SEED={seed}");
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().unwrap();
    // Every number the children tried to commit, and per shard the last one acknowledged.
    let mut attempted: BTreeSet<u128> = BTreeSet::new();
    let mut acked: BTreeMap<u32, SequenceNumber> = BTreeMap::new();
    let mut delivered_total = 0;
    for run in 0..cycles {
        let after = Duration::from_millis(20 + rng.below(200));
        let reshards = if run % 2 == 1 { 1 + rng.below(3) } else { 0 };
        for line in run_consumer_crash_reader(reader(), dir.path(), run, reshards, after) {
            match line {
                ConsumerLine::Commit(seq) => {
                    attempted.insert(seq);
                }
                ConsumerLine::Acked(seq) => {
                    let seq = SequenceNumber(seq);
                    let shard = seq.shard_index().expect("a shard's number");
                    let last = acked.entry(shard).or_insert(seq);
                    *last = (*last).max(seq);
                }
            }
        }
        let context = format!("run {run}, SLUICE_CRASH_SEED={seed}");
        delivered_total += check(dir.path(), &attempted, &acked, &context);
    }
    assert!(!acked.is_empty(), "the consumer acknowledged commits");
    println!(
        "consumer crash test: {cycles} kills, {} shards with acknowledged commits, {delivered_total} records delivered after them",
        acked.len()
    );
}

/// Reopens the engine and checks the consumer's positions and what its reader delivers;
/// returns how many records it delivered.
fn check(
    dir: &Path,
    attempted: &BTreeSet<u128>,
    acked: &BTreeMap<u32, SequenceNumber>,
    context: &str,
) -> usize {
    let engine = Engine::open(crash_engine_config(dir)).expect("reopen");
    let stream = engine.stream(CRASH_STREAM).unwrap();
    let consumer = stream.consumer(CRASH_CONSUMER).unwrap();
    let positions: BTreeMap<u32, SequenceNumber> = consumer
        .positions()
        .unwrap()
        .into_iter()
        .map(|(shard, seq)| (shard.index(), seq))
        .collect();
    for (shard, position) in &positions {
        assert!(
            attempted.contains(&position.0),
            "{context}: shard {shard} holds {position}, which was never committed"
        );
    }
    for (shard, last) in acked {
        let position = positions.get(shard).copied();
        assert!(
            position >= Some(*last),
            "{context}: shard {shard} holds {position:?}, below the acknowledged {last}"
        );
    }
    let all = read_stream_records(&engine, CRASH_STREAM);
    let delivered = drain_reader(&stream, &mut consumer.reader().unwrap());
    let mut count = 0;
    for (key, records) in &all {
        let after: Vec<&(Vec<u8>, SequenceNumber)> = records
            .iter()
            .filter(|(_, seq)| positions.get(&seq.shard_index().unwrap()) < Some(seq))
            .collect();
        let got: Vec<&(Vec<u8>, SequenceNumber)> =
            delivered.get(key).into_iter().flatten().collect();
        assert!(
            got == after,
            "{context}: key {key}: the consumer got {} records, {} lie after its positions \
             (or their order differs)",
            got.len(),
            after.len()
        );
        count += got.len();
    }
    assert!(
        delivered.keys().all(|k| all.contains_key(k)),
        "{context}: nothing delivered that the stream does not hold"
    );
    count
}

/// The child: `sluice-consumer-crash-reader`.
fn reader() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_sluice-consumer-crash-reader"))
}
