//! Model-based property test of the engine: random sequences of stream creation and deletion,
//! puts and batch puts, splits, merges, shard-count updates, reads along the lineage, push
//! subscriptions to every shard (resuming once AFTER their checkpoint, as KCL does) and
//! restarts, run against the engine and against a plain map of key → records. They must agree
//! exactly: every acknowledged record read back once, each key's records in put order, the
//! same errors for missing streams. Cases: 12 by default, PROPTEST_CASES=N for more.

use proptest::prelude::*;
use sluice_core::{
    CreateStream, Engine, EngineConfig, ErrorCode, IteratorStart, PutRecord, ScalingType,
};
use sluice_tests::read_stream_by_key;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

const STREAMS: [&str; 2] = ["alpha", "beta"];
const KEYS: usize = 6;

#[derive(Debug, Clone)]
enum Op {
    Create { stream: usize, shards: u32 },
    Delete { stream: usize },
    Put { stream: usize, key: usize },
    PutBatch { stream: usize, keys: Vec<usize> },
    Split { stream: usize, at: u8 },
    Merge { stream: usize, first: u8 },
    UpdateShardCount { stream: usize, target: u32 },
    Read { stream: usize },
    Subscribe { stream: usize },
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    let stream = 0..STREAMS.len();
    prop_oneof![
        2 => (stream.clone(), 1u32..4).prop_map(|(stream, shards)| Op::Create { stream, shards }),
        1 => stream.clone().prop_map(|stream| Op::Delete { stream }),
        6 => (stream.clone(), 0..KEYS).prop_map(|(stream, key)| Op::Put { stream, key }),
        4 => (stream.clone(), prop::collection::vec(0..KEYS, 1..20))
            .prop_map(|(stream, keys)| Op::PutBatch { stream, keys }),
        2 => (stream.clone(), any::<u8>()).prop_map(|(stream, at)| Op::Split { stream, at }),
        2 => (stream.clone(), any::<u8>()).prop_map(|(stream, first)| Op::Merge { stream, first }),
        1 => (stream.clone(), 1u32..6).prop_map(|(stream, target)| Op::UpdateShardCount { stream, target }),
        2 => stream.clone().prop_map(|stream| Op::Read { stream }),
        1 => stream.clone().prop_map(|stream| Op::Subscribe { stream }),
        1 => Just(Op::Restart),
    ]
}

fn open(dir: &Path) -> Engine {
    let mut config = EngineConfig::new(dir);
    config.cores = 2;
    config.segment_size_bytes = 256 << 10;
    Engine::open(config).unwrap()
}

/// The model: per existing stream, per key, the data of its records in put order.
type Model = BTreeMap<&'static str, BTreeMap<String, Vec<Vec<u8>>>>;

/// Open shards of a stream, sorted by hash range.
fn open_shards(engine: &Engine, stream: &str) -> Vec<sluice_core::ShardDescription> {
    let mut shards: Vec<_> = engine
        .describe_stream(stream, Some(100), None)
        .unwrap()
        .shards
        .into_iter()
        .filter(|s| s.ending_sequence_number.is_none())
        .collect();
    shards.sort_by_key(|s| s.hash_key_range.start);
    shards
}

fn apply(slot: &mut Option<Engine>, dir: &Path, model: &mut Model, op: &Op, step: usize) {
    if let Op::Restart = op {
        // Closed (synced, threads joined) before the same directory is opened again.
        *slot = None;
        *slot = Some(open(dir));
        return;
    }
    let engine = slot.as_ref().expect("open between steps");
    match *op {
        Op::Create { stream, shards } => {
            let name = STREAMS[stream];
            let result = engine.create_stream_blocking(CreateStream::provisioned(name, shards));
            if model.contains_key(name) {
                assert_eq!(result.unwrap_err().code(), ErrorCode::ResourceInUse);
            } else {
                result.unwrap();
                model.insert(name, BTreeMap::new());
            }
        }
        Op::Delete { stream } => {
            let name = STREAMS[stream];
            let result = engine.delete_stream_blocking(name);
            match model.remove(name) {
                Some(_) => result.unwrap(),
                None => assert_eq!(result.unwrap_err().code(), ErrorCode::ResourceNotFound),
            }
        }
        Op::Put { stream, key } => put(engine, model, STREAMS[stream], &[key], step),
        Op::PutBatch { stream, ref keys } => put(engine, model, STREAMS[stream], keys, step),
        Op::Split { stream, at } => {
            let name = STREAMS[stream];
            if !model.contains_key(name) {
                return;
            }
            let shards = open_shards(engine, name);
            let shard = &shards[at as usize % shards.len()];
            let range = shard.hash_key_range;
            let key = range.start + (range.end - range.start) / 2;
            engine
                .split_shard_blocking(name, &shard.shard_id, &key.to_string())
                .unwrap();
        }
        Op::Merge { stream, first } => {
            let name = STREAMS[stream];
            if !model.contains_key(name) {
                return;
            }
            let shards = open_shards(engine, name);
            if shards.len() < 2 {
                return;
            }
            let i = first as usize % (shards.len() - 1);
            engine
                .merge_shards_blocking(name, &shards[i].shard_id, &shards[i + 1].shard_id)
                .unwrap();
        }
        Op::UpdateShardCount { stream, target } => {
            let name = STREAMS[stream];
            if !model.contains_key(name) {
                return;
            }
            let open = open_shards(engine, name).len() as u32;
            let result =
                engine.update_shard_count_blocking(name, target, ScalingType::UniformScaling);
            if target <= open * 2 && target * 2 >= open {
                result.unwrap();
                let ranges: Vec<_> = open_shards(engine, name)
                    .iter()
                    .map(|s| s.hash_key_range)
                    .collect();
                assert_eq!(ranges, sluice_core::HashKeyRange::even_split(target));
            } else {
                assert_eq!(result.unwrap_err().code(), ErrorCode::InvalidArgument);
            }
        }
        Op::Read { stream } => {
            let name = STREAMS[stream];
            match model.get(name) {
                Some(expected) => {
                    assert_eq!(&read_stream_by_key(engine, name), expected, "step {step}")
                }
                None => assert!(engine.stream_reader(name).is_err()),
            }
        }
        Op::Subscribe { stream } => {
            let name = STREAMS[stream];
            match model.get(name) {
                Some(expected) => {
                    assert_eq!(
                        &subscribe_to_every_shard(engine, name),
                        expected,
                        "step {step}"
                    )
                }
                None => assert!(
                    engine
                        .subscribe(name, "shardId-000000000000", IteratorStart::TrimHorizon)
                        .is_err()
                ),
            }
        }
        Op::Restart => unreachable!("handled above"),
    }
}

/// Every record of the stream through push subscriptions, one per shard in index order
/// (parents before children), each resubscribed once AFTER the checkpoint its first event
/// gives (the number below its continuation), as KCL resumes.
fn subscribe_to_every_shard(engine: &Engine, stream: &str) -> BTreeMap<String, Vec<Vec<u8>>> {
    let mut shards = engine
        .describe_stream(stream, Some(100), None)
        .unwrap()
        .shards;
    shards.sort_by_key(|s| s.starting_sequence_number);
    let mut found: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    let subscribe = |shard: &str, start| engine.subscribe(stream, shard, start).unwrap();
    for shard in &shards {
        let mut subscription = subscribe(&shard.shard_id, IteratorStart::TrimHorizon);
        let mut resumed = false;
        // `None`: caught up (nothing more within the wait) or past the end of a closed shard.
        while let Some(event) = subscription
            .next_blocking(Duration::from_millis(5))
            .unwrap()
        {
            for record in event.records.records() {
                found
                    .entry(record.partition_key.to_owned())
                    .or_default()
                    .push(record.data.to_vec());
            }
            if event.records.end_of_shard {
                break;
            }
            if !resumed {
                resumed = true;
                let checkpoint = event.continuation_sequence_number.checkpoint();
                subscription = subscribe(
                    &shard.shard_id,
                    IteratorStart::AfterSequenceNumber(checkpoint),
                );
            }
        }
    }
    found
}

fn put(engine: &Engine, model: &mut Model, name: &'static str, keys: &[usize], step: usize) {
    let owned: Vec<(String, Vec<u8>)> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            (
                format!("key-{k}"),
                format!("step-{step}-record-{i}").into_bytes(),
            )
        })
        .collect();
    let records: Vec<PutRecord<'_>> = owned.iter().map(|(k, d)| PutRecord::new(k, d)).collect();
    let result = engine.put_batch_blocking(name, &records);
    let Some(stream) = model.get_mut(name) else {
        assert_eq!(result.unwrap_err().code(), ErrorCode::ResourceNotFound);
        return;
    };
    for ((key, data), outcome) in owned.into_iter().zip(result.unwrap()) {
        outcome.expect("no throttling, no failure");
        stream.entry(key).or_default().push(data);
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(12),
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_engine_agrees_with_a_map_of_keys_to_records(ops in prop::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut engine = Some(open(&data));
        let mut model = Model::new();
        for (step, op) in ops.iter().enumerate() {
            apply(&mut engine, &data, &mut model, op, step);
        }
        let engine = engine.expect("open after the last step");
        for name in STREAMS {
            if let Some(expected) = model.get(name) {
                prop_assert_eq!(&read_stream_by_key(&engine, name), expected);
            }
        }
    }
}
