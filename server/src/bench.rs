//! `sluice bench`: drives one shard log with concurrent appenders on a glommio core, then
//! scans everything back zero-copy from another thread, and reopens the log to time recovery.

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use sluice_storage::{
    Durability, GlommioIo, LogConfig, LogStats, ReadLimits, RecordIn, ShardLog, SystemClock,
    block_on, spawn,
};
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Options of `sluice bench`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Records to write.
    #[arg(long, default_value_t = 500_000)]
    records: u64,
    /// Bytes of data per record (the 8-byte key comes on top).
    #[arg(long, default_value_t = 1024)]
    record_size: usize,
    /// Records per appended batch.
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Concurrent appenders on the shard's core (durable appends share syncs).
    #[arg(long, default_value_t = 4)]
    appenders: usize,
    /// visible or durable.
    #[arg(long, default_value = "visible")]
    durability: String,
    /// Segment file size in MiB.
    #[arg(long, default_value_t = 64)]
    segment_mib: u64,
    /// Retention in seconds: a short one makes the ring wrap and recycle segments during the
    /// run (the steady state of a long-running shard).
    #[arg(long, default_value_t = 24 * 3600)]
    retention_secs: u64,
    /// Start background writeback every this many KiB of appended data (0: never).
    #[arg(long, default_value_t = 1024)]
    writeback_kib: u64,
    /// Data directory; a fresh temporary directory (removed afterwards) when omitted.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Hide the progress bars.
    #[arg(long)]
    quiet: bool,
}

struct WriteResult {
    elapsed: Duration,
    latency_us: Histogram<u64>,
    stats: LogStats,
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let durability = match args.durability.as_str() {
        "visible" => Durability::Visible,
        "durable" => Durability::Durable,
        other => bail!("--durability must be visible or durable, not {other:?}"),
    };
    if args.batch == 0 || args.records == 0 || args.appenders == 0 {
        bail!("--records, --batch and --appenders must be positive");
    }
    let temp = tempfile::Builder::new().prefix("sluice-bench-").tempdir()?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    let record_bytes_max = args.record_size as u64 + 8;
    let config = LogConfig {
        segment_size_bytes: args.segment_mib * 1024 * 1024,
        record_size_bytes_max: record_bytes_max.max(1024 * 1024),
        segments_max: 1 << 16,
        retention_ms: args.retention_secs * 1000,
        writeback_interval_bytes: args.writeback_kib * 1024,
        ..LogConfig::default()
    };
    config.validate().context("configuration")?;
    let bytes_total = args.records * args.record_size as u64;
    println!(
        "sluice bench: {} records of {} B in batches of {}, {} appenders, {:?}, {} MiB segments, in {}",
        args.records,
        args.record_size,
        args.batch,
        args.appenders,
        durability,
        args.segment_mib,
        dir.display()
    );
    let write = write_phase(&args, &dir, config.clone(), durability)?;
    report("write", args.records, bytes_total, write.elapsed);
    report_latency("append latency (one batch)", &write.latency_us);
    let s = write.stats;
    println!(
        "segments: {} files created ({} by a roll, on the append path), {} recycled",
        s.files_created, s.files_created_on_roll, s.segments_recycled
    );
    let (scan_elapsed, scanned) = read_phase(&args, &dir, config.clone())?;
    let scanned_bytes = scanned * args.record_size as u64;
    report(
        "scan (zero-copy, checksums verified)",
        scanned,
        scanned_bytes,
        scan_elapsed,
    );
    let (recovery_elapsed, report_line) = recovery_phase(&dir, config)?;
    println!(
        "recovery: reopened in {:.1} ms ({report_line})",
        recovery_elapsed.as_secs_f64() * 1e3
    );
    Ok(())
}

fn progress(args: &BenchArgs, label: &'static str) -> ProgressBar {
    if args.quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(args.records);
    let style = ProgressStyle::with_template(
        "{msg:>6} [{bar:40}] {pos}/{len} records ({per_sec}, eta {eta})",
    )
    .expect("static template")
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(label);
    bar
}

/// Record payload: its sequence number, then a fixed pseudo-random filler.
fn filler(len: usize) -> Vec<u8> {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn write_phase(
    args: &BenchArgs,
    dir: &Path,
    config: LogConfig,
    durability: Durability,
) -> anyhow::Result<WriteResult> {
    let bar = progress(args, "write");
    let args = args.clone();
    let dir = dir.to_path_buf();
    let result = block_on(async move {
        let log = Rc::new(ShardLog::open(GlommioIo, &dir, config, Arc::new(SystemClock)).await?);
        let histogram = Rc::new(RefCell::new(
            Histogram::<u64>::new(3).expect("3 significant digits"),
        ));
        let batches = args.records.div_ceil(args.batch as u64);
        let next_batch = Rc::new(std::cell::Cell::new(0u64));
        let started = Instant::now();
        let tasks: Vec<_> = (0..args.appenders)
            .map(|_| {
                let (log, histogram, next_batch, bar) = (
                    log.clone(),
                    histogram.clone(),
                    next_batch.clone(),
                    bar.clone(),
                );
                let args = args.clone();
                spawn(async move {
                    append_batches(
                        &log,
                        &args,
                        batches,
                        &next_batch,
                        &histogram,
                        &bar,
                        durability,
                    )
                    .await
                })
            })
            .collect();
        for task in tasks {
            task.await?;
        }
        log.sync().await?;
        let elapsed = started.elapsed();
        bar.finish_and_clear();
        let latency_us = histogram.borrow().clone();
        log.maintain().await?;
        let stats = log.stats();
        anyhow::Ok(WriteResult {
            elapsed,
            latency_us,
            stats,
        })
    })?;
    Ok(result)
}

async fn append_batches(
    log: &ShardLog<GlommioIo>,
    args: &BenchArgs,
    batches: u64,
    next_batch: &std::cell::Cell<u64>,
    histogram: &RefCell<Histogram<u64>>,
    bar: &ProgressBar,
    durability: Durability,
) -> anyhow::Result<()> {
    let data = filler(args.record_size);
    let keys: Vec<[u8; 8]> = (0..args.batch as u64).map(|i| i.to_le_bytes()).collect();
    loop {
        let batch = next_batch.get();
        if batch >= batches {
            return Ok(());
        }
        next_batch.set(batch + 1);
        let first = batch * args.batch as u64;
        let count = (args.records - first).min(args.batch as u64) as usize;
        let records: Vec<RecordIn<'_>> = (0..count)
            .map(|i| RecordIn {
                key: &keys[i],
                data: &data,
            })
            .collect();
        let started = Instant::now();
        log.append(&records, durability).await?;
        if batch % 16 == 15 {
            // The owner's periodic housekeeping: retention and a spare segment ready.
            log.maintain().await?;
        }
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        histogram.borrow_mut().record(micros.max(1)).ok();
        bar.inc(count as u64);
    }
}

/// Scans every unexpired record from another thread; returns the time and the record count.
fn read_phase(args: &BenchArgs, dir: &Path, config: LogConfig) -> anyhow::Result<(Duration, u64)> {
    let bar = progress(args, "scan");
    let (dir, records, record_size) = (dir.to_path_buf(), args.records, args.record_size);
    // Open on a glommio core (the owner), then scan from a plain thread, as readers do.
    let (tx, rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let owner = std::thread::spawn(move || {
        block_on(async move {
            let log = ShardLog::open(GlommioIo, &dir, config, Arc::new(SystemClock)).await?;
            tx.send(log.reader()).ok();
            done_rx.recv().ok();
            anyhow::Ok(())
        })
    });
    let reader = rx.recv().context("the owner did not open the log")?;
    let started = Instant::now();
    let first = reader.trim_horizon();
    // With a short --retention-secs the oldest records have expired: scan what is left.
    let expected = records - first;
    bar.set_position(first);
    let (mut seq, mut seen, mut bytes) = (first, 0u64, 0u64);
    while seq < reader.next_seq() {
        let batch = reader.read(
            seq,
            ReadLimits {
                records_max: 100_000,
                bytes_max: 64 << 20,
            },
        )?;
        for record in batch.records() {
            if record.seq != seq || record.data.len() != record_size {
                bail!(
                    "record {seq} came back wrong (seq {}, {} bytes)",
                    record.seq,
                    record.data.len()
                );
            }
            bytes += record.data.len() as u64;
            seq += 1;
            seen += 1;
        }
        bar.inc(batch.len() as u64);
    }
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    done_tx.send(()).ok();
    owner.join().expect("owner thread")?;
    if seen != expected || bytes != expected * record_size as u64 {
        bail!("scan saw {seen} records / {bytes} bytes, expected {expected}");
    }
    Ok((elapsed, seen))
}

fn recovery_phase(dir: &Path, config: LogConfig) -> anyhow::Result<(Duration, String)> {
    let dir = dir.to_path_buf();
    block_on(async move {
        let started = Instant::now();
        let log = ShardLog::open(GlommioIo, &dir, config, Arc::new(SystemClock)).await?;
        let elapsed = started.elapsed();
        let r = log.recovery_report();
        let line = format!(
            "{} sealed segments from footers, {} scanned ({:.1} MiB verified)",
            r.sealed_segments,
            r.scanned_segments,
            r.scanned_bytes as f64 / (1 << 20) as f64
        );
        anyhow::Ok((elapsed, line))
    })
}

fn report(phase: &str, records: u64, bytes: u64, elapsed: Duration) {
    let secs = elapsed.as_secs_f64();
    println!(
        "{phase}: {:.0} records/s, {:.1} MB/s ({:.3} s)",
        records as f64 / secs,
        bytes as f64 / secs / 1e6,
        secs
    );
}

fn report_latency(label: &str, h: &Histogram<u64>) {
    println!(
        "{label}: p50 {} µs, p99 {} µs, p99.9 {} µs, max {} µs ({} samples)",
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max(),
        h.len()
    );
}
