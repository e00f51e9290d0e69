//! A node's and its Raft groups' gauges through the `metrics` facade (`sluice serve`
//! exports them at `/metrics`): what each group running here reports of itself, sampled once
//! a second, and the node's totals. Every series is labelled with the node, so nodes sharing
//! a process (tests, embedders) keep theirs apart.
//!
//! A replica that stops running here (or a node that stops) keeps its series with `running`,
//! `leading` and `failed` 0 and its leader-only series 0; its other gauges keep their last value. A
//! series is zeroed under the labels it was set with, even once the map no longer names its
//! stream.

use crate::meta::Snapshot;
use crate::model::NodeId;
use crate::raft::RaftHost;
use crate::transport::GroupId;
use metrics::{Label, gauge};
use sluice_core::ShardId;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often the gauges are refreshed.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// What was exported for one group: the labels its series go by (kept, so a series is
/// zeroed under the labels it was set with, whatever the map says by then), and those of
/// the leader-only series set last.
#[derive(Clone)]
struct Exported {
    labels: Vec<Label>,
    followers: Vec<Vec<Label>>,
    quorum_age: bool,
}

/// Refreshes node `node`'s gauges from its groups (`host`) and the map until `stop`; then
/// marks every replica it exported as no longer running, and the node's totals 0.
pub(crate) async fn export(
    node: NodeId,
    host: Arc<RaftHost>,
    map: watch::Receiver<Arc<Snapshot>>,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    let mut ticks = tokio::time::interval(SAMPLE_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut exported = BTreeMap::new();
    loop {
        tokio::select! {
            () = &mut stop => break,
            _ = ticks.tick() => {}
        }
        let snapshot = map.borrow().clone();
        exported = sample(&node, &host, &snapshot, exported);
    }
    for gone in exported.values() {
        stopped(gone);
    }
    let labels = vec![Label::new("node", node.to_string())];
    for name in [
        "sluice_cluster_node_replicas",
        "sluice_cluster_node_leaders",
        "sluice_cluster_node_failed_replicas",
        "sluice_cluster_node_controller",
        "sluice_cluster_nodes_registered",
    ] {
        gauge!(name, labels.clone()).set(0.0);
    }
}

/// One sample: every running group's gauges and the node's; groups exported before and no
/// longer running are marked so (first, and not under labels a running group now uses: a
/// stream deleted and made again under its name). Returns what was exported now.
fn sample(
    node: &NodeId,
    host: &RaftHost,
    map: &Snapshot,
    mut before: BTreeMap<GroupId, Exported>,
) -> BTreeMap<GroupId, Exported> {
    let names = GroupNames::of(map);
    let running: Vec<(GroupId, Vec<Label>, Option<Exported>)> = host
        .groups()
        .into_iter()
        .map(|id| {
            let previous = before.remove(&id);
            let labels = match (names.labels(node, id), &previous) {
                // Not in this node's map (yet, or any more): the labels it had.
                (None, Some(previous)) => previous.labels.clone(),
                (None, None) => names.unnamed(node, id),
                (Some(labels), _) => labels,
            };
            (id, labels, previous)
        })
        .collect();
    let relabelled = running
        .iter()
        .filter_map(|(_, labels, previous)| previous.as_ref().filter(|p| p.labels != *labels));
    for gone in before.values().chain(relabelled) {
        if !running.iter().any(|(_, labels, _)| *labels == gone.labels) {
            stopped(gone);
        }
    }
    let (mut leading, mut failed) = (0u32, 0u32);
    let mut now = BTreeMap::new();
    for (id, labels, previous) in running {
        let Some(group) = host.group(id) else {
            continue;
        };
        let metrics = group.raft.metrics().borrow().clone();
        let leads = metrics.current_leader == Some(host.node()) && metrics.running_state.is_ok();
        let stopped_here = metrics.running_state.is_err();
        leading += u32::from(leads);
        failed += u32::from(stopped_here);
        gauge!("sluice_cluster_replica_running", labels.clone()).set(1.0);
        gauge!("sluice_cluster_replica_leading", labels.clone()).set(flag(leads));
        gauge!("sluice_cluster_replica_failed", labels.clone()).set(flag(stopped_here));
        gauge!("sluice_cluster_replica_term", labels.clone()).set(metrics.current_term as f64);
        let last = metrics.last_log_index.unwrap_or(0);
        gauge!("sluice_cluster_replica_last_log_index", labels.clone()).set(last as f64);
        let applied = metrics.last_applied.map_or(0, |id| id.index);
        gauge!("sluice_cluster_replica_applied_index", labels.clone()).set(applied as f64);
        let purged = metrics.purged.map_or(0, |id| id.index);
        gauge!("sluice_cluster_replica_purged_index", labels.clone()).set(purged as f64);
        let exported = leader_gauges(&names, &labels, host.node(), &metrics, previous);
        now.insert(id, exported);
    }
    let labels = vec![Label::new("node", node.to_string())];
    gauge!("sluice_cluster_node_replicas", labels.clone()).set(now.len() as f64);
    gauge!("sluice_cluster_node_leaders", labels.clone()).set(f64::from(leading));
    gauge!("sluice_cluster_node_failed_replicas", labels.clone()).set(f64::from(failed));
    gauge!("sluice_cluster_node_controller", labels.clone())
        .set(flag(map.controller.as_ref() == Some(node)));
    gauge!("sluice_cluster_nodes_registered", labels).set(map.nodes.len() as f64);
    now
}

/// A leader's own series (the quorum's last acknowledgement, each follower's lag); the ones
/// set before and not now (leadership lost, a follower gone) read 0. Returns what is set.
fn leader_gauges(
    names: &GroupNames,
    labels: &[Label],
    me: u64,
    metrics: &openraft::RaftMetrics<u64, openraft::BasicNode>,
    previous: Option<Exported>,
) -> Exported {
    let last = metrics.last_log_index.unwrap_or(0);
    let mut followers = Vec::new();
    // The leader's view of each follower: entries it still has to send or have matched.
    for (follower, matched) in metrics.replication.iter().flatten() {
        if *follower == me {
            continue;
        }
        let lag = last.saturating_sub(matched.map_or(0, |id| id.index));
        let mut series = labels.to_vec();
        series.push(Label::new("follower", names.node(*follower)));
        gauge!("sluice_cluster_follower_lag_entries", series.clone()).set(lag as f64);
        followers.push(series);
    }
    let age = metrics.millis_since_quorum_ack;
    if let Some(age) = age {
        gauge!("sluice_cluster_replica_quorum_ack_age_ms", labels.to_vec()).set(age as f64);
    }
    if let Some(previous) = previous {
        for series in previous.followers.iter().filter(|s| !followers.contains(s)) {
            gauge!("sluice_cluster_follower_lag_entries", series.clone()).set(0.0);
        }
        if previous.quorum_age && age.is_none() {
            gauge!("sluice_cluster_replica_quorum_ack_age_ms", previous.labels).set(0.0);
        }
    }
    Exported {
        labels: labels.to_vec(),
        followers,
        quorum_age: age.is_some(),
    }
}

/// Marks a replica no longer running here: running, leading and failed 0, its leader-only
/// series 0.
fn stopped(exported: &Exported) {
    let labels = exported.labels.clone();
    gauge!("sluice_cluster_replica_running", labels.clone()).set(0.0);
    gauge!("sluice_cluster_replica_leading", labels.clone()).set(0.0);
    gauge!("sluice_cluster_replica_failed", labels.clone()).set(0.0);
    if exported.quorum_age {
        gauge!("sluice_cluster_replica_quorum_ack_age_ms", labels).set(0.0);
    }
    for series in &exported.followers {
        gauge!("sluice_cluster_follower_lag_entries", series.clone()).set(0.0);
    }
}

fn flag(on: bool) -> f64 {
    if on { 1.0 } else { 0.0 }
}

/// The names a group's and a node's series go by, from the map.
struct GroupNames {
    streams: BTreeMap<u64, String>,
    /// Every node the map names, live or only in a replica set (a follower whose
    /// registration lapsed keeps its name).
    nodes: BTreeMap<u64, String>,
}

impl GroupNames {
    fn of(map: &Snapshot) -> GroupNames {
        let placed = map.streams.values().flat_map(|s| {
            s.value
                .shards
                .iter()
                .flat_map(|shard| shard.replicas.iter())
        });
        GroupNames {
            streams: map
                .streams
                .values()
                .map(|s| (s.value.uid, s.value.name.clone()))
                .collect(),
            nodes: map
                .nodes
                .keys()
                .chain(placed)
                .map(|id| (id.raft_id(), id.to_string()))
                .collect(),
        }
    }

    /// A group's labels: the node, its stream's name, its shard id; `None` while the map
    /// does not name its stream.
    fn labels(&self, node: &NodeId, group: GroupId) -> Option<Vec<Label>> {
        let stream = self.streams.get(&group.stream_uid)?;
        Some(Self::group_labels(node, stream.clone(), group))
    }

    /// Labels for a group whose stream the map has never named here (its uid).
    fn unnamed(&self, node: &NodeId, group: GroupId) -> Vec<Label> {
        Self::group_labels(node, format!("uid-{}", group.stream_uid), group)
    }

    fn group_labels(node: &NodeId, stream: String, group: GroupId) -> Vec<Label> {
        vec![
            Label::new("node", node.to_string()),
            Label::new("stream", stream),
            Label::new("shard", ShardId::new(group.shard).to_string()),
        ]
    }

    /// A node by its Raft id (the number when the map does not name it).
    fn node(&self, raft_id: u64) -> String {
        self.nodes
            .get(&raft_id)
            .cloned()
            .unwrap_or_else(|| raft_id.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    /// Gauge `name`'s value under exactly `labels`, in the recorder's snapshot.
    fn gauge_value(recorder: &DebuggingRecorder, name: &str, labels: &[Label]) -> Option<f64> {
        recorder
            .snapshotter()
            .snapshot()
            .into_vec()
            .into_iter()
            .find(|(key, ..)| {
                key.key().name() == name
                    && key.key().labels().cloned().collect::<Vec<_>>() == labels
            })
            .and_then(|(.., value)| match value {
                DebugValue::Gauge(v) => Some(v.into_inner()),
                _ => None,
            })
    }

    #[test]
    fn a_group_gone_is_zeroed_under_the_labels_it_had() {
        let recorder = DebuggingRecorder::new();
        let node = NodeId::new("a").unwrap();
        let host = RaftHost::new(node.raft_id());
        let group = GroupId {
            stream_uid: 7,
            shard: 1,
        };
        // Exported as a leader of stream "orders", then the stream left the map and the
        // group stopped: its series read 0 under "orders", none under "uid-7".
        let labels = GroupNames::group_labels(&node, "orders".into(), group);
        let mut follower = labels.clone();
        follower.push(Label::new("follower", "b"));
        let before = BTreeMap::from([(
            group,
            Exported {
                labels: labels.clone(),
                followers: vec![follower.clone()],
                quorum_age: true,
            },
        )]);
        metrics::with_local_recorder(&recorder, || {
            for name in [
                "sluice_cluster_replica_running",
                "sluice_cluster_replica_leading",
            ] {
                gauge!(name, labels.clone()).set(1.0);
            }
            let now = sample(&node, &host, &Snapshot::default(), before);
            assert!(now.is_empty());
        });
        for name in [
            "sluice_cluster_replica_running",
            "sluice_cluster_replica_leading",
            "sluice_cluster_replica_failed",
            "sluice_cluster_replica_quorum_ack_age_ms",
        ] {
            assert_eq!(gauge_value(&recorder, name, &labels), Some(0.0), "{name}");
        }
        let lag = "sluice_cluster_follower_lag_entries";
        assert_eq!(gauge_value(&recorder, lag, &follower), Some(0.0));
        let unnamed = GroupNames::group_labels(&node, "uid-7".into(), group);
        let running = "sluice_cluster_replica_running";
        assert_eq!(gauge_value(&recorder, running, &unnamed), None);
        let totals = [Label::new("node", "a")];
        assert_eq!(
            gauge_value(&recorder, "sluice_cluster_node_replicas", &totals),
            Some(0.0)
        );
    }
}
