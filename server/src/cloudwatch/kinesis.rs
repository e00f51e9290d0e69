//! The metrics Kinesis publishes, recorded by the data-plane calls under `AWS/Kinesis`
//! (stream level always; shard level for the metrics enhanced monitoring names).

use super::store::{MetricStore, SeriesKey, Stats, now_s};
use crate::state::StreamExtras;
use crate::tenant::Tenant;
use std::sync::Arc;
use std::time::Instant;

const NAMESPACE: &str = "AWS/Kinesis";

/// A call's datapoints, recorded together under one lock.
pub struct Datapoints<'a> {
    stream: &'a str,
    /// Shard-level metrics enhanced monitoring turned on for the stream.
    shard_level: Option<Arc<StreamExtras>>,
    points: Vec<(SeriesKey, Stats)>,
}

impl<'a> Datapoints<'a> {
    /// Datapoints of a call on `stream`.
    pub fn new(tenant: &Tenant, stream: &'a str) -> Datapoints<'a> {
        let shard_level = tenant.state.read(|s| s.streams.get(stream).cloned());
        Datapoints {
            stream,
            shard_level: shard_level.filter(|extras| !extras.shard_level_metrics.is_empty()),
            points: Vec::with_capacity(12),
        }
    }

    /// A stream-level datapoint.
    pub fn stream(&mut self, name: &str, unit: &str, value: f64) -> &mut Self {
        let key = SeriesKey::new(NAMESPACE, name, &[("StreamName", self.stream)], unit);
        self.points.push((key, Stats::one(value)));
        self
    }

    /// A shard-level datapoint, when enhanced monitoring names the metric.
    pub fn shard(&mut self, shard: &str, name: &str, unit: &str, value: f64) -> &mut Self {
        let on = self.shard_level.as_ref();
        if on.is_some_and(|extras| extras.shard_level_metrics.contains(name)) {
            let dims = [("StreamName", self.stream), ("ShardId", shard)];
            self.points.push((
                SeriesKey::new(NAMESPACE, name, &dims, unit),
                Stats::one(value),
            ));
        }
        self
    }

    /// The call's latency and success, then everything into the store.
    pub fn finish(mut self, store: &MetricStore, call: &str, started: Instant, success: bool) {
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        self.stream(&format!("{call}.Latency"), "Milliseconds", latency_ms);
        self.stream(
            &format!("{call}.Success"),
            "Count",
            f64::from(u8::from(success)),
        );
        store.record(now_s(), &self.points);
    }
}

/// A throttle (1) or not (0), as Kinesis counts ProvisionedThroughputExceeded.
pub fn throttled(error: Option<&crate::wire::ApiError>) -> f64 {
    f64::from(u8::from(error.is_some_and(|e| {
        e.name == "ProvisionedThroughputExceededException"
    })))
}
