//! What CloudWatch-compatible metrics cost the data plane and the readers: recording a
//! PutRecords call's datapoints (the eleven stream-level series a call writes, keys built
//! as the call builds them) into a store already holding 100 streams' series; a day of one
//! series summed per minute (GetMetricStatistics' work); and one evaluation of 100 alarms.
//! The record figure is the one that matters: every put and read pays it.

use criterion::Criterion;
use sluice_benches::{criterion_config, mean_iteration_secs};
use sluice_server::cloudwatch::alarms::{Alarm, Alarms};
use sluice_server::cloudwatch::evaluate::evaluate_all;
use sluice_server::cloudwatch::metrics::{MetricRef, aggregate};
use sluice_server::cloudwatch::store::{MetricStore, SeriesKey, Stats, now_s};

const CALL_METRICS: [(&str, &str); 11] = [
    ("PutRecords.TotalRecords", "Count"),
    ("PutRecords.SuccessfulRecords", "Count"),
    ("PutRecords.FailedRecords", "Count"),
    ("PutRecords.ThrottledRecords", "Count"),
    ("PutRecords.Bytes", "Bytes"),
    ("IncomingRecords", "Count"),
    ("IncomingBytes", "Bytes"),
    ("WriteProvisionedThroughputExceeded", "Count"),
    ("PutRecords.Latency", "Milliseconds"),
    ("PutRecords.Success", "Count"),
    ("PutRecords.Records", "Count"),
];

fn call_points(stream: &str) -> Vec<(SeriesKey, Stats)> {
    CALL_METRICS
        .iter()
        .map(|(name, unit)| {
            let key = SeriesKey::new("AWS/Kinesis", name, &[("StreamName", stream)], unit);
            (key, Stats::one(1.0))
        })
        .collect()
}

fn alarm(i: usize) -> Alarm {
    Alarm {
        name: format!("alarm-{i}"),
        description: None,
        actions_enabled: false,
        ok_actions: vec![],
        alarm_actions: vec![],
        insufficient_data_actions: vec![],
        namespace: "AWS/Kinesis".into(),
        metric_name: "IncomingRecords".into(),
        dimensions: vec![("StreamName".into(), format!("stream-{i}"))],
        unit: None,
        statistic: "Sum".into(),
        period: 60,
        evaluation_periods: 5,
        datapoints_to_alarm: 3,
        threshold: 1e12,
        comparison: "GreaterThanThreshold".into(),
        treat_missing_data: "missing".into(),
        state: "OK".into(),
        state_reason: String::new(),
        state_reason_data: None,
        state_updated: 0.0,
        state_transitioned: 0.0,
        configuration_updated: 0.0,
    }
}

fn main() {
    sluice_benches::mark_run_start();
    let store = MetricStore::in_memory(60, 86_400);
    let now = now_s();
    // 100 streams with a day of datapoints each.
    for stream in 0..100 {
        let points = call_points(&format!("stream-{stream}"));
        for minute in 0..1440 {
            store.record(now - minute * 60, &points);
        }
    }
    let dir = tempfile::tempdir().expect("a directory for alarms.json");
    let alarms = Alarms::open(dir.path()).expect("alarms");
    alarms
        .update(|all| {
            for i in 0..100 {
                all.insert(format!("alarm-{i}"), alarm(i));
            }
            Ok(())
        })
        .expect("alarms saved");
    let mut criterion: Criterion = criterion_config();
    let mut group = criterion.benchmark_group("cloudwatch");
    group.bench_function("record_put_records_call", |b| {
        b.iter(|| store.record(now, &call_points(std::hint::black_box("stream-7"))))
    });
    let dims = vec![("StreamName".to_owned(), "stream-7".to_owned())];
    group.bench_function("day_of_one_series_per_minute", |b| {
        let metric = MetricRef {
            namespace: "AWS/Kinesis",
            name: "IncomingRecords",
            dimensions: &dims,
            unit: None,
        };
        b.iter(|| aggregate(&store, &metric, (now - 86_400, now), 60).len())
    });
    group.bench_function("evaluate_100_alarms", |b| {
        b.iter(|| evaluate_all(&alarms, &store, now as f64).len())
    });
    group.finish();
    criterion.final_summary();
    for (name, what) in [
        (
            "record_put_records_call",
            "recording a PutRecords call's datapoints",
        ),
        (
            "day_of_one_series_per_minute",
            "a day of one series per minute",
        ),
        ("evaluate_100_alarms", "evaluating 100 alarms"),
    ] {
        if let Some(secs) = mean_iteration_secs("cloudwatch", name) {
            println!("{what}: {:.1} µs", secs * 1e6);
        }
    }
}
