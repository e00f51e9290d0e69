//! Expired shards: once every record of a closed shard is past retention, the shard is
//! recorded as expired in the metadata log, it becomes an empty shard at its ending in the
//! catalog, its core lets go of it and its directory is removed (docs/design/resharding.md,
//! "Expired shards"). Its identity stays: children name it as their parent.

use super::{Control, StepError};
use crate::catalog::{ExpiredShard, MetaEntry, ShardState, StreamRecord, StreamState};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Expires every closed shard whose records are all past retention, stream by stream. A
/// metadata log that cannot take the entry stops the pass (it latched: the next open
/// retries).
pub(crate) fn expire_closed_shards(control: &mut Control) {
    // Directories a failed removal left: tried again each pass.
    control.expired_dirs.retain(|dir| remove_dir(dir).is_err());
    let now_ms = control.shared.config.clock.now_ms();
    for stream in control.shared.catalog.all() {
        let due = due(&stream, now_ms);
        if !due.is_empty() && expire(control, &stream, &due).is_err() {
            return;
        }
    }
}

/// The stream's closed shards that hold no readable record and are no longer listed.
fn due(stream: &StreamState, now_ms: u64) -> Vec<Arc<ShardState>> {
    let retention_ms = stream.retention_ms();
    stream
        .shards()
        .by_index
        .iter()
        .filter(|shard| {
            !shard.expired
                && shard
                    .closed_ms
                    .is_some_and(|closed| closed.saturating_add(retention_ms) <= now_ms)
                && shard.reader.trim_horizon() >= shard.reader.next_seq()
        })
        .cloned()
        .collect()
}

fn expire(
    control: &mut Control,
    stream: &Arc<StreamState>,
    due: &[Arc<ShardState>],
) -> Result<(), StepError> {
    let endings: BTreeMap<u32, u64> = due
        .iter()
        .map(|shard| {
            let ending = shard.ending_log_seq.expect("a closed shard has an ending");
            (shard.index, ending)
        })
        .collect();
    control.record(&expired_entry_of(stream.uid, &endings))?;
    let layout = stream
        .shards()
        .by_index
        .iter()
        .map(|shard| match endings.get(&shard.index) {
            Some(&ending) => Arc::new(ShardState::expired(&shard.to_record(), ending, shard.core)),
            None => shard.clone(),
        })
        .collect();
    stream.set_shards(layout);
    // Readers still holding the old state keep their mappings until they let go.
    control.forget_shards(stream.uid, due);
    for shard in due {
        remove_shard_dir(control, stream.uid, shard.index);
        shard.reader.wake_waiters();
    }
    Ok(())
}

/// The stream's expired shards as one entry, for compaction; `None` if it has none.
pub(crate) fn expired_entry(stream: &StreamState) -> Option<MetaEntry> {
    let endings: BTreeMap<u32, u64> = stream
        .shards()
        .by_index
        .iter()
        .filter(|shard| shard.expired)
        .filter_map(|shard| Some((shard.index, shard.ending_log_seq?)))
        .collect();
    (!endings.is_empty()).then(|| expired_entry_of(stream.uid, &endings))
}

fn expired_entry_of(uid: u64, endings: &BTreeMap<u32, u64>) -> MetaEntry {
    MetaEntry::ShardsExpired {
        uid,
        shards: endings
            .iter()
            .map(|(&index, &ending_log_seq)| ExpiredShard {
                index,
                ending_log_seq,
            })
            .collect(),
    }
}

/// Opens a replayed stream's shards: the expired ones get no log (a directory left by a
/// crash before its removal is removed now), the others open on their cores. In index order.
pub(crate) fn open_with_expired(
    control: &mut Control,
    record: &StreamRecord,
    expired: &BTreeMap<u32, u64>,
) -> Result<Vec<Arc<ShardState>>, StepError> {
    // Only a closed shard expires: an entry naming an open one (a metadata log repaired
    // after damage lost the reshard that closed it) is not followed.
    let (gone, live): (Vec<_>, Vec<_>) = record
        .shards
        .iter()
        .cloned()
        .partition(|shard| shard.closed_ms.is_some() && expired.contains_key(&shard.index));
    let mut shards = control.open_shards(record, &live)?;
    for shard in &gone {
        remove_shard_dir(control, record.uid, shard.index);
        shards.push(Arc::new(ShardState::expired(
            shard,
            expired[&shard.index],
            0,
        )));
    }
    shards.sort_by_key(|shard| shard.index);
    Ok(shards)
}

/// Removes an expired shard's directory; one that cannot be removed now is tried again at
/// the next pass (its data is already unreachable: nothing waits for this).
fn remove_shard_dir(control: &mut Control, uid: u64, index: u32) {
    let dir = control.shard_dir(uid, index);
    if remove_dir(&dir).is_err() {
        control.expired_dirs.push(dir);
    }
}

fn remove_dir(dir: &std::path::Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
