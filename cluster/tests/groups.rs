//! The control plane driving the data plane, in one process: three nodes (each an engine, a
//! peer port, a registration and a reconciler running its `GroupHost`) follow the map the
//! controller writes. A new stream's shards form their groups on the replicas placed, elect
//! leaders and commit records on every replica; a node crashes, a fourth joins, the controller
//! re-creates the lost replicas on it, and each group's leader makes it a voter: it catches up
//! from the log, and every acknowledged record is on every replica of the new set.

#[allow(unused_macros, dead_code)]
mod support;

use sluice_cluster::controller::{ControllerConfig, ControllerOffice};
use sluice_cluster::raft::{GroupHost, NewRecord, RaftHost, ShardWrite, stop_group};
use sluice_cluster::reconcile::Reconciler;
use sluice_cluster::transport::{GroupId, PeerServer, Peers, TransportConfig};
use sluice_cluster::{
    ClusterMeta, EmbeddedBackend, NodeId, NodeInfo, Registration, StreamSettings,
};
use sluice_core::{Engine, EngineConfig, ReadLimits, Replica};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{PATIENCE, TTL};
use tokio::net::TcpListener;

type Meta = ClusterMeta<EmbeddedBackend>;

fn id(name: &str) -> NodeId {
    NodeId::new(name).unwrap()
}

/// One node of the cluster, its reconciler following the map.
struct Node {
    id: NodeId,
    engine: Engine,
    host: Arc<RaftHost>,
    _server: PeerServer,
    registration: Registration<EmbeddedBackend>,
    stop: tokio::sync::oneshot::Sender<()>,
    follower: tokio::task::JoinHandle<()>,
}

async fn start_node(meta: &Meta, name: &str, dir: &Path) -> Node {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let info = NodeInfo {
        id: id(name),
        peer_address: listener.local_addr().unwrap().to_string(),
        client_endpoint: format!("http://{name}.local:4567"),
        failure_domain: None,
        started_ms: 1,
    };
    let registration = meta.register(info, TTL).await.unwrap();
    let mut config = EngineConfig::new(dir);
    config.cores = 1;
    config.segment_size_bytes = 1 << 20;
    let engine = Engine::open(config).expect("engine opens");
    let host = RaftHost::new(id(name).raft_id());
    let server = PeerServer::start(listener, host.clone()).unwrap();
    let groups = GroupHost::new(
        engine.clone(),
        Peers::new(TransportConfig::default()),
        host.clone(),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let follower = tokio::spawn({
        let (meta, node) = (meta.clone(), id(name));
        async move {
            let mut reconciler = Reconciler::new(node, groups);
            reconciler
                .run(&meta, async {
                    let _ = stopped.await;
                })
                .await;
        }
    });
    Node {
        id: id(name),
        engine,
        host,
        _server: server,
        registration,
        stop,
        follower,
    }
}

/// Every visible record of a replica: (sequence number, data).
fn records(replica: &Replica) -> Vec<(u64, Vec<u8>)> {
    let reader = replica.reader();
    let (mut seq, mut records) = (reader.trim_horizon(), Vec::new());
    while seq < reader.next_seq() {
        let batch = reader.read(seq, ReadLimits::default()).expect("readable");
        records.extend(batch.records().map(|r| (r.seq, r.data.to_vec())));
        seq = batch.next_seq();
    }
    records
}

/// Polls `check` until it holds.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not within {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The node among `nodes` leading `group` once every one of them runs it with that leader.
async fn leader<'a>(group: GroupId, nodes: &[&'a Node]) -> &'a Node {
    let mut found = None;
    eventually(&format!("group {group} has a leader known to all"), || {
        let leaders: BTreeSet<Option<u64>> = nodes
            .iter()
            .map(|n| {
                n.host
                    .group(group)
                    .and_then(|g| g.raft.metrics().borrow().current_leader)
            })
            .collect();
        found = match leaders.into_iter().collect::<Vec<_>>()[..] {
            [Some(leader)] => nodes.iter().find(|n| n.id.raft_id() == leader).copied(),
            _ => None,
        };
        found.is_some()
    })
    .await;
    found.unwrap()
}

/// Writes `count` entries of 2 records to `group` through its leader; returns the
/// acknowledged records: sequence number to data.
async fn write(group: GroupId, leader: &Node, from: usize, count: usize) -> BTreeMap<u64, Vec<u8>> {
    let raft = leader
        .host
        .group(group)
        .expect("the leader runs the group")
        .raft;
    let mut acknowledged = BTreeMap::new();
    for i in from..from + count {
        let data: Vec<Vec<u8>> = (0..2)
            .map(|r| format!("{group} write {i} record {r}").into_bytes())
            .collect();
        let records = data
            .iter()
            .map(|d| NewRecord {
                partition_key: format!("key-{i}"),
                data: d.clone(),
                flags: 0,
            })
            .collect();
        let written = raft
            .client_write(ShardWrite::New(records))
            .await
            .expect("a write to the leader commits")
            .data;
        for (seq, d) in (written.base_seq..).zip(data) {
            acknowledged.insert(seq, d);
        }
    }
    acknowledged
}

/// Once every node in `nodes` applied what the group's leader has: they hold the same records,
/// every acknowledged one at its number.
async fn check(group: GroupId, nodes: &[&Node], acknowledged: &BTreeMap<u64, Vec<u8>>) {
    let leader = leader(group, nodes).await;
    let last = leader
        .host
        .group(group)
        .unwrap()
        .raft
        .metrics()
        .borrow()
        .last_log_index;
    for node in nodes {
        let raft = node.host.group(group).unwrap().raft;
        raft.wait(Some(PATIENCE))
            .applied_index_at_least(last, "caught up")
            .await
            .unwrap_or_else(|e| panic!("{} does not catch up on {group}: {e}", node.id.as_str()));
    }
    let held = records(&leader.host.group(group).unwrap().replica);
    let by_seq: BTreeMap<u64, Vec<u8>> = held.iter().cloned().collect();
    assert_eq!(by_seq.len(), held.len());
    for (seq, data) in acknowledged {
        assert_eq!(by_seq.get(seq), Some(data), "{group}: record {seq}");
    }
    for node in nodes {
        let theirs = records(&node.host.group(group).unwrap().replica);
        assert_eq!(
            theirs,
            held,
            "{} holds what the leader holds",
            node.id.as_str()
        );
    }
}

/// The node crashes: its reconciler, groups and peer port stop, and its lease runs out.
async fn crash(meta: &Meta, node: Node) {
    let Node {
        id: crashed,
        engine,
        host,
        _server,
        mut registration,
        stop,
        follower,
    } = node;
    registration.stop_renewing();
    let _ = stop.send(());
    follower.await.unwrap();
    for group in host.groups() {
        stop_group(&engine, &host, group, false).await.unwrap();
    }
    drop((engine, _server));
    let deadline = Instant::now() + PATIENCE;
    while meta.snapshot().await.unwrap().nodes.contains_key(&crashed) {
        assert!(Instant::now() < deadline, "the lease does not run out");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Node c back on its data (`dir`): the map places nothing on it, and each group's committed
/// membership no longer lists it, so its copies go.
async fn moved_copies_go(meta: &Meta, dir: &Path) -> Node {
    let copies = || std::fs::read_dir(dir.join("replicas")).unwrap().count();
    assert_eq!(copies(), 2, "c's copies are still there");
    let back = start_node(meta, "c", dir).await;
    eventually("c removes the replicas moved to d", || {
        back.engine.replicas_on_disk().unwrap().is_empty()
    })
    .await;
    assert_eq!(copies(), 0);
    back
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn groups_follow_the_map_through_a_crash_and_a_replacement() {
    let meta = ClusterMeta::new(EmbeddedBackend::new(), "test").unwrap();
    let dirs: Vec<tempfile::TempDir> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes = Vec::new();
    for (name, dir) in ["a", "b", "c"].iter().zip(&dirs) {
        nodes.push(start_node(&meta, name, dir.path()).await);
    }
    let mut config = ControllerConfig::default();
    config.replace_after = Duration::from_millis(1500);
    config.lease_ttl = TTL;
    let mut office = ControllerOffice::elect(meta.clone(), &id("a"), config)
        .await
        .unwrap();
    let stream = office.create_stream("events", 2).await.unwrap();
    let groups: Vec<GroupId> = stream
        .shards
        .iter()
        .map(|s| GroupId {
            stream_uid: stream.uid,
            shard: s.index,
        })
        .collect();

    // Each shard forms its group on a, b and c and commits on all three.
    let all: Vec<&Node> = nodes.iter().collect();
    let mut acknowledged = BTreeMap::new();
    for &group in &groups {
        let leader = leader(group, &all).await;
        let written = write(group, leader, 0, 20).await;
        check(group, &all, &written).await;
        acknowledged.insert(group, written);
    }

    // d joins; c crashes (its reconciler, groups and port stop, its lease runs out).
    nodes.push(start_node(&meta, "d", dirs[3].path()).await);
    crash(&meta, nodes.remove(2)).await;
    office.repair().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(
        office.repair().await.unwrap(),
        1,
        "the stream changes: c's replicas go to d"
    );
    let map = meta.snapshot().await.unwrap();
    for shard in &map.streams["events"].value.shards {
        assert_eq!(shard.replicas.last(), Some(&id("d")));
    }

    // Each group's leader makes d a voter; d catches up; writes go on on a, b and d.
    let survivors: Vec<&Node> = nodes.iter().collect();
    let expected: BTreeSet<u64> = ["a", "b", "d"].iter().map(|n| id(n).raft_id()).collect();
    for &group in &groups {
        eventually(&format!("d votes in {group}"), || {
            survivors.iter().all(|n| {
                n.host.group(group).is_some_and(|g| {
                    let metrics = g.raft.metrics().borrow().clone();
                    let voters: BTreeSet<u64> =
                        metrics.membership_config.membership().voter_ids().collect();
                    voters == expected
                })
            })
        })
        .await;
        let leader = leader(group, &survivors).await;
        let mut written = write(group, leader, 20, 20).await;
        let all_written = acknowledged.get_mut(&group).unwrap();
        all_written.append(&mut written);
        check(group, &survivors, all_written).await;
        assert_eq!(all_written.len(), 80);
    }

    nodes.push(moved_copies_go(&meta, dirs[2].path()).await);
    for node in nodes {
        let _ = node.stop.send(());
        node.follower.await.unwrap();
        for group in node.host.groups() {
            stop_group(&node.engine, &node.host, group, false)
                .await
                .unwrap();
        }
    }
}

/// A first replica's start that fails (a member of the first set not registered, its lease
/// run out meanwhile) leaves nothing running, so the reconciler's next attempt starts the
/// group afresh and forms it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_replica_start_that_fails_is_tried_again_afresh() {
    use sluice_cluster::reconcile::ReplicaHost;
    use sluice_cluster::{ShardPlacement, StreamPlacement, StreamStatus};
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open({
        let mut config = EngineConfig::new(dir.path());
        config.cores = 1;
        config
    })
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let host = RaftHost::new(id("a").raft_id());
    let _server = PeerServer::start(listener, host.clone()).unwrap();
    let peers = Peers::new(TransportConfig::default());
    let mut groups = GroupHost::new(engine.clone(), peers, host.clone());
    let info = |name: &str, address: &str| NodeInfo {
        id: id(name),
        peer_address: address.to_string(),
        client_endpoint: format!("http://{name}.local:4567"),
        failure_domain: None,
        started_ms: 1,
    };
    let shard = ShardPlacement {
        index: 0,
        starting_hash_key: 0,
        ending_hash_key: u128::MAX,
        parents: Vec::new(),
        replicas: vec![id("a"), id("b")],
        epoch: 1,
        closed: false,
        ending_seq: None,
        closed_ms: None,
        expired: false,
    };
    let stream = StreamPlacement {
        uid: 9,
        name: "s".into(),
        status: StreamStatus::Creating,
        replication: 2,
        shards: vec![shard.clone()],
        created_ms: 0,
        settings: StreamSettings::default(),
        resharding: None,
    };
    let group = GroupId {
        stream_uid: 9,
        shard: 0,
    };
    // b is not registered: the start fails, and nothing of it runs.
    groups.nodes(&BTreeMap::from([(id("a"), info("a", &address))]));
    let failed = groups.start(group, &stream, &shard).await;
    assert!(failed.unwrap_err().contains("not registered"));
    assert!(host.group(group).is_none());
    // b registered again (an address nothing answers on): the next start forms the group.
    groups.nodes(&BTreeMap::from([
        (id("a"), info("a", &address)),
        (id("b"), info("b", "127.0.0.1:1")),
    ]));
    groups.start(group, &stream, &shard).await.unwrap();
    let running = host.group(group).expect("the group runs");
    assert!(running.raft.is_initialized().await.unwrap());
    groups.stop(group, true).await.unwrap();
}
