//! Injected I/O faults: a clear error, nothing acknowledged is lost, reads keep working, and
//! a failed write or sync latches the log read-only until it is reopened.

mod common;

use common::*;
use sluice_storage::{
    Durability, Fault, FaultPlan, FaultyIo, GlommioIo, RecordIn, StorageError, block_on,
};

#[test]
fn a_failed_write_latches_the_log_and_reads_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let io = FaultyIo::new(GlommioIo);
        let log = open(io.clone(), dir.path(), small_config(), manual_clock()).await;
        append_expected(&log, 5, 100).await;
        io.arm(FaultPlan {
            fail_write_from: Some((0, Fault::Eio)),
            ..FaultPlan::default()
        });
        let data = payload(5, 100);
        let err = log
            .append(
                &[RecordIn {
                    key: b"k",
                    data: &data,
                }],
                Durability::Visible,
            )
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::Io { .. }), "{err}");
        io.heal();
        let err = log
            .append(
                &[RecordIn {
                    key: b"k",
                    data: &data,
                }],
                Durability::Visible,
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, StorageError::Latched { .. }),
            "stays latched after the fault clears: {err}"
        );
        assert_eq!(log.next_seq(), 5);
        check_range(&log.reader(), 0, 5, |_| 100);
    });
    // Reopening clears the latch; the acknowledged records are all there.
    block_on(async {
        let log = open(GlommioIo, dir.path(), small_config(), manual_clock()).await;
        check_range(&log.reader(), 0, 5, |_| 100);
        append_expected(&log, 1, 100).await;
        assert_eq!(log.next_seq(), 6);
    });
}

#[test]
fn a_failed_sync_fails_the_durable_append_and_latches() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let io = FaultyIo::new(GlommioIo);
        let log = open(io.clone(), dir.path(), small_config(), manual_clock()).await;
        let data = payload(0, 100);
        let key0 = key(0);
        log.append(
            &[RecordIn {
                key: &key0,
                data: &data,
            }],
            Durability::Durable,
        )
        .await
        .unwrap();
        io.arm(FaultPlan {
            fail_sync_from: Some((0, Fault::Eio)),
            ..FaultPlan::default()
        });
        let err = log
            .append(
                &[RecordIn {
                    key: b"k",
                    data: &data,
                }],
                Durability::Durable,
            )
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::Io { .. }), "{err}");
        assert_eq!(log.durable_seq(), 1, "the failed sync acknowledged nothing");
        let err = log.sync().await.unwrap_err();
        assert!(matches!(err, StorageError::Latched { .. }), "{err}");
    });
}

#[test]
fn no_space_for_a_new_segment_is_a_clear_error_and_recoverable() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let io = FaultyIo::new(GlommioIo);
        let log = open(io.clone(), dir.path(), small_config(), manual_clock()).await;
        io.arm(FaultPlan {
            fail_create: Some(Fault::NoSpace),
            ..FaultPlan::default()
        });
        // The very first append needs a segment.
        let data = payload(0, 1000);
        let err = log
            .append(
                &[RecordIn {
                    key: &key(0),
                    data: &data,
                }],
                Durability::Durable,
            )
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::NoSpace { .. }), "{err}");
        io.heal();
        append_expected(&log, 1, 1000).await;
        // Fill the segment, then fail the roll to the next one.
        while log.stats().files == 1 {
            io.arm(FaultPlan {
                fail_create: Some(Fault::NoSpace),
                ..FaultPlan::default()
            });
            let before = log.next_seq();
            let data = payload(before, 1000);
            match log
                .append(
                    &[RecordIn {
                        key: &key(before),
                        data: &data,
                    }],
                    Durability::Visible,
                )
                .await
            {
                Ok(_) => continue,
                Err(e) => {
                    assert!(matches!(e, StorageError::NoSpace { .. }), "{e}");
                    assert_eq!(log.next_seq(), before);
                    io.heal();
                    append_expected(&log, 1, 1000).await;
                }
            }
        }
        let end = log.next_seq();
        check_range(&log.reader(), 0, end, |_| 1000);
    });
}
