//! A shard's Raft group across three nodes in one process: three engines with their own data
//! directories, three peer ports on loopback, every group message over the node-to-node
//! transport. A leader is elected, clients' records are committed on a majority and answered
//! with their sequence numbers, the leader is killed and another takes over, the old one comes
//! back and catches up; every acknowledged record is then on every replica, once, at the number
//! it was acknowledged with, and the replicas are record-identical.

use openraft::BasicNode;
use sluice_cluster::raft::{
    ClientError, NewRecord, RaftHost, ShardClient, ShardGroup, ShardWrite, ShardWritten,
    start_group, stop_group,
};
use sluice_cluster::transport::{GroupId, PeerServer, Peers, TransportConfig};
use sluice_core::{Engine, EngineConfig, ReadLimits, Replica};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

const GROUP: GroupId = GroupId {
    stream_uid: 5,
    shard: 0,
};
const DAY_MS: u64 = 24 * 3_600_000;
const WAIT: Duration = Duration::from_secs(20);

/// One node: its engine, its peer port and the group running on it.
struct Node {
    id: u64,
    address: String,
    engine: Engine,
    host: Arc<RaftHost>,
    peers: Peers,
    _server: PeerServer,
    group: ShardGroup,
}

async fn start_node(id: u64, dir: &Path, listener: TcpListener) -> Node {
    start_node_keeping(id, dir, listener, DAY_MS).await
}

/// A node whose replica keeps records `retention_ms`.
async fn start_node_keeping(id: u64, dir: &Path, listener: TcpListener, retention_ms: u64) -> Node {
    let address = listener.local_addr().unwrap().to_string();
    let mut config = EngineConfig::new(dir);
    config.cores = 1;
    config.segment_size_bytes = 1 << 20;
    let engine = Engine::open(config).expect("engine opens");
    let host = RaftHost::new(id);
    let server = PeerServer::start(listener, host.clone()).unwrap();
    let peers = Peers::new(TransportConfig::default());
    let group = start_group(&engine, &peers, &host, GROUP, retention_ms)
        .await
        .expect("group starts");
    Node {
        id,
        address,
        engine,
        host,
        peers,
        _server: server,
        group,
    }
}

/// Binds `address` again once the port its last owner closed is free.
async fn bind_again(address: &str) -> TcpListener {
    let deadline = Instant::now() + WAIT;
    loop {
        match TcpListener::bind(address).await {
            Ok(listener) => return listener,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{address} stays taken: {e}"),
        }
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

/// The node that leads, as the live nodes see it.
async fn leader<'a>(nodes: &'a [&'a Node]) -> &'a Node {
    let deadline = Instant::now() + WAIT;
    loop {
        for node in nodes {
            let metrics = node.group.raft.metrics().borrow().clone();
            if metrics.current_leader == Some(node.id) && metrics.state.is_leader() {
                return node;
            }
        }
        assert!(Instant::now() < deadline, "no leader elected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until every node in `nodes` knows `leader_id` leads.
async fn known_leader(nodes: &[&Node], leader_id: u64) {
    let deadline = Instant::now() + WAIT;
    for node in nodes {
        while node.group.raft.metrics().borrow().current_leader != Some(leader_id) {
            assert!(
                Instant::now() < deadline,
                "node {} never learns the leader",
                node.id
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Writes `count` entries of 3 records each through `leader`; returns what was acknowledged:
/// sequence number to data.
async fn write(leader: &Node, from: usize, count: usize) -> BTreeMap<u64, Vec<u8>> {
    write_sized(leader, from, count, 0).await
}

/// `write`, each record padded to `size` bytes.
async fn write_sized(
    leader: &Node,
    from: usize,
    count: usize,
    size: usize,
) -> BTreeMap<u64, Vec<u8>> {
    let mut acknowledged = BTreeMap::new();
    for i in from..from + count {
        let data: Vec<Vec<u8>> = (0..3)
            .map(|r| {
                let mut data = format!("write {i} record {r}").into_bytes();
                data.resize(data.len().max(size), b'.');
                data
            })
            .collect();
        let records = data
            .iter()
            .map(|d| NewRecord {
                partition_key: format!("key-{i}"),
                data: d.clone(),
                flags: 0,
            })
            .collect();
        let answer = leader
            .group
            .raft
            .client_write(ShardWrite::New(records))
            .await
            .expect("a write to the leader commits");
        let ShardWritten {
            base_seq,
            record_count,
            ..
        } = answer.data;
        assert_eq!(record_count, 3);
        for (seq, d) in (base_seq..).zip(data) {
            assert!(acknowledged.insert(seq, d).is_none());
        }
    }
    acknowledged
}

/// Waits until every node in `nodes` applied what `leader` has.
async fn caught_up(leader: &Node, nodes: &[&Node]) {
    let last = leader.group.raft.metrics().borrow().last_log_index;
    for node in nodes {
        node.group
            .raft
            .wait(Some(WAIT))
            .applied_index_at_least(last, "catches up")
            .await
            .unwrap_or_else(|e| panic!("node {} does not catch up: {e}", node.id));
    }
}

/// Every acknowledged record is on every node at its number, once; the nodes hold the same.
fn check(nodes: &[&Node], acknowledged: &BTreeMap<u64, Vec<u8>>) {
    let first = records(&nodes[0].group.replica);
    for node in nodes {
        let held = records(&node.group.replica);
        assert_eq!(
            held, first,
            "node {} holds what node {} holds",
            node.id, nodes[0].id
        );
        let by_seq: HashMap<u64, &Vec<u8>> = held.iter().map(|(s, d)| (*s, d)).collect();
        assert_eq!(by_seq.len(), held.len(), "no number twice");
        for (seq, data) in acknowledged {
            assert_eq!(
                by_seq.get(seq),
                Some(&data),
                "node {}: record {seq}",
                node.id
            );
        }
        let mut datas: Vec<&Vec<u8>> = held.iter().map(|(_, d)| d).collect();
        datas.sort();
        datas.dedup();
        assert_eq!(datas.len(), held.len(), "no record twice");
    }
}

/// Three nodes running the group, initialized by the first.
async fn three_nodes(paths: &[PathBuf]) -> Vec<Node> {
    three_nodes_keeping(paths, DAY_MS).await
}

/// `three_nodes`, their replicas keeping records `retention_ms`.
async fn three_nodes_keeping(paths: &[PathBuf], retention_ms: u64) -> Vec<Node> {
    let mut nodes = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        nodes.push(start_node_keeping(i as u64 + 1, path, listener, retention_ms).await);
    }
    let members: BTreeMap<u64, BasicNode> = nodes
        .iter()
        .map(|n| (n.id, BasicNode::new(&n.address)))
        .collect();
    nodes[0]
        .group
        .raft
        .initialize(members)
        .await
        .expect("the group initializes");
    nodes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_group_commits_fails_over_and_catches_a_returning_node_up() {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let paths: Vec<PathBuf> = dirs.iter().map(|d| d.path().to_path_buf()).collect();
    let mut nodes = three_nodes(&paths).await;

    let all: Vec<&Node> = nodes.iter().collect();
    let first_leader = leader(&all).await;
    let mut acknowledged = write(first_leader, 0, 50).await;
    caught_up(first_leader, &all).await;
    check(&all, &acknowledged);

    // The leader dies: its Raft stops, its peer port closes, its engine goes.
    let dead = first_leader.id;
    let position = nodes.iter().position(|n| n.id == dead).unwrap();
    let Node {
        address,
        engine,
        host,
        _server,
        ..
    } = nodes.remove(position);
    let killed = Instant::now();
    stop_group(&engine, &host, GROUP, false).await.unwrap();
    drop((_server, engine));
    let survivors: Vec<&Node> = nodes.iter().collect();
    let new_leader = leader(&survivors).await;
    assert_ne!(new_leader.id, dead);
    acknowledged.append(&mut write(new_leader, 50, 1).await);
    eprintln!(
        "failover: leader {dead} killed, a write committed through {} after {} ms",
        new_leader.id,
        killed.elapsed().as_millis()
    );
    acknowledged.append(&mut write(new_leader, 51, 49).await);
    caught_up(new_leader, &survivors).await;
    check(&survivors, &acknowledged);

    // The old leader comes back on its address with its data: it follows and catches up.
    let listener = bind_again(&address).await;
    nodes.push(start_node(dead, &paths[position], listener).await);
    let all: Vec<&Node> = nodes.iter().collect();
    let leader_now = leader(&all).await;
    acknowledged.append(&mut write(leader_now, 100, 10).await);
    caught_up(leader_now, &all).await;
    check(&all, &acknowledged);
    assert_eq!(acknowledged.len(), 110 * 3);
    for node in nodes {
        stop_group(&node.engine, &node.host, GROUP, false)
            .await
            .unwrap();
    }
}

fn records_of(i: usize) -> Vec<NewRecord> {
    vec![NewRecord {
        partition_key: format!("key-{i}"),
        data: format!("through any node {i}").into_bytes(),
        flags: 0,
    }]
}

/// Any node writes through the leader, also one that does not run the group (it asks the
/// replicas the map names); a read barrier on a follower makes every acknowledged write
/// readable there at once; refusals and a node without the group answer clearly; during a
/// failover writes fail with a retryable error, then go through the new leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_go_through_any_node_and_reads_see_them_after_a_barrier() {
    let dirs: Vec<tempfile::TempDir> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let paths: Vec<PathBuf> = dirs.iter().map(|d| d.path().to_path_buf()).collect();
    let mut nodes = three_nodes(&paths[..3]).await;
    let all: Vec<&Node> = nodes.iter().collect();
    let leader_id = leader(&all).await.id;
    // A follower learns of a new leader from its first append: until then it answers
    // NoLeader (a loaded machine made that window long enough to hit).
    known_leader(&all, leader_id).await;
    let followers: Vec<&Node> = nodes.iter().filter(|n| n.id != leader_id).collect();
    let client = |node: &Node| ShardClient::new(node.host.clone(), node.peers.clone());
    let replicas: Vec<(u64, String)> = nodes.iter().map(|n| (n.id, n.address.clone())).collect();
    // A fourth node runs no replica of the group: it has a host and a port, nothing else.
    let outsider_host = RaftHost::new(4);
    let outsider = ShardClient::new(
        outsider_host.clone(),
        Peers::new(TransportConfig::default()),
    );

    let mut acknowledged = BTreeMap::new();
    for i in 0..20 {
        let (writer, reader) = (followers[i % 2], followers[(i + 1) % 2]);
        let written = if i % 5 == 4 {
            outsider.write(GROUP, &records_of(i), &replicas).await
        } else {
            client(writer).write(GROUP, &records_of(i), &[]).await
        }
        .expect("a write through any node commits");
        acknowledged.insert(written.base_seq, records_of(i)[0].data.clone());
        // Read-your-writes on the other follower: after the barrier, it holds the record.
        client(reader).read_barrier(GROUP).await.unwrap();
        let held: BTreeMap<u64, Vec<u8>> = records(&reader.group.replica).into_iter().collect();
        assert_eq!(
            held.get(&written.base_seq),
            acknowledged.get(&written.base_seq)
        );
    }
    let refused = client(followers[0]).write(GROUP, &[], &[]).await;
    assert!(
        matches!(refused, Err(ClientError::Refused(_))),
        "{refused:?}"
    );
    assert_eq!(
        outsider.read_barrier(GROUP).await,
        Err(ClientError::NotHere(GROUP))
    );

    // The leader dies; a follower's writes fail (retryable) until the new leader takes them.
    let position = nodes.iter().position(|n| n.id == leader_id).unwrap();
    let dead = nodes.remove(position);
    stop_group(&dead.engine, &dead.host, GROUP, false)
        .await
        .unwrap();
    drop(dead);
    let writer = client(&nodes[0]);
    let deadline = Instant::now() + WAIT;
    let written = loop {
        match writer.write(GROUP, &records_of(100), &[]).await {
            Ok(written) => break written,
            Err(ClientError::NoLeader | ClientError::Unreachable(_)) => {
                assert!(Instant::now() < deadline, "no new leader takes writes");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("a write during a failover: {e}"),
        }
    };
    acknowledged.insert(written.base_seq, records_of(100)[0].data.clone());
    let survivors: Vec<&Node> = nodes.iter().collect();
    for node in &survivors {
        client(node).read_barrier(GROUP).await.unwrap();
        let held: BTreeMap<u64, Vec<u8>> = records(&node.group.replica).into_iter().collect();
        for (seq, data) in &acknowledged {
            assert_eq!(held.get(seq), Some(data), "node {}: record {seq}", node.id);
        }
    }
    drop(outsider_host);
    for node in nodes {
        stop_group(&node.engine, &node.host, GROUP, false)
            .await
            .unwrap();
    }
}

/// Until `node` refuses writes as closed: a write through it (retrying while a failover
/// runs) must be refused, never acknowledged.
async fn refuses_as_closed(node: &Node) {
    let client = ShardClient::new(node.host.clone(), node.peers.clone());
    let deadline = Instant::now() + WAIT;
    loop {
        match client.write(GROUP, &records_of(999), &[]).await {
            Err(ClientError::Closed) => return,
            Err(ClientError::NoLeader | ClientError::Unreachable(_)) => {
                assert!(Instant::now() < deadline, "no leader answers");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("a write after the close: {other:?}"),
        }
    }
}

/// What every replica shows of a closed shard: the acknowledged records, nothing past the
/// close entry's number, which is where its readers end.
fn ends_at(nodes: &[&Node], acknowledged: &BTreeMap<u64, Vec<u8>>, end: u64) {
    check(nodes, acknowledged);
    for node in nodes {
        let held = records(&node.group.replica);
        assert!(held.iter().all(|(seq, _)| *seq < end), "node {}", node.id);
        assert_eq!(
            node.group.replica.reader().next_seq(),
            end,
            "node {}",
            node.id
        );
    }
}

/// A reshard's close entry ends the shard on every replica: its end is the number after the
/// last acknowledged record, a second close answers the same end, every write after it is
/// refused (through any node, by a new leader, by a replica restarted on its data) and none
/// becomes readable.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_close_entry_ends_the_shard_on_every_replica_across_failover_and_restart() {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let paths: Vec<PathBuf> = dirs.iter().map(|d| d.path().to_path_buf()).collect();
    let mut nodes = three_nodes(&paths).await;
    let all: Vec<&Node> = nodes.iter().collect();
    let first_leader = leader(&all).await;
    let acknowledged = write(first_leader, 0, 10).await;
    let client = |node: &Node| ShardClient::new(node.host.clone(), node.peers.clone());
    let follower = all.iter().find(|n| n.id != first_leader.id).unwrap();
    let end = client(follower)
        .close(GROUP, &[])
        .await
        .expect("the close commits")
        .0;
    assert_eq!(end, acknowledged.keys().last().unwrap() + 1);
    assert_eq!(client(first_leader).close(GROUP, &[]).await.unwrap().0, end);
    for node in &all {
        refuses_as_closed(node).await;
    }
    caught_up(first_leader, &all).await;
    ends_at(&all, &acknowledged, end);

    // The leader dies: the new one refuses as the old did.
    let (dead, position) = (
        first_leader.id,
        all.iter().position(|n| n.id == first_leader.id),
    );
    let position = position.unwrap();
    let gone = nodes.remove(position);
    stop_group(&gone.engine, &gone.host, GROUP, false)
        .await
        .unwrap();
    let address = gone.address.clone();
    drop(gone);
    let survivors: Vec<&Node> = nodes.iter().collect();
    refuses_as_closed(survivors[0]).await;

    // It comes back on its data: still closed at the same end, after catching up.
    let listener = bind_again(&address).await;
    nodes.push(start_node(dead, &paths[position], listener).await);
    let all: Vec<&Node> = nodes.iter().collect();
    refuses_as_closed(all[2]).await;
    caught_up(leader(&all).await, &all).await;
    ends_at(&all, &acknowledged, end);
    for node in nodes {
        stop_group(&node.engine, &node.host, GROUP, false)
            .await
            .unwrap();
    }
}

/// `callers` writes of three records at once, through the nodes in turn (a caller `refused`
/// picks a key the log refuses); returns each one's records and answer, in caller order.
async fn write_together(
    nodes: &[Node],
    callers: std::ops::Range<usize>,
    refused: fn(usize) -> bool,
) -> Vec<(usize, Vec<NewRecord>, Result<ShardWritten, ClientError>)> {
    let mut tasks = Vec::new();
    for i in callers {
        let node = &nodes[i % nodes.len()];
        let client = ShardClient::new(node.host.clone(), node.peers.clone());
        let key = if refused(i) {
            "k".repeat(70_000) // longer than the log takes a key (64 KiB)
        } else {
            format!("caller-{i}")
        };
        let records: Vec<NewRecord> = (0..3)
            .map(|r| NewRecord {
                partition_key: key.clone(),
                data: format!("caller {i} record {r}").into_bytes(),
                flags: 0,
            })
            .collect();
        tasks.push(tokio::spawn(async move {
            let written = client.write(GROUP, &records, &[]).await;
            (i, records, written)
        }));
    }
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    answers
}

/// Writes that arrive together through any node share entries on the leader (fewer entries
/// than writes), yet each caller is answered its own records' numbers, a run of three holding
/// exactly its records in order on every replica; a caller whose key the log refuses gets
/// the refusal, and the others sharing its entry are written all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_arriving_together_share_entries_and_keep_their_own_answers() {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let paths: Vec<PathBuf> = dirs.iter().map(|d| d.path().to_path_buf()).collect();
    let nodes = three_nodes(&paths).await;
    let all: Vec<&Node> = nodes.iter().collect();
    let leader = leader(&all).await;
    let last_entry = || leader.group.raft.metrics().borrow().last_log_index.unwrap();
    let before = last_entry();
    let mut answers = write_together(&nodes, 0..96, |_| false).await;
    let entries = last_entry() - before;
    println!("96 writes in {entries} entries");
    assert!(
        entries < 96,
        "96 writes took {entries} entries: none shared"
    );
    answers.extend(write_together(&nodes, 96..192, |i| i % 16 == 5).await);
    let mut acknowledged = BTreeMap::new();
    for (i, records, written) in answers {
        if i >= 96 && i % 16 == 5 {
            assert!(
                matches!(written, Err(ClientError::Refused(_))),
                "{written:?}"
            );
            continue;
        }
        let written = written.unwrap_or_else(|e| panic!("caller {i}: {e}"));
        assert_eq!(written.record_count, 3, "caller {i}");
        for (seq, record) in (written.base_seq..).zip(records) {
            assert!(
                acknowledged.insert(seq, record.data).is_none(),
                "caller {i} was given number {seq}, which another caller has"
            );
        }
    }
    caught_up(leader, &all).await;
    check(&all, &acknowledged);
    let held = records(&leader.group.replica);
    assert_eq!(held.len(), acknowledged.len(), "no refused caller's record");
    for node in nodes {
        stop_group(&node.engine, &node.host, GROUP, false)
            .await
            .unwrap();
    }
}

/// The log id `node` purged up to, once it has (after its snapshot).
async fn purged(node: &Node) -> openraft::LogId<u64> {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(purged) = node.group.raft.metrics().borrow().purged {
            return purged;
        }
        assert!(Instant::now() < deadline, "node {} never purges", node.id);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A follower away for longer than the retention comes back to a leader that snapshotted at
/// its retention point and purged what the follower lacks: the follower restarts its log
/// after the snapshot and takes the rest as appends. It then holds every acknowledged record
/// from there on, as the leader does, and takes part in new writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_away_past_the_retention_restarts_at_the_leaders_snapshot() {
    const RETENTION_MS: u64 = 1_500;
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let paths: Vec<PathBuf> = dirs.iter().map(|d| d.path().to_path_buf()).collect();
    let mut nodes = three_nodes_keeping(&paths, RETENTION_MS).await;
    let all: Vec<&Node> = nodes.iter().collect();
    let first_leader = leader(&all).await;
    let mut acknowledged = write(first_leader, 0, 5).await;
    caught_up(first_leader, &all).await;

    let leader_id = first_leader.id;
    let away = nodes.iter().position(|n| n.id != leader_id).unwrap();
    let Node {
        id: away_id,
        address,
        engine,
        host,
        _server,
        ..
    } = nodes.remove(away);
    stop_group(&engine, &host, GROUP, false).await.unwrap();
    drop((_server, engine));
    let staying: Vec<&Node> = nodes.iter().collect();
    let staying_leader = leader(&staying).await;
    // About 1.4 MiB: a segment of 1 MiB fills and is sealed, then expires.
    acknowledged.append(&mut write_sized(staying_leader, 5, 15, 32 << 10).await);
    tokio::time::sleep(Duration::from_millis(RETENTION_MS + 500)).await;
    let after_expiry = write(staying_leader, 20, 5).await;
    let first_after_expiry = *after_expiry.keys().next().unwrap();
    acknowledged.extend(after_expiry);
    for node in &staying {
        node.group.raft.trigger().snapshot().await.unwrap();
    }
    let snapshot_at = purged(staying_leader).await;
    assert!(
        snapshot_at.index > 10,
        "purged past the away follower's log"
    );
    // From here on records stay readable, so what the replicas hold can be compared.
    for node in &staying {
        node.group.replica.set_retention_ms(DAY_MS).await.unwrap();
    }

    let listener = bind_again(&address).await;
    nodes.push(start_node(away_id, &paths[away], listener).await);
    let all: Vec<&Node> = nodes.iter().collect();
    let leader_now = leader(&all).await;
    acknowledged.append(&mut write(leader_now, 25, 5).await);
    caught_up(leader_now, &all).await;

    let back = nodes.iter().find(|n| n.id == away_id).unwrap();
    let trim = back.group.replica.reader().trim_horizon();
    assert!(trim > 15, "restarted past the 15 records it held: {trim}");
    assert!(
        trim <= first_after_expiry,
        "nothing within retention is missing"
    );
    assert!(back.group.raft.metrics().borrow().snapshot.is_some());
    let held = records(&back.group.replica);
    let leaders: Vec<(u64, Vec<u8>)> = records(&leader_now.group.replica)
        .into_iter()
        .filter(|(seq, _)| *seq >= trim)
        .collect();
    assert!(
        held == leaders,
        "the follower holds what the leader holds from {trim}"
    );
    let by_seq: HashMap<u64, &Vec<u8>> = held.iter().map(|(s, d)| (*s, d)).collect();
    for (seq, data) in acknowledged.range(trim..) {
        assert_eq!(by_seq.get(seq), Some(&data), "record {seq}");
    }
    for node in nodes {
        stop_group(&node.engine, &node.host, GROUP, false)
            .await
            .unwrap();
    }
}
