//! What recovery finds when a shard's log opens reaches the metrics recorder, so an operator
//! can see that a restart cut a torn tail (or stepped over damage) without reading logs.

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use sluice_core::{CreateStream, Engine, EngineConfig, PutRecord};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

fn open(dir: &Path) -> Engine {
    let mut config = EngineConfig::new(dir);
    config.cores = 1;
    config.segment_size_bytes = 1 << 20;
    Engine::open(config).unwrap()
}

/// The one segment file of the stream's one shard.
fn segment_file(dir: &Path) -> PathBuf {
    let streams = std::fs::read_dir(dir.join("streams")).unwrap();
    let stream = streams.map(|e| e.unwrap().path()).next().unwrap();
    let shard = stream.join("shard-0");
    let mut files: Vec<PathBuf> = std::fs::read_dir(shard)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files.remove(0)
}

/// Where the batches of a segment file end, found by walking their headers.
fn data_end(file: &Path) -> u64 {
    let bytes = std::fs::read(file).unwrap();
    let mut pos = 4096usize;
    while &bytes[pos..pos + 4] == b"SLB1" {
        pos += u32::from_le_bytes(bytes[pos + 16..pos + 20].try_into().unwrap()) as usize;
    }
    pos as u64
}

#[test]
fn a_restart_that_cuts_a_torn_tail_counts_it() {
    // The only recorder in this test binary.
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let stream = engine
        .create_stream(CreateStream::provisioned("torn", 1))
        .wait()
        .unwrap();
    for _ in 0..3 {
        stream.put(PutRecord::new("k", b"record")).wait().unwrap();
    }
    drop(stream);
    engine.close().unwrap();
    // A batch torn by a crash: bytes after the last batch that are not a batch.
    let file = segment_file(dir.path());
    let end = data_end(&file);
    let torn = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    torn.write_all_at(&[0x5A; 64], end).unwrap();
    drop(torn);
    let engine = open(dir.path());
    let counters: std::collections::HashMap<String, u64> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter_map(|(key, _, _, value)| match value {
            DebugValue::Counter(n) => Some((key.key().name().to_owned(), n)),
            _ => None,
        })
        .filter(|(name, _)| name.starts_with("sluice_shard_recovery"))
        .collect();
    assert_eq!(counters["sluice_shard_recovery_cuts"], 1, "{counters:?}");
    assert_eq!(counters["sluice_shard_recovery_holes"], 0, "{counters:?}");
    assert_eq!(counters["sluice_shard_recovery_stale_segments"], 0);
    // Nothing durable went: the three records are there.
    let mut iterator = engine
        .stream("torn")
        .unwrap()
        .shard_iterator(
            "shardId-000000000000",
            sluice_core::IteratorStart::TrimHorizon,
        )
        .unwrap();
    assert_eq!(engine.get_records(&mut iterator, None).unwrap().len(), 3);
}
