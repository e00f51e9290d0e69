//! Resharding: split, merge and update_shard_count. The protocol, its invariants and what a
//! crash at each step leaves are in docs/design/resharding.md.

use crate::call::Call;
use crate::catalog::{MetaEntry, ShardRecord, ShardState, StreamState};
use crate::config::ReshardStep;
use crate::control::Control;
use crate::error::ReshardError;
use crate::hashkey::{HashKeyRange, parse_hash_key};
use crate::limits::{SHARD_RECORDS_PER_STREAM_MAX, SHARDS_PER_STREAM_MAX};
use crate::seqnum::parse_shard_id;
use crate::stream::Stream;
use std::sync::Arc;

/// `update_shard_count`'s answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardCountUpdate {
    /// Open shards before.
    pub current_shard_count: u32,
    /// Open shards after.
    pub target_shard_count: u32,
}

impl Stream {
    /// Splits an open shard at `new_starting_hash_key` (decimal, strictly inside its range):
    /// the shard closes and two children take `[start, key − 1]` and `[key, end]`.
    pub fn split_shard(
        &self,
        shard_id: &str,
        new_starting_hash_key: &str,
    ) -> Call<impl Future<Output = Result<(), ReshardError>> + Send + '_> {
        let (shard_id, key) = (shard_id.to_owned(), new_starting_hash_key.to_owned());
        let (name, uid) = (self.state.name.clone(), self.state.uid);
        Call::new(self.reshard(move |control| split(control, &name, uid, &shard_id, &key)))
    }

    /// Merges two adjacent open shards into one child covering both ranges.
    pub fn merge_shards(
        &self,
        shard_id: &str,
        adjacent_shard_id: &str,
    ) -> Call<impl Future<Output = Result<(), ReshardError>> + Send + '_> {
        let (a, b) = (shard_id.to_owned(), adjacent_shard_id.to_owned());
        let (name, uid) = (self.state.name.clone(), self.state.uid);
        Call::new(self.reshard(move |control| merge(control, &name, uid, &a, &b)))
    }

    /// Reshards to `target` open shards splitting the hash space evenly (Kinesis' uniform
    /// scaling), through splits and merges. `target` must be between half and double the
    /// open shard count.
    pub fn update_shard_count(
        &self,
        target: u32,
    ) -> Call<impl Future<Output = Result<ShardCountUpdate, ReshardError>> + Send + '_> {
        let (name, uid) = (self.state.name.clone(), self.state.uid);
        Call::new(self.reshard(move |control| update_shard_count(control, &name, uid, target)))
    }

    async fn reshard<T: Send + 'static>(
        &self,
        op: impl FnOnce(&mut Control) -> Result<T, ReshardError> + Send + 'static,
    ) -> Result<T, ReshardError> {
        let (tx, rx) = oneshot::channel();
        self.engine
            .control(move |control| {
                let _ = tx.send(op(control));
                Ok(())
            })
            .await
            .map_err(|_| ReshardError::Shutdown)?;
        rx.await.map_err(|_| ReshardError::Shutdown)?
    }
}

/// The stream, refusing on-demand streams (Kinesis reshards those itself).
fn provisioned_stream(
    control: &Control,
    name: &str,
    uid: u64,
) -> Result<Arc<StreamState>, ReshardError> {
    let stream = control
        .stream(name, uid)
        .map_err(|_| ReshardError::stream_not_found(name))?;
    if stream.settings().on_demand {
        return Err(ReshardError::OnDemand {
            stream: name.to_owned(),
        });
    }
    Ok(stream)
}

/// An open shard of `stream` by id.
fn open_shard(stream: &StreamState, shard_id: &str) -> Result<Arc<ShardState>, ReshardError> {
    let not_found = || ReshardError::ShardNotFound {
        stream: stream.name.clone(),
        shard: shard_id.to_owned(),
    };
    let index = parse_shard_id(shard_id).ok_or_else(not_found)?;
    let shard = stream.shards().get(index).cloned().ok_or_else(not_found)?;
    if shard.ending_log_seq.is_some() {
        return Err(ReshardError::ShardClosed {
            stream: stream.name.clone(),
            shard: shard.id,
        });
    }
    Ok(shard)
}

fn check_quota(control: &Control, added: u32) -> Result<(), ReshardError> {
    control
        .check_shard_quota(added)
        .map_err(ReshardError::ShardLimit)
}

fn split(
    control: &mut Control,
    name: &str,
    uid: u64,
    shard_id: &str,
    key_text: &str,
) -> Result<(), ReshardError> {
    let stream = provisioned_stream(control, name, uid)?;
    let parent = open_shard(&stream, shard_id)?;
    let key = parse_hash_key(key_text).map_err(ReshardError::InvalidHashKey)?;
    let range = parent.range;
    if !(range.start.saturating_add(1) < key && key < range.end) {
        return Err(ReshardError::SplitKeyOutsideShard {
            stream: name.to_owned(),
            shard: parent.id,
            key,
            range,
        });
    }
    check_quota(control, 1)?;
    split_at(control, &stream, &parent, key)
}

/// Splits `parent` so that the upper child starts at `key` (`start < key ≤ end`).
fn split_at(
    control: &mut Control,
    stream: &StreamState,
    parent: &Arc<ShardState>,
    key: u128,
) -> Result<(), ReshardError> {
    let next = stream.shards().by_index.len() as u32;
    let now_ms = control.shared.config.clock.now_ms();
    let children = split_children(parent, key, next, now_ms).to_vec();
    reshard(control, stream, std::slice::from_ref(parent), children)
}

/// The two children of splitting `parent` at `key`, numbered from `next`.
fn split_children(parent: &ShardState, key: u128, next: u32, now_ms: u64) -> [ShardRecord; 2] {
    let child = |index, start, end| ShardRecord {
        index,
        hash_start: start,
        hash_end: end,
        parent: Some(parent.index),
        adjacent_parent: None,
        created_ms: now_ms,
        ending_log_seq: None,
        closed_ms: None,
    };
    [
        child(next, parent.range.start, key - 1),
        child(next + 1, key, parent.range.end),
    ]
}

/// The child of merging `shard` and `adjacent`, numbered `index`.
fn merge_child(shard: &ShardState, adjacent: &ShardState, index: u32, now_ms: u64) -> ShardRecord {
    ShardRecord {
        index,
        hash_start: shard.range.start.min(adjacent.range.start),
        hash_end: shard.range.end.max(adjacent.range.end),
        parent: Some(shard.index),
        adjacent_parent: Some(adjacent.index),
        created_ms: now_ms,
        ending_log_seq: None,
        closed_ms: None,
    }
}

fn merge(
    control: &mut Control,
    name: &str,
    uid: u64,
    a: &str,
    b: &str,
) -> Result<(), ReshardError> {
    let stream = provisioned_stream(control, name, uid)?;
    let first = open_shard(&stream, a)?;
    let second = open_shard(&stream, b)?;
    let adjacent = first.range.end.checked_add(1) == Some(second.range.start)
        || second.range.end.checked_add(1) == Some(first.range.start);
    if first.index == second.index || !adjacent {
        return Err(ReshardError::NotAdjacent {
            stream: name.to_owned(),
            shard: first.id,
            adjacent: second.id,
        });
    }
    merge_pair(control, &stream, &first, &second)
}

fn merge_pair(
    control: &mut Control,
    stream: &StreamState,
    shard: &Arc<ShardState>,
    adjacent: &Arc<ShardState>,
) -> Result<(), ReshardError> {
    let index = stream.shards().by_index.len() as u32;
    let child = merge_child(shard, adjacent, index, control.shared.config.clock.now_ms());
    reshard(
        control,
        stream,
        &[shard.clone(), adjacent.clone()],
        vec![child],
    )
}

/// The protocol: open the children, commit, close the parents, apply, record the parents'
/// endings. A failure before the commit leaves nothing changed; after it the reshard has
/// happened, and the time putters to a parent wait holds no fsync (docs/design/resharding.md).
fn reshard(
    control: &mut Control,
    stream: &StreamState,
    parents: &[Arc<ShardState>],
    children: Vec<ShardRecord>,
) -> Result<(), ReshardError> {
    // A latched metadata log cannot commit: fail before touching anything.
    control.check_metadata_writable()?;
    check_lineage(stream, children.len())?;
    for child in &children {
        // Left by an attempt that failed before its commit: it holds no record.
        let _ = std::fs::remove_dir_all(control.shard_dir(stream.uid, child.index));
    }
    let record = stream.to_record(&stream.settings());
    let opened = control.open_shards(&record, &children)?;
    observe(control, ReshardStep::ChildrenOpened);
    let now_ms = control.shared.config.clock.now_ms();
    let is_parent = |index: u32| parents.iter().position(|p| p.index == index);
    let mut committed = record;
    for shard in &mut committed.shards {
        if is_parent(shard.index).is_some() {
            // Closed; its ending is wherever its log ends once it stops taking appends.
            shard.closed_ms = Some(now_ms);
        }
    }
    committed.shards.extend(children);
    if let Err(e) = control.record(&MetaEntry::Upsert(committed)) {
        // The entry may have reached the disk even so (a failed fdatasync): the children's
        // directories stay for the restart to keep or remove. The metadata log is latched,
        // so nothing else changes before then.
        control.close_shards(stream.uid, &opened);
        return Err(e.into());
    }
    observe(control, ReshardStep::Committed);
    let endings = close_parents(control, stream.uid, parents);
    observe(control, ReshardStep::ParentsClosed);
    let mut layout: Vec<Arc<ShardState>> = stream
        .shards()
        .by_index
        .iter()
        .map(|shard| match is_parent(shard.index) {
            Some(i) => Arc::new(shard.closed(endings[i], now_ms)),
            None => shard.clone(),
        })
        .collect();
    layout.extend(opened.iter().cloned());
    stream.set_shards(layout);
    observe(control, ReshardStep::Applied);
    for parent in parents {
        // Readers waiting at a parent's end learn it is closed.
        parent.reader.wake_waiters();
    }
    // Records the endings; until then a restart takes them from the parents' logs. A failure
    // here latches the metadata log and is reported by the next change.
    if control
        .record(&MetaEntry::Upsert(stream.to_record(&stream.settings())))
        .is_ok()
    {
        observe(control, ReshardStep::EndingsRecorded);
    }
    // The parents are read-only from now on: their files and locks close, so closed shards
    // cost no descriptors however many reshards a stream goes through.
    control.release_writers(stream.uid, parents);
    Ok(())
}

/// Refuses a reshard that would make the stream's record list more than
/// `SHARD_RECORDS_PER_STREAM_MAX` shards (docs/design/resharding.md, "Known limit").
fn check_lineage(stream: &StreamState, added: usize) -> Result<(), ReshardError> {
    lineage_fits(&stream.name, stream.shards().by_index.len(), added)
}

fn lineage_fits(stream: &str, shards: usize, added: usize) -> Result<(), ReshardError> {
    if shards + added > SHARD_RECORDS_PER_STREAM_MAX {
        return Err(ReshardError::LineageTooLong {
            stream: stream.to_owned(),
            shards,
            added,
            max: SHARD_RECORDS_PER_STREAM_MAX,
        });
    }
    Ok(())
}

fn observe(control: &Control, step: ReshardStep) {
    control.shared.config.observe_reshard(step);
}

/// Closes each parent on its core; returns their ending positions in order.
fn close_parents(control: &Control, uid: u64, parents: &[Arc<ShardState>]) -> Vec<u64> {
    let replies = control.on_owning_cores(uid, parents, |state, key, reply| {
        let core = state.clone();
        state.spawn(async move {
            let _ = reply.send(core.close_for_reshard(key).await);
        });
    });
    // After the commit there is no way back: a parent whose core did not answer (it is
    // shutting down) ends where its log ends now, as a restart would decide.
    replies
        .into_iter()
        .zip(parents)
        .map(|(reply, parent)| {
            reply
                .recv()
                .ok()
                .flatten()
                .unwrap_or_else(|| parent.reader.next_seq())
        })
        .collect()
}

fn update_shard_count(
    control: &mut Control,
    name: &str,
    uid: u64,
    target: u32,
) -> Result<ShardCountUpdate, ReshardError> {
    let stream = provisioned_stream(control, name, uid)?;
    let current = stream.shards().open_by_start.len() as u32;
    if target == 0 || target > SHARDS_PER_STREAM_MAX || target > current * 2 || target * 2 < current
    {
        return Err(ReshardError::ShardCountOutOfRange {
            stream: name.to_owned(),
            target,
            current,
        });
    }
    let targets = HashKeyRange::even_split(target);
    let splits_needed = planned_splits(&stream, &targets).len() as u32;
    check_quota(control, splits_needed)?;
    // Checked up front, not round by round, so a call never stops half-way for it: the
    // rounds add at most two children per split (fewer than `target` splits) and one per
    // merged target range.
    check_lineage(&stream, 3 * target as usize)?;
    // In rounds, each one reshard of many shards (one commit to the metadata log for the
    // round, not one per split or merge): every open shard that a target boundary cuts is
    // split once per round, then disjoint adjacent pairs inside a target are merged.
    while let Some((parents, children)) = split_round(control, &stream, &targets) {
        reshard(control, &stream, &parents, children)?;
    }
    while let Some((parents, children)) = merge_round(control, &stream, &targets) {
        reshard(control, &stream, &parents, children)?;
    }
    Ok(ShardCountUpdate {
        current_shard_count: current,
        target_shard_count: stream.shards().open_by_start.len() as u32,
    })
}

/// Target boundaries that fall strictly inside an open shard: a split at each one.
fn planned_splits(stream: &StreamState, targets: &[HashKeyRange]) -> Vec<u128> {
    let shards = stream.shards();
    targets
        .iter()
        .skip(1)
        .map(|t| t.start)
        .filter(|&b| shards.route(b).range.start < b)
        .collect()
}

/// The parents and children of one round of splits: each open shard cut by a target
/// boundary, split at its lowest one. `None` when no boundary cuts a shard.
type Round = (Vec<Arc<ShardState>>, Vec<ShardRecord>);

fn split_round(control: &Control, stream: &StreamState, targets: &[HashKeyRange]) -> Option<Round> {
    let shards = stream.shards();
    let now_ms = control.shared.config.clock.now_ms();
    let mut next = shards.by_index.len() as u32;
    let (mut parents, mut children): (Vec<Arc<ShardState>>, Vec<ShardRecord>) = Default::default();
    for key in planned_splits(stream, targets) {
        let parent = shards.route(key);
        if parents.iter().any(|p| p.index == parent.index) {
            continue; // its next cut, in the next round
        }
        children.extend(split_children(parent, key, next, now_ms));
        next += 2;
        parents.push(parent.clone());
    }
    (!parents.is_empty()).then_some((parents, children))
}

/// One round of merges: within each target range, its open shards paired lowest first
/// (a shard left over waits for the next round). `None` when every target is one shard.
fn merge_round(control: &Control, stream: &StreamState, targets: &[HashKeyRange]) -> Option<Round> {
    let shards = stream.shards();
    let now_ms = control.shared.config.clock.now_ms();
    let mut next = shards.by_index.len() as u32;
    let (mut parents, mut children): (Vec<Arc<ShardState>>, Vec<ShardRecord>) = Default::default();
    for range in targets {
        let inside: Vec<&Arc<ShardState>> = shards
            .open_by_start
            .iter()
            .filter(|s| range.start <= s.range.start && s.range.end <= range.end)
            .collect();
        for pair in inside.chunks_exact(2) {
            children.push(merge_child(pair[0], pair[1], next, now_ms));
            next += 1;
            parents.extend([pair[0].clone(), pair[1].clone()]);
        }
    }
    (!parents.is_empty()).then_some((parents, children))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_record_never_lists_more_shards_than_one_metadata_entry_holds() {
        assert!(lineage_fits("s", SHARD_RECORDS_PER_STREAM_MAX - 2, 2).is_ok());
        let refused = lineage_fits("s", SHARD_RECORDS_PER_STREAM_MAX - 2, 3).unwrap_err();
        assert_eq!(refused.code(), crate::ErrorCode::LimitExceeded);
        // The bound keeps the record well inside a metadata entry (16 MiB): a shard record
        // of the widest kind (every option set) archives to at most 112 bytes.
        let widest = crate::catalog::ShardRecord {
            index: u32::MAX,
            hash_start: u128::MAX,
            hash_end: u128::MAX,
            parent: Some(u32::MAX),
            adjacent_parent: Some(u32::MAX),
            created_ms: u64::MAX,
            ending_log_seq: Some(u64::MAX),
            closed_ms: Some(u64::MAX),
        };
        let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&widest)
            .unwrap()
            .len();
        assert!(bytes <= 112, "{bytes}");
        assert!(SHARD_RECORDS_PER_STREAM_MAX * bytes < 12 << 20);
    }
}
