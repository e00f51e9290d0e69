//! Kill -9 while a real process appends: every record acknowledged as durable survives, in
//! order and intact, and nothing corrupt is ever returned. Cycles: SLUICE_CRASH_CYCLES (default
//! 25); seed: SLUICE_CRASH_SEED (printed on failure).

use sluice_storage::runtime::block_on;
use sluice_storage::testing::Rng;
use sluice_storage::{GlommioIo, ReadLimits, ShardLog, SystemClock};
use sluice_tests::{crash_log_config, crash_seed, env_u64, record_data, record_key};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[test]
fn kill_9_during_appends_never_loses_a_durable_record() {
    let cycles = env_u64("SLUICE_CRASH_CYCLES").unwrap_or(25);
    let seed = crash_seed();
    println!("crash test: {cycles} cycles, SLUICE_CRASH_SEED={seed}");
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(seed);
    let mut durable_floor = 0u64;
    for cycle in 0..cycles {
        let acked = run_child_and_kill(
            dir.path(),
            rng.next_u64(),
            Duration::from_millis(2 + rng.below(60)),
        );
        durable_floor = durable_floor.max(acked);
        let recovered = check_log(dir.path());
        assert!(
            recovered >= durable_floor,
            "cycle {cycle} (SLUICE_CRASH_SEED={seed}): {recovered} records back, {durable_floor} acknowledged durable"
        );
        // Visible-only records may be lost; the next child continues from what recovered.
        durable_floor = durable_floor.min(recovered);
    }
}

/// Runs the writer until `after` past its first durable ack, kills it with SIGKILL, and
/// returns the highest end sequence it acknowledged as durable.
fn run_child_and_kill(dir: &Path, seed: u64, after: Duration) -> u64 {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice-crash-writer"))
        .arg(dir)
        .arg(seed.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the writer");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let lines = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(end) = line.strip_prefix("durable ") {
                tx.send(end.parse::<u64>().unwrap()).ok();
            }
        }
    });
    let mut acked = 0;
    let first = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the writer acknowledged nothing");
    acked = acked.max(first);
    let deadline = Instant::now() + after;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(end) => acked = acked.max(end),
            Err(_) => break,
        }
    }
    child.kill().expect("SIGKILL"); // std's kill sends SIGKILL on Unix
    child.wait().unwrap();
    lines.join().unwrap();
    // Acks printed before the kill but read after it still count.
    acked.max(rx.try_iter().max().unwrap_or(0))
}

/// Reopens the log and checks every record it holds; returns how many there are.
fn check_log(dir: &Path) -> u64 {
    let config = crash_log_config();
    block_on(async move {
        let log = ShardLog::open(GlommioIo, dir, config, Arc::new(SystemClock))
            .await
            .expect("reopen");
        let reader = log.reader();
        println!(
            "recovered {} records: {:?}",
            reader.next_seq(),
            log.recovery_report()
        );
        assert_eq!(reader.trim_horizon(), 0);
        let mut seq = 0;
        while seq < reader.next_seq() {
            let batch = reader
                .read(seq, ReadLimits::default())
                .expect("every recovered record reads back");
            for record in batch.records() {
                assert_eq!(record.seq, seq, "in order, no gaps");
                assert_eq!(record.key, record_key(seq).as_slice());
                assert!(
                    record.data == record_data(seq).as_slice(),
                    "record {seq} intact"
                );
                seq += 1;
            }
        }
        reader.next_seq()
    })
}
