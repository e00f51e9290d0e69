//! Engine benches: put throughput through the whole engine (caller thread → core queue →
//! shard log), put-to-visible latency seen by a subscriber on another thread, durable-put
//! latency against the device's fdatasync latency, and idle memory per open shard. Same-run
//! baselines as in the storage bench; the targets printed are the performance issue's.

use criterion::{Criterion, Throughput};
use hdrhistogram::Histogram;
use sluice_benches::{SequentialWriter, criterion_config, filler, full_mode, print_ratio};
use sluice_core::{
    CreateStream, Durability, Engine, EngineConfig, IteratorStart, PutRecord, ScaledClock,
};
use std::path::Path;
use std::time::{Duration, Instant};

const BATCH_RECORDS: usize = 500;
const SEGMENT_BYTES: u64 = 64 << 20;
const BASELINE_FILE_BYTES: u64 = 2 << 30;

fn engine(dir: &Path, cores: usize, segment_bytes: u64) -> Engine {
    let mut config = EngineConfig::new(dir);
    config.cores = cores;
    config.segment_size_bytes = segment_bytes;
    config.clock = std::sync::Arc::new(ScaledClock::new(CLOCK_SPEED));
    Engine::open(config).unwrap()
}

/// An engine on the real clock (latency runs must not see records expire under them).
fn engine_real_time(dir: &Path, cores: usize, spin_before_park_us: u64) -> Engine {
    let mut config = EngineConfig::new(dir);
    config.cores = cores;
    config.segment_size_bytes = SEGMENT_BYTES;
    config.spin_before_park_us = spin_before_park_us;
    Engine::open(config).unwrap()
}

/// The throughput benches' clock runs this many times faster than real time: the 24-hour
/// minimum retention passes in under a second, so the rings wrap and recycle during the run,
/// as a long-running engine's do (and the bench does not fill the disk).
const CLOCK_SPEED: u64 = 100_000;

/// `batches` batches of `records`, spread over `callers` threads; caller `i` writes to
/// `targets[i % targets.len()]` (an explicit hash key, so one batch is one shard's message),
/// or routes by partition key (MD5, as most users do) when `targets` is empty.
fn put_run(
    engine: &Engine,
    stream: &str,
    records: &[PutRecord<'_>],
    targets: &[String],
    callers: usize,
    batches: u64,
    durability: Durability,
) -> Duration {
    let started = Instant::now();
    std::thread::scope(|scope| {
        for caller in 0..callers {
            let share =
                batches / callers as u64 + u64::from((caller as u64) < batches % callers as u64);
            let batch: Vec<PutRecord<'_>> = match targets.get(caller % targets.len().max(1)) {
                Some(target) => records
                    .iter()
                    .map(|r| r.with_explicit_hash_key(target))
                    .collect(),
                None => records.to_vec(),
            };
            scope.spawn(move || {
                let handle = engine.stream(stream).unwrap();
                for _ in 0..share {
                    let results = handle
                        .put_batch(&batch)
                        .durability(durability)
                        .wait()
                        .unwrap();
                    assert!(results.iter().all(|r| r.is_ok()));
                }
            });
        }
    });
    started.elapsed()
}

/// One explicit hash key inside each shard's range.
fn shard_targets(engine: &Engine, stream: &str) -> Vec<String> {
    engine
        .stream(stream)
        .unwrap()
        .describe(None, None)
        .unwrap()
        .shards
        .iter()
        .map(|s| s.hash_key_range.start.to_string())
        .collect()
}

fn bench_visible_small_records(c: &mut Criterion, dir: &Path) {
    let engine = engine(&dir.join("small"), 1, SEGMENT_BYTES);
    engine
        .create_stream(CreateStream::provisioned("small", 1))
        .wait()
        .unwrap();
    let data = filler(100);
    let keys: Vec<String> = (0..BATCH_RECORDS).map(|i| format!("k{i}")).collect();
    let records: Vec<PutRecord<'_>> = keys.iter().map(|k| PutRecord::new(k, &data)).collect();
    let explicit = shard_targets(&engine, "small");
    let mut group = c.benchmark_group("engine_put_100B_x500");
    group.throughput(Throughput::Elements(BATCH_RECORDS as u64));
    // One shard, so every record goes to the one core: routed by each partition key's MD5
    // (what most users do; the MD5s run on the callers' threads), or by an explicit hash key.
    for (name, targets) in [
        ("partition_keys", &[][..]),
        ("explicit_hash_key", &explicit[..]),
    ] {
        group.bench_function(format!("visible_1_core_4_callers_{name}"), |b| {
            b.iter_custom(|iters| {
                put_run(
                    &engine,
                    "small",
                    &records,
                    targets,
                    4,
                    iters,
                    Durability::Visible,
                )
            })
        });
    }
    group.finish();
}

/// The per-record routing cost on the caller's thread: MD5 of a partition key.
fn bench_routing(c: &mut Criterion) {
    let keys: Vec<String> = (0..BATCH_RECORDS)
        .map(|i| format!("customer-{i:08}"))
        .collect();
    let mut group = c.benchmark_group("engine_routing");
    group.throughput(Throughput::Elements(BATCH_RECORDS as u64));
    group.bench_function("md5_partition_key_x500", |b| {
        b.iter(|| {
            keys.iter()
                .map(|k| sluice_core::hashkey::partition_key_hash(k))
                .fold(0u128, |a, h| a ^ h)
        })
    });
    group.finish();
}

fn bench_durable_four_shards(c: &mut Criterion, dir: &Path) {
    let data = filler(1024);
    let keys: Vec<String> = (0..BATCH_RECORDS).map(|i| format!("{i:08}")).collect();
    let records: Vec<PutRecord<'_>> = keys.iter().map(|k| PutRecord::new(k, &data)).collect();
    let batch_bytes = (BATCH_RECORDS * (1024 + 8)) as u64;
    let chunk = filler(batch_bytes as usize);
    let mut group = c.benchmark_group("engine_put_1KiB_x500_durable");
    group.throughput(Throughput::Bytes(batch_bytes));
    let mut synced = SequentialWriter::new(
        &dir.join("baseline-synced"),
        BASELINE_FILE_BYTES,
        Some(1 << 20),
    );
    group.bench_function("baseline_write_fdatasync_per_MiB", |b| {
        b.iter_custom(|iters| synced.write(&chunk, iters))
    });
    drop(synced);
    let engine = engine(&dir.join("durable"), 2, SEGMENT_BYTES);
    engine
        .create_stream(CreateStream::provisioned("durable", 4))
        .wait()
        .unwrap();
    let targets = shard_targets(&engine, "durable");
    group.bench_function("sluice_4_shards_2_cores_4_callers", |b| {
        b.iter_custom(|iters| {
            put_run(
                &engine,
                "durable",
                &records,
                &targets,
                4,
                iters,
                Durability::Durable,
            )
        })
    });
    group.finish();
}

/// Peak single-put rate (closed loop, `callers` threads), visible.
fn peak_single_put_rate(engine: &Engine, stream: &str, callers: usize, run: Duration) -> f64 {
    let data = filler(100);
    let started = Instant::now();
    let total: u64 = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..callers)
            .map(|_| {
                let data = &data;
                scope.spawn(move || {
                    let handle = engine.stream(stream).unwrap();
                    let mut n = 0u64;
                    while started.elapsed() < run {
                        handle
                            .put(PutRecord::new("k", data))
                            .durability(Durability::Visible)
                            .wait()
                            .unwrap();
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    });
    total as f64 / started.elapsed().as_secs_f64()
}

/// Open loop at `rate` single puts/s from `producers` threads, paced by sleeping (spinning
/// would take the CPUs the engine needs). Each record carries the time its put started; a
/// subscriber on another thread records start → seen. Sends that start late against the
/// schedule are counted, so a stalled producer does not hide latency (coordinated omission).
fn put_to_visible_latency(
    engine: &Engine,
    stream: &str,
    rate: f64,
    producers: usize,
    run: Duration,
    reader_spin: Duration,
) -> (Histogram<u64>, u64) {
    let epoch = Instant::now();
    let total = (rate * run.as_secs_f64()) as u64 / producers as u64 * producers as u64;
    let interval_ns = (1e9 * producers as f64 / rate) as u64;
    let late = std::sync::atomic::AtomicU64::new(0);
    let mut subscription = engine
        .stream(stream)
        .unwrap()
        .subscribe("shardId-000000000000", IteratorStart::Latest)
        .unwrap();
    subscription.set_spin_before_park(reader_spin);
    let histogram = std::thread::scope(|scope| {
        let reader = scope.spawn(move || {
            let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
            let mut seen = 0;
            while seen < total {
                let Some(event) = subscription.next_blocking(Duration::from_secs(10)).unwrap()
                else {
                    break;
                };
                let now_ns = epoch.elapsed().as_nanos() as u64;
                for record in event.records.records() {
                    let sent_ns = u64::from_le_bytes(record.data[..8].try_into().unwrap());
                    histogram
                        .record(now_ns.saturating_sub(sent_ns) / 1000 + 1)
                        .unwrap();
                    seen += 1;
                }
            }
            histogram
        });
        for p in 0..producers {
            let late = &late;
            scope.spawn(move || {
                let handle = engine.stream(stream).unwrap();
                let mut data = filler(100);
                for i in 0..total / producers as u64 {
                    let scheduled_ns = i * interval_ns + p as u64 * interval_ns / producers as u64;
                    let now_ns = epoch.elapsed().as_nanos() as u64;
                    if now_ns < scheduled_ns {
                        std::thread::sleep(Duration::from_nanos(scheduled_ns - now_ns));
                    } else if now_ns > scheduled_ns + interval_ns {
                        late.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    let sent_ns = epoch.elapsed().as_nanos() as u64;
                    data[..8].copy_from_slice(&sent_ns.to_le_bytes());
                    handle
                        .put(PutRecord::new("k", &data))
                        .durability(Durability::Visible)
                        .wait()
                        .unwrap();
                }
            });
        }
        reader.join().unwrap()
    });
    (histogram, late.into_inner())
}

fn latency_report(dir: &Path) {
    let run = if full_mode() {
        Duration::from_secs(10)
    } else {
        Duration::from_secs(2)
    };
    // Defaults (everything parks when idle), then the latency settings: the core and the
    // subscriber spin 200 µs before parking.
    for spin_us in [0u64, 200] {
        let engine = engine_real_time(&dir.join(format!("latency-spin-{spin_us}")), 1, spin_us);
        engine
            .create_stream(CreateStream::provisioned("latency", 1))
            .wait()
            .unwrap();
        let peak = peak_single_put_rate(&engine, "latency", 2, run);
        let reader_spin = Duration::from_micros(spin_us);
        let (histogram, late) =
            put_to_visible_latency(&engine, "latency", peak / 2.0, 2, run, reader_spin);
        println!(
            "put-to-visible, single 100 B puts at half of peak ({:.0}/s of {peak:.0}/s), 1 core, core and subscriber spin {spin_us} µs \
             before parking, subscriber on another thread: {} records, {late} sends late by over one interval (target p99 < 10 µs)",
            peak / 2.0,
            percentiles(&histogram),
        );
    }
    // The caller's view, with the core and the caller spinning 200 µs before parking: two
    // busy threads, one per vCPU here, and no reader thread.
    let engine = {
        let mut config = EngineConfig::new(dir.join("latency-ack"));
        config.cores = 1;
        config.segment_size_bytes = SEGMENT_BYTES;
        config.spin_before_park_us = 200;
        config.caller_spin_us = 200;
        Engine::open(config).unwrap()
    };
    engine
        .create_stream(CreateStream::provisioned("latency", 1))
        .wait()
        .unwrap();
    let peak = peak_single_put_rate(&engine, "latency", 1, run);
    let (histogram, late) = put_to_visible_ack_latency(&engine, "latency", peak / 2.0, run);
    println!(
        "put-to-visible acknowledgement (an upper bound: a visible put returns once its record is visible), single 100 B puts \
         at half of peak ({:.0}/s of {peak:.0}/s), 1 caller, 1 core, both spin 200 µs before parking: {} puts, {late} sent \
         late by over one interval (target p99 < 10 µs)",
        peak / 2.0,
        percentiles(&histogram),
    );
}

/// "p50 … µs, p99 … µs, p99.9 … µs, max … µs over N" of a histogram of microseconds.
fn percentiles(histogram: &Histogram<u64>) -> String {
    format!(
        "p50 {} µs, p99 {} µs, p99.9 {} µs, max {} µs over {}",
        histogram.value_at_quantile(0.5),
        histogram.value_at_quantile(0.99),
        histogram.value_at_quantile(0.999),
        histogram.max(),
        histogram.len()
    )
}

/// One caller's own view at `rate` single puts/s: a visible put returns once its record is
/// visible to readers, so put call → acknowledgement bounds put-to-visible from above without
/// a reader's wake-up in the measure. The caller waits for each send time spinning (sleeps are
/// coarser than the interval) and is timed from when each put was due, so a late send counts.
fn put_to_visible_ack_latency(
    engine: &Engine,
    stream: &str,
    rate: f64,
    run: Duration,
) -> (Histogram<u64>, u64) {
    let interval = Duration::from_secs_f64(1.0 / rate);
    let total = (rate * run.as_secs_f64()) as u32;
    let data = filler(100);
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    let mut late = 0;
    let handle = engine.stream(stream).unwrap();
    let epoch = Instant::now();
    for i in 0..total {
        let due = epoch + interval * i;
        while Instant::now() < due {
            std::hint::spin_loop();
        }
        if Instant::now() > due + interval {
            late += 1;
        }
        handle
            .put(PutRecord::new("k", &data))
            .durability(Durability::Visible)
            .wait()
            .unwrap();
        histogram
            .record(due.elapsed().as_micros() as u64 + 1)
            .unwrap();
    }
    (histogram, late)
}

/// Durable single puts, one after another from one caller into a 1-shard stream, against the
/// same-run baseline of the device: 100 B written into a file whose blocks are all written
/// and synced beforehand (so each `fdatasync` carries data only, no size or allocation change:
/// the strictest baseline) and `fdatasync`ed, one after another. Baseline, engine, baseline
/// again, so a drift of the virtual disk shows; the ratio is given against both.
fn durable_latency_report(dir: &Path, run: Duration) {
    const BASELINE_FILE: u64 = 16 << 20;
    let baseline = |name: &str| {
        use std::os::unix::fs::FileExt;
        let file = std::fs::File::create(dir.join(name)).unwrap();
        file.write_all_at(&vec![0u8; BASELINE_FILE as usize], 0)
            .unwrap();
        file.sync_all().unwrap();
        let data = filler(100);
        let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        let (started, mut pos) = (Instant::now(), 0u64);
        while started.elapsed() < run {
            let one = Instant::now();
            file.write_all_at(&data, pos).unwrap();
            file.sync_data().unwrap();
            histogram
                .record(one.elapsed().as_micros() as u64 + 1)
                .unwrap();
            pos = (pos + data.len() as u64) % (BASELINE_FILE - data.len() as u64);
        }
        histogram
    };
    let before = baseline("fdatasync-before");
    let engine = engine_real_time(&dir.join("durable-latency"), 1, 0);
    engine
        .create_stream(CreateStream::provisioned("durable", 1))
        .wait()
        .unwrap();
    let data = filler(100);
    let mut puts = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    let started = Instant::now();
    while started.elapsed() < run {
        let one = Instant::now();
        engine
            .stream("durable")
            .unwrap()
            .put(PutRecord::new("k", &data))
            .durability(Durability::Durable)
            .wait()
            .unwrap();
        puts.record(one.elapsed().as_micros() as u64 + 1).unwrap();
    }
    drop(engine);
    let after = baseline("fdatasync-after");
    let line = |h: &Histogram<u64>| {
        format!(
            "p50 {} µs, p99 {} µs, p99.9 {} µs ({} calls)",
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
            h.len()
        )
    };
    let ratio = |base: &Histogram<u64>| {
        puts.value_at_quantile(0.99) as f64 / base.value_at_quantile(0.99) as f64
    };
    let worst = ratio(&before).max(ratio(&after));
    println!(
        "baseline write 100 B + fdatasync, before: {}",
        line(&before)
    );
    println!(
        "durable single 100 B puts, 1 caller, 1 shard: {}",
        line(&puts)
    );
    println!("baseline write 100 B + fdatasync, after: {}", line(&after));
    println!(
        "durable put p99 / baseline fdatasync p99: {:.2} against the baseline before, {:.2} after ({} target 3)",
        ratio(&before),
        ratio(&after),
        if worst < 3.0 { "meets" } else { "ABOVE" }
    );
}

/// Anonymous resident memory of this process (file-backed mappings excluded).
fn rss_anon_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("RssAnon:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

fn memory_report(dir: &Path) {
    const SHARDS: u32 = 1000;
    // Small segments: the figure excludes mapped data, and 1,000 shards of 64 MiB would
    // reserve 128 GB of disk for nothing.
    let engine = engine(&dir.join("memory"), 2, 1 << 20);
    engine
        .create_stream(CreateStream::provisioned("warm-up", 1))
        .wait()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let before = rss_anon_bytes();
    engine
        .create_stream(CreateStream::provisioned("many", SHARDS))
        .wait()
        .unwrap();
    // Let maintenance prepare spare segments, as an idle engine would.
    std::thread::sleep(Duration::from_millis(1500));
    let after = rss_anon_bytes();
    println!(
        "idle memory per open shard with {SHARDS} shards: {:.1} KiB anonymous RSS (target < 256 KiB)",
        after.saturating_sub(before) as f64 / f64::from(SHARDS) / 1024.0
    );
}

/// The reports (memory, latency) run unless a criterion filter is given that does not
/// match `engine_reports` (so `cargo bench --bench engine engine_put_100B` profiles one bench).
fn reports_wanted() -> bool {
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    filter.is_none_or(|f| "engine_reports".contains(f.as_str()))
}

fn main() {
    sluice_benches::mark_run_start();
    let dir = tempfile::Builder::new()
        .prefix("sluice-engine-bench-")
        .tempdir_in(bench_dir())
        .unwrap();
    // First, while the process is fresh: later runs leave freed memory resident, which new
    // allocations would reuse without raising the figure.
    if reports_wanted() {
        memory_report(dir.path());
    }
    let mut c = criterion_config();
    bench_routing(&mut c);
    bench_visible_small_records(&mut c, dir.path());
    bench_durable_four_shards(&mut c, dir.path());
    c.final_summary();
    println!();
    println!(
        "Engine figures ({} mode):",
        if full_mode() { "full" } else { "short" }
    );
    for name in ["partition_keys", "explicit_hash_key"] {
        let function = format!("visible_1_core_4_callers_{name}");
        let Some(secs) = sluice_benches::mean_iteration_secs("engine_put_100B_x500", &function)
        else {
            println!("visible 100 B x 500 ({name}): not measured in this run (filtered out)");
            continue;
        };
        let per_sec = BATCH_RECORDS as f64 / secs;
        let verdict = if per_sec >= 1e7 { "meets" } else { "BELOW" };
        println!(
            "visible 100 B x 500, 1 core, routed by {name}: {per_sec:.0} records/s per core ({verdict} target 10,000,000)"
        );
    }
    print_ratio(
        "durable 1 KiB x 500, 4 shards on 2 cores, vs write+fdatasync/MiB",
        "engine_put_1KiB_x500_durable",
        "sluice_4_shards_2_cores_4_callers",
        "baseline_write_fdatasync_per_MiB",
        (BATCH_RECORDS * (1024 + 8)) as u64,
        0.9,
    );
    if reports_wanted() {
        latency_report(dir.path());
        let run = if full_mode() {
            Duration::from_secs(10)
        } else {
            Duration::from_secs(2)
        };
        durable_latency_report(dir.path(), run);
    }
}

fn bench_dir() -> std::path::PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
