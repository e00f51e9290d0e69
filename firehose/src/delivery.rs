//! One delivery stream's delivery task: read the source along its lineage after the
//! committed positions, buffer, write one object per flush, then commit the positions
//! (docs/design/firehose.md, "Delivery, flush by flush").

use crate::bucket::Bucket;
use crate::intent::{self, Intent};
use crate::naming::object_key;
use crate::spec::{Compression, ObjectDestination};
use crate::stats::DeliveryStats;
use sluice_core::{Consumer, Durability, Engine, SequenceNumber, StreamReader};
use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// Records read from the source per call.
const READ_RECORDS_MAX: usize = 1000;
/// Empty reads in a row (a round over the shards, roughly) before the task sleeps.
const EMPTY_READS_BEFORE_SLEEP: u32 = 8;
/// How long an idle task sleeps between looks at the source.
const IDLE_SLEEP: Duration = Duration::from_millis(20);
/// Back-off after a failed step: doubles from 1 s to 60 s.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);

/// Everything a delivery task needs.
pub(crate) struct Delivery {
    pub(crate) name: String,
    pub(crate) version: u64,
    /// The source stream, by name in its engine: resolved again after a failure, so a
    /// stream deleted and created again is followed.
    pub(crate) source: (Engine, String),
    /// The engine consumer whose positions are the checkpoints.
    pub(crate) consumer_name: String,
    pub(crate) consumer: Option<Consumer>,
    /// The lineage reader, after the buffer's last record (after the committed positions
    /// when made); dropped with the buffer after a failure.
    pub(crate) reader: Option<StreamReader>,
    pub(crate) buffer: Buffer,
    pub(crate) destination: ObjectDestination,
    pub(crate) bucket: Bucket,
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

/// Records read and not yet delivered, in read order.
#[derive(Default)]
pub(crate) struct Buffer {
    data: Vec<u8>,
    records: VecDeque<Buffered>,
    /// When the oldest record came into the buffer.
    first_at: Option<Instant>,
}

/// One buffered record: where it came from, and where its bytes end in `data`.
struct Buffered {
    shard: String,
    seq: SequenceNumber,
    end: usize,
    /// When the engine accepted it (ms since the epoch).
    arrival_ms: u64,
}

/// The records of one object.
struct Flush {
    data: Vec<u8>,
    records: u64,
    /// Per shard id, the last record in the object.
    positions: BTreeMap<String, SequenceNumber>,
}

impl Delivery {
    /// Runs until asked to stop: recovers an interrupted flush, then flushes for ever,
    /// pausing with back-off after failures (counted and reported in the stats).
    pub(crate) async fn run(mut self) {
        let mut pause = RETRY_FIRST;
        loop {
            let step = match self.recover().await {
                Ok(()) => self.flush_next().await,
                Err(e) => Err(e),
            };
            match step {
                Ok(()) => pause = RETRY_FIRST,
                Err(Interrupted::Stop) => return,
                Err(Interrupted::Failed(error)) => {
                    self.stats.failed(error);
                    // Start again from the committed positions.
                    self.consumer = None;
                    self.reader = None;
                    self.buffer = Buffer::default();
                    if self.sleep(pause).await.is_err() {
                        return;
                    }
                    pause = (pause * 2).min(RETRY_MAX);
                }
            }
        }
    }

    /// Settles a flush a crash interrupted: its object exists, so its positions are
    /// committed; or it does not, so its records will be read and delivered again.
    async fn recover(&mut self) -> Result<(), Interrupted> {
        let Some(intent) = intent::read(&self.intent_path) else {
            return Ok(());
        };
        let path = object_store::path::Path::from(intent.key.as_str());
        match self.bucket.store.head(&path).await {
            Ok(_) => {
                let positions = intent
                    .positions
                    .iter()
                    .filter_map(|(shard, seq)| Some((shard.clone(), parse_seq(seq)?)))
                    .collect();
                self.commit(&positions).await?;
                self.stats.recovered_object(intent.records);
            }
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(failed("look for an interrupted flush's object", e)),
        }
        intent::clear(&self.intent_path).map_err(|e| failed("clear the flush journal", e))
    }

    /// Fills the buffer from the source and writes out one object.
    async fn flush_next(&mut self) -> Result<(), Interrupted> {
        self.fill().await?;
        let flush = self.buffer.take(self.destination.buffering.size_bytes);
        self.flush(flush).await
    }

    /// Reads until the buffer is due: full, or old enough.
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
        let mut empty_reads = 0;
        loop {
            let due_at = self.buffer.first_at.map(|first| first + interval);
            if self.buffer.data.len() as u64 >= hints.size_bytes
                || due_at.is_some_and(|due| Instant::now() >= due)
            {
                return Ok(());
            }
            if *self.stop.borrow() || self.stop.has_changed().is_err() {
                return Err(Interrupted::Stop);
            }
            let reader = self.reader.as_mut().expect("made above");
            let read = reader
                .read(Some(READ_RECORDS_MAX))
                .map_err(|e| failed("read the source", e))?;
            let added = read.map_or(0, |read| self.buffer.add(&read));
            self.stats.read(added);
            let oldest = self.buffer.records.front().map(|r| r.arrival_ms);
            self.stats
                .freshness(oldest.map_or(0, |arrival| now_ms().saturating_sub(arrival)));
            if added > 0 {
                empty_reads = 0;
                continue;
            }
            empty_reads += 1;
            if empty_reads >= EMPTY_READS_BEFORE_SLEEP {
                empty_reads = 0;
                let nap = due_at.map_or(IDLE_SLEEP, |due| {
                    due.saturating_duration_since(Instant::now())
                        .min(IDLE_SLEEP)
                });
                self.sleep(nap).await?;
            }
        }
    }

    /// Journal, write, make durable, commit, clear.
    async fn flush(&mut self, buffer: Flush) -> Result<(), Interrupted> {
        if buffer.records == 0 {
            return Ok(());
        }
        let key = object_key(
            &self.destination.prefix,
            &self.name,
            self.version,
            now_ms(),
            self.destination.compression,
        );
        let raw_bytes = buffer.data.len() as u64;
        let body = compress(self.destination.compression, buffer.data)
            .map_err(|e| failed("compress", e))?;
        let intent = Intent {
            key: key.clone(),
            positions: buffer
                .positions
                .iter()
                .map(|(shard, seq)| (shard.clone(), seq.to_string()))
                .collect(),
            records: buffer.records,
        };
        intent::write(&self.intent_path, &intent).map_err(|e| failed("journal a flush", e))?;
        self.put_until_done(&key, body).await?;
        self.commit(&buffer.positions).await?;
        intent::clear(&self.intent_path).map_err(|e| failed("clear the flush journal", e))?;
        self.stats.delivered(buffer.records, raw_bytes, now_ms());
        Ok(())
    }

    /// Writes the object, retrying with back-off for as long as it fails (or until asked to
    /// stop: the journal lets the next start settle it).
    async fn put_until_done(&mut self, key: &str, body: Vec<u8>) -> Result<(), Interrupted> {
        let path = object_store::path::Path::from(key);
        let body = bytes::Bytes::from(body);
        let mut pause = RETRY_FIRST;
        loop {
            let put = self.bucket.store.put(&path, body.clone().into()).await;
            let synced = put
                .map_err(|e| e.to_string())
                .and_then(|_| self.bucket.sync(key).map_err(|e| e.to_string()));
            match synced {
                Ok(()) => return Ok(()),
                Err(error) => {
                    self.stats.failed(format!("write object {key}: {error}"));
                    self.sleep(pause).await?;
                    pause = (pause * 2).min(RETRY_MAX);
                }
            }
        }
    }

    /// Commits each shard's position; the last commit is durable, and covers the others
    /// (one consumers log per stream, one fdatasync for every frame before it).
    async fn commit(
        &mut self,
        positions: &BTreeMap<String, SequenceNumber>,
    ) -> Result<(), Interrupted> {
        let consumer = self.consumer()?;
        let last = positions.len().saturating_sub(1);
        for (i, (shard, &seq)) in positions.iter().enumerate() {
            // Positions only move forward: a journal that came back after a crash may name
            // an older flush than one committed since.
            let current = consumer
                .position(shard)
                .map_err(|e| failed("read a position", e))?;
            let seq = current.map_or(seq, |current| current.max(seq));
            let durability = if i == last {
                Durability::Durable
            } else {
                Durability::Visible
            };
            consumer
                .commit(shard, seq)
                .durability(durability)
                .await
                .map_err(|e| failed("commit positions", e))?;
        }
        Ok(())
    }

    /// The consumer on the source stream, resolved if needed.
    fn consumer(&mut self) -> Result<Consumer, Interrupted> {
        if let Some(consumer) = &self.consumer {
            return Ok(consumer.clone());
        }
        let (engine, name) = &self.source;
        let consumer = engine
            .stream(name)
            .map_err(|e| failed("open the source stream", e))?
            .consumer(&self.consumer_name)
            .map_err(|e| failed("open the delivery's consumer", e))?;
        self.consumer = Some(consumer.clone());
        Ok(consumer)
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

impl Buffer {
    /// Appends a read's records; returns how many.
    fn add(&mut self, read: &sluice_core::ShardRecords) -> u64 {
        let shard = read.shard_id.to_string();
        let mut added = 0;
        for record in read.records.records() {
            self.data.extend_from_slice(record.data);
            self.records.push_back(Buffered {
                shard: shard.clone(),
                seq: record.sequence_number,
                end: self.data.len(),
                arrival_ms: record.arrival_timestamp_ms,
            });
            added += 1;
        }
        if added > 0 && self.first_at.is_none() {
            self.first_at = Some(Instant::now());
        }
        added
    }

    /// Takes the records of the next object: as many as fit in `size_bytes` (at least one).
    /// Those left start the next buffer, which is as old as now.
    fn take(&mut self, size_bytes: u64) -> Flush {
        let fit = self
            .records
            .iter()
            .take_while(|r| r.end as u64 <= size_bytes)
            .count();
        let count = fit.max(1).min(self.records.len());
        let mut positions = BTreeMap::new();
        let mut cut = 0;
        for record in self.records.drain(..count) {
            cut = record.end;
            positions.insert(record.shard, record.seq);
        }
        let data: Vec<u8> = self.data.drain(..cut).collect();
        for record in &mut self.records {
            record.end -= cut;
        }
        self.first_at = (!self.records.is_empty()).then(Instant::now);
        Flush {
            data,
            records: count as u64,
            positions,
        }
    }
}

fn compress(compression: Compression, data: Vec<u8>) -> std::io::Result<Vec<u8>> {
    match compression {
        Compression::Uncompressed => Ok(data),
        Compression::Gzip => {
            let mut encoder = flate2::write::GzEncoder::new(
                Vec::with_capacity(data.len() / 4),
                flate2::Compression::default(),
            );
            encoder.write_all(&data)?;
            encoder.finish()
        }
    }
}

fn parse_seq(text: &str) -> Option<SequenceNumber> {
    text.parse().ok().map(SequenceNumber)
}

fn failed(what: &str, error: impl std::fmt::Display) -> Interrupted {
    Interrupted::Failed(format!("{what}: {error}"))
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
