//! The cluster fault lab: three `sluice serve --cluster` nodes, each in a network namespace
//! the test creates (iproute2, nftables; all removed afterwards), one of them with its wall
//! clock 15 s behind (libfaketime: its records' times and tokens), an etcd beside the
//! clients. Writers put records with payloads never sent before through whichever node,
//! recording every acknowledgement, and read every fifth back at once through another node;
//! readers follow every shard on every node. Meanwhile faults, one at a time, on a random node
//! or on a shard's leader: SIGKILL (and a restart on the same data), SIGSTOP (and SIGCONT),
//! a full partition, a cut from the peers only (clients and etcd still reach it), a one-way
//! cut to one peer (its packets to it dropped: over TCP both directions stall), 30% packet
//! loss, power loss (each node's data directory is an ext4 filesystem on a loop device:
//! SIGKILL, then the filesystem as the device held it, without the page cache's unsynced
//! writes, and a restart on that), and power loss of every node at once (what a majority
//! acknowledged must be on a majority's disks); each kind once a round, the last of a round held past the 10 s leases.
//! The peer ports speak mutual TLS (certificates made by openssl for the run), and after
//! each fault a node is sent SIGHUP (its certificates read again while it serves). After
//! healing, and once every node runs every shard caught up (so each reads its own copy),
//! every shard is read back through every node and the checker
//! (`fault_lab::history::check`) proves: no acknowledged record lost or moved, none
//! duplicated by the cluster, numbers rising within a shard, every node holding the same
//! records, every reader having read, and nothing a reader saw during the run gone or
//! changed.
//!
//! `SLUICE_FAULT_LAB_SECS` sets how long faults go on (40 s by default: CI's short run),
//! `SLUICE_FAULT_LAB_SEED` replays a run's choices (each run prints its seed), and
//! `SLUICE_FAULT_LAB_BIN` names the `sluice` to run (a copy, for a long run beside builds).

mod common;
mod fault_lab;
#[path = "../../cluster/tests/support/pki.rs"]
mod pki;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::TestServer;
use fault_lab::call;
use fault_lab::history::{History, NodeRead, check};
use fault_lab::net::Net;
use pki::Pki;
use serde_json::{Value, json};
use sluice_tests::loop_disk::{LoopDisk, needs_loop_disk};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const NODES: usize = 3;
const STREAM: &str = "lab";
const SHARDS: [&str; 2] = ["shardId-000000000000", "shardId-000000000001"];
/// The node whose wall clock runs behind.
const SKEWED: usize = 2;
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
const CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// Kinds of fault `inject` knows.
const KINDS: u64 = 8;
/// What the lab writes, unsynced, to a filesystem right before cutting its power.
const MARKER: &[u8] = b"written but never synced";
/// Each node's filesystem image (sparse: only what the node writes takes disk).
const DISK_MIB: u64 = 512;

/// xorshift64*: the run's choices, replayable from its seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }

    fn millis(&mut self, from: u64, to: u64) -> Duration {
        Duration::from_millis(from + self.below(to - from))
    }
}

struct Lab {
    net: Net,
    etcd: Child,
    /// Each node's filesystem, mounted on its directory in `dirs` (dropped before `dirs`).
    disks: Vec<Option<LoopDisk>>,
    dirs: Vec<tempfile::TempDir>,
    nodes: Vec<Option<TestServer>>,
    /// Power cuts, and those that took back the marker written unsynced right before.
    cuts: (usize, usize),
    /// The peer ports' certificates: authority `ca`, node `n{i}`'s naming its address.
    pki: Pki,
}

impl Drop for Lab {
    fn drop(&mut self) {
        // The nodes first (a stopped one too: SIGKILL ends it), then etcd; the namespaces,
        // the filesystems and the directories go after, with the fields.
        for node in self.nodes.drain(..).flatten() {
            node.kill();
        }
        let _ = self.etcd.kill();
        let _ = self.etcd.wait();
    }
}

impl Lab {
    fn start() -> Lab {
        let net = Net::create(NODES);
        let dir = tempfile::tempdir().unwrap();
        let client = format!("http://{}:2379", net.host_ip());
        let peer = format!("http://{}:2380", net.host_ip());
        let etcd = Command::new("etcd")
            .args(["--name", "lab", "--data-dir"])
            .arg(dir.path().join("etcd"))
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &format!("lab={peer}")])
            .args(["--logger", "zap", "--log-level", "error"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcd starts");
        let mut lab = Lab {
            net,
            etcd,
            disks: Vec::new(),
            dirs: (0..NODES).map(|_| tempfile::tempdir().unwrap()).collect(),
            nodes: Vec::new(),
            cuts: (0, 0),
            pki: Pki::new(),
        };
        lab.pki.authority("ca");
        for node in 0..NODES {
            let san = format!("IP:{}", lab.net.node_ip(node));
            lab.pki.certificate(&format!("n{node}"), "ca", &san);
        }
        for node in 0..NODES {
            let image = dir.path().join(format!("n{node}.ext4"));
            let disk = LoopDisk::format(&image, lab.dirs[node].path(), DISK_MIB);
            // The node's data directory below the filesystem's root (lost+found is there).
            std::fs::create_dir(lab.data_dir(node)).unwrap();
            lab.disks.push(Some(disk));
        }
        lab.dirs.push(dir);
        let etcd_address: SocketAddr = format!("{}:2379", lab.net.host_ip()).parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let healthy = || {
            std::net::TcpStream::connect(etcd_address).is_ok()
                && common::request(etcd_address, "GET", "/health", &[])
                    .1
                    .contains("true")
        };
        while !healthy() {
            assert!(Instant::now() < deadline, "etcd does not answer");
            std::thread::sleep(Duration::from_millis(100));
        }
        lab.nodes = (0..NODES).map(|i| Some(lab.start_node(i))).collect();
        lab
    }

    fn start_node(&self, node: usize) -> TestServer {
        let ip = self.net.node_ip(node);
        let mut command = self.net.command(node, &sluice_binary());
        if node == SKEWED {
            command
                .env("LD_PRELOAD", LIBFAKETIME)
                .env("FAKETIME", "-15s")
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
        }
        command
            .args([
                "serve",
                "--cluster",
                "--cluster-name",
                "lab",
                "--print-address",
            ])
            .args(["--etcd", &format!("http://{}:2379", self.net.host_ip())])
            .args(["--node-id", &format!("n{node}")])
            .args([
                "--listen",
                &format!("{ip}:4567"),
                "--peer-listen",
                &format!("{ip}:4600"),
            ])
            .args([
                "--replace-after-secs",
                "3600",
                "--cores",
                "1",
                "--segment-mib",
                "4",
            ])
            .arg("--dir")
            .arg(self.data_dir(node));
        let file = |name: String| self.pki.path(&name);
        command
            .arg("--peer-tls-cert")
            .arg(file(format!("n{node}.pem")))
            .arg("--peer-tls-key")
            .arg(file(format!("n{node}.key")))
            .arg("--peer-tls-ca")
            .arg(file("ca.pem".into()));
        TestServer::spawn(command, &self.data_dir(node))
    }

    fn data_dir(&self, node: usize) -> std::path::PathBuf {
        self.dirs[node].path().join("data")
    }

    /// Cuts the power of `nodes` at once: SIGKILL to each, then each filesystem as its
    /// device held it (what the page cache had not written is gone); they are restarted
    /// later, on that. A marker written to each filesystem right before its cut, never
    /// synced, tells whether the cut took back what the page cache held (gone, or not
    /// whole: a journal commit may have recorded the file but not its bytes).
    fn cut_power(&mut self, nodes: &[usize]) {
        for &node in nodes {
            self.nodes[node]
                .take()
                .expect("every node runs between faults")
                .kill();
        }
        for &node in nodes {
            std::fs::write(self.marker(node), MARKER).unwrap();
            let disk = self.disks[node].take().expect("every node has its disk");
            self.disks[node] = Some(disk.cut_power().0);
            self.cuts.0 += 1;
            let kept = std::fs::read(self.marker(node)).is_ok_and(|bytes| bytes == MARKER);
            self.cuts.1 += usize::from(!kept);
            let _ = std::fs::remove_file(self.marker(node));
        }
    }

    fn marker(&self, node: usize) -> std::path::PathBuf {
        self.dirs[node].path().join("unsynced-marker")
    }

    fn address(&self, node: usize) -> SocketAddr {
        format!("{}:4567", self.net.node_ip(node)).parse().unwrap()
    }

    /// A live node's status report (`sluice cluster status --json`, 5 s at most).
    fn status(&self) -> Option<Value> {
        let asked = self.nodes.iter().flatten().next()?;
        let output = Command::new("timeout")
            .arg("5")
            .arg(sluice_binary())
            .args([
                "cluster",
                "status",
                "--json",
                "--endpoint",
                &asked.endpoint(),
            ])
            .output()
            .ok()?;
        serde_json::from_slice(&output.stdout).ok()
    }

    /// The node leading `shard`, as a live node's status names it.
    fn leader(&self, shard: usize) -> Option<usize> {
        let report = self.status()?;
        let stream = report["streams"]
            .as_array()?
            .iter()
            .find(|s| s["name"] == STREAM)?;
        let leader = stream["shards"][shard]["leader"].as_str()?;
        leader.strip_prefix('n')?.parse().ok()
    }
}

/// The `sluice` the lab runs: `SLUICE_FAULT_LAB_BIN` (a copy kept aside, so a long run is
/// not switched to a new build halfway), else the one cargo built with this test.
fn sluice_binary() -> String {
    std::env::var("SLUICE_FAULT_LAB_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_sluice").to_owned())
}

fn signal(server: &TestServer, name: &str) {
    let sent = Command::new("kill")
        .args([&format!("-{name}"), &server.pid().to_string()])
        .status()
        .expect("running kill");
    assert!(sent.success(), "kill -{name}");
}

/// Fault `kind` (0 to 7), held for `held`, then healed; returns its name.
fn inject(lab: &mut Lab, rng: &mut Rng, kind: u64, held: Duration) -> &'static str {
    let target = match rng.below(2) {
        0 => lab.leader(rng.below(SHARDS.len() as u64) as usize),
        _ => None,
    }
    .unwrap_or(rng.below(NODES as u64) as usize);
    let others: Vec<String> = (0..NODES)
        .filter(|&n| n != target)
        .map(|n| lab.net.node_ip(n))
        .collect();
    let name = match kind {
        0 => {
            lab.nodes[target]
                .take()
                .expect("every node runs between faults")
                .kill();
            std::thread::sleep(held);
            lab.nodes[target] = Some(lab.start_node(target));
            "kill -9 and restart"
        }
        1 => {
            let server = lab.nodes[target].as_ref().expect("running");
            signal(server, "STOP");
            std::thread::sleep(held);
            signal(server, "CONT");
            "SIGSTOP"
        }
        2 => {
            let mut everyone = others.clone();
            everyone.push(lab.net.host_ip());
            lab.net.block(target, &everyone);
            std::thread::sleep(held);
            "full partition"
        }
        3 => {
            lab.net.block(target, &others);
            std::thread::sleep(held);
            "cut from peers, not clients"
        }
        4 => {
            lab.net
                .block_outgoing(target, &others[rng.below(others.len() as u64) as usize]);
            std::thread::sleep(held);
            "one-way cut (its packets to one peer dropped)"
        }
        5 => {
            lab.net.lose(target, 30);
            std::thread::sleep(held);
            "30% packet loss"
        }
        6 => {
            lab.cut_power(&[target]);
            std::thread::sleep(held);
            lab.nodes[target] = Some(lab.start_node(target));
            "power loss and restart"
        }
        _ => {
            // Every node at once: what a majority acknowledged must be on a majority's disks.
            let all: Vec<usize> = (0..NODES).collect();
            lab.cut_power(&all);
            std::thread::sleep(held);
            for node in all {
                lab.nodes[node] = Some(lab.start_node(node));
            }
            "power loss of every node at once, and restarts"
        }
    };
    lab.net.heal();
    name
}

/// Puts fresh payloads through node after node until `stop`; every outcome in `history`,
/// every acknowledgement's time in `acks`.
fn writer(
    id: usize,
    addresses: Vec<SocketAddr>,
    history: Arc<Mutex<History>>,
    acks: Arc<Mutex<Vec<Instant>>>,
    stop: Arc<AtomicBool>,
) {
    let mut attempt = 0usize;
    while !stop.load(Ordering::Relaxed) {
        attempt += 1;
        let payload = format!("w{id}-{attempt}");
        let address = addresses[(attempt + id) % addresses.len()];
        let body =
            json!({"StreamName": STREAM, "Data": BASE64.encode(&payload), "PartitionKey": payload});
        match call(address, "PutRecord", &body, CALL_TIMEOUT) {
            Ok((200, reply)) => {
                let shard = reply["ShardId"].as_str().unwrap().to_owned();
                let seq = reply["SequenceNumber"].as_str().unwrap().parse().unwrap();
                acks.lock().unwrap().push(Instant::now());
                // Every fifth: read it at once through the next node (read-your-writes
                // across nodes: a lagging replica must catch up before it answers).
                let other = addresses[(attempt + id + 1) % addresses.len()];
                let seen = attempt
                    .is_multiple_of(5)
                    .then(|| read_at(other, &shard, seq))
                    .flatten();
                let mut history = history.lock().unwrap();
                if let Some(seen) = seen
                    && seen.as_deref() != Some(payload.as_str())
                {
                    history.violations.push(format!(
                        "{payload} acknowledged at {shard} {seq}, then read there through {other} as {seen:?}"
                    ));
                }
                history.acknowledged.insert(payload, (shard, seq));
            }
            _ => {
                history.lock().unwrap().maybe.insert(payload);
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// The payload at `seq` of `shard` read through the node at `address` (`Some(None)`: the
/// node answered with no record there; `None`: it did not answer).
fn read_at(address: SocketAddr, shard: &str, seq: u128) -> Option<Option<String>> {
    let start = json!({"StreamName": STREAM, "ShardId": shard, "ShardIteratorType": "AT_SEQUENCE_NUMBER", "StartingSequenceNumber": seq.to_string()});
    let (status, iterator) = call(address, "GetShardIterator", &start, CALL_TIMEOUT).ok()?;
    if status != 200 {
        return None;
    }
    let body = json!({"ShardIterator": iterator["ShardIterator"], "Limit": 1});
    let (status, reply) = call(address, "GetRecords", &body, CALL_TIMEOUT).ok()?;
    if status != 200 {
        return None;
    }
    let first = reply["Records"].as_array()?.first().map(|r| {
        let data = BASE64.decode(r["Data"].as_str().unwrap()).unwrap();
        String::from_utf8(data).unwrap()
    });
    Some(first)
}

/// Every record of `shard` after `after` (from the trim horizon without one) through the
/// node at `address`, one page; `None` when the node did not answer.
fn page(address: SocketAddr, shard: &str, after: Option<u128>) -> Option<Vec<(u128, String)>> {
    let start = match after {
        Some(seq) => {
            json!({"StreamName": STREAM, "ShardId": shard, "ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": seq.to_string()})
        }
        None => {
            json!({"StreamName": STREAM, "ShardId": shard, "ShardIteratorType": "TRIM_HORIZON"})
        }
    };
    let (status, iterator) = call(address, "GetShardIterator", &start, CALL_TIMEOUT).ok()?;
    if status != 200 {
        return None;
    }
    let body = json!({"ShardIterator": iterator["ShardIterator"], "Limit": 1000});
    let (status, reply) = call(address, "GetRecords", &body, CALL_TIMEOUT).ok()?;
    if status != 200 {
        return None;
    }
    let records = reply["Records"].as_array()?;
    Some(
        records
            .iter()
            .map(|r| {
                let data = BASE64.decode(r["Data"].as_str().unwrap()).unwrap();
                let seq = r["SequenceNumber"].as_str().unwrap().parse().unwrap();
                (seq, String::from_utf8(data).unwrap())
            })
            .collect(),
    )
}

/// Follows every shard through node `node` until `stop`, noting what it reads.
fn reader(node: usize, address: SocketAddr, history: Arc<Mutex<History>>, stop: Arc<AtomicBool>) {
    let mut last: BTreeMap<&str, u128> = BTreeMap::new();
    while !stop.load(Ordering::Relaxed) {
        for shard in SHARDS {
            let Some(records) = page(address, shard, last.get(shard).copied()) else {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            };
            let mut history = history.lock().unwrap();
            for (seq, payload) in records {
                history.read(
                    node,
                    (shard.to_owned(), seq),
                    &payload,
                    last.get(shard).copied(),
                );
                last.insert(shard, seq);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every shard read whole through node `node` (retried while the node does not answer).
fn read_back(address: SocketAddr) -> NodeRead {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut read = NodeRead::new();
    for shard in SHARDS {
        let records: &mut Vec<(u128, String)> = read.entry(shard.to_owned()).or_default();
        loop {
            assert!(
                Instant::now() < deadline,
                "{address} does not serve {shard}"
            );
            match page(address, shard, records.last().map(|r| r.0)) {
                Some(more) if more.is_empty() => break,
                Some(more) => records.extend(more),
                None => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }
    read
}

/// Waits until every node runs every shard's replica with no lag behind its leader, so each
/// node's read-back is its own copy (a node without the replica would forward the read).
fn converged(lab: &Lab) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let report = lab.status();
        if report.as_ref().is_some_and(replicas_caught_up) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the replicas do not converge; the last status: {report:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Whether the status report shows every shard of the stream on every node, each replica
/// applied up to its leader's last entry.
fn replicas_caught_up(report: &Value) -> bool {
    let Some(stream) = report["streams"]
        .as_array()
        .and_then(|streams| streams.iter().find(|s| s["name"] == STREAM))
    else {
        return false;
    };
    let shards = stream["shards"].as_array().cloned().unwrap_or_default();
    shards.len() == SHARDS.len()
        && shards.iter().all(|shard| {
            let running = shard["running"].as_array().cloned().unwrap_or_default();
            let leader_end = running
                .iter()
                .find(|r| r[0] == shard["leader"])
                .map(|r| r[1]["last_log_index"].clone());
            running.len() == NODES
                && leader_end.is_some()
                && running
                    .iter()
                    .all(|r| Some(&r[1]["applied"]) == leader_end.as_ref())
        })
}

fn prerequisites() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n");
    common::needs(root, "root (network namespaces)", "run the tests as root")
        && common::needs(
            common::runs("nft", &["--version"]) && common::runs("ip", &["-V"]),
            "iproute2 and nftables",
            "run scripts/setup",
        )
        && common::needs(
            Path::new(LIBFAKETIME).is_file(),
            "libfaketime",
            "run scripts/setup",
        )
        && needs_loop_disk()
        && common::needs(
            common::runs("etcd", &["--version"]),
            "etcd's server",
            "run scripts/setup",
        )
        && common::needs_openssl()
}

fn create_stream(lab: &Lab) {
    let create = json!({"StreamName": STREAM, "ShardCount": SHARDS.len()});
    let (status, reply) = call(
        lab.address(0),
        "CreateStream",
        &create,
        Duration::from_secs(20),
    )
    .unwrap();
    assert_eq!(status, 200, "{reply}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let describe = json!({"StreamName": STREAM});
        let reply = call(
            lab.address(1),
            "DescribeStreamSummary",
            &describe,
            CALL_TIMEOUT,
        );
        if reply.is_ok_and(|(_, r)| r["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE") {
            return;
        }
        assert!(Instant::now() < deadline, "the stream does not turn ACTIVE");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Faults for `seconds`, one at a time; how many of each kind.
fn run_faults(lab: &mut Lab, rng: &mut Rng, seconds: u64) -> BTreeMap<&'static str, usize> {
    // Each kind once per round, in a shuffled order; the last of each round is held past
    // the registration and controller leases (10 s), so leases run out and offices move.
    let mut faults: BTreeMap<&'static str, usize> = BTreeMap::new();
    let started = Instant::now();
    let mut round: Vec<u64> = Vec::new();
    while started.elapsed() < Duration::from_secs(seconds) {
        if round.is_empty() {
            round = (0..KINDS).collect();
            for i in (1..round.len()).rev() {
                round.swap(i, rng.below(i as u64 + 1) as usize);
            }
        }
        let kind = round.pop().expect("refilled");
        let held = match round.is_empty() {
            true => Duration::from_secs(12),
            false => rng.millis(1_000, 3_000),
        };
        *faults.entry(inject(lab, rng, kind, held)).or_default() += 1;
        // A node reads its certificates again while it serves (the same files).
        let reloaded = rng.below(NODES as u64) as usize;
        signal(lab.nodes[reloaded].as_ref().expect("running"), "HUP");
        std::thread::sleep(rng.millis(500, 1_500));
    }
    faults
}

#[test]
fn no_acknowledged_record_is_lost_duplicated_or_moved_under_faults() {
    if !prerequisites() {
        return;
    }
    let seconds: u64 = std::env::var("SLUICE_FAULT_LAB_SECS").map_or(40, |s| s.parse().unwrap());
    let seed: u64 = std::env::var("SLUICE_FAULT_LAB_SEED").map_or_else(
        |_| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        },
        |s| s.parse().unwrap(),
    );
    println!("fault lab: {seconds} s of faults, seed {seed}");
    let mut rng = Rng(seed);
    let mut lab = Lab::start();
    create_stream(&lab);
    let history = Arc::new(Mutex::new(History::default()));
    let acks = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let addresses: Vec<SocketAddr> = (0..NODES).map(|n| lab.address(n)).collect();
    let mut clients = Vec::new();
    for id in 0..3 {
        let (a, h, k, s) = (
            addresses.clone(),
            history.clone(),
            acks.clone(),
            stop.clone(),
        );
        clients.push(std::thread::spawn(move || writer(id, a, h, k, s)));
    }
    for (node, &address) in addresses.iter().enumerate() {
        let (h, s) = (history.clone(), stop.clone());
        clients.push(std::thread::spawn(move || reader(node, address, h, s)));
    }

    let faults = run_faults(&mut lab, &mut rng, seconds);
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }

    converged(&lab);
    let reads: Vec<NodeRead> = addresses.iter().map(|&a| read_back(a)).collect();
    let history = history.lock().unwrap();
    let mut violations = check(&history, &reads);
    for node in 0..NODES {
        if history.reads_by_node.get(&node).copied().unwrap_or(0) == 0 {
            violations.push(format!("the reader on node {node} never read a record"));
        }
    }
    let mut acks = acks.lock().unwrap().clone();
    acks.sort();
    let longest_gap = acks
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    let held: usize = reads[0].values().map(Vec::len).sum();
    assert!(violations.is_empty(), "seed {seed}: {violations:#?}");
    let (cuts, cuts_losing) = lab.cuts;
    println!(
        "fault lab: {} faults {faults:?}; {} puts acknowledged, {} failed or timed out ({} of those held); {} records held; longest time without an acknowledged put {longest_gap:?}; {cuts_losing} of {cuts} power cuts took back a write left unsynced",
        faults.values().sum::<usize>(),
        history.acknowledged.len(),
        history.maybe.len(),
        held.saturating_sub(history.acknowledged.len()),
        held,
    );
    assert!(
        history.acknowledged.len() > 100,
        "too few puts went through to judge"
    );
    assert!(
        cuts == 0 || cuts_losing > 0,
        "no power cut took back an unsynced write: the cuts were no power loss"
    );
}
