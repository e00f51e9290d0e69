use super::*;
use crate::model::{NodeId, NodeInfo, Versioned};
use crate::plan::{self, PlanError};

fn node(name: &str) -> NodeInfo {
    NodeInfo {
        id: NodeId::new(name).unwrap(),
        peer_address: String::new(),
        client_endpoint: String::new(),
        failure_domain: None,
        started_ms: 0,
    }
}

/// Writes `changes` into `snapshot` as the store would (each write a new revision).
fn apply(snapshot: &mut Snapshot, changes: Vec<Change>) {
    for change in changes {
        snapshot.revision += 1;
        match change {
            Change::PutStream { placement, .. } => {
                let revision = snapshot.revision;
                let name = placement.name.clone();
                snapshot.streams.insert(
                    name,
                    Versioned {
                        value: placement,
                        revision,
                    },
                );
            }
            Change::UidNext { next, .. } => snapshot.uid_next.value = next,
            Change::DeleteStream { name, .. } => drop(snapshot.streams.remove(&name)),
        }
    }
}

/// An ACTIVE stream `s` of `shards` uniform shards on three live nodes.
fn stream_of(shards: u32) -> Snapshot {
    let mut snapshot = Snapshot::default();
    for name in ["a", "b", "c"] {
        snapshot
            .nodes
            .insert(NodeId::new(name).unwrap(), node(name));
    }
    let created = plan::create_stream(&snapshot, "s", shards, (3, 100)).unwrap();
    apply(&mut snapshot, created);
    let mut stream = snapshot.streams["s"].value.clone();
    stream.status = StreamStatus::Active;
    apply(&mut snapshot, vec![put(stream)]);
    snapshot
}

fn put(placement: StreamPlacement) -> Change {
    Change::PutStream {
        placement,
        replaces: None,
    }
}

fn stream(snapshot: &Snapshot) -> &StreamPlacement {
    &snapshot.streams["s"].value
}

/// Finishes the reshard under way, each parent closed at 10 × (its index + 1).
fn finish_now(snapshot: &mut Snapshot) {
    let resharding = stream(snapshot)
        .resharding
        .clone()
        .expect("a reshard under way");
    let endings = resharding
        .parents
        .iter()
        .map(|&p| (p, 10 * (u64::from(p) + 1)))
        .collect();
    let uid = stream(snapshot).uid;
    let finished = finish(snapshot, "s", uid, &endings, 1_000);
    assert_eq!(finished.len(), 1);
    apply(snapshot, finished);
}

fn refused(result: Result<Vec<Change>, PlanError>) -> ReshardRefused {
    match result {
        Err(PlanError::Reshard(refused)) => refused,
        other => panic!("not a reshard refusal: {other:?}"),
    }
}

#[test]
fn a_split_begins_updating_then_closes_the_parent_and_adds_both_children() {
    let mut snapshot = stream_of(1);
    let key = 1u128 << 127;
    let change = ReshardChange::Split {
        shard: 0,
        new_starting_hash_key: key,
    };
    let begun = begin(&snapshot, "s", &change, 100).unwrap();
    apply(&mut snapshot, begun);
    let s = stream(&snapshot);
    assert_eq!(s.status, StreamStatus::Updating);
    assert_eq!(
        s.shards.len(),
        1,
        "the children wait for the parent's close"
    );
    let resharding = s.resharding.as_ref().unwrap();
    assert_eq!(resharding.parents, vec![0]);
    let ranges: Vec<_> = resharding
        .children
        .iter()
        .map(|c| {
            (
                c.index,
                c.starting_hash_key,
                c.ending_hash_key,
                c.parents.clone(),
            )
        })
        .collect();
    assert_eq!(
        ranges,
        vec![(1, 0, key - 1, vec![0]), (2, key, u128::MAX, vec![0])]
    );
    assert!(resharding.children.iter().all(|c| c.replicas.len() == 3));
    assert!(
        matches!(
            begin(&snapshot, "s", &change, 100),
            Err(PlanError::NotActive(..))
        ),
        "one reshard at a time"
    );
    let quota = crate::plan::check_shard_quota(&snapshot, 1, 2);
    assert!(
        quota.is_err(),
        "the pending split counts as done: 2 open, 1 more passes 2"
    );
    assert!(crate::plan::check_shard_quota(&snapshot, 1, 3).is_ok());
    let uid = s.uid;
    let partial = finish(&snapshot, "s", uid, &BTreeMap::new(), 1_000);
    assert!(partial.is_empty(), "not before every parent is closed");
    assert!(
        plan::activate(&snapshot, "s", uid).is_empty(),
        "not while under way"
    );

    finish_now(&mut snapshot);
    let s = stream(&snapshot);
    assert_eq!(s.status, StreamStatus::Updating, "until the children lead");
    assert!(s.resharding.is_none());
    assert_eq!(s.shards.len(), 3);
    assert!(s.shards[0].closed && s.shards[0].ending_seq == Some(10));
    assert_eq!(s.shards[0].closed_ms, Some(1_000));
    assert!(!s.shards[1].closed && s.shards[2].ending_seq.is_none());
    let activated = plan::activate(&snapshot, "s", uid);
    apply(&mut snapshot, activated);
    assert_eq!(stream(&snapshot).status, StreamStatus::Active);
    let again = begin(&snapshot, "s", &change, 100);
    assert_eq!(refused(again), ReshardRefused::ShardClosed(0));
}

#[test]
fn a_merge_joins_two_adjacent_open_shards() {
    let mut snapshot = stream_of(3);
    let change = ReshardChange::Merge {
        shard: 2,
        adjacent: 1,
    };
    let begun = begin(&snapshot, "s", &change, 100).unwrap();
    apply(&mut snapshot, begun);
    finish_now(&mut snapshot);
    let s = stream(&snapshot);
    let child = &s.shards[3];
    assert_eq!(child.parents, vec![2, 1]);
    assert_eq!(child.starting_hash_key, s.shards[1].starting_hash_key);
    assert_eq!(child.ending_hash_key, s.shards[2].ending_hash_key);
    assert_eq!(
        (s.shards[1].ending_seq, s.shards[2].ending_seq),
        (Some(20), Some(30))
    );
}

#[test]
fn reshards_are_refused_as_the_stream_stands() {
    let snapshot = stream_of(3);
    let split = |shard, key| ReshardChange::Split {
        shard,
        new_starting_hash_key: key,
    };
    let first_end = stream(&snapshot).shards[0].ending_hash_key;
    for key in [0, 1, first_end] {
        let outside = refused(begin(&snapshot, "s", &split(0, key), 100));
        assert!(
            matches!(outside, ReshardRefused::SplitKeyOutsideShard { .. }),
            "{key}"
        );
    }
    assert_eq!(
        refused(begin(&snapshot, "s", &split(7, 5), 100)),
        ReshardRefused::ShardNotFound(7)
    );
    for (shard, adjacent) in [(0, 2), (1, 1)] {
        let merge = ReshardChange::Merge { shard, adjacent };
        let refusal = refused(begin(&snapshot, "s", &merge, 100));
        assert_eq!(refusal, ReshardRefused::NotAdjacent(shard, adjacent));
    }
    for target in [1, 7] {
        let scale = ReshardChange::ScaleTo { target };
        let refusal = refused(begin(&snapshot, "s", &scale, 100));
        assert_eq!(
            refusal,
            ReshardRefused::ShardCountOutOfRange { target, current: 3 }
        );
    }
    let at_quota = begin(&snapshot, "s", &split(0, 5), 3);
    assert!(
        matches!(at_quota, Err(PlanError::ShardQuota { .. })),
        "{at_quota:?}"
    );
    assert!(matches!(
        begin(&snapshot, "t", &split(0, 5), 100),
        Err(PlanError::StreamNotFound(_))
    ));
    let mut on_demand = snapshot.clone();
    let mut s = stream(&on_demand).clone();
    s.settings.on_demand = true;
    apply(&mut on_demand, vec![put(s)]);
    assert_eq!(
        refused(begin(&on_demand, "s", &split(0, 5), 100)),
        ReshardRefused::OnDemand
    );
    let same = ReshardChange::ScaleTo { target: 3 };
    assert!(
        begin(&snapshot, "s", &same, 100).unwrap().is_empty(),
        "nothing to do"
    );
}

/// UpdateShardCount from `from` to `to` shards, every round finished: the open shards end
/// as the uniform ones, and every child is a split of one parent or a merge of two adjacent
/// ones (its keys exactly theirs).
fn scale(from: u32, to: u32) {
    let mut snapshot = stream_of(from);
    let change = ReshardChange::ScaleTo { target: to };
    let before = stream(&snapshot).clone();
    let begun = begin(&snapshot, "s", &change, 100).unwrap();
    apply(&mut snapshot, begun);
    // The entry's size as checked up front bounds it through every round.
    let first = stream(&snapshot).resharding.clone().unwrap();
    let growth = growth_to_come(&before, Some(to), &first);
    let placed = stream(&snapshot).clone();
    let bound = plan::entry_bytes_max(&placed, &snapshot.nodes, growth);
    let size = |s: &Snapshot| serde_json::to_vec(stream(s)).unwrap().len();
    let mut rounds = 0;
    while stream(&snapshot).resharding.is_some() {
        finish_now(&mut snapshot);
        assert!(
            size(&snapshot) <= bound,
            "{from} to {to}: {} > {bound}",
            size(&snapshot)
        );
        rounds += 1;
        assert!(rounds <= 4, "{from} to {to} takes a few rounds");
    }
    // Without the later rounds' shards (the first round's alone), the bound falls short: the
    // later rounds are counted, and must be.
    let first_round_only = EntryGrowth {
        shards: 0,
        ..growth
    };
    if growth.shards > 0 {
        let short = plan::entry_bytes_max(&placed, &snapshot.nodes, first_round_only);
        assert!(size(&snapshot) > short, "{from} to {to}");
    }
    let s = stream(&snapshot);
    let mut open: Vec<(u128, u128)> = s
        .shards
        .iter()
        .filter(|s| !s.closed)
        .map(|s| (s.starting_hash_key, s.ending_hash_key))
        .collect();
    open.sort_unstable();
    let uniform: Vec<(u128, u128)> = HashKeyRange::even_split(to)
        .iter()
        .map(|r| (r.start, r.end))
        .collect();
    assert_eq!(open, uniform, "{from} to {to}");
    for child in s.shards.iter().filter(|c| !c.parents.is_empty()) {
        let parents: Vec<&ShardPlacement> = child
            .parents
            .iter()
            .map(|&p| &s.shards[p as usize])
            .collect();
        assert!(parents.iter().all(|p| p.closed && p.ending_seq.is_some()));
        let low = parents.iter().map(|p| p.starting_hash_key).min().unwrap();
        let high = parents.iter().map(|p| p.ending_hash_key).max().unwrap();
        match parents.len() {
            1 => assert!(low <= child.starting_hash_key && child.ending_hash_key <= high),
            2 => assert_eq!(
                (low, high),
                (child.starting_hash_key, child.ending_hash_key)
            ),
            n => panic!("a child of {n} parents"),
        }
    }
}

#[test]
fn update_shard_count_reaches_the_uniform_shards_in_rounds() {
    for (from, to) in [(1, 2), (3, 4), (4, 2), (3, 2), (2, 3), (5, 10), (10, 5)] {
        scale(from, to);
    }
}

/// A long lineage fills the stream's entry (one value of the store): a reshard whose children
/// would pass its limit is refused up front, an UpdateShardCount counting its later rounds.
#[test]
fn a_reshard_past_the_entry_size_is_refused_up_front() {
    let mut snapshot = stream_of(4);
    let mut placement = stream(&snapshot).clone();
    let open_size = serde_json::to_vec(&placement.shards[0]).unwrap().len() + 1;
    let mut tombstone = placement.shards[0].clone();
    (tombstone.closed, tombstone.expired) = (true, true);
    (tombstone.ending_seq, tombstone.closed_ms) = (Some(1), Some(1));
    tombstone.replicas.clear();
    // Expired ancestors until the room left is a split's (two children and the intent), and
    // less than a third shard more.
    let size = |p: &StreamPlacement| serde_json::to_vec(p).unwrap().len();
    let room = |p: &StreamPlacement| plan::STREAM_ENTRY_BYTES_MAX - size(p) - 2 * open_size - 150;
    // Whole runs of them at a time (an entry serialised per shard would take minutes).
    loop {
        let each = serde_json::to_vec(&tombstone).unwrap().len() + 1;
        let more = room(&placement) / (each + 8);
        if more == 0 {
            break;
        }
        for _ in 0..more {
            tombstone.index = placement.shards.len() as u32;
            placement.shards.push(tombstone.clone());
        }
    }
    let each = serde_json::to_vec(&tombstone).unwrap().len() + 1;
    assert!(room(&placement) < each + 8, "{}", room(&placement));
    apply(&mut snapshot, vec![put(placement)]);
    let too_large = |result: Result<Vec<Change>, PlanError>| {
        matches!(result, Err(PlanError::EntryTooLarge { .. }))
    };
    // Two more shards fit; a scaling's do not: to 3 (two splits, then merges: seven shards
    // more), 5 (eleven) or 8 (eight, the first round's alone).
    for target in [3, 5, 8] {
        let scale = ReshardChange::ScaleTo { target };
        assert!(too_large(begin(&snapshot, "s", &scale, 100)), "{target}");
    }
    let split = ReshardChange::Split {
        shard: 0,
        new_starting_hash_key: 1 << 100,
    };
    assert!(begin(&snapshot, "s", &split, 100).is_ok());
}

/// A scaling whose next round cannot be placed (a node gone between rounds) still writes the
/// round that closed (its parents refuse puts already), keeps its target with nothing to
/// close, and goes on once the round can be placed.
#[test]
fn a_round_that_cannot_be_placed_waits_and_the_one_before_ends_all_the_same() {
    let mut snapshot = stream_of(3);
    let scale = ReshardChange::ScaleTo { target: 2 };
    let begun = begin(&snapshot, "s", &scale, 100).unwrap();
    apply(&mut snapshot, begun);
    let first = stream(&snapshot).resharding.clone().unwrap();
    let (id, node) = snapshot.nodes.pop_last().unwrap();
    finish_now(&mut snapshot);
    let s = stream(&snapshot);
    assert!(first.parents.iter().all(|&p| s.shards[p as usize].closed));
    assert!(first.children.iter().all(|c| s.shards.contains(c)));
    let waiting = Resharding {
        parents: vec![],
        children: vec![],
        target: Some(2),
    };
    assert_eq!(s.resharding, Some(waiting));
    snapshot.nodes.insert(id, node);
    let mut rounds = 0;
    while stream(&snapshot).resharding.is_some() {
        finish_now(&mut snapshot);
        rounds += 1;
        assert!(rounds <= 4);
    }
    let open = stream(&snapshot)
        .shards
        .iter()
        .filter(|s| !s.closed)
        .count();
    assert_eq!(open, 2);
}
