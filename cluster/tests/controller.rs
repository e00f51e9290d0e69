//! The controller against both stores: streams created with Kinesis' hash key split and
//! replicas spread, refused requests writing nothing, replicas of a node gone for long enough
//! re-created elsewhere (not those of a node that came back), and the office passing to the
//! next candidate with requests still answered.

#[macro_use]
mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use sluice_cluster::controller::{
    self, ControllerConfig, ControllerError, ControllerOffice, Request,
};
use sluice_cluster::placement::PlacementError;
use sluice_cluster::plan::PlanError;
use sluice_cluster::{Backend, ClusterMeta, NodeId, Registration, StreamSettings, StreamStatus};
use sluice_core::HashKeyRange;
use support::{TTL, node, within};
use tokio::sync::{mpsc, oneshot};

fn config(replace_after: Duration, max_moves: usize) -> ControllerConfig {
    let mut config = ControllerConfig::default();
    config.replace_after = replace_after;
    config.max_moves = max_moves;
    config.tick = Duration::from_millis(100);
    config.lease_ttl = TTL;
    config
}

async fn register<B: Backend>(meta: &ClusterMeta<B>, names: &[&str]) -> Vec<Registration<B>> {
    let mut out = Vec::new();
    for name in names {
        out.push(meta.register(node(name), TTL).await.unwrap());
    }
    out
}

async fn streams_are_placed_and_refusals_write_nothing<B: Backend>(meta: ClusterMeta<B>) {
    let _nodes = register(&meta, &["a", "b", "c"]).await;
    let mut office = ControllerOffice::elect(
        meta.clone(),
        &NodeId::new("a").unwrap(),
        config(Duration::from_secs(60), 8),
    )
    .await
    .unwrap();
    let orders = office.create_stream("orders", 4).await.unwrap();
    assert_eq!(
        (orders.uid, orders.status, orders.replication),
        (1, StreamStatus::Creating, 3)
    );
    let ranges: Vec<(u128, u128)> = orders
        .shards
        .iter()
        .map(|s| (s.starting_hash_key, s.ending_hash_key))
        .collect();
    let expected: Vec<(u128, u128)> = HashKeyRange::even_split(4)
        .iter()
        .map(|r| (r.start, r.end))
        .collect();
    assert_eq!(ranges, expected, "the engine's split");
    for shard in &orders.shards {
        assert_eq!(
            shard.replicas.iter().collect::<BTreeSet<_>>().len(),
            3,
            "{shard:?}"
        );
    }
    let leaders: BTreeSet<&NodeId> = orders.shards.iter().map(|s| &s.replicas[0]).collect();
    assert_eq!(leaders.len(), 3, "4 shards' leaders on all 3 nodes");
    let before = meta.snapshot().await.unwrap();
    assert_eq!(before.streams["orders"].value, orders);
    assert_eq!(before.uid_next.value, 2);
    // Refusals, each leaving the map as it was.
    assert!(matches!(
        office.create_stream("orders", 1).await,
        Err(ControllerError::Plan(PlanError::StreamExists(_)))
    ));
    assert!(matches!(
        office.create_stream("none", 0).await,
        Err(ControllerError::Plan(PlanError::InvalidArgument(_)))
    ));
    assert!(matches!(
        office.create_stream("a/b", 1).await,
        Err(ControllerError::Plan(PlanError::InvalidArgument(_)))
    ));
    assert!(matches!(
        office.delete_stream("missing", false).await,
        Err(ControllerError::Plan(PlanError::StreamNotFound(_)))
    ));
    let after = meta.snapshot().await.unwrap();
    assert_eq!(
        (after.streams, after.uid_next),
        (before.streams, before.uid_next)
    );
    // Deletion marks the stream; the next stream gets the next uid.
    office.delete_stream("orders", false).await.unwrap();
    assert_eq!(
        meta.snapshot().await.unwrap().streams["orders"]
            .value
            .status,
        StreamStatus::Deleting
    );
    assert_eq!(office.create_stream("events", 2).await.unwrap().uid, 2);
}

async fn too_few_nodes_place_nothing<B: Backend>(meta: ClusterMeta<B>) {
    let _nodes = register(&meta, &["a", "b"]).await;
    let mut office = ControllerOffice::elect(
        meta.clone(),
        &NodeId::new("a").unwrap(),
        config(Duration::from_secs(60), 8),
    )
    .await
    .unwrap();
    let refused = office.create_stream("orders", 2).await;
    assert!(matches!(
        refused,
        Err(ControllerError::Plan(PlanError::Placement(
            PlacementError::NotEnoughNodes {
                replication: 3,
                live: 2
            }
        )))
    ));
    let map = meta.snapshot().await.unwrap();
    assert!(map.streams.is_empty());
    assert_eq!(map.uid_next.revision, 0, "the uid counter was not moved");
}

async fn a_gone_node_is_replaced_after_the_delay_and_not_before<B: Backend>(meta: ClusterMeta<B>) {
    let mut nodes = register(&meta, &["a", "b", "c", "d"]).await;
    let delay = Duration::from_millis(1500);
    let mut office =
        ControllerOffice::elect(meta.clone(), &NodeId::new("a").unwrap(), config(delay, 3))
            .await
            .unwrap();
    let created = office.create_stream("orders", 8).await.unwrap();
    let d = NodeId::new("d").unwrap();
    let held_by_d: BTreeSet<u32> = created
        .shards
        .iter()
        .filter(|s| s.replicas.contains(&d))
        .map(|s| s.index)
        .collect();
    assert_eq!(held_by_d.len(), 6, "8 shards x 3 copies over 4 nodes");
    // d crashes: its lease runs out. Noticed, but not replaced before the delay.
    nodes[3].stop_renewing();
    while meta.snapshot().await.unwrap().nodes.contains_key(&d) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(office.repair().await.unwrap(), 0);
    tokio::time::sleep(delay).await;
    // Three replicas a pass at most (max_moves), until none is on d.
    let mut passes = 0;
    loop {
        let map = meta.snapshot().await.unwrap();
        let left = map.streams["orders"]
            .value
            .shards
            .iter()
            .filter(|s| s.replicas.contains(&d))
            .count();
        assert_eq!(
            left,
            6usize.saturating_sub(3 * passes),
            "after {passes} passes"
        );
        if left == 0 {
            break;
        }
        assert_eq!(office.repair().await.unwrap(), 1, "one stream changed");
        passes += 1;
    }
    assert_eq!(passes, 2);
    let repaired = meta.snapshot().await.unwrap().streams["orders"]
        .value
        .clone();
    for (before, after) in created.shards.iter().zip(&repaired.shards) {
        assert_eq!(after.replicas.iter().collect::<BTreeSet<_>>().len(), 3);
        if held_by_d.contains(&before.index) {
            assert_eq!(
                after.epoch,
                before.epoch + 1,
                "a changed replica set gets a new epoch"
            );
            let kept: Vec<&NodeId> = before.replicas.iter().filter(|id| **id != d).collect();
            assert_eq!(
                after.replicas.iter().take(2).collect::<Vec<_>>(),
                kept,
                "survivors keep their order"
            );
        } else {
            assert_eq!(after, before, "a shard d did not hold is untouched");
        }
    }
    // c goes and comes back within the delay: nothing of it is moved.
    nodes[2].stop_renewing();
    let c = NodeId::new("c").unwrap();
    while meta.snapshot().await.unwrap().nodes.contains_key(&c) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(office.repair().await.unwrap(), 0);
    nodes.push(meta.register(node("c"), TTL).await.unwrap());
    tokio::time::sleep(delay).await;
    assert_eq!(office.repair().await.unwrap(), 0, "c is back");
    assert_eq!(
        meta.snapshot().await.unwrap().streams["orders"].value,
        repaired
    );
}

/// A node gone under one controller is replaced by the next once the delay has passed since
/// the first saw it gone, not since the next was elected (the time is in the store: a
/// controller replaced more often than the delay still repairs). A node back, or holding no
/// replica any more, leaves no time there. But when nobody watched for longer than an
/// election takes (the node might have come back and gone again meanwhile), the next
/// controller starts counting afresh.
async fn a_new_controller_goes_on_counting_a_gone_node<B: Backend>(meta: ClusterMeta<B>) {
    let mut nodes = register(&meta, &["a", "b", "c", "d", "e"]).await;
    let delay = Duration::from_millis(1500);
    // An election's gap here: the lease, 5 ticks and 2 more (5.7 s): room for the 1.5 s
    // delay and an election on a loaded machine.
    let lease = Duration::from_secs(5);
    let elect = |name: &str| {
        let name = NodeId::new(name).unwrap();
        let (meta, mut config) = (meta.clone(), config(delay, 8));
        config.lease_ttl = lease;
        async move { ControllerOffice::elect(meta, &name, config).await }
    };
    let gone = async |id: &NodeId| {
        while meta.snapshot().await.unwrap().nodes.contains_key(id) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let holding = async |id: &NodeId| {
        let map = meta.snapshot().await.unwrap();
        let shards = &map.streams["orders"].value.shards;
        shards.iter().filter(|s| s.replicas.contains(id)).count()
    };
    let mut first = elect("a").await.unwrap();
    first.create_stream("orders", 4).await.unwrap();
    let (c, d) = (NodeId::new("c").unwrap(), NodeId::new("d").unwrap());
    assert!(holding(&d).await > 0 && holding(&c).await > 0);
    nodes[3].stop_renewing();
    gone(&d).await;
    assert_eq!(
        first.repair().await.unwrap(),
        0,
        "noticed, not yet replaced"
    );
    let noticed = meta.gone_times().await.unwrap();
    assert_eq!(noticed.since.keys().collect::<Vec<_>>(), [&d]);
    assert!(noticed.watched.is_some());
    first.resign().await.unwrap();
    tokio::time::sleep(delay).await;
    let mut second = elect("b").await.unwrap();
    assert_eq!(
        second.repair().await.unwrap(),
        1,
        "the next controller's first pass replaces d's replicas"
    );
    assert_eq!(holding(&d).await, 0);
    assert_eq!(second.repair().await.unwrap(), 0);
    let left = meta.gone_times().await.unwrap().since;
    assert!(left.is_empty(), "d holds nothing any more: {left:?}");
    // c goes (noticed) and comes back: its time goes.
    nodes[2].stop_renewing();
    gone(&c).await;
    assert_eq!(second.repair().await.unwrap(), 0);
    assert!(meta.gone_times().await.unwrap().since.contains_key(&c));
    nodes[2] = meta.register(node("c"), TTL).await.unwrap();
    let left = meta.gone_times().await.unwrap().since;
    assert!(left.is_empty(), "c's registration ends its count: {left:?}");
    assert_eq!(second.repair().await.unwrap(), 0);
    let left = meta.gone_times().await.unwrap().since;
    assert!(left.is_empty(), "c is back: {left:?}");
    // c goes again, noticed; then no controller for longer than an election takes (the
    // lease, five ticks, two more) and the delay: the next one counts c from its own pass.
    nodes[2].stop_renewing();
    gone(&c).await;
    assert_eq!(second.repair().await.unwrap(), 0);
    second.resign().await.unwrap();
    tokio::time::sleep(lease + Duration::from_millis(700) + delay).await;
    let mut third = elect("a").await.unwrap();
    assert_eq!(
        third.repair().await.unwrap(),
        0,
        "c's time was not watched throughout: counted afresh"
    );
    assert!(holding(&c).await > 0);
    tokio::time::sleep(delay).await;
    assert_eq!(
        third.repair().await.unwrap(),
        1,
        "c replaced after the delay"
    );
    assert_eq!(holding(&c).await, 0);
}

async fn the_office_passes_on_and_requests_are_answered<B: Backend>(meta: ClusterMeta<B>) {
    let _nodes = register(&meta, &["a", "b", "c"]).await;
    let (to_a, from_a) = mpsc::channel(4);
    let (to_b, from_b) = mpsc::channel(4);
    let a = tokio::spawn(controller::run(
        meta.clone(),
        NodeId::new("a").unwrap(),
        config(Duration::from_secs(60), 8),
        from_a,
        (controller::NoProbe, std::future::pending()),
    ));
    while meta.controller().await.unwrap().is_none() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let b = tokio::spawn(controller::run(
        meta.clone(),
        NodeId::new("b").unwrap(),
        config(Duration::from_secs(60), 8),
        from_b,
        (controller::NoProbe, std::future::pending()),
    ));
    let create = |to: &mpsc::Sender<Request>, name: &str| {
        let (reply, answer) = oneshot::channel();
        let request = Request::CreateStream {
            name: name.into(),
            shard_count: 2,
            settings: StreamSettings::default(),
            reply,
        };
        // The channels have room: a request is queued at once.
        assert!(to.try_send(request).is_ok());
        answer
    };
    let first = within("a answers", create(&to_a, "one"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.uid, 1);
    // b is not the controller: its requests wait for its election. The caller of the
    // first gives up (it was told the request failed): it must not take effect.
    drop(create(&to_b, "abandoned"));
    let mut waiting = create(&to_b, "two");
    assert!(
        tokio::time::timeout(Duration::from_millis(500), &mut waiting)
            .await
            .is_err()
    );
    // a's process dies (its office is dropped, its candidacy revoked): b takes over.
    a.abort();
    let second = within("b answers once elected", waiting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.uid, 2, "the abandoned request took no uid");
    assert!(
        !meta
            .snapshot()
            .await
            .unwrap()
            .streams
            .contains_key("abandoned")
    );
    assert_eq!(
        meta.controller().await.unwrap(),
        Some(NodeId::new("b").unwrap())
    );
    drop(to_b);
    within("b's loop ends with its requests", b)
        .await
        .unwrap()
        .unwrap();
}

conformance!(
    streams_are_placed_and_refusals_write_nothing,
    too_few_nodes_place_nothing,
    a_gone_node_is_replaced_after_the_delay_and_not_before,
    a_new_controller_goes_on_counting_a_gone_node,
    the_office_passes_on_and_requests_are_answered,
);

/// A store that answers `Unavailable` while `down` is set (an etcd outage).
#[derive(Clone)]
struct Outage {
    inner: sluice_cluster::EmbeddedBackend,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Outage {
    fn check(&self) -> Result<(), sluice_cluster::MetaError> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(sluice_cluster::MetaError::Unavailable(
                "the store is down".into(),
            ));
        }
        Ok(())
    }
}

impl Backend for Outage {
    type Watch = sluice_cluster::EmbeddedWatch;
    async fn grant(
        &self,
        ttl: Duration,
    ) -> Result<sluice_cluster::LeaseId, sluice_cluster::MetaError> {
        self.check()?;
        self.inner.grant(ttl).await
    }
    async fn keep_alive(
        &self,
        lease: sluice_cluster::LeaseId,
    ) -> Result<bool, sluice_cluster::MetaError> {
        self.check()?;
        self.inner.keep_alive(lease).await
    }
    async fn revoke(
        &self,
        lease: sluice_cluster::LeaseId,
    ) -> Result<(), sluice_cluster::MetaError> {
        self.check()?;
        self.inner.revoke(lease).await
    }
    async fn range(
        &self,
        prefix: &str,
    ) -> Result<(Vec<sluice_cluster::Kv>, i64), sluice_cluster::MetaError> {
        self.check()?;
        self.inner.range(prefix).await
    }
    async fn get(
        &self,
        key: &str,
    ) -> Result<Option<sluice_cluster::Kv>, sluice_cluster::MetaError> {
        self.check()?;
        self.inner.get(key).await
    }
    async fn txn(
        &self,
        when: Vec<sluice_cluster::Compare>,
        then: Vec<sluice_cluster::Op>,
    ) -> Result<sluice_cluster::TxnOutcome, sluice_cluster::MetaError> {
        self.check()?;
        self.inner.txn(when, then).await
    }
    async fn watch(
        &self,
        prefix: &str,
        from: i64,
    ) -> Result<Self::Watch, sluice_cluster::MetaError> {
        self.check()?;
        self.inner.watch(prefix, from).await
    }
    async fn compact(&self, revision: i64) -> Result<(), sluice_cluster::MetaError> {
        self.check()?;
        self.inner.compact(revision).await
    }
}

/// The store goes away for longer than the controller's lease: the office is lost and
/// standing again fails while it is down; the controller keeps trying and serves again once
/// the store is back (it used to return with the outage's error, leaving no controller).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_outlasts_an_outage_of_the_store() {
    let store = Outage {
        inner: sluice_cluster::EmbeddedBackend::new(),
        down: Default::default(),
    };
    let meta = ClusterMeta::new(store.clone(), "test").unwrap();
    let _nodes = register(&meta, &["a", "b", "c"]).await;
    let (to_a, from_a) = mpsc::channel(4);
    let a = tokio::spawn(controller::run(
        meta.clone(),
        NodeId::new("a").unwrap(),
        config(Duration::from_secs(60), 8),
        from_a,
        (controller::NoProbe, std::future::pending()),
    ));
    while meta.controller().await.unwrap().is_none() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    store.down.store(true, std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(TTL * 2).await;
    assert!(!a.is_finished(), "the controller gave up during the outage");
    store.down.store(false, std::sync::atomic::Ordering::SeqCst);
    let (reply, answer) = oneshot::channel();
    to_a.send(Request::CreateStream {
        name: "after".into(),
        shard_count: 1,
        settings: StreamSettings::default(),
        reply,
    })
    .await
    .unwrap();
    // The registrations may have run out during the outage: what matters is an answer from
    // an elected controller (a stream, or a refusal for want of live nodes), not silence.
    let answered = within("the controller answers after the outage", answer)
        .await
        .unwrap();
    assert!(
        matches!(
            answered,
            Ok(_) | Err(ControllerError::Plan(PlanError::Placement(_)))
        ),
        "{answered:?}"
    );
    drop(to_a);
    within("run ends with its requests", a)
        .await
        .unwrap()
        .unwrap();
}
