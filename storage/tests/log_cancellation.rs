//! Cancelled futures: an append, a durable append or a housekeeping pass dropped in the middle
//! of its I/O either leaves the log consistent or latches it until reopened; nothing wedges,
//! and nothing is acknowledged durable without a sync.

mod common;

use common::*;
use sluice_storage::io::FaultyIo;
use sluice_storage::runtime::{block_on, sleep};
use sluice_storage::{Durability, GlommioIo, RecordIn, StorageError};
use std::time::Duration;

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
