//! Retention: expired records are invisible, expired segments are recycled, and a reader
//! holding a lease is never handed recycled bytes.

mod common;

use common::*;
use sluice_storage::runtime::block_on;
use sluice_storage::{GlommioIo, LogConfig, ReadLimits, StorageError};

const HOUR_MS: u64 = 3600 * 1000;

fn config() -> LogConfig {
    LogConfig {
        retention_ms: 24 * HOUR_MS,
        segments_max: 12,
        ..small_config()
    }
}

#[test]
fn expired_records_are_invisible_and_the_trim_horizon_moves_past_them() {
    let dir = tempfile::tempdir().unwrap();
    let clock = manual_clock();
    block_on(async {
        let log = open(GlommioIo, dir.path(), config(), clock.clone()).await;
        append_expected(&log, 10, 100).await; // seq 0..10 at T0
        clock.advance_ms(HOUR_MS);
        append_expected(&log, 10, 100).await; // seq 10..20 at T0 + 1 h
        let reader = log.reader();
        assert_eq!(reader.trim_horizon(), 0);
        clock.advance_ms(23 * HOUR_MS + 1); // the first batch is now 24 h + 1 ms old
        assert_eq!(reader.trim_horizon(), 10);
        assert!(matches!(
            reader.read(5, ReadLimits::default()),
            Err(StorageError::SequenceTrimmed {
                seq: 5,
                trim_horizon: 10
            })
        ));
        assert_eq!(
            reader.seek_timestamp(T0_MS).unwrap(),
            10,
            "a time before the horizon starts there"
        );
        check_range(&reader, 10, 20, |_| 100);
        // A shorter retention hides more at once; a longer one does not bring data back.
        log.set_retention_ms(HOUR_MS).unwrap();
        assert_eq!(reader.trim_horizon(), 20);
        log.set_retention_ms(48 * HOUR_MS).unwrap();
        assert_eq!(reader.trim_horizon(), 20);
        assert!(reader.read(10, ReadLimits::default()).is_err());
    });
}

#[test]
fn expired_segments_are_recycled_and_the_ring_stops_growing() {
    let dir = tempfile::tempdir().unwrap();
    let clock = manual_clock();
    block_on(async {
        let log = open(GlommioIo, dir.path(), config(), clock.clone()).await;
        // Each hour writes about one segment; 24 h retention would need 25 segments, but the
        // ring allows 12, so retention is set to 6 h: the ring must wrap many times.
        log.set_retention_ms(6 * HOUR_MS).unwrap();
        for _hour in 0..60 {
            for _ in 0..20 {
                append_expected(&log, 10, 1000).await;
            }
            clock.advance_ms(HOUR_MS);
            log.enforce_retention().await.unwrap();
        }
        let stats = log.stats();
        assert!(stats.segments_recycled > 30, "{stats:?}");
        assert!(stats.files <= 12, "{stats:?}");
        assert_eq!(
            std::fs::read_dir(dir.path())
                .unwrap()
                .filter(|e| e
                    .as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "log"))
                .count(),
            stats.files
        );
        // What is not expired reads back intact, across recycled segment files.
        let reader = log.reader();
        let horizon = reader.trim_horizon();
        assert!(horizon > 0);
        check_range(&reader, horizon, log.next_seq(), |_| 1000);
    });
    // And it recovers: free slots stay free, live data comes back.
    block_on(async {
        let log = open(GlommioIo, dir.path(), config(), manual_clock()).await;
        let reader = log.reader();
        check_range(&reader, reader.trim_horizon(), log.next_seq(), |_| 1000);
        assert_eq!(log.next_seq(), 60 * 20 * 10);
    });
}

#[test]
fn a_reader_holding_a_lease_is_never_handed_recycled_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let clock = manual_clock();
    block_on(async {
        let log = open(GlommioIo, dir.path(), config(), clock.clone()).await;
        log.set_retention_ms(HOUR_MS).unwrap();
        for _ in 0..20 {
            append_expected(&log, 10, 1000).await;
        }
        // A slow reader takes the first batch and keeps it.
        let held = log.reader().read(0, ReadLimits::default()).unwrap();
        let snapshot: Vec<(u64, Vec<u8>)> =
            held.records().map(|r| (r.seq, r.data.to_vec())).collect();
        // Everything expires, and writers churn through many segments.
        for _ in 0..10 {
            clock.advance_ms(2 * HOUR_MS);
            for _ in 0..20 {
                append_expected(&log, 10, 1000).await;
            }
            log.enforce_retention().await.unwrap();
        }
        let stats = log.stats();
        assert_eq!(
            stats.retiring_segments, 1,
            "the leased segment waits: {stats:?}"
        );
        assert!(stats.segments_recycled > 0, "{stats:?}");
        for ((seq, data), record) in snapshot.iter().zip(held.records()) {
            assert_eq!((*seq, data.as_slice()), (record.seq, record.data));
            assert!(record.data == payload(record.seq, 1000).as_slice());
        }
        drop(held);
        clock.advance_ms(2 * HOUR_MS);
        for _ in 0..20 {
            append_expected(&log, 10, 1000).await;
        }
        log.enforce_retention().await.unwrap();
        let stats = log.stats();
        assert_eq!(
            stats.retiring_segments, 0,
            "released once the lease is dropped: {stats:?}"
        );
    });
}

#[test]
fn a_full_ring_refuses_appends_without_losing_anything() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let config = LogConfig {
            segments_max: 3,
            ..config()
        };
        let log = open(GlommioIo, dir.path(), config, manual_clock()).await;
        let mut err = None;
        for _ in 0..1000 {
            let before = log.next_seq();
            match sluice_storage::ShardLog::append(
                &log,
                &[sluice_storage::RecordIn {
                    key: &key(before),
                    data: &payload(before, 1000),
                }],
                sluice_storage::Durability::Visible,
            )
            .await
            {
                Ok(_) => {}
                Err(e) => {
                    assert_eq!(log.next_seq(), before);
                    err = Some(e);
                    break;
                }
            }
        }
        assert!(
            matches!(err, Some(StorageError::LogFull { segments_max: 3 })),
            "{err:?}"
        );
        check_range(&log.reader(), 0, log.next_seq(), |_| 1000);
    });
}

#[test]
fn with_maintenance_rolls_never_create_files_on_the_append_path() {
    let dir = tempfile::tempdir().unwrap();
    let clock = manual_clock();
    block_on(async {
        let log = open(GlommioIo, dir.path(), config(), clock.clone()).await;
        log.set_retention_ms(2 * HOUR_MS).unwrap();
        append_expected(&log, 1, 1000).await; // the very first segment has nothing to precede it
        for _ in 0..40 {
            for _ in 0..5 {
                append_expected(&log, 10, 1000).await;
                log.maintain().await.unwrap();
            }
            clock.advance_ms(HOUR_MS / 2);
        }
        let stats = log.stats();
        assert_eq!(stats.files_created_on_roll, 1, "{stats:?}");
        assert!(
            stats.files_created >= 2 && stats.segments_recycled > 5,
            "{stats:?}"
        );
        check_range(
            &log.reader(),
            log.reader().trim_horizon(),
            log.next_seq(),
            |_| 1000,
        );
    });
}

#[test]
fn an_idle_log_gets_no_spare_segment() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let log = open(GlommioIo, dir.path(), config(), manual_clock()).await;
        append_expected(&log, 1, 100).await;
        for _ in 0..10 {
            log.maintain().await.unwrap();
        }
        assert_eq!(log.stats().files, 1);
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

/// `log_space` reads what the headers say: every file allocated whole, the retired ones
/// counted as reusable, and nothing written or locked to find out (a live log owns the dir).
#[test]
fn log_space_counts_live_and_reusable_segments_from_the_headers() {
    let dir = tempfile::tempdir().unwrap();
    let clock = manual_clock();
    block_on(async {
        let log = open(GlommioIo, dir.path(), config(), clock.clone()).await;
        for _ in 0..60 {
            append_expected(&log, 10, 1000).await; // about two and a half segments
        }
        log.maintain().await.unwrap();
        let before = sluice_storage::log_space(dir.path()).unwrap();
        let stats = log.stats();
        assert_eq!(before.files, stats.files, "{before:?} {stats:?}");
        assert_eq!(before.live_segments, stats.live_segments, "{before:?}");
        assert_eq!(before.reusable_segments, stats.free_segments, "{before:?}");
        assert_eq!(
            before.allocated_bytes,
            before.files as u64 * config().segment_size_bytes
        );
        clock.advance_ms(25 * HOUR_MS);
        append_expected(&log, 1, 1000).await;
        let retired = log.enforce_retention().await.unwrap();
        assert!(retired >= 2, "{retired}");
        let after = sluice_storage::log_space(dir.path()).unwrap();
        assert_eq!(after.files, before.files);
        assert_eq!(after.live_segments, before.live_segments - retired);
        assert_eq!(after.reusable_segments, before.reusable_segments + retired);
        assert_eq!(
            after.reusable_bytes,
            after.reusable_segments as u64 * config().segment_size_bytes
        );
    });
    let missing = sluice_storage::log_space(&dir.path().join("nothing")).unwrap();
    assert_eq!(missing.files, 0);
}
