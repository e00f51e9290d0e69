//! Closing an engine closes every file it opened. (Its own test binary: descriptor counts
//! must not see other tests' engines.)

use sluice_core::{CreateStream, Durability, Engine, EngineConfig, PutRecord};

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn engines_that_synced_their_logs_leave_no_descriptor_open_after_closing() {
    let dir = tempfile::tempdir().unwrap();
    let before = open_descriptors();
    for i in 0..10 {
        let mut config = EngineConfig::new(dir.path().join(format!("engine-{i}")));
        config.cores = 2;
        config.segment_size_bytes = 256 << 10;
        let engine = Engine::open(config).unwrap();
        engine
            .create_stream(CreateStream::provisioned("s", 2))
            .wait()
            .unwrap();
        // A durable put makes the shard sync its segment, as closing does too.
        engine
            .stream("s")
            .unwrap()
            .put(PutRecord::new("k", b"v"))
            .durability(Durability::Durable)
            .wait()
            .unwrap();
    }
    // Found by a 10,000-case model run that ran out of descriptors: glommio closes files
    // asynchronously, and closes still pending when a core stopped never happened.
    assert_eq!(
        open_descriptors(),
        before,
        "descriptors leaked by closed engines"
    );
}
