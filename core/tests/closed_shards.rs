//! Closed shards hold no file descriptors: their records stay readable through their
//! mappings, across reshards and restarts. (Its own test binary: `descriptors.rs` counts
//! every descriptor of the process.)

use sluice_core::{CreateStream, Durability, Engine, EngineConfig, PutRecord};

const HOUR_MS: u64 = 3_600_000;

/// Puts `count` records (keys `key-0`.. with their number as data), visible only, so closing
/// a parent has something to sync.
fn put_numbered(engine: &Engine, from: usize, count: usize) {
    let stream = engine.stream("s").unwrap();
    for n in from..from + count {
        let key = format!("key-{}", n % 13);
        stream
            .put(PutRecord::new(&key, n.to_string().as_bytes()))
            .durability(Durability::Visible)
            .wait()
            .unwrap();
    }
}

/// Every record of the stream along its lineage, as numbers, once `expected` are in.
fn read_numbers(engine: &Engine, expected: usize) -> Vec<usize> {
    let mut reader = engine.stream("s").unwrap().reader().unwrap();
    let mut numbers = Vec::new();
    for _ in 0..10_000 {
        if numbers.len() >= expected {
            break;
        }
        let Some(read) = reader.read(None).unwrap() else {
            break;
        };
        numbers.extend(read.records.records().map(|r| {
            std::str::from_utf8(r.data)
                .unwrap()
                .parse::<usize>()
                .unwrap()
        }));
    }
    numbers.sort_unstable();
    numbers
}

/// Descriptors open on files under `dir` (the other test's engines do not count).
fn descriptors_under(dir: &std::path::Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter(|target| target.starts_with(dir))
        .count()
}

/// glommio closes files asynchronously: wait (a bounded while) until at most `limit`
/// descriptors are open under `dir`, and return the count.
fn settle_at_most(dir: &std::path::Path, limit: usize) -> usize {
    for _ in 0..200 {
        if descriptors_under(dir) <= limit {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    descriptors_under(dir)
}

/// A closed shard keeps its records readable through its mappings but holds no descriptor:
/// resharding back and forth (and restarting) never grows the descriptors a stream holds
/// beyond what its open shards need. (Before, each closed shard kept its lock file and active
/// segment open until the stream was deleted: 200 <-> 400 shards took 3,812 descriptors.)
#[test]
fn closed_shards_hold_no_descriptors_and_stay_readable_across_reshards_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let clock = std::sync::Arc::new(sluice_core::ManualClock::new(1_700_000_000_000));
    let config = || {
        let mut config = EngineConfig::new(dir.path());
        config.cores = 2;
        config.segment_size_bytes = 256 << 10;
        config.clock = clock.clone();
        config
    };
    let engine = Engine::open(config()).unwrap();
    engine
        .create_stream(CreateStream::provisioned("s", 4))
        .wait()
        .unwrap();
    put_numbered(&engine, 0, 50);
    let with_four_shards = descriptors_under(dir.path());
    assert!(with_four_shards >= 4, "each open shard holds files");
    let mut written = 50;
    for _ in 0..3 {
        engine
            .stream("s")
            .unwrap()
            .update_shard_count(8)
            .wait()
            .unwrap();
        put_numbered(&engine, written, 50);
        engine
            .stream("s")
            .unwrap()
            .update_shard_count(4)
            .wait()
            .unwrap();
        put_numbered(&engine, written + 50, 50);
        written += 100;
    }
    // 36 shards were closed; 4 are open, as at the start.
    assert_eq!(
        settle_at_most(dir.path(), with_four_shards),
        with_four_shards,
        "closed shards still hold descriptors"
    );
    assert_eq!(
        read_numbers(&engine, written),
        (0..written).collect::<Vec<_>>()
    );

    // A retention change reaches closed shards too: with 48 hours, 30-hour-old records in
    // closed shards are still there.
    engine
        .stream("s")
        .unwrap()
        .increase_retention(48)
        .wait()
        .unwrap();
    clock.advance_ms(30 * HOUR_MS);
    assert_eq!(
        read_numbers(&engine, written),
        (0..written).collect::<Vec<_>>()
    );

    // After a restart the closed shards are opened, recovered and let go of at once.
    engine.close().unwrap();
    let engine = Engine::open(config()).unwrap();
    assert_eq!(
        settle_at_most(dir.path(), with_four_shards),
        with_four_shards,
        "a restart reopened closed shards' files"
    );
    assert_eq!(
        read_numbers(&engine, written),
        (0..written).collect::<Vec<_>>()
    );
    engine.close().unwrap();
}

fn described_shards(engine: &Engine) -> Vec<String> {
    let description = engine.stream("s").unwrap().describe(None, None).unwrap();
    description
        .shards
        .iter()
        .map(|s| s.shard_id.to_string())
        .collect()
}

/// Waits (a bounded while: the expiry pass runs every 20 ms here) until `done` holds.
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("{what} never happened");
}

/// Once every record of a closed shard is past retention, the shard is recorded as expired,
/// its directory goes and it is no longer described or listed; a longer retention, a
/// compaction of the metadata log and a restart do not bring it back; its children keep
/// their records.
#[test]
fn closed_shards_are_removed_once_every_record_expired_and_stay_removed() {
    let dir = tempfile::tempdir().unwrap();
    let clock = std::sync::Arc::new(sluice_core::ManualClock::new(1_700_000_000_000));
    let config = || {
        let mut config = EngineConfig::new(dir.path());
        config.cores = 2;
        config.segment_size_bytes = 256 << 10;
        config.expiry_interval_ms = 20;
        config.clock = clock.clone();
        config
    };
    let shard_dir = |index: u32| dir.path().join(format!("streams/1/shard-{index}"));
    let engine = Engine::open(config()).unwrap();
    engine
        .create_stream(CreateStream::provisioned("s", 2))
        .wait()
        .unwrap();
    put_numbered(&engine, 0, 40);
    engine
        .stream("s")
        .unwrap()
        .update_shard_count(4)
        .wait()
        .unwrap();
    assert!(shard_dir(0).exists() && shard_dir(1).exists());
    assert_eq!(described_shards(&engine).len(), 6);

    // 23 h later the parents' records are still retained: nothing goes.
    clock.advance_ms(23 * HOUR_MS);
    put_numbered(&engine, 40, 40);
    std::thread::sleep(std::time::Duration::from_millis(100)); // five passes
    assert!(shard_dir(0).exists() && shard_dir(1).exists());
    assert_eq!(read_numbers(&engine, 80), (0..80).collect::<Vec<_>>());

    // An iterator on a parent taken now outlives the parent's expiry.
    let mut iterator = engine
        .stream("s")
        .unwrap()
        .shard_iterator(
            "shardId-000000000000",
            sluice_core::IteratorStart::TrimHorizon,
        )
        .unwrap();

    // 25 h: the parents' records (and the first 40) expired; the children's later ones not.
    clock.advance_ms(2 * HOUR_MS);
    eventually("the parents' removal", || {
        !shard_dir(0).exists() && !shard_dir(1).exists()
    });
    let children = vec![
        "shardId-000000000002",
        "shardId-000000000003",
        "shardId-000000000004",
        "shardId-000000000005",
    ];
    assert_eq!(described_shards(&engine), children);
    let space = engine.stream("s").unwrap().disk_space().unwrap();
    assert!(space.iter().all(|s| !s.closed) && space.len() == 4);
    assert_eq!(read_numbers(&engine, 40), (40..80).collect::<Vec<_>>());
    expired_parent_ends_old_iterators_and_refuses_new_ones(&engine, &mut iterator);

    // Sticky: a longer retention does not bring them back, nor does a compaction of the
    // metadata log (1,000 entries) followed by a restart.
    engine
        .stream("s")
        .unwrap()
        .increase_retention(48)
        .wait()
        .unwrap();
    for i in 0..1000 {
        engine
            .stream("s")
            .unwrap()
            .add_tags(vec![("n".into(), i.to_string())])
            .wait()
            .unwrap();
    }
    assert_eq!(described_shards(&engine), children);
    engine.close().unwrap();
    // As a crash between the expiry's entry and the directory's removal would leave it.
    std::fs::create_dir_all(shard_dir(0)).unwrap();
    std::fs::write(shard_dir(0).join("segment-0"), b"left behind").unwrap();
    let engine = Engine::open(config()).unwrap();
    assert_eq!(described_shards(&engine), children);
    assert!(!shard_dir(0).exists() && !shard_dir(1).exists());
    assert_eq!(read_numbers(&engine, 40), (40..80).collect::<Vec<_>>());
    engine.close().unwrap();
}

/// The iterator taken before finds the end at once, and where the children are; no new one
/// is handed out for an expired shard.
fn expired_parent_ends_old_iterators_and_refuses_new_ones(
    engine: &Engine,
    iterator: &mut sluice_core::ShardIterator,
) {
    let records = engine.get_records(iterator, None).unwrap();
    assert!(records.is_empty() && records.end_of_shard);
    assert_eq!(records.child_shard_ids.len(), 2);
    let refused = engine.stream("s").unwrap().shard_iterator(
        "shardId-000000000000",
        sluice_core::IteratorStart::TrimHorizon,
    );
    assert!(matches!(
        refused,
        Err(sluice_core::ReadError::ShardNotFound { .. })
    ));
}

/// A parent's last sync happens when it lets go of its writer, after the reshard: if that
/// sync fails, `Engine::close` says so, as it does for any log with records not on disk.
#[test]
fn a_failed_sync_of_a_parent_letting_go_comes_back_from_close() {
    use sluice_storage::io::{Fault, FaultPlan, FaultyIo};
    let dir = tempfile::tempdir().unwrap();
    let faults = FaultyIo::new(sluice_storage::GlommioIo);
    let mut config = EngineConfig::new(dir.path());
    config.cores = 2;
    config.segment_size_bytes = 256 << 10;
    config.testing.io_faults = Some(faults.clone());
    // The metadata log's entries are written by then: every sync after them fails.
    let arm = faults.clone();
    config.testing.reshard_observer = Some(std::sync::Arc::new(move |step| {
        if step == sluice_core::ReshardStep::EndingsRecorded {
            arm.arm(FaultPlan {
                fail_sync_from: Some((0, Fault::Eio)),
                ..FaultPlan::default()
            });
        }
    }));
    let engine = Engine::open(config).unwrap();
    engine
        .create_stream(CreateStream::provisioned("s", 1))
        .wait()
        .unwrap();
    put_numbered(&engine, 0, 10); // visible only: the parent's release must sync them
    engine
        .stream("s")
        .unwrap()
        .update_shard_count(2)
        .wait()
        .unwrap();
    let closed = engine.close();
    assert!(
        faults.faults_fired() > 0,
        "the release's sync met the fault"
    );
    let error = closed.expect_err("the failed sync is reported");
    assert!(error.to_string().contains("sync"), "{error}");
}
