//! A 3-node cluster on this machine, as docs/operations.md starts one: an etcd (Debian's
//! `etcd`, started here on loopback ports with a fresh directory) and three `sluice serve
//! --cluster` processes with their own data directories, Kinesis ports and peer ports (mutual
//! TLS between the nodes and with etcd, certificates made by openssl for the test). boto3
//! and the AWS CLI talk to whichever node each call picks (cluster_suite.py), and run
//! single-node mode's suites (boto3_suite.py, aws_cli_suite.py) with each call sent to the
//! next node in turn, as behind a load balancer. Then a node is
//! killed (SIGKILL): puts through the two others succeed again once its shards' groups have
//! new leaders, and every record acknowledged before and after is read back through both.

mod common;
#[path = "../../cluster/tests/support/pki.rs"]
mod pki;

use common::TestServer;
use pki::Pki;
use serde_json::{Value, json};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A one-member etcd on loopback ports serving clients over TLS only, each with a
/// certificate of the test's authority in `pki` (its own is `etcd.pem`); killed when dropped.
struct Etcd {
    child: Child,
    endpoint: String,
    _dir: tempfile::TempDir,
}

impl Etcd {
    fn start(pki: &Path) -> Etcd {
        let binary = ["/usr/bin/etcd", "/usr/local/bin/etcd"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .expect(
                "cluster mode's tests need etcd's server (Debian: etcd-server): run scripts/setup",
            );
        let dir = tempfile::tempdir().unwrap();
        let (client, peer, health) = (free_port(), free_port(), free_port());
        let endpoint = format!("https://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let health_url = format!("http://127.0.0.1:{health}");
        let child = Command::new(binary)
            .arg("--cert-file")
            .arg(pki.join("etcd.pem"))
            .arg("--key-file")
            .arg(pki.join("etcd.key"))
            .arg("--trusted-ca-file")
            .arg(pki.join("ca.pem"))
            .args(["--client-cert-auth", "--listen-metrics-urls", &health_url])
            .args(["--name", "test", "--data-dir"])
            .arg(dir.path().join("data"))
            .args([
                "--listen-client-urls",
                &endpoint,
                "--advertise-client-urls",
                &endpoint,
            ])
            .args([
                "--listen-peer-urls",
                &peer_url,
                "--initial-advertise-peer-urls",
                &peer_url,
            ])
            .args(["--initial-cluster", &format!("test={peer_url}")])
            .args(["--logger", "zap", "--log-level", "warn"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcd starts");
        let address: SocketAddr = format!("127.0.0.1:{health}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !std::net::TcpStream::connect(address).is_ok_and(|_| {
            common::request(address, "GET", "/health", &[])
                .1
                .contains("true")
        }) {
            assert!(
                Instant::now() < deadline,
                "etcd does not answer on {endpoint}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Etcd {
            child,
            endpoint,
            _dir: dir,
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Node `name`, its peer port over mutual TLS with the certificates in `pki`, and etcd
/// reached over TLS with the same certificate.
fn start_node(etcd: &Etcd, name: &str, dir: &Path, pki: &Path) -> TestServer {
    let peer = format!("127.0.0.1:{}", free_port());
    let file = |name: String| pki.join(name).to_str().unwrap().to_owned();
    let (cert, key, ca) = (
        file(format!("{name}.pem")),
        file(format!("{name}.key")),
        file("ca.pem".into()),
    );
    TestServer::start(
        dir,
        &[
            "--cluster",
            "--etcd",
            &etcd.endpoint,
            "--node-id",
            name,
            "--peer-listen",
            &peer,
            "--cluster-name",
            "test",
            "--peer-tls-cert",
            &cert,
            "--peer-tls-key",
            &key,
            "--peer-tls-ca",
            &ca,
            "--etcd-ca",
            &ca,
            "--etcd-cert",
            &cert,
            "--etcd-key",
            &key,
        ],
    )
}

/// One JSON call; the status and the reply.
fn call(node: &TestServer, operation: &str, body: &Value) -> (u16, Value) {
    let (status, reply) = common::request_with_body(
        node.address,
        "POST",
        "/",
        &[
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", &format!("Kinesis_20131202.{operation}")),
        ],
        body.to_string().as_bytes(),
    );
    (status, serde_json::from_str(&reply).unwrap_or(Value::Null))
}

fn put(node: &TestServer, stream: &str, data: &str) -> (u16, Value) {
    use base64::Engine as _;
    let data = base64::engine::general_purpose::STANDARD.encode(data);
    call(
        node,
        "PutRecord",
        &json!({"StreamName": stream, "Data": data, "PartitionKey": data}),
    )
}

/// Every record's data of `stream`'s one shard, read through `node`.
fn read_all(node: &TestServer, stream: &str) -> Vec<String> {
    let (status, it) = call(
        node,
        "GetShardIterator",
        &json!({"StreamName": stream, "ShardId": "shardId-000000000000", "ShardIteratorType": "TRIM_HORIZON"}),
    );
    assert_eq!(status, 200, "{it}");
    let mut iterator = it["ShardIterator"].clone();
    let mut data = Vec::new();
    loop {
        let (status, page) = call(node, "GetRecords", &json!({"ShardIterator": iterator}));
        assert_eq!(status, 200, "{page}");
        let records = page["Records"].as_array().unwrap();
        if records.is_empty() {
            return data;
        }
        use base64::Engine as _;
        data.extend(records.iter().map(|r| {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(r["Data"].as_str().unwrap())
                .unwrap();
            String::from_utf8(raw).unwrap()
        }));
        iterator = page["NextShardIterator"].clone();
    }
}

/// `sluice cluster status` asked of `node`: its table, or its JSON report.
fn cluster_status(node: &TestServer, json: bool) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    command.args(["cluster", "status", "--endpoint", &node.endpoint()]);
    if json {
        command.arg("--json");
    }
    let output = command.output().expect("running sluice cluster status");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The node leading stream `kept`'s shard, as the status reports it once there is one.
fn leader_of_kept(node: &TestServer) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let report: Value = serde_json::from_str(&cluster_status(node, true)).unwrap();
        let streams = report["streams"].as_array().unwrap();
        let kept = streams.iter().find(|s| s["name"] == "kept").unwrap();
        if let Some(leader) = kept["shards"][0]["leader"].as_str() {
            return leader.to_owned();
        }
        assert!(Instant::now() < deadline, "no leader reported: {report}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Gauge `name` of shard 0 of stream `kept` in `node`'s `/metrics`, if it exports one.
fn kept_gauge(node: &TestServer, name: &str) -> Option<f64> {
    kept_gauges(node, name).first().copied()
}

/// Every series of gauge `name` of shard 0 of stream `kept` in `node`'s `/metrics`.
fn kept_gauges(node: &TestServer, name: &str) -> Vec<f64> {
    let (status, text) = common::request(node.address, "GET", "/metrics", &[]);
    assert_eq!(status, 200, "{text}");
    text.lines()
        .filter(|line| line.starts_with(&format!("{name}{{")))
        .filter(|line| line.contains("stream=\"kept\"") && line.contains("shardId-000000000000"))
        .filter_map(|line| line.rsplit_once(' ')?.1.parse().ok())
        .collect()
}

/// Waits until exactly one of `nodes` exports itself leading `kept`'s shard (gauges are
/// sampled once a second); returns its position.
fn leading_by_metrics(nodes: &[TestServer]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let leading: Vec<usize> = (0..nodes.len())
            .filter(|&i| kept_gauge(&nodes[i], "sluice_cluster_replica_leading") == Some(1.0))
            .collect();
        if let [one] = leading[..] {
            return one;
        }
        assert!(
            Instant::now() < deadline,
            "no single leader in the metrics: {leading:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Each node's /metrics agrees: the same leader, every replica running, and the leader's
/// log holding the 31 records' entries (beside its blank and membership entries), with
/// nothing left to send its followers once they caught up.
fn metrics_name_the_leader(nodes: &[TestServer], leader: usize) {
    assert_eq!(leading_by_metrics(nodes), leader);
    for node in nodes {
        assert_eq!(
            kept_gauge(node, "sluice_cluster_replica_running"),
            Some(1.0)
        );
    }
    // Sampled once a second: the next samples show the entries.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let last = kept_gauge(&nodes[leader], "sluice_cluster_replica_last_log_index");
        // The first membership at index 0, the leader's blank entry, then 31 records' entries.
        if last.is_some_and(|last| last >= 32.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the leader's log ends at {last:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    while kept_gauges(&nodes[leader], "sluice_cluster_follower_lag_entries") != [0.0, 0.0] {
        assert!(
            Instant::now() < deadline,
            "the followers' lag never reads 0"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Puts 30 records through the two survivors of a leader killed at `killed`, each retried
/// until acknowledged (failing as InternalFailure meanwhile); returns the time from the kill
/// to the first acknowledgement.
fn puts_through_failover(
    nodes: &[TestServer],
    killed: Instant,
    acknowledged: &mut Vec<String>,
) -> Duration {
    let mut failover = None;
    for i in 0..30 {
        let data = format!("after-{i}");
        loop {
            assert!(
                killed.elapsed() < Duration::from_secs(30),
                "no put succeeds after the kill"
            );
            let (status, reply) = put(&nodes[i % 2], "kept", &data);
            if status == 200 {
                break;
            }
            assert_eq!(
                status, 500,
                "a failed put during failover is InternalFailure: {reply}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        failover.get_or_insert(killed.elapsed());
        acknowledged.push(data);
    }
    failover.expect("30 puts")
}

#[test]
fn three_processes_serve_kinesis_through_any_node_and_outlive_one() {
    // The peer ports speak mutual TLS (the fault lab's nodes, h2c).
    if !common::needs_openssl() {
        return;
    }
    // The cluster's authority, and a certificate for each node and etcd naming 127.0.0.1.
    let pki = Pki::new();
    pki.authority("ca");
    for name in ["a", "b", "c", "etcd"] {
        pki.certificate(name, "ca", "IP:127.0.0.1");
    }
    let certificates = pki.path("");
    let etcd = Etcd::start(&certificates);
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let nodes: Vec<TestServer> = ["a", "b", "c"]
        .iter()
        .zip(&dirs)
        .map(|(name, dir)| start_node(&etcd, name, dir.path(), &certificates))
        .collect();
    let endpoints: Vec<String> = nodes.iter().map(TestServer::endpoint).collect();
    if common::needs_python_clients() && common::needs_aws_cli() {
        let endpoints = endpoints.join(",");
        common::run_suite_with(&endpoints, "cluster_suite.py", &[]);
        // Single-node mode's suites, each call sent to the next node in turn.
        common::run_suite_with(&endpoints, "boto3_suite.py", &[]);
        common::run_suite_with(&endpoints, "aws_cli_suite.py", &[]);
    }

    // A stream of one shard on all three; records acknowledged through every node.
    let (status, reply) = call(
        &nodes[0],
        "CreateStream",
        &json!({"StreamName": "kept", "ShardCount": 1}),
    );
    assert_eq!(status, 200, "{reply}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut acknowledged = Vec::new();
    while acknowledged.is_empty() {
        assert!(Instant::now() < deadline, "the stream never takes a put");
        if put(&nodes[1], "kept", "first").0 == 200 {
            acknowledged.push("first".to_owned());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for i in 0..30 {
        let data = format!("before-{i}");
        let (status, reply) = put(&nodes[i % 3], "kept", &data);
        assert_eq!(status, 200, "{reply}");
        acknowledged.push(data);
    }

    // The shard's leader, as `sluice cluster status` names it, dies. Puts through the two
    // others succeed again once the group elected another; the time from the kill to the
    // first acknowledged put is reported.
    let leader = leader_of_kept(&nodes[0]);
    let table = cluster_status(&nodes[1], false);
    assert!(
        table.contains(&format!("kept  Active  0  1  {leader}  ")),
        "{table}"
    );
    let index = ["a", "b", "c"].iter().position(|n| *n == leader).unwrap();
    metrics_name_the_leader(&nodes, index);
    let mut nodes = nodes;
    nodes.remove(index).kill();
    let failover = puts_through_failover(&nodes, Instant::now(), &mut acknowledged);
    println!("leader {leader} killed: first put acknowledged {failover:?} after the kill");
    assert_ne!(leader_of_kept(&nodes[0]), leader);
    // The survivors' metrics name the new leader.
    let now_leading = leading_by_metrics(&nodes);
    assert_eq!(
        leader_of_kept(&nodes[0]),
        ["a", "b", "c"]
            .iter()
            .filter(|n| **n != leader)
            .nth(now_leading)
            .copied()
            .unwrap()
    );
    // A put that failed during the failover may still have committed before its retry
    // (Kinesis' retries can duplicate too): a copy right before the acknowledged one.
    for node in &nodes {
        let mut held = read_all(node, "kept");
        held.dedup();
        assert_eq!(held, acknowledged, "through {}", node.endpoint());
    }
}
