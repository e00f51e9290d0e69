//! Cluster mode: replicated durable ingest against single-node durable ingest, in the same run
//! on the same machine. The replicated side is one shard's Raft group on three nodes in this
//! process (three engines with their own data directories, three peer ports on loopback,
//! every message over the node-to-node transport), written through its leader as a node
//! writes each put it takes (`ShardGroup::write`: writes that arrive together go as one
//! entry): a write is answered once committed, that is durable on a majority. The single-node side is one engine's
//! shard with durable puts. Then put latency, one caller at a time, for both.
//!
//! `cargo bench -p sluice-benches --bench cluster` (short; `SLUICE_BENCH_FULL=1` for the full
//! run).

use criterion::Throughput;
use hdrhistogram::Histogram;
use openraft::BasicNode;
use sluice_benches::{criterion_config, filler, full_mode, mark_run_start, print_ratio};
use sluice_cluster::raft::{NewRecord, RaftHost, ShardGroup, start_group};
use sluice_cluster::transport::{GroupId, PeerServer, Peers, TransportConfig};
use sluice_core::{CreateStream, Durability, Engine, EngineConfig, PutRecord};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

const RECORDS: usize = 10;
const RECORD_BYTES: usize = 1024;
/// Writes in flight at once, as several producers of one shard would have.
const CALLERS: usize = 8;
const SEGMENT_BYTES: u64 = 64 << 20;
const GROUP: GroupId = GroupId {
    stream_uid: 1,
    shard: 0,
};

fn engine(dir: &Path) -> Engine {
    let mut config = EngineConfig::new(dir);
    config.cores = 1;
    config.segment_size_bytes = SEGMENT_BYTES;
    Engine::open(config).unwrap()
}

/// A node of the in-process cluster.
struct Node {
    id: u64,
    address: String,
    _engine: Engine,
    _server: PeerServer,
    group: ShardGroup,
}

async fn start_node(id: u64, dir: &Path) -> Node {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let engine = engine(dir);
    let host = RaftHost::new(id);
    let server = PeerServer::start(listener, host.clone()).unwrap();
    let peers = Peers::new(TransportConfig::default());
    let group = start_group(&engine, &peers, &host, GROUP, 24 * 3_600_000)
        .await
        .unwrap();
    Node {
        id,
        address,
        _engine: engine,
        _server: server,
        group,
    }
}

/// Three nodes running the group; returns them with the leader's index.
async fn start_cluster(dir: &Path) -> (Vec<Node>, usize) {
    let mut nodes = Vec::new();
    for id in 1..=3 {
        let node_dir = dir.join(format!("node-{id}"));
        std::fs::create_dir_all(&node_dir).unwrap();
        nodes.push(start_node(id, &node_dir).await);
    }
    let members: BTreeMap<u64, BasicNode> = nodes
        .iter()
        .map(|n| (n.id, BasicNode::new(&n.address)))
        .collect();
    nodes[0].group.raft.initialize(members).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(i) = nodes
            .iter()
            .position(|n| n.group.raft.metrics().borrow().state.is_leader())
        {
            return (nodes, i);
        }
        assert!(Instant::now() < deadline, "no leader elected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn new_records(data: &[u8]) -> Vec<NewRecord> {
    (0..RECORDS)
        .map(|i| NewRecord {
            partition_key: format!("k{i}"),
            data: data.to_vec(),
            flags: 0,
        })
        .collect()
}

/// `batches` replicated writes through the leader, `CALLERS` in flight.
async fn replicated_run(leader: &ShardGroup, data: &[u8], batches: u64) -> Duration {
    let started = Instant::now();
    let mut callers = Vec::new();
    for caller in 0..CALLERS as u64 {
        let share = batches / CALLERS as u64 + u64::from(caller < batches % CALLERS as u64);
        let (group, records) = (leader.clone(), new_records(data));
        callers.push(tokio::spawn(async move {
            for _ in 0..share {
                let written = group.write(records.clone()).await;
                assert_eq!(written.unwrap().record_count as usize, RECORDS);
            }
        }));
    }
    for caller in callers {
        caller.await.unwrap();
    }
    started.elapsed()
}

/// `batches` durable puts of the same records on one engine's shard, `CALLERS` threads.
fn single_node_run(engine: &Engine, records: &[PutRecord<'_>], batches: u64) -> Duration {
    let started = Instant::now();
    std::thread::scope(|scope| {
        for caller in 0..CALLERS as u64 {
            let share = batches / CALLERS as u64 + u64::from(caller < batches % CALLERS as u64);
            scope.spawn(move || {
                let handle = engine.stream("single").unwrap();
                for _ in 0..share {
                    let results = handle
                        .put_batch(records)
                        .durability(Durability::Durable)
                        .wait()
                        .unwrap();
                    assert!(results.iter().all(|r| r.is_ok()));
                }
            });
        }
    });
    started.elapsed()
}

fn percentiles(label: &str, histogram: &Histogram<u64>) {
    println!(
        "{label}: p50 {} µs, p99 {} µs, p99.9 {} µs ({} writes)",
        histogram.value_at_quantile(0.5),
        histogram.value_at_quantile(0.99),
        histogram.value_at_quantile(0.999),
        histogram.len()
    );
}

/// Put latency, one caller, one write at a time: single-node durable puts, then replicated
/// writes through the leader.
fn latency_report(
    single: &Engine,
    records: &[PutRecord<'_>],
    leader: &ShardGroup,
    data: &[u8],
    runtime: &tokio::runtime::Runtime,
) {
    let run = if full_mode() {
        Duration::from_secs(10)
    } else {
        Duration::from_secs(2)
    };
    let histogram = || Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    let mut single_latency = histogram();
    let handle = single.stream("single").unwrap();
    let started = Instant::now();
    while started.elapsed() < run {
        let one = Instant::now();
        let put = handle.put_batch(records).durability(Durability::Durable);
        put.wait().unwrap();
        single_latency
            .record(one.elapsed().as_micros() as u64 + 1)
            .unwrap();
    }
    let mut replicated_latency = histogram();
    runtime.block_on(async {
        let new = new_records(data);
        let started = Instant::now();
        while started.elapsed() < run {
            let one = Instant::now();
            leader.write(new.clone()).await.unwrap();
            replicated_latency
                .record(one.elapsed().as_micros() as u64 + 1)
                .unwrap();
        }
    });
    percentiles(
        "single-node durable put, 10 x 1 KiB, 1 caller",
        &single_latency,
    );
    percentiles(
        "replicated write, 10 x 1 KiB, 1 caller",
        &replicated_latency,
    );
    let ratio = replicated_latency.value_at_quantile(0.99) as f64
        / single_latency.value_at_quantile(0.99) as f64;
    println!(
        "replicated p99 / single-node p99: {ratio:.2} ({} target 2)",
        if ratio < 2.0 { "meets" } else { "ABOVE" }
    );
}

fn main() {
    mark_run_start();
    let bench_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data");
    std::fs::create_dir_all(&bench_dir).unwrap();
    let dir = tempfile::Builder::new()
        .prefix("sluice-cluster-bench-")
        .tempdir_in(bench_dir)
        .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let data = filler(RECORD_BYTES);
    let keys: Vec<String> = (0..RECORDS).map(|i| format!("k{i}")).collect();
    let records: Vec<PutRecord<'_>> = keys.iter().map(|k| PutRecord::new(k, &data)).collect();
    let single = engine(&dir.path().join("single"));
    single
        .create_stream(CreateStream::provisioned("single", 1))
        .wait()
        .unwrap();
    let (nodes, leader) = runtime.block_on(start_cluster(&dir.path().join("cluster")));
    let leader = &nodes[leader].group;

    let mut c = criterion_config();
    let group_name = "cluster_ingest_1KiB_x10_durable";
    let mut group = c.benchmark_group(group_name);
    let batch_bytes = (RECORDS * RECORD_BYTES) as u64;
    group.throughput(Throughput::Bytes(batch_bytes));
    group.bench_function("single_node_1_shard_8_callers", |b| {
        b.iter_custom(|iters| single_node_run(&single, &records, iters))
    });
    group.bench_function("replicated_rf3_8_callers", |b| {
        b.iter_custom(|iters| runtime.block_on(replicated_run(leader, &data, iters)))
    });
    group.finish();
    c.final_summary();
    println!();
    print_ratio(
        "replicated (RF 3, three nodes in one process) against single-node durable ingest",
        group_name,
        "replicated_rf3_8_callers",
        "single_node_1_shard_8_callers",
        batch_bytes,
        0.5,
    );

    latency_report(&single, &records, leader, &data, &runtime);
    drop(nodes);
    runtime.shutdown_timeout(Duration::from_secs(5));
}
