//! One delivery stream's delivery task: read the source along its lineage after the
//! committed positions, buffer, write one object per flush, then commit the positions
//! (docs/design/firehose.md, "Delivery, flush by flush"). `fill` reads into the buffer,
//! `flush` writes a buffer out and settles a flush a crash interrupted; the two halves run
//! side by side, so the next buffer fills while the previous object is written.

mod buffer;
mod convert;
mod fill;
mod flush;
mod http;
mod postgres;
mod prepare;
mod process;
mod retry;
mod unpack;

pub(crate) use buffer::BufferBudget;

/// Whether a conversion's columns can be written (checked at creation).
pub(crate) fn check_conversion(conversion: &crate::spec::Conversion) -> Result<(), String> {
    convert::Converter::new(conversion).map(|_| ())
}

use crate::bucket::Buckets;
use crate::error::FirehoseError;
use crate::naming::{Prefix, PrefixKind};
use crate::spec::{Destination, Processor, Target};
use crate::stats::DeliveryStats;
use crate::transform::Transforms;
use fill::Reading;
use flush::Writing;
use prepare::{Naming, Object};
use process::Lambda;
use sluice_core::{Consumer, Engine};
use std::path::PathBuf;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use unpack::{Partitioning, Unpacking};

/// Back-off after a failed step: doubles from 1 s to 60 s.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);

/// What a delivery task is made from.
pub(crate) struct DeliveryParts {
    pub(crate) name: String,
    pub(crate) version: u64,
    /// Names this life of the delivery stream: a journal of an earlier one (deleted and
    /// created again under the name) is not settled.
    pub(crate) incarnation: String,
    /// The source stream, by name in its engine.
    pub(crate) source: (Engine, String),
    /// The engine consumer whose positions are the checkpoints.
    pub(crate) consumer_name: String,
    pub(crate) budget: Arc<BufferBudget>,
    pub(crate) destination: Destination,
    pub(crate) buckets: Arc<dyn Buckets>,
    /// The transform functions a Lambda processor names.
    pub(crate) transforms: Option<Arc<dyn Transforms>>,
    /// What opens encrypted records, and the name their envelopes were sealed for.
    pub(crate) envelopes: Option<(Arc<dyn crate::envelopes::Envelopes>, String)>,
    pub(crate) intent_path: PathBuf,
    pub(crate) stats: Arc<DeliveryStats>,
    pub(crate) stop: watch::Receiver<bool>,
}

/// A delivery task: the source it reads, and its two halves.
pub(crate) struct Delivery {
    /// The source stream, by name in its engine: resolved again after a failure, so a
    /// stream deleted and created again is followed.
    source: (Engine, String),
    consumer_name: String,
    /// The consumer on the source, and the source's creation time (its incarnation).
    consumer: Option<(Consumer, u64)>,
    reading: Reading,
    naming: Naming,
    /// The next object, made while the previous one was written.
    next: Option<Object>,
    writing: Writing,
    stats: Arc<DeliveryStats>,
    stop: watch::Receiver<bool>,
}

/// Why a step ended early.
enum Interrupted {
    /// Asked to stop: leave everything for the next start.
    Stop,
    /// A step failed: retry after a pause.
    Failed(String),
}

impl Delivery {
    /// A delivery task for a validated spec's parts (its prefix is parsed again).
    pub(crate) fn new(parts: DeliveryParts) -> Result<Delivery, FirehoseError> {
        let DeliveryParts {
            name,
            version,
            incarnation,
            source,
            consumer_name,
            budget,
            destination,
            buckets,
            transforms,
            envelopes,
            intent_path,
            stats,
            stop,
        } = parts;
        let lambda = lambda(&destination, transforms, &name, &stop);
        let (unpacking, partitioning) = processing(&destination, (&name, version))?;
        let newline = destination.processors.contains(&Processor::AppendNewline);
        let delimiter = if newline { b"\n".to_vec() } else { Vec::new() };
        // With no processor that changes records, the newline goes in as records are read
        // (no copy); otherwise after them. A backup takes the records as read: without it.
        let (read_delimiter, made_delimiter) = match (&lambda, &unpacking, &destination.backup) {
            (None, None, None) => (delimiter, Vec::new()),
            _ => (Vec::new(), delimiter),
        };
        let naming = Naming {
            prefix: Prefix::parse(&destination.prefix, PrefixKind::Objects)?,
            error_prefix: error_prefix(&destination, "processing-failed/")?,
            http_error_prefix: error_prefix(&destination, "http-endpoint-failed/")?,
            conversion_error_prefix: error_prefix(&destination, "format-conversion-failed/")?,
            converter: converter(&destination)?,
            endpoint: match &destination.target {
                Target::Http(spec) => {
                    Some(Arc::new(http::Endpoint::new(spec, &name, stop.clone())))
                }
                _ => None,
            },
            database: match &destination.target {
                Target::Postgres(spec) => {
                    Some(Arc::new(postgres::Database::new(spec, &name, stop.clone())))
                }
                _ => None,
            },
            name,
            version,
            compression: destination.compression,
            unpacking,
            lambda,
            partitioning,
            delimiter: made_delimiter,
            backup: backup_naming(&destination)?,
        };
        Ok(Delivery {
            source,
            consumer_name,
            consumer: None,
            reading: Reading::new(
                budget,
                destination.buffering,
                read_delimiter,
                envelopes,
                stats.clone(),
                stop.clone(),
            ),
            naming,
            next: None,
            writing: Writing {
                incarnation,
                bucket_name: destination.bucket,
                buckets,
                bucket: None,
                backup_bucket_name: destination.backup.map(|b| b.bucket),
                backup_bucket: None,
                intent_path,
                stats: stats.clone(),
                stop: stop.clone(),
            },
            stats,
            stop,
        })
    }

    /// Runs until asked to stop: settles an interrupted flush, then flushes for ever,
    /// pausing with back-off after failures (counted and reported in the stats).
    pub(crate) async fn run(mut self) {
        let mut pause = RETRY_FIRST;
        let mut settled = false;
        loop {
            let step = if settled {
                self.flush_next().await
            } else {
                self.settle().await.map(|()| settled = true)
            };
            match step {
                Ok(()) => pause = RETRY_FIRST,
                Err(Interrupted::Stop) => return,
                Err(Interrupted::Failed(error)) => {
                    self.stats.failed(error);
                    // Start again from the committed positions, once any flush the
                    // failure left journaled is settled (its object may be written).
                    settled = false;
                    self.consumer = None;
                    self.reading.reset();
                    self.next = None;
                    self.writing.bucket = None;
                    if sleep(&mut self.stop, pause).await.is_err() {
                        return;
                    }
                    pause = (pause * 2).min(RETRY_MAX);
                }
            }
        }
    }

    async fn settle(&mut self) -> Result<(), Interrupted> {
        let (consumer, source_created_ms) = self.consumer()?;
        self.writing
            .recover(&consumer, source_created_ms, &self.naming)
            .await
    }

    /// Writes out the next object while the one after it is read and compressed, so
    /// reading, compressing and writing overlap. A write is never abandoned half-way (a
    /// put may be under way): a failed or stopped read waits for it; a failed write ends
    /// the read at once (reads and compression are safe to drop at any await).
    async fn flush_next(&mut self) -> Result<(), Interrupted> {
        if *self.stop.borrow() {
            // An object made and not written goes with the task: its records are read
            // again at the next start.
            return Err(Interrupted::Stop);
        }
        let (consumer, source_created_ms) = self.consumer()?;
        let object = match self.next.take() {
            Some(object) => object,
            None => next_object(&mut self.reading, &self.naming, &consumer).await?,
        };
        let writing = self
            .writing
            .write(object, &self.naming, &consumer, source_created_ms);
        let mut writing = pin!(writing);
        let mut reading = pin!(next_object(&mut self.reading, &self.naming, &consumer));
        let next = tokio::select! {
            biased;
            written = &mut writing => {
                written?;
                reading.await
            }
            next = &mut reading => {
                writing.await?;
                next
            }
        };
        self.next = Some(next?);
        Ok(())
    }

    /// The consumer on the source stream and the source's creation time, resolved if
    /// needed.
    fn consumer(&mut self) -> Result<(Consumer, u64), Interrupted> {
        if let Some(resolved) = &self.consumer {
            return Ok(resolved.clone());
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
        Ok((consumer, created_ms))
    }
}

/// Reads until the buffer is due, then names and compresses its records. Not safe to drop
/// once it took the records (they are out of the buffer, the reader past them): the one
/// caller that drops it, on a failed write, resets the reading half after.
async fn next_object(
    reading: &mut Reading,
    naming: &Naming,
    consumer: &Consumer,
) -> Result<Object, Interrupted> {
    reading.fill(consumer).await?;
    naming.prepare(reading.take()).await
}

/// The steps before the transform, and the partitioning, of a destination that has them.
type Processing = (Option<Arc<Unpacking>>, Option<Arc<Partitioning>>);

/// The destination's steps before the transform and its partitioning, if it has them.
fn processing(
    destination: &Destination,
    (name, version): (&str, u64),
) -> Result<Processing, FirehoseError> {
    let mut unpacking = Unpacking {
        // What a flush's records may grow to when unpacked (decompressed, say).
        output_max: (destination.buffering.size_bytes as usize).saturating_mul(4),
        ..Unpacking::default()
    };
    let mut query = None;
    for processor in &destination.processors {
        match processor {
            Processor::DeAggregate(sub_records) => {
                unpacking.sub_records = Some(sub_records.clone());
            }
            Processor::Gunzip => unpacking.gunzip = true,
            Processor::CloudWatchLogs => unpacking.cloudwatch = true,
            Processor::ExtractMetadata { query: text } => {
                query = Some(crate::records::Query::parse(text).map_err(FirehoseError::invalid)?);
            }
            Processor::AppendNewline | Processor::Lambda { .. } => {}
        }
    }
    let prefix = Prefix::parse(&destination.prefix, PrefixKind::Objects)?;
    // Keys from the transform's answers are partitioned by as well.
    let keyed = prefix.partition_keys().next().is_some();
    let partitioning = (query.is_some() || keyed).then(|| {
        // An object's name after its prefix: `<name>-<version>-` 19 characters of time,
        // `-`, a 36-character uuid and the extension.
        let extension = match destination.conversion {
            Some(_) => ".parquet",
            None => destination.compression.extension(),
        };
        let tail = name.len() + version.to_string().len() + 58 + extension.len();
        Arc::new(Partitioning {
            query,
            prefix,
            tail,
        })
    });
    let unpacking = unpacking.any().then(|| Arc::new(unpacking));
    Ok((unpacking, partitioning))
}

/// The destination's Lambda processor, if it has one.
fn lambda(
    destination: &Destination,
    transforms: Option<Arc<dyn Transforms>>,
    name: &str,
    stop: &watch::Receiver<bool>,
) -> Option<Lambda> {
    destination.processors.iter().find_map(|p| match p {
        Processor::Lambda {
            function,
            retries,
            call_bytes,
        } => Some(Lambda {
            transforms: transforms.clone(),
            function: function.clone(),
            retries: *retries,
            call_bytes: *call_bytes as usize,
            delivery_stream: name.to_owned(),
            stop: stop.clone(),
        }),
        _ => None,
    })
}

/// The error output's prefix: the destination's, or `default` for this kind of failure.
fn error_prefix(destination: &Destination, default: &str) -> Result<Prefix, FirehoseError> {
    let prefix = match destination.error_output_prefix.as_str() {
        "" => default,
        prefix => prefix,
    };
    Prefix::parse(prefix, PrefixKind::ErrorOutput)
}

/// Sleeps, unless asked to stop first.
async fn sleep(stop: &mut watch::Receiver<bool>, duration: Duration) -> Result<(), Interrupted> {
    if *stop.borrow() {
        return Err(Interrupted::Stop);
    }
    tokio::select! {
        () = tokio::time::sleep(duration) => Ok(()),
        _ = stop.changed() => Err(Interrupted::Stop),
    }
}

/// A Lambda processor on a `Firehose` without transforms.
pub(crate) fn no_transforms() -> FirehoseError {
    FirehoseError::invalid(
        "The Lambda processor needs transform functions, and none are configured here.",
    )
}

fn failed(what: &str, error: impl std::fmt::Display) -> Interrupted {
    Interrupted::Failed(format!("{what}: {error}"))
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Runs file I/O or compression off the async threads.
async fn blocking<T: Send + 'static, E: std::fmt::Display + Send + 'static>(
    work: impl FnOnce() -> Result<T, E> + Send + 'static,
    what: &str,
) -> Result<T, Interrupted> {
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(failed(what, e)),
        Err(e) => Err(failed(what, e)),
    }
}

/// The converter of the destination's record format conversion, if it has one.
fn converter(destination: &Destination) -> Result<Option<Arc<convert::Converter>>, FirehoseError> {
    let Some(conversion) = &destination.conversion else {
        return Ok(None);
    };
    let converter = convert::Converter::new(conversion).map_err(FirehoseError::invalid)?;
    Ok(Some(Arc::new(converter)))
}

/// The prefix and compression of the destination's source record backup, if it has one.
fn backup_naming(
    destination: &Destination,
) -> Result<Option<(Prefix, crate::spec::Compression)>, FirehoseError> {
    let Some(backup) = &destination.backup else {
        return Ok(None);
    };
    let prefix = Prefix::parse(&backup.prefix, PrefixKind::Objects)?;
    Ok(Some((prefix, backup.compression)))
}
