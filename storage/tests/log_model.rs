//! Model-based property test: random sequences of appends (visible and durable, small segments
//! so rolls, seals and spares happen), reads from random positions, time seeks, housekeeping,
//! clean reopens and kills (no sync; the page cache survives), run against the engine and against a plain vector of records. They must agree
//! exactly. Cases: 24 by default, PROPTEST_CASES=N for more.

mod common;

use common::*;
use proptest::prelude::*;
use sluice_storage::runtime::block_on;
use sluice_storage::{Durability, GlommioIo, LogConfig, ReadLimits, RecordIn, ShardLog};
use std::path::Path;
use std::sync::Arc;

#[derive(Debug, Clone)]
enum Op {
    Append {
        count: usize,
        len: usize,
        durable: bool,
    },
    Read {
        at: u64,
        records_max: usize,
    },
    SeekTime {
        at: u64,
    },
    Tick {
        ms: u64,
    },
    Maintain,
    Reopen,
    /// Dropped without a sync, as a killed process leaves it: the page cache keeps everything.
    Kill,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1usize..40, 0usize..3000, any::<bool>())
            .prop_map(|(count, len, durable)| Op::Append { count, len, durable }),
        3 => (any::<u64>(), 1usize..200).prop_map(|(at, records_max)| Op::Read { at, records_max }),
        1 => any::<u64>().prop_map(|at| Op::SeekTime { at }),
        2 => (0u64..50).prop_map(|ms| Op::Tick { ms }),
        1 => Just(Op::Maintain),
        1 => Just(Op::Reopen),
        1 => Just(Op::Kill),
    ]
}

/// What the model knows of one record.
#[derive(Debug, Clone)]
struct Stored {
    len: usize,
    timestamp_ms: u64,
}

fn config() -> LogConfig {
    LogConfig {
        segment_size_bytes: 128 * 1024,
        index_interval_bytes: 4096,
        ..small_config()
    }
}

async fn open_log(dir: &Path, clock: &Arc<sluice_storage::ManualClock>) -> ShardLog<GlommioIo> {
    ShardLog::open(GlommioIo, dir, config(), clock.clone())
        .await
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(24),
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_log_agrees_with_a_vector_of_records(ops in proptest::collection::vec(op(), 1..80)) {
        let dir = tempfile::tempdir().unwrap();
        let clock = manual_clock();
        block_on(async {
            let mut log = open_log(dir.path(), &clock).await;
            let mut model: Vec<Stored> = Vec::new();
            for op in ops {
                match op {
                    Op::Append { count, len, durable } => {
                        let base = model.len() as u64;
                        let owned: Vec<(Vec<u8>, Vec<u8>)> =
                            (base..base + count as u64).map(|s| (key(s), payload(s, len))).collect();
                        let records: Vec<RecordIn<'_>> =
                            owned.iter().map(|(k, d)| RecordIn { key: k, data: d }).collect();
                        let durability = if durable { Durability::Durable } else { Durability::Visible };
                        let appended = log.append(&records, durability).await.unwrap();
                        prop_assert_eq!(appended.base_seq, base);
                        let timestamp_ms = sluice_storage::Clock::now_ms(clock.as_ref());
                        prop_assert_eq!(appended.timestamp_ms, timestamp_ms);
                        model.extend((0..count).map(|_| Stored { len, timestamp_ms }));
                    }
                    Op::Read { at, records_max } => {
                        let end = model.len() as u64;
                        let at = at % (end + 1);
                        let batch = log.reader().read(at, ReadLimits { records_max, bytes_max: u64::MAX }).unwrap();
                        let expected = records_max.min((end - at) as usize);
                        // A read returns whole batches up to its limits, so it may stop early at a
                        // segment end, but never returns nothing while records remain.
                        prop_assert!(batch.len() <= expected);
                        prop_assert_eq!(batch.is_empty(), expected == 0);
                        for (i, record) in batch.records().enumerate() {
                            let seq = at + i as u64;
                            let stored = &model[seq as usize];
                            prop_assert_eq!(record.seq, seq);
                            prop_assert_eq!(record.timestamp_ms, stored.timestamp_ms);
                            prop_assert!(record.key == key(seq).as_slice());
                            prop_assert!(record.data == payload(seq, stored.len).as_slice());
                        }
                        prop_assert_eq!(batch.next_seq(), at + batch.len() as u64);
                    }
                    Op::SeekTime { at } => {
                        let t = T0_MS + at % 3000;
                        let expected = model.iter().position(|r| r.timestamp_ms >= t).unwrap_or(model.len());
                        prop_assert_eq!(log.reader().seek_timestamp(t).unwrap(), expected as u64);
                    }
                    Op::Tick { ms } => clock.advance_ms(ms),
                    Op::Maintain => {
                        log.maintain().await.unwrap();
                    }
                    Op::Reopen | Op::Kill => {
                        if matches!(op, Op::Reopen) {
                            log.sync().await.unwrap();
                        }
                        drop(log);
                        log = open_log(dir.path(), &clock).await;
                        prop_assert_eq!(log.recovery_report().truncated.clone(), None);
                    }
                }
                prop_assert_eq!(log.next_seq(), model.len() as u64);
            }
            Ok(())
        })?;
    }
}
