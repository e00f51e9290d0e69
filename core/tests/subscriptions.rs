//! Push subscriptions, throughput limits and metrics.

mod common;

use sluice_core::{ErrorCode, IteratorStart, PutRecord, ThroughputLimits};
use std::time::Duration;

#[test]
fn every_subscriber_receives_every_record_in_order_as_it_becomes_visible() {
    let dir = tempfile::tempdir().unwrap();
    let engine = common::open(dir.path());
    common::create(&engine, "live", 1);
    let shard = "shardId-000000000000";
    let subscribers: Vec<_> = (0..3)
        .map(|_| {
            engine
                .stream("live")
                .unwrap()
                .subscribe(shard, IteratorStart::Latest)
                .unwrap()
        })
        .collect();
    let received = std::thread::scope(|scope| {
        let readers: Vec<_> = subscribers
            .into_iter()
            .enumerate()
            .map(|(i, mut subscription)| {
                scope.spawn(move || {
                    let mut got = Vec::new();
                    while got.len() < 200 {
                        let event = if i == 0 {
                            // One subscriber uses the async form.
                            futures_lite::future::block_on(subscription.next())
                                .unwrap()
                                .unwrap()
                        } else {
                            subscription
                                .next_blocking(Duration::from_secs(30))
                                .unwrap()
                                .expect("records within 30 s")
                        };
                        assert!(!event.records.is_empty());
                        assert_eq!(
                            event.continuation_sequence_number,
                            event.records.next_position()
                        );
                        got.extend(event.records.records().map(|r| r.data.to_vec()));
                    }
                    got
                })
            })
            .collect();
        for i in 0..200u32 {
            engine
                .stream("live")
                .unwrap()
                .put(PutRecord::new("k", &i.to_le_bytes()))
                .wait()
                .unwrap();
        }
        readers
            .into_iter()
            .map(|r| r.join().unwrap())
            .collect::<Vec<_>>()
    });
    let expected: Vec<Vec<u8>> = (0..200u32).map(|i| i.to_le_bytes().to_vec()).collect();
    for got in received {
        assert_eq!(got, expected);
    }
}

#[test]
fn events_stay_within_their_byte_cap_and_still_deliver_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let engine = common::open(dir.path());
    common::create(&engine, "capped", 1);
    let stream = engine.stream("capped").unwrap();
    for i in 0..10u8 {
        stream.put(PutRecord::new("k", &[i; 1000])).wait().unwrap();
    }
    let mut subscription = stream
        .subscribe("shardId-000000000000", IteratorStart::TrimHorizon)
        .unwrap();
    subscription.set_event_bytes_max(2500);
    let mut got = Vec::new();
    while got.len() < 10 {
        let event = subscription
            .next_blocking(Duration::from_secs(10))
            .unwrap()
            .expect("records");
        let bytes: usize = event.records.records().map(|r| r.data.len()).sum();
        // Batches are added until the cap is reached: one batch may cross it.
        assert!(bytes <= 3000, "an event of {bytes} bytes");
        got.extend(event.records.records().map(|r| r.data[0]));
    }
    assert_eq!(got, (0..10).collect::<Vec<u8>>());
    // A cap below one record still delivers it.
    let mut tiny = stream
        .subscribe("shardId-000000000000", IteratorStart::TrimHorizon)
        .unwrap();
    tiny.set_event_bytes_max(1);
    let first = tiny
        .next_blocking(Duration::from_secs(10))
        .unwrap()
        .unwrap();
    assert_eq!(first.records.len(), 1);
}

#[test]
fn a_blocking_subscription_times_out_when_nothing_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let engine = common::open(dir.path());
    common::create(&engine, "quiet", 1);
    let mut subscription = engine
        .stream("quiet")
        .unwrap()
        .subscribe("shardId-000000000000", IteratorStart::TrimHorizon)
        .unwrap();
    assert!(
        subscription
            .next_blocking(Duration::from_millis(50))
            .unwrap()
            .is_none()
    );
}

#[test]
fn a_subscription_to_a_deleted_stream_ends_with_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let engine = common::open(dir.path());
    common::create(&engine, "doomed", 1);
    let mut subscription = engine
        .stream("doomed")
        .unwrap()
        .subscribe("shardId-000000000000", IteratorStart::Latest)
        .unwrap();
    std::thread::scope(|scope| {
        let waiter = scope.spawn(move || futures_lite::future::block_on(subscription.next()));
        std::thread::sleep(Duration::from_millis(50));
        engine.stream("doomed").unwrap().delete().wait().unwrap();
        let outcome = waiter.join().unwrap().expect("an event");
        assert_eq!(outcome.unwrap_err().code(), ErrorCode::ResourceNotFound);
    });
}

#[test]
fn with_limits_on_a_shard_over_its_write_or_read_rate_is_throttled() {
    let dir = tempfile::tempdir().unwrap();
    let clock = std::sync::Arc::new(sluice_core::ManualClock::new(1_800_000_000_000));
    let mut config = common::config(dir.path());
    config.clock = clock.clone();
    config.throughput_limits = Some(ThroughputLimits::default());
    let engine = sluice_core::Engine::open(config).unwrap();
    common::create(&engine, "metered", 2);
    // 1000 records/s per shard: a batch of 500 to shard 0 twice passes, a third is throttled.
    let records: Vec<PutRecord<'_>> = (0..500)
        .map(|_| PutRecord::new("k", b"v").with_explicit_hash_key("0"))
        .collect();
    for _ in 0..2 {
        assert!(
            engine
                .stream("metered")
                .unwrap()
                .put_batch(&records)
                .wait()
                .unwrap()
                .iter()
                .all(|r| r.is_ok())
        );
    }
    let max = u128::MAX.to_string();
    let mixed = [
        PutRecord::new("k", b"v").with_explicit_hash_key("0"),
        PutRecord::new("k", b"v").with_explicit_hash_key(&max),
    ];
    let results = engine
        .stream("metered")
        .unwrap()
        .put_batch(&mixed)
        .wait()
        .unwrap();
    assert_eq!(
        results[0].as_ref().unwrap_err().code(),
        ErrorCode::ProvisionedThroughputExceeded
    );
    assert!(
        results[1].is_ok(),
        "the other shard still accepts: partial failure"
    );
    clock.advance_ms(1000);
    assert!(
        engine
            .stream("metered")
            .unwrap()
            .put_batch(&mixed)
            .wait()
            .unwrap()
            .iter()
            .all(|r| r.is_ok())
    );

    // 5 reads/s per shard.
    let mut iterator = engine
        .stream("metered")
        .unwrap()
        .shard_iterator("shardId-000000000001", IteratorStart::TrimHorizon)
        .unwrap();
    for _ in 0..5 {
        engine.get_records(&mut iterator, None).unwrap();
    }
    assert_eq!(
        engine.get_records(&mut iterator, None).unwrap_err().code(),
        ErrorCode::ProvisionedThroughputExceeded
    );
    clock.advance_ms(200);
    engine.get_records(&mut iterator, None).unwrap();
}

#[test]
fn shard_counters_reach_the_metrics_recorder() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    // Shard counters are registered on the engine's threads: install a global recorder (this
    // test binary's other tests use other stream names, which the snapshot filters out).
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder in this test binary");
    let dir = tempfile::tempdir().unwrap();
    let engine = common::open(dir.path());
    common::create(&engine, "metrics-only", 1);
    let records: Vec<PutRecord<'_>> = (0..10).map(|_| PutRecord::new("key", b"12345")).collect();
    engine
        .stream("metrics-only")
        .unwrap()
        .put_batch(&records)
        .wait()
        .unwrap();
    let mut iterator = engine
        .stream("metrics-only")
        .unwrap()
        .shard_iterator("shardId-000000000000", IteratorStart::TrimHorizon)
        .unwrap();
    assert_eq!(engine.get_records(&mut iterator, Some(4)).unwrap().len(), 4);
    let counters: std::collections::HashMap<String, u64> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| {
            key.key()
                .labels()
                .any(|l| l.key() == "stream" && l.value() == "metrics-only")
        })
        .filter_map(|(key, _, _, value)| match value {
            DebugValue::Counter(n) => Some((key.key().name().to_owned(), n)),
            _ => None,
        })
        .collect();
    assert_eq!(counters["sluice_shard_incoming_records"], 10);
    assert_eq!(counters["sluice_shard_incoming_bytes"], 80);
    assert_eq!(counters["sluice_shard_outgoing_records"], 4);
    assert_eq!(counters["sluice_shard_outgoing_bytes"], 32);
}

#[test]
fn resubscribing_at_the_continuation_resumes_without_gap_or_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let engine = common::open(dir.path());
    common::create(&engine, "resume", 1);
    let shard = "shardId-000000000000";
    for i in 0..3u8 {
        engine
            .stream("resume")
            .unwrap()
            .put(PutRecord::new("k", &[i]))
            .wait()
            .unwrap();
    }
    let mut first = engine
        .stream("resume")
        .unwrap()
        .subscribe(shard, IteratorStart::TrimHorizon)
        .unwrap();
    let event = first
        .next_blocking(Duration::from_secs(10))
        .unwrap()
        .unwrap();
    assert_eq!(event.records.len(), 3);
    // Caught up: the continuation names a record that does not exist yet.
    let continuation = event.continuation_sequence_number;
    drop(first);
    let mut resumed = engine
        .stream("resume")
        .unwrap()
        .subscribe(shard, IteratorStart::AtSequenceNumber(continuation))
        .unwrap();
    engine
        .stream("resume")
        .unwrap()
        .put(PutRecord::new("k", &[3]))
        .wait()
        .unwrap();
    let event = resumed
        .next_blocking(Duration::from_secs(10))
        .unwrap()
        .unwrap();
    let data: Vec<u8> = event.records.records().map(|r| r.data[0]).collect();
    assert_eq!(data, vec![3]);
    // One past the next number is still refused.
    let beyond = sluice_core::SequenceNumber(continuation.0 + 2);
    assert_eq!(
        engine
            .stream("resume")
            .unwrap()
            .subscribe(shard, IteratorStart::AtSequenceNumber(beyond))
            .unwrap_err()
            .code(),
        ErrorCode::InvalidArgument
    );
}

#[test]
fn a_spinning_blocking_subscriber_still_gets_every_record_and_still_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let engine = common::open(dir.path());
    common::create(&engine, "spin", 1);
    let mut subscription = engine
        .stream("spin")
        .unwrap()
        .subscribe("shardId-000000000000", IteratorStart::Latest)
        .unwrap();
    subscription.set_spin_before_park(Duration::from_millis(5));
    assert!(
        subscription
            .next_blocking(Duration::from_millis(20))
            .unwrap()
            .is_none()
    );
    let mut got = Vec::new();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for i in 0..50u8 {
                engine
                    .stream("spin")
                    .unwrap()
                    .put(PutRecord::new("k", &[i]))
                    .wait()
                    .unwrap();
            }
        });
        while got.len() < 50 {
            let event = subscription
                .next_blocking(Duration::from_secs(30))
                .unwrap()
                .expect("records");
            got.extend(event.records.records().map(|r| r.data[0]));
        }
    });
    assert_eq!(got, (0..50).collect::<Vec<u8>>());
}
