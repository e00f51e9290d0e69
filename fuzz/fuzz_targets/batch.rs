//! Arbitrary bytes through the batch decoder: parse, verify, walk. Must never panic, and a
//! batch that verifies must walk to exactly its record count.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_storage::format::{BatchHeader, RecordIter, verify_batch};

fuzz_target!(|data: &[u8]| {
    let Ok(header) = BatchHeader::parse(data) else { return };
    let Some(bytes) = data.get(..header.length as usize) else { return };
    if verify_batch(bytes, &header).is_ok() {
        let records: Vec<_> = RecordIter::new(bytes, &header).collect();
        assert_eq!(records.len(), header.record_count as usize);
        assert!(records.iter().all(Result::is_ok));
    }
});
