//! Kill -9 while a real process puts durably through the engine from several threads (and, in
//! every other run, splits and merges shards at random moments); after each kill the engine
//! reopens and every acknowledged record is there, once, intact, in put order per key along
//! the shard lineage. Cycles: SLUICE_ENGINE_CRASH_CYCLES (default 200, the proof-of-safety issue's
//! CI floor), 25 per data directory; seed: SLUICE_CRASH_SEED.

use sluice_core::Engine;
use sluice_storage::testing::Rng;
use sluice_tests::{
    CRASH_STREAM, all_shards, assert_acknowledged_records, assert_open_shards_partition,
    crash_engine_config, crash_seed, env_u64, read_crash_stream,
};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
            for (writer, n) in run_child_and_kill(dir.path(), run, reshards, after) {
                acknowledged.insert((run, writer), n);
            }
            check(dir.path(), &acknowledged, seed);
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

/// Runs the child (making `reshards` reshards meanwhile) until `after` past its first
/// acknowledgement, kills it with SIGKILL and returns, per writer, how many records it acknowledged.
fn run_child_and_kill(dir: &Path, run: u64, reshards: u64, after: Duration) -> BTreeMap<u64, u64> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice-engine-crash-writer"))
        .arg(dir)
        .arg(run.to_string())
        .arg(reshards.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the writer");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let lines = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let mut parts = line.split_whitespace();
            if parts.next() == Some("ack") {
                let writer: u64 = parts.next().unwrap().parse().unwrap();
                let n: u64 = parts.next().unwrap().parse().unwrap();
                tx.send((writer, n)).ok();
            }
        }
    });
    let mut acked = BTreeMap::new();
    let first = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the writer acknowledged nothing");
    acked.insert(first.0, first.1);
    let deadline = Instant::now() + after;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok((writer, n)) => {
                acked.insert(writer, n);
            }
            Err(_) => break,
        }
    }
    child.kill().expect("SIGKILL");
    let status = child.wait().unwrap();
    // Anything but our SIGKILL (a failed reshard, a panic) is a failure of the child.
    assert_eq!(
        status.signal(),
        Some(9),
        "the writer ended on its own: {status}"
    );
    lines.join().unwrap();
    for (writer, n) in rx.try_iter() {
        acked.insert(writer, n);
    }
    acked
}

/// Reopens the engine and checks, per key, that its records are `0..m` in order with
/// `m` at least what was acknowledged, each intact.
fn check(dir: &Path, acknowledged: &BTreeMap<(u64, u64), u64>, seed: u64) {
    let engine = Engine::open(crash_engine_config(dir)).expect("reopen");
    // A kill inside a split or merge leaves the layout before or after it, never between.
    assert_open_shards_partition(&engine, CRASH_STREAM, &format!("SLUICE_CRASH_SEED={seed}"));
    let found = read_crash_stream(&engine);
    assert_acknowledged_records(&found, acknowledged, &format!("SLUICE_CRASH_SEED={seed}"));
}
