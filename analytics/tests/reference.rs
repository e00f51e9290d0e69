//! Reference data over a real engine: a table read from an object when the application
//! starts, joined with the input stream row by row and in a tumbling window; the objects
//! that cannot be used refused at start, saying why; and an application killed with SIGKILL
//! whose object changes before it starts again replays its journal over the table it ran
//! with (no row put twice), then takes up the new one.

mod common;

use sluice_analytics::*;
use sluice_core::{CreateStream, Durability, Engine, EngineConfig, PutRecord};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Set for the child process the kill test starts: the directory it runs in.
const CHILD_DIR: &str = "SLUICE_ANALYTICS_REFERENCE_CHILD";
const TICKERS: [&str; 3] = ["AMZN", "MSFT", "NVDA"];
const COMPANIES_V1: &str = "AMZN,Amazon\nMSFT,Microsoft\n";
const COMPANIES_V2: &str = "AMZN,Amazon.com\nMSFT,Microsoft Corp\n";

/// Objects as files: `<root>/<bucket>/<key>`.
#[derive(Debug)]
struct Files(PathBuf);

impl ReferenceObjects for Files {
    fn get<'a>(&'a self, bucket: &'a str, key: &'a str) -> ObjectRead<'a> {
        let read = std::fs::read(self.0.join(bucket).join(key)).map_err(|e| e.to_string());
        Box::pin(std::future::ready(read))
    }
}

fn write_object(dir: &Path, contents: &str) {
    let path = dir.join("objects/reference-bucket/companies.csv");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, contents).unwrap();
}

fn engine(dir: &Path) -> Engine {
    let mut config = EngineConfig::new(dir.join("engine"));
    config.cores = 1;
    config.segment_size_bytes = 8 << 20;
    Engine::open(config).unwrap()
}

fn column(name: &str, sql_type: &str, mapping: Option<&str>) -> RecordColumn {
    RecordColumn {
        name: name.into(),
        sql_type: sql_type.into(),
        mapping: mapping.map(Into::into),
    }
}

fn companies() -> Reference {
    Reference {
        table: "COMPANIES".into(),
        bucket: "reference-bucket".into(),
        key: "companies.csv".into(),
        schema: InputSchema {
            columns: vec![
                column("TICKER", "VARCHAR(4)", None),
                column("COMPANY", "VARCHAR(32)", None),
            ],
            format: RecordFormat::Csv {
                row_delimiter: "\n".into(),
                column_delimiter: ",".into(),
            },
        },
    }
}

/// Each trade of a known company with its name (CSV: id, company); per company and
/// second, its trades and their total (JSON).
fn spec() -> ApplicationSpec {
    ApplicationSpec {
        name: "named".into(),
        code: r#"
            CREATE OR REPLACE STREAM "NAMED" (id BIGINT, company VARCHAR(32));
            CREATE OR REPLACE STREAM "PER_SECOND" (company VARCHAR(32), trades BIGINT, total BIGINT);
            CREATE OR REPLACE PUMP "NAME" AS INSERT INTO "NAMED"
                SELECT STREAM s.id, c.company
                FROM "SOURCE_SQL_STREAM_001" AS s JOIN "COMPANIES" AS c ON s.ticker = c.ticker;
            CREATE OR REPLACE PUMP "COUNT" AS INSERT INTO "PER_SECOND"
                SELECT STREAM c.company, COUNT(*), SUM(s.price)
                FROM "SOURCE_SQL_STREAM_001" AS s JOIN "COMPANIES" AS c ON s.ticker = c.ticker
                GROUP BY c.company, STEP(s.ROWTIME BY INTERVAL '1' SECOND);"#
            .into(),
        input: Input {
            stream: "trades".into(),
            name_prefix: "SOURCE_SQL_STREAM".into(),
            parallelism: 1,
            kind: StreamKind::Stream,
            schema: InputSchema {
                columns: vec![
                    column("TICKER", "VARCHAR(4)", Some("$.ticker")),
                    column("PRICE", "INTEGER", Some("$.price")),
                    column("ID", "BIGINT", Some("$.id")),
                ],
                format: RecordFormat::Json,
            },
        },
        outputs: vec![
            Output {
                in_app_stream: "NAMED".into(),
                stream: "named".into(),
                format: OutputFormat::Csv,
                kind: StreamKind::Stream,
            },
            Output {
                in_app_stream: "PER_SECOND".into(),
                stream: "per_second".into(),
                format: OutputFormat::Json,
                kind: StreamKind::Stream,
            },
        ],
        references: vec![companies()],
    }
}

fn config(dir: &Path, state: bool) -> RunConfig {
    RunConfig {
        lateness_ms: 200,
        state_dir: state.then(|| dir.join("state")),
        // Written when the application starts only: a restart replays every step after.
        checkpoint_interval: Duration::from_secs(3_600),
        read_records: 25,
        objects: Some(Arc::new(Files(dir.join("objects")))),
        ..RunConfig::default()
    }
}

async fn create_streams(engine: &Engine) {
    // One shard: the trades are read in the order of their ids.
    for name in ["trades", "named", "per_second"] {
        engine
            .create_stream(CreateStream::provisioned(name, 1))
            .await
            .unwrap();
    }
}

fn price(id: u64) -> i64 {
    (id * 37 % 100) as i64
}

async fn put_trades(engine: &Engine, ids: std::ops::Range<u64>) {
    let stream = engine.stream("trades").unwrap();
    let lines: Vec<(String, String)> = ids
        .map(|id| {
            let ticker = TICKERS[(id % 3) as usize];
            let price = price(id);
            (
                format!("{ticker}-{id}"),
                format!(r#"{{"ticker":"{ticker}","price":{price},"id":{id}}}"#),
            )
        })
        .collect();
    for chunk in lines.chunks(100) {
        let puts: Vec<PutRecord<'_>> = chunk
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
    }
}

/// Every record of `stream` as text, read to the newest.
fn contents(engine: &Engine, stream: &str) -> Vec<String> {
    let mut reader = engine.stream(stream).unwrap().reader().unwrap();
    let mut found = Vec::new();
    loop {
        let Some(read) = reader.read(None).unwrap() else {
            break;
        };
        for record in read.records.records() {
            found.push(String::from_utf8(record.data.to_vec()).unwrap());
        }
        if read.records.millis_behind_latest == 0 {
            break;
        }
    }
    found
}

/// Waits until `stream` holds at least `count` records, and a moment more (a row put
/// twice would come in it); returns them.
async fn wait_for(engine: &Engine, stream: &str, count: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = contents(engine, stream);
        if found.len() >= count {
            tokio::time::sleep(Duration::from_millis(500)).await;
            return contents(engine, stream);
        }
        assert!(
            Instant::now() < deadline,
            "{stream} holds {} of {count} records",
            found.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The trades of known companies among `ids`.
fn named_ids(ids: std::ops::Range<u64>) -> Vec<u64> {
    ids.filter(|id| id % 3 != 2).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trades_are_joined_with_the_reference_table_row_by_row_and_per_window() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    create_streams(&engine).await;
    write_object(dir.path(), COMPANIES_V1);
    let runtime = tokio::runtime::Handle::current();
    let app = Application::start(&engine, spec(), config(dir.path(), false), &runtime)
        .await
        .unwrap();
    put_trades(&engine, 0..600).await;
    let expected = named_ids(0..600);
    let named = wait_for(&engine, "named", expected.len()).await;
    let mut by_id: BTreeMap<u64, String> = BTreeMap::new();
    for line in &named {
        let (id, company) = line.trim_end().split_once(',').unwrap();
        let before = by_id.insert(id.parse().unwrap(), company.to_owned());
        assert!(before.is_none(), "trade {id} named twice");
    }
    assert_eq!(by_id.keys().copied().collect::<Vec<_>>(), expected);
    for (id, company) in &by_id {
        let known = if id % 3 == 0 { "Amazon" } else { "Microsoft" };
        assert_eq!(company, known, "trade {id}");
    }
    // Per company, the windows' counts and totals add up to the trades put.
    let mut expected_totals: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for id in &expected {
        let company = if id % 3 == 0 { "Amazon" } else { "Microsoft" };
        let entry = expected_totals.entry(company).or_default();
        *entry = (entry.0 + 1, entry.1 + price(*id));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut totals: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        for line in contents(&engine, "per_second") {
            let row: serde_json::Value = serde_json::from_str(&line).unwrap();
            let entry = totals
                .entry(row["COMPANY"].as_str().unwrap().to_owned())
                .or_default();
            *entry = (
                entry.0 + row["TRADES"].as_i64().unwrap(),
                entry.1 + row["TOTAL"].as_i64().unwrap(),
            );
        }
        let totals: BTreeMap<&str, (i64, i64)> =
            totals.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        if totals == expected_totals {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{totals:?} != {expected_totals:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_that_cannot_be_used_are_refused_at_start_saying_why() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    create_streams(&engine).await;
    let runtime = tokio::runtime::Handle::current();
    let start = |config: RunConfig, spec: ApplicationSpec| {
        let (engine, runtime) = (engine.clone(), runtime.clone());
        async move {
            match Application::start(&engine, spec, config, &runtime).await {
                Ok(_) => panic!("started"),
                Err(e) => e.to_string(),
            }
        }
    };
    // No object.
    let message = start(config(dir.path(), false), spec()).await;
    assert!(
        message.contains("COMPANIES")
            && message.contains("s3://reference-bucket/companies.csv cannot be read"),
        "{message}"
    );
    // No store to read it from.
    let mut without_store = config(dir.path(), false);
    without_store.objects = None;
    let message = start(without_store, spec()).await;
    assert!(message.contains("no store"), "{message}");
    // A row that does not fit.
    write_object(dir.path(), "AMZN,Amazon\nMSFT\n");
    let message = start(config(dir.path(), false), spec()).await;
    assert!(
        message.contains("1 of its 2 rows") && message.contains("MSFT"),
        "{message}"
    );
    // A stream named as the table, a ROWTIME column, an unknown table in the code.
    write_object(dir.path(), COMPANIES_V1);
    let mut clash = spec();
    clash.code = clash
        .code
        .replace("STREAM \"NAMED\"", "STREAM \"COMPANIES\"");
    let message = start(config(dir.path(), false), clash).await;
    assert!(message.contains("reference table"), "{message}");
    let mut rowtime = spec();
    rowtime.references[0].schema.columns[1].name = "ROWTIME".into();
    let message = start(config(dir.path(), false), rowtime).await;
    assert!(message.contains("no ROWTIME"), "{message}");
    let mut rows_window = spec();
    rows_window.code = rows_window.code.replace(
        "SELECT STREAM s.id, c.company",
        "SELECT STREAM s.id, MAX(c.company) OVER (PARTITION BY s.ticker ROWS 2 PRECEDING)",
    );
    let message = start(config(dir.path(), false), rows_window).await;
    assert!(message.contains("reads no reference table"), "{message}");
    let mut missing = spec();
    missing.references.clear();
    let message = start(config(dir.path(), false), missing).await;
    assert!(message.contains("COMPANIES"), "{message}");
}

/// The kill test's child: runs the application until it is killed, printing how many rows
/// it has put.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the child process of the reference kill test"]
async fn reference_kill_child() {
    let dir = PathBuf::from(std::env::var(CHILD_DIR).expect("run by the kill test"));
    let engine = engine(&dir);
    let runtime = tokio::runtime::Handle::current();
    let app = Application::start(&engine, spec(), config(&dir, true), &runtime)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        println!("output {}", app.stats().output_records);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("the kill test never killed this process");
}

/// Runs the application in a child process until some rows are out, kills it with
/// SIGKILL, changes the object, and starts it again: the journal's steps are replayed over
/// the table they ran with, so the rows put before the kill are not put again under the
/// new names; the trades read after are named by the new object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_application_replays_over_the_table_it_ran_with_then_takes_up_the_new_one() {
    const TRADES: u64 = 1_500;
    let dir = tempfile::tempdir().unwrap();
    write_object(dir.path(), COMPANIES_V1);
    {
        let engine = engine(dir.path());
        create_streams(&engine).await;
        put_trades(&engine, 0..TRADES).await;
    }
    common::kill_child_after(
        "reference_kill_child",
        &[(CHILD_DIR, dir.path().as_os_str())],
        200,
    );

    write_object(dir.path(), COMPANIES_V2);
    let engine = engine(dir.path());
    let put_before = contents(&engine, "named").len();
    let runtime = tokio::runtime::Handle::current();
    refused_with_a_damaged_copy(&engine, dir.path()).await;
    let app = Application::start(&engine, spec(), config(dir.path(), true), &runtime)
        .await
        .unwrap();
    put_trades(&engine, TRADES..TRADES + 300).await;
    let expected = named_ids(0..TRADES + 300);
    let named = wait_for(&engine, "named", expected.len()).await;
    let stats = app.stats();
    assert!(stats.replayed_steps > 0, "{stats:?}");
    let mut by_id: BTreeMap<u64, String> = BTreeMap::new();
    for line in &named {
        let (id, company) = line.trim_end().split_once(',').unwrap();
        let before = by_id.insert(id.parse().unwrap(), company.to_owned());
        assert!(
            before.is_none(),
            "trade {id} put twice: {before:?}, {company}"
        );
    }
    assert_eq!(by_id.keys().copied().collect::<Vec<_>>(), expected);
    // Trades are read in order: the old names up to where the replay ended, the new after.
    let old: Vec<u64> = by_id
        .iter()
        .filter(|(_, c)| ["Amazon", "Microsoft"].contains(&c.as_str()))
        .map(|(id, _)| *id)
        .collect();
    assert!(old.len() >= put_before, "{} < {put_before}", old.len());
    let first_new = by_id.keys().copied().find(|id| !old.contains(id)).unwrap();
    assert!(old.iter().all(|&id| id < first_new), "names are mixed");
    assert!(first_new < TRADES + 300);
    for (id, company) in by_id.range(first_new..) {
        let known = if id % 3 == 0 {
            "Amazon.com"
        } else {
            "Microsoft Corp"
        };
        assert_eq!(company, known, "trade {id}");
    }
    eprintln!(
        "{put_before} rows put before the kill; the new names from trade {first_new}: {stats:?}"
    );
    app.stop().await;
    // The old copy is gone once no snapshot names it.
    assert_eq!(saved_copies(dir.path()).len(), 1);
}

/// The copy the journal's steps ran with, damaged: the start is refused, saying how to go
/// on; the copy is put back after.
async fn refused_with_a_damaged_copy(engine: &Engine, dir: &Path) {
    let runtime = tokio::runtime::Handle::current();
    let [saved] = saved_copies(dir).try_into().unwrap();
    let good = std::fs::read(&saved).unwrap();
    let mut damaged = good.clone();
    damaged[good.len() / 2] ^= 1;
    std::fs::write(&saved, damaged).unwrap();
    let refused = Application::start(engine, spec(), config(dir, true), &runtime).await;
    let message = refused.err().expect("refused").to_string();
    assert!(message.contains("NOW or TRIM_HORIZON"), "{message}");
    std::fs::write(&saved, good).unwrap();
}

/// The reference tables' copies saved in the state directory.
fn saved_copies(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir.join("state"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("reference-") && !name.ends_with(".tmp")
        })
        .collect()
}

/// Stopped (its steps all in its snapshot), its object changed, and started again: the new
/// object is saved before a step runs with it, and names the trades read after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_application_takes_up_a_changed_object_when_it_starts_again() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    create_streams(&engine).await;
    write_object(dir.path(), COMPANIES_V1);
    let runtime = tokio::runtime::Handle::current();
    let app = Application::start(&engine, spec(), config(dir.path(), true), &runtime)
        .await
        .unwrap();
    put_trades(&engine, 0..300).await;
    wait_for(&engine, "named", named_ids(0..300).len()).await;
    app.stop().await;
    let before = saved_copies(dir.path());
    assert_eq!(before.len(), 1);
    write_object(dir.path(), COMPANIES_V2);
    let app = Application::start(&engine, spec(), config(dir.path(), true), &runtime)
        .await
        .unwrap();
    let after = saved_copies(dir.path());
    assert_eq!(after.len(), 1);
    assert_ne!(after, before, "the new object's copy replaced the old");
    put_trades(&engine, 300..600).await;
    let named = wait_for(&engine, "named", named_ids(0..600).len()).await;
    assert_eq!(named.len(), named_ids(0..600).len(), "no row put twice");
    for line in &named {
        let (id, company) = line.trim_end().split_once(',').unwrap();
        let id: u64 = id.parse().unwrap();
        let known = match (id < 300, id % 3) {
            (true, 0) => "Amazon",
            (true, _) => "Microsoft",
            (false, 0) => "Amazon.com",
            (false, _) => "Microsoft Corp",
        };
        assert_eq!(company, known, "trade {id}");
    }
    app.stop().await;
}
