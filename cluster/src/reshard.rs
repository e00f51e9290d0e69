//! Resharding in the map, as pure functions of a snapshot (the controller commits what they
//! return). SplitShard, MergeShards and UpdateShardCount *begin* a reshard: the stream becomes
//! `UPDATING` with the parents to close and the children placed for them
//! ([`Resharding`]). Once each parent's group wrote its close entry, [`finish`] closes the
//! parents in the map at their ends and adds the children; UpdateShardCount's next round, if
//! the open shards are not yet the target's, begins in that same write. The rounds are the
//! single-node engine's: splits at the uniform boundaries first, then merges of neighbours.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sluice_core::HashKeyRange;

use crate::meta::{Change, Snapshot};
use crate::model::{Resharding, ShardPlacement, StreamPlacement, StreamStatus};
use crate::placement;
use crate::plan::{
    EntryGrowth, PlanError, SHARDS_PER_STREAM_MAX, check_entry_size, check_shard_quota, load,
};

/// A reshard a client asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReshardChange {
    /// SplitShard: `shard`'s upper child starts at `new_starting_hash_key`.
    Split {
        /// The shard's index.
        shard: u32,
        /// The upper child's first key.
        new_starting_hash_key: u128,
    },
    /// MergeShards: `shard` and `adjacent`, whose ranges touch, become one.
    Merge {
        /// The first shard's index.
        shard: u32,
        /// The other's.
        adjacent: u32,
    },
    /// UpdateShardCount with uniform scaling.
    ScaleTo {
        /// The open shards wanted.
        target: u32,
    },
}

/// Why a reshard is refused as the stream stands (Kinesis' `InvalidArgumentException` and
/// `ResourceNotFoundException` cases; the server words them as the single-node engine does).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ReshardRefused {
    /// The stream is on-demand: Kinesis reshards those itself.
    #[error("the stream is on-demand; resharding is only for provisioned streams")]
    OnDemand,
    /// No shard of that index.
    #[error("shard {0} not found")]
    ShardNotFound(u32),
    /// The shard was split or merged already.
    #[error("shard {0} is closed")]
    ShardClosed(u32),
    /// A split key not strictly inside the shard (above its start + 1, below its end).
    #[error("new starting hash key {key} is not inside shard {shard}")]
    SplitKeyOutsideShard {
        /// The shard.
        shard: u32,
        /// The key given.
        key: u128,
        /// The shard's first key.
        start: u128,
        /// Its last.
        end: u128,
    },
    /// Two shards that are not an adjacent pair (or one shard twice).
    #[error("shards {0} and {1} are not an adjacent pair")]
    NotAdjacent(u32, u32),
    /// A target outside half and double the open shards.
    #[error("a target of {target} shards is outside half and double its {current} open shards")]
    ShardCountOutOfRange {
        /// The target given.
        target: u32,
        /// Open shards now.
        current: u32,
    },
    /// More resharding calls in the last second than the account may make.
    #[error("more than {per_second} resharding calls in a second")]
    RateExceeded {
        /// The calls a second allowed.
        per_second: usize,
    },
    /// The stream had as many UpdateShardCount calls in the last 24 hours as it may.
    #[error("{per_day} UpdateShardCount calls in the last 24 hours; the next in {next_in_ms} ms")]
    UpdatesPerDay {
        /// The calls a day allowed.
        per_day: u32,
        /// When the oldest of them leaves the window.
        next_in_ms: u64,
    },
}

/// Stream `name`, if it may be resharded as it stands: it exists, is ACTIVE and provisioned.
pub fn resharded<'s>(snapshot: &'s Snapshot, name: &str) -> Result<&'s StreamPlacement, PlanError> {
    let entry = snapshot
        .streams
        .get(name)
        .ok_or_else(|| PlanError::StreamNotFound(name.to_owned()))?;
    let stream = &entry.value;
    if stream.status != StreamStatus::Active {
        return Err(PlanError::NotActive(name.to_owned(), stream.status));
    }
    if stream.settings.on_demand {
        return Err(ReshardRefused::OnDemand.into());
    }
    Ok(stream)
}

/// The parents one round closes and the key ranges of its children, each with its parents.
type Round = (Vec<u32>, Vec<(u128, u128, Vec<u32>)>);

/// Begins `change` on stream `name`: the stream `UPDATING` with the parents to close and the
/// children placed (on live nodes, `replication` of them each), within the account's
/// `shard_quota`. Only an `ACTIVE`, provisioned stream is resharded.
pub fn begin(
    snapshot: &Snapshot,
    name: &str,
    change: &ReshardChange,
    shard_quota: u32,
) -> Result<Vec<Change>, PlanError> {
    let stream = resharded(snapshot, name)?;
    let entry = &snapshot.streams[name];
    let (round, target) = match *change {
        ReshardChange::Split {
            shard,
            new_starting_hash_key: key,
        } => {
            let parent = open_shard(stream, shard)?;
            let (start, end) = (parent.starting_hash_key, parent.ending_hash_key);
            if !(start.saturating_add(1) < key && key < end) {
                let refused = ReshardRefused::SplitKeyOutsideShard {
                    shard,
                    key,
                    start,
                    end,
                };
                return Err(refused.into());
            }
            let children = vec![(start, key - 1, vec![shard]), (key, end, vec![shard])];
            ((vec![shard], children), None)
        }
        ReshardChange::Merge { shard, adjacent } => {
            let (first, second) = (open_shard(stream, shard)?, open_shard(stream, adjacent)?);
            let touch = |a: &ShardPlacement, b: &ShardPlacement| {
                a.ending_hash_key.checked_add(1) == Some(b.starting_hash_key)
            };
            if shard == adjacent || !(touch(first, second) || touch(second, first)) {
                return Err(ReshardRefused::NotAdjacent(shard, adjacent).into());
            }
            let range = (
                first.starting_hash_key.min(second.starting_hash_key),
                first.ending_hash_key.max(second.ending_hash_key),
            );
            let child = (range.0, range.1, vec![shard, adjacent]);
            ((vec![shard, adjacent], vec![child]), None)
        }
        ReshardChange::ScaleTo { target } => {
            let current = open(stream).count() as u32;
            let out_of_range = target == 0
                || target > SHARDS_PER_STREAM_MAX
                || target > current.saturating_mul(2)
                || target.saturating_mul(2) < current;
            if out_of_range {
                let refused = ReshardRefused::ShardCountOutOfRange { target, current };
                return Err(refused.into());
            }
            let Some(round) = next_round(stream, target) else {
                // Already the target's shards: nothing to do, as Kinesis answers.
                return Ok(vec![]);
            };
            (round, Some(target))
        }
    };
    let added = match target {
        // The splits the whole scaling makes, checked up front so it never stops half-way.
        Some(target) => planned_splits(stream, target).len() as u32,
        None => (round.1.len() as u32).saturating_sub(round.0.len() as u32),
    };
    if added > 0 {
        check_shard_quota(snapshot, added, shard_quota)?;
    }
    let mut placement = stream.clone();
    placement.status = StreamStatus::Updating;
    let resharding = place_round(snapshot, stream, round, target)?;
    let growth = growth_to_come(stream, target, &resharding);
    placement.resharding = Some(resharding);
    check_entry_size(&placement, &snapshot.nodes, growth)?;
    Ok(vec![Change::PutStream {
        placement,
        replaces: Some(entry.revision),
    }])
}

/// Ends the reshard under way on stream `name` (of uid `uid`), each parent closed at its end
/// in `endings` (every one must be there) at `closed_ms`: the parents closed in the map, the
/// children added, and UpdateShardCount's next round begun if the target is not reached (or
/// left to a later pass when it cannot be placed yet). The stream stays `UPDATING` until its
/// new shards lead ([`crate::plan::activate`]).
pub fn finish(
    snapshot: &Snapshot,
    name: &str,
    uid: u64,
    endings: &BTreeMap<u32, u64>,
    closed_ms: u64,
) -> Vec<Change> {
    let Some(entry) = snapshot.streams.get(name) else {
        return vec![];
    };
    let stream = &entry.value;
    let Some(resharding) = stream.resharding.as_ref().filter(|_| stream.uid == uid) else {
        return vec![];
    };
    if !resharding.parents.iter().all(|p| endings.contains_key(p)) {
        return vec![];
    }
    let mut placement = stream.clone();
    for shard in &mut placement.shards {
        if let Some(&end) = endings.get(&shard.index) {
            shard.closed = true;
            shard.ending_seq = Some(end);
            shard.closed_ms = Some(closed_ms);
        }
    }
    placement.shards.extend(resharding.children.iter().cloned());
    placement.resharding = None;
    if let Some(target) = resharding.target
        && let Some(round) = next_round(&placement, target)
    {
        // Too few live nodes for the next round's children now: this round's end is written
        // all the same (its parents refuse puts already), and the next round is planned again
        // by a later pass (an intent with nothing to close).
        let next = place_round(snapshot, &placement, round, Some(target));
        placement.resharding = Some(next.unwrap_or_else(|_| Resharding {
            parents: vec![],
            children: vec![],
            target: Some(target),
        }));
    }
    vec![Change::PutStream {
        placement,
        replaces: Some(entry.revision),
    }]
}

fn open(stream: &StreamPlacement) -> impl Iterator<Item = &ShardPlacement> {
    stream.shards.iter().filter(|s| !s.closed)
}

fn open_shard(stream: &StreamPlacement, index: u32) -> Result<&ShardPlacement, PlanError> {
    match stream.shards.iter().find(|s| s.index == index) {
        None => Err(ReshardRefused::ShardNotFound(index).into()),
        Some(shard) if shard.closed => Err(ReshardRefused::ShardClosed(index).into()),
        Some(shard) => Ok(shard),
    }
}

/// The children of `round` numbered after the stream's shards and placed on live nodes.
fn place_round(
    snapshot: &Snapshot,
    stream: &StreamPlacement,
    (parents, children): Round,
    target: Option<u32>,
) -> Result<Resharding, PlanError> {
    let nodes: Vec<_> = snapshot.nodes.values().cloned().collect();
    let mut load = load(snapshot);
    let replica_sets = placement::place_many(
        &nodes,
        &mut load,
        usize::from(stream.replication),
        children.len(),
    )?;
    let next = stream.shards.len() as u32;
    let children = children
        .into_iter()
        .zip(replica_sets)
        .zip(next..)
        .map(
            |(((start, end, parents), replicas), index)| ShardPlacement {
                index,
                starting_hash_key: start,
                ending_hash_key: end,
                parents,
                replicas,
                epoch: 1,
                closed: false,
                ending_seq: None,
                closed_ms: None,
                expired: false,
            },
        )
        .collect();
    Ok(Resharding {
        parents,
        children,
        target,
    })
}

/// What a reshard still writes into the entry after its first round (`first`): its parents'
/// closings; for a scaling to `target`, each split adds two shards and closes one, then each
/// merge of neighbours (`open + splits - target` of them, down to the target) adds one and
/// closes two (the first round's included: none is written yet).
pub(crate) fn growth_to_come(
    stream: &StreamPlacement,
    target: Option<u32>,
    first: &Resharding,
) -> EntryGrowth {
    let Some(target) = target else {
        return EntryGrowth {
            shards: 0,
            closings: first.parents.len(),
        };
    };
    let splits = planned_splits(stream, target).len();
    let merges = (open(stream).count() + splits).saturating_sub(target as usize);
    EntryGrowth {
        shards: (2 * splits + merges).saturating_sub(first.children.len()),
        closings: splits + 2 * merges,
    }
}

/// Uniform boundaries (each target range's first key but the lowest) strictly inside an
/// open shard: a split at each one.
fn planned_splits(stream: &StreamPlacement, target: u32) -> Vec<(u32, u128)> {
    HashKeyRange::even_split(target)
        .iter()
        .skip(1)
        .filter_map(|range| {
            let key = range.start;
            open(stream)
                .find(|s| s.starting_hash_key < key && key <= s.ending_hash_key)
                .map(|s| (s.index, key))
        })
        .collect()
}

/// UpdateShardCount's next round towards `target` uniform shards: every open shard a
/// boundary cuts, split at its lowest one; or, when none is cut, within each target range
/// its open shards merged in pairs, lowest first. `None` when every target range is one
/// open shard.
fn next_round(stream: &StreamPlacement, target: u32) -> Option<Round> {
    let (mut parents, mut children): Round = Default::default();
    for (index, key) in planned_splits(stream, target) {
        if parents.contains(&index) {
            continue; // its next cut, in the next round
        }
        let shard = stream.shards.iter().find(|s| s.index == index)?;
        children.push((shard.starting_hash_key, key - 1, vec![index]));
        children.push((key, shard.ending_hash_key, vec![index]));
        parents.push(index);
    }
    if parents.is_empty() {
        for range in HashKeyRange::even_split(target) {
            let mut inside: Vec<&ShardPlacement> = open(stream)
                .filter(|s| range.start <= s.starting_hash_key && s.ending_hash_key <= range.end)
                .collect();
            inside.sort_by_key(|s| s.starting_hash_key);
            for pair in inside.chunks_exact(2) {
                let child = (
                    pair[0].starting_hash_key,
                    pair[1].ending_hash_key,
                    vec![pair[0].index, pair[1].index],
                );
                children.push(child);
                parents.extend([pair[0].index, pair[1].index]);
            }
        }
    }
    (!parents.is_empty()).then_some((parents, children))
}

pub mod limits;

#[cfg(test)]
mod tests;
