//! Entries of a replicated log (format version 2): what a leader seals, what a follower
//! re-seals, control entries, and what is refused.

use super::batch::tests::assert_every_bit_flip_detected;
use super::*;
use proptest::prelude::*;

const ENTRY: EntryId = EntryId {
    term: 7,
    leader: 3,
    index: 1_234,
};

fn entry_of(records: &[(&[u8], &[u8])]) -> EncodedBatch {
    let mut batch = EncodedBatch::entry_with_capacity(0);
    for (key, data) in records {
        batch.push(key, data);
    }
    batch
}

fn records_of(bytes: &[u8], header: &BatchHeader) -> Vec<(u64, u64, Vec<u8>, Vec<u8>)> {
    RecordIter::new(bytes, header)
        .map(|r| r.unwrap())
        .map(|r| (r.seq, r.timestamp_ms, r.key.to_vec(), r.data.to_vec()))
        .collect()
}

#[test]
fn a_leaders_entry_carries_its_id_after_the_header_and_its_records_after_that() {
    let mut batch = entry_of(&[(b"k1", b"hello"), (b"", b"")]);
    let header = batch.seal_entry(40, 9, 1_000, 77, ENTRY);
    let bytes = batch.as_bytes().to_vec();
    assert_eq!(
        u16::from_le_bytes([bytes[4], bytes[5]]),
        FLAGGED_BATCH_VERSION
    );
    let parsed = BatchHeader::parse(&bytes).unwrap();
    assert_eq!(parsed, header);
    assert_eq!(
        (parsed.entry, parsed.flags),
        (Some(ENTRY), BATCH_FLAG_REPLICATED)
    );
    assert_eq!(parsed.header_len(), BATCH_HEADER_MAX_LEN);
    assert!(!parsed.is_control());
    verify_batch(&bytes, &parsed).unwrap();
    assert_eq!(
        records_of(&bytes, &parsed),
        vec![
            (40, 1_000, b"k1".to_vec(), b"hello".to_vec()),
            (41, 1_000, vec![], vec![])
        ]
    );
    assert_every_bit_flip_detected(&bytes);
}

#[test]
fn a_plain_batch_is_still_version_1_without_an_entry_id() {
    let mut batch = EncodedBatch::with_capacity(0);
    batch.push(b"k", b"v");
    let header = batch.seal(1, 1, 5, 0);
    let bytes = batch.as_bytes();
    assert_eq!(u16::from_le_bytes([bytes[4], bytes[5]]), 1);
    assert_eq!((header.flags, header.entry), (0, None));
    assert_eq!(bytes.len(), BATCH_HEADER_LEN + 16 + 8);
}

#[test]
fn a_follower_reseals_an_entry_with_its_own_generation_and_chain_and_nothing_else() {
    let mut leader = entry_of(&[(b"a", b"one"), (b"bb", b"two")]);
    let sent = leader.seal_entry(500, 4, 2_000, 1, ENTRY);
    let mut received = EncodedBatch::received(leader.into_bytes()).unwrap();
    assert_eq!(received.received_header(), Some(&sent));
    assert_eq!(
        (received.record_count(), received.largest_record()),
        (2, (1, 5))
    );
    let kept = received.seal_received(88, 99);
    assert_eq!((kept.generation, kept.prev_checksum), (88, 99));
    assert_eq!(
        (
            kept.base_seq,
            kept.min_timestamp_ms,
            kept.max_timestamp_ms,
            kept.entry
        ),
        (500, 2_000, 2_000, Some(ENTRY))
    );
    let bytes = received.as_bytes();
    verify_batch(bytes, &BatchHeader::parse(bytes).unwrap()).unwrap();
    assert_eq!(
        records_of(bytes, &kept)[1],
        (501, 2_000, b"bb".to_vec(), b"two".to_vec())
    );
}

#[test]
fn a_received_entry_is_checked_end_to_end() {
    let mut leader = entry_of(&[(b"a", b"one")]);
    leader.seal_entry(1, 1, 1, 0, ENTRY);
    let mut damaged = leader.as_bytes().to_vec();
    let last = damaged.len() - 9;
    damaged[last] ^= 1;
    assert!(EncodedBatch::received(damaged).is_err());
    let mut plain = EncodedBatch::with_capacity(0);
    plain.push(b"a", b"one");
    plain.seal(1, 1, 1, 0);
    let refused = EncodedBatch::received(plain.into_bytes()).unwrap_err();
    assert_eq!(refused.0, "not an entry of a replicated log");
}

#[test]
fn a_control_entry_holds_its_body_and_no_records() {
    for body in [&b""[..], b"{\"voters\":[1,2,3]}", &[7u8; 8]] {
        let mut batch = EncodedBatch::control(body);
        let header = batch.seal_entry(60, 2, 3_000, 5, ENTRY);
        let bytes = batch.as_bytes().to_vec();
        assert_eq!(bytes.len() % 8, 0);
        let parsed = BatchHeader::parse(&bytes).unwrap();
        assert_eq!(parsed, header);
        assert!(parsed.is_control());
        assert_eq!(
            (parsed.record_count, parsed.base_seq, parsed.end_seq()),
            (0, 60, 60)
        );
        verify_batch(&bytes, &parsed).unwrap();
        assert_eq!(control_body(&bytes, &parsed), Some(body));
        assert_eq!(RecordIter::new(&bytes, &parsed).count(), 0);
        assert_every_bit_flip_detected(&bytes);
        let mut received = EncodedBatch::received(bytes).unwrap();
        assert!(received.is_control());
        let kept = received.seal_received(3, 0);
        assert_eq!(control_body(received.as_bytes(), &kept), Some(body));
    }
}

/// Rewrites a header field and the checksum, so only the rule under test can refuse it.
fn forged(mut bytes: Vec<u8>, at: usize, value: &[u8]) -> Vec<u8> {
    bytes[at..at + value.len()].copy_from_slice(value);
    let checksum = xxhash_rust::xxh3::xxh3_64(&bytes[16..]);
    bytes[8..16].copy_from_slice(&checksum.to_le_bytes());
    bytes
}

fn refusal(bytes: &[u8]) -> &'static str {
    match BatchHeader::parse(bytes) {
        Err(e) => e.0,
        Ok(header) => {
            verify_batch(bytes, &header)
                .expect_err("forged batch accepted")
                .0
        }
    }
}

#[test]
fn flags_versions_and_counts_that_do_not_go_together_are_corruption() {
    let mut plain = EncodedBatch::with_capacity(0);
    plain.push(b"k", b"v");
    plain.seal(1, 1, 1, 0);
    let plain = plain.into_bytes();
    let mut entry = entry_of(&[(b"k", b"v")]);
    entry.seal_entry(1, 1, 1, 0, ENTRY);
    let entry = entry.into_bytes();
    let mut control = EncodedBatch::control(b"body");
    control.seal_entry(1, 1, 1, 0, ENTRY);
    let control = control.into_bytes();
    // A version 1 batch with a flag, a version 2 batch without the replicated flag or with
    // an unknown one, an unknown version.
    assert_eq!(
        refusal(&forged(plain.clone(), 6, &1u16.to_le_bytes())),
        "unknown batch flags"
    );
    assert_eq!(
        refusal(&forged(entry.clone(), 6, &2u16.to_le_bytes())),
        "unknown batch flags"
    );
    assert_eq!(
        refusal(&forged(entry.clone(), 6, &5u16.to_le_bytes())),
        "unknown batch flags"
    );
    assert_eq!(
        refusal(&forged(entry.clone(), 4, &3u16.to_le_bytes())),
        "unknown batch version"
    );
    // Records in a control entry, none in a record entry.
    assert_eq!(
        refusal(&forged(control.clone(), 20, &1u32.to_le_bytes())),
        "control entry with records"
    );
    assert_eq!(
        refusal(&forged(entry, 20, &0u32.to_le_bytes())),
        "batch without records"
    );
    // A control body longer or shorter than the batch says, two times.
    assert_eq!(
        refusal(&forged(control.clone(), 88, &9u32.to_le_bytes())),
        "control entry's body length does not match the batch"
    );
    assert_eq!(
        refusal(&forged(control.clone(), 92, &1u32.to_le_bytes())),
        "control entry's reserved word is not zero"
    );
    assert_eq!(
        refusal(&forged(control, 48, &2u64.to_le_bytes())),
        "control entry with two times"
    );
    // A replicated batch cut inside its entry id.
    assert_eq!(
        BatchHeader::parse(&plain_entry_head()).unwrap_err().0,
        "entry id runs past the end of the data"
    );
}

fn plain_entry_head() -> Vec<u8> {
    let mut entry = entry_of(&[(b"k", b"v")]);
    entry.seal_entry(1, 1, 1, 0, ENTRY);
    entry.as_bytes()[..BATCH_HEADER_MAX_LEN - 1].to_vec()
}

proptest! {
    #[test]
    fn any_entry_survives_the_trip_from_leader_to_follower(
        records in prop::collection::vec(
            (prop::collection::vec(any::<u8>(), 0..20), prop::collection::vec(any::<u8>(), 0..50)),
            1..6,
        ),
        term in any::<u64>(), leader in any::<u64>(), index in any::<u64>(),
        base_seq in 0u64..u64::MAX / 2, timestamp_ms in 0u64..u64::MAX / 2,
    ) {
        let entry = EntryId { term, leader, index };
        let mut batch = EncodedBatch::entry_with_capacity(0);
        for (key, data) in &records {
            batch.push(key, data);
        }
        let sent = batch.seal_entry(base_seq, 1, timestamp_ms, 0, entry);
        let sent_records = records_of(batch.as_bytes(), &sent);
        let mut received = EncodedBatch::received(batch.into_bytes()).unwrap();
        let kept = received.seal_received(2, 3);
        prop_assert_eq!(kept.entry, Some(entry));
        prop_assert_eq!(records_of(received.as_bytes(), &kept), sent_records.clone());
        let expected: Vec<_> = records.iter().map(|(k, d)| (k.clone(), d.clone())).collect();
        let got: Vec<_> = sent_records.into_iter().map(|(_, _, k, d)| (k, d)).collect();
        prop_assert_eq!(got, expected);
    }
}

/// The fuzz seeds for entries were written by a separate encoder (a script following the
/// format note, not this code): this decoder must accept them as the note describes them.
#[test]
fn entries_written_from_the_format_note_alone_decode_as_it_says() {
    let entry = include_bytes!("../../../fuzz/corpus/batch/seed-replicated-entry");
    let header = BatchHeader::parse(entry).unwrap();
    verify_batch(entry, &header).unwrap();
    let expected = EntryId {
        term: 4,
        leader: 2,
        index: 99,
    };
    assert_eq!((header.entry, header.base_seq), (Some(expected), 7));
    let keys: Vec<_> = RecordIter::new(entry, &header)
        .map(|r| r.unwrap().key.to_vec())
        .collect();
    assert_eq!(keys, [b"pk".to_vec(), vec![]]);
    let control = include_bytes!("../../../fuzz/corpus/batch/seed-control-entry");
    let header = BatchHeader::parse(control).unwrap();
    verify_batch(control, &header).unwrap();
    assert!(header.is_control());
    assert_eq!(
        control_body(control, &header),
        Some(&b"{\"voters\":[1,2,3]}"[..])
    );
}
