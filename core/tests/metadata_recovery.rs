//! The engine's metadata log on restart: a compaction keeps every change made around it, and
//! stream data the log does not know is set aside, never deleted.

mod common;

use sluice_core::PutRecord;

#[test]
fn a_stream_created_as_the_metadata_log_compacts_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let put = {
        let engine = common::open(dir.path());
        common::create(&engine, "busy", 1);
        // 1,000 entries since open trigger compaction; the create below is the one after
        // which it runs.
        for i in 0..998 {
            engine
                .stream("busy")
                .unwrap()
                .add_tags(vec![("n".into(), i.to_string())])
                .wait()
                .unwrap();
        }
        common::create(&engine, "created-at-compaction", 1);
        let put = engine
            .stream("created-at-compaction")
            .unwrap()
            .put(PutRecord::new("k", b"kept"))
            .wait()
            .unwrap();
        engine
            .stream("busy")
            .unwrap()
            .add_tags(vec![("last".into(), "yes".into())])
            .wait()
            .unwrap();
        put
    };
    let engine = common::open(dir.path());
    let record = engine
        .stream("created-at-compaction")
        .unwrap()
        .get(put.sequence_number)
        .unwrap();
    assert_eq!(record.records().next().unwrap().data, b"kept");
    let tags = engine.stream("busy").unwrap().tags().unwrap();
    assert!(tags.contains(&("n".to_owned(), "997".to_owned())));
    assert!(tags.contains(&("last".to_owned(), "yes".to_owned())));
}

#[test]
fn stream_data_the_metadata_log_does_not_know_is_set_aside_not_deleted() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = common::open(dir.path());
        common::create(&engine, "precious", 1);
        engine
            .stream("precious")
            .unwrap()
            .put(PutRecord::new("k", b"data"))
            .wait()
            .unwrap();
    }
    // Damage: the metadata log loses everything after its header.
    let meta = dir.path().join("meta.log");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&meta)
        .unwrap()
        .set_len(16)
        .unwrap();
    let engine = common::open(dir.path());
    assert!(engine.list_streams(None, None).unwrap().names.is_empty());
    let orphans: Vec<_> = std::fs::read_dir(dir.path().join("orphaned-streams"))
        .unwrap()
        .collect();
    assert_eq!(orphans.len(), 1, "the stream's directory was set aside");
    let shard_dir = orphans[0].as_ref().unwrap().path().join("shard-0");
    let segments = std::fs::read_dir(shard_dir).unwrap().filter(|e| {
        e.as_ref()
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("seg-")
    });
    assert!(segments.count() > 0, "with its segment files");
}
