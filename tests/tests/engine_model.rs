//! Model-based property test of the engine: random sequences of stream creation and deletion,
//! visible and durable puts and batch puts, splits, merges, shard-count updates, retention
//! changes, reads along the lineage, push subscriptions to every shard (resuming once AFTER
//! their checkpoint, as KCL does), injected write, sync and creation faults (EIO, ENOSPC),
//! clean restarts, crash restarts and power loss (everything unsynced lost, or a seeded prefix
//! per file with a torn write, also in the middle of a put), run against the engine and a plain
//! map of key → records (`sluice_tests::model`). They must agree: every durable record always
//! there, acknowledged records there unless power was lost (then missing only as whole
//! batches at the end of their shard), each key's records in put order, nothing never put.
//! Each case syncs durable puts one way or the other: each shard's own files, or one
//! filesystem sync for all (`SyncScope`), after whose failure every shard asking latches.
//! Cases: 12 by default, PROPTEST_CASES=N for more; SLUICE_MODEL_STATS=1 prints what the cases
//! exercised (failed puts, crashes, writes and records lost).

use proptest::prelude::*;
use sluice_core::SyncScope;
use sluice_storage::io::{PageLoss, PowerLoss};
use sluice_tests::model::{FaultOn, Harness, KEYS, Op, STATS, STREAMS};

fn keys() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        (0..KEYS).prop_map(|k| vec![k]),
        prop::collection::vec(0..KEYS, 1..20),
    ]
}

/// Every model of power loss, the page model (closest to Linux) most often. Its cases shrink
/// towards fewer pages kept and none torn.
fn power_loss() -> impl Strategy<Value = PowerLoss> {
    let pages =
        (any::<u64>(), 0u8..=100, 0u8..=50).prop_map(|(seed, keep_percent, torn_percent)| {
            PowerLoss::Pages(PageLoss {
                seed,
                keep_percent,
                torn_percent,
            })
        });
    prop_oneof![
        1 => Just(PowerLoss::Everything),
        1 => any::<u64>().prop_map(PowerLoss::Seeded),
        3 => pages,
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let stream = 0..STREAMS.len();
    let fault_on = prop_oneof![
        Just(FaultOn::Write),
        Just(FaultOn::Sync),
        Just(FaultOn::Create)
    ];
    prop_oneof![
        2 => (stream.clone(), 1u32..4).prop_map(|(stream, shards)| Op::Create { stream, shards }),
        1 => stream.clone().prop_map(|stream| Op::Delete { stream }),
        10 => (stream.clone(), keys(), any::<bool>())
            .prop_map(|(stream, keys, durable)| Op::Put { stream, keys, durable }),
        2 => (stream.clone(), any::<u8>()).prop_map(|(stream, at)| Op::Split { stream, at }),
        2 => (stream.clone(), any::<u8>()).prop_map(|(stream, first)| Op::Merge { stream, first }),
        1 => (stream.clone(), 1u32..6).prop_map(|(stream, target)| Op::UpdateShardCount { stream, target }),
        1 => (stream.clone(), prop_oneof![Just(23u32), 24u32..100, Just(8761)], any::<bool>())
            .prop_map(|(stream, hours, increase)| Op::Retention { stream, hours, increase }),
        2 => stream.clone().prop_map(|stream| Op::Read { stream }),
        1 => stream.clone().prop_map(|stream| Op::Subscribe { stream }),
        2 => (stream.clone(), any::<u16>()).prop_map(|(stream, pick)| Op::Iterate { stream, pick }),
        1 => (fault_on, 0u8..6, any::<bool>())
            .prop_map(|(on, after, no_space)| Op::Fault { on, after, no_space }),
        1 => Just(Op::Heal),
        1 => Just(Op::Restart),
        1 => Just(Op::Crash),
        1 => power_loss().prop_map(|loss| Op::PowerLoss { loss }),
        1 => (stream.clone(), any::<u8>(), any::<bool>(), 0u8..6, 0u8..3, power_loss()).prop_map(
            |(stream, at, merge, writes, syncs, loss)| Op::PowerCutDuringReshard {
                stream, at, merge, writes, syncs, loss,
            }
        ),
        1 => (stream, keys(), any::<bool>(), 0u8..4, 0u8..3, power_loss()).prop_map(
            |(stream, keys, durable, writes, syncs, loss)| Op::PowerCutDuringPut {
                stream, keys, durable, writes, syncs, loss,
            }
        ),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(12),
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_engine_agrees_with_a_map_of_keys_to_records(
        ops in prop::collection::vec(op(), 1..40),
        filesystem_sync in any::<bool>(),
    ) {
        let scope = if filesystem_sync { SyncScope::Filesystem } else { SyncScope::PerFile };
        run_with(&ops, scope);
        if std::env::var_os("SLUICE_MODEL_STATS").is_some() {
            eprintln!("model so far: {STATS}");
        }
    }
}

/// Runs a fixed sequence of steps on a fresh engine and checks the end, as a case does.
fn run(ops: &[Op]) {
    run_with(ops, SyncScope::PerFile);
}

fn run_with(ops: &[Op], scope: SyncScope) {
    let dir = tempfile::tempdir().unwrap();
    Harness::run(dir.path(), ops, scope);
}

/// Found by the 10,000-case run (case 3,212): a durable put whose sync failed left its record
/// in the log; after a reopen the model knew the record was there but not its sequence number,
/// and its AFTER_SEQUENCE_NUMBER check expected nothing after the record before it. The model
/// now checks AFTER and TRIM_HORIZON exactly only when it knows every record's number.
#[test]
fn a_failed_put_whose_record_survived_is_no_surprise_to_iterators() {
    run(&[
        Op::Create {
            stream: 0,
            shards: 1,
        },
        Op::Put {
            stream: 0,
            keys: vec![2],
            durable: false,
        },
        Op::Fault {
            on: FaultOn::Sync,
            after: 0,
            no_space: false,
        },
        Op::Put {
            stream: 0,
            keys: vec![3],
            durable: true,
        },
        Op::Heal,
        Op::Crash,
        Op::Iterate { stream: 0, pick: 0 },
    ]);
}

/// A crash keeps unsynced records in the page cache; reopening must sync them before the
/// engine counts them (a power loss right after the reopen keeps them). Removing both syncs an
/// open makes (`sync_recovered`, and the one after sealing a recovered segment) was tried and
/// fails this test; removing either alone does not (each covers the active segment).
#[test]
fn a_crash_reopen_makes_what_it_recovered_durable() {
    run(&[
        Op::Create {
            stream: 0,
            shards: 2,
        },
        Op::Put {
            stream: 0,
            keys: vec![0, 1, 2, 3],
            durable: false,
        },
        Op::Crash,
        Op::PowerLoss {
            loss: PowerLoss::Everything,
        },
        Op::Read { stream: 0 },
    ]);
}

/// After a failed fdatasync, Linux may mark the pages it could not write clean: a sync after a
/// restart then succeeds without writing them, and a power loss takes them, cutting the log
/// before records acknowledged durable after the restart. The fault injector models that
/// (the writes a failed sync should have covered stay lost until written again), and the log
/// answers with a marker that makes the next open write its live segments again before
/// syncing. Found by a review of the fault model; without the rewrite this test loses the
/// durable record put after the restart.
#[test]
fn a_failed_fsync_does_not_let_a_restart_trust_unwritten_pages() {
    run(&[
        Op::Create {
            stream: 0,
            shards: 1,
        },
        Op::Put {
            stream: 0,
            keys: vec![0],
            durable: true,
        },
        Op::Fault {
            on: FaultOn::Sync,
            after: 0,
            no_space: false,
        },
        Op::Put {
            stream: 0,
            keys: vec![1],
            durable: false,
        },
        Op::Put {
            stream: 0,
            keys: vec![2],
            durable: true,
        },
        Op::Heal,
        Op::Restart,
        Op::Put {
            stream: 0,
            keys: vec![3],
            durable: true,
        },
        Op::PowerLoss {
            loss: PowerLoss::Everything,
        },
    ]);
}

/// The metadata log is behind the fault injector too. A stream change whose metadata sync
/// failed is in the page cache, so a crash restart replays it; Linux may have marked those
/// pages clean, so without the marker that makes the next open write the log again, a power
/// loss after a later (synced) change loses the replayed entry in the middle of the log: the
/// engine then refuses to open (damage before the end). Fails that way when
/// `MetaLog::open_with_io` skips the rewrite.
#[test]
fn a_stream_change_whose_metadata_sync_failed_survives_a_later_power_loss_once_replayed() {
    run(&[
        Op::Create {
            stream: 0,
            shards: 1,
        },
        Op::Fault {
            on: FaultOn::Sync,
            after: 0,
            no_space: false,
        },
        Op::Retention {
            stream: 0,
            hours: 48,
            increase: true,
        },
        Op::Heal,
        Op::Crash,
        Op::Create {
            stream: 1,
            shards: 1,
        },
        Op::PowerLoss {
            loss: PowerLoss::Everything,
        },
        Op::Read { stream: 0 },
    ]);
}

/// A delete whose metadata sync failed has not happened until a restart says so: after a
/// power loss (which takes the unsynced entry) the stream is there with its records.
#[test]
fn a_delete_whose_metadata_sync_failed_is_undone_by_power_loss() {
    run(&[
        Op::Create {
            stream: 0,
            shards: 1,
        },
        Op::Put {
            stream: 0,
            keys: vec![1, 2],
            durable: true,
        },
        Op::Fault {
            on: FaultOn::Sync,
            after: 0,
            no_space: false,
        },
        Op::Delete { stream: 0 },
        Op::Read { stream: 0 },
        Op::PowerLoss {
            loss: PowerLoss::Seeded(3),
        },
        Op::Read { stream: 0 },
    ]);
}

/// With one filesystem sync for every shard, a failed one loses the pages of a shard that was
/// not waiting on it (here stream 1's visible put). That shard's next durable put must fail
/// (every shard asking after the failure latches) rather than be acknowledged above pages
/// that never reached the device, which the power loss after it takes, cutting the log before
/// the acknowledged record. Falling back to the shard's own fdatasync was tried: it passes
/// here only because the injector reports the lost pages to the file, which Linux does not
/// for an error of the filesystem's own commit.
#[test]
fn a_filesystem_sync_failure_unseen_by_a_shard_fails_its_next_durable_put() {
    run_with(
        &[
            Op::Create {
                stream: 0,
                shards: 1,
            },
            Op::Create {
                stream: 1,
                shards: 1,
            },
            Op::Put {
                stream: 1,
                keys: vec![1, 2],
                durable: false,
            },
            Op::Fault {
                on: FaultOn::Sync,
                after: 0,
                no_space: false,
            },
            Op::Put {
                stream: 0,
                keys: vec![3],
                durable: true,
            },
            Op::Heal,
            Op::Put {
                stream: 1,
                keys: vec![4],
                durable: true,
            },
            Op::PowerLoss {
                loss: PowerLoss::Everything,
            },
            Op::Read { stream: 1 },
        ],
        SyncScope::Filesystem,
    );
}

/// A filesystem sync failed in the engine's last run (its marker is in the data directory):
/// the next open, whatever the scope, gives every shard log and the metadata log their own
/// marker before they open (each then writes its data again) and removes the engine's; the
/// records are all there and durable puts work again.
#[test]
fn an_open_after_a_failed_filesystem_sync_rewrites_every_log() {
    use sluice_core::{CreateStream, Durability, Engine, EngineConfig, PutRecord};
    let dir = tempfile::tempdir().unwrap();
    let config = || {
        let mut config = EngineConfig::new(dir.path());
        config.cores = 1;
        config.segment_size_bytes = 256 << 10;
        config
    };
    let engine = Engine::open(config()).unwrap();
    engine
        .create_stream(CreateStream::provisioned("s", 2))
        .wait()
        .unwrap();
    let keys: Vec<String> = (0..20).map(|i| format!("k{i}")).collect();
    let records: Vec<_> = keys.iter().map(|k| PutRecord::new(k, b"data")).collect();
    let stream = engine.stream("s").unwrap();
    stream.put_batch(&records).wait().unwrap();
    drop(stream);
    drop(engine);
    let marker = dir.path().join(sluice_storage::FILESYSTEM_SYNC_FAILED);
    std::fs::write(&marker, "test").unwrap();
    let engine = Engine::open(config()).unwrap();
    assert!(!marker.exists(), "the open took the engine's marker");
    let shard_markers = walk(dir.path())
        .into_iter()
        .filter(|p| p.ends_with("SYNC-FAILED") || p.to_string_lossy().ends_with(".SYNC-FAILED"))
        .count();
    assert_eq!(
        shard_markers, 0,
        "every log consumed its marker as it opened"
    );
    let stream = engine.stream("s").unwrap();
    let put = stream
        .put_batch(&records)
        .durability(Durability::Durable)
        .wait()
        .unwrap();
    assert_eq!(put.len(), 20);
}

/// Every file under `root`.
fn walk(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(root).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
