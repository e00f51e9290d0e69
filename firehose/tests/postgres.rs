//! The PostgreSQL destination against a real engine and a real PostgreSQL server (Debian's,
//! started in a temporary directory): every delivered record a row exactly once, JSON, CSV
//! and text records, a load interrupted by a stop loaded once after the restart, and a
//! database that refuses the credentials leaving a manifest of what it did not load.

#[path = "support/local.rs"]
mod local;
#[path = "support/postgres.rs"]
mod support;

use local::{engine, files, open, until};
use sluice_firehose::*;
use std::io::Write;
use std::process::Stdio;
use std::time::Duration;
use support::Postgres;

fn spec(name: &str, table: PostgresTable, compression: Compression) -> DeliveryStreamSpec {
    DeliveryStreamSpec {
        name: name.into(),
        source: Source::DirectPut,
        destination: Destination {
            bucket: "staging".into(),
            prefix: "stage/".into(),
            buffering: BufferingHints::new(1, 0).unwrap(),
            compression,
            processors: vec![Processor::AppendNewline],
            error_output_prefix: String::new(),
            target: Target::Postgres(table),
            conversion: None,
            backup: None,
        },
        metadata: Default::default(),
    }
}

fn table(url: String, name: &str, columns: &[&str], format: CopyFormat) -> PostgresTable {
    PostgresTable {
        url,
        table: name.into(),
        columns: columns.iter().map(|c| (*c).to_owned()).collect(),
        format,
        retry_ms: 30_000,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_records_become_rows_exactly_once_by_column_name() {
    let postgres = Postgres::start();
    postgres.query("CREATE TABLE events (id int, page text, ms bigint, note text DEFAULT 'none')");
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let firehose = open(dir.path(), &engine);
    let table = table(postgres.url(), "public.events", &[], CopyFormat::JsonAuto);
    firehose
        .create(spec("clicks", table, Compression::Gzip))
        .await
        .unwrap();
    let records: Vec<Vec<u8>> = (0..300)
        .map(|i| {
            format!(
                r#"{{"id":{i},"page":"/p/{}","ms":{},"extra":true}}"#,
                i % 7,
                1000 + i
            )
            .into_bytes()
        })
        .collect();
    for batch in records.chunks(100) {
        let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
        firehose.put_record_batch("clicks", &refs).await.unwrap();
    }
    let stats = || firehose.describe("clicks").unwrap().stats;
    until("the load", || stats().delivered_records == 300).await;

    assert_eq!(
        postgres.query("SELECT count(*), count(DISTINCT id), min(id), max(id) FROM events"),
        ["300|300|0|299"]
    );
    assert_eq!(
        postgres.query("SELECT page, ms FROM events WHERE id = 17"),
        ["/p/3|1017"]
    );
    assert_eq!(
        postgres.query("SELECT DISTINCT coalesce(note, 'null') FROM events"),
        ["null"],
        "a column the JSON lacks is null"
    );
    let loads = postgres.query("SELECT object_key, delivery_stream, records FROM sluice_firehose_loads ORDER BY object_key");
    let staged = files(&dir.path().join("buckets/staging"));
    assert_eq!(
        loads.len(),
        staged.len(),
        "one load per staged object: {loads:?}"
    );
    assert_eq!(loads.len() as u64, stats().objects);
    for ((key, _), load) in staged.iter().zip(&loads) {
        assert!(key.starts_with("stage/20") && key.ends_with(".gz"), "{key}");
        assert!(
            load.starts_with(&format!("{key}|clicks|")),
            "{load} names {key}"
        );
    }
    let total: u64 = loads
        .iter()
        .map(|l| l.rsplit('|').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(total, 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_and_text_records_fill_the_named_columns() {
    let postgres = Postgres::start();
    postgres.query("CREATE TABLE people (name text, age int, city text DEFAULT 'unknown')");
    postgres.query("CREATE TABLE pairs (k text, v text)");
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let firehose = open(dir.path(), &engine);
    let csv = table(
        postgres.url(),
        "people",
        &["name", "age"],
        CopyFormat::Csv { delimiter: '|' },
    );
    firehose
        .create(spec("people", csv, Compression::Uncompressed))
        .await
        .unwrap();
    let text = table(
        postgres.url(),
        "pairs",
        &[],
        CopyFormat::Text { delimiter: '\t' },
    );
    firehose
        .create(spec("pairs", text, Compression::Uncompressed))
        .await
        .unwrap();
    let people: [&[u8]; 3] = [b"ada|36", b"\"grace, rear admiral\"|85", b"linus|"];
    firehose.put_record_batch("people", &people).await.unwrap();
    let pairs: [&[u8]; 2] = [b"a\t1", b"b\t\\N"];
    firehose.put_record_batch("pairs", &pairs).await.unwrap();
    until("the loads", || {
        firehose.describe("people").unwrap().stats.delivered_records == 3
            && firehose.describe("pairs").unwrap().stats.delivered_records == 2
    })
    .await;
    assert_eq!(
        postgres.query("SELECT name, coalesce(age::text, 'null'), city FROM people ORDER BY name"),
        [
            "ada|36|unknown",
            "grace, rear admiral|85|unknown",
            "linus|null|unknown"
        ],
        "CSV quoting, DELIMITER '|', and the third column's default"
    );
    assert_eq!(
        postgres.query("SELECT k, coalesce(v, 'null') FROM pairs ORDER BY k"),
        ["a|1", "b|null"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_a_stop_interrupted_is_loaded_once_after_the_restart() {
    let postgres = Postgres::start();
    postgres.query("CREATE TABLE events (id int)");
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let firehose = open(dir.path(), &engine);
    let table = table(postgres.url(), "events", &[], CopyFormat::JsonAuto);
    firehose
        .create(spec("held", table, Compression::Uncompressed))
        .await
        .unwrap();
    // A session holds the table: the load waits on its lock.
    let mut holder = postgres
        .psql()
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut hold = holder.stdin.take().unwrap();
    writeln!(hold, "BEGIN; LOCK TABLE events IN ACCESS EXCLUSIVE MODE;").unwrap();
    hold.flush().unwrap();
    until("the lock", || {
        postgres.query("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'events' AND l.mode = 'AccessExclusiveLock' AND l.granted") == ["1"]
    })
    .await;
    let refs: Vec<Vec<u8>> = (0..50)
        .map(|i| format!(r#"{{"id":{i}}}"#).into_bytes())
        .collect();
    let refs: Vec<&[u8]> = refs.iter().map(Vec::as_slice).collect();
    firehose.put_record_batch("held", &refs).await.unwrap();
    until("the load waiting on the lock", || {
        postgres.query("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
            == ["1"]
    })
    .await;
    firehose.close().await;
    drop(firehose);
    writeln!(hold, "COMMIT;").unwrap();
    drop(hold);
    holder.wait().unwrap();

    let firehose = open(dir.path(), &engine);
    until("the load after the restart", || {
        postgres.query("SELECT count(*) FROM events") == ["50"]
            && firehose.describe("held").unwrap().stats.recovered_objects == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        postgres.query("SELECT count(*), count(DISTINCT id) FROM events"),
        ["50|50"]
    );
    assert_eq!(
        postgres.query("SELECT count(*) FROM sluice_firehose_loads"),
        ["1"]
    );
    assert_eq!(
        files(&dir.path().join("buckets/staging")).len(),
        1,
        "staged once, not again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_refuses_the_credentials_gets_a_manifest_not_lost_records() {
    let postgres = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let firehose = open(dir.path(), &engine);
    let mut table = table(
        postgres.url_with("wrong"),
        "events",
        &[],
        CopyFormat::JsonAuto,
    );
    table.retry_ms = 1000;
    firehose
        .create(spec("locked", table, Compression::Uncompressed))
        .await
        .unwrap();
    firehose.put_record("locked", br#"{"id":1}"#).await.unwrap();
    let stats = || firehose.describe("locked").unwrap().stats;
    until("the manifest", || stats().undelivered_records == 1).await;
    assert!(
        stats()
            .last_error
            .unwrap()
            .contains("Redshift.AuthenticationFailed"),
        "{:?}",
        stats().last_error
    );
    let found = files(&dir.path().join("buckets/staging"));
    let (staged, manifest): (Vec<_>, Vec<_>) =
        found.iter().partition(|(key, _)| key.starts_with("stage/"));
    assert_eq!((staged.len(), manifest.len()), (1, 1), "{found:?}");
    assert!(
        manifest[0].0.starts_with("errors/manifests/20"),
        "{}",
        manifest[0].0
    );
    let entries: serde_json::Value = serde_json::from_slice(&manifest[0].1).unwrap();
    assert_eq!(
        entries["entries"][0]["url"],
        format!("s3://staging/{}", staged[0].0)
    );
    assert_eq!(entries["entries"][0]["mandatory"], true);
    assert_eq!(
        staged[0].1, b"{\"id\":1}\n",
        "the staged object keeps the records"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tables_and_formats_are_refused_at_creation() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let firehose = open(dir.path(), &engine);
    let url = "postgresql://u:p@127.0.0.1:9/db".to_owned();
    let bad = [
        (
            table(
                url.clone(),
                "events; DROP TABLE x",
                &[],
                CopyFormat::JsonAuto,
            ),
            Compression::Gzip,
        ),
        (
            table(url.clone(), "a.b.c", &[], CopyFormat::JsonAuto),
            Compression::Gzip,
        ),
        (
            table(
                url.clone(),
                "events",
                &["ok", "bad col"],
                CopyFormat::JsonAuto,
            ),
            Compression::Gzip,
        ),
        (
            table(
                url.clone(),
                "events",
                &[],
                CopyFormat::Csv { delimiter: '\n' },
            ),
            Compression::Gzip,
        ),
        (
            table(
                url.clone(),
                "events",
                &[],
                CopyFormat::Text { delimiter: 'a' },
            ),
            Compression::Gzip,
        ),
        (
            table(url.clone(), "events", &[], CopyFormat::JsonAuto),
            Compression::Snappy,
        ),
        (
            table(String::new(), "events", &[], CopyFormat::JsonAuto),
            Compression::Gzip,
        ),
    ];
    for (table, compression) in bad {
        let refused = firehose
            .create(spec("bad", table.clone(), compression))
            .await;
        assert!(
            matches!(refused, Err(FirehoseError::InvalidArgument(_))),
            "{table:?}: {refused:?}"
        );
    }
}
