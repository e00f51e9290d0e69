//! Subscribers that stop reading: they cannot make the server grow past its subscription
//! budget, the others fall behind (heartbeats with MillisBehindLatest) instead of failing,
//! and once the stalled connections are closed (no progress for --stall-timeout-ms) the
//! others catch up with every record.

mod common;

use base64::Engine as _;
use common::TestServer;
use serde_json::{Value, json};
use sluice_loadgen::client::KinesisClient;
use std::io::Write as _;
use std::time::Duration;

const RECORD_BYTES: usize = 1_000_000;
const RECORDS: usize = 48;
const CONSUMERS: usize = 20;

async fn register(client: &mut KinesisClient, arn: &str, name: &str) -> String {
    let consumer: Value = client
        .call(
            "RegisterStreamConsumer",
            &json!({"StreamARN": arn, "ConsumerName": name}),
        )
        .await
        .unwrap();
    consumer["Consumer"]["ConsumerARN"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn trim_horizon(consumer_arn: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "ConsumerARN": consumer_arn,
        "ShardId": "shardId-000000000000",
        "StartingPosition": {"Type": "TRIM_HORIZON"},
    }))
    .unwrap()
}

/// A subscription whose events are never read.
fn stalled_subscription(server: &TestServer, consumer_arn: &str) -> std::net::TcpStream {
    let body = trim_horizon(consumer_arn);
    let mut stream = std::net::TcpStream::connect(server.address).unwrap();
    write!(
        stream,
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-amz-json-1.1\r\n\
         X-Amz-Target: Kinesis_20131202.SubscribeToShard\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(&body).unwrap();
    stream
}

/// Puts a 48 MB backlog in batches of four 1 MB records: an event holds one batch (5.3 MB
/// encoded), and a stalled subscriber one event.
async fn put_backlog(client: &mut KinesisClient) {
    for batch in 0..RECORDS / 4 {
        let records: Vec<Value> = (0..4)
            .map(|i| {
                let data = vec![b'0' + (batch * 4 + i) as u8; RECORD_BYTES];
                json!({"PartitionKey": "k", "Data": base64::engine::general_purpose::STANDARD.encode(data)})
            })
            .collect();
        let _: Value = client
            .call(
                "PutRecords",
                &json!({"StreamName": "backlog", "Records": records}),
            )
            .await
            .unwrap();
    }
}

/// Reads the shard as KCL does (resubscribing after each subscription's last
/// continuation) until every record came, for at most 90 s: the first byte of each
/// record's data, and whether a heartbeat said the reader was behind.
async fn read_all(server: &TestServer, consumer_arn: &str) -> (Vec<u8>, bool) {
    let mut reader = KinesisClient::connect(server.address).await.unwrap();
    let (mut data, mut behind) = (Vec::new(), false);
    let mut position = json!({"Type": "TRIM_HORIZON"});
    let started = std::time::Instant::now();
    while data.len() < RECORDS && started.elapsed() < Duration::from_secs(90) {
        let body = json!({
            "ConsumerARN": consumer_arn, "ShardId": "shardId-000000000000", "StartingPosition": position,
        });
        let (status, reply) = reader
            .send(
                "SubscribeToShard",
                serde_json::to_vec(&body).unwrap().into(),
            )
            .await
            .unwrap();
        assert_eq!(status, 200);
        for (kind, event) in common::events(&reply) {
            assert!(
                kind == "initial-response" || kind == "SubscribeToShardEvent",
                "{kind}"
            );
            let records = event["Records"].as_array().cloned().unwrap_or_default();
            let lag = event["MillisBehindLatest"].as_u64().unwrap_or(0);
            behind |= kind == "SubscribeToShardEvent" && records.is_empty() && lag > 0;
            for record in records {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(record["Data"].as_str().unwrap())
                    .unwrap();
                assert_eq!(bytes.len(), RECORD_BYTES);
                data.push(bytes[0]);
            }
            if let Some(continuation) = event["ContinuationSequenceNumber"].as_str() {
                position = json!({"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": continuation});
            }
        }
    }
    (data, behind)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_that_stop_reading_hold_at_most_the_budget_and_others_catch_up() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(
        dir.path(),
        &[
            "--durability",
            "visible",
            "--subscription-budget-mib",
            "16",
            "--stall-timeout-ms",
            "3000",
            "--subscription-ms",
            "5000",
            "--heartbeat-ms",
            "300",
        ],
    );
    let mut client = KinesisClient::connect(server.address).await.unwrap();
    let _: Value = client
        .call(
            "CreateStream",
            &json!({"StreamName": "backlog", "ShardCount": 1}),
        )
        .await
        .unwrap();
    put_backlog(&mut client).await;
    let arn = "arn:aws:kinesis:us-east-1:000000000000:stream/backlog";
    let mut consumers = Vec::new();
    for i in 0..CONSUMERS {
        consumers.push(register(&mut client, arn, &format!("c{i}")).await);
    }
    let before_mib = common::rss_kb(server.pid()) / 1024;
    let stalled: Vec<_> = consumers[1..]
        .iter()
        .map(|consumer| stalled_subscription(&server, consumer))
        .collect();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // Growth within the 16 MiB budget, the mapped records and the connections' buffers.
    // Unbounded (10 MiB events, frames queued per subscriber, no budget) it was over 100
    // MiB here, and grows with the backlog and the number of subscribers.
    let peak_mib = common::peak_rss_kb(server.pid()) / 1024;
    println!(
        "resident memory {before_mib} MiB, with 19 stalled subscribers at most {peak_mib} MiB"
    );
    assert!(
        peak_mib.saturating_sub(before_mib) < 40,
        "resident memory grew from {before_mib} to {peak_mib} MiB"
    );

    // A subscriber that reads, as KCL does (resubscribing after each subscription's
    // last continuation): behind while the stalled ones hold the budget, then every
    // record once the server ended them for not reading.
    let started = std::time::Instant::now();
    let (data, behind) = read_all(&server, &consumers[0]).await;
    println!("caught up after {:?}", started.elapsed());
    assert!(
        behind,
        "no heartbeat said the reader was behind while starved"
    );
    let expected: Vec<u8> = (0..RECORDS).map(|i| b'0' + i as u8).collect();
    assert_eq!(data, expected, "every record, in order, once");
    drop(stalled);
}
