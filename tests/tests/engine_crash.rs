//! Kill -9 while a real process puts durably through the engine from several threads (and, in
//! every other run, splits and merges shards at random moments); after each kill the engine
//! reopens and every acknowledged record is there, once, intact, in put order per key along
//! the shard lineage. Cycles: SLUICE_ENGINE_CRASH_CYCLES (default 200, the proof-of-safety issue's
//! CI floor), 25 per data directory; seed: SLUICE_CRASH_SEED.

use sluice_core::Engine;
use sluice_storage::testing::Rng;
use sluice_tests::crash::{check_engine_crash, run_engine_crash_writer};
use sluice_tests::{CRASH_STREAM, all_shards, crash_engine_config, crash_seed, env_u64};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

#[test]
fn kill_9_during_durable_puts_loses_no_acknowledged_record() {
    let cycles = env_u64("SLUICE_ENGINE_CRASH_CYCLES").unwrap_or(200);
    let seed = crash_seed();
    println!("engine crash test: {cycles} cycles, SLUICE_CRASH_SEED={seed}");
    let mut rng = Rng::new(seed);
    let mut total = 0;
    // New shards the children's splits and merges left (each adds one or two).
    let mut reshards = 0;
    // Each data directory takes `CYCLES_PER_DIRECTORY` kills, every one checked against all
    // the directory's history; then a fresh one starts, so the read-back after each kill
    // stays bounded (checking one ever-growing history made 200 cycles quadratic).
    for epoch in 0..cycles.div_ceil(CYCLES_PER_DIRECTORY) {
        let dir = tempfile::tempdir().unwrap();
        // (run, writer) -> records 0..n acknowledged durable.
        let mut acknowledged: BTreeMap<(u64, u64), u64> = BTreeMap::new();
        let first = epoch * CYCLES_PER_DIRECTORY;
        for run in first..cycles.min(first + CYCLES_PER_DIRECTORY) {
            let after = Duration::from_millis(5 + rng.below(150));
            let reshards = if run % 2 == 1 { 1 + rng.below(3) } else { 0 };
            let acked = run_engine_crash_writer(writer(), dir.path(), run, reshards, after);
            for (writer, n) in acked {
                acknowledged.insert((run, writer), n);
            }
            check_engine_crash(
                dir.path(),
                &acknowledged,
                &format!("SLUICE_CRASH_SEED={seed}"),
            );
        }
        total += acknowledged.values().sum::<u64>();
        let engine = Engine::open(crash_engine_config(dir.path())).expect("reopen");
        reshards += all_shards(&engine, CRASH_STREAM).len() - 4;
    }
    assert!(total > 0, "the writers acknowledged records");
    println!(
        "engine crash test: {cycles} kills, {total} acknowledged records, all present; \
         {reshards} shards created by reshards"
    );
}

/// Kills one data directory takes before the next cycle starts a fresh one.
const CYCLES_PER_DIRECTORY: u64 = 25;

/// The child: `sluice-engine-crash-writer`.
fn writer() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_sluice-engine-crash-writer"))
}
