//! A flush a crash interrupted, as the journal leaves it: settled on the next start without
//! losing or duplicating a record.

use crate::intent::{self, Intent};
use crate::*;
use sluice_core::{CreateStream, Engine, EngineConfig, PutRecord};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

struct Setup {
    dir: tempfile::TempDir,
    engine: Engine,
    firehose: Firehose,
}

async fn setup_with_records(count: u32) -> (Setup, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EngineConfig::new(dir.path().join("engine"));
    config.cores = 1;
    config.segment_size_bytes = 8 << 20;
    let engine = Engine::open(config).unwrap();
    let source = engine
        .create_stream(CreateStream::provisioned("src", 1))
        .await
        .unwrap();
    let mut last = String::new();
    for i in 0..count {
        let data = format!("record-{i}\n");
        let put = source
            .put(PutRecord::new("k", data.as_bytes()))
            .await
            .unwrap();
        last = put.sequence_number.to_string();
    }
    let firehose = Firehose::open(FirehoseConfig {
        dir: dir.path().join("firehose"),
        backing_engine: engine.clone(),
        backing_prefix: "firehose.".into(),
        source_engine: engine.clone(),
        buckets: Arc::new(LocalBuckets::new(dir.path().join("buckets"))),
        runtime: tokio::runtime::Handle::current(),
        metric_labels: Vec::new(),
    })
    .unwrap();
    (
        Setup {
            dir,
            engine,
            firehose,
        },
        last,
    )
}

fn spec(name: &str) -> DeliveryStreamSpec {
    DeliveryStreamSpec {
        name: name.into(),
        source: Source::Stream { name: "src".into() },
        destination: ObjectDestination {
            bucket: "lake".into(),
            prefix: String::new(),
            buffering: BufferingHints::new(1, 0).unwrap(),
            compression: Compression::Uncompressed,
        },
        metadata: Default::default(),
    }
}

/// The journal as a crash between writing it and committing would leave it.
fn journal(setup: &Setup, name: &str, key: &str, last: &str, records: u64) {
    let positions = [("shardId-000000000000".to_owned(), last.to_owned())].into();
    let path = setup
        .dir
        .path()
        .join("firehose")
        .join(format!("{name}.intent"));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    intent::write(
        &path,
        &Intent {
            key: key.to_owned(),
            positions,
            records,
        },
    )
    .unwrap();
}

fn bucket_lines(root: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    for entry in walk(root) {
        let text = std::fs::read_to_string(entry).unwrap();
        lines.extend(text.lines().map(str::to_owned));
    }
    lines.sort();
    lines
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flat_map(|e| {
            let path = e.unwrap().path();
            if path.is_dir() {
                walk(&path)
            } else {
                vec![path]
            }
        })
        .collect()
}

async fn settle(firehose: &Firehose, name: &str, done: impl Fn(&DeliverySnapshot) -> bool) {
    for _ in 0..500 {
        if done(&firehose.describe(name).unwrap().stats) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "never settled: {:?}",
        firehose.describe(name).unwrap().stats
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journaled_flush_whose_object_exists_is_committed_not_delivered_again() {
    let (s, last) = setup_with_records(10).await;
    let expected: Vec<String> = (0..10).map(|i| format!("record-{i}")).collect();
    // The object was written, the commit never happened.
    let key = "2026/12/05/05/a-1-2026-12-05-05-00-00-written";
    let object = s.dir.path().join("buckets/lake").join(key);
    std::fs::create_dir_all(object.parent().unwrap()).unwrap();
    std::fs::write(
        &object,
        expected
            .iter()
            .map(|l| format!("{l}\n"))
            .collect::<String>(),
    )
    .unwrap();
    journal(&s, "a", key, &last, 10);
    s.firehose.create(spec("a")).await.unwrap();
    settle(&s.firehose, "a", |stats| stats.recovered_objects == 1).await;
    // Later records go on from there: every record once, in two objects.
    let source = s.engine.stream("src").unwrap();
    source
        .put(PutRecord::new("k", b"record-10\n"))
        .await
        .unwrap();
    settle(&s.firehose, "a", |stats| stats.objects == 1).await;
    let stats = s.firehose.describe("a").unwrap().stats;
    assert_eq!(
        (stats.delivered_records, stats.read_records),
        (11, 1),
        "{stats:?}"
    );
    let mut all = expected.clone();
    all.push("record-10".into());
    all.sort();
    assert_eq!(bucket_lines(&s.dir.path().join("buckets/lake")), all);
    assert!(
        !s.dir.path().join("firehose/a.intent").exists(),
        "journal cleared"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journaled_flush_whose_object_never_came_is_delivered_again_once() {
    let (s, last) = setup_with_records(10).await;
    journal(&s, "b", "2026/12/05/05/b-1-never-written", &last, 10);
    s.firehose.create(spec("b")).await.unwrap();
    settle(&s.firehose, "b", |stats| stats.delivered_records == 10).await;
    let stats = s.firehose.describe("b").unwrap().stats;
    assert_eq!(
        (stats.recovered_objects, stats.objects),
        (0, 1),
        "{stats:?}"
    );
    let expected: Vec<String> = (0..10).map(|i| format!("record-{i}")).collect();
    assert_eq!(bucket_lines(&s.dir.path().join("buckets/lake")), expected);
}
