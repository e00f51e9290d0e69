//! Each node's side of the map: which shard replicas it must run. The reconciler reads the
//! map (a snapshot, then the watch) and tells the node's `ReplicaHost` to start, update and
//! stop replicas until what runs is what the map says. It never acts on an older epoch of a
//! shard than the one it runs.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

use crate::backend::Backend;
use crate::error::MetaError;
use crate::meta::{ClusterEvent, ClusterMeta, Snapshot};
use crate::model::{NodeId, NodeInfo, Revision, ShardPlacement, StreamPlacement, StreamStatus};
use crate::transport::GroupId;

/// What a node runs for the shard replicas it holds (the Raft groups, in the data plane).
/// A step that fails is not recorded as done: the reconciler tries it again.
pub trait ReplicaHost: Send {
    /// Runs this node's replica of `shard` of `stream`.
    fn start(
        &mut self,
        group: GroupId,
        stream: &StreamPlacement,
        shard: &ShardPlacement,
    ) -> impl Future<Output = Result<(), String>> + Send;
    /// The replica's set or epoch changed (a member replaced, a shard closed).
    fn update(
        &mut self,
        group: GroupId,
        stream: &StreamPlacement,
        shard: &ShardPlacement,
    ) -> impl Future<Output = Result<(), String>> + Send;
    /// This node no longer holds the replica; `remove_data` when its stream is being deleted
    /// or its shard expired (a replica moved away keeps its data until the new one has caught
    /// up, data plane).
    fn stop(
        &mut self,
        group: GroupId,
        remove_data: bool,
    ) -> impl Future<Output = Result<(), String>> + Send;
    /// The stream's settings as the map being applied gives them, for a replica that runs
    /// (told on every map: a host acts on what changed).
    fn configure(
        &mut self,
        group: GroupId,
        stream: &StreamPlacement,
    ) -> impl Future<Output = Result<(), String>> + Send {
        let _ = (group, stream);
        async { Ok(()) }
    }
    /// The live nodes as the map being applied lists them (their addresses), told before its
    /// steps.
    fn nodes(&mut self, nodes: &BTreeMap<NodeId, NodeInfo>) {
        let _ = nodes;
    }
    /// The replicas whose data this node holds, running or not (a previous run's included).
    fn kept(&mut self) -> impl Future<Output = Vec<GroupId>> + Send {
        async { Vec::new() }
    }
    /// Whether `group`'s committed membership no longer lists this node, so the data of the
    /// replica it kept after the map moved `shard` away is no longer anyone's copy (the new
    /// replica caught up and took its place). `false` when that cannot be told now.
    fn released(
        &mut self,
        group: GroupId,
        shard: &ShardPlacement,
    ) -> impl Future<Output = bool> + Send {
        let _ = (group, shard);
        async { false }
    }
    /// Removes the data of a replica that does not run here (its stream was deleted while
    /// this node was away, or the map moved it and its group released this node).
    fn discard(&mut self, group: GroupId) -> impl Future<Output = Result<(), String>> + Send {
        async move {
            let _ = group;
            Ok(())
        }
    }
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
    /// Remove the data of a replica that does not run (its stream is gone, or the map moved
    /// it and its group no longer lists this node).
    Discard(GroupId),
}

/// The replicas `node` must run according to `snapshot`: every shard naming it, of every
/// stream not being deleted, and the children a reshard under way placed (their groups
/// start, and elect, before their parents close, so puts routed to them find a leader).
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
        let pending = stream.resharding.iter().flat_map(|r| &r.children);
        for shard in stream.shards.iter().chain(pending) {
            if !shard.replicas.contains(node) {
                continue;
            }
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

/// Whether `group`'s data has no further use by `snapshot`: its stream is absent (deleted)
/// or being deleted, or its shard expired (every record past retention).
fn data_gone(snapshot: &Snapshot, group: GroupId) -> bool {
    stream_of(snapshot, group).is_none_or(|stream| {
        stream.status == StreamStatus::Deleting
            || stream
                .shards
                .iter()
                .any(|s| s.index == group.shard && s.expired)
    })
}

/// The stream `group` belongs to, if `snapshot` has it.
fn stream_of(snapshot: &Snapshot, group: GroupId) -> Option<&StreamPlacement> {
    (snapshot.streams.values().map(|s| &s.value)).find(|s| s.uid == group.stream_uid)
}

/// Where `snapshot` places shard `group` (a reshard's pending children included).
fn placed(snapshot: &Snapshot, group: GroupId) -> Option<&ShardPlacement> {
    let stream = stream_of(snapshot, group)?;
    let pending = stream.resharding.iter().flat_map(|r| &r.children);
    (stream.shards.iter().chain(pending)).find(|s| s.index == group.shard)
}

/// Brings one node's replicas in line with the map.
pub struct Reconciler<H: ReplicaHost> {
    node: NodeId,
    host: H,
    /// What runs: each replica's epoch.
    running: BTreeMap<GroupId, u64>,
    /// The revision of the newest map applied: an older one is never applied after it.
    applied: Revision,
    /// The steps of the last `apply` that failed.
    failures: Vec<(GroupId, String)>,
    /// The replicas the map moved away whose data waits for their group to let go of this
    /// node (`ReplicaHost::released`).
    waiting: Vec<GroupId>,
    last_error: Option<String>,
}

/// How often steps that failed are tried again.
const RETRY_FAILED: Duration = Duration::from_secs(2);
/// How often a replica moved away looks again whether its group let go of this node.
const RELEASE_CHECK: Duration = Duration::from_secs(10);

impl<H: ReplicaHost> Reconciler<H> {
    /// A reconciler for `node` running nothing yet.
    pub fn new(node: NodeId, host: H) -> Reconciler<H> {
        Reconciler {
            node,
            host,
            running: BTreeMap::new(),
            applied: 0,
            failures: Vec::new(),
            waiting: Vec::new(),
            last_error: None,
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
        self.failures.clear();
        self.host.nodes(&snapshot.nodes);
        let desired = desired(&self.node, snapshot);
        let mut actions = Vec::new();
        let gone: Vec<GroupId> = self
            .running
            .keys()
            .filter(|g| !desired.contains_key(g))
            .copied()
            .collect();
        for group in gone {
            // A stream being deleted or absent from the map (deleted), or a shard expired:
            // its data goes too.
            let remove_data = data_gone(snapshot, group);
            match self.host.stop(group, remove_data).await {
                Ok(()) => {
                    self.running.remove(&group);
                    actions.push(Action::Stop(group, remove_data));
                }
                Err(e) => self.failures.push((group, e)),
            }
        }
        for (group, (stream, shard)) in &desired {
            let done = match self.running.get(group) {
                None => self
                    .host
                    .start(*group, stream, shard)
                    .await
                    .map(|()| Action::Start(*group, shard.epoch)),
                Some(epoch) if *epoch < shard.epoch => {
                    // The same map may change the stream's settings too.
                    let updated = match self.host.update(*group, stream, shard).await {
                        Ok(()) => self.host.configure(*group, stream).await,
                        Err(e) => Err(e),
                    };
                    updated.map(|()| Action::Update(*group, shard.epoch))
                }
                Some(_) => {
                    if let Err(e) = self.host.configure(*group, stream).await {
                        self.failures.push((*group, e));
                    }
                    continue;
                }
            };
            match done {
                Ok(action) => {
                    self.running.insert(*group, shard.epoch);
                    actions.push(action);
                }
                Err(e) => self.failures.push((*group, e)),
            }
        }
        // After the starts: a slow group's answer about a replica moved away does not hold
        // up a new one (a reshard's children must elect before their parents close).
        self.discard_unneeded(snapshot, &desired, &mut actions)
            .await;
        actions
    }

    /// Removes the data of replicas held but not running whose stream is absent from the map
    /// or being deleted (deleted while this node was away), or whose shard expired, if the
    /// map gave their uid; and of replicas the map moved to other nodes once their group's
    /// committed membership no longer lists this node (until then they wait:
    /// [`Reconciler::recheck_waiting`]).
    async fn discard_unneeded(
        &mut self,
        snapshot: &Snapshot,
        desired: &BTreeMap<GroupId, (StreamPlacement, ShardPlacement)>,
        actions: &mut Vec<Action>,
    ) {
        self.waiting.clear();
        for group in self.host.kept().await {
            if self.running.contains_key(&group) || desired.contains_key(&group) {
                continue;
            }
            // A uid this map never gave (an etcd restored from an older backup, another
            // cluster's store) proves nothing about the replica: it is kept.
            if group.stream_uid >= snapshot.uid_next.value {
                continue;
            }
            if data_gone(snapshot, group) {
                self.discard(group, actions).await;
            } else {
                self.discard_if_released(snapshot, group, actions).await;
            }
        }
    }

    /// Discards the replica of `group` the map moved away if its group let go of this node;
    /// else it waits.
    async fn discard_if_released(
        &mut self,
        snapshot: &Snapshot,
        group: GroupId,
        actions: &mut Vec<Action>,
    ) {
        let Some(shard) = placed(snapshot, group) else {
            return;
        };
        if self.host.released(group, shard).await {
            self.discard(group, actions).await;
        } else {
            self.waiting.push(group);
        }
    }

    async fn discard(&mut self, group: GroupId, actions: &mut Vec<Action>) {
        match self.host.discard(group).await {
            Ok(()) => actions.push(Action::Discard(group)),
            Err(e) => self.failures.push((group, e)),
        }
    }

    /// Looks again whether the groups of the replicas waiting let go of this node, against
    /// `snapshot`, the map last applied (nothing changed since, or it would have been applied
    /// again); returns the discards.
    pub async fn recheck_waiting(&mut self, snapshot: &Snapshot) -> Vec<Action> {
        let mut actions = Vec::new();
        for group in std::mem::take(&mut self.waiting) {
            self.discard_if_released(snapshot, group, &mut actions)
                .await;
        }
        actions
    }

    /// The replicas the map moved away whose data waits for their group to let go of this
    /// node; looked at again every few seconds.
    pub fn waiting(&self) -> &[GroupId] {
        &self.waiting
    }

    /// The steps of the last `apply` that failed, with the host's reasons; they are tried
    /// again.
    pub fn failures(&self) -> &[(GroupId, String)] {
        &self.failures
    }

    /// What ended the last attempt to follow the map (the store failing, a value that does
    /// not decode), if anything did.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// Follows the map until `stop` resolves: a snapshot, then every change seen by a watch;
    /// after a watch error (compaction, a broken stream, the store failing) a new snapshot,
    /// after a pause that grows to 5 s while the errors go on. Steps that failed are tried
    /// again every 2 s, and the replicas moved away that wait for their groups are looked at
    /// again every 10 s. `stop` takes effect between the host's steps, never inside one.
    pub async fn run<B: Backend>(&mut self, meta: &ClusterMeta<B>, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        let mut pause = Duration::from_millis(200);
        loop {
            let Some(error) = self.follow(meta, &mut stop).await else {
                return;
            };
            self.last_error = Some(error.to_string());
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    }

    /// A snapshot applied, then each stream change; returns the error that ended it, or
    /// `None` when `stop` resolved.
    async fn follow<B: Backend, S: Future<Output = ()>>(
        &mut self,
        meta: &ClusterMeta<B>,
        stop: &mut std::pin::Pin<&mut S>,
    ) -> Option<MetaError> {
        let mut watch = None;
        let mut reread = true;
        // The map last applied, and when the failed steps and the replicas waiting are due
        // again (deadlines: events that change nothing do not put them off).
        let mut last = None;
        let (mut retry_at, mut recheck_at) = (None, None);
        loop {
            if reread {
                let snapshot = tokio::select! {
                    () = stop.as_mut() => return None,
                    snapshot = meta.snapshot() => snapshot,
                };
                let snapshot = match snapshot {
                    Ok(snapshot) => snapshot,
                    Err(e) => return Some(e),
                };
                self.apply(&snapshot).await;
                self.last_error = None;
                if watch.is_none() {
                    watch = match meta.watch(snapshot.revision + 1).await {
                        Ok(w) => Some(w),
                        Err(e) => return Some(e),
                    };
                }
                let now = Instant::now();
                retry_at = (!self.failures.is_empty()).then(|| now + RETRY_FAILED);
                recheck_at = (!self.waiting.is_empty()).then(|| now + RELEASE_CHECK);
                last = Some(snapshot);
            }
            let w = watch.as_mut().expect("made with the first snapshot");
            // Failed steps are tried again after a while even when nothing changes.
            let due = retry_at.into_iter().chain(recheck_at).min();
            let far = Instant::now() + Duration::from_secs(3600);
            let events = tokio::select! {
                () = stop.as_mut() => return None,
                events = tokio::time::timeout_at(due.unwrap_or(far), w.next()) => events,
            };
            reread = match events {
                Err(_elapsed) if retry_at.is_some_and(|at| at <= Instant::now()) => true,
                Err(_elapsed) => {
                    if let Some(snapshot) = &last {
                        self.recheck_waiting(snapshot).await;
                    }
                    recheck_at = (!self.waiting.is_empty()).then(|| Instant::now() + RELEASE_CHECK);
                    false
                }
                // Only the controller's stream entries say what runs where. The whole map is
                // read again (one range) rather than patched event by event.
                Ok(Ok(events)) => events.iter().any(|(_, e)| {
                    matches!(
                        e,
                        ClusterEvent::StreamChanged(_) | ClusterEvent::StreamRemoved(_)
                    )
                }),
                Ok(Err(e)) => return Some(e),
            };
        }
    }
}
