//! API sequences against the model: the fuzzer picks operations (puts, reshards, retention,
//! reads, subscriptions, injected faults, restarts, crashes, power loss) and
//! `sluice_tests::model` runs them on a real engine and a map of key → records, panicking on
//! any disagreement. The proptest suite (tests/tests/engine_model.rs) explores the same space
//! at random; this lets libFuzzer steer by coverage. A byte after the ops picks the sync scope
//! (each shard's files, or one filesystem sync).
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use sluice_core::SyncScope;
use sluice_storage::io::{PageLoss, PowerLoss};
use sluice_tests::model::{FaultOn, Harness, KEYS, Op, STREAMS};

/// Operations per input at most: each is real I/O, so inputs stay short.
const OPS_MAX: usize = 24;

/// Every model of power loss; the page model (closest to Linux) most often.
fn power_loss(u: &mut Unstructured<'_>) -> Result<PowerLoss> {
    Ok(match u.int_in_range(0..=4)? {
        0 => PowerLoss::Everything,
        1 => PowerLoss::Seeded(u.arbitrary()?),
        _ => PowerLoss::Pages(PageLoss {
            seed: u.arbitrary()?,
            keep_percent: u.int_in_range(0..=100)?,
            torn_percent: u.int_in_range(0..=50)?,
        }),
    })
}

fn keys(u: &mut Unstructured<'_>) -> Result<Vec<usize>> {
    let n = u.int_in_range(1..=20)?;
    (0..n).map(|_| u.choose_index(KEYS)).collect()
}

fn op(u: &mut Unstructured<'_>) -> Result<Op> {
    let stream = u.choose_index(STREAMS.len())?;
    Ok(match u.int_in_range(0..=16u8)? {
        0 => Op::Create { stream, shards: u.int_in_range(1..=3)? },
        1 => Op::Delete { stream },
        2 | 3 => Op::Put { stream, keys: keys(u)?, durable: u.arbitrary()? },
        4 => Op::Split { stream, at: u.arbitrary()? },
        5 => Op::Merge { stream, first: u.arbitrary()? },
        6 => Op::UpdateShardCount { stream, target: u.int_in_range(1..=5)? },
        7 => Op::Retention { stream, hours: u.int_in_range(20..=8770)?, increase: u.arbitrary()? },
        8 => Op::Read { stream },
        9 => Op::Subscribe { stream },
        10 => Op::Fault {
            on: *u.choose(&[FaultOn::Write, FaultOn::Sync, FaultOn::Create])?,
            after: u.int_in_range(0..=5)?,
            no_space: u.arbitrary()?,
        },
        11 => Op::Heal,
        12 => if u.arbitrary()? { Op::Restart } else { Op::Crash },
        13 => Op::PowerLoss { loss: power_loss(u)? },
        14 => Op::Iterate { stream, pick: u.arbitrary()? },
        15 => Op::PowerCutDuringReshard {
            stream,
            at: u.arbitrary()?,
            merge: u.arbitrary()?,
            writes: u.int_in_range(0..=5)?,
            syncs: u.int_in_range(0..=2)?,
            loss: power_loss(u)?,
        },
        _ => Op::PowerCutDuringPut {
            stream,
            keys: keys(u)?,
            durable: u.arbitrary()?,
            writes: u.int_in_range(0..=3)?,
            syncs: u.int_in_range(0..=2)?,
            loss: power_loss(u)?,
        },
    })
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let mut ops = Vec::new();
    while ops.len() < OPS_MAX && !u.is_empty() {
        match op(&mut u) {
            Ok(op) => ops.push(op),
            Err(_) => break,
        }
    }
    // Taken after the ops, so the seeds' ops decode as before; out of bytes: per file.
    let scope = match u.arbitrary::<bool>() {
        Ok(true) => SyncScope::Filesystem,
        _ => SyncScope::PerFile,
    };
    let dir = tempfile::tempdir().unwrap();
    Harness::run(dir.path(), &ops, scope);
});
