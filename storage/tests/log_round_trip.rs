//! Appends and reads back through the real engine (glommio io_uring writes, mapped reads).

mod common;

use common::*;
use sluice_storage::runtime::block_on;
use sluice_storage::{Durability, GlommioIo, LogConfig, ReadLimits, RecordIn, StorageError};

#[test]
fn batches_of_empty_to_ten_mib_records_round_trip_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_size_bytes: 16 * 1024 * 1024,
        record_size_bytes_max: 10 * 1024 * 1024,
        ..LogConfig::default()
    };
    let sizes: Vec<usize> = vec![
        0,
        1,
        7,
        8,
        100,
        4096,
        65_536,
        1 << 20,
        (10 << 20) - 16,
        3,
        (10 << 20) - 16,
        5,
    ];
    let len_of = |seq: u64| sizes[seq as usize % sizes.len()];
    block_on(async {
        let log = open(GlommioIo, dir.path(), config, manual_clock()).await;
        for round in 0..3u64 {
            for (i, _) in sizes.iter().enumerate() {
                let seq = log.next_seq();
                let (k, d) = (key(seq), payload(seq, len_of(seq)));
                let appended = log
                    .append(&[RecordIn { key: &k, data: &d }], Durability::Visible)
                    .await
                    .unwrap();
                assert_eq!(appended.base_seq, round * sizes.len() as u64 + i as u64);
            }
        }
        let stats = log.stats();
        assert!(
            stats.live_segments >= 4,
            "records spread over several segments: {stats:?}"
        );
        check_range(&log.reader(), 0, log.next_seq(), len_of);
    });
}

#[test]
fn many_small_batches_cross_segment_boundaries_and_read_back_in_order() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let log = open(GlommioIo, dir.path(), small_config(), manual_clock()).await;
        for i in 0..400 {
            append_expected(&log, 1 + i % 17, 100 + i % 300).await;
        }
        let end = log.next_seq();
        let stats = log.stats();
        assert!(stats.live_segments >= 4, "{stats:?}");
        // Every record, from every starting point, reads back with the right content.
        let reader = log.reader();
        let len_of_seq = lengths(&log).await;
        check_range(&reader, 0, end, |s| len_of_seq[s as usize]);
        for start in (0..end).step_by(97) {
            let batch = reader
                .read(
                    start,
                    ReadLimits {
                        records_max: 3,
                        bytes_max: u64::MAX,
                    },
                )
                .unwrap();
            let seqs: Vec<u64> = batch.records().map(|r| r.seq).collect();
            assert_eq!(seqs, (start..(start + 3).min(end)).collect::<Vec<_>>());
            assert_eq!(batch.next_seq(), (start + 3).min(end));
        }
        // Byte counts and last arrival times from the headers equal the records' own, for
        // reads that start and stop inside batches.
        for (start, records_max) in [(0, 1), (5, 7), (13, 200), (end - 1, 5), (97, 10_000)] {
            let limits = ReadLimits {
                records_max,
                bytes_max: u64::MAX,
            };
            let batch = reader.read(start, limits).unwrap();
            let bytes: u64 = batch
                .records()
                .map(|r| (r.key.len() + r.data.len()) as u64)
                .sum();
            assert_eq!(
                batch.payload_bytes(),
                bytes,
                "from {start}, {records_max} records"
            );
            let last = batch.records().last().unwrap().timestamp_ms;
            assert_eq!(batch.last_timestamp_ms(), last, "from {start}");
        }
    });
}

/// Record lengths as written by `many_small_batches...`: recomputed by reading back sizes.
async fn lengths<I: sluice_storage::SegmentIo>(log: &sluice_storage::ShardLog<I>) -> Vec<usize> {
    let reader = log.reader();
    let mut out = Vec::new();
    let mut seq = 0;
    while seq < reader.next_seq() {
        let batch = reader.read(seq, ReadLimits::default()).unwrap();
        out.extend(batch.records().map(|r| r.data.len()));
        seq = batch.next_seq();
    }
    out
}

#[test]
fn read_limits_bound_records_and_bytes_but_always_return_a_batch() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let log = open(GlommioIo, dir.path(), small_config(), manual_clock()).await;
        for _ in 0..10 {
            append_expected(&log, 10, 1000).await;
        }
        let reader = log.reader();
        let one_batch = reader
            .read(
                0,
                ReadLimits {
                    records_max: 1000,
                    bytes_max: 1,
                },
            )
            .unwrap();
        assert_eq!(
            one_batch.len(),
            10,
            "a batch bigger than bytes_max still comes whole"
        );
        let two = reader
            .read(
                5,
                ReadLimits {
                    records_max: 1000,
                    bytes_max: 25_000,
                },
            )
            .unwrap();
        assert_eq!((two.records().next().unwrap().seq, two.len()), (5, 15));
        let all = reader.read(0, ReadLimits::default()).unwrap();
        assert_eq!(all.len(), 100);
        assert!(reader.read(100, ReadLimits::default()).unwrap().is_empty());
    });
}

#[test]
fn timestamps_seek_to_the_first_record_at_or_after_the_time() {
    let dir = tempfile::tempdir().unwrap();
    let clock = manual_clock();
    block_on(async {
        let log = open(GlommioIo, dir.path(), small_config(), clock.clone()).await;
        // Batch b (5 records) arrives at T0 + 10*b ms; 200 batches span many segments.
        for _ in 0..200 {
            append_expected(&log, 5, 900).await;
            clock.advance_ms(10);
        }
        let reader = log.reader();
        assert!(log.stats().live_segments > 3);
        for b in [0u64, 1, 57, 58, 120, 199] {
            let at = T0_MS + 10 * b;
            assert_eq!(
                reader.seek_timestamp(at).unwrap(),
                5 * b,
                "exact time of batch {b}"
            );
            assert_eq!(
                reader.seek_timestamp(at - 3).unwrap(),
                5 * b,
                "between batches before {b}"
            );
            let record = reader.read(5 * b, ReadLimits::default()).unwrap();
            assert_eq!(record.records().next().unwrap().timestamp_ms, at);
        }
        assert_eq!(
            reader.seek_timestamp(0).unwrap(),
            0,
            "before the oldest record"
        );
        assert_eq!(
            reader.seek_timestamp(T0_MS + 10_000).unwrap(),
            1000,
            "after the newest"
        );
        assert_eq!(reader.latest_timestamp_ms(), T0_MS + 1990);
    });
}

#[test]
fn arrival_times_never_go_back_even_when_the_clock_does() {
    let dir = tempfile::tempdir().unwrap();
    let clock = manual_clock();
    block_on(async {
        let log = open(GlommioIo, dir.path(), small_config(), clock.clone()).await;
        append_expected(&log, 1, 10).await;
        clock.set_ms(T0_MS - 5_000);
        let data = payload(1, 10);
        let appended = log
            .append(
                &[RecordIn {
                    key: b"k",
                    data: &data,
                }],
                Durability::Visible,
            )
            .await
            .unwrap();
        assert_eq!(appended.timestamp_ms, T0_MS);
    });
}

#[test]
fn bad_input_gets_a_typed_error_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let log = open(GlommioIo, dir.path(), small_config(), manual_clock()).await;
        append_expected(&log, 3, 10).await;
        let too_big = vec![1u8; 64 * 1024 + 1];
        let bigger = vec![1u8; 64 * 1024 + 100];
        let long_key = vec![b'k'; 70_000];
        type Expect = fn(&StorageError) -> bool;
        let cases: Vec<(Vec<RecordIn<'_>>, Expect)> = vec![
            (vec![], |e| matches!(e, StorageError::EmptyBatch)),
            (
                vec![
                    RecordIn {
                        key: b"a",
                        data: b"ok",
                    },
                    RecordIn {
                        key: b"b",
                        data: &too_big,
                    },
                ],
                |e| matches!(e, StorageError::RecordTooLarge { index: 1, .. }),
            ),
            (
                vec![RecordIn {
                    key: &long_key,
                    data: b"",
                }],
                |e| matches!(e, StorageError::KeyTooLong { .. }),
            ),
            // The first record at fault is named, not the largest or a later long key.
            (
                vec![
                    RecordIn {
                        key: b"a",
                        data: b"ok",
                    },
                    RecordIn {
                        key: b"b",
                        data: &too_big,
                    },
                    RecordIn {
                        key: b"c",
                        data: &bigger,
                    },
                ],
                |e| matches!(e, StorageError::RecordTooLarge { index: 1, .. }),
            ),
            (
                vec![
                    RecordIn {
                        key: b"a",
                        data: &too_big,
                    },
                    RecordIn {
                        key: &long_key,
                        data: b"",
                    },
                ],
                |e| matches!(e, StorageError::RecordTooLarge { index: 0, .. }),
            ),
        ];
        for (records, expected) in cases {
            let err = log.append(&records, Durability::Durable).await.unwrap_err();
            assert!(expected(&err), "unexpected error {err}");
            assert_eq!(log.next_seq(), 3);
        }
        let reader = log.reader();
        assert!(matches!(
            reader.read(4, ReadLimits::default()),
            Err(StorageError::SequenceBeyondEnd {
                seq: 4,
                next_seq: 3
            })
        ));
        check_range(&reader, 0, 3, |_| 10);
    });
}

#[test]
fn a_batch_that_cannot_fit_in_a_segment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let log = open(GlommioIo, dir.path(), small_config(), manual_clock()).await;
        let data = vec![0u8; 60_000];
        let records: Vec<RecordIn<'_>> = (0..5)
            .map(|_| RecordIn {
                key: b"k",
                data: &data,
            })
            .collect();
        let err = log.append(&records, Durability::Visible).await.unwrap_err();
        assert!(matches!(err, StorageError::BatchTooLarge { .. }), "{err}");
        assert_eq!(log.next_seq(), 0);
    });
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let _log = open(GlommioIo, dir.path(), small_config(), manual_clock()).await;
        let err =
            sluice_storage::ShardLog::open(GlommioIo, dir.path(), small_config(), manual_clock())
                .await
                .unwrap_err();
        assert!(matches!(err, StorageError::InUse { .. }), "{err}");
    });
}

#[test]
fn invalid_configurations_are_refused() {
    let bad = [
        LogConfig {
            segment_size_bytes: 1000,
            ..LogConfig::default()
        },
        LogConfig {
            segment_size_bytes: 1 << 20,
            record_size_bytes_max: 2 << 20,
            ..LogConfig::default()
        },
        LogConfig {
            record_size_bytes_max: 11 << 20,
            segment_size_bytes: 64 << 20,
            ..LogConfig::default()
        },
        LogConfig {
            segments_max: 1,
            ..LogConfig::default()
        },
    ];
    for config in bad {
        assert!(
            matches!(config.validate(), Err(StorageError::InvalidConfig(_))),
            "{config:?}"
        );
    }
    LogConfig::default().validate().unwrap();
}

/// The README's storage example opens a log on a relative path; durable appends sync its
/// directory, which glommio opens through io_uring, where relative paths failed (EBADF).
#[test]
fn a_log_on_a_relative_path_takes_durable_appends() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = std::env::current_dir().unwrap();
    let ups = cwd
        .components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .count();
    let mut relative: std::path::PathBuf = std::iter::repeat_n("..", ups).collect();
    relative.extend(
        dir.path()
            .join("orders/shard-0")
            .components()
            .filter(|c| matches!(c, std::path::Component::Normal(_))),
    );
    assert!(relative.is_relative());
    block_on(async {
        let log = open(GlommioIo, &relative, LogConfig::default(), manual_clock()).await;
        let appended = log
            .append(
                &[RecordIn {
                    key: b"user-1",
                    data: b"hello",
                }],
                Durability::Durable,
            )
            .await
            .unwrap();
        let batch = log
            .reader()
            .read(appended.base_seq, ReadLimits::default())
            .unwrap();
        assert_eq!(batch.records().next().unwrap().data, b"hello");
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

/// `make_durable` past the records reserved so far is refused (there is nothing to wait for);
/// up to the log's end it returns once they are durable.
#[test]
fn make_durable_past_the_end_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let log = open(GlommioIo, dir.path(), small_config(), manual_clock()).await;
        let end = append_expected(&log, 10, 100).await + 10;
        let err = log.make_durable(end + 1).await.unwrap_err();
        assert!(
            matches!(err, StorageError::SequenceBeyondEnd { seq, next_seq } if seq == end + 1 && next_seq == end),
            "{err}"
        );
        log.make_durable(end).await.unwrap();
        assert_eq!(log.durable_seq(), end);
    });
}
