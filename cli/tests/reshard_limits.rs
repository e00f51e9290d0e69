//! Kinesis' resharding limits, and a server that refuses shards it cannot hold instead of
//! running out of file descriptors for every tenant.

mod common;

use common::TestServer;
use serde_json::{Value, json};
use sluice_loadgen::client::KinesisClient;
use std::process::Command;
use std::time::Duration;

async fn create(client: &mut KinesisClient, name: &str, shards: u32) -> Result<Value, String> {
    client
        .call(
            "CreateStream",
            &json!({"StreamName": name, "ShardCount": shards}),
        )
        .await
        .map_err(|e| format!("{}: {}", e.name, e.message))
}

async fn update(client: &mut KinesisClient, name: &str, target: u32) -> Result<Value, String> {
    client
        .call(
            "UpdateShardCount",
            &json!({"StreamName": name, "TargetShardCount": target, "ScalingType": "UNIFORM_SCALING"}),
        )
        .await
        .map_err(|e| format!("{}: {}", e.name, e.message))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_shard_count_is_limited_to_ten_per_stream_per_day_and_five_per_second() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), &[]);
    let mut client = KinesisClient::connect(server.address).await.unwrap();
    create(&mut client, "scaled", 1).await.unwrap();
    create(&mut client, "other", 1).await.unwrap();
    // Six at once: the sixth is over five per second for the account.
    let mut results = Vec::new();
    for i in 0..6 {
        let stream = if i < 5 { "scaled" } else { "other" };
        results.push(update(&mut client, stream, [2, 1][i % 2]).await);
    }
    assert!(results[..5].iter().all(Result::is_ok), "{results:?}");
    let refused = results[5].as_ref().unwrap_err();
    assert!(
        refused.starts_with("LimitExceededException: Rate exceeded"),
        "{refused}"
    );
    // Spaced out, five more on the stream reach ten in 24 hours; the eleventh is refused.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for i in 5..10 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        update(&mut client, "scaled", [2, 1][i % 2]).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(250)).await;
    let eleventh = update(&mut client, "scaled", 2).await.unwrap_err();
    assert!(
        eleventh.starts_with("LimitExceededException")
            && eleventh.contains("10 UpdateShardCount calls in the last 24 hours"),
        "{eleventh}"
    );
    // Another stream has its own count.
    update(&mut client, "other", 2).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_the_process_cannot_hold_are_refused_and_the_server_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    // A hard limit of 800 descriptors: the server cannot raise it.
    let mut command = Command::new("bash");
    command
        .arg("-c")
        .arg(r#"ulimit -n 800 && exec "$0" "$@""#)
        .arg(env!("CARGO_BIN_EXE_sluice"))
        .args(["serve", "--listen", "127.0.0.1:0", "--print-address"])
        .args(["--cores", "1", "--segment-mib", "1", "--dir"])
        .arg(dir.path());
    let server = TestServer::spawn(command, dir.path());
    let mut client = KinesisClient::connect(server.address).await.unwrap();
    create(&mut client, "small", 2).await.unwrap();
    let refused = create(&mut client, "huge", 200).await.unwrap_err();
    assert!(
        refused.starts_with("LimitExceededException") && refused.contains("file descriptors"),
        "{refused}"
    );
    let refused = update(&mut client, "small", 4).await;
    assert!(refused.is_ok(), "a small reshard fits: {refused:?}");
    // Nothing half-done, nothing broken for the other streams.
    let put: Value = client
        .call(
            "PutRecord",
            &json!({"StreamName": "small", "PartitionKey": "k", "Data": "AAAA"}),
        )
        .await
        .unwrap();
    assert!(put["SequenceNumber"].is_string(), "{put}");
    let names: Value = client.call("ListStreams", &json!({})).await.unwrap();
    assert_eq!(names["StreamNames"], json!(["small"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_shards_cost_no_descriptors_so_a_stream_can_reshard_all_day() {
    let dir = tempfile::tempdir().unwrap();
    // 800 descriptors, 512 of them kept free: room for about 90 shards' worth at a time.
    let mut command = Command::new("bash");
    command
        .arg("-c")
        .arg(r#"ulimit -n 800 && exec "$0" "$@""#)
        .arg(env!("CARGO_BIN_EXE_sluice"))
        .args(["serve", "--listen", "127.0.0.1:0", "--print-address"])
        .args(["--cores", "1", "--segment-mib", "1", "--dir"])
        .arg(dir.path());
    let server = TestServer::spawn(command, dir.path());
    let mut client = KinesisClient::connect(server.address).await.unwrap();
    create(&mut client, "elastic", 20).await.unwrap();
    // The day's ten calls, 20 <-> 40 shards: 300 shards closed on the way. Each used to
    // keep its lock file and segment open, and the fourth call was refused for descriptors.
    for (i, target) in [40, 20].into_iter().cycle().take(10).enumerate() {
        tokio::time::sleep(Duration::from_millis(250)).await; // five per second per account
        let result = update(&mut client, "elastic", target).await;
        assert!(result.is_ok(), "call {}: {result:?}", i + 1);
        let put: Value = client
            .call(
                "PutRecord",
                &json!({"StreamName": "elastic", "PartitionKey": format!("k{i}"), "Data": "AAAA"}),
            )
            .await
            .unwrap();
        assert!(put["SequenceNumber"].is_string(), "{put}");
    }
    let summary: Value = client
        .call("DescribeStreamSummary", &json!({"StreamName": "elastic"}))
        .await
        .unwrap();
    assert_eq!(summary["StreamDescriptionSummary"]["OpenShardCount"], 20);
}
