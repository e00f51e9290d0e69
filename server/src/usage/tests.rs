//! Known workloads give known bills: the meter driven over made-up times, sampled every 10
//! seconds as the upkeep thread samples it.

use super::*;

const MINUTE_MS: u64 = 60_000;
const SAMPLE_MS: u64 = 10_000;

/// An hour-aligned time ten days ago.
fn t0() -> u64 {
    let now = crate::clock::now_ms();
    now - now % (HOUR_S * 1000) - 10 * 24 * HOUR_S * 1000
}

fn stream(name: &str, mode: StreamMode, created_ms: u64, shards: usize) -> StreamSample {
    StreamSample {
        name: name.to_owned(),
        mode,
        created_ms,
        open_shards: shards,
        retention_hours: 24,
        consumers: 0,
    }
}

/// Samples `streams` every 10 s over `[from_ms, to_ms]`.
fn run(meter: &Meter, streams: &[StreamSample], from_ms: u64, to_ms: u64) {
    let mut at = from_ms;
    while at <= to_ms {
        meter.sample(at, (streams, true));
        at += SAMPLE_MS;
    }
}

fn quantity(lines: &[UsageLine], resource: &str, usage: UsageType) -> f64 {
    lines
        .iter()
        .filter(|l| l.resource == resource && l.usage_type == usage.name)
        .map(|l| l.quantity)
        .sum()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn a_two_shard_stream_for_90_minutes_with_1000_puts_of_30_kb() {
    let t0 = t0();
    let meter = Meter::in_memory("123456789012", "us-east-1", t0);
    let s = stream("orders", StreamMode::Provisioned, t0, 2);
    run(&meter, std::slice::from_ref(&s), t0, t0 + 90 * MINUTE_MS);
    for i in 0..1000 {
        // 30 KB of data and a short key, spread over the 90 minutes.
        let at = t0 + i * 90 * MINUTE_MS / 1000;
        meter.records_put(at, "orders", StreamMode::Provisioned, &[30 * 1024 + 8]);
    }
    let bill = meter.report(t0 / 1000, (t0 + 90 * MINUTE_MS) / 1000);
    assert!(
        close(quantity(&bill, "stream/orders", SHARD_HOUR), 3.0),
        "{bill:?}"
    );
    assert_eq!(quantity(&bill, "stream/orders", PUT_UNITS), 2000.0);
    // Nothing else: standard retention, no consumers.
    let types: Vec<&str> = bill.iter().map(|l| l.usage_type).collect();
    assert_eq!(types, [SHARD_HOUR.name, PUT_UNITS.name]);
    // The bill is split by hour: the first hour alone holds two shard-hours.
    let first_hour = meter.report(t0 / 1000, t0 / 1000 + 3600);
    assert!(close(
        quantity(&first_hour, "stream/orders", SHARD_HOUR),
        2.0
    ));
}

#[test]
fn resharding_retention_and_consumers_change_what_accrues() {
    let t0 = t0();
    let meter = Meter::in_memory("123456789012", "us-east-1", t0);
    let mut s = stream("clicks", StreamMode::Provisioned, t0, 2);
    s.retention_hours = 48;
    s.consumers = 3;
    run(&meter, std::slice::from_ref(&s), t0, t0 + 30 * MINUTE_MS);
    s.open_shards = 4;
    run(
        &meter,
        std::slice::from_ref(&s),
        t0 + 30 * MINUTE_MS,
        t0 + 60 * MINUTE_MS,
    );
    let bill = meter.report(t0 / 1000, (t0 + 60 * MINUTE_MS) / 1000);
    let r = "stream/clicks";
    assert!(close(quantity(&bill, r, SHARD_HOUR), 1.0 + 2.0));
    assert!(close(quantity(&bill, r, EXTENDED_RETENTION), 3.0));
    assert!(close(quantity(&bill, r, FANOUT_HOURS), 3.0 * 3.0));
    // A stream deleted and created again under the same name accrues from its creation.
    let again = stream("clicks", StreamMode::Provisioned, t0 + 90 * MINUTE_MS, 1);
    run(&meter, &[], t0 + 70 * MINUTE_MS, t0 + 80 * MINUTE_MS);
    run(
        &meter,
        std::slice::from_ref(&again),
        t0 + 95 * MINUTE_MS,
        t0 + 150 * MINUTE_MS,
    );
    let bill = meter.report(t0 / 1000, (t0 + 150 * MINUTE_MS) / 1000);
    assert!(close(quantity(&bill, r, SHARD_HOUR), 3.0 + 1.0));
    // A sample that could not list every stream forgets none: the stream it missed goes on
    // from its last sample, not again from its creation.
    meter.sample(t0 + 160 * MINUTE_MS, (&[], false));
    meter.sample(t0 + 170 * MINUTE_MS, (std::slice::from_ref(&again), true));
    let bill = meter.report(t0 / 1000, (t0 + 170 * MINUTE_MS) / 1000);
    assert!(close(
        quantity(&bill, r, SHARD_HOUR),
        3.0 + 1.0 + 20.0 / 60.0
    ));
}

#[test]
fn on_demand_streams_bill_stream_hours_and_rounded_bytes() {
    let t0 = t0();
    let meter = Meter::in_memory("123456789012", "us-east-1", t0);
    let s = stream("od", StreamMode::OnDemand, t0, 4);
    run(&meter, std::slice::from_ref(&s), t0, t0 + 90 * MINUTE_MS);
    meter.records_put(t0 + 1000, "od", StreamMode::OnDemand, &[1; 1000]);
    meter.records_put(t0 + 2000, "od", StreamMode::OnDemand, &[1025]);
    meter.records_read(t0 + 3000, "od", StreamMode::OnDemand, 3 * 1024);
    meter.records_read(t0 + 3000, "provisioned", StreamMode::Provisioned, 3 * 1024);
    let bill = meter.report(t0 / 1000, (t0 + 90 * MINUTE_MS) / 1000);
    assert!(close(quantity(&bill, "stream/od", ON_DEMAND_HOURS), 1.5));
    assert!(close(
        quantity(&bill, "stream/od", ON_DEMAND_IN),
        1002.0 * 1024.0 / GB
    ));
    assert!(close(
        quantity(&bill, "stream/od", ON_DEMAND_OUT),
        3.0 * 1024.0 / GB
    ));
    assert_eq!(quantity(&bill, "stream/od", SHARD_HOUR), 0.0);
    assert!(
        bill.iter().all(|l| l.resource != "stream/provisioned"),
        "GetRecords of a provisioned stream is not billed"
    );
}

#[test]
fn firehose_rounds_each_record_up_to_5_kib_and_bills_conversion() {
    let t0 = t0();
    let meter = Meter::in_memory("123456789012", "us-east-1", t0);
    meter.firehose_put(t0, "logs", &[1, 5120, 5121], false);
    meter.firehose_put(t0, "parquet", &[100], true);
    let bill = meter.report(t0 / 1000, t0 / 1000 + 1);
    let expected = (5120.0 + 5120.0 + 10240.0) / GB;
    assert!(close(
        quantity(&bill, "deliverystream/logs", FIREHOSE_IN),
        expected
    ));
    assert_eq!(
        quantity(&bill, "deliverystream/logs", FIREHOSE_CONVERSION),
        0.0
    );
    assert!(close(
        quantity(&bill, "deliverystream/parquet", FIREHOSE_CONVERSION),
        5120.0 / GB
    ));
}

#[test]
fn data_kept_past_seven_days_bills_long_term_retention() {
    let t0 = t0();
    let meter = Meter::in_memory("123456789012", "us-east-1", t0);
    let mut s = stream("archive", StreamMode::Provisioned, t0, 1);
    s.retention_hours = 240;
    meter.records_put(t0 + 1, "archive", StreamMode::Provisioned, &[1 << 30]);
    // Sampled once, eight days on: the hours accrue one by one from creation.
    meter.sample(t0 + 192 * HOUR_S * 1000, (&[s], true));
    let bill = meter.report(t0 / 1000, t0 / 1000 + 192 * HOUR_S);
    // The hour of the put is wholly older than 7 days from hour 169 on: 23 hours of 1 GB.
    let expected = 23.0 / MONTH_HOURS;
    let got = quantity(&bill, "stream/archive", LONG_TERM_RETENTION);
    assert!(close(got, expected), "{got} != {expected}");
    assert!(close(
        quantity(&bill, "stream/archive", EXTENDED_RETENTION),
        192.0
    ));
}
