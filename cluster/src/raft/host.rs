//! The reconciler's `ReplicaHost` over shard groups: a node starts the group of every replica
//! the map gives it, the replicas of a new shard form the group together, and each group's
//! leader brings its membership in line with the map's replica set.
//!
//! - **Forming a group.** Every replica of a shard's first replica set (epoch 1) initializes
//!   its group with that set; openraft takes the same initial membership from any of them, and
//!   the first elected leader's log holds it. A replica started at a later epoch (a
//!   replacement) never initializes: it waits for the leader to add it.
//! - **Membership follows the map.** A steward task per group keeps the replica set the map
//!   last gave; whenever this node leads and the group differs, it makes one change a round:
//!   a member's new address, new members as learners (they catch up from the log; nothing
//!   waits on them), the set as the voters once the learners are close to the leader's end,
//!   then learners the map no longer names removed. Any survivor that leads does it, so a
//!   leader change in between loses nothing.

use super::{ShardGroup, start_group, stop_group};
use crate::model::{NodeId, NodeInfo, ShardPlacement, StreamPlacement};
use crate::raft::{RaftHost, ShardClient};
use crate::reconcile::ReplicaHost;
use crate::transport::{GroupId, Peers};
use openraft::{BasicNode, ChangeMembers, Raft, RaftMetrics};
use sluice_core::Engine;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The replica set a shard is created with.
const FIRST_EPOCH: u64 = 1;
/// How long the reconciler waits for a group to say whether it let go of this node.
const RELEASE_ASK: Duration = Duration::from_secs(2);
/// How often a steward looks again without a new replica set.
const STEWARD_EVERY: Duration = Duration::from_millis(500);

/// A group's members: Raft node id to its peer address.
type Members = BTreeMap<u64, BasicNode>;
/// A replica set as the map gives it: Raft node id to its peer address, `None` for a node the
/// map does not list as live (its address is then the one the group already has).
type Wanted = BTreeMap<u64, Option<BasicNode>>;

/// Runs a node's shard groups as the map gives them (the reconciler's host).
pub struct GroupHost {
    engine: Engine,
    peers: Peers,
    host: Arc<RaftHost>,
    /// The retention each running replica was given (its stream's).
    retention_ms: HashMap<GroupId, u64>,
    nodes: BTreeMap<NodeId, NodeInfo>,
    stewards: HashMap<GroupId, Steward>,
}

struct Steward {
    members: watch::Sender<Wanted>,
    task: JoinHandle<()>,
}

impl GroupHost {
    /// The host of the node `host` answers for; groups keep their records for their
    /// stream's retention once committed.
    pub fn new(engine: Engine, peers: Peers, host: Arc<RaftHost>) -> GroupHost {
        GroupHost {
            engine,
            peers,
            host,
            retention_ms: HashMap::new(),
            nodes: BTreeMap::new(),
            stewards: HashMap::new(),
        }
    }

    /// The node's running groups.
    pub fn raft_host(&self) -> &Arc<RaftHost> {
        &self.host
    }

    /// The members a replica set names, with the addresses the map gives.
    fn wanted(&self, shard: &ShardPlacement) -> Wanted {
        shard
            .replicas
            .iter()
            .map(|id| {
                let node = self.nodes.get(id);
                (id.raft_id(), node.map(|n| BasicNode::new(&n.peer_address)))
            })
            .collect()
    }
}

impl ReplicaHost for GroupHost {
    async fn start(
        &mut self,
        group: GroupId,
        stream: &StreamPlacement,
        shard: &ShardPlacement,
    ) -> Result<(), String> {
        let wanted = self.wanted(shard);
        let retention_ms = stream.settings.retention_ms();
        // Checked before anything starts: a failed start leaves nothing running, and the
        // reconciler's next attempt starts afresh.
        let first_set = if shard.epoch == FIRST_EPOCH {
            let members: Option<Members> = wanted
                .iter()
                .map(|(id, node)| Some((*id, node.clone()?)))
                .collect();
            Some(members.ok_or("a node of the first replica set is not registered")?)
        } else {
            None
        };
        let running = start_group(&self.engine, &self.peers, &self.host, group, retention_ms)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(members) = first_set
            && let Err(e) = form(&running, members).await
        {
            let _ = stop_group(&self.engine, &self.host, group, false).await;
            return Err(e);
        }
        self.retention_ms.insert(group, retention_ms);
        let (sender, receiver) = watch::channel(wanted);
        let task = tokio::spawn(steward(running.raft, receiver));
        if let Some(old) = self.stewards.insert(
            group,
            Steward {
                members: sender,
                task,
            },
        ) {
            old.task.abort();
        }
        Ok(())
    }

    async fn update(
        &mut self,
        group: GroupId,
        _stream: &StreamPlacement,
        shard: &ShardPlacement,
    ) -> Result<(), String> {
        let wanted = self.wanted(shard);
        let steward = self
            .stewards
            .get(&group)
            .ok_or_else(|| format!("group {group} does not run here"))?;
        steward.members.send_replace(wanted);
        Ok(())
    }

    async fn configure(&mut self, group: GroupId, stream: &StreamPlacement) -> Result<(), String> {
        let wanted = stream.settings.retention_ms();
        if self.retention_ms.get(&group) == Some(&wanted) {
            return Ok(());
        }
        let running = self
            .host
            .group(group)
            .ok_or_else(|| format!("group {group} does not run here"))?;
        running
            .replica
            .set_retention_ms(wanted)
            .await
            .map_err(|e| format!("group {group}'s retention: {e}"))?;
        self.retention_ms.insert(group, wanted);
        Ok(())
    }

    async fn stop(&mut self, group: GroupId, remove_data: bool) -> Result<(), String> {
        self.retention_ms.remove(&group);
        if let Some(steward) = self.stewards.remove(&group) {
            steward.task.abort();
        }
        stop_group(&self.engine, &self.host, group, remove_data)
            .await
            .map_err(|e| e.to_string())
    }

    fn nodes(&mut self, nodes: &BTreeMap<NodeId, NodeInfo>) {
        self.nodes.clone_from(nodes);
    }

    async fn kept(&mut self) -> Vec<GroupId> {
        match self.engine.replicas_on_disk() {
            Ok(ids) => ids
                .into_iter()
                .map(|id| GroupId {
                    stream_uid: id.stream_uid,
                    shard: id.shard,
                })
                .collect(),
            Err(e) => {
                eprintln!("sluice cluster: listing the replicas on disk: {e}");
                Vec::new()
            }
        }
    }

    async fn released(&mut self, group: GroupId, shard: &ShardPlacement) -> bool {
        let replicas: Vec<(u64, String)> = (shard.replicas.iter())
            .filter_map(|id| Some((id.raft_id(), self.nodes.get(id)?.peer_address.clone())))
            .collect();
        let client = ShardClient::new(self.host.clone(), self.peers.clone());
        // Bounded: the reconciler asks about each replica in turn, and a group that cannot
        // answer now is asked again later.
        let asked = tokio::time::timeout(RELEASE_ASK, client.members(group, &replicas)).await;
        asked.is_ok_and(|members| members.is_ok_and(|m| !m.contains(&self.host.node())))
    }

    async fn discard(&mut self, group: GroupId) -> Result<(), String> {
        self.engine
            .discard_replica(super::replica_id(group))
            .await
            .map_err(|e| e.to_string())
    }
}

/// Initializes a new shard's group with its first replica set, unless it already formed (this
/// replica restarted, or another replica's initialization reached it first).
async fn form(running: &ShardGroup, members: Members) -> Result<(), String> {
    let formed = running
        .raft
        .is_initialized()
        .await
        .map_err(|e| e.to_string())?;
    if formed {
        return Ok(());
    }
    match running.raft.initialize(members).await {
        Ok(()) => Ok(()),
        Err(openraft::error::RaftError::APIError(
            openraft::error::InitializeError::NotAllowed(_),
        )) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

/// While this node leads, brings the group's membership to the replica set the map last gave,
/// one change a round.
async fn steward(raft: Raft<super::ShardRaft>, mut members: watch::Receiver<Wanted>) {
    loop {
        let wanted = members.borrow_and_update().clone();
        let metrics = raft.metrics().borrow().clone();
        if metrics.state.is_leader() {
            // A change that fails (leadership lost, no quorum) is tried again next round.
            let _ = converge(&raft, &metrics, &wanted).await;
        }
        tokio::select! {
            changed = members.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = tokio::time::sleep(STEWARD_EVERY) => {}
        }
    }
}

/// How long one membership change may take (both steps of joint consensus).
const CHANGE_WAIT: Duration = Duration::from_secs(10);

/// A learner this close to the leader's last entry is caught up enough to vote.
const CAUGHT_UP_ENTRIES: u64 = 64;

/// One membership change toward `wanted`, in this order: members the map gives a new address
/// get it; members new to the group join as learners (they catch up from the log, nothing
/// waits for them); once every new member is within `CAUGHT_UP_ENTRIES` of the leader, the set
/// becomes the voters (those it drops leave the group); learners the map no longer names go.
async fn converge(
    raft: &Raft<super::ShardRaft>,
    metrics: &RaftMetrics<u64, BasicNode>,
    wanted: &Wanted,
) -> Result<(), String> {
    let membership = metrics.membership_config.membership();
    let nodes: Members = membership.nodes().map(|(id, n)| (*id, n.clone())).collect();
    // Bounded: a leader cut off from its quorum would wait for ever, and the steward must
    // stay free to take the next map.
    let change = |changes: ChangeMembers<u64, BasicNode>, retain| async move {
        let changed = raft.change_membership(changes, retain);
        match tokio::time::timeout(CHANGE_WAIT, changed).await {
            Ok(changed) => changed.map(|_| ()).map_err(|e| e.to_string()),
            Err(_) => Err(format!("no membership change within {CHANGE_WAIT:?}")),
        }
    };
    let moved: Members = wanted
        .iter()
        .filter_map(|(id, node)| Some((*id, node.clone()?)))
        .filter(|(id, node)| nodes.get(id).is_some_and(|old| old != node))
        .collect();
    if !moved.is_empty() {
        return change(ChangeMembers::SetNodes(moved), true).await;
    }
    let new: Members = wanted
        .iter()
        .filter(|(id, _)| !nodes.contains_key(id))
        .filter_map(|(id, node)| Some((*id, node.clone()?)))
        .collect();
    if !new.is_empty() {
        return change(ChangeMembers::AddNodes(new), true).await;
    }
    let voters: BTreeSet<u64> = membership.voter_ids().collect();
    let wanted_ids: BTreeSet<u64> = wanted.keys().copied().collect();
    if wanted_ids.iter().any(|id| !nodes.contains_key(id)) {
        // A new member whose address the map does not give (gone again): wait for it.
        return Ok(());
    }
    if voters != wanted_ids {
        let last = metrics.last_log_index.unwrap_or(0);
        let matched = |id: &u64| {
            let replication = metrics.replication.as_ref()?;
            Some(replication.get(id)?.as_ref()?.index)
        };
        let caught_up = wanted_ids
            .difference(&voters)
            .all(|id| matched(id).is_some_and(|m| m + CAUGHT_UP_ENTRIES >= last));
        if caught_up {
            return change(ChangeMembers::ReplaceAllVoters(wanted_ids), false).await;
        }
        return Ok(());
    }
    let stale: BTreeSet<u64> = membership
        .learner_ids()
        .filter(|id| !wanted_ids.contains(id))
        .collect();
    if !stale.is_empty() {
        return change(ChangeMembers::RemoveNodes(stale), true).await;
    }
    Ok(())
}
