//! Delivery streams against a real engine and a local bucket: every record delivered once,
//! objects named and compressed as Firehose does, flushes by size and by time, a stream
//! source followed across a split, and Firehose's limits.

use sluice_core::{CreateStream, Engine, EngineConfig, PutRecord};
use sluice_firehose::*;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

struct Setup {
    _dir: tempfile::TempDir,
    engine: Engine,
    firehose: Firehose,
    buckets: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EngineConfig::new(dir.path().join("engine"));
    config.cores = 1;
    config.segment_size_bytes = 8 << 20;
    let engine = Engine::open(config).unwrap();
    let buckets = dir.path().join("buckets");
    let firehose = Firehose::open(FirehoseConfig {
        dir: dir.path().join("firehose"),
        backing_engine: engine.clone(),
        backing_prefix: "firehose.".into(),
        source_engine: engine.clone(),
        buckets: Arc::new(LocalBuckets::new(&buckets)),
        runtime: tokio::runtime::Handle::current(),
        metric_labels: Vec::new(),
        buffer_bytes_max: 256 << 20,
        transforms: None,
        envelopes: None,
    })
    .unwrap();
    Setup {
        _dir: dir,
        engine,
        firehose,
        buckets,
    }
}

fn spec(name: &str, source: Source, size_mib: u64, interval_s: u64) -> DeliveryStreamSpec {
    DeliveryStreamSpec {
        name: name.into(),
        source,
        destination: Destination {
            bucket: "lake".into(),
            prefix: "events/".into(),
            buffering: BufferingHints::new(size_mib, interval_s).unwrap(),
            compression: Compression::Gzip,
            processors: Vec::new(),
            error_output_prefix: String::new(),
            target: sluice_firehose::Target::Objects,
            conversion: None,
            backup: None,
        },
        metadata: Default::default(),
    }
}

/// Every object under `root`, by key (relative path), read back and gunzipped.
fn objects(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut found = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let key = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let mut data = Vec::new();
            flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap())
                .read_to_end(&mut data)
                .unwrap();
            found.push((key, data));
        }
    }
    found.sort();
    found
}

fn lines(objects: &[(String, Vec<u8>)]) -> Vec<String> {
    let mut lines: Vec<String> = objects
        .iter()
        .flat_map(|(_, data)| {
            String::from_utf8(data.clone())
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    lines.sort();
    lines
}

async fn delivered(firehose: &Firehose, name: &str, records: u64) {
    for _ in 0..1000 {
        if firehose.describe(name).unwrap().stats.delivered_records >= records {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "not delivered: {:?}",
        firehose.describe(name).unwrap().stats
    );
}

/// Records in a stream, read along its lineage.
fn backing_records(engine: &Engine, stream: &str) -> usize {
    let mut reader = engine.stream(stream).unwrap().reader().unwrap();
    let mut count = 0;
    for _ in 0..100 {
        match reader.read(None).unwrap() {
            Some(read) => count += read.records.len(),
            None => break,
        }
    }
    count
}

fn numbered(range: std::ops::Range<u32>) -> Vec<Vec<u8>> {
    range
        .map(|i| format!("record-{i:05}\n").into_bytes())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_put_records_land_once_in_gzipped_objects_named_as_firehose_names_them() {
    let s = setup();
    s.firehose
        .create(spec("clicks", Source::DirectPut, 1, 1))
        .await
        .unwrap();
    let records = numbered(0..1200);
    for chunk in records.chunks(500) {
        let refs: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
        let results = s.firehose.put_record_batch("clicks", &refs).await.unwrap();
        assert!(results.iter().all(Result::is_ok), "{results:?}");
    }
    delivered(&s.firehose, "clicks", 1200).await;
    let found = objects(&s.buckets.join("lake"));
    let expected: Vec<String> = (0..1200).map(|i| format!("record-{i:05}")).collect();
    assert_eq!(lines(&found), expected, "every record once");
    for (key, _) in &found {
        // events/YYYY/MM/DD/HH/clicks-1-YYYY-MM-DD-HH-MM-SS-<uuid>.gz
        let parts: Vec<&str> = key.split('/').collect();
        assert_eq!((parts.len(), parts[0]), (6, "events"), "{key}");
        assert!(
            parts[5].starts_with(&format!(
                "clicks-1-{}-{}-{}-{}-",
                parts[1], parts[2], parts[3], parts[4]
            )),
            "{key}"
        );
        assert!(parts[5].ends_with(".gz"), "{key}");
    }
    let stats = s.firehose.describe("clicks").unwrap().stats;
    assert_eq!(
        (stats.incoming_records, stats.delivered_records),
        (1200, 1200)
    );
    assert_eq!(stats.objects as usize, found.len());
    assert_eq!(stats.failures, 0, "{:?}", stats.last_error);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_buffer_flushes_at_once_and_the_rest_waits_for_its_interval() {
    let s = setup();
    s.firehose
        .create(spec("bulk", Source::DirectPut, 1, 900))
        .await
        .unwrap();
    // 1.5 MiB in 100 KiB records: the first MiB is a full buffer.
    let record = vec![b'x'; 100 * 1024];
    for _ in 0..3 {
        let refs: Vec<&[u8]> = (0..5).map(|_| record.as_slice()).collect();
        s.firehose.put_record_batch("bulk", &refs).await.unwrap();
    }
    delivered(&s.firehose, "bulk", 10).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stats = s.firehose.describe("bulk").unwrap().stats;
    assert_eq!(stats.objects, 1, "one full buffer, the rest waits 900 s");
    // Ten 100 KiB records fill 1 MiB (1,024,000 of 1,048,576 bytes); the eleventh would not.
    assert_eq!(stats.delivered_records, 10, "{stats:?}");
    assert_eq!(stats.read_records, 15, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_source_is_delivered_along_its_lineage_across_a_split() {
    let s = setup();
    let source = s
        .engine
        .create_stream(CreateStream::provisioned("orders", 1))
        .await
        .unwrap();
    let put = |range: std::ops::Range<u32>| {
        let source = source.clone();
        async move {
            for (i, data) in range.clone().zip(numbered(range)) {
                let key = format!("customer-{}", i % 7);
                source.put(PutRecord::new(&key, &data)).await.unwrap();
            }
        }
    };
    // Records put before the delivery stream exists are not its (Firehose starts at the
    // stream's end).
    source
        .put(PutRecord::new("early", b"before-creation\n"))
        .await
        .unwrap();
    s.firehose
        .create(spec(
            "orders-to-lake",
            Source::Stream {
                name: "orders".into(),
            },
            1,
            1,
        ))
        .await
        .unwrap();
    put(0..100).await;
    source
        .split_shard("shardId-000000000000", &(u128::MAX / 2).to_string())
        .await
        .unwrap();
    put(100..250).await;
    delivered(&s.firehose, "orders-to-lake", 250).await;
    let expected: Vec<String> = (0..250).map(|i| format!("record-{i:05}")).collect();
    assert_eq!(lines(&objects(&s.buckets.join("lake"))), expected);
    // PutRecord goes to the source stream, not to this delivery stream.
    assert!(matches!(
        s.firehose.put_record("orders-to-lake", b"x").await,
        Err(FirehoseError::InvalidArgument(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firehose_limits_are_refused_with_its_errors_and_nothing_is_taken() {
    let s = setup();
    s.firehose
        .create(spec("limits", Source::DirectPut, 1, 60))
        .await
        .unwrap();
    let invalid = |r: Result<_, FirehoseError>| matches!(r, Err(FirehoseError::InvalidArgument(_)));
    let small = vec![b'a'; 10];
    let too_many: Vec<&[u8]> = (0..501).map(|_| small.as_slice()).collect();
    assert!(invalid(
        s.firehose
            .put_record_batch("limits", &too_many)
            .await
            .map(|_| ())
    ));
    let big = vec![b'b'; RECORD_BYTES_MAX + 1];
    assert!(invalid(
        s.firehose.put_record("limits", &big).await.map(|_| ())
    ));
    assert!(invalid(
        s.firehose.put_record("limits", b"").await.map(|_| ())
    ));
    let near = vec![b'c'; 900 * 1024];
    let over_4_mib: Vec<&[u8]> = (0..5).map(|_| near.as_slice()).collect();
    assert!(invalid(
        s.firehose
            .put_record_batch("limits", &over_4_mib)
            .await
            .map(|_| ())
    ));
    assert_eq!(
        s.firehose
            .describe("limits")
            .unwrap()
            .stats
            .incoming_records,
        0
    );
    assert!(matches!(
        s.firehose.put_record("nope", b"x").await,
        Err(FirehoseError::NotFound { .. })
    ));
    assert!(matches!(
        s.firehose
            .create(spec("limits", Source::DirectPut, 1, 60))
            .await,
        Err(FirehoseError::InUse { .. })
    ));
    let mut bad = spec("bad-bucket", Source::DirectPut, 1, 60);
    bad.destination.bucket = "../etc".into();
    assert!(invalid(s.firehose.create(bad).await));
    assert!(invalid(
        s.firehose
            .create(spec(
                "no-source",
                Source::Stream {
                    name: "missing".into()
                },
                1,
                60
            ))
            .await
    ));
    // A record of exactly 1,000 KiB is taken.
    let max = vec![b'd'; RECORD_BYTES_MAX];
    s.firehose.put_record("limits", &max).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_streams_survive_a_restart_and_deletion_removes_them() {
    let dir = tempfile::tempdir().unwrap();
    let open = |dir: &Path| {
        let mut config = EngineConfig::new(dir.join("engine"));
        config.cores = 1;
        config.segment_size_bytes = 8 << 20;
        let engine = Engine::open(config).unwrap();
        let firehose = Arc::new(
            Firehose::open(FirehoseConfig {
                dir: dir.join("firehose"),
                backing_engine: engine.clone(),
                backing_prefix: "firehose.".into(),
                source_engine: engine.clone(),
                buckets: Arc::new(LocalBuckets::new(dir.join("buckets"))),
                runtime: tokio::runtime::Handle::current(),
                metric_labels: Vec::new(),
                buffer_bytes_max: 256 << 20,
                transforms: None,
                envelopes: None,
            })
            .unwrap(),
        );
        (engine, firehose)
    };
    let (engine, firehose) = open(dir.path());
    firehose
        .create(spec("kept", Source::DirectPut, 1, 900))
        .await
        .unwrap();
    let records = numbered(0..50);
    let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
    firehose.put_record_batch("kept", &refs).await.unwrap();
    // Acknowledged, buffered for 900 s, not delivered: a restart must not lose them.
    firehose.close().await;
    drop(firehose);
    engine.close().unwrap();
    let (engine, firehose) = open(dir.path());
    let (names, more) = firehose.list(10, None, None);
    assert_eq!((names, more), (vec!["kept".to_owned()], false));
    assert_eq!(
        firehose.describe("kept").unwrap().stats.delivered_records,
        0
    );
    assert_eq!(
        backing_records(&engine, "firehose.kept"),
        50,
        "nothing lost"
    );
    firehose.delete("kept").await.unwrap();
    assert!(matches!(
        firehose.describe("kept"),
        Err(FirehoseError::NotFound { .. })
    ));
    assert!(
        engine.stream("firehose.kept").is_err(),
        "the backing stream went with it"
    );
    drop(firehose);
    engine.close().unwrap();
    let (_engine, firehose) = open(dir.path());
    assert_eq!(firehose.list(10, None, None).0, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffers_over_the_shared_budget_flush_before_their_hints_say() {
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
        metric_labels: Vec::new(),
        buffer_bytes_max: 256 << 10,
        transforms: None,
        envelopes: None,
    })
    .unwrap();
    // 128 MiB or 900 s: without the budget, nothing would be written for 15 minutes.
    firehose
        .create(spec("patient", Source::DirectPut, 128, 900))
        .await
        .unwrap();
    let record = vec![b'y'; 100 * 1024];
    let refs: Vec<&[u8]> = (0..5).map(|_| record.as_slice()).collect();
    firehose.put_record_batch("patient", &refs).await.unwrap();
    delivered(&firehose, "patient", 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_stream_is_never_taken_for_a_backing_stream() {
    let s = setup();
    let mine = s
        .engine
        .create_stream(CreateStream::provisioned("firehose.taken", 1))
        .await
        .unwrap();
    mine.put(PutRecord::new("k", b"precious")).await.unwrap();
    assert!(matches!(
        s.firehose
            .create(spec("taken", Source::DirectPut, 1, 60))
            .await,
        Err(FirehoseError::InUse { .. })
    ));
    assert_eq!(backing_records(&s.engine, "firehose.taken"), 1, "untouched");
}
