//! Shared set-up for the engine tests: a real engine in a temporary directory.
#![allow(dead_code)]

use sluice_core::{CreateStream, Engine, EngineConfig, ManualClock};
use std::sync::Arc;

/// 1 MiB segments keep files small; two cores exercise cross-core routing.
pub fn config(dir: &std::path::Path) -> EngineConfig {
    let mut config = EngineConfig::new(dir);
    config.cores = 2;
    config.segment_size_bytes = 2 << 20;
    config.maintenance_interval_ms = 20;
    config
}

pub fn open(dir: &std::path::Path) -> Engine {
    Engine::open(config(dir)).expect("engine opens")
}

/// An engine whose clock the test moves.
pub fn open_with_clock(dir: &std::path::Path, start_ms: u64) -> (Engine, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(start_ms));
    let mut config = config(dir);
    config.clock = clock.clone();
    (Engine::open(config).expect("engine opens"), clock)
}

pub fn create(engine: &Engine, name: &str, shards: u32) {
    engine
        .create_stream(CreateStream::provisioned(name, shards))
        .wait()
        .expect("stream created");
}

/// Every record of a shard from the trim horizon: (sequence number, key, data).
pub fn read_shard(engine: &Engine, stream: &str, shard_id: &str) -> Vec<(u128, String, Vec<u8>)> {
    let mut iterator = engine
        .stream(stream)
        .unwrap()
        .shard_iterator(shard_id, sluice_core::IteratorStart::TrimHorizon)
        .expect("iterator");
    let mut out = Vec::new();
    loop {
        let batch = engine.get_records(&mut iterator, None).expect("read");
        if batch.is_empty() {
            return out;
        }
        out.extend(batch.records().map(|r| {
            (
                r.sequence_number.0,
                r.partition_key.to_owned(),
                r.data.to_vec(),
            )
        }));
    }
}
