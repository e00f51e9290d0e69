//! Record format conversion against a real engine and a local bucket: JSON records become
//! Parquet objects (read back here with the parquet crate's own reader; the server's test
//! reads them with pyarrow), by the schema's types, one per partition; records the schema
//! cannot read go to the error output.

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Float64Type, Int32Type, TimestampMillisecondType};
use arrow_array::{Array, RecordBatch};
use serde_json::{Value, json};
use sluice_firehose::*;

#[path = "support/local.rs"]
mod local;
use local::{Local, files as objects, settled};

fn setup() -> Local {
    Local::new()
}

fn columns() -> Vec<Column> {
    [
        ("id", "int"),
        ("name", "varchar(32)"),
        ("score", "double"),
        ("ok", "boolean"),
        ("at", "timestamp"),
        ("day", "date"),
        ("amount", "decimal(10,2)"),
    ]
    .iter()
    .map(|(name, kind)| Column {
        name: (*name).into(),
        kind: (*kind).into(),
    })
    .collect()
}

fn spec(
    name: &str,
    prefix: &str,
    processors: Vec<Processor>,
    conversion: Conversion,
) -> DeliveryStreamSpec {
    DeliveryStreamSpec {
        name: name.into(),
        source: Source::DirectPut,
        destination: Destination {
            bucket: "lake".into(),
            prefix: prefix.into(),
            buffering: BufferingHints::new(1, 0).unwrap(),
            compression: Compression::Uncompressed,
            processors,
            error_output_prefix: "errors/!{firehose:error-output-type}/".into(),
            target: Target::Objects,
            conversion: Some(conversion),
            backup: None,
        },
        metadata: Default::default(),
    }
}

fn read_parquet(bytes: &[u8]) -> Vec<RecordBatch> {
    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        bytes::Bytes::copy_from_slice(bytes),
    )
    .unwrap()
    .build()
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// 100 records of every column type, one of a wrong type, one not JSON, one with a single
/// column, one with upper-case keys.
fn typed_records() -> Vec<Vec<u8>> {
    let mut records: Vec<Vec<u8>> = (0..100)
        .map(|i| {
            json!({"id": i, "name": format!("n{i}"), "score": f64::from(i) / 4.0, "ok": i % 2 == 0,
                   "at": "2026-12-05T10:00:00Z", "day": "2026-12-05", "amount": format!("{i}.25"),
                   "extra": "ignored"})
            .to_string()
            .into_bytes()
        })
        .collect();
    records.insert(50, br#"{"id": "not a number"}"#.to_vec());
    records.push(b"not json".to_vec());
    records.push(br#"{"id": 7000}"#.to_vec()); // the other columns null
    records.push(br#"{"ID": 8000, "Name": "upper"}"#.to_vec()); // keys matched whatever their case
    records
}

/// The envelopes of the records conversion failed.
fn conversion_failures(found: &[(String, Vec<u8>)]) -> Vec<Value> {
    found
        .iter()
        .filter(|(k, _)| k.starts_with("errors/format-conversion-failed/"))
        .flat_map(|(_, data)| {
            let text = String::from_utf8(data.clone()).unwrap();
            text.lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect::<Vec<Value>>()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_records_become_typed_parquet_rows_and_the_rest_the_error_output() {
    let setup = setup();
    let mut conversion = Conversion::new(columns());
    conversion.compression = ParquetCompression::Gzip;
    let spec = spec("typed", "p/", vec![Processor::AppendNewline], conversion);
    setup.firehose.create(spec).await.unwrap();
    let records = typed_records();
    let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
    setup
        .firehose
        .put_record_batch("typed", &refs)
        .await
        .unwrap();
    settled(&setup.firehose, "typed", 102, 2).await;

    let found = objects(&setup.dir.path().join("buckets/lake"));
    let parquet: Vec<&(String, Vec<u8>)> =
        found.iter().filter(|(k, _)| k.starts_with("p/")).collect();
    assert_eq!(
        parquet.len(),
        1,
        "{:?}",
        found.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    assert!(parquet[0].0.ends_with(".parquet") && parquet[0].1.starts_with(b"PAR1"));
    let batches = read_parquet(&parquet[0].1);
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(rows, 102);
    let batch = arrow_select::concat::concat_batches(&batches[0].schema(), &batches).unwrap();
    let ids = batch.column(0).as_primitive::<Int32Type>();
    assert_eq!(ids.value(0), 0);
    assert_eq!(ids.value(99), 99);
    assert_eq!(ids.value(100), 7000);
    assert_eq!(ids.value(101), 8000);
    assert_eq!(batch.column(1).as_string::<i32>().value(101), "upper");
    assert_eq!(batch.column(1).as_string::<i32>().value(42), "n42");
    assert_eq!(batch.column(2).as_primitive::<Float64Type>().value(10), 2.5);
    assert!(!batch.column(3).as_boolean().value(3));
    let at = batch
        .column(4)
        .as_primitive::<TimestampMillisecondType>()
        .value(0);
    assert_eq!(at, 1_796_464_800_000, "2026-12-05T10:00:00Z");
    assert_eq!(
        batch.column(5).as_primitive::<Date32Type>().value(0),
        20_792,
        "days since 1970"
    );
    let amount = batch
        .column(6)
        .as_primitive::<arrow_array::types::Decimal128Type>();
    assert_eq!(amount.value(3), 325, "3.25 at scale 2");
    assert!(
        batch.column(1).is_null(100),
        "a column the record lacks is null"
    );

    let errors = conversion_failures(&found);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors
            .iter()
            .all(|e| e["errorCode"] == "DataFormatConversion.MalformedData")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_are_parquet_objects_of_their_own() {
    let setup = setup();
    let processors = vec![Processor::ExtractMetadata {
        query: "{name: .name}".into(),
    }];
    let spec = spec(
        "parts",
        "n=!{partitionKeyFromQuery:name}/",
        processors,
        Conversion::new(columns()),
    );
    setup.firehose.create(spec).await.unwrap();
    let records: Vec<Vec<u8>> = (0..20)
        .map(|i| {
            json!({"id": i, "name": if i % 2 == 0 { "a" } else { "b" }})
                .to_string()
                .into_bytes()
        })
        .collect();
    let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
    setup
        .firehose
        .put_record_batch("parts", &refs)
        .await
        .unwrap();
    settled(&setup.firehose, "parts", 20, 0).await;
    let found = objects(&setup.dir.path().join("buckets/lake"));
    assert_eq!(found.len(), 2);
    for (key, bytes) in &found {
        let name = &key[2..3];
        let batches = read_parquet(bytes);
        let names = batches[0].column(1).as_string::<i32>();
        assert_eq!(batches[0].num_rows(), 10, "{key}");
        assert!((0..10).all(|i| names.value(i) == name), "{key}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversions_that_cannot_work_are_refused() {
    let setup = setup();
    let mut gzipped = spec("bad", "p/", Vec::new(), Conversion::new(columns()));
    gzipped.destination.compression = Compression::Gzip;
    let nested = Conversion::new(vec![Column {
        name: "tags".into(),
        kind: "array<string>".into(),
    }]);
    let mut small = Conversion::new(columns());
    small.block_bytes = 1 << 20;
    let twice = Conversion::new([columns(), columns()].concat());
    for bad in [
        gzipped,
        spec("bad", "p/", Vec::new(), nested),
        spec("bad", "p/", Vec::new(), small),
        spec("bad", "p/", Vec::new(), twice),
        spec(
            "bad",
            "p/",
            Vec::new(),
            Conversion::new(vec![Column {
                name: "x".into(),
                kind: "decimal(40,2)".into(),
            }]),
        ),
    ] {
        let refused = setup.firehose.create(bad.clone()).await;
        assert!(
            matches!(refused, Err(FirehoseError::InvalidArgument(_))),
            "{bad:?}: {refused:?}"
        );
    }
}
