//! The metric calls: PutMetricData, GetMetricStatistics, GetMetricData and ListMetrics,
//! answered from the tenant's store.

use super::protocol::{Out, invalid, lenient};
use super::store::{MetricStore, SeriesKey, Stats, now_s};
use crate::wire::ApiError;
use serde::Deserialize;

/// The units CloudWatch knows.
pub const UNITS: &[&str] = &[
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

/// The statistics kept exactly.
pub const STATISTICS: &[&str] = &["SampleCount", "Average", "Sum", "Minimum", "Maximum"];

/// The largest magnitude CloudWatch takes in a value (8.515920e+109), and so here.
const VALUE_MAX: f64 = 8.515_920e109;

/// Series one account and region may hold (custom metrics create them; AWS's own come with
/// streams, shards and consumers).
const SERIES_MAX: usize = 100_000;

/// Most datapoints one GetMetricStatistics call returns.
const DATAPOINTS_MAX: u64 = 1440;
/// How far ahead of now a datapoint may be put.
const AHEAD_MAX_S: f64 = 2.0 * 3600.0;

/// A dimension (a filter's value may be absent in ListMetrics).
#[derive(Debug, Deserialize, Clone)]
#[serde(rename_all = "PascalCase")]
pub struct Dimension {
    name: Option<String>,
    value: Option<String>,
}

fn required<'a, T>(name: &str, value: &'a Option<T>) -> Result<&'a T, ApiError> {
    value.as_ref().ok_or_else(|| {
        ApiError::with_status(
            "MissingRequiredParameterException",
            400,
            format!("The parameter {name} is required."),
        )
    })
}

/// Checked dimensions as (name, value) pairs.
pub fn dimensions(list: &[Dimension], what: &str) -> Result<Vec<(String, String)>, ApiError> {
    if list.len() > 30 {
        return Err(invalid(format!(
            "The collection {what} must not have a size greater than 30."
        )));
    }
    let mut pairs = Vec::with_capacity(list.len());
    for dimension in list {
        let name = required(&format!("{what}.member.Name"), &dimension.name)?;
        let value = required(&format!("{what}.member.Value"), &dimension.value)?;
        if name.is_empty() || name.len() > 255 || value.is_empty() || value.len() > 1024 {
            return Err(invalid(format!(
                "The dimension {name:?} must have a name of 1 to 255 characters and a value of 1 to 1024."
            )));
        }
        if pairs.iter().any(|(n, _): &(String, String)| n == name) {
            return Err(ApiError::with_status(
                "InvalidParameterCombinationException",
                400,
                format!("The dimension {name} is given more than once."),
            ));
        }
        pairs.push((name.clone(), value.clone()));
    }
    pairs.sort();
    Ok(pairs)
}

fn unit(value: &Option<String>) -> Result<Option<&str>, ApiError> {
    match value.as_deref() {
        None => Ok(None),
        Some(u) if UNITS.contains(&u) => Ok(Some(u)),
        Some(u) => Err(invalid(format!(
            "The value {u} for parameter Unit is not one of: {}.",
            UNITS.join(", ")
        ))),
    }
}

/// PutMetricData's input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutMetricDataInput {
    namespace: Option<String>,
    #[serde(default)]
    metric_data: Vec<MetricDatum>,
    entity_metric_data: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct MetricDatum {
    metric_name: Option<String>,
    #[serde(default)]
    dimensions: Vec<Dimension>,
    #[serde(default, deserialize_with = "lenient::time")]
    timestamp: Option<f64>,
    #[serde(default, deserialize_with = "lenient::f64")]
    value: Option<f64>,
    statistic_values: Option<StatisticSet>,
    #[serde(default, deserialize_with = "lenient::f64s")]
    values: Option<Vec<f64>>,
    #[serde(default, deserialize_with = "lenient::f64s")]
    counts: Option<Vec<f64>>,
    unit: Option<String>,
    #[serde(default, deserialize_with = "lenient::i64")]
    storage_resolution: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StatisticSet {
    #[serde(default, deserialize_with = "lenient::f64")]
    sample_count: Option<f64>,
    #[serde(default, deserialize_with = "lenient::f64")]
    sum: Option<f64>,
    #[serde(default, deserialize_with = "lenient::f64")]
    minimum: Option<f64>,
    #[serde(default, deserialize_with = "lenient::f64")]
    maximum: Option<f64>,
}

/// Adds custom datapoints; every datum is checked before any is stored.
pub fn put_metric_data(store: &MetricStore, input: PutMetricDataInput) -> Result<Out, ApiError> {
    let namespace = required("Namespace", &input.namespace)?;
    if namespace.is_empty() || namespace.len() > 255 || namespace.starts_with("AWS/") {
        return Err(invalid(format!(
            "The value {namespace} for parameter Namespace is invalid: it must be 1 to 255 characters and not start with AWS/ (reserved for the services' own metrics)."
        )));
    }
    if input.entity_metric_data.is_some() {
        return Err(invalid(
            "EntityMetricData is not kept by this endpoint; send the datapoints in MetricData.",
        ));
    }
    if input.metric_data.is_empty() || input.metric_data.len() > 1000 {
        return Err(invalid(
            "The collection MetricData must have 1 to 1000 members.",
        ));
    }
    let now = crate::clock::now_ms() as f64 / 1000.0;
    let oldest = now - store.retention_s() as f64;
    let mut points = Vec::with_capacity(input.metric_data.len());
    for (i, datum) in input.metric_data.iter().enumerate() {
        let what = format!("MetricData.member.{}", i + 1);
        let name = required(&format!("{what}.MetricName"), &datum.metric_name)?;
        if name.is_empty() || name.len() > 255 {
            return Err(invalid(format!(
                "{what}.MetricName must be 1 to 255 characters."
            )));
        }
        let dims = dimensions(&datum.dimensions, &format!("{what}.Dimensions"))?;
        let at = datum.timestamp.unwrap_or(now);
        if at < oldest || at > now + AHEAD_MAX_S {
            return Err(invalid(format!(
                "The parameter {what}.Timestamp must be within the last {} hours (this endpoint's metric retention) and at most 2 hours ahead.",
                store.retention_s() / 3600
            )));
        }
        if let Some(resolution) = datum.storage_resolution
            && resolution != 1
            && resolution != 60
        {
            return Err(invalid(format!(
                "{what}.StorageResolution must be 1 or 60."
            )));
        }
        let stats = datum_stats(datum, &what)?;
        let key = SeriesKey {
            namespace: namespace.clone(),
            name: name.clone(),
            dimensions: dims,
            unit: unit(&datum.unit)?.unwrap_or("None").to_owned(),
        };
        points.push((at as u64, key, stats));
    }
    // Each new dimension set is a series held for the retention window: a cap keeps one
    // client from filling the server's memory with them.
    let keys: Vec<&SeriesKey> = points.iter().map(|(_, key, _)| key).collect();
    let (held, new) = store.series_count(&keys);
    if new > 0 && held + new > SERIES_MAX {
        return Err(ApiError::with_status(
            "LimitExceededFault",
            400,
            format!(
                "This account and region hold {held} metric series, and this endpoint keeps at most {SERIES_MAX}: put to series that exist, or wait for old ones to pass the retention window."
            ),
        ));
    }
    for (at, key, stats) in points {
        store.record(at, &[(key, stats)]);
    }
    Ok(Out::Struct(vec![]))
}

/// The statistic set a datum gives: one value, a set, or values with counts.
fn datum_stats(datum: &MetricDatum, what: &str) -> Result<Stats, ApiError> {
    let combination = |message: String| {
        ApiError::with_status("InvalidParameterCombinationException", 400, message)
    };
    // CloudWatch's own bounds on a value: sums of any count of them stay finite.
    let finite = |n: f64| n.is_finite() && n.abs() <= VALUE_MAX;
    let given = [
        datum.value.is_some(),
        datum.statistic_values.is_some(),
        datum.values.is_some(),
    ];
    if given.iter().filter(|&&g| g).count() != 1 {
        return Err(combination(format!(
            "{what} must have exactly one of Value, StatisticValues and Values."
        )));
    }
    if let Some(value) = datum.value {
        if !finite(value) {
            return Err(invalid(format!("{what}.Value must be a finite number.")));
        }
        return Ok(Stats::one(value));
    }
    if let Some(set) = &datum.statistic_values {
        let (Some(count), Some(sum), Some(min), Some(max)) =
            (set.sample_count, set.sum, set.minimum, set.maximum)
        else {
            return Err(ApiError::with_status(
                "MissingRequiredParameterException",
                400,
                format!("{what}.StatisticValues needs SampleCount, Sum, Minimum and Maximum."),
            ));
        };
        if ![count, sum, min, max].into_iter().all(finite) || count <= 0.0 || min > max {
            return Err(invalid(format!(
                "{what}.StatisticValues must be finite, with SampleCount above 0 and Minimum at most Maximum."
            )));
        }
        return Ok(Stats {
            count,
            sum,
            min,
            max,
        });
    }
    let values = datum.values.as_deref().unwrap_or_default();
    let counts = datum.counts.as_deref();
    if values.is_empty() || values.len() > 150 {
        return Err(invalid(format!(
            "{what}.Values must have 1 to 150 members."
        )));
    }
    if counts.is_some_and(|c| c.len() != values.len()) {
        return Err(combination(format!(
            "{what}.Counts must have as many members as Values."
        )));
    }
    let mut stats: Option<Stats> = None;
    for (i, &value) in values.iter().enumerate() {
        let count = counts.map_or(1.0, |c| c[i]);
        if !finite(value) || !finite(count) || count <= 0.0 {
            return Err(invalid(format!(
                "{what}.Values and Counts must be finite, counts above 0."
            )));
        }
        let one = Stats {
            count,
            sum: value * count,
            min: value,
            max: value,
        };
        match &mut stats {
            Some(s) => s.merge(&one),
            None => stats = Some(one),
        }
    }
    let stats = stats.expect("at least one value");
    if !(stats.sum.is_finite() && stats.count.is_finite()) {
        return Err(invalid(format!(
            "{what}: the values times their counts are too large to add up."
        )));
    }
    Ok(stats)
}

/// Where a page starts: 0, or the offset a `NextToken` this endpoint gave names.
pub fn page_start(token: Option<&str>) -> Result<usize, ApiError> {
    let Some(token) = token else {
        return Ok(0);
    };
    token
        .strip_prefix("sluice-")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| {
            ApiError::with_status(
                "InvalidNextToken",
                400,
                "The NextToken is not one this endpoint gave.",
            )
        })
}

/// The metric a statistics call names.
pub struct MetricRef<'a> {
    /// Namespace.
    pub namespace: &'a str,
    /// Metric name.
    pub name: &'a str,
    /// Dimensions, sorted: a series matches when it has exactly these.
    pub dimensions: &'a [(String, String)],
    /// Only this unit, when given.
    pub unit: Option<&'a str>,
}

impl MetricRef<'_> {
    fn matches(&self, key: &SeriesKey) -> bool {
        key.namespace == self.namespace
            && key.name == self.name
            && key.dimensions == self.dimensions
            && self.unit.is_none_or(|u| u == key.unit)
    }
}

/// The statistic sets of `metric` per period from `start` (rounded down to the minute) to
/// `end`: (period start, unit, set), by unit then time.
pub fn aggregate(
    store: &MetricStore,
    metric: &MetricRef<'_>,
    (start, end): (u64, u64),
    period: u64,
) -> Vec<(u64, String, Stats)> {
    let start = start - start % store.width_s();
    let mut out: Vec<(u64, String, Stats)> = Vec::new();
    for (key, buckets) in store.buckets(|k| metric.matches(k), start, end) {
        for (at, stats) in buckets {
            let period_start = start + (at - start) / period * period;
            match out.last_mut() {
                Some((p, u, s)) if *p == period_start && *u == key.unit => s.merge(&stats),
                _ => out.push((period_start, key.unit.clone(), stats)),
            }
        }
    }
    out
}

/// A statistic of a set.
pub fn statistic(stats: &Stats, name: &str) -> f64 {
    match name {
        "SampleCount" => stats.count,
        "Sum" => stats.sum,
        "Minimum" => stats.min,
        "Maximum" => stats.max,
        _ => stats.sum / stats.count,
    }
}

/// Checks a statistic's name; percentiles are refused, naming what is kept.
pub fn check_statistic(name: &str, what: &str) -> Result<(), ApiError> {
    if STATISTICS.contains(&name) {
        return Ok(());
    }
    Err(invalid(format!(
        "The value {name} for {what} is not kept by this endpoint: it keeps {} per minute (no percentiles, which need every value).",
        STATISTICS.join(", ")
    )))
}

/// Checks a time range and period, as seconds.
pub fn check_range(
    start: Option<f64>,
    end: Option<f64>,
    period: Option<i64>,
) -> Result<(u64, u64, u64), ApiError> {
    let start = *required("StartTime", &start)?;
    let end = *required("EndTime", &end)?;
    if start >= end {
        return Err(invalid(
            "The parameter StartTime must be less than the parameter EndTime.",
        ));
    }
    let period = *required("Period", &period)?;
    if period < 60 || period % 60 != 0 {
        return Err(invalid(format!(
            "The parameter Period must be a multiple of 60 (this endpoint keeps one-minute resolution); got {period}."
        )));
    }
    Ok((
        start.max(0.0) as u64,
        end.max(0.0).ceil() as u64,
        period as u64,
    ))
}

/// GetMetricStatistics' input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetMetricStatisticsInput {
    namespace: Option<String>,
    metric_name: Option<String>,
    #[serde(default)]
    dimensions: Vec<Dimension>,
    #[serde(default, deserialize_with = "lenient::time")]
    start_time: Option<f64>,
    #[serde(default, deserialize_with = "lenient::time")]
    end_time: Option<f64>,
    #[serde(default, deserialize_with = "lenient::i64")]
    period: Option<i64>,
    #[serde(default)]
    statistics: Vec<String>,
    #[serde(default)]
    extended_statistics: Vec<String>,
    unit: Option<String>,
}

/// Statistics of one metric per period.
pub fn get_metric_statistics(
    store: &MetricStore,
    input: GetMetricStatisticsInput,
) -> Result<Out, ApiError> {
    let namespace = required("Namespace", &input.namespace)?;
    let name = required("MetricName", &input.metric_name)?;
    let dims = dimensions(&input.dimensions, "Dimensions")?;
    let (start, end, period) = check_range(input.start_time, input.end_time, input.period)?;
    if input.statistics.is_empty() && input.extended_statistics.is_empty() {
        return Err(ApiError::with_status(
            "MissingRequiredParameterException",
            400,
            "Either Statistics or ExtendedStatistics must be given.",
        ));
    }
    for s in &input.statistics {
        check_statistic(s, "Statistics")?;
    }
    if let Some(p) = input.extended_statistics.first() {
        check_statistic(p, "ExtendedStatistics")?;
    }
    let asked = (end - start).div_ceil(period);
    if asked > DATAPOINTS_MAX {
        return Err(ApiError::with_status(
            "InvalidParameterCombinationException",
            400,
            format!(
                "You have requested up to {asked} datapoints, which exceeds the limit of {DATAPOINTS_MAX}. You may reduce the datapoints requested by increasing Period, or decreasing the time range."
            ),
        ));
    }
    let metric = MetricRef {
        namespace,
        name,
        dimensions: &dims,
        unit: unit(&input.unit)?,
    };
    let datapoints = aggregate(store, &metric, (start, end), period)
        .into_iter()
        .map(|(at, unit, stats)| {
            let mut members = vec![("Timestamp", Out::Time(at as f64))];
            for s in STATISTICS {
                if input.statistics.iter().any(|asked| asked == s) {
                    members.push((s, Out::Num(statistic(&stats, s))));
                }
            }
            members.push(("Unit", Out::Str(unit)));
            Out::Struct(members)
        })
        .collect();
    Ok(Out::Struct(vec![
        ("Label", Out::Str(name.clone())),
        ("Datapoints", Out::List(datapoints)),
    ]))
}

/// GetMetricData's input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetMetricDataInput {
    #[serde(default)]
    metric_data_queries: Vec<MetricDataQuery>,
    #[serde(default, deserialize_with = "lenient::time")]
    start_time: Option<f64>,
    #[serde(default, deserialize_with = "lenient::time")]
    end_time: Option<f64>,
    next_token: Option<String>,
    scan_by: Option<String>,
    #[serde(default, deserialize_with = "lenient::i64")]
    max_datapoints: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct MetricDataQuery {
    id: Option<String>,
    metric_stat: Option<MetricStat>,
    expression: Option<String>,
    label: Option<String>,
    #[serde(default, deserialize_with = "lenient::bool")]
    return_data: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct MetricStat {
    metric: Option<Metric>,
    #[serde(default, deserialize_with = "lenient::i64")]
    period: Option<i64>,
    stat: Option<String>,
    unit: Option<String>,
}

/// A metric's identity, as calls name it.
#[derive(Debug, Deserialize, Clone)]
#[serde(rename_all = "PascalCase")]
pub struct Metric {
    namespace: Option<String>,
    metric_name: Option<String>,
    #[serde(default)]
    dimensions: Vec<Dimension>,
}

/// One query's answer: timestamps and values, in the order asked.
struct Series {
    id: String,
    label: String,
    points: Vec<(u64, f64)>,
}

/// Values of several metrics per period; pages by `MaxDatapoints` over all queries in order.
pub fn get_metric_data(store: &MetricStore, input: GetMetricDataInput) -> Result<Out, ApiError> {
    if input.metric_data_queries.is_empty() || input.metric_data_queries.len() > 500 {
        return Err(invalid(
            "The collection MetricDataQueries must have 1 to 500 members.",
        ));
    }
    let descending = match input.scan_by.as_deref() {
        None | Some("TimestampDescending") => true,
        Some("TimestampAscending") => false,
        Some(other) => {
            return Err(invalid(format!(
                "The value {other} for ScanBy is not one of TimestampDescending, TimestampAscending."
            )));
        }
    };
    let max = input.max_datapoints.unwrap_or(100_800);
    if max < 1 {
        return Err(invalid("MaxDatapoints must be at least 1."));
    }
    let skip = page_start(input.next_token.as_deref())?;
    let mut answered = Vec::new();
    for (i, query) in input.metric_data_queries.iter().enumerate() {
        let series = answer(
            store,
            query,
            i,
            (input.start_time, input.end_time),
            descending,
        )?;
        if query.return_data.unwrap_or(true) {
            answered.push(series);
        }
    }
    let (results, next) = page(answered, skip, max as usize);
    let mut members = vec![("MetricDataResults", Out::List(results))];
    if let Some(next) = next {
        members.push(("NextToken", Out::Str(format!("sluice-{next}"))));
    }
    members.push(("Messages", Out::List(vec![])));
    Ok(Out::Struct(members))
}

fn answer(
    store: &MetricStore,
    query: &MetricDataQuery,
    index: usize,
    (start, end): (Option<f64>, Option<f64>),
    descending: bool,
) -> Result<Series, ApiError> {
    let what = format!("MetricDataQueries.member.{}", index + 1);
    let id = required(&format!("{what}.Id"), &query.id)?;
    let valid_id = id.len() <= 255
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid_id {
        return Err(invalid(format!(
            "The value {id} for {what}.Id must start with a lowercase letter and hold only letters, digits and _."
        )));
    }
    if query.expression.is_some() {
        return Err(invalid(format!(
            "{what}.Expression: metric math is not evaluated by this endpoint; ask for each metric with MetricStat and combine the values."
        )));
    }
    let stat = required(&format!("{what}.MetricStat"), &query.metric_stat)?;
    let metric = required(&format!("{what}.MetricStat.Metric"), &stat.metric)?;
    let namespace = required(
        &format!("{what}.MetricStat.Metric.Namespace"),
        &metric.namespace,
    )?;
    let name = required(
        &format!("{what}.MetricStat.Metric.MetricName"),
        &metric.metric_name,
    )?;
    let statistic_name = required(&format!("{what}.MetricStat.Stat"), &stat.stat)?;
    check_statistic(statistic_name, &format!("{what}.MetricStat.Stat"))?;
    let dims = dimensions(
        &metric.dimensions,
        &format!("{what}.MetricStat.Metric.Dimensions"),
    )?;
    let (start, end, period) = check_range(start, end, stat.period)?;
    let metric = MetricRef {
        namespace,
        name,
        dimensions: &dims,
        unit: unit(&stat.unit)?,
    };
    // Units are merged here: a query asks for one series of values.
    let mut points: Vec<(u64, f64)> = Vec::new();
    let mut sets: std::collections::BTreeMap<u64, Stats> = std::collections::BTreeMap::new();
    for (at, _, stats) in aggregate(store, &metric, (start, end), period) {
        sets.entry(at)
            .and_modify(|s| s.merge(&stats))
            .or_insert(stats);
    }
    points.extend(
        sets.iter()
            .map(|(at, s)| (*at, statistic(s, statistic_name))),
    );
    if descending {
        points.reverse();
    }
    Ok(Series {
        id: id.clone(),
        label: query.label.clone().unwrap_or_else(|| name.clone()),
        points,
    })
}

/// The results from datapoint `skip` on, at most `max` of them, and where the next page starts.
fn page(answered: Vec<Series>, skip: usize, max: usize) -> (Vec<Out>, Option<usize>) {
    let mut results = Vec::new();
    let (mut seen, mut taken) = (0usize, 0usize);
    let mut next = None;
    for series in answered {
        let len = series.points.len();
        let from = skip.saturating_sub(seen).min(len);
        let room = max - taken;
        let to = (from + room).min(len);
        seen += len;
        if to < len && next.is_none() {
            next = Some(seen - len + to);
        }
        let points = &series.points[from..to];
        taken += points.len();
        results.push(Out::Struct(vec![
            ("Id", Out::Str(series.id)),
            ("Label", Out::Str(series.label)),
            (
                "Timestamps",
                Out::List(points.iter().map(|(at, _)| Out::Time(*at as f64)).collect()),
            ),
            (
                "Values",
                Out::List(points.iter().map(|(_, v)| Out::Num(*v)).collect()),
            ),
            (
                "StatusCode",
                Out::Str(if to < len { "PartialData" } else { "Complete" }.to_owned()),
            ),
        ]));
    }
    (results, next)
}

/// ListMetrics' input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListMetricsInput {
    namespace: Option<String>,
    metric_name: Option<String>,
    #[serde(default)]
    dimensions: Vec<Dimension>,
    next_token: Option<String>,
    recently_active: Option<String>,
}

/// A metric's namespace, name and dimensions.
type MetricId = (String, String, Vec<(String, String)>);

/// Metrics per page.
const LIST_PAGE: usize = 500;

/// The metrics with datapoints in the window, filtered, 500 per page.
pub fn list_metrics(store: &MetricStore, input: ListMetricsInput) -> Result<Out, ApiError> {
    if input.dimensions.len() > 10 {
        return Err(invalid(
            "The collection Dimensions must not have more than 10 filters.",
        ));
    }
    let recent_since = match input.recently_active.as_deref() {
        None => 0,
        Some("PT3H") => now_s().saturating_sub(3 * 3600),
        Some(other) => {
            return Err(invalid(format!(
                "The value {other} for RecentlyActive is not PT3H."
            )));
        }
    };
    let filters: Vec<(String, Option<String>)> = input
        .dimensions
        .iter()
        .map(|d| {
            Ok((
                required("Dimensions.member.Name", &d.name)?.clone(),
                d.value.clone(),
            ))
        })
        .collect::<Result<_, ApiError>>()?;
    let found = store.series(|key| {
        input.namespace.as_ref().is_none_or(|n| *n == key.namespace)
            && input.metric_name.as_ref().is_none_or(|n| *n == key.name)
            && filters.iter().all(|(name, value)| {
                key.dimensions
                    .iter()
                    .any(|(n, v)| n == name && value.as_ref().is_none_or(|value| value == v))
            })
    });
    let mut metrics: Vec<MetricId> = found
        .into_iter()
        .filter(|(_, written)| *written >= recent_since)
        .map(|(key, _)| (key.namespace, key.name, key.dimensions))
        .collect();
    metrics.dedup();
    let skip = page_start(input.next_token.as_deref())?;
    let page: Vec<Out> = metrics
        .iter()
        .skip(skip)
        .take(LIST_PAGE)
        .map(|(namespace, name, dims)| metric_out(namespace, name, dims))
        .collect();
    let mut members = vec![("Metrics", Out::List(page))];
    if skip + LIST_PAGE < metrics.len() {
        members.push((
            "NextToken",
            Out::Str(format!("sluice-{}", skip + LIST_PAGE)),
        ));
    }
    Ok(Out::Struct(members))
}

/// A metric as replies give it.
pub fn metric_out(namespace: &str, name: &str, dims: &[(String, String)]) -> Out {
    Out::Struct(vec![
        ("Namespace", Out::Str(namespace.to_owned())),
        ("MetricName", Out::Str(name.to_owned())),
        ("Dimensions", dimensions_out(dims)),
    ])
}

/// Dimensions as replies give them.
pub fn dimensions_out(dims: &[(String, String)]) -> Out {
    Out::List(
        dims.iter()
            .map(|(n, v)| {
                Out::Struct(vec![
                    ("Name", Out::Str(n.clone())),
                    ("Value", Out::Str(v.clone())),
                ])
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(store: &MetricStore, from: usize, count: usize) -> Result<Out, ApiError> {
        let data: Vec<serde_json::Value> = (from..from + count)
            .map(|i| {
                serde_json::json!({"MetricName": "m", "Value": 1,
                    "Dimensions": [{"Name": "id", "Value": i.to_string()}]})
            })
            .collect();
        let input = serde_json::json!({"Namespace": "App", "MetricData": data});
        put_metric_data(store, serde_json::from_value(input).unwrap())
    }

    #[test]
    fn custom_series_are_capped_and_existing_ones_still_take_datapoints() {
        let store = MetricStore::in_memory(60, 3600);
        for batch in 0..SERIES_MAX / 1000 {
            put(&store, batch * 1000, 1000).unwrap();
        }
        let error = put(&store, SERIES_MAX, 1).unwrap_err();
        assert_eq!(error.name, "LimitExceededFault");
        assert!(error.message.contains("100000"), "{}", error.message);
        put(&store, 7, 1).expect("a series that exists takes more datapoints");
    }
}
