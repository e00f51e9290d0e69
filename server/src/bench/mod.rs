//! `sluice bench`: drives the engine the way an embedding application does. Caller threads put
//! batches into a stream (routed by partition key), then every shard is read back zero-copy
//! through iterators and checked, then the engine is reopened and the reopen timed.

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use sluice_core::{CreateStream, Durability, Engine, EngineConfig, IteratorStart, PutRecord};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod endpoint;

const STREAM: &str = "bench";

/// Options of `sluice bench`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Records to write.
    #[arg(long, default_value_t = 500_000)]
    pub(crate) records: u64,
    /// Bytes of data per record, at least 8 (a partition key of about 10 characters comes on
    /// top).
    #[arg(long, default_value_t = 1024)]
    pub(crate) record_size: usize,
    /// Records per put_batch call (1..=500).
    #[arg(long, default_value_t = 500)]
    pub(crate) batch: usize,
    /// Shards of the stream.
    #[arg(long, default_value_t = 4)]
    pub(crate) shards: u32,
    /// Engine core threads (0: one per CPU).
    #[arg(long, default_value_t = 0)]
    cores: usize,
    /// Application threads calling put_batch concurrently.
    #[arg(long, default_value_t = 4)]
    callers: usize,
    /// visible or durable.
    #[arg(long, default_value = "visible")]
    durability: String,
    /// Segment file size in MiB.
    #[arg(long, default_value_t = 64)]
    segment_mib: u64,
    /// Data directory; a fresh temporary directory (removed afterwards) when omitted.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Hide the progress bars.
    #[arg(long)]
    pub(crate) quiet: bool,
    /// Drive a Kinesis endpoint (`http://host:port`, ours or another) over the wire instead
    /// of an embedded engine.
    #[arg(long)]
    endpoint: Option<String>,
    /// With --endpoint: keep-alive connections sending PutRecords concurrently.
    #[arg(long, default_value_t = 16)]
    pub(crate) connections: usize,
    /// With --endpoint: the load generator's threads.
    #[arg(long, default_value_t = 1)]
    pub(crate) client_threads: usize,
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let durability = match args.durability.as_str() {
        "visible" => Durability::Visible,
        "durable" => Durability::Durable,
        other => bail!("--durability must be visible or durable, not {other:?}"),
    };
    if !(1..=500).contains(&args.batch)
        || args.records == 0
        || args.callers == 0
        || args.shards == 0
    {
        bail!("--batch must be in 1..=500; --records, --callers and --shards must be positive");
    }
    if args.record_size < 8 {
        bail!("--record-size must be at least 8 (each record carries its number, for the check)");
    }
    if let Some(endpoint) = &args.endpoint {
        return endpoint::run(&args, endpoint);
    }
    let temp = tempfile::Builder::new().prefix("sluice-bench-").tempdir()?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    let engine = open(&args, &dir)?;
    engine
        .create_stream_blocking(CreateStream::provisioned(STREAM, args.shards))
        .context("create the bench stream (use an empty --dir)")?;
    println!(
        "sluice bench: {} records of {} B in batches of {}, {} shards on {} cores, {} caller threads, {:?}, {} MiB segments, in {}",
        args.records,
        args.record_size,
        args.batch,
        args.shards,
        engine.core_count(),
        args.callers,
        durability,
        args.segment_mib,
        dir.display()
    );
    let bytes_total = args.records * args.record_size as u64;
    let (elapsed, latency_us) = write_phase(&args, &engine, durability)?;
    report("put", args.records, bytes_total, elapsed);
    report_latency("put_batch latency", &latency_us);
    let started = Instant::now();
    let scanned = read_phase(&args, &engine)?;
    report(
        "read (zero-copy, checksums verified)",
        scanned,
        scanned * args.record_size as u64,
        started.elapsed(),
    );
    drop(engine);
    let started = Instant::now();
    let engine = open(&args, &dir)?;
    let reopened = started.elapsed();
    let summary = engine.describe_stream_summary(STREAM)?;
    println!(
        "reopen: {:.1} ms for {} shards (sealed segments open from their footers; the rest are scanned)",
        reopened.as_secs_f64() * 1e3,
        summary.open_shard_count
    );
    Ok(())
}

fn open(args: &BenchArgs, dir: &Path) -> anyhow::Result<Engine> {
    let mut config = EngineConfig::new(dir);
    config.cores = args.cores;
    config.segment_size_bytes = args.segment_mib * 1024 * 1024;
    Engine::open(config).context("open the engine")
}

pub(crate) fn progress(args: &BenchArgs, label: &'static str, total: u64) -> ProgressBar {
    if args.quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    let style = ProgressStyle::with_template(
        "{msg:>6} [{bar:40}] {pos}/{len} records ({per_sec}, eta {eta})",
    )
    .expect("static template")
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(label);
    bar
}

/// Record `i`'s data: its number, then a fixed pseudo-random filler, so reads can check it.
fn record_data(i: u64, len: usize, filler: &[u8]) -> Vec<u8> {
    let mut data = filler[..len].to_vec();
    data[..8].copy_from_slice(&i.to_le_bytes());
    data
}

pub(crate) fn filler(len: usize) -> Vec<u8> {
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

/// Callers take batch numbers from a shared counter until all records are put.
fn write_phase(
    args: &BenchArgs,
    engine: &Engine,
    durability: Durability,
) -> anyhow::Result<(Duration, Histogram<u64>)> {
    let bar = progress(args, "put", args.records);
    let next_batch = AtomicU64::new(0);
    let batches = args.records.div_ceil(args.batch as u64);
    let histogram = Mutex::new(Histogram::<u64>::new(3).expect("3 significant digits"));
    let filler = filler(args.record_size);
    let started = Instant::now();
    std::thread::scope(|scope| {
        let callers: Vec<_> = (0..args.callers)
            .map(|_| {
                scope.spawn(|| -> anyhow::Result<()> {
                    let mut local = Histogram::<u64>::new(3).expect("3 significant digits");
                    loop {
                        let batch = next_batch.fetch_add(1, Ordering::Relaxed);
                        if batch >= batches {
                            break;
                        }
                        let first = batch * args.batch as u64;
                        let count = (args.records - first).min(args.batch as u64);
                        let keys: Vec<String> =
                            (first..first + count).map(|i| format!("pk-{i}")).collect();
                        let data: Vec<Vec<u8>> = (first..first + count)
                            .map(|i| record_data(i, args.record_size, &filler))
                            .collect();
                        let records: Vec<PutRecord<'_>> = keys
                            .iter()
                            .zip(&data)
                            .map(|(k, d)| PutRecord::new(k, d))
                            .collect();
                        let put_started = Instant::now();
                        let results =
                            engine.put_batch_with_blocking(STREAM, &records, durability)?;
                        let micros =
                            u64::try_from(put_started.elapsed().as_micros()).unwrap_or(u64::MAX);
                        local.record(micros.max(1)).ok();
                        if let Some(failed) = results.iter().find_map(|r| r.as_ref().err()) {
                            bail!("a record failed: {failed}");
                        }
                        bar.inc(count);
                    }
                    histogram
                        .lock()
                        .expect("no panics while held")
                        .add(&local)
                        .ok();
                    Ok(())
                })
            })
            .collect();
        callers
            .into_iter()
            .try_for_each(|c| c.join().expect("caller thread"))
    })?;
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    Ok((
        elapsed,
        histogram.into_inner().expect("no panics while held"),
    ))
}

/// Reads every shard from its trim horizon, one thread per shard, checking every record.
fn read_phase(args: &BenchArgs, engine: &Engine) -> anyhow::Result<u64> {
    let bar = progress(args, "read", args.records);
    let shards = engine.describe_stream(STREAM, None, None)?.shards;
    let filler = filler(args.record_size);
    let seen: u64 = std::thread::scope(|scope| {
        let readers: Vec<_> = shards
            .iter()
            .map(|shard| {
                let (bar, filler) = (&bar, &filler);
                scope.spawn(move || -> anyhow::Result<u64> {
                    let mut iterator = engine.shard_iterator(
                        STREAM,
                        &shard.shard_id,
                        IteratorStart::TrimHorizon,
                    )?;
                    let mut seen = 0;
                    let mut key = String::new();
                    loop {
                        let batch = engine.get_records(&mut iterator, None)?;
                        if batch.is_empty() {
                            return Ok(seen);
                        }
                        for record in batch.records() {
                            if record.data.len() != args.record_size {
                                bail!(
                                    "record {} came back with a wrong length",
                                    record.sequence_number
                                );
                            }
                            let i =
                                u64::from_le_bytes(record.data[..8].try_into().expect("8 bytes"));
                            key.clear();
                            write!(key, "pk-{i}").expect("writing to a String");
                            if record.data[8..] != filler[8..] || record.partition_key != key {
                                bail!("record {} came back wrong", record.sequence_number);
                            }
                        }
                        seen += batch.len() as u64;
                        bar.inc(batch.len() as u64);
                    }
                })
            })
            .collect();
        readers
            .into_iter()
            .map(|r| r.join().expect("reader thread"))
            .sum::<anyhow::Result<u64>>()
    })?;
    bar.finish_and_clear();
    if seen != args.records {
        bail!("read back {seen} records, {} were put", args.records);
    }
    Ok(seen)
}

pub(crate) fn report(phase: &str, records: u64, bytes: u64, elapsed: Duration) {
    let secs = elapsed.as_secs_f64();
    println!(
        "{phase}: {:.0} records/s, {:.1} MB/s ({:.3} s)",
        records as f64 / secs,
        bytes as f64 / secs / 1e6,
        secs
    );
}

pub(crate) fn report_latency(label: &str, h: &Histogram<u64>) {
    println!(
        "{label}: p50 {} µs, p99 {} µs, p99.9 {} µs, max {} µs ({} calls)",
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max(),
        h.len()
    );
}
