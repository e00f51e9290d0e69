//! A replicated log's edges: recovery (control-only segments next to retired ones, a hole at
//! the start of the log, damage at its first batch), a crash inside a truncation, a sync racing
//! a truncation, time seeks past control entries, retention held back by the commit, and an
//! entry handed to the single-node append.

mod common;

use common::replicated::*;
use common::*;
use sluice_storage::io::{FaultyIo, PageFate};
use sluice_storage::runtime::block_on;
use sluice_storage::{
    Durability, EncodedBatch, GlommioIo, LogConfig, ReadLimits, ShardLog, StorageError,
};
use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;

const MINUTE_MS: u64 = 60_000;

fn short_retention() -> LogConfig {
    LogConfig {
        retention_ms: MINUTE_MS,
        ..config()
    }
}

/// A segment of control entries only (one blank entry after an election) starts where the
/// retired segment before it ended: it is kept, not taken for retired.
#[test]
fn a_durable_control_entry_alone_in_a_segment_after_a_retired_one_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = manual_clock();
    block_on(async {
        let log = open(GlommioIo, dir.path(), short_retention(), clock.clone()).await;
        for index in 1..=5 {
            lead(&log, 1, index, Durability::Durable).await;
        }
        log.close().await.unwrap();
        clock.advance_ms(2 * MINUTE_MS);
        // The expired tail is sealed at open; the blank entry rolls into a segment of its own.
        let log = open(GlommioIo, dir.path(), short_retention(), clock.clone()).await;
        let blank = EncodedBatch::control(b"blank");
        log.append_entry(blank, id(2, 6), Durability::Durable)
            .await
            .unwrap();
        log.commit_to(6).unwrap();
        log.set_retain_from(6);
        assert_eq!(
            log.maintain().await.unwrap(),
            1,
            "the expired segment retires"
        );
        log.close().await.unwrap();
        let log = open(GlommioIo, dir.path(), short_retention(), clock.clone()).await;
        assert_eq!(
            log.last_entry(),
            Some(id(2, 6)),
            "{:?}",
            log.recovery_report()
        );
    });
}

/// Retention never retires entries above the commit, nor entries the Raft layer did not
/// purge: both are its to keep, truncate or ask for.
#[test]
fn retention_retires_only_committed_segments_the_raft_layer_purged() {
    let dir = tempfile::tempdir().unwrap();
    let clock = manual_clock();
    block_on(async {
        let log = open(GlommioIo, dir.path(), short_retention(), clock.clone()).await;
        for index in 1..=120 {
            lead(&log, 1, index, Durability::Visible).await;
        }
        let segments = log.stats().live_segments;
        assert!(segments >= 3);
        clock.advance_ms(2 * MINUTE_MS);
        assert_eq!(log.maintain().await.unwrap(), 0, "nothing is committed");
        assert_eq!(log.last_entry(), Some(id(1, 120)));
        log.commit_to(120).unwrap();
        assert_eq!(log.maintain().await.unwrap(), 0, "nothing is purged");
        // Purged below entry 2: the first segment still holds entry 2 and stays.
        log.set_retain_from(2);
        assert_eq!(log.maintain().await.unwrap(), 0, "entry 2 is not purged");
        assert_eq!(log.first_entry_index().unwrap(), Some(1));
        // Purged to the end: every sealed segment goes, the active one stays.
        log.set_retain_from(121);
        assert_eq!(
            log.maintain().await.unwrap(),
            segments - 1,
            "all but the active one"
        );
        assert!(log.first_entry_index().unwrap().unwrap() > 1);
        assert!(log.reader().read(0, ReadLimits::default()).is_err());
    });
}

/// The first segment's first page never reached the device and the next segment's did: the log
/// is cut there (a replica holding entries 60..120 without 1..60 would claim a log it has not
/// got), and numbering starts where the lost segment started, so the leader's entry 1 fits.
#[test]
fn a_hole_at_the_start_of_the_log_is_a_cut_not_a_new_start() {
    let (dir, leader_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let clock = manual_clock();
    block_on(async {
        let leader = open_at(GlommioIo, leader_dir.path(), &clock).await;
        let log = open_at(GlommioIo, dir.path(), &clock).await;
        lead_and_ship(&leader, &log, 1..=120).await;
        assert!(log.stats().live_segments >= 2);
        log.close().await.unwrap();
        let first = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join("seg-00000000.log"))
            .unwrap();
        first.write_at(&[0u8; 4096], 4096).unwrap();
        drop(first);
        let log = open_at(GlommioIo, dir.path(), &clock).await;
        assert!(log.recovery_report().truncated.is_some());
        assert_eq!(log.last_entry(), None);
        ship(&leader, &log, 1, Durability::Durable).await;
        assert_eq!(log.last_entry(), Some(id(1, 1)));
    });
}

/// Damage at the log's first batch leaves no segment: numbering starts where the log started
/// (not at the highest number the discarded segments held), so the leader's entry 1 fits.
#[test]
fn a_log_cut_at_its_first_batch_takes_the_leaders_first_entry_again() {
    let (dir, leader_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let clock = manual_clock();
    block_on(async {
        let leader = open_at(GlommioIo, leader_dir.path(), &clock).await;
        let log = open_at(GlommioIo, dir.path(), &clock).await;
        lead_and_ship(&leader, &log, 1..=120).await;
        log.close().await.unwrap();
        let first = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(dir.path().join("seg-00000000.log"))
            .unwrap();
        let mut byte = [0u8; 1];
        first.read_at(&mut byte, 4096 + 8).unwrap();
        first.write_at(&[byte[0] ^ 1], 4096 + 8).unwrap();
        drop(first);
        let log = open_at(GlommioIo, dir.path(), &clock).await;
        assert_eq!(log.last_entry(), None);
        for index in 1..=120 {
            ship(&leader, &log, index, Durability::Visible).await;
        }
        leader.commit_to(120).unwrap();
        log.commit_to(120).unwrap();
        assert_eq!(visible(&log), visible(&leader));
    });
}

/// Power fails inside a truncation into a sealed segment, with the zeroed trailer written but
/// not synced: the batch header after it is not zeroed yet (its write waits for that sync), so
/// whatever the device kept, the log opens whole and usable.
#[test]
fn a_crash_inside_a_truncation_of_a_sealed_segment_leaves_a_usable_log() {
    for lose_trailer in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let clock = manual_clock();
        let io = FaultyIo::new(GlommioIo);
        block_on(async {
            let log = open_at(io.clone(), dir.path(), &clock).await;
            for index in 1..=200 {
                clock.advance_ms(1);
                lead(&log, 1, index, Durability::Durable).await;
            }
            log.maintain().await.unwrap();
            lead(&log, 1, 201, Durability::Durable).await;
            assert!(io.unsynced_writes().is_empty());
            let hold = io.hold_syncs().await;
            {
                let mut truncation = std::pin::pin!(log.truncate_from(30));
                let trailer_written = || io.unsynced_writes().iter().any(|w| w.2 == 64);
                assert!(!drive_until(truncation.as_mut(), trailer_written).await);
                let pending = io.unsynced_writes();
                assert_eq!(pending.len(), 1, "only the trailer: {pending:?}");
            }
            io.cut_power();
            drop(log);
            drop(hold);
        });
        let trailer_page = (config().segment_size_bytes - 64) / 4096;
        io.lose_power_pages(|_, page| match page == trailer_page && lose_trailer {
            true => PageFate::Lost,
            false => PageFate::Kept,
        })
        .unwrap();
        io.heal();
        block_on(async {
            let log = open_at(GlommioIo, dir.path(), &clock).await;
            assert_eq!(log.last_entry(), Some(id(1, 201)));
            log.commit_to(201).unwrap();
            assert!(log.entry(30).unwrap().is_some());
            assert_eq!(
                visible(&log).len(),
                (1..=201).filter_map(|i| contents(1, i)).flatten().count()
            );
        });
    }
}

/// A group commit started before a truncation (it read the written end then) finishes after
/// it: the numbers the truncation removed are not counted durable, so the new leader's
/// records under those numbers get a sync of their own. With fdatasyncs the sync holds the
/// group commit and the truncation waits for it; through a filesystem sync, which is waited
/// for outside it, the truncation runs ahead.
#[test]
fn a_sync_racing_a_truncation_counts_no_removed_record_durable() {
    for filesystem in [false, true] {
        a_sync_races_a_truncation(filesystem);
    }
}

fn a_sync_races_a_truncation(through_filesystem_sync: bool) {
    let dir = tempfile::tempdir().unwrap();
    let clock = manual_clock();
    let io = FaultyIo::new(GlommioIo);
    let filesystem = through_filesystem_sync.then(|| io.filesystem_sync(dir.path()).unwrap());
    let config = LogConfig {
        filesystem_sync: filesystem.clone(),
        ..config()
    };
    let syncs_completed = || match &filesystem {
        Some(filesystem) => filesystem.syncs_completed(),
        None => io.syncs_completed(),
    };
    block_on(async {
        let log = open(io.clone(), &dir.path().join("log"), config, clock.clone()).await;
        let mut ends = BTreeMap::new();
        for index in 1..=20 {
            let appended = lead(&log, 1, index, Durability::Visible).await;
            ends.insert(index, appended.end_seq());
        }
        let hold = io.hold_syncs().await;
        let mut sync = std::pin::pin!(log.sync());
        assert!(!drive_until(sync.as_mut(), || true).await);
        // Waits for records the truncation removes: done once what is left is durable.
        let mut removed_durable = std::pin::pin!(log.make_durable(ends[&20]));
        assert!(!drive_until(removed_durable.as_mut(), || true).await);
        let mut truncation = std::pin::pin!(log.truncate_from(10));
        assert!(!drive_until(truncation.as_mut(), || true).await);
        // And one asked while the truncation runs (it has counted its rewrite already).
        let mut late_durable = std::pin::pin!(log.make_durable(ends[&20]));
        assert!(!drive_until(late_durable.as_mut(), || true).await);
        let mut truncation = truncation.as_mut();
        drop(hold);
        if through_filesystem_sync {
            // The sync is waited for outside the group commit: the truncation finishes
            // while the sync's future is not even polled.
            finish(truncation, "the truncation").await.unwrap();
            sync.await.unwrap();
            finish(removed_durable, "the wait for removed records")
                .await
                .unwrap();
            finish(late_durable, "the late wait for removed records")
                .await
                .unwrap();
        } else if let Some(truncated) = poll_a_while(truncation.as_mut()).await {
            panic!("the truncation ran while a sync held the group commit: {truncated:?}");
        } else {
            // The wait for removed records queued for the group commit too: poll all three.
            let both = futures_lite::future::zip(truncation, sync);
            let waits = futures_lite::future::zip(removed_durable, late_durable);
            let all = futures_lite::future::zip(both, waits);
            let ((truncated, synced), (durable, late)) =
                finish(std::pin::pin!(all), "all four").await;
            truncated.unwrap();
            synced.unwrap();
            durable.unwrap();
            late.unwrap();
        }
        assert!(
            log.durable_seq() <= ends[&9],
            "durable_seq {}",
            log.durable_seq()
        );
        // Entry 10 is a control entry (no sequence number): its durability is counted in
        // batches. Entry 11 holds records under numbers the truncation removed.
        let syncs = syncs_completed();
        lead(&log, 2, 10, Durability::Durable).await;
        assert!(syncs_completed() > syncs, "the control entry was synced");
        let syncs = syncs_completed();
        let appended = lead(&log, 2, 11, Durability::Visible).await;
        assert!(appended.base_seq < ends[&20]);
        log.make_durable(appended.end_seq()).await.unwrap();
        assert!(syncs_completed() > syncs, "the new records were synced");
    });
}

/// The leader leads entries `range` in term 1 and the follower takes each (neither durable).
async fn lead_and_ship(
    leader: &ShardLog<GlommioIo>,
    follower: &ShardLog<GlommioIo>,
    range: std::ops::RangeInclusive<u64>,
) {
    for index in range {
        lead(leader, 1, index, Durability::Visible).await;
        ship(leader, follower, index, Durability::Visible).await;
    }
}

/// Polls `future` to its end, failing the test after 30 s (`what` names it).
async fn finish<F: std::future::Future>(
    mut future: std::pin::Pin<&mut F>,
    what: &str,
) -> F::Output {
    let started = std::time::Instant::now();
    loop {
        let polled = std::future::poll_fn(|cx| std::task::Poll::Ready(future.as_mut().poll(cx)));
        if let std::task::Poll::Ready(output) = polled.await {
            return output;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "{what} never finished"
        );
        sluice_storage::runtime::sleep(std::time::Duration::from_micros(500)).await;
    }
}

/// Polls `future` for about 100 ms; its output if it finished.
async fn poll_a_while<F: std::future::Future>(
    mut future: std::pin::Pin<&mut F>,
) -> Option<F::Output> {
    for _ in 0..200 {
        let polled = std::future::poll_fn(|cx| std::task::Poll::Ready(future.as_mut().poll(cx)));
        if let std::task::Poll::Ready(output) = polled.await {
            return Some(output);
        }
        sluice_storage::runtime::sleep(std::time::Duration::from_micros(500)).await;
    }
    None
}

/// A segment ending with a control entry later than its last record: a time seek between the
/// two finds the next segment's first record, and the retention horizon there keeps it.
#[test]
fn a_time_seek_goes_past_a_segment_ending_in_a_control_entry() {
    let dir = tempfile::tempdir().unwrap();
    let clock = manual_clock();
    let config = LogConfig {
        retention_ms: 3_600_000,
        ..config()
    };
    block_on(async {
        let log = open(GlommioIo, dir.path(), config.clone(), clock.clone()).await;
        let data = vec![7u8; 20_000];
        let record_entry = || {
            let mut batch = EncodedBatch::entry_with_capacity(0);
            batch.push(b"k", &data);
            batch
        };
        let mut index = 1;
        log.append_entry(record_entry(), id(1, index), Durability::Visible)
            .await
            .unwrap();
        // Record, control, record, control...: the first record entry that starts a new
        // segment comes right after a control entry, the old segment's last batch.
        let (first_of_next, last_control) = loop {
            let segments = log.stats().live_segments;
            clock.advance_ms(1_000);
            index += 1;
            let control = EncodedBatch::control(b"c");
            let control = log.append_entry(control, id(1, index), Durability::Visible);
            let control = control.await.unwrap();
            clock.advance_ms(1_000);
            index += 1;
            let appended = log
                .append_entry(record_entry(), id(1, index), Durability::Visible)
                .await
                .unwrap();
            if log.stats().live_segments > segments {
                break (appended, control);
            }
        };
        log.commit_to(index).unwrap();
        let reader = log.reader();
        // The control entry carries the time of the record before it: a time after that one
        // lands on the next segment's first record.
        let sought = reader
            .seek_timestamp(last_control.timestamp_ms + 1)
            .unwrap();
        assert_eq!(sought, first_of_next.base_seq);
        let now = sluice_storage::Clock::now_ms(&*clock);
        // The old segment's newest time is its last record's (the control entry's): just
        // past its retention, that segment has expired.
        clock.advance_ms(last_control.timestamp_ms + config.retention_ms + 1 - now);
        assert_eq!(reader.trim_horizon(), first_of_next.base_seq);
        let read = reader.read(first_of_next.base_seq, ReadLimits::default());
        assert_eq!(read.unwrap().len(), 1);
    });
}

/// An entry handed to the single-node append is refused, not sealed as a plain batch.
#[test]
fn append_encoded_refuses_entries() {
    let dir = tempfile::tempdir().unwrap();
    let clock = manual_clock();
    block_on(async {
        let log: ShardLog<GlommioIo> = open_at(GlommioIo, dir.path(), &clock).await;
        for batch in [
            EncodedBatch::control(b"x"),
            EncodedBatch::entry_with_capacity(0),
        ] {
            let refused = log.append_encoded(batch, Durability::Visible).await;
            assert!(
                matches!(refused, Err(StorageError::EntryRefused { .. })),
                "{refused:?}"
            );
        }
        assert_eq!(log.last_entry(), None);
    });
}

/// A truncation leaves released segments with floors that a later truncation undercuts: a
/// replica left with no segment numbers from where its log started, not from a stale floor,
/// so the leader's entry 1 fits after any number of restarts.
#[test]
fn no_stale_floor_of_an_earlier_truncation_numbers_an_empty_replica() {
    let (dir, leader_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let clock = manual_clock();
    block_on(async {
        let leader = open_at(GlommioIo, leader_dir.path(), &clock).await;
        lead(&leader, 2, 1, Durability::Visible).await;
        let log = open_at(GlommioIo, dir.path(), &clock).await;
        for index in 1..=120 {
            lead(&log, 1, index, Durability::Visible).await;
        }
        assert!(log.stats().live_segments >= 3);
        log.truncate_from(60).await.unwrap();
        log.truncate_from(1).await.unwrap();
        assert_eq!(log.last_entry(), None);
        log.close().await.unwrap();
        for _ in 0..2 {
            let log = open_at(GlommioIo, dir.path(), &clock).await;
            log.close().await.unwrap();
        }
        let log = open_at(GlommioIo, dir.path(), &clock).await;
        ship(&leader, &log, 1, Durability::Durable).await;
    });
}
