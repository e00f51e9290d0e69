//! Arbitrary bytes as a metadata log file: replay must never panic, and what it keeps must
//! survive a reopen unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_storage::MetaLog;

#[derive(Debug, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct Entry {
    name: String,
    shards: Vec<u64>,
}

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.log");
    std::fs::write(&path, data).unwrap();
    let Ok((log, first)) = MetaLog::<Entry>::open(&path) else { return };
    drop(log);
    let (_, second) = MetaLog::<Entry>::open(&path).unwrap();
    assert_eq!(first, second);
});
