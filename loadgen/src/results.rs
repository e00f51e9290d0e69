//! The result of a `sluice bench` run: printed for people, written as JSON for machines
//! (`--output`), drawn as SVG (`--plot`).

use hdrhistogram::Histogram;
use serde::Serialize;
use std::time::Duration;

/// One phase's volume and rate.
#[derive(Debug, Serialize)]
pub(crate) struct Rate {
    pub(crate) records: u64,
    pub(crate) bytes: u64,
    pub(crate) seconds: f64,
    pub(crate) records_per_sec: f64,
    pub(crate) mb_per_sec: f64,
}

impl Rate {
    pub(crate) fn new(records: u64, bytes: u64, elapsed: Duration) -> Rate {
        let seconds = elapsed.as_secs_f64();
        Rate {
            records,
            bytes,
            seconds,
            records_per_sec: records as f64 / seconds,
            mb_per_sec: bytes as f64 / seconds / 1e6,
        }
    }

    pub(crate) fn print(&self, phase: &str) {
        println!(
            "{phase}: {:.0} records/s, {:.1} MB/s ({:.3} s)",
            self.records_per_sec, self.mb_per_sec, self.seconds
        );
    }
}

/// A latency distribution in µs: the usual percentiles, and the whole curve for plots.
#[derive(Debug, Serialize)]
pub(crate) struct Latency {
    pub(crate) count: u64,
    pub(crate) p50_us: u64,
    pub(crate) p90_us: u64,
    pub(crate) p99_us: u64,
    pub(crate) p999_us: u64,
    pub(crate) max_us: u64,
    /// (quantile, µs) from 0 to 4 nines in steps of a tenth of a nine, then the maximum.
    pub(crate) curve: Vec<(f64, u64)>,
}

impl Latency {
    pub(crate) fn new(h: &Histogram<u64>) -> Latency {
        let mut curve: Vec<(f64, u64)> = (0..=40)
            .map(|tenths| {
                let q = 1.0 - 10f64.powf(-f64::from(tenths) / 10.0);
                (q, h.value_at_quantile(q))
            })
            .collect();
        curve.push((1.0, h.max()));
        Latency {
            count: h.len(),
            p50_us: h.value_at_quantile(0.5),
            p90_us: h.value_at_quantile(0.9),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
            curve,
        }
    }

    pub(crate) fn print(&self, label: &str, unit: &str) {
        println!(
            "{label}: p50 {} µs, p90 {} µs, p99 {} µs, p99.9 {} µs, max {} µs ({} {unit})",
            self.p50_us, self.p90_us, self.p99_us, self.p999_us, self.max_us, self.count
        );
    }
}

/// Progress sampled every `TIMELINE_STEP`: records acknowledged and read so far.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Sample {
    pub(crate) ms: u64,
    pub(crate) acked: u64,
    pub(crate) read: u64,
}

/// How often the timeline is sampled.
pub(crate) const TIMELINE_STEP: Duration = Duration::from_millis(100);

/// Everything one run measured.
#[derive(Debug, Serialize)]
pub(crate) struct BenchResult {
    /// The command line's options.
    pub(crate) options: serde_json::Value,
    /// "closed-loop" or "open-loop".
    pub(crate) mode: &'static str,
    pub(crate) put: Rate,
    pub(crate) put_latency: Latency,
    /// Tail readers: from a put being due to a subscriber holding its record.
    pub(crate) put_to_read_latency: Option<Latency>,
    pub(crate) tail_read: Option<Rate>,
    pub(crate) catch_up_read: Option<Rate>,
    /// The check after the run: every record read back zero-copy, checksums verified.
    pub(crate) read_back: Rate,
    /// Records that expired before the read-back (with --clock-speed).
    pub(crate) expired: u64,
    /// Bytes the data directory took on disk after the run.
    pub(crate) disk_bytes: u64,
    pub(crate) reopen_ms: f64,
    pub(crate) timeline: Vec<Sample>,
}
