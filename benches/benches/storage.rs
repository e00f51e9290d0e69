//! Storage benches, each beside its physical baseline measured in the same run:
//! visible and durable appends of 1 KiB records in batches of 500, a zero-copy scan, and
//! recovery scanning.

use criterion::{Criterion, Throughput};
use sluice_benches::{
    SequentialWriter, criterion_config, filler, full_mode, mean_iteration_secs, print_ratio,
};
use sluice_storage::runtime::{block_on, spawn};
use sluice_storage::{
    Durability, GlommioIo, LogConfig, ReadLimits, RecordIn, ShardLog, SystemClock,
};
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

const RECORD_BYTES: usize = 1024;
const BATCH_RECORDS: usize = 500;
const SEGMENT_BYTES: u64 = 64 << 20;
/// The baseline writes wrap in a file about as large as the log's ring in steady state
/// (one second of retention at a few GB/s), so both rewrite pages the page cache holds.
const BASELINE_FILE_BYTES: u64 = 2 << 30;

fn log_config() -> LogConfig {
    // One-second retention and a retention pass per segment's worth of appends keep the ring
    // wrapping and recycling during the run, as a long-running shard does.
    LogConfig {
        segment_size_bytes: SEGMENT_BYTES,
        retention_ms: 1000,
        ..LogConfig::default()
    }
}

/// Bytes of key + data in one batch (what the user hands over).
fn batch_payload_bytes() -> u64 {
    (BATCH_RECORDS * (RECORD_BYTES + 8)) as u64
}

/// A shard log kept open on its own glommio core for the whole bench, as in the engine; the
/// bench thread asks it to run appends and gets back the time they took.
struct Owner {
    requests: std::sync::mpsc::Sender<(u64, u64, Durability, std::sync::mpsc::Sender<Duration>)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Owner {
    fn start(dir: &Path) -> Owner {
        let (tx, rx) =
            std::sync::mpsc::channel::<(u64, u64, Durability, std::sync::mpsc::Sender<Duration>)>();
        let dir = dir.to_path_buf();
        let thread = std::thread::spawn(move || {
            block_on(async move {
                let log = Rc::new(
                    ShardLog::open(GlommioIo, &dir, log_config(), Arc::new(SystemClock))
                        .await
                        .unwrap(),
                );
                while let Ok((batches, appenders, durability, reply)) = rx.recv() {
                    let elapsed = append_run(&log, batches, appenders, durability).await;
                    reply.send(elapsed).unwrap();
                }
            })
        });
        Owner {
            requests: tx,
            thread: Some(thread),
        }
    }

    fn append(&self, batches: u64, appenders: u64, durability: Durability) -> Duration {
        let (reply, elapsed) = std::sync::mpsc::channel();
        self.requests
            .send((batches, appenders, durability, reply))
            .unwrap();
        elapsed.recv().unwrap()
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        let (requests, _) = std::sync::mpsc::channel();
        drop(std::mem::replace(&mut self.requests, requests));
        self.thread.take().unwrap().join().unwrap();
    }
}

/// Appends `batches` batches with `appenders` concurrent tasks; returns the time taken.
async fn append_run(
    log: &Rc<ShardLog<GlommioIo>>,
    batches: u64,
    appenders: u64,
    durability: Durability,
) -> Duration {
    let started = Instant::now();
    let tasks: Vec<_> = (0..appenders)
        .map(|a| {
            let log = log.clone();
            let share = batches / appenders + u64::from(a < batches % appenders);
            spawn(async move {
                let data = filler(RECORD_BYTES);
                let keys: Vec<[u8; 8]> = (0..BATCH_RECORDS as u64).map(u64::to_le_bytes).collect();
                let records: Vec<RecordIn<'_>> = keys
                    .iter()
                    .map(|k| RecordIn {
                        key: k,
                        data: &data,
                    })
                    .collect();
                for i in 0..share {
                    log.append(&records, durability).await.unwrap();
                    if i % 16 == 15 {
                        // The owner's periodic housekeeping: retention and a spare segment.
                        log.maintain().await.unwrap();
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await;
    }
    started.elapsed()
}

fn bench_appends(c: &mut Criterion, dir: &Path) {
    let batch_bytes = batch_payload_bytes();
    let chunk = filler(batch_bytes as usize);
    let mut group = c.benchmark_group("append_1KiB_x500");
    group.throughput(Throughput::Bytes(batch_bytes));
    let mut buffered =
        SequentialWriter::new(&dir.join("baseline-buffered"), BASELINE_FILE_BYTES, None);
    group.bench_function("baseline_sequential_buffered_write", |b| {
        b.iter_custom(|iters| buffered.write(&chunk, iters))
    });
    let visible = Owner::start(&dir.join("visible"));
    group.bench_function("sluice_visible_4_appenders", |b| {
        b.iter_custom(|iters| visible.append(iters, 4, Durability::Visible))
    });
    drop(visible);
    let mut synced = SequentialWriter::new(
        &dir.join("baseline-synced"),
        BASELINE_FILE_BYTES,
        Some(1 << 20),
    );
    group.bench_function("baseline_write_fdatasync_per_MiB", |b| {
        b.iter_custom(|iters| synced.write(&chunk, iters))
    });
    let durable = Owner::start(&dir.join("durable"));
    group.bench_function("sluice_durable_group_commit_4_appenders", |b| {
        b.iter_custom(|iters| durable.append(iters, 4, Durability::Durable))
    });
    group.finish();
}

/// Writes `bytes` of 1 KiB records into a log with no retention, sealed and synced.
fn write_scan_log(dir: &Path, bytes: u64, config: LogConfig) {
    block_on(async move {
        let log = ShardLog::open(GlommioIo, dir, config, Arc::new(SystemClock))
            .await
            .unwrap();
        let data = filler(RECORD_BYTES);
        let keys: Vec<[u8; 8]> = (0..BATCH_RECORDS as u64).map(u64::to_le_bytes).collect();
        let records: Vec<RecordIn<'_>> = keys
            .iter()
            .map(|k| RecordIn {
                key: k,
                data: &data,
            })
            .collect();
        for _ in 0..bytes.div_ceil(batch_payload_bytes()) {
            log.append(&records, Durability::Visible).await.unwrap();
        }
        log.sync().await.unwrap();
    });
}

fn bench_scan(c: &mut Criterion, dir: &Path) {
    let volume = scan_volume();
    let scan_dir = dir.join("scan");
    write_scan_log(
        &scan_dir,
        volume,
        LogConfig {
            segment_size_bytes: SEGMENT_BYTES,
            ..LogConfig::default()
        },
    );
    // The owner keeps the log open on its core; the bench thread reads, as any reader does.
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let owner = std::thread::spawn(move || {
        block_on(async move {
            let config = LogConfig {
                segment_size_bytes: SEGMENT_BYTES,
                ..LogConfig::default()
            };
            let log = ShardLog::open(GlommioIo, &scan_dir, config, Arc::new(SystemClock))
                .await
                .unwrap();
            tx.send(log.reader()).unwrap();
            stop_rx.recv().ok();
        })
    });
    let reader = rx.recv().unwrap();
    let total = reader.next_seq();
    let bytes = total * RECORD_BYTES as u64;
    let source = filler(bytes as usize);
    // Touch every page up front, so the baseline measures copying, not page faults.
    let mut target = vec![1u8; bytes as usize];
    let mut group = c.benchmark_group(scan_group());
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
            started.elapsed()
        })
    });
    group.bench_function("sluice_zero_copy_scan_verified", |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            for _ in 0..iters {
                let (mut seq, mut seen) = (0u64, 0u64);
                while seq < total {
                    let batch = reader
                        .read(
                            seq,
                            ReadLimits {
                                records_max: 1 << 20,
                                bytes_max: 64 << 20,
                            },
                        )
                        .unwrap();
                    for record in batch.records() {
                        seen += record.data.len() as u64;
                    }
                    seq = batch.next_seq();
                }
                assert_eq!(seen, bytes);
            }
            started.elapsed()
        })
    });
    group.finish();
    stop_tx.send(()).unwrap();
    owner.join().unwrap();
}

/// Recovery must verify every batch of an unsealed segment: a log whose single 1 GiB segment
/// is still active. The seal that reopening writes is wiped before each sample.
fn bench_recovery(c: &mut Criterion, dir: &Path) {
    let volume = scan_volume();
    let segment = (volume + (64 << 20)).next_power_of_two();
    let config = LogConfig {
        segment_size_bytes: segment,
        ..LogConfig::default()
    };
    let rec_dir = dir.join("recovery");
    write_scan_log(&rec_dir, volume, config.clone());
    let mut group = c.benchmark_group("recovery_scan");
    group.throughput(Throughput::Bytes(volume));
    group.bench_function("reopen_unsealed", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                unseal(&rec_dir.join("seg-00000000.log"), segment);
                let config = config.clone();
                let dir = rec_dir.clone();
                total += block_on(async move {
                    let started = Instant::now();
                    let log = ShardLog::open(GlommioIo, &dir, config, Arc::new(SystemClock))
                        .await
                        .unwrap();
                    let t = started.elapsed();
                    assert_eq!(log.recovery_report().scanned_segments, 1);
                    t
                });
            }
            total
        })
    });
    group.finish();
}

/// Removes the seal (footer and trailer) of the first segment, so it must be scanned.
fn unseal(path: &Path, segment: u64) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::options()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut trailer = [0u8; 64];
    file.read_exact_at(&mut trailer, segment - 64).unwrap();
    if &trailer[..8] == b"SLUICEND" {
        let footer_pos = u64::from_le_bytes(trailer[16..24].try_into().unwrap());
        let footer_len = u64::from_le_bytes(trailer[24..32].try_into().unwrap());
        file.write_all_at(&vec![0u8; footer_len as usize], footer_pos)
            .unwrap();
        file.write_all_at(&[0u8; 64], segment - 64).unwrap();
    }
    // Later samples' reopen starts a second segment; drop it so the log stays one segment.
    let second = path.with_file_name("seg-00000001.log");
    let _ = std::fs::remove_file(second);
}

fn main() {
    sluice_benches::mark_run_start();
    let dir = tempfile::Builder::new()
        .prefix("sluice-bench-")
        .tempdir_in(bench_dir())
        .unwrap();
    let mut c = criterion_config();
    bench_appends(&mut c, dir.path());
    bench_scan(&mut c, dir.path());
    bench_recovery(&mut c, dir.path());
    c.final_summary();
    let volume = scan_volume();
    println!();
    println!(
        "Same-run ratios ({} mode):",
        if full_mode() { "full" } else { "short" }
    );
    let batch = batch_payload_bytes();
    print_ratio(
        "visible append vs buffered write",
        "append_1KiB_x500",
        "sluice_visible_4_appenders",
        "baseline_sequential_buffered_write",
        batch,
        0.8,
    );
    print_ratio(
        "durable append vs write+fdatasync/MiB",
        "append_1KiB_x500",
        "sluice_durable_group_commit_4_appenders",
        "baseline_write_fdatasync_per_MiB",
        batch,
        0.8,
    );
    print_ratio(
        "zero-copy scan vs memcpy",
        &scan_group(),
        "sluice_zero_copy_scan_verified",
        "baseline_memcpy",
        volume,
        0.5,
    );
    if let Some(secs) = mean_iteration_secs("recovery_scan", "reopen_unsealed") {
        let per_gib = secs * (1u64 << 30) as f64 / volume as f64;
        println!(
            "recovery scan: {:.0} MB/s = {per_gib:.3} s per GiB",
            volume as f64 / secs / 1e6
        );
    }
}

fn scan_volume() -> u64 {
    if full_mode() { 1 << 30 } else { 256 << 20 }
}

fn scan_group() -> String {
    format!("scan_{}MiB_1KiB_records", scan_volume() >> 20)
}

/// Benches write gigabytes: keep them on the target directory's disk, not a RAM-backed /tmp.
fn bench_dir() -> std::path::PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
