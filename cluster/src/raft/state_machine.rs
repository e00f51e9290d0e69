//! openraft's state machine over a replica's log. The log is the state: applying entries moves
//! its commit (readers see them) and answers where their records landed. A snapshot copies
//! nothing: it names the log's retention point (the last entry retention would retire), so
//! openraft purges up to it and retention frees what expired; a replica that lacks that entry
//! restarts its log after it (docs/design/cluster.md, "Snapshots at the retention point").
//!
//! A close entry (a reshard's) ends the shard: the commit readers see stops at it, and every
//! write applied after it is refused, on every replica alike (docs/design/cluster.md).

use super::entry::{CLOSED, ShardWritten, entry_id_of, log_id_of, written};
use super::gate::{InstallGate, Installing};
use super::recent::RecentEntries;
use super::saved::{Closed, SavedCell, SnapshotPoint, Write};
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

/// A shard replica's state machine (and, cloned, its snapshot builder).
#[derive(Clone)]
pub struct ShardStateMachine {
    replica: Replica,
    saved: Arc<SavedCell>,
    /// The log store's entries appended as leader: forgotten once applied.
    recent: Arc<Mutex<RecentEntries>>,
    /// Opened again once an install ends (gate.rs).
    gate: Arc<InstallGate>,
}

impl ShardStateMachine {
    /// Readers see again what was applied before (a log opens with nothing visible). A log
    /// that ends before the snapshot installed here (a crash between recording the snapshot
    /// and restarting the log) restarts now.
    pub(super) async fn open(
        replica: Replica,
        saved: Arc<SavedCell>,
        recent: &Arc<Mutex<RecentEntries>>,
        gate: Arc<InstallGate>,
    ) -> Result<ShardStateMachine, RaftStorageError> {
        let state = saved.get().await;
        let failed = |e: ReplicaError| StorageIOError::write_state_machine(&e);
        if let Some(snapshot) = &state.snapshot {
            let last = replica.last_entry().await.map_err(failed)?;
            if last.is_none_or(|last| last.index < snapshot.last.index) {
                replica
                    .restart_at(snapshot.next_seq)
                    .await
                    .map_err(failed)?;
            }
        }
        if let Some(applied) = state.applied {
            replica
                .commit_to(visible_end(applied.index, state.closed))
                .await
                .map_err(failed)?;
        }
        Ok(ShardStateMachine {
            replica,
            saved,
            recent: recent.clone(),
            gate,
        })
    }

    /// Whether the log holds entry `want` (the same index and term).
    async fn holds(&self, want: LogId<u64>) -> Result<bool, ReplicaError> {
        let range = want.index..want.index + 1;
        let held = self.replica.entries(range, 0).await?;
        Ok(held
            .first()
            .and_then(|bytes| BatchHeader::parse(bytes).ok()?.entry)
            .is_some_and(|held| held == entry_id_of(&want)))
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

impl RaftSnapshotBuilder<ShardRaft> for ShardStateMachine {
    /// A snapshot at the log's retention point, when it moved past the last snapshot's (else
    /// the last one again): openraft then purges up to it, and retention frees what expired.
    /// A point is taken only once applying has recorded what it covers (the membership in
    /// force there, the close): readers may see an entry before its apply is recorded.
    async fn build_snapshot(&mut self) -> Result<Snapshot<ShardRaft>, RaftStorageError> {
        let point = self
            .replica
            .retention_point()
            .await
            .map_err(|e| StorageIOError::read_state_machine(&e))?;
        let saved = self.saved.get().await;
        let newer = point.filter(|point| {
            (saved.snapshot.as_ref()).is_none_or(|s| point.entry.index > s.last.index)
        });
        if let Some(point) = newer {
            let last = log_id_of(point.entry);
            self.saved
                .change(Write::Now, |saved| {
                    if saved
                        .applied
                        .is_some_and(|applied| applied.index >= last.index)
                    {
                        saved.snapshot_at(SnapshotPoint {
                            last,
                            membership: saved.membership_at(last.index),
                            next_seq: point.next_seq,
                            closed: saved.closed.filter(|closed| closed.index <= last.index),
                        });
                    }
                })
                .await?;
        }
        Ok(as_snapshot(self.saved.get().await.snapshot.as_ref()))
    }
}

/// openraft's form of a snapshot (one without an entry where none was built yet).
fn as_snapshot(point: Option<&SnapshotPoint>) -> Snapshot<ShardRaft> {
    let data = serde_json::to_vec(&point).expect("a snapshot point encodes");
    let meta = match point {
        Some(point) => SnapshotMeta {
            last_log_id: Some(point.last),
            last_membership: point.membership.clone(),
            snapshot_id: format!("{}-{}", point.last.leader_id, point.last.index),
        },
        None => SnapshotMeta {
            snapshot_id: "none".to_string(),
            ..SnapshotMeta::default()
        },
    };
    Snapshot {
        meta,
        snapshot: Box::new(Cursor::new(data)),
    }
}

impl ShardStateMachine {
    /// `install_snapshot`'s work (the gate opens again however it ends).
    async fn install(
        &self,
        meta: &SnapshotMeta<u64, BasicNode>,
        data: Vec<u8>,
    ) -> Result<(), RaftStorageError> {
        let failed = |e: AnyError| StorageIOError::write_snapshot(Some(meta.signature()), e);
        let point: Option<SnapshotPoint> =
            serde_json::from_slice(&data).map_err(|e| failed(AnyError::new(&e)))?;
        let Some(point) = point.filter(|point| Some(point.last) == meta.last_log_id) else {
            let e = AnyError::error("the snapshot's data does not name its last entry");
            return Err(failed(e).into());
        };
        // Installing may cut or restart the log: no entry kept from before may be served.
        self.recent.lock().expect("recent entries lock").clear();
        let replica_failed = |e: ReplicaError| failed(AnyError::new(&e));
        let held = self.holds(point.last).await.map_err(replica_failed)?;
        let closed = self.saved.get().await.closed.or(point.closed);
        let last = point.last;
        let next_seq = point.next_seq;
        self.saved
            .change(Write::Now, |saved| {
                saved.applied = Some(last);
                saved.membership = point.membership.clone();
                saved.earlier_memberships.clear();
                saved.closed = closed;
                if saved.purged.is_none_or(|p| p.index < last.index) {
                    saved.purged = Some(last);
                }
                saved.snapshot_at(point);
            })
            .await?;
        if !held {
            self.replica
                .restart_at(next_seq)
                .await
                .map_err(replica_failed)?;
            self.saved.set_durable(None).await;
        }
        self.replica
            .set_retain_from(last.index + 1)
            .await
            .map_err(replica_failed)?;
        self.replica
            .commit_to(visible_end(last.index, closed))
            .await
            .map_err(replica_failed)?;
        Ok(())
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
        let (mut last, mut memberships) = (None, Vec::new());
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
                    memberships.push(StoredMembership::new(Some(entry.log_id), m));
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
        let write = if !memberships.is_empty() || closed != was_closed {
            Write::Now
        } else {
            Write::Lazily
        };
        self.saved
            .change(write, |saved| {
                saved.applied = Some(last);
                saved.closed = closed;
                for membership in memberships {
                    saved.apply_membership(membership);
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

    /// Installs a snapshot at entry P. A log that holds P keeps its entries and shows them
    /// up to P; one that lacks P (it ends before: openraft cut a disagreeing suffix first)
    /// restarts at the number after P, and the leader's entries after P come as appends.
    /// The snapshot is recorded before the log restarts: a crash between, and `open`
    /// restarts it.
    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), RaftStorageError> {
        let _installing = meta.last_log_id.map(|last| Installing {
            gate: &self.gate,
            index: last.index,
        });
        self.install(meta, snapshot.into_inner()).await
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<ShardRaft>>, RaftStorageError> {
        let saved = self.saved.get().await;
        Ok(saved
            .snapshot
            .as_ref()
            .map(|point| as_snapshot(Some(point))))
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
