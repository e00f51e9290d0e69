//! A log turned read-only (what a closed shard keeps): no descriptor stays open, every record
//! stays readable, visible-only records became durable, retention still applies, and the
//! directory can be opened again.

mod common;

use common::*;
use sluice_storage::io::FaultyIo;
use sluice_storage::runtime::{block_on, sleep};
use sluice_storage::{GlommioIo, LogConfig, ReadLimits, StorageError};
use std::path::Path;
use std::time::Duration;

const HOUR_MS: u64 = 3600 * 1000;

/// Descriptors of this process open on files under `dir` (other tests' files do not count).
fn descriptors_under(dir: &Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter(|target| target.starts_with(dir))
        .count()
}

/// glommio closes files asynchronously: wait (a bounded while) for the closes to land.
async fn settle_descriptors(dir: &Path) -> usize {
    for _ in 0..200 {
        if descriptors_under(dir) == 0 {
            return 0;
        }
        sleep(Duration::from_millis(10)).await;
    }
    descriptors_under(dir)
}

#[test]
fn a_read_only_log_holds_no_descriptor_and_reads_everything_the_log_held() {
    let dir = tempfile::tempdir().unwrap();
    let clock = manual_clock();
    block_on(async {
        let io = FaultyIo::new(GlommioIo);
        let log = open(io.clone(), dir.path(), small_config(), clock.clone()).await;
        // Several segments' worth, only visible: nothing has synced them yet.
        for _ in 0..8 {
            append_expected(&log, 50, 1000).await;
        }
        let end = log.next_seq();
        assert!(log.stats().live_segments > 1, "crosses segments");
        assert!(descriptors_under(dir.path()) > 0, "an open log holds files");
        assert!(!io.unsynced_writes().is_empty());
        let old_reader = log.reader();

        let closed = log.into_read_only().await;
        assert!(
            io.unsynced_writes().is_empty(),
            "visible records were made durable: {:?}",
            io.unsynced_writes()
        );
        assert_eq!(
            settle_descriptors(dir.path()).await,
            0,
            "descriptors left open"
        );
        assert_eq!(closed.next_seq(), end);
        assert_eq!(closed.latch_cause(), None);
        check_range(&old_reader, 0, end, |_| 1000);
        check_range(&closed.reader(), 0, end, |_| 1000);

        // Retention still hides expired records, and bad settings are still refused.
        assert!(matches!(
            closed.set_retention_ms(0),
            Err(StorageError::InvalidConfig(_))
        ));
        clock.advance_ms(2 * HOUR_MS);
        assert_eq!(closed.reader().trim_horizon(), 0);
        closed.set_retention_ms(HOUR_MS).unwrap();
        assert_eq!(old_reader.trim_horizon(), end, "everything expired");
        assert!(matches!(
            old_reader.read(0, ReadLimits::default()),
            Err(StorageError::SequenceTrimmed { .. })
        ));
    });
}

#[test]
fn a_read_only_log_lets_go_of_the_directory_and_a_reopen_finds_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_ms: 24 * HOUR_MS,
        ..small_config()
    };
    block_on(async {
        let log = open(GlommioIo, dir.path(), config.clone(), manual_clock()).await;
        for _ in 0..6 {
            append_expected(&log, 40, 1500).await;
        }
        let end = log.next_seq();
        let closed = log.into_read_only().await;
        // The directory lock is released: the log opens again while the old readers live.
        let reopened = open(GlommioIo, dir.path(), config, manual_clock()).await;
        assert_eq!(reopened.next_seq(), end);
        assert_eq!(reopened.recovery_report().truncated, None);
        assert!(reopened.recovery_report().holes.is_empty());
        check_range(&reopened.reader(), 0, end, |_| 1500);
        check_range(&closed.reader(), 0, end, |_| 1500);
    });
}

#[test]
fn an_exhausted_reader_is_empty_at_its_end_and_trimmed_below_it() {
    let reader = sluice_storage::LogReader::exhausted(120);
    assert_eq!((reader.next_seq(), reader.trim_horizon()), (120, 120));
    assert!(reader.read(120, ReadLimits::default()).unwrap().is_empty());
    assert!(matches!(
        reader.read(7, ReadLimits::default()),
        Err(StorageError::SequenceTrimmed {
            seq: 7,
            trim_horizon: 120
        })
    ));
    assert!(matches!(
        reader.read(121, ReadLimits::default()),
        Err(StorageError::SequenceBeyondEnd { .. })
    ));
}
