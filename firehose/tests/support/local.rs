//! What the Firehose tests share: an engine and a `Firehose` over local buckets in a
//! temporary directory, reopened as a restarted process would; the objects a bucket holds;
//! waiting for a delivery stream's counters.

#![allow(dead_code)]

use sluice_core::{Engine, EngineConfig};
use sluice_firehose::{Firehose, FirehoseConfig, LocalBuckets};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A temporary directory with an engine (one core) and a `Firehose` whose buckets are
/// directories under `<dir>/buckets`.
pub struct Local {
    pub dir: tempfile::TempDir,
    pub engine: Engine,
    pub firehose: Firehose,
}

impl Local {
    pub fn new() -> Local {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine(dir.path());
        let firehose = open(dir.path(), &engine);
        Local {
            dir,
            engine,
            firehose,
        }
    }

    /// Bucket `name`'s directory.
    pub fn bucket(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join("buckets").join(name)
    }
}

/// An engine of one core in `<dir>/engine`.
pub fn engine(dir: &Path) -> Engine {
    let mut config = EngineConfig::new(dir.join("engine"));
    config.cores = 1;
    config.segment_size_bytes = 8 << 20;
    Engine::open(config).unwrap()
}

/// A `Firehose` on `dir` and `engine` (as a restarted process opens it).
pub fn open(dir: &Path, engine: &Engine) -> Firehose {
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
    .unwrap()
}

/// Every object under `root`, by key, in key order (a file being written, `#` in its
/// name, is not an object yet).
pub fn files(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut found = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if !path.to_string_lossy().contains('#') {
                let key = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                found.push((key, std::fs::read(&path).unwrap()));
            }
        }
    }
    found.sort();
    found
}

/// Waits (up to 20 s) until `done`.
pub async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..2000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Waits until delivery stream `name` delivered `delivered` records and failed `failed`.
pub async fn settled(firehose: &Firehose, name: &str, delivered: u64, failed: u64) {
    let stats = || firehose.describe(name).unwrap().stats;
    for _ in 0..2000 {
        let now = stats();
        if (now.delivered_records, now.processing_failed_records) == (delivered, failed) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("not delivered: {:?}", stats());
}
