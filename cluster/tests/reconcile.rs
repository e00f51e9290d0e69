//! Each node's reconciler against both stores: a node runs exactly the replicas the map gives
//! it; after the controller replaces a crashed node, the survivors update, the replacement
//! starts, and the crashed node (back with its old state) stops what moved away and keeps the
//! data; a stale map changes nothing; `run` follows the map through the watch, and a
//! deleted stream's replicas stop and remove their data, as an expired shard's do.

#[macro_use]
mod support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_cluster::controller::{ControllerConfig, ControllerOffice};
use sluice_cluster::reconcile::{Action, Reconciler, ReplicaHost, desired};
use sluice_cluster::transport::GroupId;
use sluice_cluster::{
    Backend, ClusterMeta, NodeId, ShardPlacement, Snapshot, StreamPlacement, StreamSettings,
    StreamStatus, Versioned,
};
use support::{TTL, node, within};

/// Records what it was told, as the data plane's group host will be told.
#[derive(Clone, Default)]
struct Recording(Arc<Mutex<Vec<Action>>>);

impl Recording {
    fn actions(&self) -> Vec<Action> {
        self.0.lock().unwrap().clone()
    }
}

impl ReplicaHost for Recording {
    async fn start(
        &mut self,
        group: GroupId,
        _: &StreamPlacement,
        shard: &ShardPlacement,
    ) -> Result<(), String> {
        self.0
            .lock()
            .unwrap()
            .push(Action::Start(group, shard.epoch));
        Ok(())
    }
    async fn update(
        &mut self,
        group: GroupId,
        _: &StreamPlacement,
        shard: &ShardPlacement,
    ) -> Result<(), String> {
        self.0
            .lock()
            .unwrap()
            .push(Action::Update(group, shard.epoch));
        Ok(())
    }
    async fn stop(&mut self, group: GroupId, remove_data: bool) -> Result<(), String> {
        self.0
            .lock()
            .unwrap()
            .push(Action::Stop(group, remove_data));
        Ok(())
    }
}

/// Fails the first `failures` starts; holds the data of `kept` (a previous run's); the groups
/// let go of this node once `released` says so.
#[derive(Default)]
struct Flaky {
    failures: usize,
    kept: Vec<GroupId>,
    released: Arc<AtomicBool>,
}

impl ReplicaHost for Flaky {
    async fn start(
        &mut self,
        _: GroupId,
        _: &StreamPlacement,
        _: &ShardPlacement,
    ) -> Result<(), String> {
        if self.failures > 0 {
            self.failures -= 1;
            return Err("disk full".into());
        }
        Ok(())
    }
    async fn update(
        &mut self,
        _: GroupId,
        _: &StreamPlacement,
        _: &ShardPlacement,
    ) -> Result<(), String> {
        Ok(())
    }
    async fn stop(&mut self, group: GroupId, remove_data: bool) -> Result<(), String> {
        if remove_data {
            self.kept.retain(|g| *g != group);
        }
        Ok(())
    }
    async fn kept(&mut self) -> Vec<GroupId> {
        self.kept.clone()
    }
    async fn released(&mut self, _: GroupId, _: &ShardPlacement) -> bool {
        self.released.load(Ordering::Relaxed)
    }
    async fn discard(&mut self, group: GroupId) -> Result<(), String> {
        self.kept.retain(|g| *g != group);
        Ok(())
    }
}

fn id(name: &str) -> NodeId {
    NodeId::new(name).unwrap()
}

fn config(replace_after: Duration) -> ControllerConfig {
    let mut config = ControllerConfig::default();
    config.replace_after = replace_after;
    config.lease_ttl = TTL;
    config
}

/// Waits until `crashed` is gone from the map and the office has moved its replicas away;
/// returns the map after the repair.
async fn repair_after_crash<B: Backend>(
    meta: &ClusterMeta<B>,
    office: &mut ControllerOffice<B>,
    crashed: &NodeId,
    delay: Duration,
) -> sluice_cluster::Snapshot {
    while meta.snapshot().await.unwrap().nodes.contains_key(crashed) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    office.repair().await.unwrap();
    tokio::time::sleep(delay).await;
    assert_eq!(office.repair().await.unwrap(), 1);
    meta.snapshot().await.unwrap()
}

async fn each_node_runs_what_the_map_gives_it<B: Backend>(meta: ClusterMeta<B>) {
    let names = ["a", "b", "c", "d"];
    let mut registrations = Vec::new();
    for name in names {
        registrations.push(meta.register(node(name), TTL).await.unwrap());
    }
    let delay = Duration::from_millis(1500);
    let mut office = ControllerOffice::elect(meta.clone(), &id("a"), config(delay))
        .await
        .unwrap();
    let created = office.create_stream("orders", 8).await.unwrap();
    let mut nodes: Vec<Reconciler<Recording>> = names
        .iter()
        .map(|n| Reconciler::new(id(n), Recording::default()))
        .collect();
    let map = meta.snapshot().await.unwrap();
    let mut placed = BTreeSet::new();
    for (name, reconciler) in names.iter().zip(&mut nodes) {
        let actions = reconciler.apply(&map).await;
        assert!(
            actions.iter().all(|a| matches!(a, Action::Start(_, 1))),
            "{actions:?}"
        );
        placed.extend(actions.iter().map(|a| (*name, a.clone())));
        assert_eq!(
            reconciler
                .running()
                .keys()
                .copied()
                .collect::<BTreeSet<_>>(),
            desired(&id(name), &map).keys().copied().collect()
        );
    }
    assert_eq!(
        placed.len(),
        24,
        "8 shards x 3 replicas, each started once on its node"
    );
    // d crashes; the controller re-creates its replicas elsewhere.
    registrations[3].stop_renewing();
    let repaired = repair_after_crash(&meta, &mut office, &id("d"), delay).await;
    let moved: BTreeSet<u32> = created
        .shards
        .iter()
        .filter(|s| s.replicas.contains(&id("d")))
        .map(|s| s.index)
        .collect();
    let group = |shard: u32| GroupId {
        stream_uid: created.uid,
        shard,
    };
    let mut started_again = 0;
    for reconciler in &mut nodes[..3] {
        for action in reconciler.apply(&repaired).await {
            match action {
                Action::Update(g, 2) => assert!(moved.contains(&g.shard), "{g} did not change"),
                Action::Start(g, 2) => {
                    assert!(moved.contains(&g.shard));
                    started_again += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert_eq!(
        started_again,
        moved.len(),
        "each moved replica started once, on its new node"
    );
    // d comes back with what it ran: everything moved away; it stops and keeps the data.
    let stops = nodes[3].apply(&repaired).await;
    let expected: Vec<Action> = moved
        .iter()
        .map(|s| Action::Stop(group(*s), false))
        .collect();
    assert_eq!(stops, expected);
    // The map from before the repair, read late, changes nothing.
    assert!(nodes[0].apply(&map).await.is_empty());
}

async fn run_follows_the_map<B: Backend>(meta: ClusterMeta<B>) {
    let mut registrations = Vec::new();
    for name in ["a", "b", "c"] {
        registrations.push(meta.register(node(name), TTL).await.unwrap());
    }
    let host = Recording::default();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let follower = tokio::spawn({
        let (meta, host) = (meta.clone(), host.clone());
        async move {
            let mut reconciler = Reconciler::new(id("c"), host);
            reconciler
                .run(&meta, async { stopped.await.unwrap_or(()) })
                .await;
            reconciler.running().len()
        }
    });
    let mut office =
        ControllerOffice::elect(meta.clone(), &id("a"), config(Duration::from_secs(60)))
            .await
            .unwrap();
    office.create_stream("events", 2).await.unwrap();
    // 2 shards x 3 replicas on 3 nodes: c holds both.
    within("c starts both replicas", async {
        while host.actions().len() < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        host.actions()
            .iter()
            .all(|a| matches!(a, Action::Start(_, 1)))
    );
    office.delete_stream("events", false).await.unwrap();
    within("c stops both and removes their data", async {
        while host.actions().len() < 4 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        host.actions()[2..]
            .iter()
            .all(|a| matches!(a, Action::Stop(_, true))),
        "{:?}",
        host.actions()
    );
    stop.send(()).unwrap();
    assert_eq!(within("run returns when told", follower).await.unwrap(), 0);
}

async fn a_step_that_fails_is_tried_again<B: Backend>(meta: ClusterMeta<B>) {
    let mut registrations = Vec::new();
    for name in ["a", "b", "c"] {
        registrations.push(meta.register(node(name), TTL).await.unwrap());
    }
    let mut office =
        ControllerOffice::elect(meta.clone(), &id("a"), config(Duration::from_secs(60)))
            .await
            .unwrap();
    office.create_stream("events", 2).await.unwrap();
    let map = meta.snapshot().await.unwrap();
    let mut reconciler = Reconciler::new(
        id("b"),
        Flaky {
            failures: 1,
            ..Flaky::default()
        },
    );
    // b holds both shards; the first start fails and is not counted as running.
    let actions = reconciler.apply(&map).await;
    assert_eq!(actions.len(), 1, "{actions:?}");
    let failed = reconciler.failures().to_vec();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].1, "disk full");
    assert!(!reconciler.running().contains_key(&failed[0].0));
    // The same map again: the failed start is made, nothing else is repeated.
    assert_eq!(
        reconciler.apply(&map).await,
        vec![Action::Start(failed[0].0, 1)]
    );
    assert!(reconciler.failures().is_empty());
    assert_eq!(reconciler.running().len(), 2);
}

conformance!(
    each_node_runs_what_the_map_gives_it,
    run_follows_the_map,
    a_step_that_fails_is_tried_again
);

/// A replica the map moved to another node keeps its data while its group still lists this
/// node (it waits, looked at again), and loses it once the group let go of it; one the map
/// still places here, or of a stream uid the map never gave, is never asked about.
#[tokio::test]
async fn a_replica_moved_away_keeps_its_data_until_its_group_lets_go() {
    let (me, other) = (id("a"), id("b"));
    let group = |stream_uid, shard| GroupId { stream_uid, shard };
    let shards = vec![shard(0, &[&me], false), shard(1, &[&other], false)];
    let (_, snapshot) = one_stream(shards);
    let released = Arc::new(AtomicBool::new(false));
    let host = Flaky {
        kept: vec![group(1, 0), group(1, 1), group(7, 0)],
        released: released.clone(),
        ..Flaky::default()
    };
    let mut reconciler = Reconciler::new(me.clone(), host);
    let actions = reconciler.apply(&snapshot).await;
    assert_eq!(actions, [Action::Start(group(1, 0), 1)]);
    assert_eq!(reconciler.waiting(), [group(1, 1)]);
    assert_eq!(reconciler.host().kept.len(), 3, "nothing discarded");
    // Looked at again (the map unchanged) while the group still lists this node: it waits.
    assert!(reconciler.recheck_waiting(&snapshot).await.is_empty());
    assert_eq!(reconciler.waiting(), [group(1, 1)]);
    // Once the group let go, the moved replica's data goes.
    released.store(true, Ordering::Relaxed);
    let actions = reconciler.recheck_waiting(&snapshot).await;
    assert_eq!(actions, [Action::Discard(group(1, 1))]);
    assert!(reconciler.waiting().is_empty());
    assert_eq!(reconciler.host().kept, [group(1, 0), group(7, 0)]);
    // A map applied again finds nothing more to do.
    assert!(reconciler.apply(&snapshot).await.is_empty());
}

/// Stream "s" (uid 1) of `shards`, and a map at revision 1 holding only it.
fn one_stream(shards: Vec<ShardPlacement>) -> (StreamPlacement, Snapshot) {
    let stream = StreamPlacement {
        uid: 1,
        name: "s".into(),
        status: StreamStatus::Active,
        replication: 1,
        shards,
        created_ms: 0,
        settings: StreamSettings::default(),
        resharding: None,
    };
    let mut snapshot = Snapshot::default();
    (snapshot.uid_next.value, snapshot.revision) = (2, 1);
    let entry = Versioned {
        value: stream.clone(),
        revision: 1,
    };
    snapshot.streams.insert("s".into(), entry);
    (stream, snapshot)
}

fn shard(index: u32, replicas: &[&NodeId], expired: bool) -> ShardPlacement {
    ShardPlacement {
        index,
        starting_hash_key: 0,
        ending_hash_key: u128::MAX,
        parents: vec![],
        replicas: replicas.iter().map(|n| (*n).clone()).collect(),
        epoch: 1,
        closed: expired,
        ending_seq: expired.then_some(3),
        closed_ms: expired.then_some(0),
        expired,
    }
}

/// A running replica of a shard that expired stops with its data removed; the data of one
/// held while the node was away goes too; a live shard's replica moved away keeps its, and
/// waits for its group to let go of the node.
#[tokio::test]
async fn an_expired_shard_s_data_goes_running_or_kept() {
    let (me, other) = (id("a"), id("b"));
    let group = |shard| GroupId {
        stream_uid: 1,
        shard,
    };
    let (mut stream, mut snapshot) = one_stream(vec![
        shard(0, &[&me], false),
        shard(1, &[&me], false),
        shard(2, &[&other], false),
    ]);
    // Running replicas are held on disk too, as a host lists them.
    let host = Flaky {
        kept: vec![group(0), group(1), group(3)],
        ..Flaky::default()
    };
    let mut reconciler = Reconciler::new(me.clone(), host);
    let started = reconciler.apply(&snapshot).await;
    let expected = [Action::Start(group(0), 1), Action::Start(group(1), 1)];
    assert_eq!(started, expected);
    // Shard 0 expires; shard 1 moves to b; shard 3, held from before, expired meanwhile.
    stream.shards[0] = shard(0, &[], true);
    stream.shards[1] = shard(1, &[&other], false);
    stream.shards.push(shard(3, &[], true));
    snapshot.revision = 2;
    snapshot.streams.get_mut("s").unwrap().value = stream;
    let actions = reconciler.apply(&snapshot).await;
    let expected = [
        Action::Stop(group(0), true),
        Action::Stop(group(1), false),
        Action::Discard(group(3)),
    ];
    assert_eq!(actions, expected);
    assert_eq!(
        reconciler.host().kept,
        [group(1)],
        "the moved one's data stays"
    );
    assert_eq!(reconciler.waiting(), [group(1)]);
}
