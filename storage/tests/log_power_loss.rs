//! Power loss as the page cache really loses data: any subset of the dirty pages reaches the
//! device, in no order, some of them torn. Durable records survive it, with retention
//! retiring segments and rolls recycling their files while the power fails.

mod common;

use common::*;
use sluice_storage::io::{FaultyIo, PageFate, PageLoss, PowerLoss};
use sluice_storage::runtime::block_on;
use sluice_storage::{
    Durability, GlommioIo, LogConfig, ManualClock, ReadLimits, RecordIn, SegmentIo, ShardLog,
};
use std::sync::Arc;

const HOUR_MS: u64 = 3600 * 1000;

fn config() -> LogConfig {
    LogConfig {
        retention_ms: 24 * HOUR_MS,
        segments_max: 16,
        ..small_config()
    }
}

/// Appends `count` batches of 10 records of `len` bytes (contents as `check_range` expects).
async fn append_batches<I: SegmentIo>(
    log: &ShardLog<I>,
    count: usize,
    len: usize,
    durability: Durability,
) {
    for _ in 0..count {
        let base = log.next_seq();
        let owned: Vec<(Vec<u8>, Vec<u8>)> = (base..base + 10)
            .map(|s| (key(s), payload(s, len)))
            .collect();
        let records: Vec<RecordIn<'_>> = owned
            .iter()
            .map(|(k, d)| RecordIn { key: k, data: d })
            .collect();
        let appended = log.append(&records, durability).await.expect("append");
        assert_eq!(appended.base_seq, base);
    }
}

/// The oldest segment is retired and its file taken by a roll, and the power fails before
/// anything syncs that file again; `seal` says whether full segments were sealed first (a
/// segment is retired whether or not its seal was written). Returns where the durable records
/// start and end.
async fn retire_and_recycle(
    io: &FaultyIo<GlommioIo>,
    dir: &std::path::Path,
    clock: &Arc<ManualClock>,
    seal: bool,
) -> (u64, u64) {
    let log = open(io.clone(), dir, config(), clock.clone()).await;
    // One segment written at T0, then five more 20 hours later, all durable and sealed.
    append_batches(&log, 24, 1000, Durability::Durable).await;
    let first_kept = log.next_seq();
    clock.advance_ms(20 * HOUR_MS);
    append_batches(&log, 120, 1000, Durability::Durable).await;
    if seal {
        log.maintain().await.expect("seal");
    }
    let durable_end = log.next_seq();
    // The first segment expires; the next roll takes its file.
    clock.advance_ms(4 * HOUR_MS + 1);
    assert_eq!(log.enforce_retention().await.expect("retention"), 1);
    let recycled = log.stats().segments_recycled;
    append_batches(&log, 40, 1000, Durability::Visible).await;
    assert!(
        log.stats().segments_recycled > recycled,
        "a roll took the retired file"
    );
    io.cut_power();
    drop(log);
    (first_kept, durable_end)
}

/// Found by reading retention, reclaim and roll together: the free header of a retired segment
/// was only queued for syncing when a roll could take the file and write a new header over it.
/// If neither header page reached the device but new data pages did, the file showed its old
/// header over new data, recovery anchored the chain at that stale, lowest segment and cut
/// every later one: all durable records gone.
#[test]
fn a_recycled_file_whose_new_header_never_reached_the_device_loses_no_durable_record() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultyIo::new(GlommioIo);
    let clock = manual_clock();
    let (first_kept, durable_end) = block_on(retire_and_recycle(&io, dir.path(), &clock, false));
    let lost = io.lose_power_pages(header_pages_lost).unwrap();
    assert!(lost > 0, "a header page was lost");
    io.heal();
    block_on(async {
        let log = reopen_keeping(dir.path(), &clock, durable_end, "").await;
        let reader = log.reader();
        check_range(&reader, first_kept, durable_end, |_| 1000);
    });
}

/// The same history under the page model with many seeds: whatever subset of pages reached
/// the device, every durable record is back and reads return nothing corrupt.
#[test]
fn any_subset_of_dirty_pages_keeps_every_durable_record_through_retention_and_recycling() {
    for seed in 0..12u64 {
        let dir = tempfile::tempdir().unwrap();
        let io = FaultyIo::new(GlommioIo);
        let clock = manual_clock();
        let (first_kept, durable_end) =
            block_on(retire_and_recycle(&io, dir.path(), &clock, seed % 2 == 0));
        let loss = PageLoss {
            seed,
            keep_percent: (seed * 13 % 101) as u8,
            torn_percent: (seed * 29 % 60) as u8,
        };
        io.lose_power(PowerLoss::Pages(loss)).unwrap();
        io.heal();
        block_on(async {
            let context = format!("{loss:?}: ");
            let log = reopen_keeping(dir.path(), &clock, durable_end, &context).await;
            let reader = log.reader();
            check_range(&reader, first_kept, durable_end, |_| 1000);
            check_what_survived(&reader, durable_end);
        });
    }
}

/// Reads from `from` to the end, following gaps a cut left (the numbers of lost records are
/// never handed out again): every record returned is intact and in its place.
fn check_what_survived(reader: &sluice_storage::LogReader, from: u64) {
    let mut seq = from;
    while seq < reader.next_seq() {
        let batch = reader.read(seq, ReadLimits::default()).expect("read");
        for record in batch.records() {
            assert_eq!(
                record.key,
                key(record.seq).as_slice(),
                "key of {}",
                record.seq
            );
            assert!(
                record.data == payload(record.seq, 1000).as_slice(),
                "data of {}",
                record.seq
            );
        }
        assert!(batch.next_seq() > seq, "reads move on");
        seq = batch.next_seq();
    }
}

/// A disk no single history can leave: the recycled file shows its old header over the new
/// life's data, with some of the old life's pages too. Recovery keeps every durable record:
/// the stale segment is released, or at worst kept as the expired data it describes, and
/// never cuts the log in front of the data after it.
#[test]
fn a_stale_header_over_a_later_life_never_cuts_the_durable_data_after_it() {
    const PAGE: usize = 4096;
    // Pages of the old life put back (the header; the header and the first data page; with
    // the seal at the end of the file too), and whether the old life was sealed.
    let variants: [(&[usize], bool); 5] = [
        (&[0], false),
        (&[0, 1], false),
        (&[0], true),
        (&[0, 1], true),
        (&[0, 1, usize::MAX], true),
    ];
    for (restore, sealed) in variants {
        let dir = tempfile::tempdir().unwrap();
        let io = FaultyIo::new(GlommioIo);
        let clock = manual_clock();
        let first = dir.path().join("seg-00000000.log");
        let (first_kept, durable_end, old_life) = block_on(async {
            let log = open(io.clone(), dir.path(), config(), clock.clone()).await;
            append_batches(&log, 24, 1000, Durability::Durable).await;
            let first_kept = log.next_seq();
            clock.advance_ms(20 * HOUR_MS);
            append_batches(&log, 120, 1000, Durability::Durable).await;
            if sealed {
                log.maintain().await.expect("seal");
            }
            let old_life = std::fs::read(&first).unwrap();
            let durable_end = log.next_seq();
            clock.advance_ms(4 * HOUR_MS + 1);
            assert_eq!(log.enforce_retention().await.expect("retention"), 1);
            append_batches(&log, 40, 1000, Durability::Durable).await;
            assert!(
                log.stats().segments_recycled > 0,
                "a roll took the retired file"
            );
            (first_kept, durable_end, old_life)
        });
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&first)
            .unwrap();
        for &page in restore {
            let page = page.min(old_life.len() / PAGE - 1);
            let at = page * PAGE;
            use std::os::unix::fs::FileExt;
            file.write_all_at(&old_life[at..at + PAGE], at as u64)
                .unwrap();
        }
        drop(file);
        block_on(async {
            let log = open(GlommioIo, dir.path(), config(), clock.clone()).await;
            let reader = log.reader();
            let report = log.recovery_report();
            assert!(
                report
                    .truncated
                    .as_ref()
                    .is_none_or(|t| t.seq >= durable_end),
                "pages {restore:?}, sealed {sealed}: the stale segment cut the log"
            );
            check_range(&reader, first_kept, durable_end, |_| 1000);
            check_what_survived(&reader, durable_end);
        });
    }
}

/// Rolls whose headers never reached the device while their data pages did leave batches of
/// generations no header on disk mentions. Generations after recovery start above all of them
/// (D5 in docs/design/segment-format.md): a segment started with one of those numbers again
/// would take the stale batches of a later lost life, found after its own data, for proof that
/// its own header is stale, and its durable records would be released at the next open.
#[test]
fn generations_after_lost_headers_never_meet_a_stale_later_life() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultyIo::new(GlommioIo);
    let clock = manual_clock();
    let durable_end = block_on(async {
        let log = open(io.clone(), dir.path(), config(), clock.clone()).await;
        append_batches(&log, 72, 1000, Durability::Durable).await;
        log.maintain().await.expect("seal");
        let durable_end = log.next_seq();
        // Three more segments' worth, visible only: three rolls, three headers never synced.
        append_batches(&log, 72, 1000, Durability::Visible).await;
        io.cut_power();
        durable_end
    });
    io.lose_power_pages(header_pages_lost).unwrap();
    io.heal();
    // Reopen and append a little durably: the new segment takes one of the files whose lost
    // life left stale batches after the few this one writes.
    let durable_end = block_on(async {
        let log = open(io.clone(), dir.path(), config(), clock.clone()).await;
        assert!(log.next_seq() >= durable_end);
        append_batches(&log, 3, 1000, Durability::Durable).await;
        log.next_seq()
    });
    block_on(async {
        let log = reopen_keeping(dir.path(), &clock, durable_end, "").await;
        let reader = log.reader();
        check_what_survived(&reader, 0);
        let last = reader
            .read(durable_end - 1, ReadLimits::default())
            .expect("the last durable record is there");
        assert_eq!(last.records().next().map(|r| r.seq), Some(durable_end - 1));
    });
}

/// A seal lets recovery open a segment without reading its batches, so it must never reach
/// the device before the batches it describes (D2). Full segments of visible-only records are
/// sealed by housekeeping; then the power fails keeping only each file's header page and the
/// pages near its end, where the seal lies, and none of the data pages before them.
#[test]
fn a_seal_never_describes_batches_that_did_not_reach_the_device() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultyIo::new(GlommioIo);
    let clock = manual_clock();
    let visible_end = block_on(async {
        let log = open(io.clone(), dir.path(), config(), clock.clone()).await;
        append_batches(&log, 60, 1000, Durability::Visible).await;
        log.maintain().await.expect("seal");
        io.cut_power();
        log.reader().next_seq()
    });
    let pages_per_segment = config().segment_size_bytes / sluice_storage::io::PAGE_BYTES;
    io.lose_power_pages(|_, page| {
        if page == 0 || page + 8 >= pages_per_segment {
            PageFate::Kept
        } else {
            PageFate::Lost
        }
    })
    .unwrap();
    io.heal();
    block_on(async {
        let log = open(GlommioIo, dir.path(), config(), clock.clone()).await;
        let reader = log.reader();
        assert!(reader.next_seq() <= visible_end);
        // Whatever recovery kept reads back intact: no seal over missing batches.
        check_what_survived(&reader, 0);
    });
}

/// Recovery releases the segments after a cut before anything is appended, and that release
/// must be durable first (D4): if a power loss took the released header back, the segment
/// after the cut would come back live, break the chain in front of the records appended since,
/// and those durable records would be cut at the next open.
#[test]
fn segments_released_at_a_cut_stay_released_through_the_next_power_loss() {
    let dir = tempfile::tempdir().unwrap();
    let clock = manual_clock();
    block_on(async {
        let log = open(GlommioIo, dir.path(), config(), clock.clone()).await;
        append_batches(&log, 24, 1000, Durability::Durable).await;
        append_batches(&log, 120, 1000, Durability::Visible).await;
    });
    // Damage in the middle of the second segment: the next open cuts there and releases the
    // four after it, more than the appends since will take again.
    let second = dir.path().join("seg-00000001.log");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&second)
        .unwrap();
    use std::os::unix::fs::FileExt;
    file.write_all_at(&[0x5A; 64], 4096 + 64 * 1024).unwrap();
    drop(file);
    let io = FaultyIo::new(GlommioIo);
    let durable_end = block_on(async {
        let log = open(io.clone(), dir.path(), config(), clock.clone()).await;
        assert!(log.recovery_report().truncated.is_some());
        assert!(log.recovery_report().discarded_segments > 0);
        append_batches(&log, 30, 1000, Durability::Durable).await;
        io.cut_power();
        log.next_seq()
    });
    io.lose_power_pages(header_pages_lost).unwrap();
    io.heal();
    block_on(async {
        let log = reopen_keeping(dir.path(), &clock, durable_end, "").await;
        let reader = log.reader();
        let last = reader
            .read(durable_end - 1, ReadLimits::default())
            .expect("the last durable record is there");
        assert_eq!(last.records().next().map(|r| r.seq), Some(durable_end - 1));
        check_what_survived(&reader, 0);
    });
}

/// Every header page written since its file's last sync is lost; every data page kept.
fn header_pages_lost(_: &std::path::Path, page: u64) -> PageFate {
    if page == 0 {
        PageFate::Lost
    } else {
        PageFate::Kept
    }
}

/// Reopens the log on `dir` (without fault injection) and checks that no record below
/// `durable_end` went; `context` prefixes the failure.
async fn reopen_keeping(
    dir: &std::path::Path,
    clock: &Arc<ManualClock>,
    durable_end: u64,
    context: &str,
) -> ShardLog<GlommioIo> {
    let log = open(GlommioIo, dir, config(), clock.clone()).await;
    assert!(
        log.next_seq() >= durable_end,
        "{context}{} records back of {durable_end} durable ({:?})",
        log.next_seq(),
        log.recovery_report()
    );
    log
}
