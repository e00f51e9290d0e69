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
    /// What recovery found when the shard's log was opened (docs/design/segment-format.md):
    /// cuts at a torn or damaged batch (normal after a crash: unacknowledged records went),
    /// holes (damage stepped over: records that were durable are lost, worth an alarm), and
    /// stale segments released.
    recovery_cuts: Counter,
    recovery_holes: Counter,
    recovery_stale_segments: Counter,
}

impl ShardMetrics {
    pub(crate) fn new(stream: &str, shard: &str, extra: &[(String, String)]) -> ShardMetrics {
        let mut labels = vec![
            metrics::Label::new("stream", stream.to_owned()),
            metrics::Label::new("shard", shard.to_owned()),
        ];
        labels.extend(
            extra
                .iter()
                .map(|(k, v)| metrics::Label::new(k.clone(), v.clone())),
        );
        ShardMetrics {
            incoming_bytes: counter!("sluice_shard_incoming_bytes", labels.clone()),
            incoming_records: counter!("sluice_shard_incoming_records", labels.clone()),
            outgoing_bytes: counter!("sluice_shard_outgoing_bytes", labels.clone()),
            outgoing_records: counter!("sluice_shard_outgoing_records", labels.clone()),
            write_throttles: counter!("sluice_shard_write_throttled", labels.clone()),
            read_throttles: counter!("sluice_shard_read_throttled", labels.clone()),
            iterator_age_ms: gauge!("sluice_shard_iterator_age_ms", labels.clone()),
            recovery_cuts: counter!("sluice_shard_recovery_cuts", labels.clone()),
            recovery_holes: counter!("sluice_shard_recovery_holes", labels.clone()),
            recovery_stale_segments: counter!(
                "sluice_shard_recovery_stale_segments",
                labels.clone()
            ),
        }
    }

    /// Handles that record nothing, for a shard whose records all expired: it takes no reads
    /// or writes worth a series, and a restart does not register one for it.
    pub(crate) fn none() -> ShardMetrics {
        ShardMetrics {
            incoming_bytes: Counter::noop(),
            incoming_records: Counter::noop(),
            outgoing_bytes: Counter::noop(),
            outgoing_records: Counter::noop(),
            write_throttles: Counter::noop(),
            read_throttles: Counter::noop(),
            iterator_age_ms: Gauge::noop(),
            recovery_cuts: Counter::noop(),
            recovery_holes: Counter::noop(),
            recovery_stale_segments: Counter::noop(),
        }
    }

    /// Counts what recovery found when the shard's log was opened.
    pub(crate) fn count_recovery(&self, report: &sluice_storage::RecoveryReport) {
        self.recovery_cuts
            .increment(u64::from(report.truncated.is_some()));
        self.recovery_holes.increment(report.holes.len() as u64);
        self.recovery_stale_segments
            .increment(report.stale_segments as u64);
    }
}
