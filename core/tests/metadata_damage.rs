//! A metadata log damaged before its end stops the engine from opening, with a typed error
//! and the file left as found: cutting the log at the damage (what replay did before) dropped
//! the entries after it, so a deleted stream came back and live ones were set aside. The
//! deliberate repair keeps every valid entry, so what they say (here: a delete) holds.

mod common;

use sluice_core::{Engine, ErrorCode, OpenError, PutRecord, StorageError, metadata};
use std::path::Path;

/// Offsets of the metadata log's frames, by its documented layout: a 16-byte header, then
/// `[len u32][magic u32][checksum u64][payload padded to 8]`.
fn frame_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut pos = 16;
    while pos + 16 <= bytes.len() {
        offsets.push(pos);
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        pos += 16 + len.div_ceil(8) * 8;
    }
    offsets
}

/// Creates alpha, beta and gamma (uids 1, 2, 3), puts into alpha and gamma and deletes beta:
/// the log holds four entries, the last one beta's delete.
fn three_streams_and_a_delete(dir: &Path) {
    let engine = common::open(dir);
    for name in ["alpha", "beta", "gamma"] {
        common::create(&engine, name, 1);
    }
    for name in ["alpha", "gamma"] {
        engine
            .stream(name)
            .unwrap()
            .put(PutRecord::new("k", name.as_bytes()))
            .wait()
            .unwrap();
    }
    engine.stream("beta").unwrap().delete().wait().unwrap();
}

fn names(engine: &Engine) -> Vec<String> {
    engine.list_streams(None, None).unwrap().names
}

#[test]
fn damage_before_the_last_entry_stops_the_engine_and_repair_keeps_the_delete_after_it() {
    let dir = tempfile::tempdir().unwrap();
    three_streams_and_a_delete(dir.path());
    let meta = dir.path().join("meta.log");
    let mut bytes = std::fs::read(&meta).unwrap();
    let frames = frame_offsets(&bytes);
    assert_eq!(frames.len(), 4, "three creates and a delete");
    bytes[frames[2] + 24] ^= 0x55; // gamma's create, with beta's delete after it
    std::fs::write(&meta, &bytes).unwrap();

    let refused = Engine::open(common::config(dir.path())).unwrap_err();
    assert_eq!(refused.code(), ErrorCode::MetadataDamaged);
    match &refused {
        OpenError::MetadataDamaged {
            path,
            pos,
            frames_after,
        } => {
            assert_eq!(path, &meta);
            assert_eq!(*pos, frames[2] as u64);
            assert_eq!(*frames_after, 1);
        }
        other => panic!("expected MetadataDamaged, got {other:?}"),
    }
    assert!(refused.to_string().contains("sluice repair-metadata"));
    assert_eq!(
        std::fs::read(&meta).unwrap(),
        bytes,
        "the log is left as found"
    );
    assert!(
        !dir.path().join("orphaned-streams").exists(),
        "no stream directory was set aside on the damaged log's word"
    );

    let report = metadata::inspect(dir.path()).unwrap();
    assert_eq!(
        report.scan.damaged,
        vec![frames[2] as u64..frames[3] as u64]
    );
    assert_eq!(
        std::fs::read(&meta).unwrap(),
        bytes,
        "inspection changes nothing"
    );

    let repaired = metadata::repair(dir.path()).unwrap();
    assert_eq!(repaired.scan.frames_valid, 3);
    let copy = repaired.damaged_copy.expect("the damaged log was kept");
    assert_eq!(std::fs::read(copy).unwrap(), bytes);
    assert_eq!(repaired.uid_floor, Some(4), "gamma's directory names uid 3");

    let engine = common::open(dir.path());
    assert_eq!(
        names(&engine),
        ["alpha"],
        "beta stays deleted; gamma's entry was lost"
    );
    let alpha = engine
        .stream("alpha")
        .unwrap()
        .describe(None, None)
        .unwrap();
    let records = common::read_shard(&engine, "alpha", alpha.shards[0].shard_id.as_ref());
    assert_eq!(records.len(), 1);
    let orphans: Vec<_> = std::fs::read_dir(dir.path().join("orphaned-streams"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(orphans.len(), 1);
    assert!(
        orphans[0].starts_with("3-"),
        "gamma's data is set aside: {orphans:?}"
    );
    common::create(&engine, "delta", 1);
    assert!(
        dir.path().join("streams/4").exists(),
        "uid 3 is not issued again"
    );
}

#[test]
fn the_metadata_log_is_not_inspected_or_repaired_while_an_engine_has_it_open() {
    let dir = tempfile::tempdir().unwrap();
    let engine = common::open(dir.path());
    for result in [metadata::inspect(dir.path()), metadata::repair(dir.path())] {
        assert!(
            matches!(result, Err(OpenError::Storage(StorageError::InUse { .. }))),
            "{result:?}"
        );
    }
    drop(engine);
    let report = metadata::repair(dir.path()).unwrap();
    assert!(!report.scan.is_damaged());
    assert_eq!(report.damaged_copy, None);
}
