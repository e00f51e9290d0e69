//! Per-shard counters through the `metrics` facade; the application installs the exporter.
//! Names follow Kinesis' shard-level metrics.

use metrics::{Counter, Gauge, counter, gauge};

/// Handles registered once per shard, so the hot path does no label work.
#[derive(Clone)]
pub(crate) struct ShardMetrics {
    pub(crate) incoming_bytes: Counter,
    pub(crate) incoming_records: Counter,
    pub(crate) outgoing_bytes: Counter,
    pub(crate) outgoing_records: Counter,
    pub(crate) write_throttles: Counter,
    pub(crate) read_throttles: Counter,
    pub(crate) iterator_age_ms: Gauge,
}

impl ShardMetrics {
    pub(crate) fn new(stream: &str, shard: &str) -> ShardMetrics {
        let labels = [("stream", stream.to_owned()), ("shard", shard.to_owned())];
        ShardMetrics {
            incoming_bytes: counter!("sluice_shard_incoming_bytes", &labels),
            incoming_records: counter!("sluice_shard_incoming_records", &labels),
            outgoing_bytes: counter!("sluice_shard_outgoing_bytes", &labels),
            outgoing_records: counter!("sluice_shard_outgoing_records", &labels),
            write_throttles: counter!("sluice_shard_write_throttled", &labels),
            read_throttles: counter!("sluice_shard_read_throttled", &labels),
            iterator_age_ms: gauge!("sluice_shard_iterator_age_ms", &labels),
        }
    }
}
