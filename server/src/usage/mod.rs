//! Usage metering in Kinesis' and Firehose's billing units, per stream per hour
//! (docs/design/metering.md): events recorded by the calls, time accrued in samples by the
//! tenant's upkeep thread, kept in an hourly metric store.

pub mod prices;

use crate::cloudwatch::store::{MetricStore, SeriesKey, Stats};
use sluice_core::StreamMode;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

pub use prices::PriceTable;

const NAMESPACE: &str = "Sluice/Usage";
/// Bytes in a GB, as AWS bills.
pub const GB: f64 = (1u64 << 30) as f64;
const HOUR_S: u64 = 3600;
/// How long usage is kept: a year and its last month.
const RETENTION_S: u64 = 400 * 24 * HOUR_S;
/// A PUT payload unit.
const PUT_UNIT_BYTES: usize = 25 * 1024;
/// On-demand ingest is billed per record rounded up to this.
const ON_DEMAND_ROUNDING: usize = 1024;
/// Firehose ingest is billed per record rounded up to this.
const FIREHOSE_ROUNDING: usize = 5 * 1024;
/// Data kept past this long is long-term retention.
const LONG_TERM_AFTER_S: u64 = 7 * 24 * HOUR_S;
/// Hours in a billing month (GB-months).
const MONTH_HOURS: f64 = 730.0;
/// Bytes put, per stream per hour: not billed itself, read for long-term retention.
const BYTES_IN: &str = "Kinesis:BytesIn";

/// A usage type: how it is shown, and how the stored quantity becomes that unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageType {
    /// `Kinesis:ShardHour`.
    pub name: &'static str,
    /// `Hrs`, `Units`, `GB`, `GB-Mo`.
    pub unit: &'static str,
    /// Stored in bytes, shown in GB.
    bytes: bool,
}

macro_rules! usage_types {
    ($($ident:ident = $name:literal, $unit:literal, $bytes:literal;)*) => {
        $(
            #[doc = concat!("`", $name, "`, in ", $unit, ".")]
            pub const $ident: UsageType = UsageType { name: $name, unit: $unit, bytes: $bytes };
        )*
        /// Every usage type, in report order.
        pub const USAGE_TYPES: &[UsageType] = &[$($ident),*];
    };
}

usage_types! {
    SHARD_HOUR = "Kinesis:ShardHour", "Hrs", false;
    PUT_UNITS = "Kinesis:PutRequestPayloadUnits", "Units", false;
    EXTENDED_RETENTION = "Kinesis:ExtendedRetention-ShardHour", "Hrs", false;
    LONG_TERM_RETENTION = "Kinesis:LongTermRetention-GB-Month", "GB-Mo", false;
    FANOUT_HOURS = "Kinesis:EnhancedFanout-ConsumerShardHour", "Hrs", false;
    FANOUT_DATA = "Kinesis:EnhancedFanout-DataRetrieval-GB", "GB", true;
    ON_DEMAND_HOURS = "Kinesis:OnDemand-StreamHour", "Hrs", false;
    ON_DEMAND_IN = "Kinesis:OnDemand-DataIn-GB", "GB", true;
    ON_DEMAND_OUT = "Kinesis:OnDemand-DataOut-GB", "GB", true;
    FIREHOSE_IN = "Firehose:Ingested-GB", "GB", true;
    FIREHOSE_CONVERSION = "Firehose:FormatConversion-GB", "GB", true;
}

/// What a stream looked like at a sample.
#[derive(Debug, Clone)]
pub struct StreamSample {
    /// Its name.
    pub name: String,
    /// Provisioned or on-demand.
    pub mode: StreamMode,
    /// When it was created (ms since the epoch).
    pub created_ms: u64,
    /// Shards open for writes.
    pub open_shards: usize,
    /// Retention in hours.
    pub retention_hours: u32,
    /// Registered enhanced fan-out consumers.
    pub consumers: usize,
}

/// One line of a report: a quantity of a usage type for one resource.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct UsageLine {
    /// 12-digit account id.
    pub account: String,
    /// Region.
    pub region: String,
    /// `stream/<name>` or `deliverystream/<name>`.
    pub resource: String,
    /// The usage type's name.
    pub usage_type: &'static str,
    /// How much, in `unit`.
    pub quantity: f64,
    /// The usage type's unit.
    pub unit: &'static str,
}

/// One tenant's meter.
pub struct Meter {
    account: String,
    region: String,
    store: MetricStore,
    /// Each stream's creation time and last sample (ms), so time accrues from there.
    sampled: Mutex<HashMap<String, (u64, u64)>>,
    /// When this meter opened: streams first seen accrue from here at the earliest (a
    /// server that was not running meters no time).
    opened_ms: u64,
}

impl Meter {
    /// Opens the meter whose log is `<dir>/cloudwatch/usage.log`.
    pub fn open(dir: &Path, account: &str, region: &str) -> std::io::Result<Meter> {
        let path = dir.join("cloudwatch").join("usage.log");
        Ok(Meter::with_store(
            MetricStore::open(&path, HOUR_S, RETENTION_S)?,
            account,
            region,
            crate::clock::now_ms(),
        ))
    }

    /// A meter kept in memory, opened at `opened_ms` (for reports over made-up times).
    pub fn in_memory(account: &str, region: &str, opened_ms: u64) -> Meter {
        Meter::with_store(
            MetricStore::in_memory(HOUR_S, RETENTION_S),
            account,
            region,
            opened_ms,
        )
    }

    fn with_store(store: MetricStore, account: &str, region: &str, opened_ms: u64) -> Meter {
        Meter {
            account: account.to_owned(),
            region: region.to_owned(),
            store,
            sampled: Mutex::new(HashMap::new()),
            opened_ms,
        }
    }

    /// Writes what changed to the log.
    pub fn flush(&self) -> std::io::Result<()> {
        self.store.flush()
    }

    fn add(&self, at_s: u64, resource: &str, usage: &str, quantity: f64) {
        if quantity <= 0.0 {
            return;
        }
        let key = SeriesKey::new(NAMESPACE, usage, &[("Resource", resource)], "None");
        self.store.record(at_s, &[(key, Stats::one(quantity))]);
        if usage != BYTES_IN {
            metrics::gauge!(
                "sluice_usage_total",
                "account" => self.account.clone(),
                "region" => self.region.clone(),
                "resource" => resource.to_owned(),
                "usage_type" => usage.to_owned()
            )
            .increment(quantity);
        }
    }

    /// Records put to `stream`: the size of each (data and partition key).
    pub fn records_put(&self, at_ms: u64, stream: &str, mode: StreamMode, sizes: &[usize]) {
        let at_s = at_ms / 1000;
        let resource = format!("stream/{stream}");
        let bytes: usize = sizes.iter().sum();
        self.add(at_s, &resource, BYTES_IN, bytes as f64);
        match mode {
            StreamMode::Provisioned => {
                let units: usize = sizes
                    .iter()
                    .map(|s| s.div_ceil(PUT_UNIT_BYTES).max(1))
                    .sum();
                self.add(at_s, &resource, PUT_UNITS.name, units as f64);
            }
            StreamMode::OnDemand => {
                let billed: usize = sizes
                    .iter()
                    .map(|s| s.div_ceil(ON_DEMAND_ROUNDING).max(1) * ON_DEMAND_ROUNDING)
                    .sum();
                self.add(at_s, &resource, ON_DEMAND_IN.name, billed as f64);
            }
        }
    }

    /// Bytes of records GetRecords returned from `stream`.
    pub fn records_read(&self, at_ms: u64, stream: &str, mode: StreamMode, bytes: usize) {
        if mode == StreamMode::OnDemand {
            self.add(
                at_ms / 1000,
                &format!("stream/{stream}"),
                ON_DEMAND_OUT.name,
                bytes as f64,
            );
        }
    }

    /// Bytes of records SubscribeToShard sent from `stream`.
    pub fn fanout_sent(&self, at_ms: u64, stream: &str, bytes: usize) {
        self.add(
            at_ms / 1000,
            &format!("stream/{stream}"),
            FANOUT_DATA.name,
            bytes as f64,
        );
    }

    /// Records taken by a delivery stream (their sizes), and whether it converts them.
    pub fn firehose_put(&self, at_ms: u64, delivery_stream: &str, sizes: &[usize], converts: bool) {
        let resource = format!("deliverystream/{delivery_stream}");
        let billed: usize = sizes
            .iter()
            .map(|s| s.div_ceil(FIREHOSE_ROUNDING).max(1) * FIREHOSE_ROUNDING)
            .sum();
        self.add(at_ms / 1000, &resource, FIREHOSE_IN.name, billed as f64);
        if converts {
            self.add(
                at_ms / 1000,
                &resource,
                FIREHOSE_CONVERSION.name,
                billed as f64,
            );
        }
    }

    /// Accrues time-based usage up to `now_ms` for the streams as they are now; streams
    /// no longer listed are forgotten (with `complete`; a sample that could not list every
    /// stream forgets none, so a stream it missed is not metered again from its creation).
    pub fn sample(&self, now_ms: u64, (streams, complete): (&[StreamSample], bool)) {
        let mut sampled = self.sampled.lock().unwrap_or_else(|p| p.into_inner());
        if complete {
            sampled.retain(|name, _| streams.iter().any(|s| s.name == *name));
        }
        for stream in streams {
            let since = match sampled.get(&stream.name) {
                Some(&(created, last)) if created == stream.created_ms => last,
                _ => stream.created_ms.max(self.opened_ms),
            };
            sampled.insert(stream.name.clone(), (stream.created_ms, now_ms.max(since)));
            if now_ms > since {
                self.accrue(stream, since, now_ms);
            }
        }
    }

    /// Adds a stream's time-based usage over `[from_ms, to_ms)`, split at hour boundaries.
    fn accrue(&self, stream: &StreamSample, from_ms: u64, to_ms: u64) {
        let resource = format!("stream/{}", stream.name);
        let mut start = from_ms;
        while start < to_ms {
            let hour_end = (start / 1000 / HOUR_S + 1) * HOUR_S * 1000;
            let end = hour_end.min(to_ms);
            let hours = (end - start) as f64 / (HOUR_S * 1000) as f64;
            let at_s = start / 1000;
            let shards = stream.open_shards as f64;
            match stream.mode {
                StreamMode::Provisioned => {
                    self.add(at_s, &resource, SHARD_HOUR.name, shards * hours);
                    if stream.retention_hours > 24 {
                        self.add(at_s, &resource, EXTENDED_RETENTION.name, shards * hours);
                    }
                    let consumer_shards = (stream.consumers * stream.open_shards) as f64;
                    self.add(at_s, &resource, FANOUT_HOURS.name, consumer_shards * hours);
                }
                StreamMode::OnDemand => self.add(at_s, &resource, ON_DEMAND_HOURS.name, hours),
            }
            if u64::from(stream.retention_hours) * HOUR_S > LONG_TERM_AFTER_S {
                let stored = self.long_term_bytes(&resource, at_s, stream.retention_hours);
                self.add(
                    at_s,
                    &resource,
                    LONG_TERM_RETENTION.name,
                    stored / GB * hours / MONTH_HOURS,
                );
            }
            start = end;
        }
    }

    /// Bytes put to `resource` more than 7 days before `at_s` and still retained then.
    fn long_term_bytes(&self, resource: &str, at_s: u64, retention_hours: u32) -> f64 {
        let from = at_s.saturating_sub(u64::from(retention_hours) * HOUR_S);
        let to = at_s.saturating_sub(LONG_TERM_AFTER_S);
        self.store
            .buckets(
                |k| k.name == BYTES_IN && k.dimensions[0].1 == resource,
                from,
                to,
            )
            .iter()
            .flat_map(|(_, buckets)| buckets.iter().map(|(_, s)| s.sum))
            .sum()
    }

    /// The usage in the hours `[from_s, to_s)` (a partial first or last hour whole), by
    /// resource then usage type.
    pub fn report(&self, from_s: u64, to_s: u64) -> Vec<UsageLine> {
        let from = from_s - from_s % HOUR_S;
        let to = to_s.div_ceil(HOUR_S) * HOUR_S;
        let mut totals: Vec<(String, UsageType, f64)> = Vec::new();
        for (key, buckets) in self.store.buckets(|k| k.namespace == NAMESPACE, from, to) {
            let Some(usage) = USAGE_TYPES.iter().find(|u| u.name == key.name) else {
                continue;
            };
            let sum: f64 = buckets.iter().map(|(_, s)| s.sum).sum();
            let quantity = if usage.bytes { sum / GB } else { sum };
            totals.push((key.dimensions[0].1.clone(), *usage, quantity));
        }
        let order = |u: &UsageType| USAGE_TYPES.iter().position(|t| t == u);
        totals.sort_by(|a, b| a.0.cmp(&b.0).then(order(&a.1).cmp(&order(&b.1))));
        totals
            .into_iter()
            .map(|(resource, usage, quantity)| UsageLine {
                account: self.account.clone(),
                region: self.region.clone(),
                resource,
                usage_type: usage.name,
                quantity,
                unit: usage.unit,
            })
            .collect()
    }
}

/// What the tenant's streams look like now, for [`Meter::sample`], and whether that is
/// every stream (none failed to list or describe).
pub fn stream_samples(tenant: &crate::tenant::Tenant) -> (Vec<StreamSample>, bool) {
    let mut samples = Vec::new();
    let mut complete = true;
    let mut after: Option<String> = None;
    loop {
        let Ok(page) = tenant.engine.list_streams(Some(1000), after.as_deref()) else {
            return (samples, false);
        };
        for name in &page.names {
            let Ok(summary) = tenant.engine.stream(name).and_then(|s| s.summary()) else {
                // Deleted since it was listed, most likely: not a reason to forget the others.
                complete = false;
                continue;
            };
            let consumers = tenant.state.read(|s| {
                s.streams
                    .get(name)
                    .filter(|e| e.stream_created_ms == summary.created_ms)
                    .map_or(0, |e| e.consumers.len())
            });
            samples.push(StreamSample {
                name: name.clone(),
                mode: summary.mode,
                created_ms: summary.created_ms,
                open_shards: summary.open_shard_count,
                retention_hours: summary.retention_hours,
                consumers,
            });
        }
        if !page.has_more {
            return (samples, complete);
        }
        after = page.names.last().cloned();
    }
}

#[cfg(test)]
mod tests;

/// The usage of every tenant of `service` in `[from_s, to_s)`: open tenants sampled up to
/// now first, the others read from their logs on disk.
pub fn service_usage(service: &crate::Service, from_s: u64, to_s: u64) -> Vec<UsageLine> {
    let open = service.open_tenants();
    let mut lines = Vec::new();
    for tenant in &open {
        let (samples, complete) = stream_samples(tenant);
        tenant
            .usage
            .sample(crate::clock::now_ms(), (&samples, complete));
        lines.extend(tenant.usage.report(from_s, to_s));
    }
    let Ok(entries) = std::fs::read_dir(service.config.data_dir.join("tenants")) else {
        return lines;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((account, region)) = name.split_once('-') else {
            continue;
        };
        let is_open = open
            .iter()
            .any(|t| t.account == account && t.region == region);
        let log = entry.path().join("cloudwatch").join("usage.log");
        if is_open || !log.exists() {
            continue;
        }
        match MetricStore::read(&log, HOUR_S, RETENTION_S) {
            Ok(store) => {
                let meter = Meter::with_store(store, account, region, crate::clock::now_ms());
                lines.extend(meter.report(from_s, to_s));
            }
            Err(e) => eprintln!("sluice serve: reading {}: {e}", log.display()),
        }
    }
    lines
}

/// A time given as seconds since the epoch or in RFC 3339 (`2026-12-01T00:00:00Z`).
pub fn parse_time(text: &str) -> Result<u64, String> {
    let seconds = match text.trim().parse::<u64>() {
        Ok(seconds) => seconds,
        Err(_) => humantime::parse_rfc3339_weak(text.trim())
            .map_err(|_| format!("{text:?} is neither seconds since 1970 nor an RFC 3339 time"))?
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|_| format!("{text:?} is before 1970"))?
            .as_secs(),
    };
    // The last second of 9999: later times have no RFC 3339 form to report them in.
    if seconds > 253_402_300_799 {
        return Err(format!("{text:?} is after the year 9999"));
    }
    Ok(seconds)
}
