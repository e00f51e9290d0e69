//! Helpers shared by the storage tests.
#![allow(dead_code)]

pub mod replicated;

use sluice_storage::runtime::sleep;
use sluice_storage::{Clock, LogConfig, ManualClock, ReadLimits, RecordIn, SegmentIo, ShardLog};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

/// Small segments so tests cross boundaries and wrap the ring quickly.
pub fn small_config() -> LogConfig {
    LogConfig {
        segment_size_bytes: 256 * 1024,
        index_interval_bytes: 4096,
        record_size_bytes_max: 64 * 1024,
        segments_max: 64,
        ..LogConfig::default()
    }
}

pub const T0_MS: u64 = 1_700_000_000_000;

pub fn manual_clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(T0_MS))
}

pub use sluice_storage::testing::payload;

/// The key of record `seq`, as the log's keys are: bytes.
pub fn key(seq: u64) -> Vec<u8> {
    sluice_storage::testing::key(seq).into_bytes()
}

pub async fn open<I: SegmentIo>(
    io: I,
    dir: &Path,
    config: LogConfig,
    clock: Arc<dyn Clock>,
) -> ShardLog<I> {
    ShardLog::open(io, dir, config, clock)
        .await
        .expect("open log")
}

/// Appends records `seqs` (keys and payloads derived from the seq the log is expected to give).
pub async fn append_expected<I: SegmentIo>(log: &ShardLog<I>, count: usize, len: usize) -> u64 {
    let base = log.next_seq();
    let owned: Vec<(Vec<u8>, Vec<u8>)> = (base..base + count as u64)
        .map(|s| (key(s), payload(s, len)))
        .collect();
    let records: Vec<RecordIn<'_>> = owned
        .iter()
        .map(|(k, d)| RecordIn { key: k, data: d })
        .collect();
    let appended = log
        .append(&records, sluice_storage::Durability::Visible)
        .await
        .expect("append");
    assert_eq!(appended.base_seq, base);
    appended.base_seq
}

/// Reads every record in `[from, to)` and checks each against `payload`, with `len_of(seq)`.
pub fn check_range(
    reader: &sluice_storage::LogReader,
    from: u64,
    to: u64,
    len_of: impl Fn(u64) -> usize,
) {
    let mut seq = from;
    while seq < to {
        let batch = reader.read(seq, ReadLimits::default()).expect("read");
        assert!(
            !batch.is_empty(),
            "no records at {seq} (next {})",
            reader.next_seq()
        );
        for record in batch.records() {
            assert_eq!(record.seq, seq);
            assert_eq!(record.key, key(seq).as_slice(), "key of {seq}");
            assert!(
                record.data == payload(seq, len_of(seq)).as_slice(),
                "data of {seq}"
            );
            seq += 1;
            if seq == to {
                break;
            }
        }
    }
}

/// Polls `future` until `ready()` holds (or it finishes); returns it unfinished, if it is.
pub async fn drive_until<F: Future + ?Sized>(
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
