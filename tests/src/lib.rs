//! Helpers shared by Sluice's cross-crate tests and their child processes.

pub mod crash;
pub mod loop_disk;
pub mod model;

use sluice_storage::testing::{Rng, key, payload};

pub use sluice_storage::testing::{needs, runs};

/// Whether this process runs as root.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// A number from the environment, if set and valid.
pub fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// The crash tests' seed: `SLUICE_CRASH_SEED` to replay a run, else the time.
pub fn crash_seed() -> u64 {
    env_u64("SLUICE_CRASH_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("the clock is after 1970")
            .as_nanos() as u64
    })
}

/// Length of record `seq`'s data: 0 to 2999 bytes, fixed by the sequence number.
pub fn record_len(seq: u64) -> usize {
    (Rng::new(seq ^ 0xABCD).next_u64() % 3000) as usize
}

/// Data of record `seq`: derived from the sequence number alone, so a reader can check it.
pub fn record_data(seq: u64) -> Vec<u8> {
    payload(seq, record_len(seq))
}

/// Key of record `seq`.
pub fn record_key(seq: u64) -> Vec<u8> {
    key(seq).into_bytes()
}

/// The log configuration of the crash test (small segments, so kills land around rolls too).
pub fn crash_log_config() -> sluice_storage::LogConfig {
    sluice_storage::LogConfig {
        segment_size_bytes: 1 << 20,
        record_size_bytes_max: 64 * 1024,
        index_interval_bytes: 16 * 1024,
        ..sluice_storage::LogConfig::default()
    }
}

/// The engine configuration of the engine crash test: small segments (rolls under the kill),
/// two cores, durable puts.
pub fn crash_engine_config(dir: &std::path::Path) -> sluice_core::EngineConfig {
    let mut config = sluice_core::EngineConfig::new(dir);
    config.cores = 2;
    config.segment_size_bytes = 1 << 20;
    config.maintenance_interval_ms = 5;
    config
}

/// Stream of the engine crash test.
pub const CRASH_STREAM: &str = "crash";

/// Consumer of the consumer checkpoint crash test.
pub const CRASH_CONSUMER: &str = "crash-consumer";

/// Partition key of writer `writer` in run `run`.
pub fn engine_record_key(run: u64, writer: u64) -> String {
    format!("r{run}-w{writer}")
}

/// Data of record `n` of that writer: its identity, then filler derived from it.
pub fn engine_record_data(run: u64, writer: u64, n: u64) -> Vec<u8> {
    let mut data = format!("r{run}-w{writer}-n{n};").into_bytes();
    let seed = run ^ (writer << 48) ^ n;
    // The first 500 bytes of `record_data(seed)`: a payload's prefix is a shorter payload.
    data.extend(payload(seed, record_len(seed).min(500)));
    data
}

/// Runs `writers` threads that put durably into `stream` forever, printing `ack <writer> <n>`
/// after each acknowledgement (records `0..n` of that writer in run `run` are durable). For
/// the crash tests' child processes.
pub fn run_durable_writers(engine: &sluice_core::Engine, stream: &str, run: u64, writers: u64) {
    use std::io::Write;
    let out = std::sync::Mutex::new(std::io::stdout());
    std::thread::scope(|scope| {
        for writer in 0..writers {
            let out = &out;
            scope.spawn(move || {
                let key = engine_record_key(run, writer);
                let mut rng = Rng::new(run ^ writer);
                let mut n = 0;
                loop {
                    let count = 1 + rng.below(30);
                    let data: Vec<Vec<u8>> = (n..n + count)
                        .map(|i| engine_record_data(run, writer, i))
                        .collect();
                    let records: Vec<sluice_core::PutRecord<'_>> = data
                        .iter()
                        .map(|d| sluice_core::PutRecord::new(&key, d))
                        .collect();
                    let results = engine
                        .stream(stream)
                        .unwrap()
                        .put_batch(&records)
                        .durability(sluice_core::Durability::Durable)
                        .wait()
                        .expect("put");
                    assert!(results.iter().all(|r| r.is_ok()), "no record fails");
                    n += count;
                    let mut out = out.lock().expect("no panic while printing");
                    writeln!(out, "ack {writer} {n}").expect("stdout");
                    out.flush().expect("stdout");
                }
            });
        }
    });
}

/// Splits (while fewer than 6 shards are open) or merges (otherwise) `stream`'s shards
/// `count` times, at random moments (seeded by `run`). For the crash tests' child processes.
pub fn reshard_at_random(engine: &sluice_core::Engine, stream: &str, run: u64, count: u64) {
    let mut rng = Rng::new(run ^ 0x5EED);
    for _ in 0..count {
        std::thread::sleep(std::time::Duration::from_millis(5 + rng.below(40)));
        let mut open: Vec<_> = all_shards(engine, stream)
            .into_iter()
            .filter(|s| s.ending_sequence_number.is_none())
            .collect();
        open.sort_by_key(|s| s.hash_key_range.start);
        let result = if open.len() < 6 && rng.below(2) == 0 || open.len() < 2 {
            let shard = &open[rng.below(open.len() as u64) as usize];
            let range = shard.hash_key_range;
            let key = range.start + (range.end - range.start) / 2;
            engine
                .stream(stream)
                .unwrap()
                .split_shard(&shard.shard_id, &key.to_string())
                .wait()
                .map(drop)
        } else {
            let i = rng.below(open.len() as u64 - 1) as usize;
            engine
                .stream(stream)
                .unwrap()
                .merge_shards(&open[i].shard_id, &open[i + 1].shard_id)
                .wait()
                .map(drop)
        };
        result.expect("reshard");
    }
}

/// Every shard of `stream`, open and closed, over every page of its description.
pub fn all_shards(
    engine: &sluice_core::Engine,
    stream: &str,
) -> Vec<sluice_core::ShardDescription> {
    let mut shards = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = engine
            .stream(stream)
            .unwrap()
            .describe(Some(100), after.as_deref())
            .expect("describe");
        after = page.shards.last().map(|s| s.shard_id.to_string());
        let more = page.has_more_shards && after.is_some();
        shards.extend(page.shards);
        if !more {
            return shards;
        }
    }
}

/// Asserts that the open shards of `stream` partition the hash space (contiguous ranges from 0
/// to 2^128 - 1): a reshard is all or nothing, also across a crash. `context` names the run.
pub fn assert_open_shards_partition(engine: &sluice_core::Engine, stream: &str, context: &str) {
    let mut open: Vec<_> = all_shards(engine, stream)
        .into_iter()
        .filter(|s| s.ending_sequence_number.is_none())
        .map(|s| s.hash_key_range)
        .collect();
    open.sort_by_key(|r| r.start);
    let whole = open.first().is_some_and(|r| r.start == 0)
        && open.last().is_some_and(|r| r.end == u128::MAX)
        && open
            .windows(2)
            .all(|w| w[0].end.checked_add(1) == Some(w[1].start));
    assert!(
        whole,
        "{context}: open shards of {stream} do not partition the hash space: {open:?}"
    );
}

/// Every record of the crash stream along its lineage: see [`read_stream_by_key`].
pub fn read_crash_stream(
    engine: &sluice_core::Engine,
) -> std::collections::BTreeMap<String, Vec<Vec<u8>>> {
    read_stream_by_key(engine, CRASH_STREAM)
}

/// Every record of `stream` along its lineage (parents before children): partition key →
/// data, in read order. Nobody writes meanwhile, so the read is complete once every shard in
/// turn had nothing new (open shards never end).
pub fn read_stream_by_key(
    engine: &sluice_core::Engine,
    stream: &str,
) -> std::collections::BTreeMap<String, Vec<Vec<u8>>> {
    let found = read_stream_records(engine, stream);
    let data = |records: Vec<(Vec<u8>, sluice_core::SequenceNumber)>| {
        records.into_iter().map(|(data, _)| data).collect()
    };
    found
        .into_iter()
        .map(|(key, records)| (key, data(records)))
        .collect()
}

/// Like [`read_stream_by_key`], with each record's sequence number (which names its shard).
pub fn read_stream_records(
    engine: &sluice_core::Engine,
    stream: &str,
) -> std::collections::BTreeMap<String, Vec<(Vec<u8>, sluice_core::SequenceNumber)>> {
    let stream = engine.stream(stream).unwrap();
    let mut reader = stream.reader().expect("the stream exists");
    drain_reader(&stream, &mut reader)
}

/// Everything `reader` (of `stream`) delivers while nobody writes: partition key → (data,
/// sequence number), in read order. The read is complete once every shard in turn had nothing
/// new (open shards never end).
pub fn drain_reader(
    stream: &sluice_core::Stream,
    reader: &mut sluice_core::StreamReader,
) -> std::collections::BTreeMap<String, Vec<(Vec<u8>, sluice_core::SequenceNumber)>> {
    let shards = stream.summary().expect("the stream exists");
    let mut found: std::collections::BTreeMap<String, Vec<_>> = Default::default();
    let mut empty_in_a_row = 0;
    // Closed shards end (and start their children) before their children can be empty
    // readers; a round of empty reads over every shard means everything was read.
    let enough = 2 * (shards.open_shard_count + 1) + 2;
    while !reader.is_finished() && empty_in_a_row < enough {
        let batch = reader
            .read(None)
            .expect("every record reads back")
            .expect("a shard to read");
        if batch.records.is_empty() && !batch.records.end_of_shard {
            empty_in_a_row += 1;
        } else {
            empty_in_a_row = 0;
        }
        for record in batch.records.records() {
            found
                .entry(record.partition_key.to_owned())
                .or_default()
                .push((record.data.to_vec(), record.sequence_number));
        }
    }
    found
}

/// Checks that each writer's key holds exactly its puts `0..m`, in order and intact, with
/// `m` at least what was acknowledged. `context` names the run in failure messages.
pub fn assert_acknowledged_records(
    found: &std::collections::BTreeMap<String, Vec<Vec<u8>>>,
    acknowledged: &std::collections::BTreeMap<(u64, u64), u64>,
    context: &str,
) {
    for (&(run, writer), &acked) in acknowledged {
        let key = engine_record_key(run, writer);
        let records = found.get(&key).map(Vec::as_slice).unwrap_or(&[]);
        assert!(
            records.len() as u64 >= acked,
            "{context}: {key} has {} records back, {acked} acknowledged durable",
            records.len()
        );
        for (n, data) in records.iter().enumerate() {
            assert!(
                *data == engine_record_data(run, writer, n as u64),
                "{context}: {key} record {n} is not the {n}th put (order, duplicate or damage)"
            );
        }
    }
}
