//! The metadata log under the fault injector (`FaultyIo::blocking`): injected write and sync
//! failures, unsynced writes undone by power loss (also writes that extended the file), and
//! a failed sync whose pages a later sync may skip.

use sluice_storage::io::{Fault, FaultPlan, FaultyIo, PowerLoss};
use sluice_storage::{GlommioIo, MetaLog, StorageError};
use std::path::Path;

#[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct Entry {
    name: String,
}

fn entry(name: &str) -> Entry {
    Entry {
        name: name.to_owned(),
    }
}

fn open(faults: &FaultyIo<GlommioIo>, path: &Path) -> (MetaLog<Entry>, Vec<Entry>) {
    MetaLog::open_with_io(faults.blocking(), path).unwrap()
}

fn fail_syncs(faults: &FaultyIo<GlommioIo>) {
    faults.arm(FaultPlan {
        fail_sync_from: Some((0, Fault::Eio)),
        ..FaultPlan::default()
    });
}

#[test]
fn every_acknowledged_append_is_synced_and_survives_power_loss() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.log");
    let faults = FaultyIo::new(GlommioIo);
    let (mut log, _) = open(&faults, &path);
    for name in ["a", "b", "c"] {
        log.append(&entry(name)).unwrap();
        assert!(
            faults.unsynced_writes().is_empty(),
            "synced before it returns"
        );
    }
    drop(log);
    faults.cut_power();
    assert_eq!(faults.lose_power(PowerLoss::Everything).unwrap(), 0);
    faults.heal();
    assert_eq!(open(&faults, &path).1, ["a", "b", "c"].map(entry));
}

#[test]
fn a_failed_write_or_sync_latches_the_log_and_power_loss_takes_the_unsynced_entry() {
    for plan in [
        FaultPlan {
            fail_write_from: Some((0, Fault::NoSpace)),
            ..FaultPlan::default()
        },
        FaultPlan {
            fail_sync_from: Some((0, Fault::Eio)),
            ..FaultPlan::default()
        },
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.log");
        let faults = FaultyIo::new(GlommioIo);
        let (mut log, _) = open(&faults, &path);
        log.append(&entry("kept")).unwrap();
        let synced_len = std::fs::metadata(&path).unwrap().len();
        faults.arm(plan.clone());
        assert!(log.append(&entry("failed")).is_err());
        assert!(faults.faults_fired() > 0);
        assert!(matches!(
            log.append(&entry("after")),
            Err(StorageError::Latched { .. })
        ));
        drop(log);
        faults.cut_power();
        faults.lose_power(PowerLoss::Everything).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            synced_len,
            "{plan:?}: the file is cut back to what was synced"
        );
        faults.heal();
        assert_eq!(open(&faults, &path).1, vec![entry("kept")], "{plan:?}");
    }
}

/// Linux may mark the pages of a failed fdatasync clean, so a later fdatasync succeeds
/// without writing them. Without the marker and the rewrite on open, the entry whose sync
/// failed (still in the page cache, so replayed after a restart) is lost by a later power
/// loss while entries after it are not: damage in the middle, and the log refuses to open.
#[test]
fn after_a_failed_sync_the_next_open_writes_the_log_again_so_power_loss_keeps_later_entries() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.log");
    let marker = dir.path().join("meta.log.SYNC-FAILED");
    let faults = FaultyIo::new(GlommioIo);
    let (mut log, _) = open(&faults, &path);
    log.append(&entry("a")).unwrap();
    fail_syncs(&faults);
    assert!(log.append(&entry("b")).is_err());
    assert!(marker.exists(), "a failed sync leaves the marker");
    drop(log);
    faults.heal();

    // A restart that keeps the page cache: "b" reached the file, and is replayed.
    let (mut log, replayed) = open(&faults, &path);
    assert_eq!(replayed, ["a", "b"].map(entry));
    assert!(
        !marker.exists(),
        "the open wrote the log again and synced it"
    );
    log.append(&entry("c")).unwrap();
    drop(log);
    faults.cut_power();
    faults.lose_power(PowerLoss::Everything).unwrap();
    faults.heal();
    assert_eq!(open(&faults, &path).1, ["a", "b", "c"].map(entry));
}

#[test]
fn compaction_under_power_loss_keeps_the_snapshot_and_later_appends() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.log");
    let faults = FaultyIo::new(GlommioIo);
    let (mut log, _) = open(&faults, &path);
    for name in ["a", "b", "c"] {
        log.append(&entry(name)).unwrap();
    }
    log.compact(&[entry("snapshot")]).unwrap();
    log.append(&entry("d")).unwrap();
    drop(log);
    faults.cut_power();
    faults.lose_power(PowerLoss::Seeded(7)).unwrap();
    faults.heal();
    assert_eq!(open(&faults, &path).1, ["snapshot", "d"].map(entry));
}

#[test]
fn a_compaction_whose_sync_fails_leaves_the_old_log_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.log");
    let faults = FaultyIo::new(GlommioIo);
    let (mut log, _) = open(&faults, &path);
    log.append(&entry("a")).unwrap();
    fail_syncs(&faults);
    assert!(log.compact(&[entry("snapshot")]).is_err());
    faults.heal();
    log.append(&entry("b")).unwrap();
    drop(log);
    faults.cut_power();
    faults.lose_power(PowerLoss::Everything).unwrap();
    faults.heal();
    assert_eq!(open(&faults, &path).1, ["a", "b"].map(entry));
}

/// Power loss on a write that extended a file: everything undone cuts the file back to its
/// old length; a torn one keeps a prefix of the new bytes and nothing past it.
#[test]
fn power_loss_cuts_back_unsynced_writes_past_the_end_of_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plain");
    let faults = FaultyIo::new(GlommioIo);
    let io = faults.blocking();
    let file = io.open(&path).unwrap();
    file.write_at(0, b"synced").unwrap();
    file.sync_data().unwrap();
    file.write_at(6, &[7u8; 1000]).unwrap();
    drop(file);
    faults.lose_power(PowerLoss::Everything).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"synced");

    let mut torn = 0;
    for seed in 0..16 {
        let file = io.open(&path).unwrap();
        file.write_at(6, &[7u8; 1000]).unwrap();
        drop(file);
        faults.lose_power(PowerLoss::Seeded(seed)).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..6], b"synced", "seed {seed}");
        assert!(bytes[6..].iter().all(|&b| b == 7), "seed {seed}");
        torn += usize::from(bytes.len() > 6 && bytes.len() < 1006);
        std::fs::write(&path, b"synced").unwrap();
    }
    assert!(torn > 0, "some seeds tear the write");
}
