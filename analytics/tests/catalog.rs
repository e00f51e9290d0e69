//! A set of applications over a real engine, as KDA's API drives it: created and checked,
//! updated by version (also while running), started from the trim horizon or from now,
//! stopped, started again when the set is reopened, deleted with their state.

use sluice_analytics::*;
use sluice_core::{CreateStream, Durability, Engine, EngineConfig, PutRecord};
use std::time::{Duration, Instant};

fn engine(dir: &std::path::Path) -> Engine {
    let mut config = EngineConfig::new(dir.join("engine"));
    config.cores = 1;
    config.segment_size_bytes = 8 << 20;
    Engine::open(config).unwrap()
}

fn input() -> Input {
    Input {
        stream: "clicks".into(),
        name_prefix: "SOURCE_SQL_STREAM".into(),
        parallelism: 1,
        kind: StreamKind::Stream,
        schema: InputSchema {
            columns: vec![RecordColumn {
                name: "PAGE".into(),
                sql_type: "VARCHAR(16)".into(),
                mapping: Some("$.page".into()),
            }],
            format: RecordFormat::Json,
        },
    }
}

/// Copies pages whose name starts with `prefix` into the output.
fn code(prefix: &str) -> String {
    format!(
        r#"CREATE OR REPLACE STREAM "OUT" (page VARCHAR(16));
           CREATE OR REPLACE PUMP "P" AS INSERT INTO "OUT"
             SELECT STREAM page FROM "SOURCE_SQL_STREAM_001" WHERE page LIKE '{prefix}%';"#
    )
}

fn output() -> Output {
    Output {
        in_app_stream: "OUT".into(),
        stream: "pages".into(),
        format: OutputFormat::Json,
        kind: StreamKind::Stream,
    }
}

async fn put(engine: &Engine, pages: &[&str]) {
    let stream = engine.stream("clicks").unwrap();
    for page in pages {
        let data = format!(r#"{{"page":"{page}"}}"#);
        stream
            .put(PutRecord::new(page, data.as_bytes()))
            .durability(Durability::Durable)
            .await
            .unwrap();
    }
}

/// The pages in the output stream, waiting until there are `count` (and a moment more, to
/// show no more come).
async fn pages(engine: &Engine, count: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut found = Vec::new();
        let mut reader = engine.stream("pages").unwrap().reader().unwrap();
        for _ in 0..4 {
            if let Some(read) = reader.read(None).unwrap() {
                for record in read.records.records() {
                    let row: serde_json::Value = serde_json::from_slice(record.data).unwrap();
                    found.push(row["PAGE"].as_str().unwrap().to_owned());
                }
            }
        }
        if found.len() >= count || Instant::now() > deadline {
            tokio::time::sleep(Duration::from_millis(300)).await;
            found.sort();
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn config() -> AnalyticsConfig {
    AnalyticsConfig {
        lateness_ms: 100,
        checkpoint_interval: Duration::from_millis(100),
        ..AnalyticsConfig::default()
    }
}

/// Creates "pages" after the refusals a creation can meet: code that does not plan, a name
/// taken, an update against an old version.
async fn create_checked(analytics: &Analytics) {
    // Code that does not plan is refused at creation, naming where.
    let mut bad = NewApplication::named("pages");
    bad.code = "CREATE OR REPLACE STREAM \"OUT\" (page VARCHAR(16));\nCREATE OR REPLACE PUMP \"P\" AS INSERT INTO \"OUT\" SELECT STREAM nope FROM \"SOURCE_SQL_STREAM_001\";".into();
    bad.input = Some(input());
    let Err(AnalyticsError::Code { at, .. }) = analytics.create(bad).await else {
        panic!("an unknown column was taken");
    };
    assert_eq!(at.line, 2);
    let mut new = NewApplication::named("pages");
    new.code = code("a");
    new.input = Some(input());
    new.outputs = vec![output()];
    let created = analytics.create(new.clone()).await.unwrap();
    assert_eq!((created.stored.version, created.status), (1, "READY"));
    assert!(matches!(
        analytics.create(new).await,
        Err(AnalyticsError::InUse(_))
    ));
    // An update made against an old version is refused.
    assert!(matches!(
        analytics
            .update("pages", 7, vec![Change::Code(code("b"))])
            .await,
        Err(AnalyticsError::VersionMismatch { current: 1, .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applications_are_created_updated_started_stopped_reopened_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    for stream in ["clicks", "pages"] {
        engine
            .create_stream(CreateStream::provisioned(stream, 1))
            .await
            .unwrap();
    }
    let runtime = tokio::runtime::Handle::current();
    let home = dir.path().join("analytics");
    let (analytics, failures) = Analytics::open(engine.clone(), &home, config(), runtime.clone())
        .await
        .unwrap();
    assert!(failures.is_empty());

    create_checked(&analytics).await;

    put(&engine, &["apple", "banana", "avocado"]).await;
    analytics
        .start("pages", StartingPosition::TrimHorizon)
        .await
        .unwrap();
    assert_eq!(pages(&engine, 2).await, ["apple", "avocado"]);
    assert_eq!(analytics.describe("pages").await.unwrap().status, "RUNNING");

    // New code while running: it goes on from where it was, with the new filter.
    let updated = analytics
        .update("pages", 1, vec![Change::Code(code("b"))])
        .await
        .unwrap();
    assert_eq!((updated.stored.version, updated.status), (2, "RUNNING"));
    put(&engine, &["blueberry", "apricot"]).await;
    assert_eq!(pages(&engine, 3).await, ["apple", "avocado", "blueberry"]);

    // Reopened (as a server restart does): the running application runs again, from where
    // it was.
    analytics.shut_down().await;
    drop(analytics);
    let (analytics, failures) = Analytics::open(engine.clone(), &home, config(), runtime.clone())
        .await
        .unwrap();
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(analytics.describe("pages").await.unwrap().status, "RUNNING");
    put(&engine, &["broccoli"]).await;
    assert_eq!(
        pages(&engine, 4).await,
        ["apple", "avocado", "blueberry", "broccoli"]
    );

    // Stopped, then started from now: what was put meanwhile is not read.
    analytics.stop("pages").await.unwrap();
    assert_eq!(analytics.describe("pages").await.unwrap().status, "READY");
    put(&engine, &["beet"]).await;
    analytics
        .start("pages", StartingPosition::Now)
        .await
        .unwrap();
    put(&engine, &["bean"]).await;
    assert_eq!(
        pages(&engine, 5).await,
        ["apple", "avocado", "bean", "blueberry", "broccoli"]
    );

    let created_ms = analytics.describe("pages").await.unwrap().stored.created_ms;
    assert!(analytics.delete("pages", created_ms + 1).await.is_err());
    analytics.delete("pages", created_ms).await.unwrap();
    assert!(matches!(
        analytics.describe("pages").await,
        Err(AnalyticsError::NotFound { .. })
    ));
    assert!(!home.join("state").join("pages").exists());
}
