//! What `sluice cluster status` shows: the nodes, the controller, every stream's shards with
//! their replicas, and for each replica running on a live node its role, term, log end and
//! how far it applied (its lag behind the leader's log end). The node asked reads the map and asks every live node for
//! the groups it runs (one call each, in parallel, 2 s at most); a node that does not answer
//! is listed as such.

use crate::model::{NodeId, StreamStatus};
use crate::raft::RaftHost;
use crate::transport::GroupId;
use serde::{Deserialize, Serialize};

/// The cluster as one node sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// The node that answered.
    pub asked: NodeId,
    /// The elected controller, if any.
    pub controller: Option<NodeId>,
    /// The map's revision.
    pub revision: i64,
    /// The live nodes.
    pub nodes: Vec<NodeReport>,
    /// Every stream of the map.
    pub streams: Vec<StreamReport>,
}

/// A live node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeReport {
    /// Its id.
    pub id: NodeId,
    /// Its peer address.
    pub peer_address: String,
    /// Its Kinesis endpoint.
    pub client_endpoint: String,
    /// Its failure domain.
    pub failure_domain: Option<String>,
    /// Whether it answered the status call (its groups are unknown otherwise).
    pub answered: bool,
}

/// A stream and its shards.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamReport {
    /// Its name.
    pub name: String,
    /// Its uid.
    pub uid: u64,
    /// Its status.
    pub status: StreamStatus,
    /// Its shards.
    pub shards: Vec<ShardReport>,
}

/// A shard: its replica set and what its running replicas say.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardReport {
    /// Its index.
    pub index: u32,
    /// The map's replica set and its epoch.
    pub replicas: Vec<NodeId>,
    /// The replica set's epoch.
    pub epoch: u64,
    /// The leader the running replicas name (the highest term's), if any.
    pub leader: Option<NodeId>,
    /// Each running replica, by node.
    pub running: Vec<(NodeId, ReplicaReport)>,
}

/// One running replica of a shard's group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaReport {
    /// The group.
    pub stream_uid: u64,
    /// The shard.
    pub shard: u32,
    /// Its term.
    pub term: u64,
    /// The leader it follows (a Raft node id), if it knows one.
    pub leader: Option<u64>,
    /// Its log's last entry index.
    pub last_log_index: Option<u64>,
    /// The last entry it applied (its records are readable up to it).
    pub applied: Option<u64>,
    /// Why the group stopped on this node, if it did (its storage failed, or refused what
    /// its leader sent): it serves nothing until the node restarts it.
    #[serde(default)]
    pub failed: Option<String>,
}

impl ShardReport {
    /// How many entries `node`'s replica has yet to apply to reach the leader's log end
    /// (its own log may be short of it); `None` without a leader's report or that replica's.
    pub fn lag(&self, node: &NodeId) -> Option<u64> {
        let report = |id: &NodeId| self.running.iter().find(|(n, _)| n == id).map(|(_, r)| r);
        let leader_end = report(self.leader.as_ref()?)?.last_log_index.unwrap_or(0);
        Some(leader_end.saturating_sub(report(node)?.applied.unwrap_or(0)))
    }
}

/// The groups `host` runs, as reports.
pub(crate) fn local_reports(host: &RaftHost) -> Vec<ReplicaReport> {
    let mut reports: Vec<ReplicaReport> = host
        .groups()
        .into_iter()
        .filter_map(|group| {
            let running = host.group(group)?;
            let metrics = running.raft.metrics().borrow().clone();
            Some(ReplicaReport {
                stream_uid: group.stream_uid,
                shard: group.shard,
                term: metrics.current_term,
                leader: metrics.current_leader,
                last_log_index: metrics.last_log_index,
                applied: metrics.last_applied.map(|id| id.index),
                failed: metrics
                    .running_state
                    .as_ref()
                    .err()
                    .map(ToString::to_string),
            })
        })
        .collect();
    reports.sort_by_key(|r| (r.stream_uid, r.shard));
    reports
}

impl ReplicaReport {
    /// The group it belongs to.
    pub fn group(&self) -> GroupId {
        GroupId {
            stream_uid: self.stream_uid,
            shard: self.shard,
        }
    }
}

impl ClusterStatus {
    /// A table for people: the nodes, then one line per shard.
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let controller = self.controller.as_ref().map_or("none", NodeId::as_str);
        let _ = writeln!(
            out,
            "asked {}; controller {controller}; map revision {}",
            self.asked, self.revision
        );
        let _ = writeln!(out, "\nNODE  PEER  ENDPOINT  DOMAIN  ANSWERED");
        for node in &self.nodes {
            let _ = writeln!(
                out,
                "{}  {}  {}  {}  {}",
                node.id,
                node.peer_address,
                node.client_endpoint,
                node.failure_domain.as_deref().unwrap_or("-"),
                if node.answered { "yes" } else { "no" }
            );
        }
        let _ = writeln!(
            out,
            "\nSTREAM  STATUS  SHARD  EPOCH  LEADER  REPLICAS (node:term/last/applied, lag behind the leader's last)"
        );
        for stream in &self.streams {
            for shard in &stream.shards {
                let replicas: Vec<String> = shard
                    .replicas
                    .iter()
                    .map(
                        |id| match shard.running.iter().find(|(node, _)| node == id) {
                            Some((_, r)) => format!(
                                "{id}:{}/{}/{} lag {}{}",
                                r.term,
                                r.last_log_index.map_or("-".into(), |i| i.to_string()),
                                r.applied.map_or("-".into(), |i| i.to_string()),
                                shard.lag(id).map_or("?".into(), |l| l.to_string()),
                                r.failed
                                    .as_ref()
                                    .map_or(String::new(), |why| format!(" FAILED: {why}"))
                            ),
                            None => format!("{id}:not running"),
                        },
                    )
                    .collect();
                let _ = writeln!(
                    out,
                    "{}  {:?}  {}  {}  {}  {}",
                    stream.name,
                    stream.status,
                    shard.index,
                    shard.epoch,
                    shard.leader.as_ref().map_or("none", NodeId::as_str),
                    replicas.join(" ")
                );
            }
        }
        out
    }
}
