//! Where a shard's replicas go: distinct nodes, distinct failure domains while there are
//! enough, the least loaded nodes first, and the leader on the replica that leads the fewest
//! shards. Deterministic (ties broken by node id), so the controller's choices can be replayed.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{NodeId, NodeInfo};

/// What a node already carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Load {
    /// Replicas it holds.
    pub replicas: usize,
    /// Of those, the ones it is the preferred leader of.
    pub leaders: usize,
}

/// Why a shard cannot be placed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    /// Fewer live nodes than copies asked for: the shard is not placed with fewer copies.
    #[error("{replication} replicas need {replication} live nodes; {live} are live")]
    NotEnoughNodes {
        /// The copies asked for.
        replication: usize,
        /// The live nodes.
        live: usize,
    },
}

/// Picks `replication` nodes for one shard, the preferred leader first.
pub fn place(
    nodes: &[NodeInfo],
    load: &BTreeMap<NodeId, Load>,
    replication: usize,
) -> Result<Vec<NodeId>, PlacementError> {
    if replication == 0 || nodes.len() < replication {
        return Err(PlacementError::NotEnoughNodes {
            replication,
            live: nodes.len(),
        });
    }
    let load_of = |id: &NodeId| load.get(id).copied().unwrap_or_default();
    let mut by_replicas: Vec<&NodeInfo> = nodes.iter().collect();
    by_replicas.sort_by_key(|n| (load_of(&n.id).replicas, &n.id));
    // Balancing replicas takes every node below the replication-th smallest count and some
    // of the nodes at it (the tier). The leader is whichever of those leads the fewest;
    // the tier's other places go to the nodes leading the most, keeping the nodes that lead
    // little free to lead the next shards. (Greedier orders drift: leaders 8/7/7/6.)
    let cutoff = load_of(&by_replicas[replication - 1].id).replicas;
    let (below, rest): (Vec<&NodeInfo>, Vec<&NodeInfo>) = by_replicas
        .into_iter()
        .partition(|n| load_of(&n.id).replicas < cutoff);
    let (mut tier, mut above): (Vec<&NodeInfo>, Vec<&NodeInfo>) = rest
        .into_iter()
        .partition(|n| load_of(&n.id).replicas == cutoff);
    let leader = *below
        .iter()
        .chain(&tier)
        .min_by_key(|n| (load_of(&n.id).leaders, load_of(&n.id).replicas, &n.id))
        .expect("enough nodes were checked");
    tier.sort_by_key(|n| (std::cmp::Reverse(load_of(&n.id).leaders), &n.id));
    above.sort_by_key(|n| {
        (
            load_of(&n.id).replicas,
            std::cmp::Reverse(load_of(&n.id).leaders),
            &n.id,
        )
    });
    let order: Vec<&NodeInfo> = below
        .into_iter()
        .chain(tier)
        .chain(above)
        .filter(|n| n.id != leader.id)
        .collect();
    // The other replicas in that order, each on a failure domain not used yet while one is left.
    let mut chosen = vec![leader];
    let mut domains = BTreeSet::from([domain(leader)]);
    while chosen.len() < replication {
        let free = |n: &&&NodeInfo| !chosen.iter().any(|c| c.id == n.id);
        let next = order
            .iter()
            .filter(free)
            .find(|n| !domains.contains(&domain(n)))
            .or_else(|| order.iter().find(free))
            .expect("enough nodes were checked");
        domains.insert(domain(next));
        chosen.push(next);
    }
    Ok(chosen.into_iter().map(|n| n.id.clone()).collect())
}

/// A node for a shard that keeps the replicas `keep` and needs one more: not one of them, on
/// a failure domain they do not use while there is one, the fewest replicas first.
pub fn replace(
    nodes: &[NodeInfo],
    load: &BTreeMap<NodeId, Load>,
    keep: &[NodeId],
) -> Result<NodeId, PlacementError> {
    let used: BTreeSet<String> = nodes
        .iter()
        .filter(|n| keep.contains(&n.id))
        .map(domain)
        .collect();
    let mut candidates: Vec<&NodeInfo> = nodes.iter().filter(|n| !keep.contains(&n.id)).collect();
    candidates.sort_by_key(|n| (load.get(&n.id).copied().unwrap_or_default().replicas, &n.id));
    let pick = candidates
        .iter()
        .find(|n| !used.contains(&domain(n)))
        .or(candidates.first());
    pick.map(|n| n.id.clone())
        .ok_or(PlacementError::NotEnoughNodes {
            replication: keep.len() + 1,
            live: nodes.len(),
        })
}

/// Places `count` shards one after another, each seeing the load the previous ones added.
pub fn place_many(
    nodes: &[NodeInfo],
    load: &mut BTreeMap<NodeId, Load>,
    replication: usize,
    count: usize,
) -> Result<Vec<Vec<NodeId>>, PlacementError> {
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let replicas = place(nodes, load, replication)?;
        for (i, id) in replicas.iter().enumerate() {
            let entry = load.entry(id.clone()).or_default();
            entry.replicas += 1;
            entry.leaders += usize::from(i == 0);
        }
        out.push(replicas);
    }
    Ok(out)
}

/// A node's failure domain; a node without a label is a domain of its own.
fn domain(node: &NodeInfo) -> String {
    match &node.failure_domain {
        Some(label) => format!("d:{label}"),
        None => format!("n:{}", node.id),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn node(i: usize, domain: Option<usize>) -> NodeInfo {
        NodeInfo {
            id: NodeId::new(format!("node-{i:02}")).unwrap(),
            peer_address: format!("127.0.0.1:{}", 7000 + i),
            client_endpoint: format!("http://127.0.0.1:{}", 4500 + i),
            failure_domain: domain.map(|d| format!("zone-{d}")),
            started_ms: 0,
        }
    }

    #[test]
    fn too_few_nodes_is_an_error_not_fewer_copies() {
        let nodes = vec![node(0, None), node(1, None)];
        assert_eq!(
            place(&nodes, &BTreeMap::new(), 3),
            Err(PlacementError::NotEnoughNodes {
                replication: 3,
                live: 2
            })
        );
    }

    #[test]
    fn a_new_node_takes_the_next_shards() {
        let nodes: Vec<NodeInfo> = (0..3).map(|i| node(i, None)).collect();
        let mut load = BTreeMap::new();
        place_many(&nodes, &mut load, 3, 4).unwrap();
        let mut bigger = nodes.clone();
        bigger.push(node(3, None));
        let next = place(&bigger, &load, 3).unwrap();
        assert_eq!(next[0], bigger[3].id, "the empty node leads: {next:?}");
    }

    #[test]
    fn a_replacement_is_a_new_node_on_a_new_domain_while_there_is_one() {
        // Zones: 0, 0, 1, 2, 2. The shard keeps nodes 0 (zone 0) and 3 (zone 2).
        let nodes: Vec<NodeInfo> = [0, 0, 1, 2, 2]
            .iter()
            .enumerate()
            .map(|(i, d)| node(i, Some(*d)))
            .collect();
        let keep = vec![nodes[0].id.clone(), nodes[3].id.clone()];
        let mut load = BTreeMap::new();
        load.insert(
            nodes[2].id.clone(),
            Load {
                replicas: 9,
                leaders: 9,
            },
        );
        // Node 2 is the busiest, but the only one in zone 1.
        assert_eq!(replace(&nodes, &load, &keep), Ok(nodes[2].id.clone()));
        // Without zone 1, the least loaded of the others that the shard does not hold.
        load.insert(
            nodes[1].id.clone(),
            Load {
                replicas: 5,
                leaders: 0,
            },
        );
        assert_eq!(
            replace(
                &nodes[..2]
                    .iter()
                    .chain(&nodes[3..])
                    .cloned()
                    .collect::<Vec<_>>(),
                &load,
                &keep
            ),
            Ok(nodes[4].id.clone())
        );
        assert!(
            replace(&nodes[..1], &load, &keep[..1]).is_err(),
            "no node left"
        );
    }

    proptest! {
        #[test]
        fn replicas_are_distinct_spread_and_balanced(
            n in 1usize..9,
            replication in 1usize..5,
            shards in 1usize..40,
            domains in prop::collection::vec(prop::option::of(0usize..4), 9),
        ) {
            let nodes: Vec<NodeInfo> = (0..n).map(|i| node(i, domains[i])).collect();
            let mut load = BTreeMap::new();
            let placed = place_many(&nodes, &mut load, replication, shards);
            if n < replication {
                prop_assert!(placed.is_err());
                return Ok(());
            }
            let placed = placed.unwrap();
            let distinct_domains: BTreeSet<String> = nodes.iter().map(domain).collect();
            for replicas in &placed {
                let ids: BTreeSet<&NodeId> = replicas.iter().collect();
                prop_assert_eq!(ids.len(), replication, "a node twice in {:?}", replicas);
                let used: BTreeSet<String> =
                    replicas.iter().map(|id| domain(nodes.iter().find(|n| n.id == *id).unwrap())).collect();
                prop_assert_eq!(used.len(), replication.min(distinct_domains.len()), "domains not spread: {:?}", replicas);
            }
            if domains[..n].iter().all(Option::is_none) {
                // Unlabelled nodes: replicas and leaders within one of each other.
                let counts = |f: fn(&Load) -> usize| {
                    let v: Vec<usize> = nodes.iter().map(|nd| load.get(&nd.id).map_or(0, f)).collect();
                    v.iter().max().unwrap() - v.iter().min().unwrap()
                };
                prop_assert!(counts(|l| l.replicas) <= 1, "{:?}", load);
                prop_assert!(counts(|l| l.leaders) <= 1, "{:?}", load);
            }
        }
    }
}
