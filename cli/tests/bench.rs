//! `sluice bench` as a user runs it: the load generator's modes (closed loop, open loop at a
//! rate, tail and catch-up readers, a Zipf key draw) each put, read back and check every record,
//! and write results that agree with what was asked (JSON) and a plot (SVG).

mod common;

use std::path::Path;
use std::process::Command;

fn bench(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("bench")
        .arg("--quiet")
        .args(args)
        .output()
        .expect("run sluice bench")
}

/// Runs `sluice bench` and expects it to succeed; returns what it printed.
fn bench_ok(args: &[&str]) -> String {
    let out = bench(args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn results(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("results written")).expect("JSON")
}

#[test]
fn closed_loop_with_readers_checks_every_record_and_writes_results_and_a_plot() {
    let dir = tempfile::tempdir().unwrap();
    let (json, svg) = (dir.path().join("r.json"), dir.path().join("r.svg"));
    let stdout = bench_ok(&[
        "--records",
        "20000",
        "--record-size",
        "64",
        "--batch",
        "100",
        "--shards",
        "3",
        "--cores",
        "2",
        "--tail-readers",
        "2",
        "--catch-up-reader",
        "--zipf",
        "1.2",
        "--output",
        json.to_str().unwrap(),
        "--plot",
        svg.to_str().unwrap(),
    ]);
    assert!(stdout.contains("put to tail reader"), "{stdout}");
    let r = results(&json);
    assert_eq!(r["mode"], "closed-loop");
    assert_eq!(r["put"]["records"], 20000);
    assert_eq!(r["put"]["bytes"], 20000 * 64);
    assert_eq!(r["put_latency"]["count"], 200, "one latency per put call");
    assert_eq!(
        r["put_to_read_latency"]["count"],
        2 * 20000,
        "each tail reader timed each record"
    );
    assert_eq!(r["tail_read"]["records"], 2 * 20000);
    assert_eq!(r["read_back"]["records"], 20000);
    assert!(r["catch_up_read"]["records"].as_u64().unwrap() <= 20000);
    assert!(!r["timeline"].as_array().unwrap().is_empty());
    assert_eq!(r["options"]["zipf"], 1.2);
    let p50 = r["put_latency"]["p50_us"].as_u64().unwrap();
    let max = r["put_latency"]["max_us"].as_u64().unwrap();
    assert!(0 < p50 && p50 <= max);
    let plot = std::fs::read_to_string(&svg).unwrap();
    assert!(plot.starts_with("<svg") && plot.contains("Latency by percentile"));
}

#[test]
fn open_loop_keeps_to_its_schedule_and_times_puts_from_when_they_were_due() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    // 10,000 records at 20,000/s: the last batch is due 0.49 s after the start, so the run
    // cannot end sooner, however fast the engine is.
    bench_ok(&[
        "--records",
        "10000",
        "--record-size",
        "32",
        "--batch",
        "100",
        "--rate",
        "20000",
        "--callers",
        "4",
        "--cores",
        "1",
        "--output",
        json.to_str().unwrap(),
    ]);
    let r = results(&json);
    assert_eq!(r["mode"], "open-loop");
    assert_eq!(r["options"]["rate"], 20000);
    assert!(
        r["put"]["seconds"].as_f64().unwrap() >= 0.49,
        "{}",
        r["put"]
    );
    assert_eq!(r["put_latency"]["count"], 100);
}

/// Far more records than one caller can put at the asked rate: every put is due within the
/// first millisecond, so timed from when it was due, latency grows with the backlog and the
/// slowest put waited most of the run. Timing from when each put was sent (coordinated
/// omission) would report every put as fast.
#[test]
fn open_loop_latency_counts_the_backlog() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    bench_ok(&[
        "--records",
        "20000",
        "--record-size",
        "32",
        "--batch",
        "10",
        "--rate",
        "20000000",
        "--callers",
        "1",
        "--cores",
        "1",
        "--output",
        json.to_str().unwrap(),
    ]);
    let r = results(&json);
    let run_us = r["put"]["seconds"].as_f64().unwrap() * 1e6;
    let p99 = r["put_latency"]["p99_us"].as_f64().unwrap();
    assert!(
        p99 >= 0.5 * run_us,
        "p99 {p99} µs over a {run_us} µs run: {}",
        r["put_latency"]
    );
}

#[test]
fn bad_options_are_refused_with_a_reason() {
    for (args, reason) in [
        (
            &["--record-size", "8"][..],
            "--record-size must be at least 16",
        ),
        (&["--rate", "0"][..], "--rate"),
        (&["--batch", "501"][..], "--batch must be in 1..=500"),
        (&["--zipf=-1"][..], "--zipf"),
        (
            &["--clock-speed", "0"][..],
            "--clock-speed must be positive",
        ),
        (
            &["--clock-speed", "1000", "--tail-readers", "1"][..],
            "--clock-speed must be positive, and 1 with --tail-readers",
        ),
        (&["--spin-us", "2000000"][..], "--spin-us at most 1000000"),
        (
            &["--endpoint", "http://127.0.0.1:1", "--spin-us", "5"][..],
            "--spin-us applies to the embedded engine",
        ),
    ] {
        let out = bench(args);
        assert!(!out.status.success(), "{args:?} accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(reason), "{args:?}: {stderr}");
    }
}

#[test]
fn with_a_fast_clock_records_expire_and_the_rings_recycle_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    // 500 MB of 1 KiB records into 4 shards of 1 MiB segments, on a clock where the 24-hour
    // retention lasts ~0.1 s: each shard writes ~120 segments' worth and keeps a few.
    let stdout = bench_ok(&[
        "--records",
        "500000",
        "--record-size",
        "1024",
        "--shards",
        "4",
        "--segment-mib",
        "1",
        "--clock-speed",
        "1000000",
        "--output",
        json.to_str().unwrap(),
    ]);
    let r = results(&json);
    let (read, expired) = (
        r["read_back"]["records"].as_u64().unwrap(),
        r["expired"].as_u64().unwrap(),
    );
    // The read-back checked each shard's newest records, without a gap, up to its last.
    // (The bench counts as expired what it did not read back; it failed the run if a shard
    // returned a gap, a record older than the retention, or not its last record.)
    assert_eq!(read + expired, 500_000, "{stdout}");
    assert!(expired > 0, "nothing expired: {stdout}");
    assert!(read > 0, "nothing was retained: {stdout}");
    // A ring keeps its segment files for reuse, so the disk holds its high-water mark: what
    // was written within a retention period plus a maintenance interval, well below the
    // whole run's bytes when segments were recycled.
    let put_bytes = 500_000 * 1024;
    let disk = r["disk_bytes"].as_u64().unwrap();
    assert!(
        disk < put_bytes * 3 / 4,
        "the rings did not recycle: {disk} bytes on disk"
    );
}

#[test]
fn a_paced_catch_up_reader_keeps_to_its_pace_and_still_reads_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let stdout = bench_ok(&[
        "--records",
        "40000",
        "--record-size",
        "256",
        "--shards",
        "2",
        "--rate",
        "20000",
        "--catch-up-reader",
        "--catch-up-mb-per-sec",
        "2",
        "--output",
        json.to_str().unwrap(),
    ]);
    let r = results(&json);
    // 5 MB/s put for 2 s; the reader starts at the halfway point 5 MB behind and reads at
    // 2 MB/s: it never catches up while producers run, so it reads the whole stream at its
    // pace (the bench checked it had each record exactly once).
    let catch_up = &r["catch_up_read"];
    assert_eq!(catch_up["records"], 40000, "{stdout}");
    let mb_per_sec = catch_up["mb_per_sec"].as_f64().unwrap();
    assert!(
        mb_per_sec <= 2.0 * 1.1,
        "paced at 2 MB/s, read at {mb_per_sec}"
    );
}

/// `--endpoint` against `sluice serve`: the puts, three registered consumers subscribed to
/// every shard receiving every record once and in order, and the parallel catch-up read
/// checking every record's data.
#[test]
fn over_the_wire_every_consumer_gets_every_record_and_the_readers_check_them() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::TestServer::start(&dir.path().join("data"), &[]);
    let endpoint = server.endpoint();
    let out = bench_ok(&[
        "--endpoint",
        &endpoint,
        "--records",
        "20000",
        "--batch",
        "500",
        "--shards",
        "4",
        "--connections",
        "4",
        "--fan-out",
        "3",
    ]);
    let line = |start: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with(start))
            .unwrap_or_else(|| panic!("no line starting {start:?} in:\n{out}"))
            .to_owned()
    };
    // The bench fails unless every consumer received exactly each shard's acknowledged
    // records, once and in order, and the readers found each of them with its data.
    assert!(
        out.contains("20000 records of 1024 B in PutRecords of 500, 4 shards"),
        "{out}"
    );
    assert!(line("PutRecords:").contains("records/s"), "{out}");
    assert!(
        line("SubscribeToShard fan-out: 3 consumers x 4 shards, 60000 deliveries")
            .contains("records/s"),
        "every record to each of 3 consumers: {out}"
    );
    assert!(
        line("per consumer:").contains("after the last put"),
        "{out}"
    );
    assert!(line("put-to-delivery").contains(" p99 "), "{out}");
    assert!(
        line("GetRecords catch-up read, every shard at once").contains("records/s"),
        "{out}"
    );
    // More consumers than Kinesis allows, or --fan-out without --endpoint, are refused.
    let refused = bench(&["--endpoint", &endpoint, "--fan-out", "21"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("at most 20"));
    let refused = bench(&["--fan-out", "2"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--fan-out applies to --endpoint"));
}

/// The low-latency mode (`--spin-us`): the engine's core, the caller and the tail reader poll
/// before parking, and the run still puts and reads every record once; the results name the
/// setting.
#[test]
fn spinning_threads_still_read_every_record_once() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let out = bench_ok(&[
        "--records",
        "5000",
        "--record-size",
        "64",
        "--batch",
        "1",
        "--shards",
        "1",
        "--cores",
        "1",
        "--callers",
        "1",
        "--tail-readers",
        "1",
        "--rate",
        "5000",
        "--spin-us",
        "50",
        "--output",
        json.to_str().unwrap(),
    ]);
    assert!(out.contains("put to tail reader:"), "{out}");
    assert_eq!(
        results(&json)["options"]["spin_us"],
        50,
        "{}",
        results(&json)
    );
}

/// Durable puts into many shards through one filesystem sync (`--sync-scope filesystem`):
/// every record is put, read back and checked, and the results name the setting.
#[test]
fn durable_puts_through_one_filesystem_sync_read_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let out = bench_ok(&[
        "--records",
        "20000",
        "--record-size",
        "100",
        "--shards",
        "8",
        "--cores",
        "2",
        "--durability",
        "durable",
        "--sync-scope",
        "filesystem",
        "--output",
        json.to_str().unwrap(),
    ]);
    assert!(out.contains("sync scope Filesystem"), "{out}");
    assert!(out.contains("checksums verified"), "{out}");
    assert_eq!(results(&json)["options"]["sync_scope"], "filesystem");
}
