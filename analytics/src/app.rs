//! An application: what it is ([`ApplicationSpec`]), how it runs ([`RunConfig`]), its
//! counters, and [`Application::start`], which checks it, takes up its checkpoint and starts
//! its task (the task itself is in `task.rs`).

use crate::checkpoint::StateDir;
use crate::decode::Decoder;
use crate::error::AnalyticsError;
use crate::pipeline::Pipeline;
use crate::reference::{Reference, ReferenceObjects};
use crate::schema::InputSchema;
use crate::streams::{DeliveryStreams, StreamKind};
use crate::task::Running;
use serde::{Deserialize, Serialize};
use sluice_core::Engine;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

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
    /// Reference tables, read when the application starts.
    #[serde(default)]
    pub references: Vec<Reference>,
}

/// An application's input: a source stream read into one or more in-application input
/// streams.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Input {
    /// The source stream's name.
    pub stream: String,
    /// `SOURCE_SQL_STREAM` makes the in-application input stream `SOURCE_SQL_STREAM_001`.
    pub name_prefix: String,
    /// How its records map to rows.
    pub schema: InputSchema,
    /// How many in-application input streams (KDA's `InputParallelism`, 1 to 64): `..._001`,
    /// `..._002`, ...; shard `i`'s records go to the one numbered `i % parallelism + 1`.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub parallelism: u32,
    /// What `stream` names: a Sluice stream, or a Firehose delivery stream whose records
    /// are read as they come in.
    #[serde(default, skip_serializing_if = "StreamKind::is_stream")]
    pub kind: StreamKind,
}

/// KDA's most in-application input streams of an input.
pub const PARALLELISM_MAX: u32 = 64;

fn one() -> u32 {
    1
}

/// Left out when written, so an input written before it was kept digests as it did (its
/// checkpoint stays its own).
fn is_one(n: &u32) -> bool {
    *n == 1
}

impl ApplicationSpec {
    /// What a checkpoint's state must have been made by: the code, the input's mapping and
    /// the reference tables' names and columns (not their objects: a checkpoint keeps the
    /// rows its steps ran with).
    fn digest(&self) -> u64 {
        let input = serde_json::to_vec(&self.input).unwrap_or_default();
        let mut bytes = self.code.clone().into_bytes();
        bytes.push(0);
        bytes.extend_from_slice(&input);
        for reference in &self.references {
            bytes.push(0);
            bytes.extend_from_slice(reference.table.as_bytes());
            bytes.push(0);
            bytes.extend_from_slice(&serde_json::to_vec(&reference.schema).unwrap_or_default());
        }
        xxhash_rust::xxh3::xxh3_64(&bytes)
    }

    /// What a journal's steps must be replayed with: the name and the outputs, which the
    /// output rows' keys depend on.
    fn outputs_digest(&self) -> u64 {
        let outputs = serde_json::to_vec(&self.outputs).unwrap_or_default();
        let mut bytes = self.name.clone().into_bytes();
        bytes.push(0);
        bytes.extend_from_slice(&outputs);
        xxhash_rust::xxh3::xxh3_64(&bytes)
    }
}

impl Input {
    /// The first in-application input stream's name.
    pub fn in_app_name(&self) -> String {
        format!("{}_001", self.name_prefix)
    }

    /// Every in-application input stream's name.
    pub fn in_app_names(&self) -> Vec<String> {
        (1..=self.parallelism)
            .map(|i| format!("{}_{i:03}", self.name_prefix))
            .collect()
    }

    /// Refuses a parallelism KDA does not allow.
    pub(crate) fn check(&self) -> Result<(), AnalyticsError> {
        if (1..=PARALLELISM_MAX).contains(&self.parallelism) {
            Ok(())
        } else {
            Err(AnalyticsError::invalid(format!(
                "InputParallelism is {}; it is 1 to {PARALLELISM_MAX}.",
                self.parallelism
            )))
        }
    }
}

/// An in-application stream's rows, written to a Sluice stream or a Firehose delivery
/// stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Output {
    /// The in-application stream.
    pub in_app_stream: String,
    /// The stream its rows go to.
    pub stream: String,
    /// How each row is written.
    pub format: OutputFormat,
    /// What `stream` names: a Sluice stream, or a Firehose delivery stream (its rows are
    /// put as PutRecordBatch puts records, and delivered as its records are).
    #[serde(default, skip_serializing_if = "StreamKind::is_stream")]
    pub kind: StreamKind,
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
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// How far behind the time a shard was last found caught up the watermark stays: a
    /// record is stamped at its put and seen once durable, so a shard read to its end at `t`
    /// may still show records of a little before `t`.
    pub lateness_ms: u64,
    /// Where the application keeps its checkpoint and journal. With one, a restart (after a
    /// stop or a kill -9) resumes where it was, and no output row is lost or put twice;
    /// without one, every start reads the source from its trim horizon.
    pub state_dir: Option<PathBuf>,
    /// How often the whole state is written (the journal holds the steps in between).
    pub checkpoint_interval: Duration,
    /// Records read from the source at a time (1 to 10,000).
    pub read_records: usize,
    /// Where a start with no checkpoint reads from.
    pub start_at: StartAt,
    /// Labels added to the application's metrics, beside `application`.
    pub metric_labels: Vec<(String, String)>,
    /// Where reference tables' objects are read from (an application with reference
    /// tables does not start without).
    pub objects: Option<Arc<dyn ReferenceObjects>>,
    /// Where Firehose delivery streams are found (an application reading or writing one
    /// does not start without).
    pub delivery_streams: Option<Arc<dyn DeliveryStreams>>,
}

/// The in-application stream each output takes rows of: one of the code's, or the error
/// stream (`error_stream`, in any case); one output a stream.
pub(crate) fn output_sources<'o>(
    code: &crate::sql::Code,
    outputs: impl IntoIterator<Item = &'o Output>,
) -> Result<Vec<String>, AnalyticsError> {
    let mut sources: Vec<String> = Vec::new();
    for output in outputs {
        let name = &output.in_app_stream;
        let source = if name.eq_ignore_ascii_case(crate::ERROR_STREAM) {
            crate::ERROR_STREAM.to_owned()
        } else if code.streams.iter().any(|s| &s.name == name) {
            name.clone()
        } else {
            return Err(AnalyticsError::invalid(format!(
                "Output {name:?} names no in-application stream of the code (nor error_stream)."
            )));
        };
        if sources.contains(&source) {
            return Err(AnalyticsError::invalid(format!(
                "Two outputs take the rows of {source:?}: one output an in-application stream."
            )));
        }
        sources.push(source);
    }
    Ok(sources)
}

/// Refuses outputs into a Sluice stream and a delivery stream held in streams of one name
/// (`(name, kind)` each): a checkpoint knows the streams it put into by name.
fn refuse_namesakes(outputs: &[(String, StreamKind)]) -> Result<(), AnalyticsError> {
    for (name, kind) in outputs {
        if outputs.iter().any(|(n, k)| n == name && k != kind) {
            return Err(AnalyticsError::invalid(format!(
                "Outputs go to a stream and a delivery stream both held as {name}: one of them must be renamed."
            )));
        }
    }
    Ok(())
}

/// Plans `code` over `spec`'s input (of `schema`) and reference tables.
pub(crate) async fn plan(
    code: &crate::sql::Code,
    spec: &ApplicationSpec,
    schema: datafusion::arrow::datatypes::SchemaRef,
) -> Result<Pipeline, AnalyticsError> {
    let mut tables = Vec::with_capacity(spec.references.len());
    for reference in &spec.references {
        crate::reference::check(reference)?;
        tables.push((
            reference.table.clone(),
            crate::reference::table_schema(&reference.schema)?,
        ));
    }
    spec.input.check()?;
    Pipeline::with_inputs(code, &spec.input.in_app_names(), schema, &tables).await
}

/// Where an application with no checkpoint starts reading its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartAt {
    /// The oldest records kept.
    #[default]
    TrimHorizon,
    /// Records put from now on.
    Now,
}

impl Default for RunConfig {
    fn default() -> RunConfig {
        RunConfig {
            lateness_ms: 1000,
            state_dir: None,
            checkpoint_interval: Duration::from_secs(10),
            read_records: 10_000,
            start_at: StartAt::TrimHorizon,
            metric_labels: Vec::new(),
            objects: None,
            delivery_streams: None,
        }
    }
}

/// An application's counters, also exported through the `metrics` facade (on `sluice
/// serve`'s `/metrics`) with the application's name and the run's labels.
#[derive(Debug, Default)]
pub struct ApplicationStats {
    exported: Option<Exported>,
    input_records: AtomicU64,
    rejected_records: AtomicU64,
    output_records: AtomicU64,
    late_rows: AtomicU64,
    millis_behind_latest: AtomicU64,
    failures: AtomicU64,
    last_error: std::sync::Mutex<Option<String>>,
    resumed_at_step: AtomicU64,
    replayed_steps: AtomicU64,
}

/// The counters as the `metrics` facade has them.
#[derive(Debug)]
struct Exported {
    input_records: metrics::Counter,
    output_records: metrics::Counter,
    input_processing_errors: metrics::Counter,
    millis_behind_latest: metrics::Gauge,
    late_rows: metrics::Gauge,
}

impl Exported {
    fn new(application: &str, extra: &[(String, String)]) -> Exported {
        let mut labels = vec![metrics::Label::new("application", application.to_owned())];
        labels.extend(
            extra
                .iter()
                .map(|(k, v)| metrics::Label::new(k.clone(), v.clone())),
        );
        Exported {
            input_records: metrics::counter!("sluice_analytics_input_records", labels.clone()),
            output_records: metrics::counter!("sluice_analytics_output_records", labels.clone()),
            input_processing_errors: metrics::counter!(
                "sluice_analytics_input_processing_errors",
                labels.clone()
            ),
            millis_behind_latest: metrics::gauge!(
                "sluice_analytics_millis_behind_latest",
                labels.clone()
            ),
            late_rows: metrics::gauge!("sluice_analytics_late_rows", labels),
        }
    }
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
    /// The step this run took up from its checkpoint and journal (0: it started afresh).
    pub resumed_at_step: u64,
    /// Steps of the journal this run replayed at its start.
    pub replayed_steps: u64,
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
            resumed_at_step: load(&self.resumed_at_step),
            replayed_steps: load(&self.replayed_steps),
        }
    }

    fn exported(application: &str, labels: &[(String, String)]) -> ApplicationStats {
        ApplicationStats {
            exported: Some(Exported::new(application, labels)),
            ..ApplicationStats::default()
        }
    }

    pub(crate) fn add(&self, counter: Counter, n: u64) {
        self.counter(counter).fetch_add(n, Ordering::Relaxed);
        if let Some(exported) = &self.exported {
            match counter {
                Counter::InputRecords => exported.input_records.increment(n),
                Counter::OutputRecords => exported.output_records.increment(n),
                Counter::RejectedRecords => exported.input_processing_errors.increment(n),
                _ => {}
            }
        }
    }

    pub(crate) fn set(&self, counter: Counter, n: u64) {
        self.counter(counter).store(n, Ordering::Relaxed);
        if let Some(exported) = &self.exported {
            match counter {
                Counter::MillisBehindLatest => exported.millis_behind_latest.set(n as f64),
                Counter::LateRows => exported.late_rows.set(n as f64),
                _ => {}
            }
        }
    }

    fn counter(&self, counter: Counter) -> &AtomicU64 {
        match counter {
            Counter::InputRecords => &self.input_records,
            Counter::RejectedRecords => &self.rejected_records,
            Counter::OutputRecords => &self.output_records,
            Counter::LateRows => &self.late_rows,
            Counter::MillisBehindLatest => &self.millis_behind_latest,
            Counter::ResumedAtStep => &self.resumed_at_step,
            Counter::ReplayedSteps => &self.replayed_steps,
        }
    }

    /// Counts a failure and keeps its message.
    pub(crate) fn failed(&self, error: &str) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(error.to_owned());
    }
}

/// The counters the task moves.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Counter {
    InputRecords,
    RejectedRecords,
    OutputRecords,
    LateRows,
    MillisBehindLatest,
    ResumedAtStep,
    ReplayedSteps,
}

/// A running application; dropping it stops it at its next step.
pub struct Application {
    stats: Arc<ApplicationStats>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Application {
    /// Checks `spec` (its code planned against its input's schema, its streams found) and
    /// starts running it on `runtime`: from its checkpoint when `config.state_dir` holds one
    /// (replaying the journal's steps first), else from the source's trim horizon.
    pub async fn start(
        engine: &Engine,
        spec: ApplicationSpec,
        config: RunConfig,
        runtime: &tokio::runtime::Handle,
    ) -> Result<Application, AnalyticsError> {
        if !(1..=10_000).contains(&config.read_records) {
            return Err(AnalyticsError::invalid(format!(
                "read_records is {}; it is 1 to 10000.",
                config.read_records
            )));
        }
        let decoder = Decoder::new(&spec.input.schema)?;
        let code = crate::sql::parse(&spec.code)?;
        let pipeline = plan(&code, &spec, decoder.schema()).await?;
        let references =
            crate::reference::load(&spec.references, config.objects.as_deref()).await?;
        let source = crate::streams::input_stream(engine, &config, &spec.input).await?;
        let mut outputs = BTreeMap::new();
        let sources = output_sources(&code, &spec.outputs)?;
        let mut resolved = Vec::new();
        for (output, in_app) in spec.outputs.iter().zip(sources) {
            let stream = crate::streams::output_stream(engine, &config, output).await?;
            resolved.push((stream.name().to_owned(), output.kind));
            outputs.insert(in_app, (stream, output.format));
        }
        refuse_namesakes(&resolved)?;
        let stats = Arc::new(ApplicationStats::exported(
            &spec.name,
            &config.metric_labels,
        ));
        let (stop, stopped) = watch::channel(false);
        let digest = (spec.digest(), spec.outputs_digest());
        let mut running = Running::new(
            spec.name,
            source,
            decoder,
            spec.input.in_app_names(),
            pipeline,
            outputs,
            config.clone(),
            stats.clone(),
            stopped,
        );
        running.use_references(references)?;
        if spec.input.kind == StreamKind::DeliveryStream {
            running.name_source(format!("delivery stream {}", spec.input.stream));
        }
        if config.start_at == StartAt::Now {
            running.start_now()?;
        }
        let replay = match &config.state_dir {
            None => None,
            Some(dir) => {
                let (state, recovered) = StateDir::open(dir)?;
                Some(running.take_up(state, recovered, digest)?)
            }
        };
        let task = runtime.spawn(running.run(replay));
        Ok(Application { stats, stop, task })
    }

    /// Its counters.
    pub fn stats(&self) -> ApplicationSnapshot {
        self.stats.snapshot()
    }

    /// Stops it and waits for it.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        let _ = (&mut self.task).await;
    }
}

impl Drop for Application {
    /// The task stops at its next step (and its state directory is free once it has).
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
