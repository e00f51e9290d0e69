//! Every iterator type, tokens (round trip, expiry, forgery), and `get` by sequence number.

mod common;

use sluice_core::{ErrorCode, IteratorStart, PutRecord, SequenceNumber};

const T0: u64 = 1_800_000_000_000;

/// Three records at T0, T0+10 and T0+20 in shard 0 of a one-shard stream.
fn three_records() -> (
    tempfile::TempDir,
    sluice_core::Engine,
    std::sync::Arc<sluice_core::ManualClock>,
    Vec<SequenceNumber>,
) {
    let dir = tempfile::tempdir().unwrap();
    let (engine, clock) = common::open_with_clock(dir.path(), T0);
    common::create(&engine, "s", 1);
    let mut seqs = Vec::new();
    for (i, data) in [b"r0", b"r1", b"r2"].iter().enumerate() {
        clock.set_ms(T0 + 10 * i as u64);
        seqs.push(
            engine
                .stream("s")
                .unwrap()
                .put(PutRecord::new("k", *data))
                .wait()
                .unwrap()
                .sequence_number,
        );
    }
    (dir, engine, clock, seqs)
}

fn data_from(engine: &sluice_core::Engine, start: IteratorStart) -> Vec<Vec<u8>> {
    let mut iterator = engine
        .stream("s")
        .unwrap()
        .shard_iterator("shardId-000000000000", start)
        .unwrap();
    let batch = engine.get_records(&mut iterator, None).unwrap();
    batch.records().map(|r| r.data.to_vec()).collect()
}

fn v(items: &[&[u8]]) -> Vec<Vec<u8>> {
    items.iter().map(|d| d.to_vec()).collect()
}

#[test]
fn trim_horizon_at_and_after_sequence_number_start_where_they_say() {
    let (_dir, engine, _clock, seqs) = three_records();
    assert_eq!(
        data_from(&engine, IteratorStart::TrimHorizon),
        v(&[b"r0", b"r1", b"r2"])
    );
    assert_eq!(
        data_from(&engine, IteratorStart::AtSequenceNumber(seqs[1])),
        v(&[b"r1", b"r2"])
    );
    assert_eq!(
        data_from(&engine, IteratorStart::AfterSequenceNumber(seqs[1])),
        v(&[b"r2"])
    );
    assert_eq!(
        data_from(&engine, IteratorStart::AfterSequenceNumber(seqs[2])),
        v(&[])
    );
}

#[test]
fn at_timestamp_between_before_and_after_the_records() {
    let (_dir, engine, _clock, _) = three_records();
    assert_eq!(
        data_from(&engine, IteratorStart::AtTimestamp(T0 - 1_000)),
        v(&[b"r0", b"r1", b"r2"])
    );
    assert_eq!(
        data_from(&engine, IteratorStart::AtTimestamp(T0)),
        v(&[b"r0", b"r1", b"r2"])
    );
    assert_eq!(
        data_from(&engine, IteratorStart::AtTimestamp(T0 + 5)),
        v(&[b"r1", b"r2"])
    );
    assert_eq!(
        data_from(&engine, IteratorStart::AtTimestamp(T0 + 20)),
        v(&[b"r2"])
    );
    assert_eq!(
        data_from(&engine, IteratorStart::AtTimestamp(T0 + 21)),
        v(&[])
    );
}

#[test]
fn latest_sees_only_records_put_after_it_was_made() {
    let (_dir, engine, _clock, _) = three_records();
    let mut latest = engine
        .stream("s")
        .unwrap()
        .shard_iterator("shardId-000000000000", IteratorStart::Latest)
        .unwrap();
    assert!(engine.get_records(&mut latest, None).unwrap().is_empty());
    engine
        .stream("s")
        .unwrap()
        .put(PutRecord::new("k", b"r3"))
        .wait()
        .unwrap();
    let batch = engine.get_records(&mut latest, None).unwrap();
    assert_eq!(
        batch.records().map(|r| r.data.to_vec()).collect::<Vec<_>>(),
        v(&[b"r3"])
    );
    assert_eq!(batch.millis_behind_latest, 0);
}

#[test]
fn get_records_honours_its_limit_and_continues_where_it_stopped() {
    let (_dir, engine, _clock, seqs) = three_records();
    let mut iterator = engine
        .stream("s")
        .unwrap()
        .shard_iterator("shardId-000000000000", IteratorStart::TrimHorizon)
        .unwrap();
    let first = engine.get_records(&mut iterator, Some(2)).unwrap();
    assert_eq!(first.len(), 2);
    assert!(
        first.millis_behind_latest > 0,
        "two records read, one still behind"
    );
    assert_eq!(iterator.position(), seqs[2]);
    let second = engine.get_records(&mut iterator, Some(2)).unwrap();
    assert_eq!(
        second
            .records()
            .map(|r| r.sequence_number)
            .collect::<Vec<_>>(),
        vec![seqs[2]]
    );
    for bad in [0, 10_001] {
        assert_eq!(
            engine
                .get_records(&mut iterator, Some(bad))
                .unwrap_err()
                .code(),
            ErrorCode::InvalidArgument
        );
    }
}

#[test]
fn a_token_round_trips_and_expires_after_its_lifetime() {
    let (_dir, engine, clock, _) = three_records();
    let iterator = engine
        .stream("s")
        .unwrap()
        .shard_iterator("shardId-000000000000", IteratorStart::TrimHorizon)
        .unwrap();
    let token = engine.iterator_token(&iterator);
    assert!(
        token.len() <= 512,
        "Kinesis iterators are at most 512 characters"
    );
    let mut restored = engine.iterator_from_token(&token).unwrap();
    assert_eq!(engine.get_records(&mut restored, None).unwrap().len(), 3);
    clock.advance_ms(300_000);
    assert!(
        engine.iterator_from_token(&token).is_ok(),
        "valid for exactly 300 s"
    );
    clock.advance_ms(1);
    assert_eq!(
        engine.iterator_from_token(&token).unwrap_err().code(),
        ErrorCode::ExpiredIterator
    );
}

#[test]
fn a_forged_altered_or_foreign_token_is_rejected() {
    let (_dir, engine, _clock, _) = three_records();
    let iterator = engine
        .stream("s")
        .unwrap()
        .shard_iterator("shardId-000000000000", IteratorStart::TrimHorizon)
        .unwrap();
    let token = engine.iterator_token(&iterator);
    let mut altered = token.clone().into_bytes();
    let middle = altered.len() / 2;
    altered[middle] = if altered[middle] == b'A' { b'B' } else { b'A' };
    let other_dir = tempfile::tempdir().unwrap();
    let (other, _) = common::open_with_clock(other_dir.path(), T0);
    common::create(&other, "s", 1);
    for (engine, token) in [
        (&engine, String::from_utf8(altered).unwrap()),
        (
            &engine,
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned(),
        ),
        (&engine, String::new()),
        (&engine, "x".repeat(2000)),
        (&other, token),
    ] {
        assert_eq!(
            engine.iterator_from_token(&token).unwrap_err().code(),
            ErrorCode::InvalidArgument
        );
    }
}

#[test]
fn a_token_for_a_deleted_and_recreated_stream_is_not_found() {
    let (_dir, engine, _clock, _) = three_records();
    let iterator = engine
        .stream("s")
        .unwrap()
        .shard_iterator("shardId-000000000000", IteratorStart::TrimHorizon)
        .unwrap();
    let token = engine.iterator_token(&iterator);
    engine.stream("s").unwrap().delete().wait().unwrap();
    common::create(&engine, "s", 1);
    assert_eq!(
        engine.iterator_from_token(&token).unwrap_err().code(),
        ErrorCode::ResourceNotFound
    );
}

#[test]
fn a_deleted_streams_token_never_resolves_to_a_recreated_stream_after_compaction_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _clock) = common::open_with_clock(dir.path(), 1_800_000_000_000);
    common::create(&engine, "reborn", 1);
    let iterator = engine
        .stream("reborn")
        .unwrap()
        .shard_iterator("shardId-000000000000", IteratorStart::TrimHorizon)
        .unwrap();
    let token = engine.iterator_token(&iterator);
    engine.stream("reborn").unwrap().delete().wait().unwrap();
    common::create(&engine, "other", 1);
    for i in 0..1000 {
        engine
            .stream("other")
            .unwrap()
            .add_tags(vec![("n".into(), i.to_string())])
            .wait()
            .unwrap();
    }
    drop(engine);
    let (engine, _clock) = common::open_with_clock(dir.path(), 1_800_000_000_000);
    common::create(&engine, "reborn", 1);
    assert_eq!(
        engine.iterator_from_token(&token).unwrap_err().code(),
        ErrorCode::ResourceNotFound
    );
}

#[test]
fn sequence_numbers_from_another_shard_or_never_issued_are_invalid() {
    let (_dir, engine, _clock, seqs) = three_records();
    common::create(&engine, "two", 2);
    let other = engine
        .stream("two")
        .unwrap()
        .put(PutRecord::new("k", b"x").with_explicit_hash_key("0"))
        .wait()
        .unwrap();
    // Three records: 0..=2 exist, 3 is the next to be issued (AT it is a caught-up
    // position; AFTER it is not), 4 is beyond.
    let at = IteratorStart::AtSequenceNumber;
    let after = IteratorStart::AfterSequenceNumber;
    for start in [
        at(SequenceNumber::new(0, 4)),
        after(SequenceNumber::new(0, 3)),
        at(SequenceNumber::new(1, 0)),
        after(SequenceNumber::shard_start(1)),
        at(SequenceNumber(u128::MAX)),
    ] {
        let err = engine
            .stream("s")
            .unwrap()
            .shard_iterator("shardId-000000000000", start)
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidArgument, "{start:?}");
    }
    let mut caught_up = engine
        .stream("s")
        .unwrap()
        .shard_iterator("shardId-000000000000", at(SequenceNumber::new(0, 3)))
        .unwrap();
    assert!(engine.get_records(&mut caught_up, None).unwrap().is_empty());
    // AFTER the shard's start (below every record) reads from the first record, as AFTER
    // the last record reads what comes next: the numbers a subscriber checkpoints.
    let mut from_start = engine
        .stream("s")
        .unwrap()
        .shard_iterator(
            "shardId-000000000000",
            after(SequenceNumber::shard_start(0)),
        )
        .unwrap();
    let all = engine.get_records(&mut from_start, None).unwrap();
    assert_eq!(
        all.records().map(|r| r.sequence_number).collect::<Vec<_>>(),
        seqs
    );
    let last = engine.stream("two").unwrap().shard_iterator(
        "shardId-000000000001",
        IteratorStart::AtSequenceNumber(other.sequence_number),
    );
    assert_eq!(
        last.unwrap_err().code(),
        ErrorCode::InvalidArgument,
        "a number of shard 0 on shard 1"
    );
    assert!(
        engine
            .stream("s")
            .unwrap()
            .shard_iterator(
                "shardId-000000000000",
                IteratorStart::AtSequenceNumber(seqs[2])
            )
            .is_ok()
    );
}

#[test]
fn get_by_sequence_number_returns_that_record_or_an_error() {
    let (_dir, engine, _clock, seqs) = three_records();
    let one = engine.stream("s").unwrap().get(seqs[1]).unwrap();
    let record = one.records().next().unwrap();
    assert_eq!(
        (record.sequence_number, record.data, record.partition_key),
        (seqs[1], &b"r1"[..], "k")
    );
    assert_eq!(record.arrival_timestamp_ms, T0 + 10);
    assert_eq!(one.len(), 1);
    for missing in [
        SequenceNumber::new(0, 3),
        SequenceNumber::new(5, 0),
        SequenceNumber::shard_start(0),
    ] {
        assert_eq!(
            engine.stream("s").unwrap().get(missing).unwrap_err().code(),
            ErrorCode::InvalidArgument
        );
    }
    assert_eq!(
        engine.stream("nope").unwrap_err().code(),
        ErrorCode::ResourceNotFound
    );
}

#[test]
fn expired_records_are_skipped_and_the_iterator_moves_to_the_trim_horizon() {
    let (_dir, engine, clock, _) = three_records();
    let mut iterator = engine
        .stream("s")
        .unwrap()
        .shard_iterator("shardId-000000000000", IteratorStart::TrimHorizon)
        .unwrap();
    // 24 h retention: at T0 + 24 h + 15 ms, r0 and r1 have expired.
    clock.set_ms(T0 + 24 * 3_600_000 + 15);
    let batch = engine.get_records(&mut iterator, None).unwrap();
    assert_eq!(
        batch.records().map(|r| r.data.to_vec()).collect::<Vec<_>>(),
        v(&[b"r2"])
    );
}
