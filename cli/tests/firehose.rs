//! Firehose through `sluice serve`, killed with SIGKILL while records are put and delivered,
//! from DirectPut and from a Kinesis stream: after a restart every acknowledged record is
//! delivered, and none twice (a flush a kill interrupted is settled by its journal:
//! docs/design/firehose.md).

mod common;

use common::TestServer;
use serde_json::{Value, json};
use sluice_loadgen::client::KinesisClient;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const STREAM: &str = "killed";
/// The Kinesis stream a stream-sourced delivery stream reads.
const SOURCE: &str = "killed-source";
const BATCH: usize = 50;

/// Where the records are put.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Source {
    /// PutRecordBatch to the delivery stream.
    DirectPut,
    /// PutRecords to the Kinesis stream it reads.
    Stream,
}

fn server(dir: &Path) -> TestServer {
    let buckets = dir.join("buckets");
    TestServer::start(
        &dir.join("data"),
        &["--firehose-bucket-dir", buckets.to_str().unwrap()],
    )
}

/// Puts batches of numbered records until the server goes; records the acknowledged ones.
async fn writer(address: SocketAddr, source: Source, first: u64, acked: Arc<Mutex<Vec<u64>>>) {
    let Ok(mut client) = KinesisClient::connect(address).await else {
        return;
    };
    for round in 0.. {
        let numbers: Vec<u64> = (0..BATCH as u64)
            .map(|i| first + round * BATCH as u64 + i)
            .collect();
        let records: Vec<Value> = numbers
            .iter()
            .map(|n| json!({"Data": base64(&format!("record-{n:09}\n")), "PartitionKey": format!("{n}")}))
            .collect();
        let (operation, input, answers, id) = match source {
            Source::DirectPut => (
                "Firehose_20150804.PutRecordBatch",
                json!({"DeliveryStreamName": STREAM, "Records": records}),
                "RequestResponses",
                "RecordId",
            ),
            Source::Stream => (
                "PutRecords",
                json!({"StreamName": SOURCE, "Records": records}),
                "Records",
                "SequenceNumber",
            ),
        };
        let reply: Result<Value, _> = client.call(operation, &input).await;
        let Ok(reply) = reply else { return };
        let responses = reply[answers].as_array().unwrap();
        let mut acked = acked.lock().unwrap();
        for (n, response) in numbers.iter().zip(responses) {
            if response.get(id).is_some() {
                acked.push(*n);
            }
        }
    }
}

fn base64(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// Every record in the bucket's objects, with how many times each appears.
fn delivered(buckets: &Path) -> BTreeMap<u64, usize> {
    let mut counts = BTreeMap::new();
    for path in common::delivered_objects(&buckets.join("lake")) {
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text.lines() {
            let n = line.strip_prefix("record-").unwrap().parse().unwrap();
            *counts.entry(n).or_insert(0) += 1;
        }
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_every_acknowledged_direct_put_is_delivered_once() {
    kill_9_cycles(Source::DirectPut).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_every_acknowledged_record_of_a_stream_source_is_delivered_once() {
    kill_9_cycles(Source::Stream).await;
}

/// The delivery stream (and for a stream source, the stream) the kill cycles use.
async fn create(client: &mut KinesisClient, source: Source) {
    let mut input = json!({
        "DeliveryStreamName": STREAM,
        "ExtendedS3DestinationConfiguration": {
            "BucketARN": "arn:aws:s3:::lake",
            "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 1},
        }
    });
    if source == Source::Stream {
        let _: Value = client
            .call(
                "CreateStream",
                &json!({"StreamName": SOURCE, "ShardCount": 2}),
            )
            .await
            .unwrap();
        input["DeliveryStreamType"] = json!("KinesisStreamAsSource");
        input["KinesisStreamSourceConfiguration"] = json!({
            "KinesisStreamARN": format!("arn:aws:kinesis:us-east-1:000000000000:stream/{SOURCE}"),
        });
    }
    let _: Value = client
        .call("Firehose_20150804.CreateDeliveryStream", &input)
        .await
        .unwrap();
}

/// Three cycles of writers putting records and a SIGKILL landing before, during or after a
/// flush, then a last start: every acknowledged record is delivered, none twice.
async fn kill_9_cycles(source: Source) {
    let dir = tempfile::tempdir().unwrap();
    let mut acked_all = Vec::new();
    for cycle in 0..3u64 {
        let server = server(dir.path());
        let mut client = KinesisClient::connect(server.address).await.unwrap();
        if cycle == 0 {
            create(&mut client, source).await;
        }
        let acked = Arc::new(Mutex::new(Vec::new()));
        let writers: Vec<_> = (0..2u64)
            .map(|w| {
                let first = (cycle * 2 + w) * 1_000_000;
                tokio::spawn(writer(server.address, source, first, acked.clone()))
            })
            .collect();
        // Kills land before, during and after flushes (one a second).
        tokio::time::sleep(Duration::from_millis(700 + 450 * cycle)).await;
        server.kill();
        for writer in writers {
            writer.await.unwrap();
        }
        let acked = std::mem::take(&mut *acked.lock().unwrap());
        assert!(!acked.is_empty(), "cycle {cycle}: nothing acknowledged");
        acked_all.extend(acked);
    }
    let _server = server(dir.path());
    let buckets = dir.path().join("buckets");
    let mut counts = delivered(&buckets);
    for _ in 0..300 {
        if acked_all.iter().all(|n| counts.contains_key(n)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        counts = delivered(&buckets);
    }
    let lost: Vec<&u64> = acked_all
        .iter()
        .filter(|n| !counts.contains_key(n))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged records never delivered, e.g. {:?}",
        lost.len(),
        acked_all.len(),
        &lost[..lost.len().min(5)]
    );
    println!(
        "{source:?}: {} acknowledged over 3 kills, {} delivered",
        acked_all.len(),
        counts.len()
    );
    let twice: Vec<(&u64, &usize)> = counts.iter().filter(|(_, c)| **c > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
}

/// Another account's delivery stream, records acknowledged and not yet delivered when the
/// server is killed: after a restart they are delivered without any call to that account
/// (its tenant opens at start because it has delivery streams), into its own buckets.
#[test]
fn another_accounts_deliveries_resume_at_start() {
    if !common::needs_python_clients() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let buckets = dir.path().join("buckets");
    let start = || {
        TestServer::start(
            &dir.path().join("data"),
            &[
                "--credential",
                "AKIDOTHER:secret2:111111111111",
                "--firehose-bucket-dir",
                buckets.to_str().unwrap(),
            ],
        )
    };
    let server = start();
    let script = r#"
import sys, boto3
f = boto3.client("firehose", endpoint_url=sys.argv[1], region_name="eu-west-1",
                 aws_access_key_id="AKIDOTHER", aws_secret_access_key="secret2")
f.create_delivery_stream(DeliveryStreamName="theirs", ExtendedS3DestinationConfiguration={
    "RoleARN": "arn:aws:iam::111111111111:role/r", "BucketARN": "arn:aws:s3:::lake",
    "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 10}})
f.put_record_batch(DeliveryStreamName="theirs",
                   Records=[{"Data": b"record-%09d\n" % i} for i in range(100)])
"#;
    let made = std::process::Command::new("python3")
        .args(["-c", script, &server.endpoint()])
        .status()
        .unwrap();
    assert!(made.success());
    server.kill(); // within the 10 s interval: nothing delivered yet
    let theirs = buckets.join("accounts/111111111111");
    assert!(delivered(&theirs).is_empty());
    let _server = start();
    let mut counts = BTreeMap::new();
    for _ in 0..1200 {
        counts = delivered(&theirs);
        if counts.len() == 100 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        counts.len(),
        100,
        "delivered after the restart, with no call"
    );
    assert!(counts.values().all(|&c| c == 1));
    assert!(
        delivered(&buckets).is_empty(),
        "not in the server's own account's buckets"
    );
}
