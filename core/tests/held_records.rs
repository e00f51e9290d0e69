//! Records held past the engine they came from: `Records` is `'static + Send`, so it may outlive
//! its engine, and an engine opened later on the same directory, in the same process, must not
//! recycle the segment files it points into (docs/design/leases.md).

mod common;

use sluice_core::{Engine, EngineConfig, IteratorStart, ManualClock, PutRecord, Records};
use sluice_storage::format::{SegmentHeader, SegmentState};
use sluice_storage::testing::payload;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const T0_MS: u64 = 1_800_000_000_000;
const HOUR_MS: u64 = 3_600_000;
const RECORD_BYTES: usize = 1000;
/// About one 2 MiB segment (`common::config`) of `RECORD_BYTES` records.
const RECORDS_PER_SEGMENT: u64 = 2000;
const SHARD: &str = "shardId-000000000000";

fn open(dir: &Path, clock: &Arc<ManualClock>) -> Engine {
    let mut config: EngineConfig = common::config(dir);
    config.clock = clock.clone();
    Engine::open(config).expect("engine opens")
}

/// Puts records `from..to` to stream `s` (data `payload(n)`), in batches of 500.
fn put(engine: &Engine, from: u64, to: u64) {
    let stream = engine.stream("s").unwrap();
    let mut n = from;
    while n < to {
        let end = to.min(n + 500);
        let data: Vec<Vec<u8>> = (n..end).map(|i| payload(i, RECORD_BYTES)).collect();
        let records: Vec<PutRecord<'_>> = data.iter().map(|d| PutRecord::new("k", d)).collect();
        for result in stream.put_batch(&records).wait().unwrap() {
            result.expect("record accepted");
        }
        n = end;
    }
}

fn copy(records: &Records) -> Vec<(u128, Vec<u8>)> {
    records
        .records()
        .map(|r| (r.sequence_number.0, r.data.to_vec()))
        .collect()
}

/// The first segment file of the only shard of the only stream.
fn first_segment(dir: &Path) -> PathBuf {
    let streams: Vec<_> = std::fs::read_dir(dir.join("streams")).unwrap().collect();
    assert_eq!(streams.len(), 1, "{streams:?}");
    let stream = streams.into_iter().next().unwrap().unwrap().path();
    stream.join("shard-0").join("seg-00000000.log")
}

/// Waits until the engine's maintenance loop has retired the segment at `path` (its header on
/// disk says free). A condition, not a duration: the deadline only turns a hang into a failure.
fn wait_until_retired(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let bytes = std::fs::read(path).unwrap();
        let header = SegmentHeader::decode(&bytes[..64]).expect("a segment header");
        if header.state == SegmentState::Free {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} was never retired",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn records_held_across_a_close_keep_their_bytes_when_the_reopened_engine_expires_and_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0_MS));
    let held = {
        let engine = open(dir.path(), &clock);
        common::create(&engine, "s", 1);
        put(
            &engine,
            0,
            2 * RECORDS_PER_SEGMENT + RECORDS_PER_SEGMENT / 2,
        );
        let mut iterator = engine
            .stream("s")
            .unwrap()
            .shard_iterator(SHARD, IteratorStart::TrimHorizon)
            .unwrap();
        engine.get_records(&mut iterator, Some(1000)).unwrap()
    }; // the engine is closed here
    let copied = copy(&held);
    assert_eq!(copied.len(), 1000);
    for (i, (_, data)) in copied.iter().enumerate() {
        assert!(
            *data == payload(i as u64, RECORD_BYTES),
            "copy of record {i}"
        );
    }
    // Everything the first engine wrote expires; the reopened engine's maintenance retires it.
    clock.advance_ms(25 * HOUR_MS);
    let engine = open(dir.path(), &clock);
    wait_until_retired(&first_segment(dir.path()));
    // Rolling through more segments than there are files would reuse every retired file.
    let from = 10 * RECORDS_PER_SEGMENT;
    put(&engine, from, from + 5 * RECORDS_PER_SEGMENT);
    let now = copy(&held);
    let changed =
        copied.iter().zip(&now).filter(|(a, b)| a != b).count() + copied.len().abs_diff(now.len());
    assert_eq!(
        changed,
        0,
        "{changed} of {} held records changed",
        copied.len()
    );
    // The reopened engine made progress meanwhile: what it accepted reads back.
    let read = common::read_shard(&engine, "s", SHARD);
    assert_eq!(read.len() as u64, 5 * RECORDS_PER_SEGMENT);
    for (i, (_, _, data)) in read.iter().enumerate() {
        assert!(
            *data == payload(from + i as u64, RECORD_BYTES),
            "record {i}"
        );
    }
}
