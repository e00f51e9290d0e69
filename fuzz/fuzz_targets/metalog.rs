//! Arbitrary bytes as a metadata log file: replay must never panic, and what it keeps must
//! survive a reopen unchanged. A refusal for damage before the end leaves the file unchanged,
//! and the repair then keeps exactly the entries the inspection counted.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_storage::{MetaLog, StorageError};

#[derive(Debug, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct Entry {
    name: String,
    shards: Vec<u64>,
}

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.log");
    std::fs::write(&path, data).unwrap();
    let first = match MetaLog::<Entry>::open(&path) {
        Ok((_, first)) => first,
        Err(StorageError::MetadataDamaged { .. }) => {
            assert_eq!(std::fs::read(&path).unwrap(), data, "a refusal changes nothing");
            let repair = MetaLog::<Entry>::repair(&path).unwrap();
            assert!(repair.damaged_copy.is_some());
            let (_, kept) = MetaLog::<Entry>::open(&path).unwrap();
            assert_eq!(kept.len(), repair.scan.frames_valid);
            kept
        }
        Err(_) => return,
    };
    let (_, second) = MetaLog::<Entry>::open(&path).unwrap();
    assert_eq!(first, second);
});
