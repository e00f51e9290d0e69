//! Power cuts on a real filesystem. A writer child works in an ext4 filesystem on a loop device
//! and is killed with SIGKILL; then the image file behind the loop device is copied, without a
//! sync, an unmount or a freeze of the live filesystem. The copy holds what the device had
//! received: every write the kernel sent it and it completed (each fdatasync's data, journal
//! commit and flush, and whatever dirty pages the kernel happened to write back), and nothing
//! of the page caches above it. That is what a power cut leaves. The copy takes the image's
//! place and is mounted (ext4 replays its journal, as at boot), the log or engine is reopened
//! from it and checked, and the next cycle's writer goes on from there, as after a reboot.
//!
//! Why every durable record is in the copy: a writer acknowledges a record only after the
//! fdatasync covering it has returned, and fdatasync returns only once the loop device has
//! completed its data, journal and flush requests, each completed only after it was written
//! into the image file. The test reads the acknowledgement before it kills the writer, and
//! copies once the writer is dead, so the copy starts after those writes landed.
//!
//! Why the copy is a state a power cut can leave, although the kernel may still write to the
//! device after the kill (writeback the writer started, a journal commit, checkpointing): the
//! copy is made again until the device was quiet for all of it, with nothing in flight before
//! and no request completed from before to after (`LoopDisk::cut_power`). It is then the
//! device's content at one instant: every write completed by then, none after. A copy racing
//! those writes could instead hold a later write and miss an earlier one in a part of the file
//! already copied: a journal commit block without the blocks it commits, or a checkpointed
//! journal without the home blocks, which no device that honours flushes leaves. With that race
//! a failure could be the harness's; without it, it is the filesystem's or Sluice's.
//!
//! The storage test kills half of its writers at a random moment (mid-sync, mid-roll,
//! mid-allocation) and half while records are visible that no sync has covered (the writer waits
//! for the test after a visible append), and asserts that over the run some cut lost records
//! that were written but not synced: a copy taken from the page cache, or after a sync, would
//! never lose any, and the test would prove nothing. The engine test runs the engine crash
//! test's writer (durable puts from three threads, splits and merges) under the same cuts.
//!
//! Cycles: SLUICE_REALFS_CYCLES (default 20 each); seed: SLUICE_CRASH_SEED (printed on failure).
//! Needs root, losetup, mount and mkfs.ext4 (it fails saying so, unless SLUICE_ALLOW_SKIP=1).
//! docs/testing.md says what the harness can and cannot produce.

use sluice_storage::testing::Rng;
use sluice_tests::crash::{
    Acknowledged, Kill, check_crash_log, check_engine_crash, run_crash_writer,
    run_engine_crash_writer,
};
use sluice_tests::loop_disk::{LoopDisk, needs_loop_disk};
use sluice_tests::{crash_seed, env_u64};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// Power cuts per test: SLUICE_REALFS_CYCLES, else this.
const CYCLES_DEFAULT: u64 = 20;

/// Cuts one image takes before the next cycle formats a fresh one, so the image never fills
/// and the read-back after each cut stays bounded.
const CYCLES_PER_IMAGE: u64 = 25;

/// Size of the ext4 image.
const IMAGE_SIZE_MIB: u64 = 256;

#[test]
fn a_power_cut_on_ext4_keeps_every_durable_record_and_loses_only_unsynced_ones() {
    if !needs_loop_disk() {
        return;
    }
    let _alone = alone();
    let cycles = env_u64("SLUICE_REALFS_CYCLES").unwrap_or(CYCLES_DEFAULT);
    let seed = crash_seed();
    println!("real-fs power cuts, storage: {cycles} cycles, SLUICE_CRASH_SEED={seed}");
    let mut rng = Rng::new(seed);
    let mut tally = Tally::default();
    for first in (0..cycles).step_by(CYCLES_PER_IMAGE as usize) {
        let scratch = scratch_dir();
        let mut disk = format(scratch.path());
        let log = disk.path().join("log");
        for cycle in first..cycles.min(first + CYCLES_PER_IMAGE) {
            let after = Duration::from_millis(2 + rng.below(60));
            let kill = if cycle % 2 == 0 {
                Kill::WhileUnsynced(after)
            } else {
                Kill::At(after)
            };
            let acked = run_crash_writer(crash_writer(), &log, rng.next_u64(), kill);
            let (cut, copies) = disk.cut_power();
            disk = cut;
            let recovered = check_crash_log(&log);
            let context = format!("cycle {cycle} (SLUICE_CRASH_SEED={seed})");
            tally.add(kill, &acked, recovered, copies, &context);
        }
    }
    println!("real-fs power cuts, storage: {tally:?}");
    assert!(
        tally.cuts_that_lost_records > 0,
        "no cut lost a record written but not synced (SLUICE_CRASH_SEED={seed}): the copy is \
         not a power cut if everything written survives"
    );
}

#[test]
fn a_power_cut_on_ext4_keeps_every_acknowledged_put() {
    if !needs_loop_disk() {
        return;
    }
    let _alone = alone();
    let cycles = env_u64("SLUICE_REALFS_CYCLES").unwrap_or(CYCLES_DEFAULT);
    let seed = crash_seed();
    println!("real-fs power cuts, engine: {cycles} cycles, SLUICE_CRASH_SEED={seed}");
    let mut rng = Rng::new(seed);
    let mut total = 0;
    let mut copies_total = 0;
    for first in (0..cycles).step_by(CYCLES_PER_IMAGE as usize) {
        let scratch = scratch_dir();
        let mut disk = format(scratch.path());
        let dir = disk.path().join("engine");
        // (run, writer thread) -> records 0..n acknowledged durable.
        let mut acknowledged: BTreeMap<(u64, u64), u64> = BTreeMap::new();
        for run in first..cycles.min(first + CYCLES_PER_IMAGE) {
            let after = Duration::from_millis(5 + rng.below(150));
            let reshards = if run % 2 == 1 { 1 + rng.below(3) } else { 0 };
            let acked = run_engine_crash_writer(engine_writer(), &dir, run, reshards, after);
            for (thread, n) in acked {
                acknowledged.insert((run, thread), n);
            }
            let (cut, copies) = disk.cut_power();
            disk = cut;
            copies_total += copies;
            let context = format!("run {run} (SLUICE_CRASH_SEED={seed})");
            check_engine_crash(&dir, &acknowledged, &context);
        }
        total += acknowledged.values().sum::<u64>();
    }
    assert!(total > 0, "the writers acknowledged records");
    println!(
        "real-fs power cuts, engine: {cycles} cuts, {total} acknowledged records all present; \
         {copies_total} copies of the image"
    );
}

/// What the storage test's cuts did, over the run.
#[derive(Debug, Default)]
struct Tally {
    cuts: u64,
    /// Records the writers acknowledged durable (beyond what they found at open).
    acknowledged_durable: u64,
    /// Records the writers wrote, durable or visible.
    written: u64,
    /// Records back after the cuts, of those the writers wrote (in-flight ones included).
    recovered: u64,
    /// Cuts after which fewer records came back than had been written.
    cuts_that_lost_records: u64,
    /// Records written, never synced, and gone after their cut.
    unsynced_records_lost: u64,
    /// Cuts while the writer held visible records no sync had covered.
    cuts_while_unsynced: u64,
    /// Those of them after which fewer records came back than had been written.
    cuts_while_unsynced_that_lost_records: u64,
    /// Copies of the image the cuts made (more than one a cut when the device was not quiet).
    copies: u64,
}

impl Tally {
    /// Checks one cut (every durable record back) and counts it.
    fn add(
        &mut self,
        kill: Kill,
        acked: &Acknowledged,
        recovered: u64,
        copies: u32,
        context: &str,
    ) {
        assert!(
            recovered >= acked.durable,
            "{context}: {recovered} records back, {} acknowledged durable",
            acked.durable
        );
        self.cuts += 1;
        self.acknowledged_durable += acked.durable - acked.start;
        self.written += acked.written - acked.start;
        self.recovered += recovered - acked.start;
        let lost = recovered < acked.written;
        if lost {
            self.cuts_that_lost_records += 1;
            self.unsynced_records_lost += acked.written - recovered;
        }
        if let Kill::WhileUnsynced(_) = kill {
            self.cuts_while_unsynced += 1;
            self.cuts_while_unsynced_that_lost_records += u64::from(lost);
        }
        self.copies += u64::from(copies);
    }
}

/// A fresh, mounted ext4 image in `scratch`.
fn format(scratch: &Path) -> LoopDisk {
    let mountpoint = scratch.join("mnt");
    std::fs::create_dir(&mountpoint).unwrap();
    LoopDisk::format(&scratch.join("fs.img"), &mountpoint, IMAGE_SIZE_MIB)
}

/// Where the images live: tmpfs when the machine has it. Each cut copies the image; on tmpfs
/// that costs memory for a moment instead of a disk write per cut, and what the loop device
/// holds does not depend on what stores its backing file.
fn scratch_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
    .expect("a scratch directory")
}

/// One test at a time: both mount images and kill writers, and their figures are clearer apart.
fn alone() -> MutexGuard<'static, ()> {
    static ALONE: Mutex<()> = Mutex::new(());
    ALONE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn crash_writer() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_sluice-crash-writer"))
}

fn engine_writer() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_sluice-engine-crash-writer"))
}
