//! The producers of `sluice bench`: caller threads putting batches, closed-loop (as fast as
//! acknowledgements come back) or open-loop at a fixed rate. Open-loop latency is measured
//! from when each put was due, not from when it was sent, so a stall counts for every put it
//! delayed (no coordinated omission).

use super::BenchArgs;
use anyhow::bail;
use hdrhistogram::Histogram;
use sluice_core::{Durability, PutRecord, Stream};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Bytes every record starts with: its number, then when its put was due (ns after the run's
/// start), so readers can check it and time it.
pub(super) const RECORD_HEADER: usize = 16;

/// Record `i`'s data: number, due time, then a fixed filler the readers compare.
pub(super) fn record_data(i: u64, due_ns: u64, len: usize, filler: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&i.to_le_bytes());
    out.extend_from_slice(&due_ns.to_le_bytes());
    out.extend_from_slice(&filler[RECORD_HEADER..len]);
}

/// The fields readers take back out of a record: its number and due time.
pub(super) fn record_header(data: &[u8]) -> (u64, u64) {
    let word = |at: usize| u64::from_le_bytes(data[at..at + 8].try_into().expect("8 bytes"));
    (word(0), word(8))
}

/// Partition keys: record `i` gets one of `count` keys, uniformly or by a Zipf law (key 0 the
/// hottest), always the same one for the same `i`, so readers can check it.
pub(super) struct KeySpace {
    /// Cumulative probabilities of the keys (empty: uniform over every record number).
    cdf: Vec<f64>,
}

impl KeySpace {
    pub(super) fn new(zipf: f64, count: usize) -> KeySpace {
        if zipf <= 0.0 {
            return KeySpace { cdf: Vec::new() };
        }
        let weights: Vec<f64> = (1..=count).map(|k| 1.0 / (k as f64).powf(zipf)).collect();
        let total: f64 = weights.iter().sum();
        let mut sum = 0.0;
        let cdf = weights
            .iter()
            .map(|w| {
                sum += w / total;
                sum
            })
            .collect();
        KeySpace { cdf }
    }

    /// Writes record `i`'s key into `out`.
    pub(super) fn key(&self, i: u64, out: &mut String) {
        out.clear();
        if self.cdf.is_empty() {
            write!(out, "pk-{i}").expect("writing to a String");
            return;
        }
        // A fixed pseudo-random draw per record (splitmix64 of its number).
        let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        let u = (z ^ (z >> 31)) as f64 / u64::MAX as f64;
        let rank = self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1);
        write!(out, "hot-{rank}").expect("writing to a String");
    }
}

/// What the producers measured.
pub(super) struct Produced {
    pub(super) elapsed: Duration,
    /// Per put call, µs from when it was due (open loop) or sent (closed loop) to its answer.
    pub(super) latency_us: Histogram<u64>,
}

/// Shared by the producers of one run.
pub(super) struct Producers<'a> {
    pub(super) args: &'a BenchArgs,
    /// The bench stream, looked up once.
    pub(super) stream: &'a Stream,
    pub(super) durability: Durability,
    pub(super) keys: &'a KeySpace,
    pub(super) filler: &'a [u8],
    /// Time zero of the run: due times count from here.
    pub(super) start: Instant,
    /// Records acknowledged so far (progress and the timeline read it).
    pub(super) acked: &'a AtomicU64,
    /// When records expire during the run: records acknowledged per shard index.
    pub(super) per_shard: Option<&'a [AtomicU64]>,
}

impl Producers<'_> {
    /// Runs `args.callers` threads until every record is put.
    pub(super) fn run(&self, on_progress: &(dyn Fn(u64) + Sync)) -> anyhow::Result<Produced> {
        let batches = self.args.records.div_ceil(self.args.batch as u64);
        let next_batch = AtomicU64::new(0);
        let histogram = Mutex::new(Histogram::<u64>::new(3).expect("3 significant digits"));
        std::thread::scope(|scope| {
            let callers: Vec<_> = (0..self.args.callers as u64)
                .map(|caller| {
                    let (next_batch, histogram) = (&next_batch, &histogram);
                    scope.spawn(move || -> anyhow::Result<()> {
                        let mut local = Histogram::<u64>::new(3).expect("3 significant digits");
                        let mut owned = Batch::default();
                        let callers = self.args.callers as u64;
                        for round in 0.. {
                            // Open loop: caller c owns batches c, c + callers, ... on a fixed
                            // schedule. Closed loop: the next batch nobody took yet.
                            let batch = match self.args.rate {
                                Some(_) => round * callers + caller,
                                None => next_batch.fetch_add(1, Ordering::Relaxed),
                            };
                            if batch >= batches {
                                break;
                            }
                            let due = self.due(batch);
                            wait_until(due);
                            let sent = match self.args.rate {
                                Some(_) => due,
                                None => Instant::now(),
                            };
                            let count = self.put(batch, sent, &mut owned)?;
                            let micros =
                                u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
                            local.record(micros.max(1)).ok();
                            self.acked.fetch_add(count, Ordering::Relaxed);
                            on_progress(count);
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
        Ok(Produced {
            elapsed: self.start.elapsed(),
            latency_us: histogram.into_inner().expect("no panics while held"),
        })
    }

    /// When batch `batch` is due: now in closed loop, on the rate's schedule in open loop.
    fn due(&self, batch: u64) -> Instant {
        match self.args.rate {
            Some(rate) => {
                let first_record = batch * self.args.batch as u64;
                self.start + Duration::from_secs_f64(first_record as f64 / rate as f64)
            }
            None => Instant::now(),
        }
    }

    /// Puts batch `batch`; returns its record count.
    fn put(&self, batch: u64, due: Instant, owned: &mut Batch) -> anyhow::Result<u64> {
        let args = self.args;
        let first = batch * args.batch as u64;
        let count = (args.records - first).min(args.batch as u64);
        let due_ns = u64::try_from((due - self.start).as_nanos()).unwrap_or(u64::MAX);
        owned.fill(count as usize);
        for (n, (key, data)) in owned.keys.iter_mut().zip(&mut owned.data).enumerate() {
            let i = first + n as u64;
            self.keys.key(i, key);
            record_data(i, due_ns, args.record_size, self.filler, data);
        }
        let records: Vec<PutRecord<'_>> = owned.keys[..count as usize]
            .iter()
            .zip(&owned.data)
            .map(|(k, d)| PutRecord::new(k, d))
            .collect();
        let results = self
            .stream
            .put_batch(&records)
            .durability(self.durability)
            .wait()?;
        if let Some(failed) = results.iter().find_map(|r| r.as_ref().err()) {
            bail!("a record failed: {failed}");
        }
        if let Some(per_shard) = self.per_shard {
            for result in results.iter().flatten() {
                per_shard[result.shard_id.index() as usize].fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(count)
    }
}

/// A caller's reusable key and data buffers.
#[derive(Default)]
struct Batch {
    keys: Vec<String>,
    data: Vec<Vec<u8>>,
}

impl Batch {
    fn fill(&mut self, count: usize) {
        self.keys.resize_with(count, String::new);
        self.data.resize_with(count, Vec::new);
        self.keys.truncate(count);
        self.data.truncate(count);
    }
}

/// Sleeps until close to `due`, then yields the rest, so a put starts within a few µs of it.
fn wait_until(due: Instant) {
    loop {
        let now = Instant::now();
        let Some(left) = due.checked_duration_since(now) else {
            return;
        };
        if left > Duration::from_micros(500) {
            std::thread::sleep(left - Duration::from_micros(200));
        } else {
            std::thread::yield_now();
        }
    }
}
