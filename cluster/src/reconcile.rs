//! Each node's side of the map: which shard replicas it must run. The reconciler reads the
//! map (a snapshot, then the watch) and tells the node's `ReplicaHost` to start, update and
//! stop replicas until what runs is what the map says. It never acts on an older epoch of a
//! shard than the one it runs.

use std::collections::BTreeMap;
use std::future::Future;

use crate::backend::Backend;
use crate::error::MetaError;
use crate::meta::{ClusterEvent, ClusterMeta, Snapshot};
use crate::model::{NodeId, Revision, ShardPlacement, StreamPlacement, StreamStatus};
use crate::transport::GroupId;

/// What a node runs for the shard replicas it holds (the Raft groups, in the data plane).
pub trait ReplicaHost: Send {
    /// Runs this node's replica of `shard` of `stream`.
    fn start(
        &mut self,
        group: GroupId,
        stream: &StreamPlacement,
        shard: &ShardPlacement,
    ) -> impl Future<Output = ()> + Send;
    /// The replica's set or epoch changed (a member replaced, a shard closed).
    fn update(
        &mut self,
        group: GroupId,
        stream: &StreamPlacement,
        shard: &ShardPlacement,
    ) -> impl Future<Output = ()> + Send;
    /// This node no longer holds the replica; `remove_data` when its stream is being deleted
    /// (a replica moved away keeps its data until the new one has caught up, data plane).
    fn stop(&mut self, group: GroupId, remove_data: bool) -> impl Future<Output = ()> + Send;
}

/// One step of bringing a node in line with the map.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    /// Start a replica.
    Start(GroupId, u64),
    /// Update a running replica to this epoch.
    Update(GroupId, u64),
    /// Stop a replica (`true`: remove its data).
    Stop(GroupId, bool),
}

/// The replicas `node` must run according to `snapshot`: every shard naming it, of every
/// stream not being deleted.
pub fn desired(
    node: &NodeId,
    snapshot: &Snapshot,
) -> BTreeMap<GroupId, (StreamPlacement, ShardPlacement)> {
    let mut out = BTreeMap::new();
    for stream in snapshot.streams.values() {
        let stream = &stream.value;
        if stream.status == StreamStatus::Deleting {
            continue;
        }
        for shard in stream.shards.iter().filter(|s| s.replicas.contains(node)) {
            out.insert(
                GroupId {
                    stream_uid: stream.uid,
                    shard: shard.index,
                },
                (stream.clone(), shard.clone()),
            );
        }
    }
    out
}

/// Brings one node's replicas in line with the map.
pub struct Reconciler<H: ReplicaHost> {
    node: NodeId,
    host: H,
    /// What runs: each replica's epoch.
    running: BTreeMap<GroupId, u64>,
    /// The revision of the newest map applied: an older one is never applied after it.
    applied: Revision,
}

impl<H: ReplicaHost> Reconciler<H> {
    /// A reconciler for `node` running nothing yet.
    pub fn new(node: NodeId, host: H) -> Reconciler<H> {
        Reconciler {
            node,
            host,
            running: BTreeMap::new(),
            applied: 0,
        }
    }

    /// The host it drives.
    pub fn host(&self) -> &H {
        &self.host
    }

    /// What runs, with each replica's epoch.
    pub fn running(&self) -> &BTreeMap<GroupId, u64> {
        &self.running
    }

    /// Starts, updates and stops replicas until what runs is what `snapshot` says; returns
    /// the actions taken, in order. A map older than one already applied changes nothing, and
    /// a replica the map shows at an older epoch than the one running is left as it is: a
    /// stale read never moves a replica back.
    pub async fn apply(&mut self, snapshot: &Snapshot) -> Vec<Action> {
        if snapshot.revision < self.applied {
            return Vec::new();
        }
        self.applied = snapshot.revision;
        let desired = desired(&self.node, snapshot);
        let deleting: Vec<u64> = snapshot
            .streams
            .values()
            .filter(|s| s.value.status == StreamStatus::Deleting)
            .map(|s| s.value.uid)
            .collect();
        let mut actions = Vec::new();
        let gone: Vec<GroupId> = self
            .running
            .keys()
            .filter(|g| !desired.contains_key(g))
            .copied()
            .collect();
        for group in gone {
            // A stream absent from the map was deleted: its data goes too.
            let stream_listed = snapshot
                .streams
                .values()
                .any(|s| s.value.uid == group.stream_uid);
            let remove_data = deleting.contains(&group.stream_uid) || !stream_listed;
            self.host.stop(group, remove_data).await;
            self.running.remove(&group);
            actions.push(Action::Stop(group, remove_data));
        }
        for (group, (stream, shard)) in &desired {
            match self.running.get(group) {
                None => {
                    self.host.start(*group, stream, shard).await;
                    actions.push(Action::Start(*group, shard.epoch));
                }
                Some(epoch) if *epoch < shard.epoch => {
                    self.host.update(*group, stream, shard).await;
                    actions.push(Action::Update(*group, shard.epoch));
                }
                Some(_) => continue,
            }
            self.running.insert(*group, shard.epoch);
        }
        actions
    }

    /// Follows the map until `stop` resolves: a snapshot, then every change seen by a watch;
    /// after a watch error (compaction, a broken stream) a new snapshot. Store failures are
    /// retried after a pause; the replicas keep running meanwhile.
    pub async fn run<B: Backend>(&mut self, meta: &ClusterMeta<B>, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => return,
                _ = self.follow(meta) => {}
            }
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(std::time::Duration::from_millis(200)) => {}
            }
        }
    }

    /// A snapshot applied, then each stream change; returns the error that ended it.
    async fn follow<B: Backend>(&mut self, meta: &ClusterMeta<B>) -> MetaError {
        let followed: Result<std::convert::Infallible, MetaError> = async {
            let snapshot = meta.snapshot().await?;
            self.apply(&snapshot).await;
            let mut watch = meta.watch(snapshot.revision + 1).await?;
            loop {
                let events = watch.next().await?;
                // Only the controller's stream entries say what runs where. The whole map is
                // read again (one range) rather than patched event by event.
                let streams_changed = events.iter().any(|(_, e)| {
                    matches!(
                        e,
                        ClusterEvent::StreamChanged(_) | ClusterEvent::StreamRemoved(_)
                    )
                });
                if streams_changed {
                    let snapshot = meta.snapshot().await?;
                    self.apply(&snapshot).await;
                }
            }
        }
        .await;
        match followed {
            Err(e) => e,
            Ok(never) => match never {},
        }
    }
}
