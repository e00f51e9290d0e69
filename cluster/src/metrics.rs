//! A node's and its Raft groups' gauges through the `metrics` facade (`sluice serve`
//! exports them at `/metrics`): what each group running here reports of itself, sampled once
//! a second, and the node's totals. Every series is labelled with the node, so nodes sharing
//! a process (tests, embedders) keep theirs apart.
//!
//! A replica that stops running here keeps its series with `running` 0 and `leading` 0; its
//! other gauges keep their last value.

use crate::meta::Snapshot;
use crate::model::NodeId;
use crate::raft::RaftHost;
use crate::transport::GroupId;
use metrics::{Label, gauge};
use sluice_core::ShardId;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often the gauges are refreshed.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// Refreshes node `node`'s gauges from its groups (`host`) and the map until `stop`.
pub(crate) async fn export(
    node: NodeId,
    host: Arc<RaftHost>,
    map: watch::Receiver<Arc<Snapshot>>,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    let mut ticks = tokio::time::interval(SAMPLE_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut exported = BTreeSet::new();
    loop {
        tokio::select! {
            () = &mut stop => return,
            _ = ticks.tick() => {}
        }
        let snapshot = map.borrow().clone();
        exported = sample(&node, &host, &snapshot, exported);
    }
}

/// One sample: every running group's gauges and the node's; groups exported before and no
/// longer running are marked so. Returns the groups exported now.
fn sample(
    node: &NodeId,
    host: &RaftHost,
    map: &Snapshot,
    before: BTreeSet<GroupId>,
) -> BTreeSet<GroupId> {
    let names = GroupNames::of(map);
    let (mut leading, mut failed) = (0u32, 0u32);
    let mut running = BTreeSet::new();
    for id in host.groups() {
        let Some(group) = host.group(id) else {
            continue;
        };
        let metrics = group.raft.metrics().borrow().clone();
        let labels = names.labels(node, id);
        let leads = metrics.current_leader == Some(host.node());
        let stopped = metrics.running_state.is_err();
        leading += u32::from(leads && !stopped);
        failed += u32::from(stopped);
        gauge!("sluice_cluster_replica_running", labels.clone()).set(1.0);
        gauge!("sluice_cluster_replica_leading", labels.clone()).set(flag(leads && !stopped));
        gauge!("sluice_cluster_replica_failed", labels.clone()).set(flag(stopped));
        gauge!("sluice_cluster_replica_term", labels.clone()).set(metrics.current_term as f64);
        let last = metrics.last_log_index.unwrap_or(0);
        gauge!("sluice_cluster_replica_last_log_index", labels.clone()).set(last as f64);
        let applied = metrics.last_applied.map_or(0, |id| id.index);
        gauge!("sluice_cluster_replica_applied_index", labels.clone()).set(applied as f64);
        if let Some(age) = metrics.millis_since_quorum_ack {
            gauge!("sluice_cluster_replica_quorum_ack_age_ms", labels.clone()).set(age as f64);
        }
        // The leader's view of each follower: entries it still has to send or have matched.
        for (follower, matched) in metrics.replication.iter().flatten() {
            if *follower == host.node() {
                continue;
            }
            let lag = last.saturating_sub(matched.map_or(0, |id| id.index));
            let mut labels = labels.clone();
            labels.push(Label::new("follower", names.node(*follower)));
            gauge!("sluice_cluster_follower_lag_entries", labels).set(lag as f64);
        }
        running.insert(id);
    }
    for gone in before.difference(&running) {
        let labels = names.labels(node, *gone);
        gauge!("sluice_cluster_replica_running", labels.clone()).set(0.0);
        gauge!("sluice_cluster_replica_leading", labels).set(0.0);
    }
    let labels = vec![Label::new("node", node.to_string())];
    gauge!("sluice_cluster_node_replicas", labels.clone()).set(running.len() as f64);
    gauge!("sluice_cluster_node_leaders", labels.clone()).set(f64::from(leading));
    gauge!("sluice_cluster_node_failed_replicas", labels.clone()).set(f64::from(failed));
    gauge!("sluice_cluster_node_controller", labels.clone())
        .set(flag(map.controller.as_ref() == Some(node)));
    gauge!("sluice_cluster_nodes_registered", labels).set(map.nodes.len() as f64);
    running
}

fn flag(on: bool) -> f64 {
    if on { 1.0 } else { 0.0 }
}

/// The names a group's and a node's series go by, from the map.
struct GroupNames {
    streams: BTreeMap<u64, String>,
    nodes: BTreeMap<u64, String>,
}

impl GroupNames {
    fn of(map: &Snapshot) -> GroupNames {
        GroupNames {
            streams: map
                .streams
                .values()
                .map(|s| (s.value.uid, s.value.name.clone()))
                .collect(),
            nodes: map
                .nodes
                .keys()
                .map(|id| (id.raft_id(), id.to_string()))
                .collect(),
        }
    }

    /// A group's labels: the node, its stream's name (the uid while the map does not name
    /// it), its shard id.
    fn labels(&self, node: &NodeId, group: GroupId) -> Vec<Label> {
        let stream = self
            .streams
            .get(&group.stream_uid)
            .cloned()
            .unwrap_or_else(|| format!("uid-{}", group.stream_uid));
        vec![
            Label::new("node", node.to_string()),
            Label::new("stream", stream),
            Label::new("shard", ShardId::new(group.shard).to_string()),
        ]
    }

    /// A node by its Raft id (the number while the map does not list it).
    fn node(&self, raft_id: u64) -> String {
        self.nodes
            .get(&raft_id)
            .cloned()
            .unwrap_or_else(|| raft_id.to_string())
    }
}
