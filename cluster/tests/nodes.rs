//! Three `ClusterNode`s in one process (each an engine, a peer port, a registration, a
//! reconciler and a candidacy) serve a stream's whole life through whichever node is asked:
//! a node that is not the controller creates a stream (its request goes to the controller's
//! node), the stream turns ACTIVE once its shards' groups lead, records written through every
//! node are read back from every node's replica after a read barrier, a refused request says
//! why, and a deleted stream leaves the map once its groups are gone, so its name can be used
//! again.

#[allow(unused_macros, dead_code)]
mod support;

use sluice_cluster::raft::NewRecord;
use sluice_cluster::settings::{SettingsChange, SettingsRefused};
use sluice_cluster::transport::GroupId;
use sluice_cluster::{
    AdminError, Backend, ClusterMeta, ClusterNode, EmbeddedBackend, MetaError, NodeConfig, NodeId,
    Op, StreamPlacement, StreamSettings, StreamStatus,
};
use sluice_core::{Engine, EngineConfig, ManualClock, ReadLimits};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{PATIENCE, TTL};
use tokio::net::TcpListener;

type Node = ClusterNode<EmbeddedBackend>;

fn engine(dir: &std::path::Path) -> Engine {
    let mut engine = EngineConfig::new(dir);
    engine.cores = 1;
    engine.segment_size_bytes = 1 << 20;
    Engine::open(engine).expect("engine opens")
}

async fn start(meta: &ClusterMeta<EmbeddedBackend>, name: &str, dir: &std::path::Path) -> Node {
    start_on(meta, name, engine(dir)).await
}

/// Node `name` on an open engine (a node started again on its data).
async fn start_on(meta: &ClusterMeta<EmbeddedBackend>, name: &str, engine: Engine) -> Node {
    (try_start_on(meta, name, engine).await)
        .map_err(|e| e.to_string())
        .expect("the node starts")
}

/// Node `name` on an open engine, or why it did not start.
async fn try_start_on(
    meta: &ClusterMeta<EmbeddedBackend>,
    name: &str,
    engine: Engine,
) -> Result<Node, MetaError> {
    let mut config = NodeConfig::new(NodeId::new(name).unwrap(), format!("http://{name}:4567"));
    config.registration_ttl = TTL;
    config.controller.lease_ttl = TTL;
    config.controller.tick = Duration::from_millis(200);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    ClusterNode::start(meta.clone(), engine, listener, config).await
}

/// Nodes a, b and c on `dirs`.
async fn three_nodes(meta: &ClusterMeta<EmbeddedBackend>, dirs: &[tempfile::TempDir]) -> Vec<Node> {
    let mut nodes = Vec::new();
    for (name, dir) in ["a", "b", "c"].iter().zip(dirs) {
        nodes.push(start(meta, name, dir.path()).await);
    }
    nodes
}

/// Polls `check` until it holds.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not within {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn status(node: &Node, stream: &str) -> Option<StreamStatus> {
    node.map().streams.get(stream).map(|s| s.value.status)
}

/// Every record of `node`'s replica of `group`: sequence number to data.
fn held(node: &Node, group: GroupId) -> BTreeMap<u64, Vec<u8>> {
    let replica = node.replica(group).expect("the node runs the group");
    let reader = replica.reader();
    let (mut seq, mut records) = (reader.trim_horizon(), BTreeMap::new());
    while seq < reader.next_seq() {
        let batch = reader.read(seq, ReadLimits::default()).expect("readable");
        records.extend(batch.records().map(|r| (r.seq, r.data.to_vec())));
        seq = batch.next_seq();
    }
    records
}

/// Writes through every node, to both shards; every node's replica, after a read barrier,
/// holds every acknowledged record at its number.
async fn writes_through_every_node_reach_every_replica(nodes: &[Node], stream: &StreamPlacement) {
    let mut acknowledged: BTreeMap<u32, BTreeMap<u64, Vec<u8>>> = BTreeMap::new();
    for (i, node) in nodes.iter().enumerate() {
        for shard in 0..2 {
            let data: Vec<Vec<u8>> = (0..3)
                .map(|r| format!("via {} to {shard}: {r}", node.id()).into_bytes())
                .collect();
            let records: Vec<NewRecord> = data
                .iter()
                .map(|d| NewRecord {
                    partition_key: format!("k{i}"),
                    data: d.clone(),
                    flags: 0,
                })
                .collect();
            let written = node.put(stream, shard, &records).await.unwrap();
            assert_eq!(written.record_count, 3);
            let entry = acknowledged.entry(shard).or_default();
            entry.extend((written.base_seq..).zip(data));
        }
    }
    for node in nodes {
        for shard in 0..2 {
            let group = GroupId {
                stream_uid: stream.uid,
                shard,
            };
            node.read_barrier(group).await.unwrap();
            assert_eq!(
                held(node, group),
                acknowledged[&shard],
                "{} {group}",
                node.id()
            );
        }
    }
}

/// Any node's status names every node, and for each shard its leader and its three running
/// replicas in one term; once every write is applied, no replica lags.
async fn status_names_leaders_and_no_lag(nodes: &[Node], controller: &NodeId) {
    let report = nodes[1].status().await.unwrap();
    assert_eq!(report.controller.as_ref(), Some(controller));
    assert!(report.nodes.iter().all(|n| n.answered) && report.nodes.len() == 3);
    let events = report.streams.iter().find(|s| s.name == "events").unwrap();
    for shard in &events.shards {
        let leader = shard.leader.as_ref().expect("a leader is named");
        assert!(shard.replicas.contains(leader));
        assert_eq!(shard.running.len(), 3, "{shard:?}");
        let terms: BTreeSet<u64> = shard.running.iter().map(|(_, r)| r.term).collect();
        assert_eq!(terms.len(), 1, "one term: {shard:?}");
    }
    // Once every write is applied everywhere, no replica lags its shard's leader.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let report = nodes[2].status().await.unwrap();
        let shards = &report
            .streams
            .iter()
            .find(|s| s.name == "events")
            .unwrap()
            .shards;
        let lags: Vec<Option<u64>> = shards
            .iter()
            .flat_map(|shard| shard.running.iter().map(|(id, _)| shard.lag(id)))
            .collect();
        if lags.len() == 6 && lags.iter().all(|lag| *lag == Some(0)) {
            break;
        }
        assert!(Instant::now() < deadline, "lags stay {lags:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let table = report.render();
    assert!(table.contains("events  Active  1  1  "), "{table}");
}

/// The controller's node leaves: it resigns, and another node holds the office well before
/// the resigned candidacy's lease could have run out.
async fn the_controllers_node_hands_on_its_office(
    meta: &ClusterMeta<EmbeddedBackend>,
    nodes: &mut Vec<Node>,
    controller: &NodeId,
) {
    let leaving = nodes.iter().position(|n| n.id() == controller).unwrap();
    let left = Instant::now();
    nodes.remove(leaving).stop().await.unwrap();
    loop {
        match meta.controller().await.unwrap() {
            Some(next) if next != *controller => break,
            _ => assert!(left.elapsed() < TTL, "the office was not handed on"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stream_lives_and_dies_through_any_node() {
    let meta = ClusterMeta::new(EmbeddedBackend::new(), "test").unwrap();
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes = three_nodes(&meta, &dirs).await;
    let mut controller = None;
    let deadline = Instant::now() + PATIENCE;
    while controller.is_none() {
        assert!(Instant::now() < deadline, "no controller is elected");
        tokio::time::sleep(Duration::from_millis(50)).await;
        controller = meta.controller().await.unwrap();
    }
    let controller = controller.unwrap();
    let asker = nodes.iter().find(|n| *n.id() != controller).unwrap();

    // Created through a node that is not the controller: CREATING at once, ACTIVE on every
    // node's map once both shards' groups lead.
    let stream = asker.create_stream("events", 2).await.unwrap();
    assert_eq!(stream.shards.len(), 2);
    assert!(stream.created_ms > 0);
    assert!(status(asker, "events").is_some());
    for node in &nodes {
        eventually("the stream turns ACTIVE", || {
            status(node, "events") == Some(StreamStatus::Active)
        })
        .await;
    }

    // Refusals say why and change nothing.
    let again = nodes[0].create_stream("events", 1).await;
    assert_eq!(
        again.unwrap_err(),
        AdminError::StreamExists("events".into())
    );
    let bad = nodes[1].create_stream("bad/name", 1).await;
    assert!(
        matches!(bad, Err(AdminError::InvalidArgument(_))),
        "{bad:?}"
    );
    let too_many = nodes[2].create_stream("huge", 0).await;
    assert!(matches!(too_many, Err(AdminError::InvalidArgument(_))));
    let missing = nodes[2].delete_stream("nothing").await;
    assert_eq!(
        missing.unwrap_err(),
        AdminError::StreamNotFound("nothing".into())
    );

    writes_through_every_node_reach_every_replica(&nodes, &stream).await;

    status_names_leaders_and_no_lag(&nodes, &controller).await;

    // Deleted through another node: DELETING, then gone from every map once no node runs
    // its groups; the name is free again and a new stream gets a new uid.
    nodes[2].delete_stream("events").await.unwrap();
    for node in &nodes {
        eventually("the deleted stream leaves the map", || {
            status(node, "events").is_none()
        })
        .await;
        assert!(node.raft_host().groups().is_empty());
    }
    let reborn = nodes[0].create_stream("events", 1).await.unwrap();
    assert!(reborn.uid > stream.uid);

    the_controllers_node_hands_on_its_office(&meta, &mut nodes, &controller).await;
    for node in nodes {
        node.stop().await.unwrap();
    }
    assert!(meta.snapshot().await.unwrap().nodes.is_empty());
}

/// A node away while its stream is deleted (stopped: its files kept) finds, back on its data,
/// that the stream is gone, and removes its replicas' files.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_back_discards_the_replicas_of_a_stream_deleted_meanwhile() {
    let meta = ClusterMeta::new(EmbeddedBackend::new(), "test").unwrap();
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes = three_nodes(&meta, &dirs).await;
    let stream = nodes[0].create_stream("brief", 2).await.unwrap();
    eventually("the stream turns ACTIVE", || {
        status(&nodes[2], "brief") == Some(StreamStatus::Active)
    })
    .await;
    let away = nodes.pop().unwrap();
    let engine = away.engine().clone();
    let held = |engine: &Engine| {
        let ids = engine.replicas_on_disk().unwrap();
        ids.iter().filter(|id| id.stream_uid == stream.uid).count()
    };
    assert_eq!(held(&engine), 2, "c holds both shards' replicas");
    away.stop().await.unwrap();
    drop(away);

    nodes[1].delete_stream("brief").await.unwrap();
    for node in &nodes {
        eventually("the stream leaves the map", || {
            status(node, "brief").is_none()
        })
        .await;
    }
    assert_eq!(held(&engine), 2, "c's files stay while it is away");
    let back = start_on(&meta, "c", engine.clone()).await;
    eventually("c removes the deleted stream's replicas", || {
        held(&engine) == 0
    })
    .await;
    back.stop().await.unwrap();
    for node in nodes {
        node.stop().await.unwrap();
    }
}

/// A node id runs on its data directory only: node c, which holds a replica with a record
/// on it, is refused under its id on another directory (as its old self it could vote
/// without the entries it acknowledged), while it runs and after it stopped, and the refused
/// runs neither register nor change the directory recorded; on its own directory it starts.
/// With no directory recorded (a cluster from before the record), a directory holding none of
/// the replicas the map places on c is refused too. A new directory under a new id is a new
/// node and takes a new stream's replicas.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_id_runs_on_its_own_data_directory_only() {
    let meta = ClusterMeta::new(EmbeddedBackend::new(), "test").unwrap();
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes = three_nodes(&meta, &dirs).await;
    let kept = nodes[0].create_stream("kept", 1).await.unwrap();
    eventually("the stream turns ACTIVE", || {
        status(&nodes[2], "kept") == Some(StreamStatus::Active)
    })
    .await;
    let record = NewRecord {
        partition_key: "k".into(),
        data: b"acknowledged by c too".to_vec(),
        flags: 0,
    };
    nodes[1].put(&kept, 0, &[record]).await.unwrap();

    let c = NodeId::new("c").unwrap();
    let own_name = std::fs::read_to_string(dirs[2].path().join("cluster-node.identity")).unwrap();
    let refused = async |dir: &std::path::Path| {
        match try_start_on(&meta, "c", engine(dir)).await {
            Err(MetaError::DataDirectoryChanged { node, .. }) => assert_eq!(node, "c"),
            Err(e) => panic!("c on {}: {e}", dir.display()),
            Ok(_) => panic!("c started on {}", dir.display()),
        }
        let recorded = meta.identity_of(&c).await.unwrap();
        assert_eq!(
            recorded.as_deref(),
            Some(own_name.trim()),
            "the record stays"
        );
    };
    let wiped = tempfile::tempdir().unwrap();
    refused(wiped.path()).await;
    let away = nodes.pop().unwrap();
    let own = away.engine().clone();
    away.stop().await.unwrap();
    drop(away);
    refused(wiped.path()).await;
    let map = meta.snapshot().await.unwrap();
    assert!(
        !map.nodes.contains_key(&c),
        "a node refused does not register"
    );
    let back = start_on(&meta, "c", own.clone()).await;
    back.stop().await.unwrap();
    drop(back);

    // A cluster from before directories were recorded: a directory without c's replica is
    // refused (twice: its name, made by the first try, proves nothing), c's own starts.
    let key = "/sluice/test/identities/c".to_owned();
    meta.backend()
        .txn(Vec::new(), vec![Op::Delete(key)])
        .await
        .unwrap();
    let other = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        match try_start_on(&meta, "c", engine(other.path())).await {
            Err(MetaError::DataDirectoryChanged { .. }) => {}
            Err(e) => panic!("c without a record: {e}"),
            Ok(_) => panic!("c started without its replica and without a record"),
        }
        assert_eq!(meta.identity_of(&c).await.unwrap(), None);
    }
    let back = start_on(&meta, "c", own).await;
    let recorded = meta.identity_of(&c).await.unwrap();
    assert_eq!(recorded.as_deref(), Some(own_name.trim()));
    back.stop().await.unwrap();
    drop(back);

    let d = start(&meta, "d", wiped.path()).await;
    let next = nodes[0].create_stream("next", 1).await.unwrap();
    eventually("d holds a replica of the new stream", || {
        let ids = d.engine().replicas_on_disk().unwrap();
        ids.iter().any(|id| id.stream_uid == next.uid)
    })
    .await;
    d.stop().await.unwrap();
    for node in nodes {
        node.stop().await.unwrap();
    }
}

/// A node id whose Raft number (the hash of its id, its name in every group) another id
/// claimed does not start, naming that id, and registers nothing; the collision is forged in
/// the store (none is known for xxh3). A node starting again finds its own claim.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_id_sharing_another_ids_raft_number_does_not_start() {
    let meta = ClusterMeta::new(EmbeddedBackend::new(), "test").unwrap();
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = start(&meta, "a", dirs[0].path()).await;
    let b = NodeId::new("b").unwrap();
    let put = Op::Put {
        key: format!("/sluice/test/raft-ids/{:016x}", b.raft_id()),
        value: b"z".to_vec(),
        lease: 0,
    };
    meta.backend().txn(Vec::new(), vec![put]).await.unwrap();
    match try_start_on(&meta, "b", engine(dirs[1].path())).await {
        Err(MetaError::RaftIdTaken { node, other, .. }) => {
            assert_eq!((&*node, &*other), ("b", "z"))
        }
        Err(e) => panic!("b: {e}"),
        Ok(_) => panic!("b started under z's Raft number"),
    }
    assert!(!meta.snapshot().await.unwrap().nodes.contains_key(&b));
    let engine_a = a.engine().clone();
    a.stop().await.unwrap();
    drop(a);
    let again = start_on(&meta, "a", engine_a).await;
    again.stop().await.unwrap();
}

/// Under 48 hours of retention a record 30 hours old is readable on every replica; once the
/// retention is decreased to 24, every replica hides it.
async fn every_replica_keeps_the_retention(nodes: &[Node], clock: &ManualClock, stream_uid: u64) {
    let group = GroupId {
        stream_uid,
        shard: 0,
    };
    // Each replica runs with 48 h before the clock moves: a read under the old 24 h would
    // hide the record for good (a trim horizon only moves on).
    for node in nodes {
        let replica = node.replica(group).expect("the node runs the group");
        let deadline = Instant::now() + PATIENCE;
        while replica.retention_ms().await.unwrap() != 48 * 3_600_000 {
            assert!(
                Instant::now() < deadline,
                "{} keeps its retention",
                node.id()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    clock.advance_ms(30 * 3_600_000);
    for node in nodes {
        node.read_barrier(group).await.unwrap();
        eventually("the record is readable on every replica", || {
            held(node, group).len() == 1
        })
        .await;
    }
    nodes[2]
        .configure("kept", SettingsChange::DecreaseRetention(24))
        .await
        .unwrap();
    for node in nodes {
        eventually(
            "every replica hides what its retention no longer keeps",
            || held(node, group).is_empty(),
        )
        .await;
    }
}

/// A stream's settings change through any node: the controller checks each change against
/// the stream's entry (a retention "increase" below the current one is refused, nothing
/// changes), every node's map shows the new settings, and every replica enforces the
/// retention: a record 30 hours old stays readable under 48 hours and is hidden on every
/// node once the retention is decreased to 24.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn settings_change_through_any_node_and_every_replica_keeps_the_retention() {
    let meta = ClusterMeta::new(EmbeddedBackend::new(), "test").unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000_000_000));
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes = Vec::new();
    for (name, dir) in ["a", "b", "c"].iter().zip(&dirs) {
        let mut config = EngineConfig::new(dir.path());
        config.cores = 1;
        config.segment_size_bytes = 1 << 20;
        config.clock = clock.clone();
        nodes.push(start_on(&meta, name, Engine::open(config).unwrap()).await);
    }
    let stream = nodes[0].create_stream("kept", 1).await.unwrap();
    assert_eq!(stream.settings, StreamSettings::default());
    for node in &nodes {
        eventually("the stream turns ACTIVE", || {
            status(node, "kept") == Some(StreamStatus::Active)
        })
        .await;
    }
    let record = NewRecord {
        partition_key: "k".into(),
        data: b"old".to_vec(),
        flags: 0,
    };
    nodes[1].put(&stream, 0, &[record]).await.unwrap();

    let tags = vec![("team".to_owned(), "ingest".to_owned())];
    nodes[2]
        .configure("kept", SettingsChange::AddTags(tags))
        .await
        .unwrap();
    let settings = nodes[1]
        .configure("kept", SettingsChange::IncreaseRetention(48))
        .await
        .unwrap();
    assert_eq!(settings.retention_hours, 48);
    let refused = nodes[0]
        .configure("kept", SettingsChange::IncreaseRetention(30))
        .await;
    assert_eq!(
        refused.unwrap_err(),
        AdminError::Settings(SettingsRefused::RetentionBelowCurrent {
            requested: 30,
            current: 48
        })
    );
    let missing = nodes[0]
        .configure("nothing", SettingsChange::RemoveTags(vec!["team".into()]))
        .await;
    assert_eq!(
        missing.unwrap_err(),
        AdminError::StreamNotFound("nothing".into())
    );
    for node in &nodes {
        eventually("the map shows the settings", || {
            node.map().streams["kept"].value.settings.retention_hours == 48
        })
        .await;
        assert_eq!(
            node.map().streams["kept"].value.settings.tags["team"],
            "ingest"
        );
    }

    every_replica_keeps_the_retention(&nodes, &clock, stream.uid).await;
    for node in nodes {
        node.stop().await.unwrap();
    }
}
