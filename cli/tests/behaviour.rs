//! Server behaviour beyond the SDK suites: Kinesis-faithful limits, injected faults, status
//! transitions, server state surviving a kill -9, and per-shard metrics.

mod common;

use common::TestServer;
use serde_json::{Value, json};
use sluice_loadgen::client::{CallError, KinesisClient};
use std::time::Duration;

async fn create(client: &mut KinesisClient, name: &str, shards: u32) {
    let _: Value = client
        .call(
            "CreateStream",
            &json!({"StreamName": name, "ShardCount": shards}),
        )
        .await
        .unwrap();
}

fn put_records_body(name: &str, count: usize) -> Value {
    let records: Vec<Value> = (0..count)
        .map(|i| json!({"PartitionKey": format!("k{i}"), "Data": "AAAA"}))
        .collect();
    json!({"StreamName": name, "Records": records})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforced_limits_throttle_a_shard_past_1000_records_per_second() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), &["--enforce-limits"]);
    let mut client = KinesisClient::connect(server.address).await.unwrap();
    create(&mut client, "limited", 1).await;
    let (mut accepted, mut throttled) = (0, 0);
    for _ in 0..3 {
        let reply: Value = client
            .call("PutRecords", &put_records_body("limited", 500))
            .await
            .unwrap();
        for entry in reply["Records"].as_array().unwrap() {
            match entry["ErrorCode"].as_str() {
                None => accepted += 1,
                Some("ProvisionedThroughputExceededException") => throttled += 1,
                Some(other) => panic!("unexpected per-record error {other}"),
            }
        }
        assert_eq!(
            reply["FailedRecordCount"].as_u64().unwrap() as usize,
            reply["Records"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["ErrorCode"].is_string())
                .count()
        );
    }
    // 1,500 records within a second against a 1,000 records/s bucket: some must be refused.
    assert!(
        accepted >= 1000 && throttled > 0,
        "accepted {accepted}, throttled {throttled}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_faults_fail_data_calls_with_retryable_errors_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), &["--fault-probability", "1"]);
    let mut client = KinesisClient::connect(server.address).await.unwrap();
    create(&mut client, "faulty", 1).await; // control calls are not injected
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let error: CallError = client
            .call::<_, Value>(
                "PutRecord",
                &json!({"StreamName": "faulty", "PartitionKey": "k", "Data": "AA=="}),
            )
            .await
            .unwrap_err();
        assert!(
            (error.name == "ProvisionedThroughputExceededException" && error.status == 400)
                || (error.name == "InternalFailureException" && error.status == 500),
            "{error}"
        );
        seen.insert(error.name);
    }
    assert_eq!(seen.len(), 2, "both kinds of fault appear: {seen:?}");
    let summary: Value = client
        .call("DescribeStreamSummary", &json!({"StreamName": "faulty"}))
        .await
        .unwrap();
    assert_eq!(summary["StreamDescriptionSummary"]["OpenShardCount"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_delay_reports_creating_then_active_and_guards_control_calls() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), &["--status-delay-ms", "1500"]);
    let mut client = KinesisClient::connect(server.address).await.unwrap();
    create(&mut client, "slow", 2).await;
    let status = |v: Value| {
        v["StreamDescriptionSummary"]["StreamStatus"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let summary: Value = client
        .call("DescribeStreamSummary", &json!({"StreamName": "slow"}))
        .await
        .unwrap();
    assert_eq!(status(summary), "CREATING");
    let error = client
        .call::<_, Value>(
            "IncreaseStreamRetentionPeriod",
            &json!({"StreamName": "slow", "RetentionPeriodHours": 48}),
        )
        .await
        .unwrap_err();
    assert_eq!(error.name, "ResourceInUseException");
    let _: Value = client
        .call(
            "PutRecord",
            &json!({"StreamName": "slow", "PartitionKey": "k", "Data": "AA=="}),
        )
        .await
        .expect("writes work while CREATING");
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let summary: Value = client
        .call("DescribeStreamSummary", &json!({"StreamName": "slow"}))
        .await
        .unwrap();
    assert_eq!(status(summary), "ACTIVE");
    let _: Value = client
        .call(
            "IncreaseStreamRetentionPeriod",
            &json!({"StreamName": "slow", "RetentionPeriodHours": 48}),
        )
        .await
        .unwrap();
}

/// A resource policy the server can apply (it refuses ones it cannot).
const POLICY: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","Principal":"*","Action":"kinesis:DeleteStream","Resource":"*"}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_policies_and_settings_survive_a_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), &[]);
    let mut client = KinesisClient::connect(server.address).await.unwrap();
    create(&mut client, "kept", 1).await;
    let arn = "arn:aws:kinesis:us-east-1:000000000000:stream/kept";
    let consumer: Value = client
        .call(
            "RegisterStreamConsumer",
            &json!({"StreamARN": arn, "ConsumerName": "c"}),
        )
        .await
        .unwrap();
    let _: Value = client
        .call(
            "PutResourcePolicy",
            &json!({"ResourceARN": arn, "Policy": POLICY}),
        )
        .await
        .unwrap();
    let _: Value = client
        .call(
            "StartStreamEncryption",
            &json!({"StreamName": "kept", "EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"}),
        )
        .await
        .unwrap();
    server.kill();

    let server = TestServer::start(dir.path(), &[]);
    let mut client = KinesisClient::connect(server.address).await.unwrap();
    let described: Value = client
        .call(
            "DescribeStreamConsumer",
            &json!({"ConsumerARN": consumer["Consumer"]["ConsumerARN"]}),
        )
        .await
        .unwrap();
    assert_eq!(described["ConsumerDescription"]["ConsumerName"], "c");
    let policy: Value = client
        .call("GetResourcePolicy", &json!({"ResourceARN": arn}))
        .await
        .unwrap();
    assert_eq!(policy["Policy"], POLICY);
    let stream: Value = client
        .call("DescribeStream", &json!({"StreamName": "kept"}))
        .await
        .unwrap();
    assert_eq!(stream["StreamDescription"]["KeyId"], "alias/aws/kinesis");

    // A stream deleted and created again does not inherit its predecessor's consumers.
    let _: Value = client
        .call(
            "DeleteStream",
            &json!({"StreamName": "kept", "EnforceConsumerDeletion": true}),
        )
        .await
        .unwrap();
    create(&mut client, "kept", 1).await;
    let consumers: Value = client
        .call("ListStreamConsumers", &json!({"StreamARN": arn}))
        .await
        .unwrap();
    assert_eq!(consumers["Consumers"], json!([]));
    let policy: Value = client
        .call("GetResourcePolicy", &json!({"ResourceARN": arn}))
        .await
        .unwrap();
    assert_eq!(policy["Policy"], "{}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_expose_per_shard_counters_and_request_latency() {
    if !common::needs_curl() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), &[]);
    let mut client = KinesisClient::connect(server.address).await.unwrap();
    create(&mut client, "measured", 1).await;
    let _: Value = client
        .call("PutRecords", &put_records_body("measured", 7))
        .await
        .unwrap();
    let output = std::process::Command::new("curl")
        .args(["-sS", &format!("{}/metrics", server.endpoint())])
        .output()
        .unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("sluice_shard_incoming_records") && l.contains("measured"))
        .unwrap_or_else(|| panic!("no per-shard counter in:\n{text}"));
    assert!(line.ends_with(" 7"), "{line}");
    assert!(
        text.contains("sluice_request_seconds_bucket{operation=\"PutRecords\",le=\"0.001\"}"),
        "request latency is a histogram per operation:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[expect(
    clippy::too_many_lines,
    reason = "one consumer's life on one shard, read as one scenario: each phase (idle, resume, shard end) starts from the checkpoint the one before it returned"
)]
async fn subscriptions_checkpoint_resume_after_the_continuation_and_end_at_shard_end() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(
        dir.path(),
        &["--subscription-ms", "1200", "--heartbeat-ms", "200"],
    );
    let mut client = KinesisClient::connect(server.address).await.unwrap();
    create(&mut client, "subs", 1).await;
    let arn = "arn:aws:kinesis:us-east-1:000000000000:stream/subs";
    let consumer: Value = client
        .call(
            "RegisterStreamConsumer",
            &json!({"StreamARN": arn, "ConsumerName": "c"}),
        )
        .await
        .unwrap();
    let consumer_arn = consumer["Consumer"]["ConsumerARN"]
        .as_str()
        .unwrap()
        .to_owned();
    // KCL resubscribes AFTER_SEQUENCE_NUMBER of the last ContinuationSequenceNumber.
    let subscribe = |position: Value| {
        bytes::Bytes::from(
            serde_json::to_vec(&json!({
                "ConsumerARN": consumer_arn, "ShardId": "shardId-000000000000", "StartingPosition": position
            }))
            .unwrap(),
        )
    };

    // Idle: an initial response, then empty heartbeat events, then the end after 1.2 s.
    let started = std::time::Instant::now();
    let (status, body) = client
        .send(
            "SubscribeToShard",
            subscribe(json!({"Type": "TRIM_HORIZON"})),
        )
        .await
        .unwrap();
    assert_eq!(status, 200);
    let idle = common::events(&body);
    assert!(
        started.elapsed() >= Duration::from_millis(1100),
        "ended after {:?}",
        started.elapsed()
    );
    assert_eq!(idle[0].0, "initial-response");
    let heartbeats = &idle[1..];
    assert!(
        heartbeats.len() >= 4,
        "{} heartbeats in 1.2 s at 200 ms",
        heartbeats.len()
    );
    for (kind, event) in heartbeats {
        assert_eq!(kind, "SubscribeToShardEvent");
        assert_eq!(event["Records"], json!([]));
    }
    let checkpoint = heartbeats.last().unwrap().1["ContinuationSequenceNumber"].clone();
    let shards: Value = client
        .call("ListShards", &json!({"StreamName": "subs"}))
        .await
        .unwrap();
    assert_eq!(
        checkpoint, shards["Shards"][0]["SequenceNumberRange"]["StartingSequenceNumber"],
        "an idle subscriber's checkpoint is the shard's start"
    );

    // Two records arrive; resuming AFTER the idle checkpoint delivers both, the first too.
    let mut puts = Vec::new();
    for data in ["AQ==", "Ag=="] {
        let put: Value = client
            .call(
                "PutRecord",
                &json!({"StreamName": "subs", "PartitionKey": "k", "Data": data}),
            )
            .await
            .unwrap();
        puts.push(put["SequenceNumber"].clone());
    }
    tokio::time::sleep(Duration::from_millis(5100)).await; // the 5-second lease rule
    let (_, body) = client
        .send(
            "SubscribeToShard",
            subscribe(json!({"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": checkpoint})),
        )
        .await
        .unwrap();
    let resumed = common::events(&body);
    let seen: Vec<Value> = resumed
        .iter()
        .flat_map(|(_, e)| e["Records"].as_array().cloned().unwrap_or_default())
        .map(|r| r["SequenceNumber"].clone())
        .collect();
    assert_eq!(seen, puts, "nothing lost, nothing twice");
    let checkpoint = resumed.last().unwrap().1["ContinuationSequenceNumber"].clone();
    assert_eq!(
        checkpoint, puts[1],
        "the checkpoint is the last record delivered"
    );

    // The shard closes: resuming AFTER the checkpoint gets no record again, then the end of
    // the shard: ChildShards, no ContinuationSequenceNumber, and the stream ends at once.
    let _: Value = client
        .call("SplitShard", &json!({"StreamName": "subs", "ShardToSplit": "shardId-000000000000", "NewStartingHashKey": "1000"}))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5100)).await;
    let started = std::time::Instant::now();
    let (status, body) = client
        .send(
            "SubscribeToShard",
            subscribe(json!({"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": checkpoint})),
        )
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "a finished shard ends the stream at once"
    );
    let parent = common::events(&body);
    assert!(
        parent
            .iter()
            .all(|(_, e)| e["Records"].as_array().is_none_or(|r| r.is_empty()))
    );
    let last = &parent.last().unwrap().1;
    assert!(last.get("ContinuationSequenceNumber").is_none(), "{last}");
    let children: Vec<&str> = last["ChildShards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["ShardId"].as_str().unwrap())
        .collect();
    assert_eq!(children, ["shardId-000000000001", "shardId-000000000002"]);
    assert_eq!(
        last["ChildShards"][0]["ParentShards"],
        json!(["shardId-000000000000"])
    );
}

/// Peak resident memory of a process, from /proc (kB).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_lists_are_counted_not_materialized() {
    if !common::needs_curl() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), &[]);
    let mut client = KinesisClient::connect(server.address).await.unwrap();
    create(&mut client, "big", 1).await;
    // 15 MiB of empty records: 5 million of them in JSON, 15 million in CBOR.
    let mut json_body = br#"{"StreamName":"big","Records":["#.to_vec();
    while json_body.len() < 15 << 20 {
        json_body.extend_from_slice(b"{},");
    }
    json_body.extend_from_slice(b"{}]}");
    let count = (json_body.len() - 31) / 3;
    let (status, reply) = client.send("PutRecords", json_body.into()).await.unwrap();
    let reply: Value = serde_json::from_slice(&reply).unwrap();
    assert_eq!(
        (status, reply["__type"].as_str()),
        (400, Some("ValidationException")),
        "{reply}"
    );
    let message = reply["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("Value '{count} items' at 'records'")),
        "{message}"
    );
    assert!(message.contains("less than or equal to 500"), "{message}");

    let body_file = dir.path().join("body.cbor");
    let mut encoded = vec![0xa2];
    ciborium::into_writer(&"StreamName", &mut encoded).unwrap();
    ciborium::into_writer(&"big", &mut encoded).unwrap();
    ciborium::into_writer(&"Records", &mut encoded).unwrap();
    encoded.push(0x9f);
    encoded.resize(encoded.len() + (15 << 20), 0xa0);
    encoded.push(0xff);
    std::fs::write(&body_file, &encoded).unwrap();
    // The JSON client speaks JSON only; curl sends the CBOR body.
    let out = std::process::Command::new("curl")
        .args(["-sS", "-H", "Content-Type: application/x-amz-cbor-1.1"])
        .args([
            "-H",
            "X-Amz-Target: Kinesis_20131202.PutRecords",
            "--data-binary",
        ])
        .arg(format!("@{}", body_file.display()))
        .arg(format!("{}/", server.endpoint()))
        .output()
        .unwrap();
    let reply: ciborium::Value = ciborium::from_reader(&out.stdout[..]).unwrap();
    let text = format!("{reply:?}");
    assert!(
        text.contains("ValidationException") && text.contains("15728640 items"),
        "{text}"
    );

    // Two 15 MiB bodies were read; what they described was never built. The bound leaves
    // room for the bodies, the engine's mappings and the runtime.
    let peak_mb = common::peak_rss_kb(server.pid()) / 1024;
    println!("peak resident memory: {peak_mb} MiB");
    assert!(peak_mb < 250, "peak resident memory {peak_mb} MiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_cannot_hold_the_body_budget_for_ever() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    // A 1 MiB budget (the server keeps room for one largest body plus 1 KiB).
    let server = TestServer::start(dir.path(), &["--body-mib", "1", "--body-budget-mib", "1"]);
    let mut client = KinesisClient::connect(server.address).await.unwrap();
    create(&mut client, "budget", 1).await;
    // Two bodies that stop short of their end, holding what they sent (budget is reserved
    // as bytes arrive): almost a largest body, and one byte, which takes the last KiB.
    let stall = |length: usize, sent: usize| {
        let mut stream = std::net::TcpStream::connect(server.address).unwrap();
        write!(
            stream,
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-amz-json-1.1\r\n\
             X-Amz-Target: Kinesis_20131202.PutRecord\r\nContent-Length: {length}\r\n\r\n"
        )
        .unwrap();
        stream.write_all(&vec![b' '; sent]).unwrap();
        stream
    };
    let stalled = (stall(1 << 20, (1 << 20) - 1), stall(2, 1));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    let error = client
        .call::<_, Value>("DescribeStreamSummary", &json!({"StreamName": "budget"}))
        .await
        .unwrap_err();
    assert_eq!(
        (error.name.as_str(), error.status),
        ("InternalFailureException", 500),
        "{error}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "refused after {:?}",
        started.elapsed()
    );
    // The stalled client goes away: its reservation returns and requests go through.
    drop(stalled);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let summary: Value = client
        .call("DescribeStreamSummary", &json!({"StreamName": "budget"}))
        .await
        .unwrap();
    assert_eq!(summary["StreamDescriptionSummary"]["OpenShardCount"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_default_relative_data_directory_takes_durable_puts() {
    // `scripts/serve` runs `sluice serve` with its default `--dir sluice-data`, relative.
    let cwd = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(cwd.path(), std::path::Path::new("sluice-data"), &[]);
    let mut client = KinesisClient::connect(server.address).await.unwrap();
    create(&mut client, "orders", 2).await;
    for key in ["a", "b", "c", "d"] {
        let _: Value = client
            .call(
                "PutRecord",
                &json!({"StreamName": "orders", "PartitionKey": key, "Data": "aGVsbG8="}),
            )
            .await
            .unwrap();
    }
    assert!(cwd.path().join("sluice-data/meta.log").exists());
}
