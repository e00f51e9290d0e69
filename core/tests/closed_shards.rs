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
