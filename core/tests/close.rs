//! `Engine::close`: it reports the final sync's result (a failed one is an error, not a
//! silence), stops every call through other clones and handles, and a clean close is `Ok`.

use sluice_core::{
    CloseError, CreateStream, Durability, Engine, EngineConfig, ErrorCode, PutError, PutRecord,
    ShardId,
};
use sluice_storage::io::{Fault, FaultPlan, FaultyIo};
use sluice_storage::{GlommioIo, StorageError};
use std::path::Path;

fn open(dir: &Path, faults: &FaultyIo<GlommioIo>) -> Engine {
    let mut config = EngineConfig::new(dir);
    config.cores = 2;
    config.segment_size_bytes = 1 << 20;
    config.testing.io_faults = Some(faults.clone());
    Engine::open(config).unwrap()
}

#[test]
fn a_failed_final_sync_comes_back_from_close() {
    let dir = tempfile::tempdir().unwrap();
    let faults = FaultyIo::new(GlommioIo);
    let engine = open(dir.path(), &faults);
    let stream = engine
        .create_stream(CreateStream::provisioned("s", 2))
        .wait()
        .unwrap();
    stream
        .put(PutRecord::new("k", b"visible, not yet synced"))
        .durability(Durability::Visible)
        .wait()
        .unwrap();
    faults.arm(FaultPlan {
        fail_sync_from: Some((0, Fault::Eio)),
        ..FaultPlan::default()
    });
    let closed = engine.close();
    assert!(
        faults.faults_fired() > 0,
        "the final sync ran into the fault"
    );
    match closed {
        Err(e @ CloseError::Storage(StorageError::Io { .. })) => {
            assert_eq!(e.code(), ErrorCode::InternalFailure);
            assert!(e.to_string().contains("sync"), "{e}");
        }
        other => panic!("expected the sync's I/O error, got {other:?}"),
    }
    // The handle outlived the engine's threads: calls through it answer Shutdown.
    let put = stream.put(PutRecord::new("k", b"late")).wait();
    assert!(matches!(put, Err(PutError::Shutdown)), "{put:?}");
    let split = stream.split_shard(&ShardId::new(0), "12345").wait();
    assert_eq!(split.unwrap_err().code(), ErrorCode::EngineShutdown);
}

#[test]
fn a_clean_close_is_ok_and_what_was_visible_is_durable_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let faults = FaultyIo::new(GlommioIo);
    let engine = open(dir.path(), &faults);
    let stream = engine
        .create_stream(CreateStream::provisioned("s", 2))
        .wait()
        .unwrap();
    let put = stream
        .put(PutRecord::new("k", b"visible"))
        .durability(Durability::Visible)
        .wait()
        .unwrap();
    let consumer = stream.consumer("c").unwrap();
    consumer
        .commit(&put.shard_id, put.sequence_number)
        .durability(Durability::Visible)
        .wait()
        .unwrap();
    let other = engine.clone();
    engine.close().expect("a clean close");
    // Close ran although a clone and handles were alive; after it no write was unsynced.
    assert!(
        faults.unsynced_writes().is_empty(),
        "close synced every log"
    );
    let commit = consumer.commit(&put.shard_id, put.sequence_number).wait();
    assert_eq!(commit.unwrap_err().code(), ErrorCode::EngineShutdown);
    drop((other, consumer, stream));

    let engine = open(dir.path(), &faults);
    let stream = engine.stream("s").unwrap();
    assert_eq!(stream.get(put.sequence_number).unwrap().len(), 1);
    let position = stream
        .consumer("c")
        .unwrap()
        .position(&put.shard_id)
        .unwrap();
    assert_eq!(position, Some(put.sequence_number));
}
