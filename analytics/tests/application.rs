//! An application running over a real engine: records put into a two-shard stream are read
//! along the lineage, filtered and counted per second, and the counts land in an output stream
//! as JSON, adding up to what was put; records that do not fit the schema are counted.

use sluice_analytics::*;
use sluice_core::{CreateStream, Durability, Engine, EngineConfig, PutRecord};
use std::sync::Arc;
use std::time::Duration;

fn engine(dir: &std::path::Path) -> Engine {
    let mut config = EngineConfig::new(dir.join("engine"));
    config.cores = 1;
    config.segment_size_bytes = 8 << 20;
    Engine::open(config).unwrap()
}

fn spec() -> ApplicationSpec {
    let column = |name: &str, sql_type: &str, mapping: &str| RecordColumn {
        name: name.into(),
        sql_type: sql_type.into(),
        mapping: Some(mapping.into()),
    };
    ApplicationSpec {
        name: "counter".into(),
        code: r#"
            CREATE OR REPLACE STREAM "DEAR" (ticker VARCHAR(4), price INTEGER);
            CREATE OR REPLACE STREAM "PER_SECOND" (ticker VARCHAR(4), trades BIGINT, total BIGINT);
            CREATE OR REPLACE PUMP "FILTER" AS INSERT INTO "DEAR"
                SELECT STREAM ticker, price FROM "SOURCE_SQL_STREAM_001" WHERE price >= 50;
            CREATE OR REPLACE PUMP "COUNT" AS INSERT INTO "PER_SECOND"
                SELECT STREAM ticker, COUNT(*), SUM(price) FROM "DEAR"
                GROUP BY ticker, STEP("DEAR".ROWTIME BY INTERVAL '1' SECOND);"#
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
                ],
                format: RecordFormat::Json,
            },
        },
        outputs: vec![
            Output {
                in_app_stream: "PER_SECOND".into(),
                stream: "counts".into(),
                format: OutputFormat::Json,
                kind: StreamKind::Stream,
            },
            Output {
                in_app_stream: ERROR_STREAM.into(),
                stream: "errors".into(),
                format: OutputFormat::Json,
                kind: StreamKind::Stream,
            },
        ],
        references: Vec::new(),
    }
}

/// Every record of `stream`, as JSON.
fn read_all(engine: &Engine, stream: &str) -> Vec<serde_json::Value> {
    let mut reader = engine.stream(stream).unwrap().reader().unwrap();
    let mut found = Vec::new();
    for _ in 0..16 {
        if let Some(read) = reader.read(None).unwrap() {
            for record in read.records.records() {
                found.push(serde_json::from_slice(record.data).unwrap());
            }
        }
    }
    found
}

/// Each bad record is a row of the error stream, with why and the record itself; returns
/// how many.
fn error_rows(engine: &Engine) -> usize {
    let errors = read_all(engine, "errors");
    assert_eq!(errors.len(), 6, "{errors:?}");
    for error in &errors {
        assert_eq!(error["ERROR_LEVEL"], "ERROR");
        assert_eq!(error["ERROR_NAME"], "RECORD_DOES_NOT_FIT_SCHEMA");
        assert!(
            error["MESSAGE"].as_str().unwrap().contains("lots"),
            "{error}"
        );
        assert_eq!(error["DATA_ROW"], r#"{"ticker":"A","price":"lots"}"#);
        assert_eq!(error["ERROR_TIME"], error["DATA_ROWTIME"]);
    }
    errors.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_are_filtered_and_counted_per_window_into_the_output_stream() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    engine
        .create_stream(CreateStream::provisioned("trades", 2))
        .await
        .unwrap();
    for output in ["counts", "errors"] {
        engine
            .create_stream(CreateStream::provisioned(output, 1))
            .await
            .unwrap();
    }
    let config = RunConfig {
        lateness_ms: 200,
        ..RunConfig::default()
    };
    let runtime = tokio::runtime::Handle::current();
    let application = Application::start(&engine, spec(), config, &runtime)
        .await
        .unwrap();
    let trades = engine.stream("trades").unwrap();
    let (mut expected_trades, mut expected_total) = (0i64, 0i64);
    for round in 0..6 {
        let records: Vec<(String, Vec<u8>)> = (0..250)
            .map(|i| {
                let (ticker, price) = (["A", "B", "C"][i % 3], (i * 7 + round) % 100);
                if price >= 50 {
                    expected_trades += 1;
                    expected_total += price as i64;
                }
                (
                    format!("k{i}"),
                    format!(r#"{{"ticker":"{ticker}","price":{price}}}"#).into_bytes(),
                )
            })
            .collect();
        let puts: Vec<PutRecord<'_>> = records.iter().map(|(k, d)| PutRecord::new(k, d)).collect();
        trades
            .put_batch(&puts)
            .durability(Durability::Durable)
            .await
            .unwrap();
        let bad = PutRecord::new("bad", b"{\"ticker\":\"A\",\"price\":\"lots\"}");
        trades
            .put(bad)
            .durability(Durability::Durable)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let mut counted = Vec::new();
    for _ in 0..100 {
        counted = read_all(&engine, "counts");
        let trades: i64 = counted.iter().map(|c| c["TRADES"].as_i64().unwrap()).sum();
        if trades >= expected_trades {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let trades: i64 = counted.iter().map(|c| c["TRADES"].as_i64().unwrap()).sum();
    let total: i64 = counted.iter().map(|c| c["TOTAL"].as_i64().unwrap()).sum();
    assert_eq!(
        (trades, total),
        (expected_trades, expected_total),
        "{counted:?}"
    );
    assert!(
        counted
            .iter()
            .all(|c| ["A", "B", "C"].contains(&c["TICKER"].as_str().unwrap()))
    );
    let stats = application.stats();
    assert_eq!(
        (stats.input_records, stats.rejected_records),
        (1506, 6),
        "{stats:?}"
    );
    let errors = error_rows(&engine);
    assert_eq!(stats.output_records, (counted.len() + errors) as u64);
    application.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_on_missing_streams_or_bad_outputs_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let runtime = tokio::runtime::Handle::current();
    let refused = Application::start(&engine, spec(), RunConfig::default(), &runtime).await;
    assert!(matches!(refused, Err(AnalyticsError::InvalidArgument(ref m)) if m.contains("trades")));
    engine
        .create_stream(CreateStream::provisioned("trades", 1))
        .await
        .unwrap();
    engine
        .create_stream(CreateStream::provisioned("counts", 1))
        .await
        .unwrap();
    let mut wrong = spec();
    wrong.outputs[0].in_app_stream = "NOWHERE".into();
    let refused = Application::start(&engine, wrong, RunConfig::default(), &runtime).await;
    assert!(
        matches!(refused, Err(AnalyticsError::InvalidArgument(ref m)) if m.contains("NOWHERE"))
    );
    let mut twice = spec();
    twice.outputs[1].in_app_stream = "PER_SECOND".into();
    let refused = Application::start(&engine, twice, RunConfig::default(), &runtime).await;
    assert!(
        matches!(refused, Err(AnalyticsError::InvalidArgument(ref m)) if m.contains("Two outputs")),
        "{:?}",
        refused.err()
    );
}

/// KDA's input parallelism: two in-application input streams over a four-shard source, a
/// pump reading each; every record comes out once, through the stream its shard maps to
/// (shard `i` to `..._00{i % 2 + 1}`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_shards_records_go_to_their_in_application_input_stream() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    engine
        .create_stream(CreateStream::provisioned("trades", 4))
        .await
        .unwrap();
    engine
        .create_stream(CreateStream::provisioned("tagged", 1))
        .await
        .unwrap();
    let mut spec = spec();
    spec.code = r#"
        CREATE OR REPLACE STREAM "TAGGED" (via VARCHAR(3), price INTEGER);
        CREATE OR REPLACE PUMP "ONE" AS INSERT INTO "TAGGED"
            SELECT STREAM 'one', price FROM "SOURCE_SQL_STREAM_001";
        CREATE OR REPLACE PUMP "TWO" AS INSERT INTO "TAGGED"
            SELECT STREAM 'two', price FROM "SOURCE_SQL_STREAM_002";"#
        .into();
    spec.input.parallelism = 2;
    spec.outputs = vec![Output {
        in_app_stream: "TAGGED".into(),
        stream: "tagged".into(),
        format: OutputFormat::Csv,
        kind: StreamKind::Stream,
    }];
    let runtime = tokio::runtime::Handle::current();
    // Out of KDA's bounds, or reading an input stream it does not have: refused.
    for wrong in [0, 65] {
        let mut refused = spec.clone();
        refused.input.parallelism = wrong;
        let error = Application::start(&engine, refused, RunConfig::default(), &runtime).await;
        assert!(error.err().unwrap().to_string().contains("1 to 64"));
    }
    let mut one = spec.clone();
    one.input.parallelism = 1;
    let error = Application::start(&engine, one, RunConfig::default(), &runtime).await;
    let message = error.err().unwrap().to_string();
    assert!(message.contains("SOURCE_SQL_STREAM_002"), "{message}");

    let application = Application::start(&engine, spec, RunConfig::default(), &runtime)
        .await
        .unwrap();
    let trades = engine.stream("trades").unwrap();
    // The price is the record's id; the shard it went to says which stream should take it.
    let mut expected = std::collections::BTreeMap::new();
    for price in 0..400 {
        let data = format!(r#"{{"ticker":"A","price":{price}}}"#);
        let put = trades
            .put(PutRecord::new(&format!("key-{price}"), data.as_bytes()))
            .durability(Durability::Durable)
            .await
            .unwrap();
        let via = ["one", "two"][put.shard_id.index() as usize % 2];
        expected.insert(price, via.to_owned());
    }
    let via_one = expected.values().filter(|v| *v == "one").count();
    assert!(
        (1..400).contains(&via_one),
        "the keys spread over both streams"
    );
    let mut found = std::collections::BTreeMap::new();
    for _ in 0..100 {
        found.clear();
        let mut reader = engine.stream("tagged").unwrap().reader().unwrap();
        while let Some(read) = reader.read(None).unwrap() {
            for record in read.records.records() {
                let line = String::from_utf8(record.data.to_vec()).unwrap();
                let (via, price) = line.trim_end().split_once(',').unwrap();
                let before = found.insert(price.parse::<i32>().unwrap(), via.to_owned());
                assert!(before.is_none(), "{line} twice");
            }
            if read.records.millis_behind_latest == 0 {
                break;
            }
        }
        if found.len() >= expected.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(found, expected);
    application.stop().await;
}

/// Delivery streams as the embedder's resolver finds them: here, streams of a second
/// engine (as a Firehose's backing streams are).
#[derive(Debug)]
struct OtherEngine(Engine);

impl OtherEngine {
    fn find(&self, name: &str) -> StreamFound<'_> {
        let found = self.0.stream(name).map_err(|e| e.to_string());
        Box::pin(std::future::ready(found))
    }
}

impl DeliveryStreams for OtherEngine {
    fn records<'a>(&'a self, name: &'a str) -> StreamFound<'a> {
        self.find(name)
    }

    fn intake<'a>(&'a self, name: &'a str) -> StreamFound<'a> {
        self.find(name)
    }
}

/// Dear trades from the delivery stream `clicks` into the delivery stream `dear` (CSV).
fn delivery_spec() -> ApplicationSpec {
    let mut spec = spec();
    spec.code = r#"
        CREATE OR REPLACE STREAM "DEAR" (ticker VARCHAR(4), price INTEGER);
        CREATE OR REPLACE PUMP "FILTER" AS INSERT INTO "DEAR"
            SELECT STREAM ticker, price FROM "SOURCE_SQL_STREAM_001" WHERE price >= 50;"#
        .into();
    spec.input.stream = "clicks".into();
    spec.input.kind = StreamKind::DeliveryStream;
    spec.outputs = vec![Output {
        in_app_stream: "DEAR".into(),
        stream: "dear".into(),
        format: OutputFormat::Csv,
        kind: StreamKind::DeliveryStream,
    }];
    spec
}

/// An application reading a delivery stream's records and putting rows into another, found
/// through `RunConfig::delivery_streams`; without one, or with a Sluice stream and a
/// delivery stream held under one name, it is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_streams_are_read_and_written_through_the_embedders_resolver() {
    let dir = tempfile::tempdir().unwrap();
    let firehose = engine(&dir.path().join("firehose"));
    let engine = engine(dir.path());
    for name in ["clicks", "dear"] {
        firehose
            .create_stream(CreateStream::provisioned(name, 1))
            .await
            .unwrap();
    }
    engine
        .create_stream(CreateStream::provisioned("dear", 1))
        .await
        .unwrap();
    let spec = delivery_spec();
    let runtime = tokio::runtime::Handle::current();
    let refused = Application::start(&engine, spec.clone(), RunConfig::default(), &runtime).await;
    let message = refused.err().unwrap().to_string();
    assert!(message.contains("no Firehose"), "{message}");
    let config = RunConfig {
        delivery_streams: Some(Arc::new(OtherEngine(firehose.clone()))),
        lateness_ms: 200,
        ..RunConfig::default()
    };
    let mut namesakes = spec.clone();
    namesakes.code.push_str(
        r#"CREATE OR REPLACE STREAM "ALL" (price INTEGER);
           CREATE OR REPLACE PUMP "EVERY" AS INSERT INTO "ALL"
             SELECT STREAM price FROM "SOURCE_SQL_STREAM_001";"#,
    );
    namesakes.outputs.push(Output {
        in_app_stream: "ALL".into(),
        stream: "dear".into(),
        format: OutputFormat::Csv,
        kind: StreamKind::Stream,
    });
    let refused = Application::start(&engine, namesakes, config.clone(), &runtime).await;
    let message = refused.err().unwrap().to_string();
    assert!(message.contains("both held as dear"), "{message}");

    let application = Application::start(&engine, spec, config, &runtime)
        .await
        .unwrap();
    let clicks = firehose.stream("clicks").unwrap();
    for price in 0..100 {
        let data = format!(r#"{{"ticker":"A","price":{price}}}"#);
        clicks
            .put(PutRecord::new(&price.to_string(), data.as_bytes()))
            .durability(Durability::Durable)
            .await
            .unwrap();
    }
    let mut prices = Vec::new();
    for _ in 0..100 {
        prices = read_lines(&firehose, "dear")
            .iter()
            .map(|line| line.trim_end().rsplit_once(',').unwrap().1.parse().unwrap())
            .collect::<Vec<i32>>();
        if prices.len() >= 50 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    prices.sort_unstable();
    assert_eq!(prices, (50..100).collect::<Vec<i32>>());
    assert!(
        read_lines(&engine, "dear").is_empty(),
        "the Sluice stream took nothing"
    );
    application.stop().await;
}

/// Every record of `stream` of `engine`, as text.
fn read_lines(engine: &Engine, stream: &str) -> Vec<String> {
    let mut reader = engine.stream(stream).unwrap().reader().unwrap();
    let mut found = Vec::new();
    while let Some(read) = reader.read(None).unwrap() {
        for record in read.records.records() {
            found.push(String::from_utf8(record.data.to_vec()).unwrap());
        }
        if read.records.millis_behind_latest == 0 {
            break;
        }
    }
    found
}
