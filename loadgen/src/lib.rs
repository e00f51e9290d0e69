//! # sluice-loadgen
//!
//! `sluice bench`: a load generator for the engine, driving it the way an embedding
//! application does. Caller threads put batches into a stream (routed by partition key),
//! closed-loop or open-loop at a fixed rate, while optional tail readers (push subscriptions)
//! and a catch-up reader consume; then every shard is read back zero-copy and checked, and the
//! engine is reopened and the reopen timed. Results print, and optionally go to a JSON file
//! and an SVG plot. With `--endpoint` it drives a Kinesis endpoint over the wire instead,
//! through [`client::KinesisClient`], which the `sluice` binary's tests use too.
//!
//! It is a crate of its own so that users of the server library do not compile its charts,
//! progress bars and histograms; the `sluice` binary (cli/) flattens [`BenchArgs`] into its
//! `bench` subcommand and calls [`run`]. Its errors are reports for the person at the
//! terminal (`anyhow`), not conditions a caller handles.
//!
//! ```
//! use clap::Parser;
//!
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     bench: sluice_loadgen::BenchArgs,
//! }
//!
//! let cli = Cli::parse_from([
//!     "bench", "--records", "2000", "--batch", "100", "--shards", "1", "--cores", "1",
//!     "--callers", "1", "--quiet",
//! ]);
//! sluice_loadgen::run(cli.bench)?;
//! # anyhow::Ok(())
//! ```
//!
//! Limits: Kinesis' own (records per batch 1..=500, at least 16 bytes of data per record here
//! for its number and due time); `--endpoint` speaks plain `http://` JSON 1.1 only.

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use load::{KeySpace, Produced, Producers, RECORD_HEADER, record_header};
use readers::{ReadContext, ReadSummary};
use results::{BenchResult, Latency, Rate, Sample, TIMELINE_STEP};
use sluice_core::limits::RETENTION_HOURS_MIN;
use sluice_core::{
    Clock, CreateStream, Durability, Engine, EngineConfig, IteratorStart, ScaledClock,
    ShardDescription, SyncScope,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub mod client;
mod endpoint;
mod load;
mod plot;
mod readers;
mod results;

const STREAM: &str = "bench";

/// Options of `sluice bench`.
#[derive(clap::Args, Debug, Clone, serde::Serialize)]
pub struct BenchArgs {
    /// Records to write.
    #[arg(long, default_value_t = 500_000)]
    pub(crate) records: u64,
    /// Bytes of data per record, at least 16: each starts with its number and when its put
    /// was due (a partition key of about 10 characters comes on top).
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
    /// What a durable put's sync covers: `file` (each shard fdatasyncs its own segment
    /// files) or `filesystem` (one syncfs of the data directory's filesystem answers every
    /// shard at once; it also writes back other programs' dirty files there).
    #[arg(long, value_enum, default_value = "file")]
    sync_scope: SyncScopeArg,
    /// Segment file size in MiB.
    #[arg(long, default_value_t = 64)]
    segment_mib: u64,
    /// Run the engine's clock this many times faster than real time: the 24-hour retention
    /// passes in 24 h / N, so records expire and each shard's ring wraps and recycles its
    /// segments under load (small --segment-mib make it wrap often). The read-back then
    /// expects of each shard its newest records, without a gap, up to its last, and counts
    /// the rest as expired. Not with readers: their records would expire unread.
    #[arg(long, default_value_t = 1)]
    clock_speed: u64,
    /// Data directory; a fresh temporary directory (removed afterwards) when omitted.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Open loop: put this many records per second on a fixed schedule, timing each put from
    /// when it was due (no coordinated omission). Default: closed loop, as fast as puts return.
    /// Needs enough --callers to keep up: each has one put in flight.
    #[arg(long)]
    pub(crate) rate: Option<u64>,
    /// Push subscribers per shard reading while the producers put, timing each record from
    /// when its put was due to when they hold it.
    #[arg(long, default_value_t = 0)]
    tail_readers: usize,
    /// Low-latency mode: the engine's cores, the callers waiting for their puts and the tail
    /// readers poll for this many µs before parking their threads (a parked thread takes tens
    /// of µs to run again once woken). Each spinning thread keeps a CPU busy while it waits:
    /// give them CPUs of their own (--cores + --callers + the readers).
    #[arg(long, default_value_t = 0)]
    pub(crate) spin_us: u64,
    /// A GetRecords reader per shard from the oldest record, started once half the records
    /// are in, reading cold data while the producers go on.
    #[arg(long)]
    catch_up_reader: bool,
    /// The catch-up reader reads at most this many MB/s (over all shards), about a
    /// millisecond's worth per GetRecords call, as a consumer pacing its reads of old data
    /// does: short bursts of checksum work instead of a CPU taken whole.
    #[arg(long)]
    catch_up_mb_per_sec: Option<f64>,
    /// Partition keys drawn by a Zipf law of this exponent over --hot-keys keys (one hot
    /// shard); 0: a distinct key per record.
    #[arg(long, default_value_t = 0.0)]
    zipf: f64,
    /// Keys of the Zipf draw.
    #[arg(long, default_value_t = 1000)]
    hot_keys: usize,
    /// Write the results as JSON to this file.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Draw throughput over time and the latency distributions as SVG into this file.
    #[arg(long)]
    plot: Option<PathBuf>,
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
    /// With --endpoint: register this many consumers (Kinesis allows 20 per stream), each
    /// subscribed to every shard with SubscribeToShard while the puts run; reports their
    /// delivery rate and put-to-delivery latency.
    #[arg(long, default_value_t = 0)]
    pub(crate) fan_out: usize,
}

/// Runs `sluice bench` with `args`: against an embedded engine, or `--endpoint`.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let durability = check_args(&args)?;
    if let Some(endpoint) = &args.endpoint {
        if args.clock_speed != 1 {
            bail!("--clock-speed applies to the embedded engine, not to --endpoint");
        }
        if args.spin_us > 0 {
            bail!("--spin-us applies to the embedded engine (sluice serve has its own --spin-us)");
        }
        if args.fan_out > 20 {
            bail!("--fan-out is at most 20 (Kinesis' consumers per stream)");
        }
        return endpoint::run(&args, endpoint);
    }
    if args.fan_out > 0 {
        bail!(
            "--fan-out applies to --endpoint (the embedded engine's push readers are --tail-readers)"
        );
    }
    let temp = tempfile::Builder::new().prefix("sluice-bench-").tempdir()?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    let clock = Arc::new(ScaledClock::new(args.clock_speed));
    let engine = open(&args, &dir, &clock)?;
    engine
        .create_stream(CreateStream::provisioned(STREAM, args.shards))
        .wait()
        .context("create the bench stream (use an empty --dir)")?;
    println!(
        "sluice bench: {} records of {} B in batches of {}, {} shards on {} cores, {} caller threads, {:?} (sync scope {:?}), {} MiB segments, clock {}x, in {}",
        args.records,
        args.record_size,
        args.batch,
        args.shards,
        engine.core_count(),
        args.callers,
        durability,
        args.sync_scope,
        args.segment_mib,
        args.clock_speed,
        dir.display()
    );
    let keys = KeySpace::new(args.zipf, args.hot_keys);
    // Records per shard, counted from the put results when records expire, for the read-back.
    let expiring: Option<Vec<AtomicU64>> =
        (args.clock_speed > 1).then(|| (0..args.shards).map(|_| AtomicU64::new(0)).collect());
    let measured = measure(
        &args,
        &engine,
        durability,
        &keys,
        expiring.as_deref(),
        &clock,
    )?;
    let (read_back, expired) = time_read_back(&args, &engine, &keys, expiring.as_deref(), &clock)?;
    let disk_bytes = allocated_bytes(&dir);
    if args.clock_speed > 1 {
        println!(
            "retention: {expired} records expired before the read-back; {:.1} MiB on disk for {:.1} MiB put (the rings recycled their segments)",
            disk_bytes as f64 / (1 << 20) as f64,
            (args.records * args.record_size as u64) as f64 / (1 << 20) as f64
        );
    }
    drop(engine);
    let reopen_ms = time_reopen(&args, &dir, &clock)?;
    let result = BenchResult {
        options: serde_json::to_value(&args)?,
        mode: if args.rate.is_some() {
            "open-loop"
        } else {
            "closed-loop"
        },
        read_back,
        expired,
        disk_bytes,
        reopen_ms,
        ..measured
    };
    write_outputs(&args, &result)
}

/// Checks the options against each other and Kinesis' limits; returns the durability asked for.
fn check_args(args: &BenchArgs) -> anyhow::Result<Durability> {
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
    if args.record_size < RECORD_HEADER {
        bail!(
            "--record-size must be at least {RECORD_HEADER} (each record carries its number and due time)"
        );
    }
    if args.rate == Some(0)
        || !args.zipf.is_finite()
        || args.zipf < 0.0
        || args.hot_keys == 0
        || args.tail_readers > 64
        || args.spin_us > 1_000_000
        || args
            .catch_up_mb_per_sec
            .is_some_and(|mb| !(mb > 0.0 && mb.is_finite()))
    {
        bail!(
            "--rate, --hot-keys and --catch-up-mb-per-sec must be positive, --zipf at least 0, --tail-readers at most 64, --spin-us at most 1000000"
        );
    }
    if args.catch_up_mb_per_sec.is_some() && !args.catch_up_reader {
        bail!("--catch-up-mb-per-sec paces the catch-up reader: add --catch-up-reader");
    }
    if args.clock_speed == 0
        || (args.clock_speed > 1 && (args.tail_readers > 0 || args.catch_up_reader))
    {
        bail!("--clock-speed must be positive, and 1 with --tail-readers or --catch-up-reader");
    }
    Ok(durability)
}

/// Reads every record back and prints the rate; returns it with the number of records that
/// expired before the read-back (`expiring`: records put per shard, when retention ran).
fn time_read_back(
    args: &BenchArgs,
    engine: &Engine,
    keys: &KeySpace,
    expiring: Option<&[AtomicU64]>,
    clock: &ScaledClock,
) -> anyhow::Result<(Rate, u64)> {
    let started = Instant::now();
    // Nothing older than the retention may come back (the stream keeps the default 24 h).
    let expiry = expiring.map(|put_per_shard| Expiry {
        put_per_shard,
        horizon_ms: clock.now_ms() - u64::from(RETENTION_HOURS_MIN) * 3_600_000,
    });
    let scanned = read_phase(args, engine, keys, expiry)?;
    let read_back = Rate::new(
        scanned,
        scanned * args.record_size as u64,
        started.elapsed(),
    );
    read_back.print("read back (zero-copy, checksums verified)");
    Ok((read_back, args.records - scanned))
}

/// Opens the engine on `dir` again, prints how long that took, and returns it in ms.
fn time_reopen(args: &BenchArgs, dir: &Path, clock: &Arc<ScaledClock>) -> anyhow::Result<f64> {
    let started = Instant::now();
    let engine = open(args, dir, clock)?;
    let reopened = started.elapsed();
    let summary = engine.stream(STREAM)?.summary()?;
    println!(
        "reopen: {:.1} ms for {} shards (sealed segments open from their footers; the rest are scanned)",
        reopened.as_secs_f64() * 1e3,
        summary.open_shard_count
    );
    Ok(reopened.as_secs_f64() * 1e3)
}

/// Writes the results where `--output` and `--plot` ask.
fn write_outputs(args: &BenchArgs, result: &BenchResult) -> anyhow::Result<()> {
    if let Some(path) = &args.output {
        let json = serde_json::to_vec_pretty(result)?;
        std::fs::write(path, json).with_context(|| format!("write {}", path.display()))?;
        println!("results: {}", path.display());
    }
    if let Some(path) = &args.plot {
        plot::draw(result, path)?;
        println!("plot: {}", path.display());
    }
    Ok(())
}

/// The measured part: producers, with readers and the timeline sampler alongside.
fn measure(
    args: &BenchArgs,
    engine: &Engine,
    durability: Durability,
    keys: &KeySpace,
    per_shard: Option<&[AtomicU64]>,
    clock: &ScaledClock,
) -> anyhow::Result<BenchResult> {
    let filler = filler(args.record_size);
    let shards = all_shards(engine)?;
    let bar = progress(args, "put", args.records);
    let (acked, read) = (AtomicU64::new(0), AtomicU64::new(0));
    let (producers_done, sampling_done) = (AtomicBool::new(false), AtomicBool::new(false));
    let start = Instant::now();
    let context = ReadContext {
        engine,
        shards: &shards,
        filler: &filler,
        record_size: args.record_size,
        start,
        producers_done: &producers_done,
        read: &read,
        keys,
        records: args.records,
        spin_us: args.spin_us,
    };
    let stream = engine.stream(STREAM)?;
    let producers = Producers {
        args,
        stream: &stream,
        durability,
        keys,
        filler: &filler,
        start,
        acked: &acked,
        per_shard,
    };
    let (produced, tail, catch_up, timeline) = std::thread::scope(|scope| {
        let timeline = scope.spawn(|| sample_timeline(start, &acked, &read, &sampling_done));
        let tail = (args.tail_readers > 0).then(|| scope.spawn(|| context.tail(args.tail_readers)));
        let catch_up = args.catch_up_reader.then(|| {
            scope.spawn(|| context.catch_up(&acked, args.records / 2, args.catch_up_mb_per_sec))
        });
        let produced = producers.run(&|n| bar.inc(n));
        if per_shard.is_some() {
            // What was retained when the producers stopped is what the read-back must find.
            clock.freeze();
        }
        producers_done.store(true, Ordering::Release);
        let tail = tail.map(|t| t.join().expect("tail readers"));
        let catch_up = catch_up.map(|c| c.join().expect("catch-up reader"));
        sampling_done.store(true, Ordering::Release);
        let timeline = timeline.join().expect("sampler");
        (produced, tail, catch_up, timeline)
    });
    bar.finish_and_clear();
    let (put, put_latency) = put_results(args, produced?);
    let (put_to_read_latency, tail_read) = tail_results(args, tail.transpose()?)?;
    let catch_up_read = catch_up_results(args, catch_up.transpose()?)?;
    Ok(BenchResult {
        options: serde_json::Value::Null,
        mode: "",
        put,
        put_latency,
        put_to_read_latency,
        tail_read,
        catch_up_read,
        read_back: Rate::new(0, 0, Duration::from_secs(1)),
        expired: 0,
        disk_bytes: 0,
        reopen_ms: 0.0,
        timeline,
    })
}

/// Samples the records acknowledged and read every `TIMELINE_STEP` until `done`.
fn sample_timeline(
    start: Instant,
    acked: &AtomicU64,
    read: &AtomicU64,
    done: &AtomicBool,
) -> Vec<Sample> {
    let mut samples = Vec::new();
    while !done.load(Ordering::Acquire) {
        samples.push(Sample {
            ms: start.elapsed().as_millis() as u64,
            acked: acked.load(Ordering::Relaxed),
            read: read.load(Ordering::Relaxed),
        });
        std::thread::sleep(TIMELINE_STEP);
    }
    samples
}

/// The producers' rate and latency, printed.
fn put_results(args: &BenchArgs, produced: Produced) -> (Rate, Latency) {
    let put = Rate::new(
        args.records,
        args.records * args.record_size as u64,
        produced.elapsed,
    );
    put.print("put");
    let put_latency = Latency::new(&produced.latency_us);
    put_latency.print(
        if args.rate.is_some() {
            "put_batch latency from due time"
        } else {
            "put_batch latency"
        },
        "calls",
    );
    (put, put_latency)
}

/// The tail readers' put-to-read latency and rate, printed, once each is checked to have read
/// every record.
fn tail_results(
    args: &BenchArgs,
    tail: Option<ReadSummary>,
) -> anyhow::Result<(Option<Latency>, Option<Rate>)> {
    if let Some(tail) = &tail {
        check_every_record_read("tail reader", &tail.records_per_reader, args.records)?;
    }
    let put_to_read_latency = tail.as_ref().map(|t| Latency::new(&t.latency_us));
    if let Some(latency) = &put_to_read_latency {
        latency.print("put to tail reader", "records");
    }
    let tail_read = tail.map(|t| {
        let records = t.records_per_reader.iter().sum();
        Rate::new(records, t.bytes, t.elapsed)
    });
    Ok((put_to_read_latency, tail_read))
}

/// The catch-up readers' rate, printed, once each is checked to have read every record.
fn catch_up_results(
    args: &BenchArgs,
    catch_up: Option<ReadSummary>,
) -> anyhow::Result<Option<Rate>> {
    if let Some(catch_up) = &catch_up {
        check_every_record_read(
            "catch-up reader",
            &catch_up.records_per_reader,
            args.records,
        )?;
    }
    // The catch-up rate counts until the readers reached the live tail, not the tailing after.
    let catch_up_read = catch_up.map(|c| {
        let (records, at) = c.caught_up;
        Rate::new(records, records * args.record_size as u64, at)
    });
    if let Some(rate) = &catch_up_read {
        rate.print("catch-up read (from the oldest record to the live tail, while producers ran)");
    }
    Ok(catch_up_read)
}

/// Each reader (its shards together) got every record.
fn check_every_record_read(kind: &str, per_reader: &[u64], records: u64) -> anyhow::Result<()> {
    for (n, &got) in per_reader.iter().enumerate() {
        if got != records {
            bail!("{kind} {n} read {got} records, {records} were put");
        }
    }
    Ok(())
}

/// Every shard of the bench stream, over every page of its description.
fn all_shards(engine: &Engine) -> anyhow::Result<Vec<ShardDescription>> {
    let mut shards = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = engine
            .stream(STREAM)?
            .describe(Some(100), after.as_deref())?;
        after = page.shards.last().map(|s| s.shard_id.to_string());
        let more = page.has_more_shards && after.is_some();
        shards.extend(page.shards);
        if !more {
            return Ok(shards);
        }
    }
}

fn open(args: &BenchArgs, dir: &Path, clock: &Arc<ScaledClock>) -> anyhow::Result<Engine> {
    Engine::open(engine_config(args, dir, clock)).context("open the engine")
}

/// The engine's configuration for a run.
fn engine_config(args: &BenchArgs, dir: &Path, clock: &Arc<ScaledClock>) -> EngineConfig {
    let mut config = EngineConfig::new(dir);
    config.cores = args.cores;
    config.segment_size_bytes = args.segment_mib * 1024 * 1024;
    config.clock = clock.clone();
    config.spin_before_park_us = args.spin_us;
    config.caller_spin_us = args.spin_us;
    config.sync_scope = match args.sync_scope {
        SyncScopeArg::File => SyncScope::PerFile,
        SyncScopeArg::Filesystem => SyncScope::Filesystem,
    };
    config
}

/// `--sync-scope`'s values.
#[derive(Debug, Clone, Copy, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
enum SyncScopeArg {
    File,
    Filesystem,
}

/// Bytes the files under `dir` take on disk (allocated blocks, so sparse files count what they
/// hold).
fn allocated_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => allocated_bytes(&entry.path()),
            Ok(meta) => meta.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
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

/// The bytes after every record's header: the same for every record of a run, so readers
/// compare them.
pub(crate) fn filler(len: usize) -> Vec<u8> {
    sluice_storage::testing::payload(FILLER_SEED, len)
}

/// The seed of [`filler`] (any value: the writers and readers of a run share one filler).
const FILLER_SEED: u64 = 0x2545_F491_4F6C_DD1D;

/// What the read-back expects when records expired during the run.
#[derive(Clone, Copy)]
struct Expiry<'a> {
    /// Records acknowledged per shard index.
    put_per_shard: &'a [AtomicU64],
    /// The frozen clock less the retention: no record that arrived before it may come back.
    horizon_ms: u64,
}

/// Reads every shard from its trim horizon, one thread per shard, checking every record: its
/// key and data, and that each record number comes back exactly once. With `expiry`
/// (retention ran during the run), each shard must return its newest records without a gap up
/// to its last, none older than the retention: the ones missing expired. Returns the records
/// read.
fn read_phase(
    args: &BenchArgs,
    engine: &Engine,
    keys: &KeySpace,
    expiry: Option<Expiry<'_>>,
) -> anyhow::Result<u64> {
    let shards = all_shards(engine)?;
    let read_back = ReadBack {
        args,
        engine,
        keys,
        expiry,
        bar: progress(args, "read", args.records),
        filler: filler(args.record_size),
        seen_once: (0..args.records).map(|_| AtomicBool::new(false)).collect(),
    };
    let seen: u64 = std::thread::scope(|scope| {
        let readers: Vec<_> = shards
            .iter()
            .map(|shard| {
                let read_back = &read_back;
                scope.spawn(move || read_back.shard(shard))
            })
            .collect();
        readers
            .into_iter()
            .map(|r| r.join().expect("reader thread"))
            .sum::<anyhow::Result<u64>>()
    })?;
    read_back.bar.finish_and_clear();
    if expiry.is_none() && seen != args.records {
        bail!("read back {seen} records, {} were put", args.records);
    }
    Ok(seen)
}

/// What the read-back's threads share: what to expect, and what they found.
struct ReadBack<'a> {
    args: &'a BenchArgs,
    engine: &'a Engine,
    keys: &'a KeySpace,
    expiry: Option<Expiry<'a>>,
    bar: ProgressBar,
    filler: Vec<u8>,
    /// Which record numbers came back (each must, exactly once, unless it expired).
    seen_once: Vec<AtomicBool>,
}

impl ReadBack<'_> {
    /// Reads `shard` from its trim horizon, checking each record; returns the records read.
    fn shard(&self, shard: &ShardDescription) -> anyhow::Result<u64> {
        let (args, engine) = (self.args, self.engine);
        let mut iterator = engine
            .stream(STREAM)?
            .shard_iterator(&shard.shard_id, IteratorStart::TrimHorizon)?;
        let mut seen = 0;
        // (shard index, first and last log position read)
        let mut positions: Option<(usize, u64, u64)> = None;
        let mut key = String::new();
        loop {
            let batch = engine.get_records(&mut iterator, None)?;
            if batch.is_empty() {
                break;
            }
            for record in batch.records() {
                let wrong = || format!("record {} came back wrong", record.sequence_number);
                if record.data.len() != args.record_size
                    || record.data[RECORD_HEADER..] != self.filler[RECORD_HEADER..]
                {
                    bail!(wrong());
                }
                if self
                    .expiry
                    .is_some_and(|e| record.arrival_timestamp_ms < e.horizon_ms)
                {
                    bail!(
                        "{}: it arrived at {} ms, before the retention horizon",
                        wrong(),
                        record.arrival_timestamp_ms
                    );
                }
                let (i, _) = record_header(record.data);
                self.keys.key(i, &mut key);
                let once = self
                    .seen_once
                    .get(i as usize)
                    .map(|s| !s.swap(true, Ordering::Relaxed));
                if record.partition_key != key || once != Some(true) {
                    bail!("{}: number {i}, key {}", wrong(), record.partition_key);
                }
                let (index, at) = (
                    record.sequence_number.shard_index().unwrap_or(0) as usize,
                    record.sequence_number.record_log_seq().unwrap_or(0),
                );
                positions =
                    Some(positions.map_or((index, at, at), |(index, first, _)| (index, first, at)));
            }
            seen += batch.len() as u64;
            self.bar.inc(batch.len() as u64);
        }
        // (A shard that kept nothing had all its records expire.)
        if let (Some(expiry), Some((index, first, last))) = (self.expiry, positions) {
            let put = expiry.put_per_shard[index].load(Ordering::Relaxed);
            if last + 1 - first != seen || last + 1 != put {
                bail!(
                    "{}: read {seen} records at positions {first}..={last} of the {put} put; expected its newest, without a gap",
                    shard.shard_id
                );
            }
        }
        Ok(seen)
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    #[test]
    fn spin_us_makes_the_engines_cores_and_callers_spin() {
        let cli = Cli::try_parse_from(["bench", "--spin-us", "70"]).unwrap();
        let clock = Arc::new(ScaledClock::new(1));
        let config = engine_config(&cli.bench, Path::new("/nonexistent"), &clock);
        assert_eq!(
            (config.spin_before_park_us, config.caller_spin_us),
            (70, 70)
        );
        let quiet = Cli::try_parse_from(["bench"]).unwrap();
        let config = engine_config(&quiet.bench, Path::new("/nonexistent"), &clock);
        assert_eq!((config.spin_before_park_us, config.caller_spin_us), (0, 0));
    }

    #[test]
    fn sync_scope_reaches_the_engine() {
        let clock = Arc::new(ScaledClock::new(1));
        let scope = |args: &[&str]| {
            let cli = Cli::try_parse_from(args).unwrap();
            engine_config(&cli.bench, Path::new("/nonexistent"), &clock).sync_scope
        };
        assert_eq!(scope(&["bench"]), SyncScope::PerFile);
        assert_eq!(
            scope(&["bench", "--sync-scope", "filesystem"]),
            SyncScope::Filesystem
        );
        assert!(Cli::try_parse_from(["bench", "--sync-scope", "disk"]).is_err());
    }
}
