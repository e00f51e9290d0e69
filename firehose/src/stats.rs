//! What a delivery stream has taken in and delivered, for Describe and metrics.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of one delivery stream since it was opened (this process).
#[derive(Debug, Default)]
pub struct DeliveryStats {
    incoming_records: AtomicU64,
    incoming_bytes: AtomicU64,
    read_records: AtomicU64,
    delivered_records: AtomicU64,
    delivered_bytes: AtomicU64,
    objects: AtomicU64,
    recovered_objects: AtomicU64,
    last_delivery_ms: AtomicU64,
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
    /// Failed steps (reads, writes, commits), each retried.
    pub failures: u64,
    /// The last failure, if any.
    pub last_error: Option<String>,
}

impl DeliveryStats {
    pub(crate) fn incoming(&self, records: u64, bytes: u64) {
        self.incoming_records.fetch_add(records, Ordering::Relaxed);
        self.incoming_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn read(&self, records: u64) {
        self.read_records.fetch_add(records, Ordering::Relaxed);
    }

    pub(crate) fn delivered(&self, records: u64, bytes: u64, now_ms: u64) {
        self.delivered_records.fetch_add(records, Ordering::Relaxed);
        self.delivered_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.objects.fetch_add(1, Ordering::Relaxed);
        self.last_delivery_ms.store(now_ms, Ordering::Relaxed);
    }

    pub(crate) fn recovered_object(&self, records: u64) {
        self.recovered_objects.fetch_add(1, Ordering::Relaxed);
        self.delivered_records.fetch_add(records, Ordering::Relaxed);
    }

    pub(crate) fn failed(&self, error: String) {
        self.failures.fetch_add(1, Ordering::Relaxed);
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
            failures: load(&self.failures),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }
}
