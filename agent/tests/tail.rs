//! Files tailed through rotation, by rename and by copy and truncate, while the agent runs
//! and while it is down: every line is read once, in order, and a restart from the
//! checkpoint resends nothing acknowledged.

use regex::bytes::Regex;
use sluice_agent::checkpoint::Checkpoints;
use sluice_agent::tail::{Record, TailOptions, Tailer};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

fn options(dir: &Path) -> TailOptions {
    TailOptions {
        pattern: format!("{}/access.log*", dir.display()),
        multi_line_start: None,
        skip_header_lines: 0,
        start_at_end: false,
    }
}

fn append(path: &Path, lines: std::ops::Range<usize>) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for i in lines {
        // Long enough that a few lines fill a fingerprint.
        writeln!(file, "line {i:05} {}", "x".repeat(100)).unwrap();
    }
}

/// The numbers of the lines in `records`.
fn numbers(records: &[Record]) -> Vec<usize> {
    records
        .iter()
        .map(|r| {
            let text = std::str::from_utf8(&r.data).unwrap();
            assert!(text.ends_with('\n'), "a record keeps its newline");
            text[5..10].parse().unwrap()
        })
        .collect()
}

/// A flow that acknowledges every record it is given.
#[derive(Default)]
struct Acks(HashMap<u64, u64>);

impl Acks {
    fn take(&mut self, records: &[Record]) {
        for record in records {
            self.0.insert(record.track, record.end);
        }
    }

    fn save(&self, tailer: &Tailer, path: &Path) {
        let mut checkpoints = Checkpoints::open(path).unwrap();
        checkpoints.set_flow(
            "flow",
            tailer.positions(|track| self.0.get(&track).copied()),
        );
        checkpoints.save().unwrap();
    }
}

fn restarted(dir: &Path, checkpoint: &Path) -> Tailer {
    let checkpoints = Checkpoints::open(checkpoint).unwrap();
    Tailer::new(
        options(dir),
        checkpoints.flow("flow"),
        !checkpoints.knows("flow"),
    )
}

#[test]
fn lines_are_read_once_and_a_line_not_ended_waits() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    append(&log, 0..3);
    let mut tailer = Tailer::new(options(dir.path()), &[], true);
    assert_eq!(numbers(&tailer.poll().unwrap()), [0, 1, 2]);
    assert!(tailer.poll().unwrap().is_empty());
    let mut file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    write!(file, "line 00003 half").unwrap();
    assert!(tailer.poll().unwrap().is_empty(), "the line is not ended");
    writeln!(file, " and the rest").unwrap();
    let records = tailer.poll().unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].data, b"line 00003 half and the rest\n");
}

#[test]
fn a_file_rotated_by_rename_is_read_to_its_end_before_the_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    append(&log, 0..10);
    let mut tailer = Tailer::new(options(dir.path()), &[], true);
    let mut seen = numbers(&tailer.poll().unwrap());
    std::fs::rename(&log, dir.path().join("access.log.1")).unwrap();
    // The writer still holds the old file until it reopens its log.
    append(&dir.path().join("access.log.1"), 10..15);
    append(&log, 15..20);
    seen.extend(numbers(&tailer.poll().unwrap()));
    append(&log, 20..25);
    seen.extend(numbers(&tailer.poll().unwrap()));
    assert_eq!(seen, (0..25).collect::<Vec<_>>());
}

#[test]
fn a_file_rotated_by_copy_and_truncate_loses_nothing_and_repeats_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    append(&log, 0..20);
    let mut tailer = Tailer::new(options(dir.path()), &[], true);
    let mut seen = numbers(&tailer.poll().unwrap());
    append(&log, 20..30);
    // logrotate's copytruncate: copy, then truncate in place; the writer goes on.
    std::fs::copy(&log, dir.path().join("access.log.1")).unwrap();
    seen.extend(numbers(&tailer.poll().unwrap()));
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&log, 30..40);
    seen.extend(numbers(&tailer.poll().unwrap()));
    assert_eq!(seen, (0..40).collect::<Vec<_>>());
    assert_eq!(tailer.truncations_without_copy(), 0);
}

#[test]
fn a_restart_resumes_at_the_acknowledged_offsets_through_rotations_while_down() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("checkpoints.json");
    let log = dir.path().join("access.log");
    append(&log, 0..20);
    let mut tailer = Tailer::new(options(dir.path()), &[], true);
    let records = tailer.poll().unwrap();
    // Only the first 12 were acknowledged before the agent stopped.
    let mut acks = Acks::default();
    acks.take(&records[..12]);
    acks.save(&tailer, &checkpoint);
    drop(tailer);

    // Rotated by rename while the agent was down, and written on.
    std::fs::rename(&log, dir.path().join("access.log.1")).unwrap();
    append(&log, 20..30);
    let mut tailer = restarted(dir.path(), &checkpoint);
    let records = tailer.poll().unwrap();
    assert_eq!(numbers(&records), (12..30).collect::<Vec<_>>());
    let mut acks = Acks::default();
    acks.take(&records);
    acks.save(&tailer, &checkpoint);
    drop(tailer);

    // Rotated by copy and truncate while down, after more lines were written.
    append(&log, 30..40);
    std::fs::copy(&log, dir.path().join("access.log.2")).unwrap();
    std::fs::write(&log, "").unwrap();
    append(&log, 40..45);
    let mut tailer = restarted(dir.path(), &checkpoint);
    let mut seen = numbers(&tailer.poll().unwrap());
    seen.sort_unstable();
    assert_eq!(seen, (30..45).collect::<Vec<_>>());
}

#[test]
fn headers_are_skipped_multi_line_records_gathered_and_a_fresh_flow_may_start_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    std::fs::write(
        &log,
        "# header\n2026-12-05 one\n  at a\n  at b\n2026-12-05 two\n2026-12-05 three\n  at c\n",
    )
    .unwrap();
    let mut tailer = Tailer::new(
        TailOptions {
            multi_line_start: Some(Regex::new(r"^\d{4}-").unwrap()),
            skip_header_lines: 1,
            ..options(dir.path())
        },
        &[],
        true,
    );
    let records: Vec<String> = tailer
        .poll()
        .unwrap()
        .iter()
        .map(|r| String::from_utf8(r.data.clone()).unwrap())
        .collect();
    // The third record waits for the next start line: more of it may come.
    assert_eq!(
        records,
        ["2026-12-05 one\n  at a\n  at b\n", "2026-12-05 two\n"]
    );

    let mut at_end = Tailer::new(
        TailOptions {
            start_at_end: true,
            ..options(dir.path())
        },
        &[],
        true,
    );
    assert!(at_end.poll().unwrap().is_empty());
    append(&log, 0..2);
    assert_eq!(numbers(&at_end.poll().unwrap()), [0, 1]);
}

/// Writes `banner` (over a KiB) then lines `ids` into a new file at `path`.
fn with_banner(path: &Path, banner: &str, ids: std::ops::Range<usize>) {
    std::fs::write(path, banner).unwrap();
    append(path, ids);
}

#[test]
fn a_new_file_beginning_as_the_rotated_one_did_is_read_not_taken_for_its_copy() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let banner = format!("# started {}\n", "=".repeat(1100));
    with_banner(&log, &banner, 0..10);
    let mut tailer = Tailer::new(options(dir.path()), &[], true);
    let mut seen = numbers(&tailer.poll().unwrap()[1..]);
    std::fs::rename(&log, dir.path().join("access.log.1")).unwrap();
    with_banner(&log, &banner, 10..20);
    let records = tailer.poll().unwrap();
    assert!(records[0].data.starts_with(b"# started"));
    seen.extend(numbers(&records[1..]));
    assert_eq!(seen, (0..20).collect::<Vec<_>>());
}

#[test]
fn a_copy_waiting_for_its_original_is_not_read_again_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("checkpoints.json");
    let log = dir.path().join("access.log");
    append(&log, 0..20);
    let mut tailer = Tailer::new(options(dir.path()), &[], true);
    let mut acks = Acks::default();
    let records = tailer.poll().unwrap();
    acks.take(&records);
    let mut seen = numbers(&records);
    // Copied, not truncated yet, when the agent stops.
    append(&log, 20..25);
    std::fs::copy(&log, dir.path().join("access.log.1")).unwrap();
    let records = tailer.poll().unwrap();
    acks.take(&records);
    seen.extend(numbers(&records));
    acks.save(&tailer, &checkpoint);
    drop(tailer);
    let mut tailer = restarted(dir.path(), &checkpoint);
    assert!(tailer.poll().unwrap().is_empty(), "the copy waits again");
    std::fs::write(&log, "").unwrap();
    append(&log, 25..30);
    seen.extend(numbers(&tailer.poll().unwrap()));
    assert_eq!(seen, (0..30).collect::<Vec<_>>());
}

#[test]
fn a_file_replacing_a_deleted_one_is_read_from_its_start_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("checkpoints.json");
    let log = dir.path().join("access.log");
    append(&log, 0..50);
    let mut tailer = Tailer::new(options(dir.path()), &[], true);
    let mut acks = Acks::default();
    acks.take(&tailer.poll().unwrap());
    // Deleted and made again (its inode perhaps reused): a new file, whatever the old one's
    // acknowledgements were.
    std::fs::remove_file(&log).unwrap();
    append(&log, 100..110);
    let records = tailer.poll().unwrap();
    acks.take(&records[..3]);
    acks.save(&tailer, &checkpoint);
    drop(tailer);
    let mut tailer = restarted(dir.path(), &checkpoint);
    assert_eq!(
        numbers(&tailer.poll().unwrap()),
        (103..110).collect::<Vec<_>>()
    );
}

#[test]
fn a_file_renamed_out_of_the_pattern_is_still_read_while_its_writer_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    append(&log, 0..5);
    let narrow = TailOptions {
        pattern: log.display().to_string(),
        ..options(dir.path())
    };
    let mut tailer = Tailer::new(narrow, &[], true);
    let mut seen = numbers(&tailer.poll().unwrap());
    let rotated = dir.path().join("access.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    seen.extend(numbers(&tailer.poll().unwrap()));
    // The writer has not reopened its log yet.
    append(&rotated, 5..8);
    append(&log, 8..10);
    seen.extend(numbers(&tailer.poll().unwrap()));
    assert_eq!(seen, (0..10).collect::<Vec<_>>());
}
