//! A running application: reads its source stream along its lineage, decodes each read into
//! the input stream's rows, runs the pipeline, moves the watermark as the shards are read,
//! and puts the rows of its output streams into Sluice streams as JSON or CSV lines.

use crate::decode::Decoder;
use crate::error::AnalyticsError;
use crate::pipeline::{Pipeline, Produced};
use crate::schema::InputSchema;
use datafusion::arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};
use sluice_core::{Durability, Engine, PutRecord, ReadError, Stream};
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Records read from the source per call.
const READ_RECORDS_MAX: usize = 10_000;
/// Empty reads in a row before the task naps, and the nap.
const EMPTY_READS_BEFORE_NAP: u32 = 8;
const NAP: Duration = Duration::from_millis(20);

/// What an application is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplicationSpec {
    /// Its name.
    pub name: String,
    /// Its code: `CREATE OR REPLACE STREAM` and `PUMP` statements.
    pub code: String,
    /// Its input.
    pub input: Input,
    /// Where in-application streams' rows go.
    pub outputs: Vec<Output>,
}

/// An application's input (one; KDA's parallelism is not built yet).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Input {
    /// The source stream's name.
    pub stream: String,
    /// `SOURCE_SQL_STREAM` makes the in-application input stream `SOURCE_SQL_STREAM_001`.
    pub name_prefix: String,
    /// How its records map to rows.
    pub schema: InputSchema,
}

impl Input {
    /// The in-application input stream's name.
    pub fn in_app_name(&self) -> String {
        format!("{}_001", self.name_prefix)
    }
}

/// An in-application stream's rows, written to a Sluice stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Output {
    /// The in-application stream.
    pub in_app_stream: String,
    /// The Sluice stream.
    pub stream: String,
    /// How each row is written.
    pub format: OutputFormat,
}

/// How an output row is written: one record per row, its columns (not `ROWTIME`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutputFormat {
    /// A JSON object, by column name.
    Json,
    /// Comma-separated values in column order.
    Csv,
}

/// How an application runs.
#[derive(Debug, Clone, Copy)]
pub struct RunConfig {
    /// How far behind the time a shard was last found caught up the watermark stays: a
    /// record is stamped at its put and seen once durable, so a shard read to its end at `t`
    /// may still show records of a little before `t`.
    pub lateness_ms: u64,
}

impl Default for RunConfig {
    fn default() -> RunConfig {
        RunConfig { lateness_ms: 1000 }
    }
}

/// An application's counters.
#[derive(Debug, Default)]
pub struct ApplicationStats {
    input_records: AtomicU64,
    rejected_records: AtomicU64,
    output_records: AtomicU64,
    late_rows: AtomicU64,
    millis_behind_latest: AtomicU64,
    failures: AtomicU64,
    last_error: std::sync::Mutex<Option<String>>,
}

/// The counters, read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApplicationSnapshot {
    /// Records read from the source.
    pub input_records: u64,
    /// Records that did not fit the schema (the error stream's).
    pub rejected_records: u64,
    /// Records put into output streams.
    pub output_records: u64,
    /// Rows that came for a window closed already.
    pub late_rows: u64,
    /// How far behind the source's newest record the last read was.
    pub millis_behind_latest: u64,
    /// Failed steps (each retried), and the last one's error.
    pub failures: u64,
    /// The last failure.
    pub last_error: Option<String>,
}

impl ApplicationStats {
    /// The counters now.
    pub fn snapshot(&self) -> ApplicationSnapshot {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ApplicationSnapshot {
            input_records: load(&self.input_records),
            rejected_records: load(&self.rejected_records),
            output_records: load(&self.output_records),
            late_rows: load(&self.late_rows),
            millis_behind_latest: load(&self.millis_behind_latest),
            failures: load(&self.failures),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }
}

/// A running application; dropping it stops it at its next step.
pub struct Application {
    stats: Arc<ApplicationStats>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Application {
    /// Checks `spec` (its code planned against its input's schema, its streams found) and
    /// starts running it on `runtime`, reading its source from the trim horizon.
    pub async fn start(
        engine: &Engine,
        spec: ApplicationSpec,
        config: RunConfig,
        runtime: &tokio::runtime::Handle,
    ) -> Result<Application, AnalyticsError> {
        let decoder = Decoder::new(&spec.input.schema)?;
        let code = crate::sql::parse(&spec.code)?;
        let pipeline = Pipeline::new(&code, &spec.input.in_app_name(), decoder.schema()).await?;
        let source = engine.stream(&spec.input.stream).map_err(|_| {
            AnalyticsError::invalid(format!("Stream {} does not exist.", spec.input.stream))
        })?;
        let mut outputs = BTreeMap::new();
        for output in &spec.outputs {
            if !code.streams.iter().any(|s| s.name == output.in_app_stream) {
                return Err(AnalyticsError::invalid(format!(
                    "Output {:?} names no in-application stream of the code.",
                    output.in_app_stream
                )));
            }
            let stream = engine.stream(&output.stream).map_err(|_| {
                AnalyticsError::invalid(format!("Stream {} does not exist.", output.stream))
            })?;
            outputs.insert(output.in_app_stream.clone(), (stream, output.format));
        }
        let stats = Arc::new(ApplicationStats::default());
        let (stop, stopped) = watch::channel(false);
        let running = Running {
            name: spec.name,
            source,
            decoder,
            pipeline,
            outputs,
            config,
            stats: stats.clone(),
            stop: stopped,
            shards: BTreeMap::new(),
        };
        let task = runtime.spawn(running.run());
        Ok(Application { stats, stop, task })
    }

    /// Its counters.
    pub fn stats(&self) -> ApplicationSnapshot {
        self.stats.snapshot()
    }

    /// Stops it and waits for it.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// The application task's state.
struct Running {
    name: String,
    source: Stream,
    decoder: Decoder,
    pipeline: Pipeline,
    outputs: BTreeMap<String, (Stream, OutputFormat)>,
    config: RunConfig,
    stats: Arc<ApplicationStats>,
    stop: watch::Receiver<bool>,
    /// Per shard read, the time before which it holds no more records.
    shards: BTreeMap<String, i64>,
}

impl Running {
    async fn run(mut self) {
        let mut reader = None;
        let mut empty_reads = 0;
        while !*self.stop.borrow() {
            let reading = match &mut reader {
                Some(reader) => reader,
                None => match self.source.reader() {
                    Ok(made) => reader.insert(made),
                    Err(e) => {
                        self.failed(&format!("read {}: {e}", self.source.name()))
                            .await;
                        continue;
                    }
                },
            };
            let read_at = now_ms();
            match reading.read(Some(READ_RECORDS_MAX)) {
                Ok(Some(read)) => {
                    let got = !read.records.is_empty();
                    // A read the pipeline fails on is not read again (it would fail again,
                    // and stop the application): its records are counted, and it goes on.
                    if let Err(e) = self.take(read, read_at).await {
                        self.failed(&e.to_string()).await;
                    }
                    empty_reads = if got { 0 } else { empty_reads + 1 };
                }
                Ok(None) => empty_reads = EMPTY_READS_BEFORE_NAP,
                Err(ReadError::Throttled { .. }) => empty_reads = EMPTY_READS_BEFORE_NAP,
                Err(e) => {
                    // The reader keeps its place; the read is tried again after a pause.
                    self.failed(&format!("read {}: {e}", self.source.name()))
                        .await;
                    continue;
                }
            }
            if let Err(e) = self.advance().await {
                self.failed(&e.to_string()).await;
            }
            if empty_reads >= EMPTY_READS_BEFORE_NAP {
                empty_reads = 0;
                let mut stop = self.stop.clone();
                tokio::select! {
                    () = tokio::time::sleep(NAP) => {}
                    _ = stop.changed() => {}
                }
            } else {
                tokio::task::yield_now().await;
            }
        }
    }

    /// One read's records through the pipeline; the shard's watermark moves on.
    async fn take(
        &mut self,
        read: sluice_core::ShardRecords,
        read_at: u64,
    ) -> Result<(), AnalyticsError> {
        let shard = read.shard_id.to_string();
        let records = &read.records;
        self.stats
            .millis_behind_latest
            .store(records.millis_behind_latest, Ordering::Relaxed);
        let (mut newest, mut sealed, mut rows) = (None, 0, Vec::with_capacity(records.len()));
        for record in records.records() {
            newest = newest.max(Some(record.arrival_timestamp_ms));
            // A sealed record (KMS) is not opened here yet: it counts as rejected.
            if record.encrypted {
                sealed += 1;
            } else {
                rows.push((record.data, record.arrival_timestamp_ms));
            }
        }
        self.stats
            .input_records
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        let (batch, rejected) = match self.decoder.decode(rows) {
            Ok(decoded) => decoded,
            Err(e) => {
                self.stats
                    .rejected_records
                    .fetch_add(records.len() as u64, Ordering::Relaxed);
                return Err(e);
            }
        };
        self.stats
            .rejected_records
            .fetch_add((rejected.len() + sealed) as u64, Ordering::Relaxed);
        let rows = batch.num_rows() as u64;
        let produced = match self.pipeline.push(batch).await {
            Ok(produced) => produced,
            Err(e) => {
                self.stats
                    .rejected_records
                    .fetch_add(rows, Ordering::Relaxed);
                return Err(e);
            }
        };
        self.write(produced).await?;
        let caught_up = records.is_empty() || records.millis_behind_latest == 0;
        let held = match (caught_up, newest) {
            (true, _) => read_at.saturating_sub(self.config.lateness_ms) as i64,
            (false, Some(newest)) => newest as i64,
            (false, None) => return Ok(()),
        };
        if records.end_of_shard {
            self.shards.remove(&shard);
        } else {
            let entry = self.shards.entry(shard).or_insert(i64::MIN);
            *entry = (*entry).max(held);
        }
        Ok(())
    }

    /// Closes the windows every shard read is past.
    async fn advance(&mut self) -> Result<(), AnalyticsError> {
        let Some(watermark) = self.shards.values().min().copied() else {
            return Ok(());
        };
        let produced = self.pipeline.advance(watermark).await?;
        self.stats
            .late_rows
            .store(self.pipeline.late_rows(), Ordering::Relaxed);
        self.write(produced).await
    }

    /// Puts the rows of output streams, durably, in order.
    async fn write(&self, produced: Produced) -> Result<(), AnalyticsError> {
        for (stream, batch) in produced {
            let Some((target, format)) = self.outputs.get(&stream) else {
                continue;
            };
            let lines = encode(&batch, *format)?;
            for chunk in lines.chunks(500) {
                let keys: Vec<String> = chunk
                    .iter()
                    .map(|line| partition_key(&self.name, line))
                    .collect();
                let puts: Vec<PutRecord<'_>> = chunk
                    .iter()
                    .zip(&keys)
                    .map(|(line, key)| PutRecord::new(key, line))
                    .collect();
                let results = target
                    .put_batch(&puts)
                    .durability(Durability::Durable)
                    .await
                    .map_err(|e| {
                        AnalyticsError::execution(&format!("put into {}", target.name()), e)
                    })?;
                if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
                    return Err(AnalyticsError::execution(
                        &format!("put into {}", target.name()),
                        e,
                    ));
                }
                self.stats
                    .output_records
                    .fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    async fn failed(&mut self, error: &str) {
        self.stats.failures.fetch_add(1, Ordering::Relaxed);
        *self
            .stats
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(error.to_owned());
        let mut stop = self.stop.clone();
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = stop.changed() => {}
        }
    }
}

/// A batch's rows (not `ROWTIME`) as records.
fn encode(batch: &RecordBatch, format: OutputFormat) -> Result<Vec<Vec<u8>>, AnalyticsError> {
    let columns: Vec<usize> = (1..batch.num_columns()).collect();
    let batch = batch
        .project(&columns)
        .map_err(|e| AnalyticsError::execution("encode rows", e))?;
    let mut out = Vec::new();
    match format {
        OutputFormat::Json => {
            let mut writer = datafusion::arrow::json::LineDelimitedWriter::new(&mut out);
            writer
                .write(&batch)
                .map_err(|e| AnalyticsError::execution("encode rows as JSON", e))?;
            writer
                .finish()
                .map_err(|e| AnalyticsError::execution("encode rows as JSON", e))?;
        }
        OutputFormat::Csv => {
            let mut writer = datafusion::arrow::csv::WriterBuilder::new()
                .with_header(false)
                .build(&mut out);
            writer
                .write(&batch)
                .map_err(|e| AnalyticsError::execution("encode rows as CSV", e))?;
        }
    }
    Ok(out
        .split_inclusive(|b| *b == b'\n')
        .map(<[u8]>::to_vec)
        .collect())
}

/// A row's partition key: from its content, so the same row goes to the same shard.
fn partition_key(application: &str, line: &[u8]) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (application, line).hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
