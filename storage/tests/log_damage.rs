//! Property: whatever bytes of a log are damaged, opening it never panics, and every record it
//! returns is exactly the record written at that sequence number (never corrupt data).

mod common;

use common::*;
use proptest::prelude::*;
use sluice_storage::runtime::block_on;
use sluice_storage::{GlommioIo, LogConfig, ReadLimits, StorageError};
use std::os::unix::fs::FileExt;
use std::path::Path;

const RECORD_LEN: usize = 300;

fn fixture_config() -> LogConfig {
    LogConfig {
        segment_size_bytes: 64 * 1024,
        record_size_bytes_max: 16 * 1024,
        ..small_config()
    }
}

fn fixture_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/clean")
}

proptest! {
    // 48 cases by default; PROPTEST_CASES=N for a longer run.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48),
        ..ProptestConfig::default()
    })]

    #[test]
    fn damaged_logs_open_and_never_return_corrupt_records(
        damage in proptest::collection::vec((0usize..2, 0u64..65_536, any::<u8>()), 1..6)
    ) {
        let dir = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(fixture_dir()).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
        for (file, pos, xor) in &damage {
            let path = dir.path().join(format!("seg-{file:08}.log"));
            let f = std::fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
            let mut byte = [0u8];
            f.read_exact_at(&mut byte, *pos).unwrap();
            f.write_all_at(&[byte[0] ^ xor.max(&1)], *pos).unwrap();
        }
        block_on(async {
            let log = open(GlommioIo, dir.path(), fixture_config(), manual_clock()).await;
            let reader = log.reader();
            let mut seq = reader.trim_horizon();
            while seq < reader.next_seq() {
                match reader.read(seq, ReadLimits::default()) {
                    Ok(batch) => {
                        for record in batch.records() {
                            let expected_key = key(record.seq);
                            prop_assert_eq!(record.key, expected_key.as_slice());
                            prop_assert!(record.data == payload(record.seq, RECORD_LEN).as_slice());
                        }
                        seq = batch.next_seq();
                    }
                    // Damage inside a sealed segment is reported, never returned; skip past it.
                    Err(StorageError::Corrupt { .. }) => seq += 1,
                    Err(e) => prop_assert!(false, "unexpected error at {}: {}", seq, e),
                }
            }
            prop_assert!(reader.next_seq() <= 240);
            Ok(())
        })?;
    }
}
