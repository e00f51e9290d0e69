//! Arbitrary bytes through the batch decoder: parse, verify, walk. Must never panic; a batch
//! that verifies must walk to exactly its record count, and a replicated log's entry that
//! verifies must pass a follower's check and keep its numbers when re-sealed there.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_storage::format::{BatchHeader, RecordIter, control_body, verify_batch};
use sluice_storage::EncodedBatch;

fuzz_target!(|data: &[u8]| {
    let Ok(header) = BatchHeader::parse(data) else { return };
    let Some(bytes) = data.get(..header.length as usize) else { return };
    if verify_batch(bytes, &header).is_err() {
        return;
    }
    let records: Vec<_> = RecordIter::new(bytes, &header).collect();
    assert_eq!(records.len(), header.record_count as usize);
    assert!(records.iter().all(Result::is_ok));
    assert_eq!(control_body(bytes, &header).is_some(), header.is_control());
    if header.entry.is_some() {
        let mut received = EncodedBatch::received(bytes.to_vec()).expect("a verified entry");
        let resealed = received.seal_received(header.generation.wrapping_add(1), header.checksum);
        assert_eq!(
            (resealed.entry, resealed.base_seq, resealed.record_count),
            (header.entry, header.base_seq, header.record_count)
        );
        assert!(verify_batch(received.as_bytes(), &resealed).is_ok());
    }
});
