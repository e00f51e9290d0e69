//! The Lambda processor with closures as the functions, against a real engine and a local
//! bucket: records changed, dropped and failed as the function answers; failed ones (and
//! ones the answer left out) in the error output in Firehose's envelope; a call that keeps
//! failing sends its records there too; no transforms, no Lambda processor.

use base64::Engine as _;
use sluice_core::{Engine, EngineConfig};
use sluice_firehose::*;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const FUNCTION: &str = "arn:aws:lambda:us-east-1:111111111111:function:shout";

fn open(dir: &Path, transforms: Option<Arc<dyn Transforms>>) -> Firehose {
    let mut config = EngineConfig::new(dir.join("engine"));
    config.cores = 1;
    config.segment_size_bytes = 8 << 20;
    open_on(Engine::open(config).unwrap(), dir, transforms)
}

/// A `Firehose` over `engine` (one engine across a reopening).
fn open_on(engine: Engine, dir: &Path, transforms: Option<Arc<dyn Transforms>>) -> Firehose {
    Firehose::open(FirehoseConfig {
        dir: dir.join("firehose"),
        backing_engine: engine.clone(),
        backing_prefix: "firehose.".into(),
        source_engine: engine,
        buckets: Arc::new(LocalBuckets::new(dir.join("buckets"))),
        runtime: tokio::runtime::Handle::current(),
        metric_labels: Vec::new(),
        buffer_bytes_max: 256 << 20,
        transforms,
        envelopes: None,
    })
    .unwrap()
}

fn spec(name: &str, retries: u32) -> DeliveryStreamSpec {
    DeliveryStreamSpec {
        name: name.into(),
        source: Source::DirectPut,
        destination: Destination {
            bucket: "lake".into(),
            prefix: "out/".into(),
            buffering: BufferingHints::new(1, 1).unwrap(),
            compression: Compression::Uncompressed,
            processors: vec![
                Processor::AppendNewline,
                Processor::Lambda {
                    function: FUNCTION.into(),
                    retries,
                    call_bytes: 1 << 20,
                },
            ],
            error_output_prefix: "errors/!{firehose:error-output-type}/".into(),
            target: sluice_firehose::Target::Objects,
            conversion: None,
            backup: None,
        },
        metadata: Default::default(),
    }
}

/// Upper-cases `keep-*`, drops `drop-*`, fails `bad-*`, leaves `lost-*` out of its answer.
fn shout(function: &str, invocation: Invocation) -> Result<Vec<OutputRecord>, String> {
    assert_eq!(function, FUNCTION);
    Ok(invocation
        .records
        .into_iter()
        .filter_map(|record| {
            let text = String::from_utf8(record.data).unwrap();
            let result = match text.split('-').next() {
                Some("drop") => RecordResult::Dropped,
                Some("bad") => RecordResult::ProcessingFailed,
                Some("lost") => return None,
                _ => RecordResult::Ok(text.to_uppercase().into_bytes()),
            };
            Some(OutputRecord::new(record.record_id, result))
        })
        .collect())
}

/// Every file under `dir`, read.
fn files(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut found = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                found.push((path.clone(), std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    found
}

async fn settled(firehose: &Firehose, name: &str, done: impl Fn(&DeliverySnapshot) -> bool) {
    for _ in 0..1000 {
        if done(&firehose.describe(name).unwrap().stats) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{:?}", firehose.describe(name).unwrap().stats);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_are_changed_dropped_and_failed_as_the_function_answers() {
    let dir = tempfile::tempdir().unwrap();
    let firehose = open(dir.path(), Some(Arc::new(shout)));
    firehose.create(spec("s", 0)).await.unwrap();
    let records: Vec<Vec<u8>> = ["keep", "drop", "bad", "lost"]
        .iter()
        .flat_map(|kind| (0..3).map(move |i| format!("{kind}-{i}").into_bytes()))
        .collect();
    let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
    let failures = firehose.put_record_batch("s", &refs).await.unwrap();
    assert!(failures.iter().all(Result::is_ok), "{failures:?}");
    settled(&firehose, "s", |s| {
        s.delivered_records == 3 && s.dropped_records == 3
    })
    .await;
    let stats = firehose.describe("s").unwrap().stats;
    assert_eq!(stats.processing_failed_records, 6, "{stats:?}");
    let lake = dir.path().join("buckets/lake");
    let delivered = files(&lake.join("out"));
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    let mut lines: Vec<&str> = delivered[0].1.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines, ["KEEP-0", "KEEP-1", "KEEP-2"]);
    assert!(
        delivered[0].1.ends_with('\n'),
        "the newline comes after the transform"
    );
    // The error output: under the evaluated prefix, one envelope per failed record.
    let errors = files(&lake.join("errors/processing-failed"));
    assert_eq!(errors.len(), 1, "{errors:?}");
    let mut failed: Vec<(String, String)> = errors[0]
        .1
        .lines()
        .map(|line| {
            let envelope: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(envelope["lambdaArn"], FUNCTION);
            assert_eq!(envelope["attemptsMade"], 1);
            assert!(envelope["arrivalTimestamp"].as_u64().unwrap() > 0);
            let raw = base64::engine::general_purpose::STANDARD
                .decode(envelope["rawData"].as_str().unwrap())
                .unwrap();
            let code = envelope["errorCode"].as_str().unwrap().to_owned();
            (String::from_utf8(raw).unwrap(), code)
        })
        .collect();
    failed.sort();
    let expected: Vec<(String, String)> = (0..3)
        .map(|i| (format!("bad-{i}"), "Lambda.ProcessingFailed".to_owned()))
        .chain((0..3).map(|i| (format!("lost-{i}"), "Lambda.MissingRecordId".to_owned())))
        .collect();
    assert_eq!(failed, expected);
    firehose.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_keeps_failing_sends_its_records_to_the_error_output() {
    let dir = tempfile::tempdir().unwrap();
    let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counted = calls.clone();
    let broken = move |_: &str, _: Invocation| -> Result<Vec<OutputRecord>, String> {
        counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Err("the function crashed".into())
    };
    let firehose = open(dir.path(), Some(Arc::new(broken)));
    firehose.create(spec("s", 2)).await.unwrap();
    firehose.put_record("s", b"first").await.unwrap();
    firehose.put_record("s", b"second").await.unwrap();
    settled(&firehose, "s", |s| s.processing_failed_records == 2).await;
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::Relaxed),
        3,
        "one call, two retries"
    );
    assert!(files(&dir.path().join("buckets/lake/out")).is_empty());
    let errors = files(&dir.path().join("buckets/lake/errors"));
    let envelopes: Vec<serde_json::Value> = errors
        .iter()
        .flat_map(|(_, text)| text.lines().map(|l| serde_json::from_str(l).unwrap()))
        .collect();
    assert_eq!(envelopes.len(), 2, "{errors:?}");
    for envelope in &envelopes {
        assert_eq!(envelope["errorCode"], "Lambda.FunctionError");
        assert_eq!(envelope["attemptsMade"], 3);
        assert_eq!(envelope["errorMessage"], "the function crashed");
    }
    firehose.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_transforms_a_lambda_processor_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let firehose = open(dir.path(), None);
    let error = firehose.create(spec("s", 0)).await.unwrap_err();
    assert!(
        matches!(error, FirehoseError::InvalidArgument(_)),
        "{error}"
    );
    assert!(firehose.describe("s").is_err());
    firehose.close().await;
}

/// A function that never answers.
struct Hangs;

impl Transforms for Hangs {
    fn invoke(&self, _: &str, _: Invocation) -> TransformFuture {
        Box::pin(std::future::pending())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_that_never_answers_does_not_hold_up_closing() {
    let dir = tempfile::tempdir().unwrap();
    let firehose = open(dir.path(), Some(Arc::new(Hangs)));
    firehose.create(spec("s", 300)).await.unwrap();
    firehose.put_record("s", b"keep-0").await.unwrap();
    settled(&firehose, "s", |s| s.read_records == 1).await;
    tokio::time::timeout(Duration::from_secs(10), firehose.close())
        .await
        .expect("closed while the call was under way");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopened_without_transforms_a_lambda_stream_waits_and_the_others_deliver() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EngineConfig::new(dir.path().join("engine"));
    config.cores = 1;
    config.segment_size_bytes = 8 << 20;
    let engine = Engine::open(config).unwrap();
    let firehose = open_on(engine.clone(), dir.path(), Some(Arc::new(shout)));
    firehose.create(spec("lambda", 0)).await.unwrap();
    let mut plain = spec("plain", 0);
    plain.destination.processors.clear();
    plain.destination.prefix = "plain/".into();
    firehose.create(plain).await.unwrap();
    firehose.close().await;
    drop(firehose);
    // The server restarted without its Lambda endpoint: it opens, and says why one waits.
    let firehose = open_on(engine, dir.path(), None);
    firehose.put_record("lambda", b"keep-0").await.unwrap();
    firehose.put_record("plain", b"plain-0").await.unwrap();
    settled(&firehose, "plain", |s| s.delivered_records == 1).await;
    settled(&firehose, "lambda", |s| s.failures > 0).await;
    let stats = firehose.describe("lambda").unwrap().stats;
    assert!(
        stats
            .last_error
            .as_deref()
            .unwrap()
            .contains("no transform functions"),
        "{stats:?}"
    );
    assert_eq!(
        stats.delivered_records + stats.processing_failed_records,
        0,
        "kept for later"
    );
    firehose.close().await;
}

/// Gives each `<customer>:<text>` record the partition key `customer` (none for `-:<text>`)
/// and the unused key `noise`, unique per record.
fn by_customer(_: &str, invocation: Invocation) -> Result<Vec<OutputRecord>, String> {
    Ok(invocation
        .records
        .into_iter()
        .enumerate()
        .map(|(i, record)| {
            let text = String::from_utf8(record.data).unwrap();
            let customer = text.split_once(':').unwrap().0.to_owned();
            let mut answer = OutputRecord::new(record.record_id, RecordResult::Ok(text.into()));
            if customer != "-" {
                answer.partition_keys.insert("customer".into(), customer);
            }
            answer.partition_keys.insert("noise".into(), i.to_string());
            answer
        })
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_keys_from_the_function_name_the_objects() {
    let dir = tempfile::tempdir().unwrap();
    let firehose = open(dir.path(), Some(Arc::new(by_customer)));
    let mut partitioned = spec("p", 0);
    partitioned.destination.prefix = "c=!{partitionKeyFromLambda:customer}/".into();
    firehose.create(partitioned).await.unwrap();
    let records: [&[u8]; 5] = [b"a:1", b"b:2", b"a:3", b"-:4", b"b:5"];
    firehose.put_record_batch("p", &records).await.unwrap();
    settled(&firehose, "p", |s| {
        s.delivered_records == 4 && s.processing_failed_records == 1
    })
    .await;
    let lake = dir.path().join("buckets/lake");
    let mut delivered: Vec<(String, String)> = files(&lake)
        .into_iter()
        .map(|(path, text)| {
            let key = path
                .strip_prefix(&lake)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (key.split('/').next().unwrap().to_owned(), text)
        })
        .collect();
    delivered.sort();
    // One object per customer (the unused key splits nothing); the keyless record failed.
    assert_eq!(delivered.len(), 3, "{delivered:?}");
    assert_eq!(
        (&delivered[0].0[..], &delivered[0].1[..]),
        ("c=a", "a:1\na:3\n")
    );
    assert_eq!(
        (&delivered[1].0[..], &delivered[1].1[..]),
        ("c=b", "b:2\nb:5\n")
    );
    let (folder, envelope) = &delivered[2];
    assert_eq!(folder, "errors");
    assert!(envelope.contains("no partition key"), "{envelope}");
    // A prefix naming the function's keys needs a function.
    let mut keyless = spec("q", 0);
    keyless.destination.prefix = "c=!{partitionKeyFromLambda:customer}/".into();
    keyless.destination.processors = vec![Processor::AppendNewline];
    let refused = firehose.create(keyless).await;
    assert!(
        matches!(refused, Err(FirehoseError::InvalidArgument(_))),
        "{refused:?}"
    );
}
