//! A delivery stream's metrics, under Firehose's meanings (its own test binary: it installs
//! the process's metrics recorder).

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use sluice_core::{Engine, EngineConfig};
use sluice_firehose::*;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incoming_delivered_objects_and_freshness_are_recorded_per_delivery_stream() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = EngineConfig::new(dir.path().join("engine"));
    config.cores = 1;
    config.segment_size_bytes = 8 << 20;
    let engine = Engine::open(config).unwrap();
    let firehose = Firehose::open(FirehoseConfig {
        dir: dir.path().join("firehose"),
        backing_engine: engine.clone(),
        backing_prefix: "firehose.".into(),
        source_engine: engine.clone(),
        buckets: Arc::new(LocalBuckets::new(dir.path().join("buckets"))),
        runtime: tokio::runtime::Handle::current(),
        metric_labels: vec![("account".into(), "123456789012".into())],
        buffer_bytes_max: 256 << 20,
        transforms: None,
        envelopes: None,
    })
    .unwrap();
    firehose
        .create(DeliveryStreamSpec {
            name: "metered".into(),
            source: Source::DirectPut,
            destination: Destination {
                buffering: BufferingHints::new(1, 2).unwrap(),
                ..Destination::new("lake")
            },
            metadata: Default::default(),
        })
        .await
        .unwrap();
    let records: Vec<Vec<u8>> = (0..40).map(|i| format!("r{i:03}\n").into_bytes()).collect();
    let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
    firehose.put_record_batch("metered", &refs).await.unwrap();
    // Within the 2 s buffering interval the records wait, and their age shows.
    tokio::time::sleep(Duration::from_millis(700)).await;
    // (The recorder's snapshots give counters as what was added since the last one.)
    let mut totals = HashMap::new();
    let waiting = values(&snapshotter, &mut totals);
    assert!(
        waiting["sluice_firehose_data_freshness_ms"] >= 200.0,
        "{waiting:?}"
    );
    assert_eq!(waiting["sluice_firehose_delivered_records"], 0.0);
    // Delivered: the counters, and nothing waiting any more.
    let mut delivered = waiting;
    for _ in 0..500 {
        delivered = values(&snapshotter, &mut totals);
        if delivered["sluice_firehose_delivered_records"] == 40.0
            && delivered["sluice_firehose_data_freshness_ms"] == 0.0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        delivered["sluice_firehose_incoming_records"], 40.0,
        "{delivered:?}"
    );
    assert_eq!(
        delivered["sluice_firehose_incoming_bytes"], 200.0,
        "{delivered:?}"
    );
    assert_eq!(
        delivered["sluice_firehose_delivered_records"], 40.0,
        "{delivered:?}"
    );
    assert_eq!(
        delivered["sluice_firehose_delivered_bytes"], 200.0,
        "{delivered:?}"
    );
    assert_eq!(delivered["sluice_firehose_objects"], 1.0, "{delivered:?}");
    assert_eq!(delivered["sluice_firehose_failures"], 0.0, "{delivered:?}");
    assert_eq!(
        delivered["sluice_firehose_data_freshness_ms"], 0.0,
        "{delivered:?}"
    );
}

/// Every Firehose metric's value now (counters summed into `totals` over the snapshots);
/// each carries the delivery stream's and the embedder's labels.
fn values(
    snapshotter: &metrics_util::debugging::Snapshotter,
    totals: &mut HashMap<String, f64>,
) -> HashMap<String, f64> {
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        if !key.key().name().starts_with("sluice_firehose_") {
            continue; // the engine's own
        }
        let labels: Vec<(String, String)> = key
            .key()
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        assert!(
            labels.contains(&("delivery_stream".into(), "metered".into()))
                && labels.contains(&("account".into(), "123456789012".into())),
            "{labels:?}"
        );
        let name = key.key().name().to_owned();
        match value {
            DebugValue::Counter(n) => *totals.entry(name).or_insert(0.0) += n as f64,
            DebugValue::Gauge(g) => {
                totals.insert(name, g.into_inner());
            }
            DebugValue::Histogram(_) => {}
        }
    }
    totals.clone()
}
