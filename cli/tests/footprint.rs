//! The disk a restarted server takes: pre-allocated segments are reused across restarts, so
//! ten restarts with a put between them leave one segment file per shard (each restart used to
//! pre-allocate another).

mod common;

use common::TestServer;
use serde_json::{Value, json};
use sluice_loadgen::client::KinesisClient;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

const SHARDS: u64 = 2;
/// `TestServer` runs with `--segment-mib 4`.
const SEGMENT_BYTES: u64 = 4 << 20;

/// Every segment file under `dir`, with the bytes the file system allocated for it.
fn segment_files(dir: &Path) -> Vec<(std::path::PathBuf, u64)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type().unwrap().is_dir() {
            found.extend(segment_files(&path));
        } else if name.starts_with("seg-") && name.ends_with(".log") {
            found.push((path, entry.metadata().unwrap().blocks() * 512));
        }
    }
    found
}

#[tokio::test(flavor = "current_thread")]
async fn ten_restarts_with_a_put_between_keep_one_segment_per_shard() {
    let dir = tempfile::tempdir().unwrap();
    for restart in 0..10u64 {
        let server = TestServer::start(dir.path(), &[]);
        let mut client = KinesisClient::connect(server.address).await.unwrap();
        if restart == 0 {
            let _: Value = client
                .call(
                    "CreateStream",
                    &json!({"StreamName": "footprint", "ShardCount": SHARDS}),
                )
                .await
                .unwrap();
        }
        // One record into each shard: the lowest and the highest hash key.
        for hash_key in ["0", "340282366920938463463374607431768211455"] {
            let _: Value = client
                .call(
                    "PutRecord",
                    &json!({
                        "StreamName": "footprint",
                        "PartitionKey": "k",
                        "ExplicitHashKey": hash_key,
                        "Data": "aGVsbG8=",
                    }),
                )
                .await
                .unwrap();
        }
        drop(client);
        server.kill();
        let files = segment_files(dir.path());
        let allocated: u64 = files.iter().map(|(_, bytes)| bytes).sum();
        assert_eq!(
            files.len() as u64,
            SHARDS,
            "restart {restart}: one segment per shard, found {files:?}"
        );
        assert!(
            allocated <= SHARDS * SEGMENT_BYTES,
            "restart {restart}: {allocated} bytes allocated for {SHARDS} segments of {SEGMENT_BYTES}"
        );
    }
    // And every record is there: 10 per shard.
    let server = TestServer::start(dir.path(), &[]);
    let mut client = KinesisClient::connect(server.address).await.unwrap();
    for count in records_per_shard(&mut client).await {
        assert_eq!(count, 10);
    }
    check_inspect(dir.path(), server);
}

/// How many records each shard of the stream holds.
async fn records_per_shard(client: &mut KinesisClient) -> Vec<usize> {
    let shards: Value = client
        .call("ListShards", &json!({"StreamName": "footprint"}))
        .await
        .unwrap();
    let mut counts = Vec::new();
    for shard in shards["Shards"].as_array().unwrap() {
        let iterator: Value = client
            .call(
                "GetShardIterator",
                &json!({
                    "StreamName": "footprint",
                    "ShardId": shard["ShardId"],
                    "ShardIteratorType": "TRIM_HORIZON",
                }),
            )
            .await
            .unwrap();
        let records: Value = client
            .call(
                "GetRecords",
                &json!({"ShardIterator": iterator["ShardIterator"]}),
            )
            .await
            .unwrap();
        counts.push(records["Records"].as_array().unwrap().len());
    }
    counts
}

/// `sluice inspect` refuses a directory a running server holds, naming the fix; once the
/// server is stopped, it shows one live segment per shard and the total allocated.
fn check_inspect(dir: &Path, server: TestServer) {
    let refused = inspect(dir);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("stop it first"), "{stderr}");
    server.kill();
    let shown = inspect(dir);
    let stdout = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.status.success(), "{stdout}");
    for shard in [
        "footprint/shardId-000000000000",
        "footprint/shardId-000000000001",
    ] {
        let row = stdout
            .lines()
            .find(|l| l.starts_with(shard))
            .unwrap_or_else(|| panic!("no row for {shard}: {stdout}"));
        let columns: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(&columns[1..4], ["1", "1", "0"], "{row}");
    }
    let total = stdout.lines().find(|l| l.starts_with("total")).unwrap();
    assert!(total.contains("8.0 MiB"), "{total}");
}

fn inspect(dir: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["inspect", "--segment-mib", "4", "--dir"])
        .arg(dir)
        .output()
        .expect("running sluice inspect")
}
