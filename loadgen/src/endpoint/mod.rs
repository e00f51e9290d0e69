//! `sluice bench --endpoint URL`: drives any Kinesis endpoint (ours or another) over many
//! keep-alive connections with pre-encoded PutRecords requests, then reads every shard back
//! with GetRecords and checks that each acknowledged record is there with its data.

mod fanout;
mod read;

use crate::client::KinesisClient;
use crate::{BenchArgs, filler, report, report_latency};
use anyhow::{Context, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use hdrhistogram::Histogram;
use indicatif::ProgressBar;
use serde::Deserialize;
use serde_json::{Value, json};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutRecordsReply<'a> {
    #[serde(borrow)]
    records: Vec<PutResult<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutResult<'a> {
    #[serde(borrow)]
    sequence_number: Option<&'a str>,
    #[serde(borrow)]
    shard_id: Option<&'a str>,
}

/// An acknowledged record: where it landed, and which record of which connection's body
/// it is. Kept compact (no strings, no map) so the load generator stays cheap.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Acked {
    pub(super) shard: u32,
    pub(super) sequence: Sequence,
    pub(super) conn: u32,
    pub(super) index: u32,
}

/// A sequence number as the endpoint wrote it. Sluice's fit in a u128; other endpoints use
/// longer ones (kinesalite: 56 digits), kept as text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum Sequence {
    Small(u128),
    Large(Box<str>),
}

impl Sequence {
    pub(super) fn parse(text: &str) -> Sequence {
        match text.parse() {
            Ok(n) => Sequence::Small(n),
            Err(_) => Sequence::Large(text.into()),
        }
    }
}

/// What a connection learned: acknowledged records, failures, latencies.
struct ConnectionResult {
    acknowledged: Vec<Acked>,
    failed: u64,
    latency_us: Histogram<u64>,
}

fn address(endpoint: &str) -> anyhow::Result<SocketAddr> {
    let rest = endpoint
        .strip_prefix("http://")
        .context("--endpoint must be an http:// URL")?;
    let host = rest.split('/').next().unwrap_or(rest);
    host.to_socket_addrs()?
        .next()
        .with_context(|| format!("{host} does not resolve"))
}

/// The request body of connection `conn`: `batch` records with keys `b<conn>-<i>` and data
/// carrying (conn, i) in its first 8 bytes.
fn request_body(stream: &str, conn: u32, batch: usize, record_size: usize, filler: &[u8]) -> Bytes {
    let records: Vec<Value> = (0..batch as u32)
        .map(|i| {
            let mut data = filler[..record_size].to_vec();
            data[..4].copy_from_slice(&conn.to_le_bytes());
            data[4..8].copy_from_slice(&i.to_le_bytes());
            json!({"PartitionKey": format!("b{conn}-{i}"), "Data": BASE64.encode(&data)})
        })
        .collect();
    Bytes::from(
        serde_json::to_vec(&json!({"StreamName": stream, "Records": records})).expect("json"),
    )
}

pub fn run(args: &BenchArgs, endpoint: &str) -> anyhow::Result<()> {
    let address = address(endpoint)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads.max(1))
        .enable_all()
        .build()?;
    runtime.block_on(drive(args, address, endpoint))
}

async fn drive(args: &BenchArgs, address: SocketAddr, endpoint: &str) -> anyhow::Result<()> {
    let stream = format!("bench-{}", std::process::id());
    let mut admin = KinesisClient::connect(address)
        .await
        .context("connecting")?;
    let _: Value = admin
        .call(
            "CreateStream",
            &json!({"StreamName": stream, "ShardCount": args.shards}),
        )
        .await?;
    wait_active(&mut admin, &stream).await?;
    let requests = args.records.div_ceil(args.batch as u64);
    println!(
        "sluice bench --endpoint {endpoint}: {} records of {} B in PutRecords of {}, {} shards, {} connections, {} client threads",
        requests * args.batch as u64,
        args.record_size,
        args.batch,
        args.shards,
        args.connections,
        args.client_threads
    );
    let shards = list_shards(&mut admin, &stream).await?;
    let fan_out = match args.fan_out {
        0 => None,
        consumers => Some(fanout::start(address, &mut admin, &stream, &shards, consumers).await?),
    };
    let (acknowledged, started) = put_phase(args, address, &stream, requests).await?;
    if let Some(fan_out) = fan_out {
        let result = fan_out.finish(&acknowledged, started).await?;
        result.print(args.fan_out, shards.len(), args.record_size);
    }
    let started = Instant::now();
    let read = read::read_back(
        address,
        &shards,
        &stream,
        Arc::new(acknowledged),
        args.record_size,
    )
    .await?;
    report(
        "GetRecords catch-up read, every shard at once (every acknowledged record checked)",
        read,
        read * args.record_size as u64,
        started.elapsed(),
    );
    let _: Value = admin
        .call(
            "DeleteStream",
            &json!({"StreamName": stream, "EnforceConsumerDeletion": true}),
        )
        .await?;
    Ok(())
}

/// The puts: `requests` PutRecords over `--connections` connections. Returns what was
/// acknowledged, sorted by shard and sequence number, and when the puts started.
async fn put_phase(
    args: &BenchArgs,
    address: SocketAddr,
    stream: &str,
    requests: u64,
) -> anyhow::Result<(Vec<Acked>, Instant)> {
    let filler = filler(args.record_size.max(8));
    let next = Arc::new(AtomicU64::new(0));
    let bar = crate::progress(args, "put", requests * args.batch as u64);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for conn in 0..args.connections as u32 {
        let body = request_body(stream, conn, args.batch, args.record_size.max(8), &filler);
        let (next, bar) = (next.clone(), bar.clone());
        tasks.push(tokio::spawn(put_until_done(
            address, conn, body, next, requests, bar,
        )));
    }
    let mut acknowledged = Vec::new();
    let (mut failed, mut latency) = (0, Histogram::<u64>::new(3).expect("histogram"));
    for task in tasks {
        let result = task.await??;
        failed += result.failed;
        latency
            .add(&result.latency_us)
            .expect("same histogram bounds");
        acknowledged.extend(result.acknowledged);
    }
    let elapsed = started.elapsed();
    acknowledged.sort_unstable();
    bar.finish_and_clear();
    let put = acknowledged.len() as u64;
    report("PutRecords", put, put * args.record_size as u64, elapsed);
    report_latency("PutRecords latency", &latency);
    if failed > 0 {
        println!("  {failed} records were refused (throttled or failed) and not retried");
    }
    Ok((acknowledged, started))
}

/// Connection `conn`'s work: sends `body` as PutRecords until `requests` have been claimed
/// (over all connections, through `next`) and records what each reply acknowledged.
async fn put_until_done(
    address: SocketAddr,
    conn: u32,
    body: Bytes,
    next: Arc<AtomicU64>,
    requests: u64,
    bar: ProgressBar,
) -> anyhow::Result<ConnectionResult> {
    let mut client = KinesisClient::connect(address).await?;
    let mut result = ConnectionResult {
        acknowledged: Vec::new(),
        failed: 0,
        latency_us: Histogram::new(3).expect("histogram"),
    };
    while next.fetch_add(1, Ordering::Relaxed) < requests {
        let sent = Instant::now();
        let (status, reply) = client.send("PutRecords", body.clone()).await?;
        let _ = result.latency_us.record(sent.elapsed().as_micros() as u64);
        if status != 200 {
            anyhow::bail!(
                "PutRecords answered {status}: {}",
                String::from_utf8_lossy(&reply)
            );
        }
        let reply: PutRecordsReply = serde_json::from_slice(&reply)?;
        for (i, entry) in reply.records.iter().enumerate() {
            let shard = entry.shard_id.and_then(shard_index);
            let sequence = entry.sequence_number.map(Sequence::parse);
            match (shard, sequence) {
                (Some(shard), Some(sequence)) => result.acknowledged.push(Acked {
                    shard,
                    sequence,
                    conn,
                    index: i as u32,
                }),
                _ => result.failed += 1,
            }
        }
        bar.inc(reply.records.len() as u64);
    }
    anyhow::Ok(result)
}

async fn wait_active(client: &mut KinesisClient, stream: &str) -> anyhow::Result<()> {
    for _ in 0..100 {
        let summary: Value = client
            .call("DescribeStreamSummary", &json!({"StreamName": stream}))
            .await?;
        if summary["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE" {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("stream {stream} did not become ACTIVE")
}

/// The ids of the stream's shards.
async fn list_shards(client: &mut KinesisClient, stream: &str) -> anyhow::Result<Vec<String>> {
    let mut shards = Vec::new();
    let mut page: Value = client
        .call("ListShards", &json!({"StreamName": stream}))
        .await?;
    loop {
        for shard in page["Shards"].as_array().context("Shards")? {
            shards.push(shard["ShardId"].as_str().context("ShardId")?.to_owned());
        }
        let Some(token) = page["NextToken"].as_str().map(str::to_owned) else {
            return Ok(shards);
        };
        page = client
            .call("ListShards", &json!({"NextToken": token}))
            .await?;
    }
}

/// `shardId-000000000007` → 7.
pub(super) fn shard_index(id: &str) -> Option<u32> {
    id.strip_prefix("shardId-")?.parse().ok()
}
