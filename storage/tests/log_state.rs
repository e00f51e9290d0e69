//! The replication layer's state file (`raft.state`) on the real engine: saves replace it whole
//! and survive a restart, a save cut by a power loss leaves the previous one, and damage to
//! both copies stops the open instead of forgetting a vote.

mod common;

use common::replicated::config;
use common::*;
use sluice_storage::format::{STATE_BYTES_MAX, STATE_SLOT_BYTES, decode_state};
use sluice_storage::io::{Fault, FaultPlan, FaultyIo, PageLoss, PowerLoss};
use sluice_storage::runtime::block_on;
use sluice_storage::{GlommioIo, ShardLog, StorageError};
use std::os::unix::fs::FileExt;

fn state(n: u64) -> Vec<u8> {
    format!(
        "{{\"vote\":{{\"term\":{n},\"node\":3}},\"committed\":{}}}",
        n * 10
    )
    .into_bytes()
}

#[test]
fn the_last_save_is_the_state_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = manual_clock();
    block_on(async {
        let plain = tempfile::tempdir().unwrap();
        let single = open(GlommioIo, plain.path(), small_config(), clock.clone()).await;
        assert!(matches!(
            single.save_raft_state(b"x").await,
            Err(StorageError::EntryRefused { .. })
        ));
        let log = open(GlommioIo, dir.path(), config(), clock.clone()).await;
        assert_eq!(log.raft_state(), None);
        for n in 1..=25 {
            log.save_raft_state(&state(n)).await.unwrap();
            assert_eq!(log.raft_state(), Some(state(n)));
        }
        let too_large = vec![1u8; STATE_BYTES_MAX + 1];
        assert!(matches!(
            log.save_raft_state(&too_large).await,
            Err(StorageError::StateTooLarge { .. })
        ));
        assert_eq!(log.raft_state(), Some(state(25)));
        log.close().await.unwrap();
        let log = open(GlommioIo, dir.path(), config(), clock.clone()).await;
        assert_eq!(log.raft_state(), Some(state(25)));
        let largest = vec![7u8; STATE_BYTES_MAX];
        log.save_raft_state(&largest).await.unwrap();
        log.save_raft_state(b"").await.unwrap();
        drop(log);
        let log = open(GlommioIo, dir.path(), config(), clock.clone()).await;
        assert_eq!(log.raft_state(), Some(Vec::new()));
    });
}

/// Power fails while a save's write waits for its sync: whatever pages the device kept (the
/// new copy whole, torn or not at all), the state is the new save or the one before it.
#[test]
fn a_save_cut_by_a_power_loss_leaves_the_previous_state_or_the_new_one() {
    for seed in 0..10u64 {
        let dir = tempfile::tempdir().unwrap();
        let clock = manual_clock();
        let io = FaultyIo::new(GlommioIo);
        block_on(async {
            let log = open(io.clone(), dir.path(), config(), clock.clone()).await;
            // A state over several pages, so a copy can be torn between them.
            let big = |n: u64| {
                let mut bytes = state(n);
                bytes.resize(20_000, n as u8);
                bytes
            };
            for n in 1..=(2 + seed % 2) {
                log.save_raft_state(&big(n)).await.unwrap();
            }
            let hold = io.hold_syncs().await;
            {
                let next = big(9);
                let mut save = std::pin::pin!(log.save_raft_state(&next));
                let written = || !io.unsynced_writes().is_empty();
                assert!(!drive_until(save.as_mut(), written).await);
            }
            io.cut_power();
            drop(log);
            drop(hold);
        });
        let loss = PageLoss {
            seed,
            keep_percent: (seed * 37 % 101) as u8,
            torn_percent: (seed * 23 % 60) as u8,
        };
        io.lose_power(PowerLoss::Pages(loss)).unwrap();
        io.heal();
        block_on(async {
            let log = open(GlommioIo, dir.path(), config(), clock.clone()).await;
            let found = log.raft_state().expect("a state");
            let term = String::from_utf8_lossy(&found[..30]).to_string();
            let previous = format!("\"term\":{}", 2 + seed % 2);
            assert!(
                term.contains(&previous) || term.contains("\"term\":9"),
                "{loss:?}: {term}"
            );
        });
    }
}

/// Both copies damaged: the open fails and says where, and the log's data is left as it was.
#[test]
fn a_state_file_with_no_intact_copy_stops_the_open() {
    let dir = tempfile::tempdir().unwrap();
    let clock = manual_clock();
    block_on(async {
        let log = open(GlommioIo, dir.path(), config(), clock.clone()).await;
        log.save_raft_state(&state(1)).await.unwrap();
        log.save_raft_state(&state(2)).await.unwrap();
        log.close().await.unwrap();
        let path = dir.path().join("raft.state");
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.write_at(&[0xff], 40).unwrap();
        // One copy damaged: the other, older one is the state.
        drop(file);
        let log = open(GlommioIo, dir.path(), config(), clock.clone()).await;
        let older = log.raft_state().unwrap();
        assert!(older == state(1) || older == state(2));
        drop(log);
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.write_at(&[0xff], 40).unwrap();
        file.write_at(&[0xff], STATE_SLOT_BYTES + 40).unwrap();
        drop(file);
        let refused = ShardLog::open(GlommioIo, dir.path(), config(), clock.clone()).await;
        let Err(StorageError::Corrupt { path: at, .. }) = refused else {
            panic!("opened over a damaged state: {refused:?}");
        };
        assert_eq!(at, path);
    });
}

/// The first save torn by a power loss: slot 0 holds the "no state" copy written before it
/// (checked on a real file), slot 1 part of the new copy; the log opens with no state and
/// saves again. A file whose creation a crash cut short (all zero) gets that copy before its
/// first save.
#[test]
fn a_torn_first_save_leaves_no_state_and_an_openable_log() {
    let dir = tempfile::tempdir().unwrap();
    let clock = manual_clock();
    let path = dir.path().join("raft.state");
    block_on(async {
        let log = open(GlommioIo, dir.path(), config(), clock.clone()).await;
        log.save_raft_state(&state(1)).await.unwrap();
    });
    let bytes = std::fs::read(&path).unwrap();
    let slot_0 = &bytes[..STATE_SLOT_BYTES as usize];
    assert_eq!(
        decode_state(&slot_0_only(slot_0)).unwrap(),
        None,
        "the no-state copy"
    );
    // Slot 1's first page on the device, the rest of it lost: half of the copy.
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.write_at(&[0u8; 8], STATE_SLOT_BYTES + 36).unwrap();
    drop(file);
    block_on(async {
        let log = open(GlommioIo, dir.path(), config(), clock.clone()).await;
        assert_eq!(log.raft_state(), None);
        log.save_raft_state(&state(2)).await.unwrap();
    });
    // Creation cut short: the file exists, all zero.
    std::fs::write(&path, vec![0u8; 2 * STATE_SLOT_BYTES as usize]).unwrap();
    block_on(async {
        let log = open(GlommioIo, dir.path(), config(), clock.clone()).await;
        assert_eq!(log.raft_state(), None);
        log.save_raft_state(&state(3)).await.unwrap();
    });
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(
        decode_state(&slot_0_only(&bytes[..STATE_SLOT_BYTES as usize])).unwrap(),
        None
    );
    assert_eq!(decode_state(&bytes).unwrap(), Some((1, state(3))));
}

/// The file's bytes with slot 1 zeroed: what decoding slot 0 alone gives.
fn slot_0_only(slot_0: &[u8]) -> Vec<u8> {
    let mut file = slot_0.to_vec();
    file.resize(2 * STATE_SLOT_BYTES as usize, 0);
    file
}

/// A save whose sync never completed (cancelled, or failed) is in the page cache: the next
/// open may read it, and then it must be on the device, or a power loss would take back a
/// state (a vote) the node already acted on.
#[test]
fn a_state_read_at_open_is_durable_before_it_is_returned() {
    for failed_sync in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let clock = manual_clock();
        let io = FaultyIo::new(GlommioIo);
        let seen = block_on(async {
            let log = open(io.clone(), dir.path(), config(), clock.clone()).await;
            log.save_raft_state(&state(1)).await.unwrap();
            if failed_sync {
                io.arm(FaultPlan {
                    fail_sync_from: Some((0, Fault::Eio)),
                    ..FaultPlan::default()
                });
                assert!(log.save_raft_state(&state(2)).await.is_err());
                io.heal();
            } else {
                let hold = io.hold_syncs().await;
                {
                    let next = state(2);
                    let mut save = std::pin::pin!(log.save_raft_state(&next));
                    let written = || !io.unsynced_writes().is_empty();
                    assert!(!drive_until(save.as_mut(), written).await);
                }
                drop(hold);
            }
            // A process crash: the page cache survives.
            drop(log);
            let log = open(io.clone(), dir.path(), config(), clock.clone()).await;
            log.raft_state().unwrap()
        });
        io.lose_unsynced_writes().unwrap();
        block_on(async {
            let log = open(GlommioIo, dir.path(), config(), clock.clone()).await;
            assert_eq!(
                log.raft_state().unwrap(),
                seen,
                "failed sync: {failed_sync}"
            );
        });
    }
}
