//! Each core's maintenance pass (retention, sealing, spare segments prepared ahead of rolls):
//! its interval must be positive, and a pass never leaves files behind a stream's deletion.

mod common;

use sluice_core::{Engine, PutRecord};

#[test]
fn a_zero_maintenance_interval_is_refused_rather_than_spinning_a_core() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    config.maintenance_interval_ms = 0;
    assert!(Engine::open(config).is_err());
}

/// The race it guards (a maintenance pass creating a spare segment in a directory being
/// removed) was found by reading the code; this test did not reproduce it against the code
/// before the fix (three runs passed), so it checks the property, not the interleaving.
#[test]
fn deleting_streams_while_maintenance_prepares_spares_leaves_no_directory_behind() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    config.segment_size_bytes = 256 << 10;
    config.maintenance_interval_ms = 1;
    let engine = Engine::open(config).unwrap();
    let data = vec![7u8; 1000];
    for round in 0..40 {
        let name = format!("brief-{round}");
        common::create(&engine, &name, 8);
        // Spread over the shards; maintenance prepares spares once a segment is half full.
        let keys: Vec<String> = (0..400).map(|i| format!("k{i}")).collect();
        let records: Vec<PutRecord<'_>> = keys.iter().map(|k| PutRecord::new(k, &data)).collect();
        engine
            .stream(&name)
            .unwrap()
            .put_batch(&records)
            .wait()
            .unwrap();
        engine.stream(&name).unwrap().delete().wait().unwrap();
        let left: Vec<_> = std::fs::read_dir(dir.path().join("streams"))
            .unwrap()
            .collect();
        assert!(left.is_empty(), "round {round}: {left:?}");
    }
}
