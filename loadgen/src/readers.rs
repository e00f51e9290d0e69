//! The consumers `sluice bench` runs while its producers put: tail readers (push
//! subscriptions from the start of every shard, timing each record from when its put was due
//! to when they got it) and catch-up readers (GetRecords from the oldest record, started once
//! half the records are in, so they read cold data while producers keep going).

use super::STREAM;
use super::load::{KeySpace, RECORD_HEADER, record_header};
use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use sluice_core::{Engine, IteratorStart, Record, ShardDescription};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What the readers of one kind saw.
pub(super) struct ReadSummary {
    /// Records every reader of a shard got, summed over shards, for each reader number.
    pub(super) records_per_reader: Vec<u64>,
    pub(super) bytes: u64,
    /// Tail readers: µs from a put being due to the reader holding the record.
    pub(super) latency_us: Histogram<u64>,
    pub(super) elapsed: Duration,
    /// Catch-up readers: records read until each first found nothing new (summed over
    /// shards), and when the last one got there.
    pub(super) caught_up: (u64, Duration),
}

/// One reader's end: its number on the shard, records, latencies, and (catch-up readers)
/// records and time until it first caught up.
type Outcome = anyhow::Result<(usize, u64, Histogram<u64>, Option<(u64, Duration)>)>;

/// Shared state between the run and its readers.
pub(super) struct ReadContext<'a> {
    pub(super) engine: &'a Engine,
    pub(super) shards: &'a [ShardDescription],
    pub(super) filler: &'a [u8],
    pub(super) record_size: usize,
    pub(super) start: Instant,
    /// Set once every put is acknowledged: a caught-up reader may stop.
    pub(super) producers_done: &'a AtomicBool,
    /// Records read so far by every reader (the timeline samples it).
    pub(super) read: &'a AtomicU64,
    /// Record `i`'s key, to check what readers get.
    pub(super) keys: &'a KeySpace,
    /// Records the producers put (numbered `0..records`).
    pub(super) records: u64,
    /// µs a tail reader polls before parking (`--spin-us`).
    pub(super) spin_us: u64,
}

/// Which record numbers one reader (over all its shards) has had: each exactly once.
struct SeenOnce(Vec<AtomicBool>);

impl SeenOnce {
    fn new(records: u64) -> SeenOnce {
        SeenOnce((0..records).map(|_| AtomicBool::new(false)).collect())
    }
}

impl ReadContext<'_> {
    /// Checks a record a reader got (its data, its key, that this reader had it only once)
    /// and returns when its put was due.
    fn check(&self, record: &Record<'_>, seen: &SeenOnce, key: &mut String) -> anyhow::Result<u64> {
        let data = record.data;
        if data.len() != self.record_size
            || data[RECORD_HEADER..] != self.filler[RECORD_HEADER..self.record_size]
        {
            bail!("a record came back wrong ({} bytes)", data.len());
        }
        let (i, due_ns) = record_header(data);
        self.keys.key(i, key);
        let first_time = seen
            .0
            .get(i as usize)
            .map(|s| !s.swap(true, Ordering::Relaxed));
        if record.partition_key != key.as_str() || first_time != Some(true) {
            bail!(
                "record {} (number {i}, key {}) came back twice, with a wrong key, or was never put",
                record.sequence_number,
                record.partition_key
            );
        }
        Ok(due_ns)
    }

    /// `per_shard` push subscribers on every shard, from its first record, until the
    /// producers are done and each has caught up.
    pub(super) fn tail(&self, per_shard: usize) -> anyhow::Result<ReadSummary> {
        let started = Instant::now();
        let seen: Vec<SeenOnce> = (0..per_shard)
            .map(|_| SeenOnce::new(self.records))
            .collect();
        let results: Vec<Outcome> = std::thread::scope(|scope| {
            let mut readers = Vec::new();
            for shard in self.shards {
                for reader in 0..per_shard {
                    let seen = &seen[reader];
                    readers.push(scope.spawn(move || {
                        // From the first record: starting before or after the producers reads
                        // the same records.
                        let mut subscription = self
                            .engine
                            .stream(STREAM)?
                            .subscribe(&shard.shard_id, IteratorStart::TrimHorizon)
                            .with_context(|| format!("subscribe to {}", shard.shard_id))?;
                        subscription.set_spin_before_park(Duration::from_micros(self.spin_us));
                        let mut latency = Histogram::<u64>::new(3).expect("3 significant digits");
                        let (mut count, mut key) = (0, String::new());
                        loop {
                            let done = self.producers_done.load(Ordering::Acquire);
                            let event = subscription.next_blocking(Duration::from_millis(50))?;
                            let Some(event) = event else {
                                if done {
                                    return Ok((reader, count, latency, None));
                                }
                                continue;
                            };
                            let now_ns = self.start.elapsed().as_nanos() as u64;
                            for record in event.records.records() {
                                let due_ns = self.check(&record, seen, &mut key)?;
                                latency
                                    .record((now_ns.saturating_sub(due_ns) / 1000).max(1))
                                    .ok();
                                count += 1;
                            }
                            self.read
                                .fetch_add(event.records.len() as u64, Ordering::Relaxed);
                        }
                    }));
                }
            }
            readers
                .into_iter()
                .map(|r| r.join().expect("tail reader"))
                .collect()
        });
        self.summarize(per_shard, results, started)
    }

    /// One GetRecords reader per shard from the oldest record, started once `half` records
    /// are acknowledged, until the producers are done and it has read everything.
    pub(super) fn catch_up(
        &self,
        acked: &AtomicU64,
        half: u64,
        mb_per_sec: Option<f64>,
    ) -> anyhow::Result<ReadSummary> {
        while acked.load(Ordering::Relaxed) < half && !self.producers_done.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(1));
        }
        let started = Instant::now();
        let seen = &SeenOnce::new(self.records);
        let results: Vec<Outcome> = std::thread::scope(|scope| {
            let readers: Vec<_> = self
                .shards
                .iter()
                .map(|shard| {
                    scope.spawn(move || {
                        // Bytes per second for this shard's reader, when paced.
                        let rate = mb_per_sec.map(|mb| mb * 1e6 / self.shards.len() as f64);
                        // Paced, it reads about a millisecond's worth per call: short bursts of
                        // checksum work that the producers' threads interleave with.
                        let per_call = rate.map(|rate| {
                            ((rate / 1000.0 / self.record_size as f64) as usize).clamp(1, 10_000)
                        });
                        let mut bytes = 0u64;
                        let mut iterator = self
                            .engine
                            .stream(STREAM)?
                            .shard_iterator(&shard.shard_id, IteratorStart::TrimHorizon)?;
                        let (mut count, mut key) = (0, String::new());
                        let mut caught_up = None;
                        loop {
                            let done = self.producers_done.load(Ordering::Acquire);
                            let batch = self.engine.get_records(&mut iterator, per_call)?;
                            for record in batch.records() {
                                self.check(&record, seen, &mut key)?;
                            }
                            count += batch.len() as u64;
                            bytes += batch.len() as u64 * self.record_size as u64;
                            self.read.fetch_add(batch.len() as u64, Ordering::Relaxed);
                            if let Some(rate) = rate {
                                let due = started + Duration::from_secs_f64(bytes as f64 / rate);
                                std::thread::sleep(due.saturating_duration_since(Instant::now()));
                            }
                            if batch.is_empty() {
                                caught_up.get_or_insert((count, started.elapsed()));
                                if done {
                                    let empty =
                                        Histogram::<u64>::new(3).expect("3 significant digits");
                                    return Ok((0, count, empty, caught_up));
                                }
                                std::thread::sleep(Duration::from_millis(1));
                            }
                        }
                    })
                })
                .collect();
            readers
                .into_iter()
                .map(|r| r.join().expect("catch-up reader"))
                .collect()
        });
        self.summarize(1, results, started)
    }

    fn summarize(
        &self,
        per_shard: usize,
        results: Vec<Outcome>,
        started: Instant,
    ) -> anyhow::Result<ReadSummary> {
        let mut summary = ReadSummary {
            records_per_reader: vec![0; per_shard],
            bytes: 0,
            latency_us: Histogram::<u64>::new(3).expect("3 significant digits"),
            elapsed: started.elapsed(),
            caught_up: (0, Duration::ZERO),
        };
        for result in results {
            let (reader, count, latency, caught_up) = result?;
            if let Some((records, at)) = caught_up {
                summary.caught_up.0 += records;
                summary.caught_up.1 = summary.caught_up.1.max(at);
            }
            summary.records_per_reader[reader] += count;
            summary.bytes += count * self.record_size as u64;
            summary.latency_us.add(&latency).ok();
        }
        Ok(summary)
    }
}
