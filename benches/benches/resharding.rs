//! Puts on a hot shard while it is split and merged back every second (the resharding
//! issue): throughput against the same load without resharding, and the latency of every put
//! call, whose maximum is the longest stall a reshard caused.

use criterion::{Criterion, Throughput};
use hdrhistogram::Histogram;
use sluice_benches::{criterion_config, filler, full_mode, mean_iteration_secs};
use sluice_core::{
    CreateStream, Durability, Engine, EngineConfig, PutRecord, ReshardStep, ShardDescription,
};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BATCH_RECORDS: usize = 100;
const RECORD_BYTES: usize = 100;
const CALLERS: usize = 2;
/// Every put goes to this hash key: the hot shard is whichever open shard holds it.
const HOT_HASH_KEY: u128 = 1 << 126;

fn engine(dir: &Path) -> Engine {
    engine_observed(dir, None)
}

/// An engine whose reshards report their steps to `observer`.
fn engine_observed(dir: &Path, observer: Option<Arc<dyn Fn(ReshardStep) + Send + Sync>>) -> Engine {
    let mut config = EngineConfig::new(dir);
    config.cores = 2;
    // Every reshard creates segment files for its children: keep them small.
    config.segment_size_bytes = 8 << 20;
    config.testing.reshard_observer = observer;
    Engine::open(config).unwrap()
}

/// Records, for every reshard, how long its parents refused appends: from the commit (the
/// parents are closed right after) to the new layout being in the catalog. Putters to a
/// parent wait at most this long (plus sending again).
#[derive(Default)]
struct StallClock {
    committed: Mutex<Option<Instant>>,
    windows_us: Mutex<Vec<u64>>,
}

impl StallClock {
    fn observer(self: &Arc<Self>) -> Arc<dyn Fn(ReshardStep) + Send + Sync> {
        let clock = self.clone();
        Arc::new(move |step| match step {
            ReshardStep::Committed => *clock.committed.lock().unwrap() = Some(Instant::now()),
            ReshardStep::Applied => {
                if let Some(start) = clock.committed.lock().unwrap().take() {
                    clock
                        .windows_us
                        .lock()
                        .unwrap()
                        .push(start.elapsed().as_micros() as u64);
                }
            }
            _ => {}
        })
    }
}

fn hot_shard(engine: &Engine) -> ShardDescription {
    engine
        .stream("hot")
        .unwrap()
        .describe(Some(100), None)
        .unwrap()
        .shards
        .into_iter()
        .chain(later_shards(engine))
        .find(|s| s.ending_sequence_number.is_none() && s.hash_key_range.contains(HOT_HASH_KEY))
        .expect("an open shard holds every key")
}

/// Shards past the first page of 100.
fn later_shards(engine: &Engine) -> Vec<ShardDescription> {
    let mut all = Vec::new();
    let mut after = Some(sluice_core::ShardId::new(99));
    while let Some(start) = after.take() {
        let page = engine
            .stream("hot")
            .unwrap()
            .describe(Some(100), Some(&start))
            .unwrap();
        after = page
            .has_more_shards
            .then(|| page.shards.last().unwrap().shard_id);
        all.extend(page.shards);
    }
    all
}

/// Splits the hot shard at its middle, waits half a second, merges the two children back,
/// waits half a second; until `stop`.
fn reshard_every_second(engine: &Engine, stop: &AtomicBool) -> u64 {
    let mut reshards = 0;
    while !stop.load(Ordering::Relaxed) {
        let hot = hot_shard(engine);
        let range = hot.hash_key_range;
        let middle = range.start + (range.end - range.start) / 2;
        engine
            .stream("hot")
            .unwrap()
            .split_shard(&hot.shard_id, &middle.to_string())
            .wait()
            .unwrap();
        std::thread::sleep(Duration::from_millis(500));
        let all = engine
            .stream("hot")
            .unwrap()
            .describe(Some(100), None)
            .unwrap()
            .shards;
        let mut children: Vec<ShardDescription> = all
            .into_iter()
            .chain(later_shards(engine))
            .filter(|s| s.parent_shard_id == Some(hot.shard_id))
            .collect();
        children.sort_by_key(|s| s.hash_key_range.start);
        engine
            .stream("hot")
            .unwrap()
            .merge_shards(&children[0].shard_id, &children[1].shard_id)
            .wait()
            .unwrap();
        reshards += 2;
        std::thread::sleep(Duration::from_millis(500));
    }
    reshards
}

/// `batches` put calls of 100 × 100 B to the hot key from `CALLERS` threads; records every
/// call's latency into `latency` when given.
fn put_run(
    engine: &Engine,
    batches: u64,
    latency: Option<&std::sync::Mutex<Histogram<u64>>>,
) -> Duration {
    let data = filler(RECORD_BYTES);
    let key = HOT_HASH_KEY.to_string();
    let records: Vec<PutRecord<'_>> = (0..BATCH_RECORDS)
        .map(|_| PutRecord::new("hot", &data).with_explicit_hash_key(&key))
        .collect();
    let started = Instant::now();
    std::thread::scope(|scope| {
        for caller in 0..CALLERS {
            let records = &records;
            let share =
                batches / CALLERS as u64 + u64::from((caller as u64) < batches % CALLERS as u64);
            scope.spawn(move || {
                let hot = engine.stream("hot").unwrap();
                let mut local = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
                for _ in 0..share {
                    let call = Instant::now();
                    let results = hot
                        .put_batch(records)
                        .durability(Durability::Visible)
                        .wait()
                        .unwrap();
                    local.record(call.elapsed().as_micros() as u64 + 1).unwrap();
                    assert!(results.iter().all(|r| r.is_ok()));
                }
                if let Some(latency) = latency {
                    latency.lock().unwrap().add(&local).unwrap();
                }
            });
        }
    });
    started.elapsed()
}

fn bench_throughput(c: &mut Criterion, dir: &Path) {
    let mut group = c.benchmark_group("hot_shard_put_100B_x100");
    group.throughput(Throughput::Elements(BATCH_RECORDS as u64));
    for resharding in [false, true] {
        let engine = engine(&dir.join(format!("throughput-{resharding}")));
        engine
            .create_stream(CreateStream::provisioned("hot", 2))
            .wait()
            .unwrap();
        let stop = AtomicBool::new(false);
        std::thread::scope(|scope| {
            if resharding {
                scope.spawn(|| reshard_every_second(&engine, &stop));
            }
            let name = if resharding {
                "split_and_merge_every_second"
            } else {
                "no_resharding"
            };
            group.bench_function(name, |b| {
                b.iter_custom(|iters| put_run(&engine, iters, None))
            });
            stop.store(true, Ordering::Relaxed);
        });
    }
    group.finish();
}

/// The same load for a fixed time with and without resharding: latency of every put call.
fn latency_report(dir: &Path) {
    let run = if full_mode() {
        Duration::from_secs(20)
    } else {
        Duration::from_secs(5)
    };
    let stalls = Arc::new(StallClock::default());
    for resharding in [false, true] {
        let dir = dir.join(format!("latency-{resharding}"));
        let engine = engine_observed(&dir, Some(stalls.observer()));
        engine
            .create_stream(CreateStream::provisioned("hot", 2))
            .wait()
            .unwrap();
        let latency =
            std::sync::Mutex::new(Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap());
        let stop = AtomicBool::new(false);
        let (records, elapsed, reshards) = std::thread::scope(|scope| {
            let resharder =
                resharding.then(|| scope.spawn(|| reshard_every_second(&engine, &stop)));
            let started = Instant::now();
            let mut batches = 0u64;
            while started.elapsed() < run {
                put_run(&engine, 200, Some(&latency));
                batches += 200;
            }
            let elapsed = started.elapsed();
            stop.store(true, Ordering::Relaxed);
            let reshards = resharder.map_or(0, |r| r.join().unwrap());
            (batches * BATCH_RECORDS as u64, elapsed, reshards)
        });
        let h = latency.into_inner().unwrap();
        println!(
            "{}: {:.0} records/s, put call latency p50 {} µs, p99 {} µs, p99.9 {} µs, max {} µs ({} calls, {reshards} reshards)",
            if resharding {
                "split + merge every second"
            } else {
                "no resharding"
            },
            records as f64 / elapsed.as_secs_f64(),
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
            h.max(),
            h.len()
        );
    }
    let mut windows = stalls.windows_us.lock().unwrap().clone();
    windows.sort_unstable();
    if let Some(max) = windows.last() {
        let verdict = if *max < 1000 { "meets" } else { "BELOW" };
        println!(
            "parents refusing appends per reshard (commit to new layout): median {} µs, max {max} µs over {} reshards ({verdict} target: no stall over 1 ms)",
            windows[windows.len() / 2],
            windows.len()
        );
    }
}

fn main() {
    sluice_benches::mark_run_start();
    let dir = tempfile::Builder::new()
        .prefix("sluice-reshard-bench-")
        .tempdir_in(bench_dir())
        .unwrap();
    let mut c = criterion_config();
    bench_throughput(&mut c, dir.path());
    c.final_summary();
    println!();
    let group = "hot_shard_put_100B_x100";
    if let (Some(steady), Some(resharding)) = (
        mean_iteration_secs(group, "no_resharding"),
        mean_iteration_secs(group, "split_and_merge_every_second"),
    ) {
        let ratio = steady / resharding;
        let verdict = if ratio >= 0.9 { "meets" } else { "BELOW" };
        println!(
            "throughput while resharding: {:.0} vs {:.0} records/s without = {ratio:.2} ({verdict} target 0.9)",
            BATCH_RECORDS as f64 / resharding,
            BATCH_RECORDS as f64 / steady
        );
    }
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    if filter.is_none_or(|f| "reshard_reports".contains(f.as_str())) {
        latency_report(dir.path());
    }
}

fn bench_dir() -> std::path::PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
