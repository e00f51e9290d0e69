//! The processors that run no user code, and dynamic partitioning, against a real engine and
//! a local bucket: CloudWatch Logs records gunzipped and split into their messages, KPL
//! aggregates de-aggregated, records partitioned by a jq query into objects under their
//! keys' prefixes, and every record a step cannot process in the error output.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use md5::{Digest as _, Md5};
use serde_json::{Value, json};
use sluice_firehose::*;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

#[path = "support/local.rs"]
mod local;
use local::{Local, settled};

fn setup() -> Local {
    Local::new()
}

/// Every object under `root`, by key, as text.
fn objects(root: &Path) -> Vec<(String, String)> {
    let found = local::files(root).into_iter();
    found
        .map(|(key, data)| (key, String::from_utf8(data).unwrap()))
        .collect()
}

fn spec(name: &str, prefix: &str, processors: Vec<Processor>) -> DeliveryStreamSpec {
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
            conversion: None,
            backup: None,
        },
        metadata: Default::default(),
    }
}

/// The error output's envelopes.
fn envelopes(objects: &[(String, String)]) -> Vec<Value> {
    objects
        .iter()
        .filter(|(key, _)| key.starts_with("errors/processing-failed/"))
        .flat_map(|(_, text)| {
            text.lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect::<Vec<Value>>()
        })
        .collect()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudwatch_logs_records_become_their_messages() {
    let setup = setup();
    let processors = vec![
        Processor::Gunzip,
        Processor::CloudWatchLogs,
        Processor::AppendNewline,
    ];
    setup
        .firehose
        .create(spec("logs", "logs/", processors))
        .await
        .unwrap();
    let data = gzip(
        json!({
            "messageType": "DATA_MESSAGE", "owner": "123456789012", "logGroup": "/web",
            "logStream": "i-1", "subscriptionFilters": ["all"],
            "logEvents": [
                {"id": "1", "timestamp": 1, "message": "GET / 200"},
                {"id": "2", "timestamp": 2, "message": "GET /a 404"},
                {"id": "3", "timestamp": 3, "message": "POST /b 500"},
            ]
        })
        .to_string()
        .as_bytes(),
    );
    let control = gzip(
        json!({"messageType": "CONTROL_MESSAGE", "logEvents": []})
            .to_string()
            .as_bytes(),
    );
    let records: [&[u8]; 3] = [&data, &control, b"plain text, not gzip"];
    setup
        .firehose
        .put_record_batch("logs", &records)
        .await
        .unwrap();
    settled(&setup.firehose, "logs", 3, 1).await;

    let found = objects(&setup.dir.path().join("buckets/lake"));
    let delivered: Vec<&(String, String)> = found
        .iter()
        .filter(|(k, _)| k.starts_with("logs/"))
        .collect();
    assert_eq!(delivered.len(), 1, "{found:?}");
    assert_eq!(delivered[0].1, "GET / 200\nGET /a 404\nPOST /b 500\n");
    let failed = envelopes(&found);
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["errorCode"], "Decompression.Failed");
    assert_eq!(
        failed[0]["rawData"],
        STANDARD.encode(b"plain text, not gzip")
    );
    let stats = setup.firehose.describe("logs").unwrap().stats;
    assert_eq!(
        (stats.delivered_records, stats.processing_failed_records),
        (3, 1)
    );
}

/// A KPL aggregated record of `records` under partition key "k", with its MD5 trailer.
fn kpl(records: &[&[u8]]) -> Vec<u8> {
    let mut protobuf = vec![0x0a, 0x01, b'k']; // partition_key_table = ["k"]
    for data in records {
        // Record { partition_key_index = 0; data = ... }
        let mut record = vec![0x08, 0x00, 0x1a, data.len() as u8];
        record.extend_from_slice(data);
        protobuf.push(0x1a);
        protobuf.push(record.len() as u8);
        protobuf.extend_from_slice(&record);
    }
    let digest = Md5::digest(&protobuf);
    [&[0xf3, 0x89, 0x9a, 0xc2][..], &protobuf, digest.as_slice()].concat()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kpl_aggregates_are_delivered_as_their_user_records() {
    let setup = setup();
    let processors = vec![
        Processor::DeAggregate(SubRecords::Kpl),
        Processor::AppendNewline,
    ];
    setup
        .firehose
        .create(spec("kpl", "kpl/", processors))
        .await
        .unwrap();
    let aggregated = kpl(&[b"one", b"two", b"three"]);
    let mut corrupt = kpl(&[b"four"]);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 1;
    let records: [&[u8]; 3] = [&aggregated, b"not aggregated", &corrupt];
    setup
        .firehose
        .put_record_batch("kpl", &records)
        .await
        .unwrap();
    settled(&setup.firehose, "kpl", 4, 1).await;

    let found = objects(&setup.dir.path().join("buckets/lake"));
    let delivered: String = found
        .iter()
        .filter(|(k, _)| k.starts_with("kpl/"))
        .map(|(_, t)| t.as_str())
        .collect();
    assert_eq!(delivered, "one\ntwo\nthree\nnot aggregated\n");
    let failed = envelopes(&found);
    assert_eq!(failed.len(), 1);
    assert_eq!(
        failed[0]["errorCode"],
        "RecordDeAggregation.InvalidKplRecord"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_are_partitioned_into_objects_by_their_keys() {
    let setup = setup();
    let processors = vec![
        Processor::ExtractMetadata {
            query: "{tenant: .tenant, level: .log.level}".into(),
        },
        Processor::AppendNewline,
    ];
    let prefix =
        "t=!{partitionKeyFromQuery:tenant}/l=!{partitionKeyFromQuery:level}/!{timestamp:yyyy}/";
    setup
        .firehose
        .create(spec("parts", prefix, processors))
        .await
        .unwrap();
    let mut records: Vec<Vec<u8>> = Vec::new();
    for i in 0..30 {
        let tenant = ["acme", "globex", "initech"][i % 3];
        let level = if i % 2 == 0 { "info" } else { "error" };
        records.push(
            json!({"tenant": tenant, "log": {"level": level}, "n": i})
                .to_string()
                .into_bytes(),
        );
    }
    records.push(br#"{"log": {"level": "info"}}"#.to_vec()); // no tenant
    records.push(b"not json".to_vec());
    records.push(br#"{"tenant": "a/b", "log": {"level": "info"}}"#.to_vec()); // a '/' in a key
    // A key too long for a file name of a local bucket (over 240 bytes between slashes).
    let long = json!({"tenant": "x".repeat(300), "log": {"level": "info"}});
    records.push(long.to_string().into_bytes());
    let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
    setup
        .firehose
        .put_record_batch("parts", &refs)
        .await
        .unwrap();
    settled(&setup.firehose, "parts", 30, 4).await;

    let found = objects(&setup.dir.path().join("buckets/lake"));
    let year = time::OffsetDateTime::now_utc().year();
    let mut partitions = std::collections::BTreeMap::new();
    for (key, text) in found.iter().filter(|(k, _)| k.starts_with("t=")) {
        let dir = key.rsplit_once('/').unwrap().0.to_owned();
        assert!(dir.ends_with(&format!("/{year}")), "{key}");
        for line in text.lines() {
            let record: Value = serde_json::from_str(line).unwrap();
            let expected = format!(
                "t={}/l={}/{year}",
                record["tenant"].as_str().unwrap(),
                record["log"]["level"].as_str().unwrap()
            );
            assert_eq!(dir, expected, "{line} in the object of its keys");
            *partitions.entry(dir.clone()).or_insert(0) += 1;
        }
    }
    assert_eq!(partitions.len(), 6, "3 tenants x 2 levels: {partitions:?}");
    assert_eq!(partitions.values().sum::<i32>(), 30);
    let failed = envelopes(&found);
    assert_eq!(failed.len(), 4, "{failed:?}");
    assert!(
        failed
            .iter()
            .all(|e| e["errorCode"] == "DynamicPartitioning.MetadataExtractionFailed")
    );
    let stats = setup.firehose.describe("parts").unwrap().stats;
    assert_eq!(
        (stats.delivered_records, stats.processing_failed_records),
        (30, 4)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioning_settings_that_cannot_work_are_refused() {
    let setup = setup();
    let query = |q: &str| Processor::ExtractMetadata { query: q.into() };
    let bad = [
        spec("bad", "t=!{partitionKeyFromQuery:tenant}/", Vec::new()),
        spec(
            "bad",
            "t=!{partitionKeyFromQuery:tenant}/",
            vec![query("{level: .level}")],
        ),
        spec(
            "bad",
            "t=!{partitionKeyFromQuery:tenant}/",
            vec![query("{tenant: $ENV.HOME}")],
        ),
        spec("bad", "plain/", vec![query("{tenant: .tenant}")]),
        spec(
            "bad",
            "plain/",
            vec![Processor::DeAggregate(SubRecords::Delimited(Vec::new()))],
        ),
        DeliveryStreamSpec {
            destination: Destination {
                target: Target::Http(HttpEndpoint::new("http://127.0.0.1:9/")),
                conversion: None,
                backup: None,
                ..spec(
                    "bad",
                    "t=!{partitionKeyFromQuery:tenant}/",
                    vec![query("{tenant: .tenant}")],
                )
                .destination
            },
            ..spec("bad", "", Vec::new())
        },
    ];
    for spec in bad {
        let refused = setup.firehose.create(spec.clone()).await;
        assert!(
            matches!(refused, Err(FirehoseError::InvalidArgument(_))),
            "{spec:?}: {refused:?}"
        );
    }
    assert!(SubRecords::delimited_base64("").is_err());
    assert_eq!(
        SubRecords::delimited_base64("fA==").unwrap(),
        SubRecords::Delimited(b"|".to_vec())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpacking_is_bounded_and_a_flush_of_nothing_is_committed() {
    let setup = setup();
    let processors = vec![Processor::Gunzip, Processor::AppendNewline];
    setup
        .firehose
        .create(spec("bombs", "b/", processors))
        .await
        .unwrap();
    // Three records of 3 MiB of zeros, about 3 KiB each gzipped: the buffer is 1 MiB, so a
    // flush unpacks to at most 4 MiB, and the two after the first fail.
    let bomb = gzip(&vec![0; 3 << 20]);
    let records: [&[u8]; 3] = [&bomb, &bomb, &bomb];
    setup
        .firehose
        .put_record_batch("bombs", &records)
        .await
        .unwrap();
    settled(&setup.firehose, "bombs", 1, 2).await;
    let found = objects(&setup.dir.path().join("buckets/lake"));
    let failed = envelopes(&found);
    assert!(
        failed
            .iter()
            .all(|e| e["errorCode"] == "Decompression.OutputTooLarge"),
        "{failed:?}"
    );

    // A flush whose records all unpack to nothing is committed, its records counted as
    // dropped.
    let processors = vec![Processor::Gunzip, Processor::CloudWatchLogs];
    setup
        .firehose
        .create(spec("quiet", "q/", processors))
        .await
        .unwrap();
    let control = gzip(
        json!({"messageType": "CONTROL_MESSAGE", "logEvents": []})
            .to_string()
            .as_bytes(),
    );
    setup.firehose.put_record("quiet", &control).await.unwrap();
    for _ in 0..1500 {
        if setup
            .firehose
            .describe("quiet")
            .unwrap()
            .stats
            .dropped_records
            == 1
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "not committed: {:?}",
        setup.firehose.describe("quiet").unwrap().stats
    );
}
