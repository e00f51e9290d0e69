//! Records a durable PutRecords acknowledged survive a kill -9 of the server: writers put
//! over several connections, the server is SIGKILLed at a random moment, restarted on the
//! same directory, and every shard is read back through the wire.

mod common;

use common::TestServer;
use serde_json::{Value, json};
use sluice_loadgen::client::KinesisClient;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const STREAM: &str = "durable";
const WRITERS: usize = 4;
const BATCH: usize = 20;

/// An acknowledged record: where the server said it is, and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Acked {
    shard: String,
    sequence: String,
    key: String,
    data: String,
}

fn cycles() -> u64 {
    std::env::var("SLUICE_SERVER_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

async fn writer(
    address: std::net::SocketAddr,
    id: usize,
    cycle: u64,
    acked: Arc<Mutex<Vec<Acked>>>,
) {
    let Ok(mut client) = KinesisClient::connect(address).await else {
        return;
    };
    for round in 0.. {
        let records: Vec<(String, String)> = (0..BATCH)
            .map(|i| {
                (
                    format!("w{id}-c{cycle}"),
                    format!("{id}/{cycle}/{round}/{i}"),
                )
            })
            .collect();
        let body = json!({
            "StreamName": STREAM,
            "Records": records.iter().map(|(key, data)| json!({
                "PartitionKey": key,
                "Data": base64_encode(data.as_bytes()),
            })).collect::<Vec<_>>(),
        });
        let Ok(reply) = client.call::<_, Value>("PutRecords", &body).await else {
            return;
        };
        let mut acked = acked.lock().unwrap();
        for ((key, data), result) in records
            .into_iter()
            .zip(reply["Records"].as_array().unwrap())
        {
            if let (Some(shard), Some(sequence)) = (
                result["ShardId"].as_str(),
                result["SequenceNumber"].as_str(),
            ) {
                acked.push(Acked {
                    shard: shard.into(),
                    sequence: sequence.into(),
                    key,
                    data,
                });
            }
        }
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn base64_decode(text: &str) -> String {
    use base64::Engine as _;
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap(),
    )
    .unwrap()
}

/// Every record of every shard, by shard, through GetRecords.
async fn read_back(client: &mut KinesisClient) -> BTreeMap<String, Vec<Acked>> {
    let shards: Value = client
        .call("ListShards", &json!({"StreamName": STREAM}))
        .await
        .unwrap();
    let mut all = BTreeMap::new();
    for shard in shards["Shards"].as_array().unwrap() {
        let id = shard["ShardId"].as_str().unwrap().to_owned();
        let it: Value = client
            .call(
                "GetShardIterator",
                &json!({"StreamName": STREAM, "ShardId": id, "ShardIteratorType": "TRIM_HORIZON"}),
            )
            .await
            .unwrap();
        let mut iterator = it["ShardIterator"].as_str().unwrap().to_owned();
        let mut records = Vec::new();
        loop {
            let page: Value = client
                .call("GetRecords", &json!({"ShardIterator": iterator}))
                .await
                .unwrap();
            let batch = page["Records"].as_array().unwrap();
            for r in batch {
                records.push(Acked {
                    shard: id.clone(),
                    sequence: r["SequenceNumber"].as_str().unwrap().into(),
                    key: r["PartitionKey"].as_str().unwrap().into(),
                    data: base64_decode(r["Data"].as_str().unwrap()),
                });
            }
            if batch.is_empty() {
                break;
            }
            iterator = page["NextShardIterator"].as_str().unwrap().to_owned();
        }
        all.insert(id, records);
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_durable_puts_survive_a_kill_9_of_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let mut acked_all: Vec<Acked> = Vec::new();
    let mut seed = std::process::id() as u64 ^ 0x9e37_79b9_7f4a_7c15;
    for cycle in 0..cycles() {
        let server = TestServer::start(dir.path(), &[]);
        let mut client = KinesisClient::connect(server.address).await.unwrap();
        if cycle == 0 {
            let _: Value = client
                .call(
                    "CreateStream",
                    &json!({"StreamName": STREAM, "ShardCount": 3}),
                )
                .await
                .unwrap();
        }
        let acked = Arc::new(Mutex::new(Vec::new()));
        let writers: Vec<_> = (0..WRITERS)
            .map(|id| tokio::spawn(writer(server.address, id, cycle, acked.clone())))
            .collect();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let run_ms = 150 + seed % 400;
        tokio::time::sleep(Duration::from_millis(run_ms)).await;
        server.kill();
        for writer in writers {
            writer.await.unwrap();
        }
        let acked = std::mem::take(&mut *acked.lock().unwrap());
        assert!(
            !acked.is_empty(),
            "cycle {cycle}: no put was acknowledged in {run_ms} ms"
        );
        acked_all.extend(acked);

        let server = TestServer::start(dir.path(), &[]);
        let mut client = KinesisClient::connect(server.address).await.unwrap();
        let stored = read_back(&mut client).await;
        let by_sequence: BTreeMap<(&str, &str), &Acked> = stored
            .values()
            .flatten()
            .map(|r| ((r.shard.as_str(), r.sequence.as_str()), r))
            .collect();
        for record in &acked_all {
            let found = by_sequence.get(&(record.shard.as_str(), record.sequence.as_str()));
            assert_eq!(
                found,
                Some(&record),
                "cycle {cycle} (seed {seed}): acknowledged record lost or altered"
            );
        }
        // Per key, the stored records are the writer's puts in order: no holes, no duplicates.
        let mut per_key: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for record in stored.values().flatten() {
            per_key.entry(&record.key).or_default().push(&record.data);
        }
        for (key, datas) in per_key {
            let expected: Vec<String> = (0..datas.len())
                .map(|n| {
                    let (round, i) = (n / BATCH, n % BATCH);
                    let parts: Vec<&str> = key.trim_start_matches('w').split("-c").collect();
                    format!("{}/{}/{round}/{i}", parts[0], parts[1])
                })
                .collect();
            assert_eq!(
                datas, expected,
                "cycle {cycle}: key {key} has a hole or a duplicate"
            );
        }
        println!(
            "cycle {cycle}: killed after {run_ms} ms, {} acknowledged records so far, all present",
            acked_all.len()
        );
        server.kill();
    }
}
