//! Kill -9 at each step of a split and of a merge while writers put durably: after restart
//! the layout is exactly the one before or the one after (never in between), the open shards
//! partition the hash space, no uncommitted child is left on disk, and along the lineage every
//! key's records are exactly its puts 0..n in order with n at least what was acknowledged.
//! Rounds: SLUICE_RESHARD_CRASH_ROUNDS (default 1: 10 kills).

use sluice_core::{Engine, HashKeyRange};
use sluice_tests::{
    CRASH_STREAM, assert_acknowledged_records, crash_engine_config, env_u64, read_crash_stream,
};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Each step, and whether the reshard has happened once the process dies there.
const STEPS: [(&str, bool); 5] = [
    ("children-opened", false),
    ("committed", true),
    ("parents-closed", true),
    ("applied", true),
    ("endings-recorded", true),
];

#[test]
fn kill_9_at_every_step_of_a_split_and_a_merge_recovers_to_before_or_after() {
    let rounds = env_u64("SLUICE_RESHARD_CRASH_ROUNDS").unwrap_or(1);
    let dir = tempfile::tempdir().unwrap();
    let mut acknowledged: BTreeMap<(u64, u64), u64> = BTreeMap::new();
    let mut shards_before = 4; // the child creates the stream with 4 shards
    let mut run = 0;
    for _ in 0..rounds {
        for op in ["split", "merge"] {
            for (step, committed) in STEPS {
                let acked = run_child_and_kill(dir.path(), run, step, op);
                for (writer, n) in acked {
                    acknowledged.insert((run, writer), n);
                }
                let added = match (committed, op) {
                    (false, _) => 0,
                    (true, "split") => 2,
                    (true, _) => 1,
                };
                let shards_now =
                    check(dir.path(), &acknowledged, &format!("{op} killed at {step}"));
                assert_eq!(
                    shards_now,
                    shards_before + added,
                    "{op} killed at {step}: before or after, nothing in between"
                );
                shards_before = shards_now;
                run += 1;
            }
        }
    }
}

/// Runs the child until its reshard stops at `step`, SIGKILLs it, returns its acknowledgements.
fn run_child_and_kill(dir: &Path, run: u64, step: &str, op: &str) -> BTreeMap<u64, u64> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice-reshard-crash-writer"))
        .args([dir.to_str().unwrap(), &run.to_string(), step, op])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the child");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let lines = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            tx.send(line).ok();
        }
    });
    let mut acked = BTreeMap::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the child stopped at no step");
        let mut parts = line.split_whitespace();
        match parts.next() {
            Some("ack") => {
                let writer: u64 = parts.next().unwrap().parse().unwrap();
                acked.insert(writer, parts.next().unwrap().parse().unwrap());
            }
            Some("at") => break,
            Some("done") => panic!("{op} finished without stopping at {step}"),
            _ => {}
        }
    }
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    lines.join().unwrap();
    for line in rx.try_iter() {
        let mut parts = line.split_whitespace();
        if parts.next() == Some("ack") {
            let writer: u64 = parts.next().unwrap().parse().unwrap();
            acked.insert(writer, parts.next().unwrap().parse().unwrap());
        }
    }
    acked
}

/// Reopens the engine and checks layout and records; returns the number of shards.
fn check(dir: &Path, acknowledged: &BTreeMap<(u64, u64), u64>, what: &str) -> usize {
    let engine = Engine::open(crash_engine_config(dir)).expect("reopen");
    let all = engine
        .stream(CRASH_STREAM)
        .unwrap()
        .describe(Some(100), None)
        .unwrap()
        .shards;
    let mut open: Vec<HashKeyRange> = all
        .iter()
        .filter(|s| s.ending_sequence_number.is_none())
        .map(|s| s.hash_key_range)
        .collect();
    open.sort_by_key(|r| r.start);
    assert_eq!(
        open.first().unwrap().start,
        0,
        "{what}: open shards start at 0"
    );
    assert_eq!(
        open.last().unwrap().end,
        u128::MAX,
        "{what}: and end at 2^128 - 1"
    );
    for pair in open.windows(2) {
        assert_eq!(pair[0].end + 1, pair[1].start, "{what}: no gap, no overlap");
    }
    let streams = std::fs::read_dir(dir.join("streams"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let shard_dirs = std::fs::read_dir(streams).unwrap().count();
    assert_eq!(
        shard_dirs,
        all.len(),
        "{what}: no uncommitted child left on disk"
    );
    let found = read_crash_stream(&engine);
    assert_acknowledged_records(&found, acknowledged, what);
    all.len()
}
