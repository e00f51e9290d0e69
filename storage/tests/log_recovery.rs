//! Reopen after a clean close and after simulated crashes: intact batches before damage come
//! back, nothing after it, and no corrupt byte is ever returned as data.

mod common;

use common::*;
use sluice_storage::io::{Fault, FaultPlan, FaultyIo};
use sluice_storage::runtime::block_on;
use sluice_storage::{Durability, GlommioIo, LogConfig, ReadLimits, RecordIn, StorageError};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const RECORD_LEN: usize = 300;
const HOUR_MS: u64 = 3600 * 1000;

/// Writes `batches` batches of 4 records, closes cleanly, returns the batch start positions
/// in the active (last) segment file.
fn write_log(dir: &Path, batches: u64) {
    block_on(async {
        let log = open(GlommioIo, dir, small_config(), manual_clock()).await;
        for _ in 0..batches {
            append_expected(&log, 4, RECORD_LEN).await;
        }
        log.maintain().await.unwrap(); // seals full segments, as the owning core does
        log.sync().await.unwrap();
    });
}

fn reopen_and_read_all(dir: &Path) -> (Vec<u64>, sluice_storage::RecoveryReport, u64) {
    reopen_with(dir, small_config())
}

fn reopen_with(dir: &Path, config: LogConfig) -> (Vec<u64>, sluice_storage::RecoveryReport, u64) {
    block_on(async {
        let log = open(GlommioIo, dir, config, manual_clock()).await;
        let reader = log.reader();
        let mut seqs = Vec::new();
        let mut seq = reader.trim_horizon();
        while seq < reader.next_seq() {
            let batch = reader.read(seq, ReadLimits::default()).unwrap();
            for record in batch.records() {
                assert_eq!(record.key, key(record.seq).as_slice());
                assert!(
                    record.data == payload(record.seq, RECORD_LEN).as_slice(),
                    "intact data"
                );
                seqs.push(record.seq);
            }
            seq = batch.next_seq();
        }
        (seqs, log.recovery_report().clone(), log.next_seq())
    })
}

/// Segment files ordered by slot (= creation order in these tests, no recycling).
fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files
}

/// The active segment: the newest file holding batches (`maintain` may have added a spare).
fn last_segment_with_data(dir: &Path) -> PathBuf {
    let files = segment_files(dir);
    files
        .into_iter()
        .rev()
        .find(|f| !batch_positions(f).is_empty())
        .expect("a segment with data")
}

/// Byte offsets of the batches in a segment file, found by walking the headers.
fn batch_positions(file: &Path) -> Vec<u64> {
    let bytes = std::fs::read(file).unwrap();
    let mut pos = 4096usize;
    let mut out = Vec::new();
    while pos + 64 <= bytes.len() && &bytes[pos..pos + 4] == b"SLB1" {
        out.push(pos as u64);
        pos += u32::from_le_bytes(bytes[pos + 16..pos + 20].try_into().unwrap()) as usize;
    }
    out
}

#[test]
fn clean_reopen_returns_everything_and_opens_sealed_segments_from_footers() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 400);
    let (seqs, report, next) = reopen_and_read_all(dir.path());
    assert_eq!(seqs, (0..1600).collect::<Vec<_>>());
    assert_eq!(next, 1600);
    assert_eq!(
        report.scanned_segments, 1,
        "only the active segment is scanned: {report:?}"
    );
    assert!(report.sealed_segments >= 2, "{report:?}");
    // That reopen continued the tail instead of sealing it: the next one scans the tail again,
    // and only the tail.
    let (seqs, report, _) = reopen_and_read_all(dir.path());
    assert_eq!(seqs.len(), 1600);
    assert_eq!(report.scanned_segments, 1, "{report:?}");
    assert_eq!(report.truncated, None);
}

#[test]
fn appends_after_reopen_continue_the_sequence() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 50);
    write_log(dir.path(), 50);
    let (seqs, _, next) = reopen_and_read_all(dir.path());
    assert_eq!(next, 400);
    assert_eq!(seqs, (0..400).collect::<Vec<_>>());
}

#[test]
fn a_torn_last_batch_is_cut_and_everything_before_it_survives() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 300);
    let active = last_segment_with_data(dir.path());
    let positions = batch_positions(&active);
    let last = *positions.last().unwrap();
    // The tail of the last batch never reached the disk.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&active)
        .unwrap();
    file.write_all_at(&[0u8; 700], last + 200).unwrap();
    let (seqs, report, next) = reopen_and_read_all(dir.path());
    assert_eq!(next, 1196);
    assert_eq!(seqs, (0..1196).collect::<Vec<_>>());
    let truncated = report.truncated.expect("the cut is reported");
    assert_eq!((truncated.pos, truncated.seq), (last, 1196));
}

#[test]
fn a_flipped_bit_in_the_active_segment_cuts_the_log_there() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 300);
    let active = last_segment_with_data(dir.path());
    let positions = batch_positions(&active);
    let damaged = positions[positions.len() / 2];
    let first_lost = positions_seq(&active, damaged);
    flip_bit(&active, damaged + 64 + 16 + 5);
    let (seqs, report, next) = reopen_and_read_all(dir.path());
    assert_eq!(next, first_lost, "nothing after the damage");
    assert_eq!(seqs, (0..first_lost).collect::<Vec<_>>());
    assert!(report.truncated.unwrap().reason.contains("checksum"));
    // The log goes on from the cut, and the stale batches after it never come back.
    block_on(async {
        let log = open(GlommioIo, dir.path(), small_config(), manual_clock()).await;
        append_expected(&log, 4, RECORD_LEN).await;
        assert_eq!(log.next_seq(), first_lost + 4);
    });
    let (seqs, _, next) = reopen_and_read_all(dir.path());
    assert_eq!(next, first_lost + 4);
    assert_eq!(seqs.len() as u64, first_lost + 4);
}

#[test]
fn a_flipped_bit_in_a_sealed_segment_is_reported_as_corrupt_never_returned() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 400);
    let first = segment_files(dir.path()).remove(0);
    let positions = batch_positions(&first);
    let damaged = positions[10];
    flip_bit(&first, damaged + 64 + 16 + 40);
    let damaged_seq = positions_seq(&first, damaged);
    block_on(async {
        let log = open(GlommioIo, dir.path(), small_config(), manual_clock()).await;
        let reader = log.reader();
        let before = reader.read(
            0,
            ReadLimits {
                records_max: damaged_seq as usize,
                bytes_max: u64::MAX,
            },
        );
        assert_eq!(
            before.unwrap().records().last().unwrap().seq,
            damaged_seq - 1
        );
        for seq in damaged_seq..damaged_seq + 4 {
            let err = reader.read(seq, ReadLimits::default()).unwrap_err();
            assert!(matches!(err, StorageError::Corrupt { .. }), "{err}");
        }
        // A read that would run into the damaged batch stops with the error too.
        assert!(reader.read(0, ReadLimits::default()).is_err());
    });
}

#[test]
fn a_segment_after_a_gap_is_discarded_and_its_numbers_are_never_reused() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 400);
    let files = segment_files(dir.path());
    // Damage the second segment's trailer and a batch inside it: it must be scanned, the scan
    // stops early, and every later segment no longer follows on.
    let second = &files[1];
    let size = std::fs::metadata(second).unwrap().len();
    flip_bit(second, size - 10);
    let positions = batch_positions(second);
    flip_bit(second, positions[5] + 100);
    let cut = positions_seq(second, positions[5]);
    let (seqs, report, next) = reopen_and_read_all(dir.path());
    assert_eq!(
        seqs,
        (0..cut).collect::<Vec<_>>(),
        "nothing after the damage"
    );
    assert!(report.discarded_segments >= 1, "{report:?}");
    assert_eq!(report.truncated.as_ref().unwrap().seq, cut);
    // Records up to 1600 were handed out before the crash: numbering continues above them, and
    // a reader at the cut skips the gap.
    assert_eq!(next, 1600);
    block_on(async {
        let log = open(GlommioIo, dir.path(), small_config(), manual_clock()).await;
        let gap = log.reader().read(cut, ReadLimits::default()).unwrap();
        assert!(gap.is_empty());
        assert_eq!(gap.next_seq(), 1600);
        append_expected(&log, 4, RECORD_LEN).await;
    });
    let (seqs, report, next) = reopen_and_read_all(dir.path());
    assert_eq!(
        report.truncated, None,
        "the jump to the recorded floor is not a gap: {report:?}"
    );
    assert_eq!(next, 1604);
    assert_eq!(seqs, (0..cut).chain(1600..1604).collect::<Vec<_>>());
}

#[test]
fn checked_in_fixtures_recover_exactly() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    // name, records expected back. Fixtures hold 60 batches of 4 records (`fixture_log`):
    // 43 batches fill segment 0, 17 sit in segment 1. torn-tail loses batch 59 (seq 236..);
    // flipped-bit damages batch 8 of segment 1, i.e. batch 51 (seq 204..).
    for (name, expected) in [
        ("clean", 240),
        ("torn-tail", 236),
        ("flipped-bit", 204),
        ("unwritten-extra-segment", 240),
    ] {
        let dir = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(fixtures.join(name)).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
        let (seqs, _, next) = reopen_with(dir.path(), fixture_config());
        assert_eq!(next, expected, "fixture {name}");
        assert_eq!(seqs, (0..expected).collect::<Vec<_>>(), "fixture {name}");
    }
}

/// The clean fixture is what today's code writes, byte for byte: the format is pinned.
#[test]
fn the_format_matches_the_checked_in_fixture_byte_for_byte() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let dir = tempfile::tempdir().unwrap();
    fixture_log(dir.path());
    if std::env::var_os("SLUICE_REGENERATE_FIXTURES").is_some() {
        regenerate(dir.path(), &fixtures);
    }
    for file in segment_files(dir.path()) {
        let name = file.file_name().unwrap();
        let pinned = std::fs::read(fixtures.join("clean").join(name)).unwrap();
        assert!(
            std::fs::read(&file).unwrap() == pinned,
            "{name:?} differs from the fixture"
        );
    }
}

fn fixture_config() -> LogConfig {
    LogConfig {
        segment_size_bytes: 64 * 1024,
        record_size_bytes_max: 16 * 1024,
        ..small_config()
    }
}

/// 60 batches of 4 records of 300 bytes at a fixed time into 64 KiB segments.
fn fixture_log(dir: &Path) {
    block_on(async {
        let log = open(GlommioIo, dir, fixture_config(), manual_clock()).await;
        for _ in 0..60 {
            append_expected(&log, 4, RECORD_LEN).await;
        }
        log.maintain().await.unwrap();
        log.sync().await.unwrap();
    });
}

fn regenerate(fresh: &Path, fixtures: &Path) {
    let copy = |name: &str| {
        let target = fixtures.join(name);
        let _ = std::fs::remove_dir_all(&target);
        std::fs::create_dir_all(&target).unwrap();
        for file in segment_files(fresh) {
            std::fs::copy(&file, target.join(file.file_name().unwrap())).unwrap();
        }
        segment_files(&target)
    };
    copy("clean");
    let files = copy("torn-tail");
    let last = files.last().unwrap();
    let pos = *batch_positions(last).last().unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(last)
        .unwrap()
        .write_all_at(&[0u8; 512], pos + 300)
        .unwrap();
    let files = copy("flipped-bit");
    let last = files.last().unwrap();
    let positions = batch_positions(last);
    flip_bit(last, positions[positions.len() / 2] + 64 + 20);
    // A segment file created just before a crash, its header never written: a free slot.
    let files = copy("unwritten-extra-segment");
    let extra = files[0].with_file_name("seg-00000099.log");
    std::fs::write(&extra, vec![0u8; 64 * 1024]).unwrap();
}

fn flip_bit(file: &Path, pos: u64) {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(file)
        .unwrap();
    let mut byte = [0u8];
    f.read_exact_at(&mut byte, pos).unwrap();
    byte[0] ^= 0x08;
    f.write_all_at(&byte, pos).unwrap();
}

/// Base sequence of the batch at `pos`.
fn positions_seq(file: &Path, pos: u64) -> u64 {
    let bytes = std::fs::read(file).unwrap();
    let at = pos as usize + 24;
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
}

#[test]
fn durable_appends_survive_a_reopen_without_close() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let log = open(GlommioIo, dir.path(), small_config(), manual_clock()).await;
        let data = payload(0, RECORD_LEN);
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
        assert_eq!(log.durable_seq(), 1);
        drop(log); // there is no close step: this is what the process leaves when it dies
    });
    let (seqs, _, _) = reopen_and_read_all(dir.path());
    assert_eq!(seqs, vec![0]);
}

#[test]
fn an_interrupted_segment_creation_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 10);
    // What a crash between create and rename leaves: a short file under the temporary name.
    let leftover = dir.path().join("seg-00000007.log.tmp");
    std::fs::write(&leftover, b"short").unwrap();
    let (seqs, _, next) = reopen_and_read_all(dir.path());
    assert_eq!((seqs.len(), next), (40, 40));
    assert!(!leftover.exists());
}

/// Found by the kill -9 crash test: a crash tore the first batch of a fresh segment; recovery
/// left that segment empty, the next run started another segment at the same sequence
/// number, and the following recovery took the duplicate for a gap and discarded later data.
#[test]
fn a_segment_torn_at_its_first_batch_never_cuts_later_data() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 400);
    let files = segment_files(dir.path());
    let last = files.last().unwrap();
    let first_batch = batch_positions(last)[0];
    let lost_from = positions_seq(last, first_batch);
    let file = std::fs::OpenOptions::new().write(true).open(last).unwrap();
    file.write_all_at(&[0u8; 100], first_batch + 100).unwrap();
    let (_, report, next) = reopen_and_read_all(dir.path());
    assert_eq!(next, lost_from);
    assert_eq!(report.truncated.unwrap().pos, first_batch);
    for _ in 0..3 {
        write_log(dir.path(), 400); // spans several segments
        let (seqs, report, next) = reopen_and_read_all(dir.path());
        assert_eq!(report.truncated, None, "{report:?}");
        assert_eq!(seqs, (0..next).collect::<Vec<_>>());
    }
    let (_, _, next) = reopen_and_read_all(dir.path());
    assert_eq!(next, lost_from + 3 * 1600);
}

/// Found by the kill -9 crash test once seals moved off the roll: a crash in the middle of
/// writing a full segment's seal left bytes that are not a batch after its data, while newer
/// segments already held acknowledged records. Those bytes are the segment's end, not damage:
/// the next segment starts exactly there, so nothing may be cut.
#[test]
fn a_torn_seal_on_a_full_segment_does_not_cut_the_newer_segments() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let log = open(GlommioIo, dir.path(), small_config(), manual_clock()).await;
        for _ in 0..600 {
            append_expected(&log, 4, RECORD_LEN).await; // no maintain: full segments stay unsealed
        }
        log.sync().await.unwrap();
    });
    let first = &segment_files(dir.path())[0];
    let positions = batch_positions(first);
    let last = *positions.last().unwrap();
    let bytes = std::fs::read(first).unwrap();
    let data_end = last
        + u64::from(u32::from_le_bytes(
            bytes[last as usize + 16..last as usize + 20]
                .try_into()
                .unwrap(),
        ));
    let file = std::fs::OpenOptions::new().write(true).open(first).unwrap();
    file.write_all_at(&[0xAB; 300], data_end).unwrap(); // half a footer
    let (seqs, report, next) = reopen_and_read_all(dir.path());
    assert_eq!(next, 2400, "{report:?}");
    assert_eq!(seqs, (0..2400).collect::<Vec<_>>());
    assert_eq!(report.discarded_segments, 0, "{report:?}");
    // That reopen sealed every segment but the tail it continues: the next one opens them
    // from footers and scans the tail alone.
    let (_, report, _) = reopen_and_read_all(dir.path());
    assert_eq!(report.scanned_segments, 1, "{report:?}");
    assert_eq!(report.sealed_segments, 3, "{report:?}");
}

/// Pages of `file` from `from` to its end that are in the page cache.
#[allow(unsafe_code)]
fn resident_pages_from(file: &Path, from: u64) -> usize {
    let handle = std::fs::File::open(file).unwrap();
    // SAFETY: the mapping is only passed to mincore, never read; the file is not truncated
    // while it lives.
    let map = unsafe { memmap2::Mmap::map(&handle) }.unwrap();
    let page = 4096usize;
    let len = map.len() - from as usize;
    let mut residency = vec![0u8; len.div_ceil(page)];
    // SAFETY: the range lies inside the live mapping and `residency` has a byte per page.
    let done = unsafe {
        libc::mincore(
            map.as_ptr().add(from as usize) as *mut libc::c_void,
            len,
            residency.as_mut_ptr(),
        )
    };
    assert_eq!(done, 0, "mincore: {}", std::io::Error::last_os_error());
    residency.iter().filter(|&&r| r & 1 == 1).count()
}

/// Drops the file's (clean) pages from the page cache.
#[allow(unsafe_code)]
fn evict(file: &Path) {
    let handle = std::fs::File::open(file).unwrap();
    handle.sync_all().unwrap();
    use std::os::fd::AsRawFd;
    // SAFETY: a valid descriptor; the advice only drops clean cached pages.
    let done = unsafe { libc::posix_fadvise(handle.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(done, 0);
}

/// Opening a log reads each segment's seal at the file's end. A fault there used to read
/// around it by the device's whole read-ahead window (8 MiB on this project's virtual disk),
/// zero-filling the unwritten tail of every active segment at each open: a 2,000-shard engine
/// took 6-8 s to reopen (docs/profiles/reopen-2000-shards.txt).
#[test]
fn opening_a_log_reads_its_seals_without_reading_around_them() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_size_bytes: 64 << 20,
        ..small_config()
    };
    block_on(async {
        let log = open(GlommioIo, dir.path(), config.clone(), manual_clock()).await;
        append_expected(&log, 4, RECORD_LEN).await;
        log.sync().await.unwrap();
    });
    let files = segment_files(dir.path());
    for file in &files {
        evict(file);
    }
    let (seqs, _, _) = reopen_with(dir.path(), config);
    assert_eq!(seqs, vec![0, 1, 2, 3]);
    // The second half of each file holds no data: only the trailer's page may be read there.
    for file in &files {
        let half = std::fs::metadata(file).unwrap().len() / 2;
        let resident = resident_pages_from(file, half);
        assert!(resident <= 2, "{}: {resident} pages read", file.display());
    }
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

/// Damage that a sealed segment comes after is a hole, not a cut: a segment is sealed only
/// once everything up to its end is durable, so the data after the damage was acknowledged
/// and must stay. Only the records from the damage to the end of that segment are lost.
#[test]
fn damage_before_a_sealed_segment_is_stepped_over_and_the_sealed_data_stays() {
    let dir = tempfile::tempdir().unwrap();
    let end = block_on(async {
        let log = open(GlommioIo, dir.path(), small_config(), manual_clock()).await;
        for _ in 0..600 {
            append_expected(&log, 4, 300).await;
        }
        log.maintain().await.unwrap(); // seals every full segment
        log.next_seq()
    });
    // The second segment loses its seal and a batch in its middle: it must be scanned, and the
    // scan stops at the damage.
    let second = dir.path().join("seg-00000001.log");
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&second)
        .unwrap();
    use std::os::unix::fs::FileExt;
    let size = f.metadata().unwrap().len();
    f.write_all_at(&[0; 64], size - 64).unwrap();
    f.write_all_at(&[0x5A; 64], 4096 + 64 * 1024).unwrap();
    block_on(async {
        let log = open(GlommioIo, dir.path(), small_config(), manual_clock()).await;
        let report = log.recovery_report().clone();
        assert_eq!(report.truncated, None, "{report:?}");
        assert_eq!(report.holes.len(), 1, "{report:?}");
        let hole = &report.holes[0];
        assert_eq!(hole.path, second);
        let third_base = log.reader().read(hole.seq, ReadLimits::default()).unwrap();
        assert!(third_base.is_empty(), "nothing is served from the hole");
        let resume = third_base.next_seq();
        assert!(resume > hole.seq, "reads step over the hole");
        let reader = log.reader();
        check_range(&reader, 0, hole.seq, |_| 300);
        check_range(&reader, resume, end, |_| 300);
        assert_eq!(log.next_seq(), end);
    });
}

/// Found by a new user: every restart followed by a write started another pre-allocated
/// segment (four restarts, 257 MB on disk for 4 records). A reopen continues the tail segment
/// when it ended cleanly, so ten restarts with a write between them leave one file.
#[test]
fn restarts_with_a_write_between_continue_the_tail_and_allocate_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..10u64 {
        block_on(async {
            let log = open(GlommioIo, dir.path(), small_config(), manual_clock()).await;
            assert_eq!(log.next_seq(), round);
            append_expected(&log, 1, 100).await;
            log.sync().await.unwrap();
            let stats = log.stats();
            assert_eq!(stats.files, 1, "round {round}: {stats:?}");
            check_range(&log.reader(), 0, round + 1, |_| 100);
        });
    }
    assert_eq!(segment_files(dir.path()).len(), 1);
}
