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
}

impl Setup {
    fn open_firehose(&self) -> Arc<Firehose> {
        Arc::new(
            Firehose::open(FirehoseConfig {
                dir: self.dir.path().join("firehose"),
                backing_engine: self.engine.clone(),
                backing_prefix: "firehose.".into(),
                source_engine: self.engine.clone(),
                buckets: Arc::new(LocalBuckets::new(self.dir.path().join("buckets"))),
                runtime: tokio::runtime::Handle::current(),
                metric_labels: Vec::new(),
                buffer_bytes_max: 64 << 20,
                transforms: None,
                envelopes: None,
            })
            .unwrap(),
        )
    }

    /// Puts `records` into the source; returns the last one's sequence number.
    async fn put(&self, records: std::ops::Range<u32>) -> String {
        let source = self.engine.stream("src").unwrap();
        let mut last = String::new();
        for i in records {
            let data = format!("record-{i}\n");
            let put = source
                .put(PutRecord::new("k", data.as_bytes()))
                .await
                .unwrap();
            last = put.sequence_number.to_string();
        }
        last
    }

    /// The journal as a crash between writing it and committing would leave it, for the
    /// stored delivery stream `name`.
    fn journal(&self, name: &str, key: &str, last: &str, records: u64, size: u64) {
        let dir = self.dir.path().join("firehose");
        let stored = crate::catalogue::load(&dir).unwrap();
        let incarnation = stored
            .iter()
            .find(|s| s.spec.name == name)
            .unwrap()
            .incarnation
            .clone();
        self.journal_of(name, &incarnation, key, last, records, size);
    }

    fn journal_of(
        &self,
        name: &str,
        incarnation: &str,
        key: &str,
        last: &str,
        records: u64,
        size: u64,
    ) {
        let dir = self.dir.path().join("firehose");
        let incarnation = incarnation.to_owned();
        let source_created_ms = self
            .engine
            .stream("src")
            .unwrap()
            .summary()
            .unwrap()
            .created_ms;
        let positions = [("shardId-000000000000".to_owned(), last.to_owned())].into();
        let intent = Intent {
            key: key.to_owned(),
            positions,
            records,
            size,
            incarnation,
            source_created_ms,
            error_key: String::new(),
            error_size: 0,
            request_id: String::new(),
            load: false,
            more: Vec::new(),
            backup_key: String::new(),
            backup_size: 0,
            bucket: String::new(),
            backup_bucket: String::new(),
        };
        intent::write(&dir.join(format!("{name}.intent")), &intent).unwrap();
    }
}

/// An engine with a one-shard source stream, and a delivery stream `name` reading it,
/// created and then stopped (as a crash would leave it).
async fn setup(name: &str) -> Setup {
    setup_with(name, None).await
}

/// As `setup`, with a source record backup.
async fn setup_with(name: &str, backup: Option<Backup>) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EngineConfig::new(dir.path().join("engine"));
    config.cores = 1;
    config.segment_size_bytes = 8 << 20;
    let engine = Engine::open(config).unwrap();
    engine
        .create_stream(CreateStream::provisioned("src", 1))
        .await
        .unwrap();
    let setup = Setup { dir, engine };
    let firehose = setup.open_firehose();
    let mut spec = spec(name);
    spec.destination.backup = backup;
    firehose.create(spec).await.unwrap();
    firehose.close().await;
    setup
}

fn spec(name: &str) -> DeliveryStreamSpec {
    DeliveryStreamSpec {
        name: name.into(),
        source: Source::Stream { name: "src".into() },
        destination: Destination {
            bucket: "lake".into(),
            prefix: String::new(),
            buffering: BufferingHints::new(1, 0).unwrap(),
            compression: Compression::Uncompressed,
            processors: Vec::new(),
            error_output_prefix: String::new(),
            target: crate::Target::Objects,
            conversion: None,
            backup: None,
        },
        metadata: Default::default(),
    }
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
    let s = setup("a").await;
    let last = s.put(0..10).await;
    let expected: Vec<String> = (0..10).map(|i| format!("record-{i}")).collect();
    // The object was written, the commit never happened.
    let key = "2026/12/05/05/a-1-2026-12-05-05-00-00-written";
    let body: String = expected.iter().map(|l| format!("{l}\n")).collect();
    let object = s.dir.path().join("buckets/lake").join(key);
    std::fs::create_dir_all(object.parent().unwrap()).unwrap();
    std::fs::write(&object, &body).unwrap();
    s.journal("a", key, &last, 10, body.len() as u64);
    let firehose = s.open_firehose();
    settle(&firehose, "a", |stats| stats.recovered_objects == 1).await;
    // Later records go on from there: every record once, in two objects.
    s.put(10..11).await;
    settle(&firehose, "a", |stats| stats.objects == 1).await;
    let stats = firehose.describe("a").unwrap().stats;
    assert_eq!(
        (stats.delivered_records, stats.read_records),
        (11, 1),
        "{stats:?}"
    );
    let mut all = expected.clone();
    all.push("record-10".into());
    all.sort();
    assert_eq!(bucket_lines(&s.dir.path().join("buckets/lake")), all);
    assert_eq!(
        intent::read(&s.dir.path().join("firehose/a.intent")).unwrap(),
        None,
        "journal cleared"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journaled_flush_whose_object_never_came_or_was_torn_is_delivered_again_once() {
    for torn in [false, true] {
        let s = setup("b").await;
        let last = s.put(0..10).await;
        let key = "2026/12/05/05/b-1-never-written";
        if torn {
            // A power cut between the rename and the sync: the file is there, empty.
            let object = s.dir.path().join("buckets/lake").join(key);
            std::fs::create_dir_all(object.parent().unwrap()).unwrap();
            std::fs::write(&object, b"").unwrap();
        }
        s.journal("b", key, &last, 10, 120);
        let firehose = s.open_firehose();
        settle(&firehose, "b", |stats| stats.delivered_records == 10).await;
        let stats = firehose.describe("b").unwrap().stats;
        assert_eq!(
            (stats.recovered_objects, stats.objects),
            (0, 1),
            "{stats:?}"
        );
        let expected: Vec<String> = (0..10).map(|i| format!("record-{i}")).collect();
        assert_eq!(bucket_lines(&s.dir.path().join("buckets/lake")), expected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_of_an_earlier_life_of_the_name_is_not_settled() {
    let s = setup("c").await;
    let last = s.put(0..10).await;
    // Left by a delivery stream of the same name, deleted since: its object exists and
    // its positions would skip the ten records this one has not delivered.
    let key = "2026/12/05/05/c-1-earlier";
    let object = s.dir.path().join("buckets/lake").join(key);
    std::fs::create_dir_all(object.parent().unwrap()).unwrap();
    std::fs::write(&object, b"earlier\n").unwrap();
    s.journal_of("c", "an-earlier-life", key, &last, 10, 8);
    let firehose = s.open_firehose();
    settle(&firehose, "c", |stats| stats.delivered_records == 10).await;
    let stats = firehose.describe("c").unwrap().stats;
    assert_eq!(
        (stats.recovered_objects, stats.objects),
        (0, 1),
        "{stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_with_an_error_output_is_settled_by_both_of_its_objects() {
    for object_written in [false, true] {
        let s = setup("d").await;
        let last = s.put(0..10).await;
        let expected: Vec<String> = (0..10).map(|i| format!("record-{i}")).collect();
        let lake = s.dir.path().join("buckets/lake");
        let write = |key: &str, body: &[u8]| {
            let path = lake.join(key);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, body).unwrap();
        };
        // The error output was written; the object after it maybe not.
        let errors_key = "processing-failed/2020/01/01/00/d-1-errors";
        let envelope = b"{\"errorCode\":\"Lambda.ProcessingFailed\"}\n";
        write(errors_key, envelope);
        let key = "2020/01/01/00/d-1-written";
        let body: String = expected.iter().map(|l| format!("{l}\n")).collect();
        if object_written {
            write(key, body.as_bytes());
        }
        s.journal("d", key, &last, 10, body.len() as u64);
        let path = s.dir.path().join("firehose/d.intent");
        let mut journaled = intent::read(&path).unwrap().unwrap();
        journaled.error_key = errors_key.into();
        journaled.error_size = envelope.len() as u64;
        intent::write(&path, &journaled).unwrap();
        let firehose = s.open_firehose();
        settle(&firehose, "d", |stats| stats.delivered_records == 10).await;
        let stats = firehose.describe("d").unwrap().stats;
        if object_written {
            // Both whole: committed, nothing written again, the error output kept.
            assert_eq!(
                (stats.recovered_objects, stats.objects),
                (1, 0),
                "{stats:?}"
            );
            assert!(lake.join(errors_key).exists());
        } else {
            // One missing: both go, and the records are delivered again, once.
            assert_eq!(
                (stats.recovered_objects, stats.objects),
                (0, 1),
                "{stats:?}"
            );
            assert!(
                !lake.join(errors_key).exists(),
                "the error output went with it"
            );
            assert_eq!(bucket_lines(&lake), expected);
        }
        firehose.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_with_a_backup_is_settled_by_its_object_and_its_backup() {
    for backup_written in [false, true] {
        let backup = Backup {
            bucket: "vault".into(),
            prefix: "source/".into(),
            compression: Compression::Uncompressed,
        };
        let s = setup_with("e", Some(backup)).await;
        let last = s.put(0..10).await;
        let expected: Vec<String> = (0..10).map(|i| format!("record-{i}")).collect();
        let body: String = expected.iter().map(|l| format!("{l}\n")).collect();
        let write = |bucket: &str, key: &str| {
            let path = s.dir.path().join("buckets").join(bucket).join(key);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &body).unwrap();
        };
        // The object was written; its backup (written first) maybe not: a crash between
        // journaling and the backup's write.
        let key = "2020/01/01/00/e-1-written";
        let backup_key = "source/2020/01/01/00/e-1-backup";
        write("lake", key);
        if backup_written {
            write("vault", backup_key);
        }
        s.journal("e", key, &last, 10, body.len() as u64);
        let path = s.dir.path().join("firehose/e.intent");
        let mut journaled = intent::read(&path).unwrap().unwrap();
        journaled.backup_key = backup_key.into();
        journaled.backup_size = body.len() as u64;
        intent::write(&path, &journaled).unwrap();
        let firehose = s.open_firehose();
        settle(&firehose, "e", |stats| stats.delivered_records == 10).await;
        let stats = firehose.describe("e").unwrap().stats;
        let (lake, vault) = (
            s.dir.path().join("buckets/lake"),
            s.dir.path().join("buckets/vault"),
        );
        if backup_written {
            assert_eq!(
                (stats.recovered_objects, stats.objects),
                (1, 0),
                "{stats:?}"
            );
        } else {
            // Both go, and the flush is made again: object and backup, each record once.
            assert_eq!(
                (stats.recovered_objects, stats.objects),
                (0, 2),
                "{stats:?}"
            );
            assert!(
                !lake.join(key).exists(),
                "the object went with its missing backup"
            );
        }
        assert_eq!(bucket_lines(&lake), expected);
        assert_eq!(bucket_lines(&vault), expected);
        firehose.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_is_settled_in_the_buckets_it_wrote_to_not_those_of_an_update() {
    // The flush went to "old-lake" with a backup in "old-vault"; the destination was then
    // updated to "lake" with no backup, before the commit.
    let s = setup("f").await;
    let last = s.put(0..10).await;
    let body: String = (0..10).map(|i| format!("record-{i}\n")).collect();
    let write = |bucket: &str, key: &str| {
        let path = s.dir.path().join("buckets").join(bucket).join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &body).unwrap();
    };
    let (key, backup_key) = ("2020/01/01/00/f-1-written", "2020/01/01/00/f-1-backup");
    write("old-lake", key);
    write("old-vault", backup_key);
    s.journal("f", key, &last, 10, body.len() as u64);
    let path = s.dir.path().join("firehose/f.intent");
    let mut journaled = intent::read(&path).unwrap().unwrap();
    (journaled.bucket, journaled.backup_bucket) = ("old-lake".into(), "old-vault".into());
    (journaled.backup_key, journaled.backup_size) = (backup_key.into(), body.len() as u64);
    intent::write(&path, &journaled).unwrap();
    let firehose = s.open_firehose();
    settle(&firehose, "f", |stats| stats.recovered_objects == 1).await;
    // Committed where it was written: nothing delivered again, to either bucket.
    s.put(10..11).await;
    settle(&firehose, "f", |stats| stats.objects == 1).await;
    let buckets = s.dir.path().join("buckets");
    assert_eq!(bucket_lines(&buckets.join("lake")), ["record-10"]);
    assert_eq!(bucket_lines(&buckets.join("old-lake")).len(), 10);
    assert_eq!(bucket_lines(&buckets.join("old-vault")).len(), 10);
    firehose.close().await;
}
