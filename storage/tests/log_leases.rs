//! Segment leases across log instances: a `ReadBatch` may outlive the log it came from, and a
//! log opened later on the same directory, in the same process, must not recycle a file under
//! it. It makes progress with other files meanwhile, and recycles the file once the batch is
//! dropped (docs/design/leases.md).

mod common;

use common::*;
use sluice_storage::runtime::block_on;
use sluice_storage::{GlommioIo, LogConfig, ReadBatch, ReadLimits, ShardLog};

const HOUR_MS: u64 = 3600 * 1000;
/// Batches of 10 records of 1000 bytes that fill about one segment of `small_config`.
const BATCHES_PER_SEGMENT: usize = 24;

fn config() -> LogConfig {
    LogConfig {
        retention_ms: HOUR_MS,
        segments_max: 16,
        ..small_config()
    }
}

async fn fill(log: &ShardLog<GlommioIo>, batches: usize) {
    for _ in 0..batches {
        append_expected(log, 10, 1000).await;
    }
}

/// Sequence, key and data of records, copied out of the mapping.
type Copied = Vec<(u64, Vec<u8>, Vec<u8>)>;

/// Every record of `batch`, copied.
fn copy(batch: &ReadBatch) -> Copied {
    batch
        .records()
        .map(|r| (r.seq, r.key.to_vec(), r.data.to_vec()))
        .collect()
}

/// The records of `held` that no longer read as the log wrote them (its copy taken when it was
/// read must also match what was written, or the check would prove nothing).
fn changed_records(held: &ReadBatch, copied: &Copied) -> usize {
    for (seq, k, data) in copied {
        assert!(
            *k == key(*seq) && *data == payload(*seq, 1000),
            "copy of {seq}"
        );
    }
    let now = copy(held);
    let differing = copied.iter().zip(&now).filter(|(a, b)| a != b).count();
    differing + copied.len().abs_diff(now.len())
}

/// Reads segment 0's batches (seq 0 onwards) from a log on `dir` filled with three segments,
/// then closes that log; returns the batch and a copy of its records.
fn read_then_close(
    dir: &std::path::Path,
    clock: &std::sync::Arc<sluice_storage::ManualClock>,
) -> (ReadBatch, Copied) {
    block_on(async {
        let log = open(GlommioIo, dir, config(), clock.clone()).await;
        fill(&log, 60).await;
        let held = log.reader().read(0, ReadLimits::default()).unwrap();
        let copied = copy(&held);
        assert!(copied.len() >= 200, "{} records", copied.len());
        (held, copied)
    })
}

#[test]
fn a_batch_held_past_its_log_keeps_its_bytes_when_the_reopened_log_expires_and_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let clock = manual_clock();
    let (held, copied) = read_then_close(dir.path(), &clock);
    block_on(async {
        let log = open(GlommioIo, dir.path(), config(), clock.clone()).await;
        clock.advance_ms(2 * HOUR_MS);
        fill(&log, 1).await;
        // The reopened log continues the third segment, so the new batch keeps it unexpired.
        assert_eq!(
            log.enforce_retention().await.unwrap(),
            2,
            "the first log's full segments expire"
        );
        // Rolling through more segments than there are files would reuse every free file.
        fill(&log, 5 * BATCHES_PER_SEGMENT).await;
        let changed = changed_records(&held, &copied);
        assert_eq!(
            changed,
            0,
            "{changed} of {} held records changed",
            copied.len()
        );
        let stats = log.stats();
        assert_eq!(stats.retiring_segments, 1, "the held file waits: {stats:?}");
        assert!(
            stats.segments_recycled >= 1,
            "the other one is reused: {stats:?}"
        );
        check_range(
            &log.reader(),
            log.reader().trim_horizon(),
            log.next_seq(),
            |_| 1000,
        );
        // Once the batch is gone, the file is reclaimed and recycled like any other.
        drop(held);
        clock.advance_ms(2 * HOUR_MS);
        fill(&log, 1).await;
        log.enforce_retention().await.unwrap();
        let before = log.stats();
        assert_eq!(before.retiring_segments, 0, "{before:?}");
        fill(&log, 2 * BATCHES_PER_SEGMENT).await;
        let after = log.stats();
        assert!(
            after.segments_recycled > before.segments_recycled,
            "{after:?}"
        );
        assert_eq!(
            after.files_created, before.files_created,
            "no new file: {after:?}"
        );
    });
}

#[test]
fn a_file_a_closed_log_retired_under_a_held_batch_is_not_reused_by_the_reopened_log() {
    let dir = tempfile::tempdir().unwrap();
    let clock = manual_clock();
    let (held, copied) = read_then_close(dir.path(), &clock);
    // A second life of the first log retires the held segment: it is free on disk.
    block_on(async {
        let log = open(GlommioIo, dir.path(), config(), clock.clone()).await;
        clock.advance_ms(2 * HOUR_MS);
        fill(&log, 1).await;
        // The third segment took the new batch (a reopen continues its tail): two expire.
        assert_eq!(log.enforce_retention().await.unwrap(), 2);
    });
    block_on(async {
        let log = open(GlommioIo, dir.path(), config(), clock.clone()).await;
        fill(&log, 5 * BATCHES_PER_SEGMENT).await;
        let changed = changed_records(&held, &copied);
        assert_eq!(
            changed,
            0,
            "{changed} of {} held records changed",
            copied.len()
        );
        check_range(
            &log.reader(),
            log.reader().trim_horizon(),
            log.next_seq(),
            |_| 1000,
        );
        let before = log.stats();
        assert_eq!(
            before.retiring_segments, 1,
            "the held file waits: {before:?}"
        );
        drop(held);
        log.enforce_retention().await.unwrap();
        let after = log.stats();
        assert_eq!(
            after.retiring_segments, 0,
            "reclaimed once released: {after:?}"
        );
        assert_eq!(after.free_segments, before.free_segments + 1, "{after:?}");
    });
}
