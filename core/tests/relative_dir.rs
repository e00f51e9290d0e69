//! An engine opened on a relative data directory works like one on an absolute path
//! (glommio opens directories through io_uring, where relative paths failed with EBADF:
//! the first durable put into a new shard failed to sync its directory).

use sluice_core::{CreateStream, Durability, Engine, EngineConfig, IteratorStart, PutRecord};
use std::path::{Component, Path, PathBuf};

/// `target` as a path relative to the current directory (`../..` up to the root, then down).
fn relative_to_cwd(target: &Path) -> PathBuf {
    let cwd = std::env::current_dir().unwrap();
    let ups = cwd
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .count();
    let mut relative: PathBuf = std::iter::repeat_n("..", ups).collect();
    relative.extend(
        target
            .components()
            .filter(|c| matches!(c, Component::Normal(_))),
    );
    relative
}

#[test]
fn a_relative_data_directory_takes_durable_puts() {
    let dir = tempfile::tempdir().unwrap();
    let relative = relative_to_cwd(&dir.path().join("data"));
    assert!(relative.is_relative(), "{}", relative.display());
    let mut config = EngineConfig::new(&relative);
    config.cores = 1;
    config.segment_size_bytes = 1 << 20;
    let engine = Engine::open(config).unwrap();
    engine
        .create_stream(CreateStream::provisioned("s", 2))
        .wait()
        .unwrap();
    for key in ["a", "b", "c", "d"] {
        engine
            .stream("s")
            .unwrap()
            .put(PutRecord::new(key, b"x"))
            .durability(Durability::Durable)
            .wait()
            .unwrap();
    }
    let mut iterator = engine
        .stream("s")
        .unwrap()
        .shard_iterator("shardId-000000000000", IteratorStart::TrimHorizon)
        .unwrap();
    let mut other = engine
        .stream("s")
        .unwrap()
        .shard_iterator("shardId-000000000001", IteratorStart::TrimHorizon)
        .unwrap();
    let total = engine.get_records(&mut iterator, None).unwrap().len()
        + engine.get_records(&mut other, None).unwrap().len();
    assert_eq!(total, 4);
    assert!(
        engine.data_dir().is_absolute(),
        "kept as {}",
        engine.data_dir().display()
    );
}
