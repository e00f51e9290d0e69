//! openraft's state machine over a replica's log. The log is the state: applying entries moves
//! its commit (readers see them) and answers where their records landed. A snapshot is the
//! entries the log still holds up to the applied one; installing it appends the ones the
//! replica lacks, after cutting an uncommitted suffix that disagrees with it.
//!
//! A close entry (a reshard's) ends the shard: the commit readers see stops at it, and every
//! write applied after it is refused, on every replica alike (docs/design/cluster.md).

use super::entry::{CLOSED, ShardWritten, entry_id_of, log_id_of, written};
use super::recent::RecentEntries;
use super::saved::{Closed, SavedCell, Write};
use super::{RaftStorageError, ShardRaft, ShardWrite};
use openraft::storage::{RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{
    AnyError, BasicNode, Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder,
    StorageIOError, StoredMembership,
};
use sluice_core::{Replica, ReplicaError};
use sluice_storage::format::BatchHeader;
use std::io::Cursor;
use std::sync::{Arc, Mutex};

/// The last snapshot built or installed here (kept in memory: a restart builds a new one).
type Current = Arc<Mutex<Option<(SnapshotMeta<u64, BasicNode>, Vec<u8>)>>>;

/// A shard replica's state machine (and, cloned, its snapshot builder).
#[derive(Clone)]
pub struct ShardStateMachine {
    replica: Replica,
    saved: Arc<SavedCell>,
    current: Current,
    /// The log store's entries appended as leader: forgotten once applied.
    recent: Arc<Mutex<RecentEntries>>,
}

impl ShardStateMachine {
    /// Readers see again what was applied before (a log opens with nothing visible).
    pub(super) async fn open(
        replica: Replica,
        saved: Arc<SavedCell>,
        recent: &Arc<Mutex<RecentEntries>>,
    ) -> Result<ShardStateMachine, RaftStorageError> {
        let state = saved.get().await;
        if let Some(applied) = state.applied {
            replica
                .commit_to(visible_end(applied.index, state.closed))
                .await
                .map_err(|e| StorageIOError::write_state_machine(&e))?;
        }
        Ok(ShardStateMachine {
            replica,
            saved,
            current: Arc::default(),
            recent: recent.clone(),
        })
    }

    /// The entries the log holds from its oldest to `last`, each as `u32` length then bytes.
    async fn entries_up_to(&self, last: Option<LogId<u64>>) -> Result<Vec<u8>, RaftStorageError> {
        let mut data = Vec::new();
        let Some(last) = last else {
            return Ok(data);
        };
        let read = |e: &dyn std::error::Error| StorageIOError::read_logs(AnyError::error(e));
        let purged = self.saved.get().await.purged.map_or(0, |p| p.index + 1);
        let first = self
            .replica
            .first_entry_index()
            .await
            .map_err(|e| read(&e))?;
        let Some(mut next) = first.map(|first| first.max(purged)) else {
            return Ok(data);
        };
        while next <= last.index {
            let entries = self
                .replica
                .entries(next..last.index + 1, 4 << 20)
                .await
                .map_err(|e| read(&e))?;
            if entries.is_empty() {
                break;
            }
            next += entries.len() as u64;
            for entry in entries {
                data.extend_from_slice(&(entry.len() as u32).to_le_bytes());
                data.extend_from_slice(&entry);
            }
        }
        Ok(data)
    }

    /// Makes the log hold the snapshot's entries: cuts the first of its own that disagrees
    /// (never a committed one: the log refuses), then appends those it lacks.
    async fn take_entries(&self, entries: Vec<Vec<u8>>) -> Result<(), AnyError> {
        let failed = |e: ReplicaError| AnyError::new(&e);
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let first = entry_of(first)?.index;
        let mut last = self.replica.last_entry().await.map_err(failed)?;
        let own_first = self.replica.first_entry_index().await.map_err(failed)?;
        if let (Some(own_last), Some(own_first)) = (last, own_first) {
            // Where both hold entries, the first of ours that differs goes, with what follows.
            let from = first.max(own_first);
            let ours = if own_last.index >= from {
                let range = from..own_last.index + 1;
                self.replica
                    .entries(range, u64::MAX)
                    .await
                    .map_err(failed)?
            } else {
                Vec::new()
            };
            let theirs = entries
                .iter()
                .skip(usize::try_from(from - first).unwrap_or(usize::MAX));
            let mut disagree = None;
            for (ours, theirs) in ours.iter().zip(theirs) {
                let ours = entry_of(ours)?;
                if ours != entry_of(theirs)? {
                    disagree = Some(ours.index);
                    break;
                }
            }
            if let Some(index) = disagree {
                self.replica.truncate_from(index).await.map_err(failed)?;
                last = self.replica.last_entry().await.map_err(failed)?;
            }
        }
        let next = last.map_or(first, |l| l.index + 1);
        if next < first {
            return Err(AnyError::error(format!(
                "the snapshot starts at entry {first}, this replica's log ends at {}: a replica \
                 this far behind needs a copy of the leader's segments",
                next - 1
            )));
        }
        let missing: Vec<Vec<u8>> = entries
            .into_iter()
            .skip(usize::try_from(next - first).unwrap_or(usize::MAX))
            .collect();
        if !missing.is_empty() {
            self.replica
                .append_received(missing, sluice_core::Durability::Durable)
                .await
                .map_err(failed)?;
        }
        Ok(())
    }

    /// Whether the log holds entry `want` (a log that holds no entry at all takes a snapshot
    /// without entries: it has nothing to disagree with, and nothing of it becomes readable).
    async fn holds(&self, want: LogId<u64>) -> Result<bool, AnyError> {
        let failed = |e: ReplicaError| AnyError::new(&e);
        if self.replica.last_entry().await.map_err(failed)?.is_none() {
            return Ok(true);
        }
        let range = want.index..want.index + 1;
        let held = self.replica.entries(range, 0).await.map_err(failed)?;
        match held.first() {
            Some(bytes) => Ok(entry_of(bytes)? == entry_id_of(&want)),
            None => Ok(false),
        }
    }
}

/// The highest entry readers may see when `applied` is the last applied: the close entry's,
/// once the shard is closed.
fn visible_end(applied: u64, closed: Option<Closed>) -> u64 {
    closed.map_or(applied, |closed| applied.min(closed.index))
}

/// What applying entry `index` answers, the shard `closed` as far as known: a close entry
/// closes it (once: a later one answers the first's end); a write after the close entry is
/// refused. An entry at or before the close (applied again after a restart, which may
/// resume below a close saved at once) answers as it did the first time.
fn after_close(
    written: ShardWritten,
    closes: bool,
    index: u64,
    closed: &mut Option<Closed>,
) -> ShardWritten {
    match *closed {
        Some(end) if index < end.index => written,
        Some(end) if closes => ShardWritten {
            base_seq: end.ending_seq,
            ..written
        },
        Some(_) if written.record_count > 0 => ShardWritten {
            refused: Some(CLOSED.to_string()),
            ..written
        },
        Some(_) => written,
        None if closes => {
            *closed = Some(Closed {
                index,
                ending_seq: written.base_seq,
            });
            written
        }
        None => written,
    }
}

/// The first close entry among a snapshot's entries, as the shard's end. A snapshot is the
/// entries the leader's log still holds; nothing is purged yet, so a closed shard's close
/// entry is among them. (Once logs are purged, the snapshot must carry the close itself.)
fn close_among(entries: &[Vec<u8>]) -> Option<Closed> {
    entries.iter().find_map(|bytes| {
        let (written, closes) = written(bytes).ok()?;
        closes.then_some(())?;
        Some(Closed {
            index: entry_of(bytes).ok()?.index,
            ending_seq: written.base_seq,
        })
    })
}

/// The entry id a stored batch holds.
fn entry_of(bytes: &[u8]) -> Result<sluice_core::EntryId, AnyError> {
    BatchHeader::parse(bytes)
        .ok()
        .and_then(|h| h.entry)
        .ok_or_else(|| AnyError::error("a snapshot holds a batch that is no entry"))
}

/// The batches of a snapshot's data.
fn split_entries(data: &[u8]) -> Result<Vec<Vec<u8>>, AnyError> {
    let mut entries = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let cut = || AnyError::error("a snapshot's data is cut short");
        let len = rest.get(..4).ok_or_else(cut)?;
        let len = u32::from_le_bytes(len.try_into().map_err(|_| cut())?) as usize;
        let bytes = rest.get(4..4 + len).ok_or_else(cut)?;
        entries.push(bytes.to_vec());
        rest = &rest[4 + len..];
    }
    Ok(entries)
}

impl RaftSnapshotBuilder<ShardRaft> for ShardStateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<ShardRaft>, RaftStorageError> {
        let saved = self.saved.get().await;
        let data = self.entries_up_to(saved.applied).await?;
        let meta = SnapshotMeta {
            last_log_id: saved.applied,
            last_membership: saved.membership,
            snapshot_id: saved.applied.map_or_else(
                || "empty".to_string(),
                |id| format!("{}-{}", id.leader_id, id.index),
            ),
        };
        *self.current.lock().expect("snapshot lock") = Some((meta.clone(), data.clone()));
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<ShardRaft> for ShardStateMachine {
    type SnapshotBuilder = ShardStateMachine;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>), RaftStorageError> {
        let saved = self.saved.get().await;
        Ok((saved.applied, saved.membership))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<ShardWritten>, RaftStorageError>
    where
        I: IntoIterator<Item = Entry<ShardRaft>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut replies = Vec::new();
        let (mut last, mut membership) = (None, None);
        let was_closed = self.saved.get().await.closed;
        let mut closed = was_closed;
        for entry in entries {
            let reply = match entry.payload {
                EntryPayload::Blank => ShardWritten::default(),
                EntryPayload::Normal(ShardWrite::Stored(bytes)) => {
                    let (written, closes) = written(&bytes)
                        .map_err(|e| StorageIOError::apply(entry.log_id, AnyError::error(e)))?;
                    after_close(written, closes, entry.log_id.index, &mut closed)
                }
                EntryPayload::Normal(ShardWrite::New(_) | ShardWrite::Close) => {
                    let e = AnyError::error("applied entries come from the log, numbered");
                    return Err(StorageIOError::apply(entry.log_id, e).into());
                }
                EntryPayload::Membership(m) => {
                    membership = Some(StoredMembership::new(Some(entry.log_id), m));
                    ShardWritten::default()
                }
            };
            replies.push(reply);
            last = Some(entry.log_id);
        }
        let Some(last) = last else {
            return Ok(replies);
        };
        (self.recent.lock().expect("recent entries lock")).forget_through(last.index);
        self.replica
            .commit_to(visible_end(last.index, closed))
            .await
            .map_err(|e| StorageIOError::apply(last, &e))?;
        let write = if membership.is_some() || closed != was_closed {
            Write::Now
        } else {
            Write::Lazily
        };
        self.saved
            .change(write, |saved| {
                saved.applied = Some(last);
                saved.closed = closed;
                if let Some(membership) = membership {
                    saved.membership = membership;
                }
            })
            .await?;
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, RaftStorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), RaftStorageError> {
        // Installing may cut the log: no entry kept from before may be served.
        self.recent.lock().expect("recent entries lock").clear();
        let data = snapshot.into_inner();
        let failed = |e| StorageIOError::write_snapshot(Some(meta.signature()), e);
        let entries = split_entries(&data).map_err(failed)?;
        // Every entry of a snapshot was applied where it was built: committed.
        let close_installed = close_among(&entries);
        if let (Some(last), Some(want)) = (entries.last(), meta.last_log_id) {
            let held = entry_of(last).map_err(failed)?;
            if held != entry_id_of(&want) {
                let e = AnyError::error(format!("a snapshot to {want} ends at {held:?}"));
                return Err(failed(e).into());
            }
        }
        self.take_entries(entries).await.map_err(failed)?;
        // Synced first: an append of the log's may still be on its way to the device.
        let durable = async {
            self.replica.sync().await?;
            self.replica.last_entry().await
        };
        let durable = durable.await.map_err(|e| failed(AnyError::new(&e)))?;
        self.saved.set_durable(durable.map(log_id_of)).await;
        if let Some(want) = meta.last_log_id
            && !self.holds(want).await.map_err(failed)?
        {
            // Committing to it would show this replica's own entries, not the snapshot's.
            let e = AnyError::error(format!(
                "after the snapshot to {want}, this replica's log does not hold that entry: a \
                 replica this far behind needs a copy of the leader's segments"
            ));
            return Err(failed(e).into());
        }
        let closed = match self.saved.get().await.closed {
            Some(closed) => Some(closed),
            None => close_installed,
        };
        if let Some(last) = meta.last_log_id {
            self.replica
                .commit_to(visible_end(last.index, closed))
                .await
                .map_err(|e| failed(AnyError::new(&e)))?;
        }
        let (applied, membership) = (meta.last_log_id, meta.last_membership.clone());
        self.saved
            .change(Write::Now, |saved| {
                saved.applied = applied;
                saved.membership = membership;
                saved.closed = closed;
            })
            .await?;
        *self.current.lock().expect("snapshot lock") = Some((meta.clone(), data));
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<ShardRaft>>, RaftStorageError> {
        let current = self.current.lock().expect("snapshot lock").clone();
        Ok(current.map(|(meta, data)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(base_seq: u64, record_count: u32) -> ShardWritten {
        ShardWritten {
            base_seq,
            record_count,
            ..ShardWritten::default()
        }
    }

    /// The close entry ends the shard once; a write after it is refused, one before it (applied
    /// again after a restart resumed below the close) answers as it did.
    #[test]
    fn writes_after_the_close_entry_and_only_those_are_refused() {
        let mut closed = None;
        assert_eq!(
            after_close(records(0, 3), false, 4, &mut closed),
            records(0, 3)
        );
        assert_eq!(
            after_close(records(3, 0), true, 5, &mut closed),
            records(3, 0)
        );
        let end = Closed {
            index: 5,
            ending_seq: 3,
        };
        assert_eq!(closed, Some(end));
        let refused = after_close(records(3, 2), false, 6, &mut closed);
        assert_eq!(refused.refused.as_deref(), Some(CLOSED));
        assert_eq!(
            after_close(records(5, 0), true, 7, &mut closed),
            records(3, 0)
        );
        assert_eq!(
            after_close(records(5, 0), false, 8, &mut closed),
            records(5, 0)
        );
        // After a restart that saved the close but applies again from entry 4.
        assert_eq!(
            after_close(records(0, 3), false, 4, &mut closed),
            records(0, 3)
        );
        assert_eq!(
            after_close(records(3, 0), true, 5, &mut closed),
            records(3, 0)
        );
        assert_eq!(closed, Some(end), "the first close stays the end");
        assert_eq!((visible_end(9, closed), visible_end(4, closed)), (5, 4));
    }
}
