//! Consumer checkpoint transactions on the control thread, which owns every consumers log:
//! replay at open, commits, compaction, the final sync (docs/design/checkpoints.md).

use super::Control;
use crate::catalog::{ConsumerPositions, StreamState};
use crate::consumer::file::ConsumersLog;
use crate::consumer::format::PositionEntry;
use crate::error::ConsumerError;
use crate::limits::{CHECKPOINT_CONSUMERS_PER_STREAM_MAX, CHECKPOINT_ENTRIES_BEFORE_COMPACTION};
use crate::seqnum::SequenceNumber;
use sluice_storage::{Durability, StorageError};
use std::collections::hash_map::Entry;

/// Reopens the consumers log of `stream`, if it has one, and loads its positions into the
/// catalog. A position past its shard's last record (a power cut took records a visible put
/// acknowledged) is lowered to that record, durably, before any put can reuse the numbers
/// (invariant C2).
pub(crate) fn open(control: &mut Control, stream: &StreamState) -> Result<(), StorageError> {
    let Some((mut log, entries)) = ConsumersLog::open(&control.stream_dir(stream.uid))? else {
        return Ok(());
    };
    let mut positions = ConsumerPositions::new();
    for entry in entries {
        positions
            .entry(entry.consumer)
            .or_default()
            .insert(entry.shard_index, entry.sequence_number);
    }
    let shards = stream.shards();
    let mut lowered = false;
    for per_shard in positions.values_mut() {
        // Commits name shards the stream has, and shards are never removed from it; only a
        // metadata log cut short by damage can lose one. Its positions go with it.
        let before = per_shard.len();
        per_shard.retain(|&index, _| shards.get(index).is_some());
        lowered |= per_shard.len() != before;
        for (&index, position) in per_shard.iter_mut() {
            let shard = shards.get(index).expect("kept above");
            let last = SequenceNumber::last_before(index, shard.reader.next_seq());
            if *position > last {
                *position = last;
                lowered = true;
            }
        }
    }
    positions.retain(|_, per_shard| !per_shard.is_empty());
    if lowered {
        log.compact(&snapshot(&positions))?;
    }
    *stream.consumers() = positions;
    control.consumers_logs.insert(stream.uid, log);
    Ok(())
}

/// Writes `entry` into the consumers log of stream `name` (incarnation `uid`) at
/// `durability`, then applies it to the catalog. The position was checked by the caller;
/// shards only grow while the engine runs, so it still holds.
pub(crate) fn commit(
    control: &mut Control,
    name: &str,
    uid: u64,
    entry: PositionEntry,
    durability: Durability,
) -> Result<(), ConsumerError> {
    let stream = control
        .stream(name, uid)
        .map_err(|_| ConsumerError::stream_not_found(name))?;
    {
        let consumers = stream.consumers();
        if !consumers.contains_key(&entry.consumer)
            && consumers.len() >= CHECKPOINT_CONSUMERS_PER_STREAM_MAX
        {
            return Err(ConsumerError::TooManyConsumers {
                stream: name.to_owned(),
                limit: CHECKPOINT_CONSUMERS_PER_STREAM_MAX,
            });
        }
    }
    let dir = control.stream_dir(uid);
    let log = match control.consumers_logs.entry(uid) {
        Entry::Occupied(log) => log.into_mut(),
        Entry::Vacant(slot) => slot.insert(ConsumersLog::create(&dir)?),
    };
    log.append(&entry, durability)?;
    let mut consumers = stream.consumers();
    consumers
        .entry(entry.consumer)
        .or_default()
        .insert(entry.shard_index, entry.sequence_number);
    let live: usize = consumers.values().map(|s| s.len()).sum();
    if log.frames() >= live + CHECKPOINT_ENTRIES_BEFORE_COMPACTION {
        // The commit is written either way; a failed compaction latches the log and the next
        // commit reports it.
        let _ = log.compact(&snapshot(&consumers));
    }
    Ok(())
}

/// Forgets the consumers log of a deleted stream (its file goes with the directory).
pub(crate) fn forget(control: &mut Control, uid: u64) {
    control.consumers_logs.remove(&uid);
}

/// Syncs every consumers log; returns the first failure.
pub(crate) fn sync_all(control: &mut Control) -> Result<(), StorageError> {
    let mut first = None;
    for log in control.consumers_logs.values_mut() {
        if let Err(e) = log.sync() {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

/// One entry per live position, in a stable order.
fn snapshot(positions: &ConsumerPositions) -> Vec<PositionEntry> {
    positions
        .iter()
        .flat_map(|(consumer, per_shard)| {
            per_shard
                .iter()
                .map(|(&shard_index, &sequence_number)| PositionEntry {
                    consumer: consumer.clone(),
                    shard_index,
                    sequence_number,
                })
        })
        .collect()
}
