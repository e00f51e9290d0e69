//! Storage benches, each beside its physical baseline measured in the same run:
//! visible and durable appends of 1 KiB records in batches of 500, a zero-copy scan, and
//! recovery scanning.

use criterion::{Criterion, Throughput};
use sluice_benches::{SequentialWriter, criterion_config, filler, full_mode, print_ratio, record};
use sluice_storage::{
    Durability, GlommioIo, LogConfig, ReadLimits, RecordIn, ShardLog, SystemClock, block_on, spawn,
};
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

const RECORD_BYTES: usize = 1024;
const BATCH_RECORDS: usize = 500;
const SEGMENT_BYTES: u64 = 64 << 20;

fn log_config() -> LogConfig {
    // One-second retention and a retention pass per segment's worth of appends keep the ring
    // wrapping and recycling during the run, as a long-running shard does.
    LogConfig { segment_size_bytes: SEGMENT_BYTES, retention_ms: 1000, ..LogConfig::default() }
}

/// Bytes of key + data in one batch (what the user hands over).
fn batch_payload_bytes() -> u64 {
    (BATCH_RECORDS * (RECORD_BYTES + 8)) as u64
}

/// Appends `batches` batches with `appenders` concurrent tasks; returns the time taken.
fn append_run(dir: &Path, batches: u64, appenders: u64, durability: Durability) -> Duration {
    block_on(async move {
        let log = Rc::new(ShardLog::open(GlommioIo, dir, log_config(), Arc::new(SystemClock)).await.unwrap());
        let started = Instant::now();
        let tasks: Vec<_> = (0..appenders)
            .map(|a| {
                let log = log.clone();
                let share = batches / appenders + u64::from(a < batches % appenders);
                spawn(async move {
                    let data = filler(RECORD_BYTES);
                    let keys: Vec<[u8; 8]> = (0..BATCH_RECORDS as u64).map(u64::to_le_bytes).collect();
                    let records: Vec<RecordIn<'_>> = keys.iter().map(|k| RecordIn { key: k, data: &data }).collect();
                    for i in 0..share {
                        log.append(&records, durability).await.unwrap();
                        if i % 64 == 63 {
                            log.enforce_retention().await.unwrap();
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await;
        }
        started.elapsed()
    })
}

fn bench_appends(c: &mut Criterion, dir: &Path) {
    let batch_bytes = batch_payload_bytes();
    let chunk = filler(batch_bytes as usize);
    let mut group = c.benchmark_group("append_1KiB_x500");
    group.throughput(Throughput::Bytes(batch_bytes));
    let mut buffered = SequentialWriter::new(&dir.join("baseline-buffered"), SEGMENT_BYTES, None);
    group.bench_function("baseline_sequential_buffered_write", |b| {
        b.iter_custom(|iters| {
            let t = buffered.write(&chunk, iters);
            record("baseline_visible", t, iters * batch_bytes);
            t
        })
    });
    let visible_dir = dir.join("visible");
    group.bench_function("sluice_visible", |b| {
        b.iter_custom(|iters| {
            let t = append_run(&visible_dir, iters, 1, Durability::Visible);
            record("sluice_visible", t, iters * batch_bytes);
            t
        })
    });
    let mut synced = SequentialWriter::new(&dir.join("baseline-synced"), SEGMENT_BYTES, Some(1 << 20));
    group.bench_function("baseline_write_fdatasync_per_MiB", |b| {
        b.iter_custom(|iters| {
            let t = synced.write(&chunk, iters);
            record("baseline_durable", t, iters * batch_bytes);
            t
        })
    });
    let durable_dir = dir.join("durable");
    group.bench_function("sluice_durable_group_commit_4_appenders", |b| {
        b.iter_custom(|iters| {
            let t = append_run(&durable_dir, iters, 4, Durability::Durable);
            record("sluice_durable", t, iters * batch_bytes);
            t
        })
    });
    group.finish();
}

/// Writes `bytes` of 1 KiB records into a log with no retention, sealed and synced.
fn write_scan_log(dir: &Path, bytes: u64, config: LogConfig) {
    block_on(async move {
        let log = ShardLog::open(GlommioIo, dir, config, Arc::new(SystemClock)).await.unwrap();
        let data = filler(RECORD_BYTES);
        let keys: Vec<[u8; 8]> = (0..BATCH_RECORDS as u64).map(u64::to_le_bytes).collect();
        let records: Vec<RecordIn<'_>> = keys.iter().map(|k| RecordIn { key: k, data: &data }).collect();
        for _ in 0..bytes.div_ceil(batch_payload_bytes()) {
            log.append(&records, Durability::Visible).await.unwrap();
        }
        log.sync().await.unwrap();
    });
}

fn bench_scan(c: &mut Criterion, dir: &Path) {
    let volume: u64 = if full_mode() { 1 << 30 } else { 256 << 20 };
    let scan_dir = dir.join("scan");
    write_scan_log(&scan_dir, volume, LogConfig { segment_size_bytes: SEGMENT_BYTES, ..LogConfig::default() });
    // The owner keeps the log open on its core; the bench thread reads, as any reader does.
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let owner = std::thread::spawn(move || {
        block_on(async move {
            let config = LogConfig { segment_size_bytes: SEGMENT_BYTES, ..LogConfig::default() };
            let log = ShardLog::open(GlommioIo, &scan_dir, config, Arc::new(SystemClock)).await.unwrap();
            tx.send(log.reader()).unwrap();
            stop_rx.recv().ok();
        })
    });
    let reader = rx.recv().unwrap();
    let total = reader.next_seq();
    let bytes = total * RECORD_BYTES as u64;
    let source = filler(bytes as usize);
    let mut target = vec![0u8; bytes as usize];
    let mut group = c.benchmark_group(format!("scan_{}MiB_1KiB_records", volume >> 20));
    group.throughput(Throughput::Bytes(bytes));
    group.bench_function("baseline_memcpy", |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            for _ in 0..iters {
                for (dst, src) in target.chunks_mut(1 << 20).zip(source.chunks(1 << 20)) {
                    dst.copy_from_slice(src);
                }
                std::hint::black_box(&target);
            }
            let t = started.elapsed();
            record("baseline_memcpy", t, iters * bytes);
            t
        })
    });
    group.bench_function("sluice_zero_copy_scan_verified", |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            for _ in 0..iters {
                let (mut seq, mut seen) = (0u64, 0u64);
                while seq < total {
                    let batch = reader.read(seq, ReadLimits { records_max: 1 << 20, bytes_max: 64 << 20 }).unwrap();
                    for record in batch.records() {
                        seen += record.data.len() as u64;
                    }
                    seq = batch.next_seq();
                }
                assert_eq!(seen, bytes);
            }
            let t = started.elapsed();
            record("sluice_scan", t, iters * bytes);
            t
        })
    });
    group.finish();
    stop_tx.send(()).unwrap();
    owner.join().unwrap();
}

/// Recovery must verify every batch of an unsealed segment: a log whose single 1 GiB segment
/// is still active. The seal that reopening writes is wiped before each sample.
fn bench_recovery(c: &mut Criterion, dir: &Path) {
    let volume: u64 = if full_mode() { 1 << 30 } else { 256 << 20 };
    let segment = (volume + (64 << 20)).next_power_of_two();
    let config = LogConfig { segment_size_bytes: segment, ..LogConfig::default() };
    let rec_dir = dir.join("recovery");
    write_scan_log(&rec_dir, volume, config.clone());
    let mut group = c.benchmark_group("recovery_scan");
    group.throughput(Throughput::Bytes(volume));
    group.bench_function(format!("reopen_{}MiB_unsealed", volume >> 20), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                unseal(&rec_dir.join("seg-00000000.log"), segment);
                let config = config.clone();
                let dir = rec_dir.clone();
                total += block_on(async move {
                    let started = Instant::now();
                    let log = ShardLog::open(GlommioIo, &dir, config, Arc::new(SystemClock)).await.unwrap();
                    let t = started.elapsed();
                    assert_eq!(log.recovery_report().scanned_segments, 1);
                    t
                });
            }
            record("recovery", total, iters * volume);
            total
        })
    });
    group.finish();
}

/// Removes the seal (footer and trailer) of the first segment, so it must be scanned.
fn unseal(path: &Path, segment: u64) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::options().read(true).write(true).open(path).unwrap();
    let mut trailer = [0u8; 64];
    file.read_exact_at(&mut trailer, segment - 64).unwrap();
    if &trailer[..8] == b"SLUICEND" {
        let footer_pos = u64::from_le_bytes(trailer[16..24].try_into().unwrap());
        let footer_len = u64::from_le_bytes(trailer[24..32].try_into().unwrap());
        file.write_all_at(&vec![0u8; footer_len as usize], footer_pos).unwrap();
        file.write_all_at(&[0u8; 64], segment - 64).unwrap();
    }
    // Later samples' reopen starts a second segment; drop it so the log stays one segment.
    let second = path.with_file_name("seg-00000001.log");
    let _ = std::fs::remove_file(second);
}

fn main() {
    let dir = tempfile::Builder::new().prefix("sluice-bench-").tempdir_in(bench_dir()).unwrap();
    let mut c = criterion_config();
    bench_appends(&mut c, dir.path());
    bench_scan(&mut c, dir.path());
    bench_recovery(&mut c, dir.path());
    c.final_summary();
    println!();
    println!("Same-run ratios ({} mode):", if full_mode() { "full" } else { "short" });
    print_ratio("visible append vs buffered write", "sluice_visible", "baseline_visible", 0.8);
    print_ratio("durable append vs write+fdatasync/MiB", "sluice_durable", "baseline_durable", 0.8);
    print_ratio("zero-copy scan vs memcpy", "sluice_scan", "baseline_memcpy", 0.5);
    if let Some(mb_s) = sluice_benches::throughput_mb_s("recovery") {
        println!("recovery scan: {mb_s:.0} MB/s = {:.2} s per GiB", (1u64 << 30) as f64 / 1e6 / mb_s);
    }
}

/// Benches write gigabytes: keep them on the target directory's disk, not a RAM-backed /tmp.
fn bench_dir() -> std::path::PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
