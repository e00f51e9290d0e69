//! Regressions for problems a code review found (each failed before its fix).

mod common;

use common::*;
use sluice_storage::io::{Fault, FaultPlan, FaultyIo};
use sluice_storage::runtime::{block_on, sleep};
use sluice_storage::{Durability, GlommioIo, LogConfig, ReadLimits, RecordIn, StorageError};
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

const HOUR_MS: u64 = 3600 * 1000;

/// Polls `future` until `ready()` holds (or it finishes); returns it unfinished, if it is.
async fn drive_until<F: Future + ?Sized>(
    mut future: Pin<&mut F>,
    mut ready: impl FnMut() -> bool,
) -> bool {
    for _ in 0..10_000 {
        let polled = std::future::poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx))).await;
        if polled.is_ready() {
            return true;
        }
        if ready() {
            return false;
        }
        sleep(Duration::from_micros(100)).await;
    }
    panic!("the future never reached the expected state");
}

/// Data recovered from the page cache of a process that never synced it must be synced
/// before the reopened log counts it durable.
#[test]
fn data_recovered_without_a_sync_is_synced_before_it_counts_as_durable() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultyIo::new(GlommioIo);
    block_on(async {
        let log = open(io.clone(), dir.path(), small_config(), manual_clock()).await;
        for _ in 0..600 {
            append_expected(&log, 4, 300).await; // visible only, several segments
        }
        assert!(log.stats().files_created >= 3);
    });
    let durable_end = block_on(async {
        let log = open(io.clone(), dir.path(), small_config(), manual_clock()).await;
        let data = payload(log.next_seq(), 300);
        let key = key(log.next_seq());
        log.append(
            &[RecordIn {
                key: &key,
                data: &data,
            }],
            Durability::Durable,
        )
        .await
        .unwrap()
        .end_seq()
    });
    io.lose_unsynced_writes().unwrap();
    block_on(async {
        let log = open(GlommioIo, dir.path(), small_config(), manual_clock()).await;
        assert!(
            log.next_seq() >= durable_end,
            "{} < {durable_end}",
            log.next_seq()
        );
        check_range(&log.reader(), 0, durable_end, |_| 300);
    });
}

/// Retention retired the two oldest segments but only the second one's free header reached
/// the disk: the first must not come back as live and cut off the newer data.
#[test]
fn a_retired_segment_whose_free_header_was_lost_does_not_cut_newer_data() {
    let dir = tempfile::tempdir().unwrap();
    let clock = manual_clock();
    let config = LogConfig {
        retention_ms: HOUR_MS,
        ..small_config()
    };
    let first_header = block_on({
        let (dir, config, clock) = (dir.path().to_path_buf(), config.clone(), clock.clone());
        async move {
            let log = open(GlommioIo, &dir, config, clock.clone()).await;
            for _ in 0..600 {
                append_expected(&log, 4, 300).await;
            }
            let header = std::fs::read(dir.join("seg-00000000.log")).unwrap()[..64].to_vec();
            clock.advance_ms(2 * HOUR_MS);
            for _ in 0..10 {
                append_expected(&log, 4, 300).await;
            }
            assert!(log.enforce_retention().await.unwrap() >= 2);
            log.sync().await.unwrap();
            header
        }
    });
    // The crash lost segment 0's free header: it still says "live".
    let path = dir.path().join("seg-00000000.log");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[..64].copy_from_slice(&first_header);
    std::fs::write(&path, &bytes).unwrap();
    block_on(async {
        let log = open(GlommioIo, dir.path(), config, clock.clone()).await;
        assert_eq!(log.next_seq(), 2440, "nothing newer was discarded");
        let reader = log.reader();
        check_range(&reader, 2400, 2440, |_| 300);
        assert!(
            reader.trim_horizon() > 0,
            "the retired segment did not come back"
        );
    });
}

/// Every segment was retired, a roll started a recycled segment and crashed before its first
/// batch: sequence numbers must not go back to an older floor.
#[test]
fn sequence_numbers_never_go_back_when_no_record_survives() {
    let dir = tempfile::tempdir().unwrap();
    let clock = manual_clock();
    let config = LogConfig {
        retention_ms: HOUR_MS,
        ..small_config()
    };
    block_on({
        let (dir, config, clock) = (dir.path().to_path_buf(), config.clone(), clock.clone());
        async move {
            let log = open(GlommioIo, &dir, config, clock.clone()).await;
            for _ in 0..300 {
                append_expected(&log, 4, 300).await;
            }
        }
    });
    let io = FaultyIo::new(GlommioIo);
    clock.advance_ms(2 * HOUR_MS);
    block_on({
        let (dir, config, io) = (dir.path().to_path_buf(), config.clone(), io.clone());
        async move {
            // Reopened, every segment is sealed and expired: retention retires them all.
            let log = open(io.clone(), &dir, config, clock.clone()).await;
            assert_eq!(log.next_seq(), 1200);
            assert!(log.enforce_retention().await.unwrap() >= 2);
            // The next append starts a recycled segment: its header lands, its batch does not.
            io.arm(FaultPlan {
                fail_write_from: Some((1, Fault::Eio)),
                ..FaultPlan::default()
            });
            let err = log
                .append(
                    &[RecordIn {
                        key: b"k",
                        data: b"lost",
                    }],
                    Durability::Visible,
                )
                .await;
            assert!(err.is_err());
        }
    });
    block_on(async {
        let log = open(GlommioIo, dir.path(), config, manual_clock()).await;
        assert_eq!(
            log.next_seq(),
            1200,
            "sequence numbers are never handed out twice"
        );
    });
}

/// Reopening with another index density keeps the data region, so nothing is cut.
#[test]
fn reopening_with_another_index_interval_keeps_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let dense = LogConfig {
        index_interval_bytes: 4096,
        ..small_config()
    };
    let sparse = LogConfig {
        index_interval_bytes: 1 << 20,
        ..small_config()
    };
    for (round, config) in [dense.clone(), sparse.clone(), dense]
        .into_iter()
        .enumerate()
    {
        block_on(async {
            let log = open(GlommioIo, dir.path(), config, manual_clock()).await;
            assert_eq!(log.recovery_report().truncated, None);
            assert_eq!(log.next_seq(), round as u64 * 800);
            for _ in 0..200 {
                append_expected(&log, 4, 300).await;
            }
            check_range(&log.reader(), 0, log.next_seq(), |_| 300);
        });
    }
}

/// A durable append cancelled while its sync runs must not leave the appends queued behind it
/// believing the data was synced.
#[test]
fn a_cancelled_durable_append_leaves_the_next_sync_complete() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let io = FaultyIo::new(GlommioIo);
        let log = open(io.clone(), dir.path(), small_config(), manual_clock()).await;
        let hold = io.hold_syncs().await;
        let (key0, key1, data) = (key(0), key(1), payload(0, 300));
        let (first_records, second_records) = (
            [RecordIn {
                key: &key0,
                data: &data,
            }],
            [RecordIn {
                key: &key1,
                data: &data,
            }],
        );
        let mut first = Box::pin(log.append(&first_records, Durability::Durable));
        assert!(!drive_until(first.as_mut(), || log.next_seq() == 1).await);
        // The first append now runs the sync (held); the second becomes visible and queues.
        let mut second = Box::pin(log.append(&second_records, Durability::Durable));
        assert!(!drive_until(second.as_mut(), || log.next_seq() == 2).await);
        sleep(Duration::from_millis(2)).await;
        drop(first); // cancelled in the middle of its sync
        drop(hold);
        assert_eq!(second.await.unwrap().end_seq(), 2);
        assert!(
            io.unsynced_writes().is_empty(),
            "acknowledged durable but unsynced: {:?}",
            io.unsynced_writes()
        );
    });
}

/// An append cancelled while its write is in flight latches the log with a clear error rather
/// than leaving a hole that blocks every later append.
#[test]
fn an_append_cancelled_mid_write_latches_instead_of_wedging() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let io = FaultyIo::new(GlommioIo);
        let log = open(io.clone(), dir.path(), small_config(), manual_clock()).await;
        append_expected(&log, 3, 100).await;
        let hold = io.hold_writes().await;
        let mut cancelled = Box::pin(log.append(
            &[RecordIn {
                key: b"k",
                data: b"x",
            }],
            Durability::Visible,
        ));
        let finished = drive_until(cancelled.as_mut(), || io.writes_waiting() == 1).await;
        assert!(!finished);
        drop(cancelled);
        drop(hold);
        let err = log
            .append(
                &[RecordIn {
                    key: b"k",
                    data: b"y",
                }],
                Durability::Visible,
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StorageError::Latched { cause } if cause.contains("cancelled")),
            "{err}"
        );
        check_range(&log.reader(), 0, 3, |_| 100);
    });
    block_on(async {
        let log = open(GlommioIo, dir.path(), small_config(), manual_clock()).await;
        assert!(log.next_seq() >= 3);
        append_expected(&log, 1, 100).await;
    });
}

/// Right after a roll, before the new segment's first batch lands, time seeks and the trim
/// horizon still see the sealed segments (an empty segment used to sort as time 0, which made
/// the horizon jump to the end and hide every unexpired record). Batches over the size the
/// core writes inline (1 MiB) go through io_uring, so the new segment's first write is still
/// in flight when the test looks, as a reader on another thread could.
#[test]
fn time_seeks_right_after_a_roll_still_find_older_records() {
    let dir = tempfile::tempdir().unwrap();
    let clock = manual_clock();
    let config = LogConfig {
        segment_size_bytes: 8 << 20,
        record_size_bytes_max: 2 << 20,
        ..small_config()
    };
    block_on(async {
        let log = open(GlommioIo, dir.path(), config, clock.clone()).await;
        // Four fill a segment; the fifth rolls.
        let big = vec![1u8; 1_900_000];
        for _ in 0..4 {
            log.append(
                &[RecordIn {
                    key: b"f",
                    data: &big,
                }],
                Durability::Visible,
            )
            .await
            .unwrap();
        }
        clock.advance_ms(1000);
        let records = [RecordIn {
            key: b"r",
            data: &big,
        }];
        let mut rolling = Box::pin(log.append(&records, Durability::Visible));
        let segments = log.stats().live_segments;
        // Stop as soon as the new, still empty, segment is in the table.
        let finished = drive_until(rolling.as_mut(), || {
            log.stats().live_segments == segments + 1
        })
        .await;
        assert!(
            !finished,
            "caught the window between the roll and the first batch"
        );
        let reader = log.reader();
        assert_eq!(reader.next_seq(), 4);
        assert_eq!(reader.trim_horizon(), 0);
        assert_eq!(reader.seek_timestamp(T0_MS).unwrap(), 0);
        assert_eq!(reader.seek_timestamp(T0_MS + 500).unwrap(), 4);
        assert_eq!(reader.latest_timestamp_ms(), T0_MS);
        rolling.await.unwrap();
        assert_eq!(reader.trim_horizon(), 0);
        assert_eq!(reader.read(0, ReadLimits::default()).unwrap().len(), 4);
    });
}

/// Second review: damage at the very first batch of the oldest segment must cut the log there
/// (nothing after damage is returned), not silently promote the next segment to the head.
#[test]
fn damage_at_the_head_of_the_log_is_a_cut_not_a_silent_skip() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let log = open(GlommioIo, dir.path(), small_config(), manual_clock()).await;
        for _ in 0..600 {
            append_expected(&log, 4, 300).await; // no maintain: segments stay unsealed
        }
    });
    let first = dir.path().join("seg-00000000.log");
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&first)
        .unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(&[0x5A; 64], 4096 + 200).unwrap();
    block_on(async {
        let log = open(GlommioIo, dir.path(), small_config(), manual_clock()).await;
        let report = log.recovery_report().clone();
        assert_eq!(
            report.truncated.as_ref().map(|t| t.seq),
            Some(0),
            "{report:?}"
        );
        let reader = log.reader();
        let batch = reader
            .read(reader.trim_horizon(), ReadLimits::default())
            .unwrap();
        assert!(batch.is_empty(), "no record after the damage is served");
        assert_eq!(
            log.next_seq(),
            2400,
            "numbers already handed out are not reused"
        );
    });
}

/// Second review: once a failed sync latched the log, housekeeping must not seal a segment
/// over data the device may have lost.
#[test]
fn a_latched_log_writes_no_seal() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let io = FaultyIo::new(GlommioIo);
        let log = open(io.clone(), dir.path(), small_config(), manual_clock()).await;
        for _ in 0..300 {
            append_expected(&log, 4, 300).await; // rolls into a second segment
        }
        io.arm(FaultPlan {
            fail_sync_from: Some((0, Fault::Eio)),
            ..FaultPlan::default()
        });
        assert!(log.sync().await.is_err());
        io.heal();
        let err = log.maintain().await.unwrap_err();
        assert!(matches!(err, StorageError::Latched { .. }), "{err}");
    });
    let first = std::fs::read(dir.path().join("seg-00000000.log")).unwrap();
    assert!(
        first[first.len() - 64..].iter().all(|&b| b == 0),
        "no trailer was written"
    );
}

/// Third review: after a cut, a segment started at the jumped number and left empty by a crash
/// must not make the next restart forget where the surviving data ends; otherwise the segment
/// after it no longer chains and its durable records are discarded at the following restart.
#[test]
fn an_empty_segment_after_a_numbering_jump_keeps_later_durable_records() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let log = open(GlommioIo, dir.path(), small_config(), manual_clock()).await;
        for _ in 0..600 {
            append_expected(&log, 4, 300).await; // several unsealed segments
        }
        log.sync().await.unwrap();
    });
    // Damage a batch in the second segment: recovery cuts there and numbering jumps.
    let cut = damage_the_sixth_batch(&dir.path().join("seg-00000001.log"));
    let io = FaultyIo::new(GlommioIo);
    let jumped = block_on({
        let (io, dir) = (io.clone(), dir.path().to_path_buf());
        async move {
            let log = open(io.clone(), &dir, small_config(), manual_clock()).await;
            let jumped = log.next_seq();
            assert!(jumped > cut);
            // The first append starts a segment (its header lands) and dies before its batch.
            io.arm(FaultPlan {
                fail_write_from: Some((1, Fault::Eio)),
                ..FaultPlan::default()
            });
            assert!(
                log.append(
                    &[RecordIn {
                        key: b"k",
                        data: b"lost"
                    }],
                    Durability::Visible
                )
                .await
                .is_err()
            );
            jumped
        }
    });
    let acked = block_on(async {
        let log = open(GlommioIo, dir.path(), small_config(), manual_clock()).await;
        assert_eq!(
            log.next_seq(),
            jumped,
            "numbering still starts above the lost records"
        );
        let data = payload(jumped, 300);
        let key = key(jumped);
        log.append(
            &[RecordIn {
                key: &key,
                data: &data,
            }],
            Durability::Durable,
        )
        .await
        .unwrap()
    });
    block_on(async {
        let log = open(GlommioIo, dir.path(), small_config(), manual_clock()).await;
        assert_eq!(
            log.next_seq(),
            acked.end_seq(),
            "{:?}",
            log.recovery_report()
        );
        let batch = log
            .reader()
            .read(acked.base_seq, ReadLimits::default())
            .unwrap();
        assert_eq!(batch.len(), 1, "the durable record survived");
        assert_eq!(
            log.reader()
                .read(cut, ReadLimits::default())
                .unwrap()
                .next_seq(),
            acked.base_seq
        );
    });
}

/// Overwrites bytes inside the sixth batch of segment `file`; returns the batch's first sequence
/// number, where recovery cuts the log.
fn damage_the_sixth_batch(file: &std::path::Path) -> u64 {
    let bytes = std::fs::read(file).unwrap();
    let mut pos = 4096usize;
    for _ in 0..5 {
        pos += u32::from_le_bytes(bytes[pos + 16..pos + 20].try_into().unwrap()) as usize;
    }
    let cut = u64::from_le_bytes(bytes[pos + 24..pos + 32].try_into().unwrap());
    use std::os::unix::fs::FileExt;
    std::fs::OpenOptions::new()
        .write(true)
        .open(file)
        .unwrap()
        .write_all_at(&[0x77; 8], pos as u64 + 100)
        .unwrap();
    cut
}

/// Third review: a roll waiting for a spare must not hang if the `maintain` allocating it is
/// cancelled.
#[test]
fn a_cancelled_spare_allocation_does_not_hang_a_waiting_roll() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let log = open(GlommioIo, dir.path(), small_config(), manual_clock()).await;
        let big = vec![3u8; 60_000];
        for _ in 0..4 {
            log.append(
                &[RecordIn {
                    key: b"f",
                    data: &big,
                }],
                Durability::Visible,
            )
            .await
            .unwrap();
        }
        // More than half full: maintain reserves a slot and allocates a spare.
        let files = log.stats().files;
        let mut maintenance = Box::pin(log.maintain());
        assert!(!drive_until(maintenance.as_mut(), || log.stats().files == files + 1).await);
        // The next batch does not fit: its roll finds no free segment and waits for the spare.
        let records = [RecordIn {
            key: b"r",
            data: &big,
        }];
        let mut roll = Box::pin(log.append(&records, Durability::Visible));
        assert!(!drive_until(roll.as_mut(), || true).await);
        drop(maintenance); // cancelled mid-allocation: latches the log
        // The waiting roll must now finish (with the latch) instead of sleeping forever.
        assert!(
            drive_until(roll.as_mut(), || false).await,
            "the roll returned"
        );
        let err = log.append(&records, Durability::Visible).await.unwrap_err();
        assert!(
            matches!(&err, StorageError::Latched { cause } if cause.contains("cancelled")),
            "{err}"
        );
    });
}
