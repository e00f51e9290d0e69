//! Stream administration, bad input (each the right typed error, nothing changed) and restart.

mod common;

use sluice_core::{
    CreateStream, Engine, ErrorCode, IteratorStart, ListShards, PutRecord, ShardFilter, StreamMode,
};
use std::future::IntoFuture;

#[test]
#[expect(
    clippy::too_many_lines,
    reason = "a table of 22 bad inputs and the Kinesis error each gets, checked against one stream that must stay unchanged"
)]
fn bad_input_gets_the_right_error_and_leaves_the_stream_unchanged() {
    use ErrorCode::{InvalidArgument, ResourceInUse, ResourceNotFound, Validation};
    let dir = tempfile::tempdir().unwrap();
    let engine = common::open(dir.path());
    common::create(&engine, "s", 2);
    engine
        .stream("s")
        .unwrap()
        .put(PutRecord::new("k", b"first"))
        .wait()
        .unwrap();
    let before = engine.stream("s").unwrap().describe(None, None).unwrap();
    let big = vec![0u8; 1024 * 1024];
    let key_257 = "k".repeat(257);
    let many: Vec<PutRecord<'_>> = (0..501).map(|_| PutRecord::new("k", b"v")).collect();
    let put = |record: PutRecord<'_>| {
        engine
            .stream("s")
            .unwrap()
            .put(record)
            .wait()
            .unwrap_err()
            .code()
    };
    let above_range = "340282366920938463463374607431768211456";
    // (what, the error it got, the error Kinesis gives)
    let cases: Vec<(&str, ErrorCode, ErrorCode)> = vec![
        (
            "unknown stream",
            engine.stream("nope").unwrap_err().code(),
            ResourceNotFound,
        ),
        (
            "257-char key",
            put(PutRecord::new(&key_257, b"v")),
            Validation,
        ),
        ("empty key", put(PutRecord::new("", b"v")), Validation),
        (
            "hash key out of range",
            put(PutRecord::new("k", b"v").with_explicit_hash_key(above_range)),
            InvalidArgument,
        ),
        (
            "malformed hash key",
            put(PutRecord::new("k", b"v").with_explicit_hash_key("-1")),
            Validation,
        ),
        (
            "501 records",
            engine
                .stream("s")
                .unwrap()
                .put_batch(&many)
                .wait()
                .unwrap_err()
                .code(),
            Validation,
        ),
        (
            "0 records",
            engine
                .stream("s")
                .unwrap()
                .put_batch(&[])
                .wait()
                .unwrap_err()
                .code(),
            Validation,
        ),
        // 1 MiB of data plus a 1-byte key is one byte over the default maximum.
        (
            "record over the maximum",
            put(PutRecord::new("k", &big)),
            InvalidArgument,
        ),
        (
            "increase to below 24 h",
            engine
                .stream("s")
                .unwrap()
                .increase_retention(23)
                .wait()
                .unwrap_err()
                .code(),
            InvalidArgument,
        ),
        (
            "decrease to below 24 h",
            engine
                .stream("s")
                .unwrap()
                .decrease_retention(23)
                .wait()
                .unwrap_err()
                .code(),
            InvalidArgument,
        ),
        (
            "decrease to 0 h",
            engine
                .stream("s")
                .unwrap()
                .decrease_retention(0)
                .wait()
                .unwrap_err()
                .code(),
            InvalidArgument,
        ),
        (
            "increase above 8760 h",
            engine
                .stream("s")
                .unwrap()
                .increase_retention(8761)
                .wait()
                .unwrap_err()
                .code(),
            InvalidArgument,
        ),
        (
            "retention decrease via increase",
            {
                engine
                    .stream("s")
                    .unwrap()
                    .increase_retention(48)
                    .wait()
                    .unwrap();
                let code = engine
                    .stream("s")
                    .unwrap()
                    .increase_retention(30)
                    .wait()
                    .unwrap_err()
                    .code();
                engine
                    .stream("s")
                    .unwrap()
                    .decrease_retention(24)
                    .wait()
                    .unwrap();
                code
            },
            InvalidArgument,
        ),
        (
            "unknown shard",
            engine
                .stream("s")
                .unwrap()
                .shard_iterator("shardId-000000000009", IteratorStart::TrimHorizon)
                .unwrap_err()
                .code(),
            ResourceNotFound,
        ),
        (
            "malformed shard id",
            engine
                .stream("s")
                .unwrap()
                .shard_iterator("shard-1", IteratorStart::Latest)
                .unwrap_err()
                .code(),
            ResourceNotFound,
        ),
        (
            "iterator on an unknown stream",
            engine.stream("nope").unwrap_err().code(),
            ResourceNotFound,
        ),
        (
            "invalid stream name",
            engine
                .create_stream(CreateStream::provisioned("a/b", 1))
                .wait()
                .unwrap_err()
                .code(),
            Validation,
        ),
        (
            "129-character stream name",
            engine
                .create_stream(CreateStream::provisioned("n".repeat(129), 1))
                .wait()
                .unwrap_err()
                .code(),
            Validation,
        ),
        (
            "zero shards",
            engine
                .create_stream(CreateStream::provisioned("z", 0))
                .wait()
                .unwrap_err()
                .code(),
            Validation,
        ),
        (
            "existing name",
            engine
                .create_stream(CreateStream::provisioned("s", 1))
                .wait()
                .unwrap_err()
                .code(),
            ResourceInUse,
        ),
        (
            "max record size 11 MiB",
            engine
                .stream("s")
                .unwrap()
                .update_max_record_size(11 << 20)
                .wait()
                .unwrap_err()
                .code(),
            Validation,
        ),
        (
            "delete unknown",
            engine.stream("nope").unwrap_err().code(),
            ResourceNotFound,
        ),
    ];
    for (what, got, want) in &cases {
        assert_eq!(got, want, "{what}");
    }
    assert_eq!(
        engine.stream("s").unwrap().describe(None, None).unwrap(),
        before,
        "nothing changed"
    );
    let records: usize = before
        .shards
        .iter()
        .map(|s| common::read_shard(&engine, "s", &s.shard_id).len())
        .sum();
    assert_eq!(records, 1, "only the first record was written");
    assert!(engine.stream("z").is_err(), "no half-created stream");
}

#[test]
fn a_record_at_exactly_the_maximum_is_accepted_and_a_larger_maximum_admits_more() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    config.segment_size_bytes = 16 << 20;
    let engine = sluice_core::Engine::open(config).unwrap();
    common::create(&engine, "big", 1);
    let exact = vec![7u8; (1 << 20) - 1];
    engine
        .stream("big")
        .unwrap()
        .put(PutRecord::new("k", &exact))
        .wait()
        .unwrap();
    let two_mib = vec![8u8; 2 << 20];
    assert_eq!(
        engine
            .stream("big")
            .unwrap()
            .put(PutRecord::new("k", &two_mib))
            .wait()
            .unwrap_err()
            .code(),
        ErrorCode::InvalidArgument
    );
    engine
        .stream("big")
        .unwrap()
        .update_max_record_size(3 << 20)
        .wait()
        .unwrap();
    engine
        .stream("big")
        .unwrap()
        .put(PutRecord::new("k", &two_mib))
        .wait()
        .unwrap();
    let read = common::read_shard(&engine, "big", "shardId-000000000000");
    assert_eq!(read.len(), 2);
    assert_eq!(read[1].2, two_mib);
}

#[test]
fn streams_list_and_describe_with_pagination() {
    let dir = tempfile::tempdir().unwrap();
    let engine = common::open(dir.path());
    for name in ["c", "a", "b", "d"] {
        common::create(&engine, name, 1);
    }
    let first = engine.list_streams(Some(3), None).unwrap();
    assert_eq!(
        (first.names.clone(), first.has_more),
        (vec!["a".to_owned(), "b".into(), "c".into()], true)
    );
    let rest = engine.list_streams(Some(3), Some("c")).unwrap();
    assert_eq!((rest.names, rest.has_more), (vec!["d".to_owned()], false));

    common::create(&engine, "wide", 5);
    let page = engine
        .stream("wide")
        .unwrap()
        .describe(Some(2), None)
        .unwrap();
    assert_eq!(page.shards.len(), 2);
    assert!(page.has_more_shards);
    let next = engine
        .stream("wide")
        .unwrap()
        .describe(Some(10), Some(&page.shards[1].shard_id))
        .unwrap();
    assert_eq!(next.shards.len(), 3);
    assert!(!next.has_more_shards);
    assert_eq!(next.shards[0].shard_id, "shardId-000000000002");
    let summary = engine.stream("wide").unwrap().summary().unwrap();
    assert_eq!((summary.open_shard_count, summary.retention_hours), (5, 24));
    assert_eq!(summary.mode, StreamMode::Provisioned);
}

#[test]
fn describe_stream_accepts_the_short_shard_id_form_as_exclusive_start() {
    let dir = tempfile::tempdir().unwrap();
    let engine = common::open(dir.path());
    common::create(&engine, "s", 3);
    let page = engine
        .stream("s")
        .unwrap()
        .describe(None, Some("shardId-1"))
        .unwrap();
    assert_eq!(page.shards.len(), 1);
    assert_eq!(page.shards[0].shard_id, "shardId-000000000002");
}

#[test]
fn list_shards_pages_with_a_token_and_applies_filters() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, clock) = common::open_with_clock(dir.path(), 1_800_000_000_000);
    common::create(&engine, "wide", 5);
    let first = engine
        .list_shards(&ListShards {
            stream: Some("wide".into()),
            max_results: Some(2),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(first.shards.len(), 2);
    let token = first.next_token.clone().expect("more pages");
    let second = engine
        .list_shards(&ListShards {
            next_token: Some(token.clone()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        second
            .shards
            .iter()
            .map(|s| &*s.shard_id)
            .collect::<Vec<_>>(),
        ["shardId-000000000002", "shardId-000000000003"]
    );
    let third = engine
        .list_shards(&ListShards {
            next_token: second.next_token.clone(),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(third.shards.len(), 1);
    assert_eq!(third.next_token, None);

    let after = engine
        .list_shards(&ListShards {
            stream: Some("wide".into()),
            filter: Some(ShardFilter::AfterShardId("shardId-000000000003".into())),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(after.shards.len(), 1);
    let latest = engine
        .list_shards(&ListShards {
            stream: Some("wide".into()),
            filter: Some(ShardFilter::AtLatest),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(latest.shards.len(), 5);

    let both = ListShards {
        stream: Some("wide".into()),
        next_token: Some(token.clone()),
        ..Default::default()
    };
    assert_eq!(
        engine.list_shards(&both).unwrap_err().code(),
        ErrorCode::InvalidArgument
    );
    clock.advance_ms(300_001);
    let expired = ListShards {
        next_token: Some(token),
        ..Default::default()
    };
    assert_eq!(
        engine.list_shards(&expired).unwrap_err().code(),
        ErrorCode::ExpiredNextToken
    );
}

#[test]
fn tags_add_overwrite_remove_and_are_capped_at_fifty() {
    let dir = tempfile::tempdir().unwrap();
    let engine = common::open(dir.path());
    common::create(&engine, "t", 1);
    engine
        .stream("t")
        .unwrap()
        .add_tags(vec![
            ("env".into(), "dev".into()),
            ("team".into(), "a".into()),
        ])
        .wait()
        .unwrap();
    engine
        .stream("t")
        .unwrap()
        .add_tags(vec![("env".into(), "prod".into())])
        .wait()
        .unwrap();
    futures_lite::future::block_on(
        engine
            .stream("t")
            .unwrap()
            .remove_tags(vec!["team".into(), "absent".into()])
            .into_future(),
    )
    .unwrap();
    assert_eq!(
        engine.stream("t").unwrap().tags().unwrap(),
        vec![("env".to_owned(), "prod".to_owned())]
    );
    let fifty: Vec<(String, String)> = (0..50).map(|i| (format!("k{i}"), "v".into())).collect();
    assert_eq!(
        engine
            .stream("t")
            .unwrap()
            .add_tags(fifty)
            .wait()
            .unwrap_err()
            .code(),
        ErrorCode::LimitExceeded
    );
    assert_eq!(
        engine.stream("t").unwrap().tags().unwrap().len(),
        1,
        "a refused change changes nothing"
    );
}

#[test]
fn on_demand_streams_start_with_four_shards() {
    let dir = tempfile::tempdir().unwrap();
    let engine = common::open(dir.path());
    engine
        .create_stream(CreateStream::on_demand("od"))
        .wait()
        .unwrap();
    let summary = engine.stream("od").unwrap().summary().unwrap();
    assert_eq!(
        (summary.mode, summary.open_shard_count),
        (StreamMode::OnDemand, 4)
    );
}

#[test]
fn creating_shards_beyond_the_engine_quota_is_limit_exceeded() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    config.shards_max = 5;
    let engine = Engine::open(config).unwrap();
    engine
        .create_stream(CreateStream::provisioned("a", 3))
        .wait()
        .unwrap();
    let err = engine
        .create_stream(CreateStream::provisioned("b", 3))
        .wait()
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::LimitExceeded);
    engine
        .create_stream(CreateStream::provisioned("b", 2))
        .wait()
        .unwrap();
}

#[test]
fn a_stream_over_both_the_quota_and_the_per_stream_maximum_is_told_about_the_quota() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(common::config(dir.path())).unwrap();
    // The default quota (10,000) is below 10,001: LimitExceeded, not a range error.
    let over = CreateStream::provisioned("big", 10_001);
    let err = engine.create_stream(over).wait().unwrap_err();
    assert_eq!(err.code(), ErrorCode::LimitExceeded, "{err}");
    let zero = CreateStream::provisioned("none", 0);
    let err = engine.create_stream(zero).wait().unwrap_err();
    assert_eq!(err.code(), ErrorCode::Validation, "{err}");
    drop(engine);
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    config.shards_max = 20_000;
    let engine = Engine::open(config).unwrap();
    // Under a larger quota, the engine's per-stream maximum still holds.
    let err = engine
        .create_stream(CreateStream::provisioned("big", 10_001))
        .wait()
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Validation, "{err}");
}

#[test]
fn restart_reopens_streams_settings_and_records_and_deleted_streams_stay_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let put = {
        let engine = common::open(dir.path());
        common::create(&engine, "kept", 3);
        common::create(&engine, "gone", 2);
        engine
            .stream("kept")
            .unwrap()
            .increase_retention(72)
            .wait()
            .unwrap();
        engine
            .stream("kept")
            .unwrap()
            .add_tags(vec![("a".into(), "b".into())])
            .wait()
            .unwrap();
        let put = engine
            .stream("kept")
            .unwrap()
            .put(PutRecord::new("key", b"durable by default"))
            .wait()
            .unwrap();
        engine
            .stream("gone")
            .unwrap()
            .put(PutRecord::new("key", b"x"))
            .wait()
            .unwrap();
        engine.stream("gone").unwrap().delete().wait().unwrap();
        put
    };
    let engine = common::open(dir.path());
    assert_eq!(
        engine.list_streams(None, None).unwrap().names,
        vec!["kept".to_owned()]
    );
    let summary = engine.stream("kept").unwrap().summary().unwrap();
    assert_eq!((summary.retention_hours, summary.open_shard_count), (72, 3));
    assert_eq!(
        engine.stream("kept").unwrap().tags().unwrap(),
        vec![("a".to_owned(), "b".to_owned())]
    );
    let record = engine
        .stream("kept")
        .unwrap()
        .get(put.sequence_number)
        .unwrap();
    assert_eq!(record.records().next().unwrap().data, b"durable by default");
    // A new stream with the old name starts empty.
    common::create(&engine, "gone", 2);
    for shard in engine
        .stream("gone")
        .unwrap()
        .describe(None, None)
        .unwrap()
        .shards
    {
        assert!(common::read_shard(&engine, "gone", &shard.shard_id).is_empty());
    }
    let next = engine
        .stream("kept")
        .unwrap()
        .put(PutRecord::new("key", b"after restart"))
        .wait()
        .unwrap();
    assert!(next.sequence_number > put.sequence_number);
}

#[test]
fn a_second_engine_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _engine = common::open(dir.path());
    assert!(sluice_core::Engine::open(common::config(dir.path())).is_err());
}
