//! What a delivery stream has taken in and delivered, for Describe and metrics. The metrics
//! carry Firehose's CloudWatch metrics in Prometheus' naming:
//!
//! | metric | Firehose's |
//! |---|---|
//! | `sluice_firehose_incoming_records`, `_incoming_bytes` | IncomingRecords, IncomingBytes |
//! | `sluice_firehose_delivered_records`, `_delivered_bytes` | DeliveryToS3.Records, DeliveryToS3.Bytes |
//! | `sluice_firehose_objects` | DeliveryToS3.Success (objects written) |
//! | `sluice_firehose_dropped_records` | records a transform dropped |
//! | `sluice_firehose_processing_failed_records` | records a transform failed (to the error output) |
//! | `sluice_firehose_undelivered_records` | records the destination (an HTTP endpoint, a database) did not take in time (to the error output) |
//! | `sluice_firehose_redelivered_records` | records sent to an HTTP endpoint again after a restart |
//! | `sluice_firehose_failures` | failed steps, each retried |
//! | `sluice_firehose_data_freshness_ms` | DeliveryToS3.DataFreshness (age of the oldest record not delivered) |
//!
//! each labelled `delivery_stream` (and the embedder's labels).

use metrics::{Counter, Gauge, Label, counter, gauge};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of one delivery stream since it was opened (this process).
#[derive(Debug, Default)]
pub struct DeliveryStats {
    metrics: Metrics,
    incoming_records: AtomicU64,
    incoming_bytes: AtomicU64,
    read_records: AtomicU64,
    delivered_records: AtomicU64,
    delivered_bytes: AtomicU64,
    objects: AtomicU64,
    recovered_objects: AtomicU64,
    last_delivery_ms: AtomicU64,
    dropped_records: AtomicU64,
    processing_failed_records: AtomicU64,
    undelivered_records: AtomicU64,
    redelivered_records: AtomicU64,
    failures: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// A copy of the counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeliverySnapshot {
    /// Records acknowledged by PutRecord and PutRecordBatch.
    pub incoming_records: u64,
    /// Their data bytes.
    pub incoming_bytes: u64,
    /// Records read from the source into buffers (a buffer lost to a restart is read again).
    pub read_records: u64,
    /// Records in objects written and committed.
    pub delivered_records: u64,
    /// Their data bytes, before compression.
    pub delivered_bytes: u64,
    /// Objects written.
    pub objects: u64,
    /// Flushes a restart found written but not committed, and committed without writing
    /// their records again (so no duplicate).
    pub recovered_objects: u64,
    /// When the last object was committed (ms since the epoch; 0 for never).
    pub last_delivery_ms: u64,
    /// Records a transform answered Dropped.
    pub dropped_records: u64,
    /// Records a transform failed, written to the error output.
    pub processing_failed_records: u64,
    /// Records the destination did not take within the retry duration: an HTTP endpoint's
    /// (or refused with 413), written to the error output; a database's, named in a
    /// manifest of their staged object.
    pub undelivered_records: u64,
    /// Records sent to an HTTP endpoint again because a restart could not know whether
    /// their request was taken (at-least-once: the endpoint may have them twice).
    pub redelivered_records: u64,
    /// Failed steps (reads, writes, commits), each retried.
    pub failures: u64,
    /// The last failure, if any.
    pub last_error: Option<String>,
}

/// The metric handles, registered once per delivery stream.
#[derive(Debug)]
struct Metrics {
    incoming_records: Counter,
    incoming_bytes: Counter,
    delivered_records: Counter,
    delivered_bytes: Counter,
    objects: Counter,
    dropped_records: Counter,
    processing_failed_records: Counter,
    undelivered_records: Counter,
    redelivered_records: Counter,
    failures: Counter,
    data_freshness_ms: Gauge,
}

impl Default for Metrics {
    /// Handles that record nothing.
    fn default() -> Metrics {
        Metrics {
            incoming_records: Counter::noop(),
            incoming_bytes: Counter::noop(),
            delivered_records: Counter::noop(),
            delivered_bytes: Counter::noop(),
            objects: Counter::noop(),
            dropped_records: Counter::noop(),
            processing_failed_records: Counter::noop(),
            undelivered_records: Counter::noop(),
            redelivered_records: Counter::noop(),
            failures: Counter::noop(),
            data_freshness_ms: Gauge::noop(),
        }
    }
}

impl DeliveryStats {
    /// Counters for delivery stream `name`, its metrics labelled with it and `labels`.
    pub(crate) fn new(name: &str, labels: &[(String, String)]) -> DeliveryStats {
        let mut all = vec![Label::new("delivery_stream", name.to_owned())];
        all.extend(labels.iter().map(|(k, v)| Label::new(k.clone(), v.clone())));
        DeliveryStats {
            metrics: Metrics {
                incoming_records: counter!("sluice_firehose_incoming_records", all.clone()),
                incoming_bytes: counter!("sluice_firehose_incoming_bytes", all.clone()),
                delivered_records: counter!("sluice_firehose_delivered_records", all.clone()),
                delivered_bytes: counter!("sluice_firehose_delivered_bytes", all.clone()),
                objects: counter!("sluice_firehose_objects", all.clone()),
                dropped_records: counter!("sluice_firehose_dropped_records", all.clone()),
                processing_failed_records: counter!(
                    "sluice_firehose_processing_failed_records",
                    all.clone()
                ),
                undelivered_records: counter!("sluice_firehose_undelivered_records", all.clone()),
                redelivered_records: counter!("sluice_firehose_redelivered_records", all.clone()),
                failures: counter!("sluice_firehose_failures", all.clone()),
                data_freshness_ms: gauge!("sluice_firehose_data_freshness_ms", all),
            },
            ..DeliveryStats::default()
        }
    }

    pub(crate) fn incoming(&self, records: u64, bytes: u64) {
        self.incoming_records.fetch_add(records, Ordering::Relaxed);
        self.incoming_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.metrics.incoming_records.increment(records);
        self.metrics.incoming_bytes.increment(bytes);
    }

    pub(crate) fn read(&self, records: u64) {
        self.read_records.fetch_add(records, Ordering::Relaxed);
    }

    /// The age of the oldest record read and not delivered (0 when there is none).
    pub(crate) fn freshness(&self, age_ms: u64) {
        self.metrics.data_freshness_ms.set(age_ms as f64);
    }

    /// A flush committed: `records` delivered (`bytes` of them) in `objects` objects.
    pub(crate) fn delivered(&self, records: u64, bytes: u64, objects: u64, now_ms: u64) {
        self.delivered_records.fetch_add(records, Ordering::Relaxed);
        self.delivered_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.objects.fetch_add(objects, Ordering::Relaxed);
        self.last_delivery_ms.store(now_ms, Ordering::Relaxed);
        self.metrics.delivered_records.increment(records);
        self.metrics.delivered_bytes.increment(bytes);
        self.metrics.objects.increment(objects);
    }

    /// A flush committed records a transform dropped or failed.
    pub(crate) fn processed(&self, dropped: u64, failed: u64) {
        self.dropped_records.fetch_add(dropped, Ordering::Relaxed);
        self.processing_failed_records
            .fetch_add(failed, Ordering::Relaxed);
        self.metrics.dropped_records.increment(dropped);
        self.metrics.processing_failed_records.increment(failed);
    }

    pub(crate) fn recovered_object(&self, records: u64) {
        self.recovered_objects.fetch_add(1, Ordering::Relaxed);
        self.delivered_records.fetch_add(records, Ordering::Relaxed);
        self.metrics.delivered_records.increment(records);
    }

    /// The destination did not take `records` (they went to the error output).
    pub(crate) fn undelivered(&self, records: u64, error: String) {
        self.undelivered_records
            .fetch_add(records, Ordering::Relaxed);
        self.metrics.undelivered_records.increment(records);
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(error);
    }

    /// `records` are sent to an HTTP endpoint again after a restart.
    pub(crate) fn redelivered(&self, records: u64) {
        self.redelivered_records
            .fetch_add(records, Ordering::Relaxed);
        self.metrics.redelivered_records.increment(records);
    }

    pub(crate) fn failed(&self, error: String) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        self.metrics.failures.increment(1);
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(error);
    }

    /// The counters now.
    pub fn snapshot(&self) -> DeliverySnapshot {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        DeliverySnapshot {
            incoming_records: load(&self.incoming_records),
            incoming_bytes: load(&self.incoming_bytes),
            read_records: load(&self.read_records),
            delivered_records: load(&self.delivered_records),
            delivered_bytes: load(&self.delivered_bytes),
            objects: load(&self.objects),
            recovered_objects: load(&self.recovered_objects),
            last_delivery_ms: load(&self.last_delivery_ms),
            dropped_records: load(&self.dropped_records),
            processing_failed_records: load(&self.processing_failed_records),
            undelivered_records: load(&self.undelivered_records),
            redelivered_records: load(&self.redelivered_records),
            failures: load(&self.failures),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }
}
