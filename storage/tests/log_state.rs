//! The replication layer's state file (`raft.state`) on the real engine: saves replace it whole
//! and survive a restart, a save cut by a power loss leaves the previous one, and damage to
//! both copies stops the open instead of forgetting a vote.

mod common;

use common::replicated::config;
use common::*;
use sluice_storage::format::{STATE_BYTES_MAX, STATE_SLOT_BYTES};
use sluice_storage::io::{FaultyIo, PageLoss, PowerLoss};
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
