//! A reshard records its parents' endings in the metadata log (synced) while a parent's last
//! records may be visible only. After a power loss takes them, the parent's log ends below its
//! recorded ending: readers and subscribers must still reach the parent's end and move on to
//! its children, or a consumer (KCL) would wait at the parent for ever.

use sluice_core::{
    CreateStream, Durability, Engine, EngineConfig, IteratorStart, PutRecord, ShardDescription,
};
use sluice_storage::GlommioIo;
use sluice_storage::io::{FaultyIo, PowerLoss};
use std::time::Duration;

fn config(dir: &std::path::Path, faults: &FaultyIo<GlommioIo>) -> EngineConfig {
    let mut config = EngineConfig::new(dir);
    config.cores = 1;
    config.segment_size_bytes = 256 << 10;
    config.testing.io_faults = Some(faults.clone());
    config
}

fn open(dir: &std::path::Path, faults: &FaultyIo<GlommioIo>) -> Engine {
    Engine::open(config(dir, faults)).unwrap()
}

/// An engine whose power goes as soon as a reshard has recorded its parents' endings:
/// before a parent lets go of its writer, whose sync would have made its tail durable.
fn open_with_power_cut_after_the_endings(
    dir: &std::path::Path,
    faults: &FaultyIo<GlommioIo>,
) -> Engine {
    let mut config = config(dir, faults);
    let cut = faults.clone();
    config.testing.reshard_observer = Some(std::sync::Arc::new(move |step| {
        if step == sluice_core::ReshardStep::EndingsRecorded {
            cut.cut_power();
        }
    }));
    Engine::open(config).unwrap()
}

/// Creates a one-shard stream `s`, puts a durable batch and then a visible one, and splits
/// the shard: returns the parent.
fn split_after_a_durable_and_a_visible_batch(engine: &Engine) -> ShardDescription {
    engine
        .create_stream(CreateStream::provisioned("s", 1))
        .wait()
        .unwrap();
    let data = vec![7u8; 100];
    let records: Vec<_> = (0..10).map(|_| PutRecord::new("k", &data)).collect();
    engine
        .stream("s")
        .unwrap()
        .put_batch(&records)
        .durability(Durability::Durable)
        .wait()
        .unwrap();
    engine
        .stream("s")
        .unwrap()
        .put_batch(&records)
        .durability(Durability::Visible)
        .wait()
        .unwrap();
    let parent = engine
        .stream("s")
        .unwrap()
        .describe(None, None)
        .unwrap()
        .shards[0]
        .clone();
    let range = parent.hash_key_range;
    let middle = range.start + (range.end - range.start) / 2;
    engine
        .stream("s")
        .unwrap()
        .split_shard(&parent.shard_id, &middle.to_string())
        .wait()
        .unwrap();
    parent
}

#[test]
fn a_parent_whose_unsynced_tail_was_lost_still_ends_at_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let faults = FaultyIo::new(GlommioIo);
    let engine = open_with_power_cut_after_the_endings(dir.path(), &faults);
    let parent = split_after_a_durable_and_a_visible_batch(&engine);
    drop(engine);
    let undone = faults.lose_power(PowerLoss::Everything).unwrap();
    assert!(undone > 0, "the visible batch was unsynced");
    faults.heal();

    let engine = open(dir.path(), &faults);
    let shards = engine
        .stream("s")
        .unwrap()
        .describe(None, None)
        .unwrap()
        .shards;
    assert_eq!(
        shards.len(),
        3,
        "the split survived (its metadata was synced)"
    );
    let children: Vec<sluice_core::ShardId> = shards[1..].iter().map(|s| s.shard_id).collect();

    let mut iterator = engine
        .stream("s")
        .unwrap()
        .shard_iterator(&parent.shard_id, IteratorStart::TrimHorizon)
        .unwrap();
    let mut read = 0;
    let ended = (0..5).find_map(|_| {
        let records = engine.get_records(&mut iterator, None).unwrap();
        read += records.len();
        records.end_of_shard.then_some(records.child_shard_ids)
    });
    assert_eq!(read, 10, "the durable batch, and not the lost one");
    assert_eq!(ended, Some(children.clone()), "GetRecords reaches the end");

    let mut subscription = engine
        .stream("s")
        .unwrap()
        .subscribe(&parent.shard_id, IteratorStart::TrimHorizon)
        .unwrap();
    let mut pushed = 0;
    let ended = (0..5).find_map(|_| {
        let event = subscription
            .next_blocking(Duration::from_millis(200))
            .unwrap()?;
        pushed += event.records.len();
        event
            .records
            .end_of_shard
            .then_some(event.records.child_shard_ids)
    });
    assert_eq!(pushed, 10);
    assert_eq!(ended, Some(children), "the subscription reaches the end");
}
