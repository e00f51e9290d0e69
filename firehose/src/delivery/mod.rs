//! One delivery stream's delivery task: read the source along its lineage after the
//! committed positions, buffer, write one object per flush, then commit the positions
//! (docs/design/firehose.md, "Delivery, flush by flush"). `buffer` holds what was read,
//! `flush` writes it out and settles a flush a crash interrupted.

mod buffer;
mod flush;

pub(crate) use buffer::{Buffer, BufferBudget};

use crate::bucket::{Bucket, Buckets};
use crate::spec::ObjectDestination;
use crate::stats::DeliveryStats;
use sluice_core::{Consumer, Engine, ReadError, StreamReader};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// Records read from the source per call.
const READ_RECORDS_MAX: usize = 1000;
/// Empty reads in a row (a round over the shards, roughly) before the task naps.
const EMPTY_READS_BEFORE_NAP: u32 = 8;
/// An idle task's naps double from the first to the longest while nothing comes.
const NAP_FIRST: Duration = Duration::from_millis(20);
const NAP_MAX: Duration = Duration::from_millis(500);
/// A throttled read (the source's read limits) waits this long and reads again.
const THROTTLED_NAP: Duration = Duration::from_millis(250);
/// Back-off after a failed step: doubles from 1 s to 60 s.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);

/// Everything a delivery task needs.
pub(crate) struct Delivery {
    pub(crate) name: String,
    pub(crate) version: u64,
    /// Names this life of the delivery stream: a journal of an earlier one (deleted and
    /// created again under the name) is not settled.
    pub(crate) incarnation: String,
    /// The source stream, by name in its engine: resolved again after a failure, so a
    /// stream deleted and created again is followed.
    pub(crate) source: (Engine, String),
    /// The engine consumer whose positions are the checkpoints.
    pub(crate) consumer_name: String,
    /// The consumer on the source, and the source's creation time (its incarnation).
    pub(crate) consumer: Option<(Consumer, u64)>,
    /// The lineage reader, after the buffer's last record (after the committed positions
    /// when made); dropped with the buffer after a failure.
    pub(crate) reader: Option<StreamReader>,
    pub(crate) buffer: Buffer,
    pub(crate) budget: Arc<BufferBudget>,
    pub(crate) destination: ObjectDestination,
    /// Resolved when first needed, and again after a failure.
    pub(crate) buckets: Arc<dyn Buckets>,
    pub(crate) bucket: Option<Bucket>,
    pub(crate) intent_path: PathBuf,
    pub(crate) stats: Arc<DeliveryStats>,
    pub(crate) stop: watch::Receiver<bool>,
}

/// Why a step ended early.
enum Interrupted {
    /// Asked to stop: leave everything for the next start.
    Stop,
    /// A step failed: retry after a pause.
    Failed(String),
}

impl Delivery {
    /// Runs until asked to stop: recovers an interrupted flush, then flushes for ever,
    /// pausing with back-off after failures (counted and reported in the stats).
    pub(crate) async fn run(mut self) {
        let mut pause = RETRY_FIRST;
        let mut recovered = false;
        loop {
            let step = if recovered {
                self.flush_next().await
            } else {
                self.recover().await.map(|()| recovered = true)
            };
            match step {
                Ok(()) => pause = RETRY_FIRST,
                Err(Interrupted::Stop) => return,
                Err(Interrupted::Failed(error)) => {
                    self.stats.failed(error);
                    // Start again from the committed positions.
                    self.consumer = None;
                    self.bucket = None;
                    self.reader = None;
                    self.buffer = Buffer::new(self.budget.clone());
                    if self.sleep(pause).await.is_err() {
                        return;
                    }
                    pause = (pause * 2).min(RETRY_MAX);
                }
            }
        }
    }

    /// Fills the buffer from the source and writes out one object.
    async fn flush_next(&mut self) -> Result<(), Interrupted> {
        self.fill().await?;
        let flush = self.buffer.take(self.destination.buffering.size_bytes);
        self.flush(flush).await
    }

    /// Reads until the buffer is due: full, old enough, or holding bytes while every
    /// buffer together is over the budget.
    async fn fill(&mut self) -> Result<(), Interrupted> {
        if self.reader.is_none() {
            let reader = self
                .consumer()?
                .reader()
                .map_err(|e| failed("read the source", e))?;
            self.reader = Some(reader);
        }
        let hints = self.destination.buffering;
        let interval = Duration::from_millis(hints.interval_ms);
        let (mut empty_reads, mut nap) = (0, NAP_FIRST);
        loop {
            let due_at = self.buffer.first_at.map(|first| first + interval);
            let held = self.buffer.data.len() as u64;
            if held >= hints.size_bytes
                || due_at.is_some_and(|due| Instant::now() >= due)
                || (held > 0 && self.budget.exceeded())
            {
                return Ok(());
            }
            if *self.stop.borrow() || self.stop.has_changed().is_err() {
                return Err(Interrupted::Stop);
            }
            let reader = self.reader.as_mut().expect("made above");
            let read = match reader.read(Some(READ_RECORDS_MAX)) {
                Ok(read) => read,
                Err(ReadError::Throttled { .. }) => {
                    self.sleep(THROTTLED_NAP).await?;
                    continue;
                }
                Err(e) => return Err(failed("read the source", e)),
            };
            let added = read.map_or(0, |read| self.buffer.add(&read));
            self.stats.read(added);
            let oldest = self.buffer.records.front().map(|r| r.arrival_ms);
            self.stats
                .freshness(oldest.map_or(0, |arrival| now_ms().saturating_sub(arrival)));
            // Reads are synchronous: let the runtime's other tasks in between.
            tokio::task::yield_now().await;
            if added > 0 {
                (empty_reads, nap) = (0, NAP_FIRST);
                continue;
            }
            empty_reads += 1;
            if empty_reads >= EMPTY_READS_BEFORE_NAP {
                empty_reads = 0;
                let until_due = due_at.map(|due| due.saturating_duration_since(Instant::now()));
                self.sleep(until_due.map_or(nap, |d| d.min(nap))).await?;
                nap = (nap * 2).min(NAP_MAX);
            }
        }
    }

    /// The consumer on the source stream, resolved if needed.
    fn consumer(&mut self) -> Result<Consumer, Interrupted> {
        if let Some((consumer, _)) = &self.consumer {
            return Ok(consumer.clone());
        }
        let (engine, name) = &self.source;
        let stream = engine
            .stream(name)
            .map_err(|e| failed("open the source stream", e))?;
        let created_ms = stream
            .summary()
            .map_err(|e| failed("open the source stream", e))?
            .created_ms;
        let consumer = stream
            .consumer(&self.consumer_name)
            .map_err(|e| failed("open the delivery's consumer", e))?;
        self.consumer = Some((consumer.clone(), created_ms));
        Ok(consumer)
    }

    /// When the source stream was created: which incarnation of it positions name.
    fn source_created_ms(&mut self) -> Result<u64, Interrupted> {
        self.consumer()?;
        Ok(self
            .consumer
            .as_ref()
            .map_or(0, |(_, created_ms)| *created_ms))
    }

    /// The destination bucket, resolved if needed.
    fn bucket(&mut self) -> Result<Bucket, Interrupted> {
        if let Some(bucket) = &self.bucket {
            return Ok(bucket.clone());
        }
        let bucket = self
            .buckets
            .bucket(&self.destination.bucket)
            .map_err(|e| failed("reach the bucket", e))?;
        self.bucket = Some(bucket.clone());
        Ok(bucket)
    }

    /// Sleeps, unless asked to stop first.
    async fn sleep(&mut self, duration: Duration) -> Result<(), Interrupted> {
        if *self.stop.borrow() {
            return Err(Interrupted::Stop);
        }
        tokio::select! {
            () = tokio::time::sleep(duration) => Ok(()),
            _ = self.stop.changed() => Err(Interrupted::Stop),
        }
    }
}

fn failed(what: &str, error: impl std::fmt::Display) -> Interrupted {
    Interrupted::Failed(format!("{what}: {error}"))
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
