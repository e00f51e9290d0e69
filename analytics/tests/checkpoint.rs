//! Checkpoints and exactly-once output over a real engine: an application stopped and
//! started again resumes where it was; one killed with SIGKILL in the middle of its windows
//! and started again puts exactly the rows an uninterrupted run puts, no row lost or twice.

mod common;

use sluice_analytics::*;
use sluice_core::{CreateStream, Durability, Engine, EngineConfig, ManualClock, PutRecord};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Set for the child process the kill test starts: the directory it runs in.
const CHILD_DIR: &str = "SLUICE_ANALYTICS_KILL_CHILD";
/// Set for the child process: "1" when it writes snapshots as it goes.
const CHILD_SNAPSHOTS: &str = "SLUICE_ANALYTICS_KILL_CHILD_SNAPSHOTS";
const TICKERS: [&str; 4] = ["AMZN", "MSFT", "NVDA", "ORCL"];

fn engine(dir: &Path, clock: Option<Arc<ManualClock>>) -> Engine {
    let mut config = EngineConfig::new(dir.join("engine"));
    config.cores = 1;
    config.segment_size_bytes = 8 << 20;
    if let Some(clock) = clock {
        config.clock = clock;
    }
    Engine::open(config).unwrap()
}

/// Per second and ticker, the trades and their total (with the window's start, so a window
/// put twice shows); per trade, its ticker's trades and total of the last two seconds (a
/// sliding window); the dear trades, row by row, each with its anomaly score (a Random
/// Cut Forest, saved in the checkpoint); and each cheap trade paired with its ticker's dear
/// trade 32 trades before it (a windowed join of two streams).
fn spec(name: &str, suffix: &str) -> ApplicationSpec {
    let column = |name: &str, sql_type: &str, mapping: &str| RecordColumn {
        name: name.into(),
        sql_type: sql_type.into(),
        mapping: Some(mapping.into()),
    };
    ApplicationSpec {
        name: name.into(),
        code: r#"
            CREATE OR REPLACE STREAM "DEAR" (ticker VARCHAR(4), price INTEGER, id BIGINT, score DOUBLE);
            CREATE OR REPLACE STREAM "PER_SECOND" (second_start TIMESTAMP, ticker VARCHAR(4), trades BIGINT, total BIGINT);
            CREATE OR REPLACE STREAM "RECENT" (id BIGINT, ticker VARCHAR(4), trades BIGINT, total BIGINT);
            CREATE OR REPLACE PUMP "SLIDE" AS INSERT INTO "RECENT"
                SELECT STREAM id, ticker, COUNT(*) OVER W, SUM(price) OVER W
                FROM "SOURCE_SQL_STREAM_001"
                WINDOW W AS (PARTITION BY ticker RANGE INTERVAL '2' SECOND PRECEDING);
            CREATE OR REPLACE PUMP "FILTER" AS INSERT INTO "DEAR"
                SELECT STREAM ticker, price, id, ANOMALY_SCORE FROM TABLE(RANDOM_CUT_FOREST(CURSOR(
                    SELECT STREAM ticker, price, id FROM "SOURCE_SQL_STREAM_001" WHERE price >= 50),
                    30, 64, 10000, 1));
            CREATE OR REPLACE PUMP "COUNT" AS INSERT INTO "PER_SECOND"
                SELECT STREAM STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '1' SECOND),
                    ticker, COUNT(*), SUM(price)
                FROM "SOURCE_SQL_STREAM_001"
                GROUP BY ticker, STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '1' SECOND);
            CREATE OR REPLACE STREAM "CHEAP" (ticker VARCHAR(4), id BIGINT);
            CREATE OR REPLACE PUMP "TAKE_CHEAP" AS INSERT INTO "CHEAP"
                SELECT STREAM ticker, id FROM "SOURCE_SQL_STREAM_001" WHERE price < 50;
            CREATE OR REPLACE STREAM "PAIRS" (cheap_id BIGINT, dear_id BIGINT);
            CREATE OR REPLACE PUMP "PAIR" AS INSERT INTO "PAIRS"
                SELECT STREAM c.id, s.id FROM "CHEAP" AS c
                JOIN "SOURCE_SQL_STREAM_001" OVER (RANGE INTERVAL '1' SECOND PRECEDING) AS s
                ON c.ticker = s.ticker AND c.id = s.id + 32 AND s.price >= 50;"#
            .into(),
        input: Input {
            stream: "trades".into(),
            name_prefix: "SOURCE_SQL_STREAM".into(),
            parallelism: 1,
            kind: StreamKind::Stream,
            schema: InputSchema {
                columns: vec![
                    column("TICKER", "VARCHAR(4)", "$.ticker"),
                    column("PRICE", "INTEGER", "$.price"),
                    column("ID", "BIGINT", "$.id"),
                ],
                format: RecordFormat::Json,
            },
        },
        outputs: vec![
            Output {
                in_app_stream: "PER_SECOND".into(),
                stream: format!("counts{suffix}"),
                format: OutputFormat::Json,
                kind: StreamKind::Stream,
            },
            Output {
                in_app_stream: "RECENT".into(),
                stream: format!("recent{suffix}"),
                format: OutputFormat::Json,
                kind: StreamKind::Stream,
            },
            Output {
                in_app_stream: "PAIRS".into(),
                stream: format!("pairs{suffix}"),
                format: OutputFormat::Json,
                kind: StreamKind::Stream,
            },
            Output {
                in_app_stream: "DEAR".into(),
                stream: format!("dear{suffix}"),
                format: OutputFormat::Csv,
                kind: StreamKind::Stream,
            },
        ],
        references: Vec::new(),
    }
}

fn config(state_dir: Option<&Path>) -> RunConfig {
    RunConfig {
        lateness_ms: 200,
        state_dir: state_dir.map(Path::to_path_buf),
        checkpoint_interval: Duration::from_millis(40),
        read_records: 25,
        ..RunConfig::default()
    }
}

/// The kill test's child writes its whole state every 40 ms, or only when it starts (so a
/// restart replays every step it took from the journal).
fn child_config(state_dir: &Path, snapshots: bool) -> RunConfig {
    let mut config = config(Some(state_dir));
    if !snapshots {
        config.checkpoint_interval = Duration::from_secs(3_600);
    }
    config
}

async fn create_streams(engine: &Engine, suffixes: &[&str]) {
    engine
        .create_stream(CreateStream::provisioned("trades", 3))
        .await
        .unwrap();
    for suffix in suffixes {
        for (name, shards) in [("counts", 1), ("dear", 2), ("recent", 1), ("pairs", 1)] {
            engine
                .create_stream(CreateStream::provisioned(format!("{name}{suffix}"), shards))
                .await
                .unwrap();
        }
    }
}

/// Puts `count` trades (ids from `first_id`), the clock moving 50 ms every 20 records.
async fn put_trades(engine: &Engine, clock: &ManualClock, first_id: u64, count: u64) {
    let stream = engine.stream("trades").unwrap();
    let mut id = first_id;
    while id < first_id + count {
        let lines: Vec<(String, String)> = (id..(id + 20).min(first_id + count))
            .map(|i| {
                let ticker = TICKERS[(i % 4) as usize];
                let line = format!(
                    r#"{{"ticker":"{ticker}","price":{},"id":{i}}}"#,
                    i * 37 % 100
                );
                (format!("{ticker}-{i}"), line)
            })
            .collect();
        let puts: Vec<PutRecord<'_>> = lines
            .iter()
            .map(|(key, line)| PutRecord::new(key, line.as_bytes()))
            .collect();
        for result in stream
            .put_batch(&puts)
            .durability(Durability::Durable)
            .await
            .unwrap()
        {
            result.unwrap();
        }
        id += puts.len() as u64;
        clock.advance_ms(50);
    }
}

/// Every record of `stream` (as text, sorted), read to the newest.
fn contents(engine: &Engine, stream: &str) -> Vec<String> {
    let stream = engine.stream(stream).unwrap();
    let mut reader = stream.reader().unwrap();
    let mut found = Vec::new();
    let mut at_tip = std::collections::BTreeSet::new();
    while !reader.active_shards().iter().all(|s| at_tip.contains(s)) {
        let Some(read) = reader.read(None).unwrap() else {
            break;
        };
        for record in read.records.records() {
            found.push(String::from_utf8(record.data.to_vec()).unwrap());
        }
        if read.records.millis_behind_latest == 0 {
            at_tip.insert(read.shard_id);
        }
    }
    found.sort();
    found
}

/// Waits until the two applications' outputs hold the same records, every trade is counted
/// and every dear trade and pair out (`later_runs`: the first ids of runs of `put_trades`
/// after the first), and they stay so for a second.
async fn wait_equal(engine: &Engine, trades: u64, later_runs: &[u64]) {
    let pairs = [
        ("counts", "counts_ref"),
        ("dear", "dear_ref"),
        ("recent", "recent_ref"),
        ("pairs", "pairs_ref"),
    ];
    let expected_dear = dear_count(0..trades);
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut same_since: Option<Instant> = None;
    loop {
        let same = pairs
            .iter()
            .all(|(a, b)| contents(engine, a) == contents(engine, b))
            && contents(engine, "dear_ref").len() == expected_dear
            && contents(engine, "recent_ref").len() == trades as usize
            && contents(engine, "pairs_ref").len() == pair_count(trades, later_runs)
            && counted(&contents(engine, "counts_ref")) == trades as i64;
        match (same, same_since) {
            (true, Some(since)) if since.elapsed() > Duration::from_secs(1) => return,
            (true, None) => same_since = Some(Instant::now()),
            (false, _) => same_since = None,
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "outputs never agreed: {:?}",
            pairs.map(|(a, b)| (a, contents(engine, a).len(), contents(engine, b).len()))
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn dear_count(ids: std::ops::Range<u64>) -> usize {
    ids.filter(|i| i * 37 % 100 >= 50).count()
}

/// The cheap trades whose ticker's trade 32 before was dear and put in the same run of
/// `put_trades` (at most 100 ms before it, within the join's window): the pairs the join
/// makes.
fn pair_count(trades: u64, later_runs: &[u64]) -> usize {
    (32..trades)
        .filter(|i| !later_runs.iter().any(|first| (i - 31..=*i).contains(first)))
        .filter(|i| i * 37 % 100 < 50 && (i - 32) * 37 % 100 >= 50)
        .count()
}

/// The trades the windows count.
fn counted(lines: &[String]) -> i64 {
    windows(lines).values().map(|(n, _)| n).sum()
}

/// Per (second, ticker), the window's rows: each must appear once.
fn windows(lines: &[String]) -> BTreeMap<(String, String), (i64, i64)> {
    let mut windows = BTreeMap::new();
    for line in lines {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        let key = (
            row["SECOND_START"].as_str().unwrap().to_owned(),
            row["TICKER"].as_str().unwrap().to_owned(),
        );
        let value = (
            row["TRADES"].as_i64().unwrap(),
            row["TOTAL"].as_i64().unwrap(),
        );
        assert!(
            windows.insert(key, value).is_none(),
            "a window put twice: {line}"
        );
    }
    windows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_application_resumes_where_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let start_ms = now_ms() - 600_000;
    let clock = Arc::new(ManualClock::new(start_ms));
    let engine = engine(dir.path(), Some(clock.clone()));
    create_streams(&engine, &["", "_ref"]).await;
    put_trades(&engine, &clock, 0, 2_000).await;
    let state = dir.path().join("state");
    let runtime = tokio::runtime::Handle::current();
    let first = Application::start(&engine, spec("app", ""), config(Some(&state)), &runtime)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while contents(&engine, "dear").len() < dear_count(0..2_000) {
        assert!(Instant::now() < deadline, "{:?}", first.stats());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.stop().await;
    // Newer trades, after the first run's watermark; then the same application again.
    clock.set_ms(now_ms());
    put_trades(&engine, &clock, 2_000, 1_000).await;
    let second = Application::start(&engine, spec("app", ""), config(Some(&state)), &runtime)
        .await
        .unwrap();
    let reference = Application::start(&engine, spec("ref", "_ref"), config(None), &runtime)
        .await
        .unwrap();
    wait_equal(&engine, 3_000, &[2_000]).await;
    let stats = second.stats();
    assert!(stats.resumed_at_step > 0, "{stats:?}");
    // It read only the new trades.
    assert_eq!(stats.input_records, 1_000, "{stats:?}");
    assert_eq!(counted(&contents(&engine, "counts")), 3_000);
    second.stop().await;
    reference.stop().await;
}

/// The kill test's child: runs the application until it is killed, printing how many rows
/// it has put.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the child process of the kill tests"]
async fn kill_child() {
    let dir = std::path::PathBuf::from(std::env::var(CHILD_DIR).expect("run by the kill test"));
    let snapshots = std::env::var(CHILD_SNAPSHOTS).as_deref() == Ok("1");
    let engine = engine(&dir, None);
    let runtime = tokio::runtime::Handle::current();
    let config = child_config(&dir.join("state"), snapshots);
    let app = Application::start(&engine, spec("app", ""), config, &runtime)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        println!("output {}", app.stats().output_records);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("the kill test never killed this process");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_application_replays_its_journal_and_puts_every_row_once() {
    let stats = killed_and_restarted(false).await;
    assert!(stats.replayed_steps > 0, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_application_resumes_from_its_snapshots_and_puts_every_row_once() {
    killed_and_restarted(true).await;
}

/// Runs the application in a child process, kills it with SIGKILL in the middle of its
/// work, starts it again beside a reference run that is never interrupted, and checks that
/// both put the same rows; returns the restarted run's counters.
async fn killed_and_restarted(snapshots: bool) -> ApplicationSnapshot {
    const TRADES: u64 = 6_000;
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(now_ms() - 1_200_000));
    {
        let engine = engine(dir.path(), Some(clock.clone()));
        create_streams(&engine, &["", "_ref"]).await;
        put_trades(&engine, &clock, 0, TRADES).await;
    }
    // Killed once a fifth of the dear trades are out: windows are open, steps journaled.
    let snapshots_env = std::ffi::OsStr::new(if snapshots { "1" } else { "0" });
    common::kill_child_after(
        "kill_child",
        &[
            (CHILD_DIR, dir.path().as_os_str()),
            (CHILD_SNAPSHOTS, snapshots_env),
        ],
        dear_count(0..TRADES) as u64 / 5,
    );

    let engine = engine(dir.path(), None);
    let put_before = contents(&engine, "dear").len() + contents(&engine, "counts").len();
    let runtime = tokio::runtime::Handle::current();
    let state = dir.path().join("state");
    let restarted = Application::start(
        &engine,
        spec("app", ""),
        child_config(&state, snapshots),
        &runtime,
    )
    .await
    .unwrap();
    let reference = Application::start(&engine, spec("ref", "_ref"), config(None), &runtime)
        .await
        .unwrap();
    wait_equal(&engine, TRADES, &[]).await;
    let stats = restarted.stats();
    assert!(stats.resumed_at_step > 0, "{stats:?}");
    assert!(
        stats.output_records > 0,
        "the child had put everything before the kill: {stats:?} ({put_before} put before)"
    );
    assert_eq!(counted(&contents(&engine, "counts")), TRADES as i64);
    assert_eq!(
        windows(&contents(&engine, "counts")),
        windows(&contents(&engine, "counts_ref"))
    );
    eprintln!("restarted after {put_before} rows: {stats:?}");
    restarted.stop().await;
    reference.stop().await;
    stats
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}
