//! What a shard's Raft group keeps besides its log, in the replica's Raft state file: the
//! vote, the commit, the purged and applied log ids and the last applied membership, as one
//! JSON value replaced whole (two synced slots: a torn save leaves the previous one).
//!
//! The vote, a purge and a membership change are written before the call returns (Raft's
//! safety rests on the vote). The commit and the applied id move with every write, so they are
//! written at most once a second with whatever else is saved: a restart then re-applies a
//! little more, never less. Both are written no further than the log's durable end, so a
//! restart never claims an entry that a power loss took back.

use super::RaftStorageError;
use openraft::{BasicNode, LogId, StorageIOError, StoredMembership, Vote};
use serde::{Deserialize, Serialize};
use sluice_core::Replica;
use std::time::{Duration, Instant};

/// The commit and the applied id are written at most this often on their own.
const LAZY_WRITE_EVERY: Duration = Duration::from_secs(1);

/// The saved state, as the file holds it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Saved {
    pub vote: Option<Vote<u64>>,
    pub committed: Option<LogId<u64>>,
    pub purged: Option<LogId<u64>>,
    pub applied: Option<LogId<u64>>,
    pub membership: StoredMembership<u64, BasicNode>,
    /// Where a reshard closed the shard (applied here, so committed on a majority).
    #[serde(default)]
    pub closed: Option<Closed>,
    /// The last snapshot built or installed here: what openraft may purge up to.
    #[serde(default)]
    pub snapshot: Option<SnapshotPoint>,
    /// The memberships applied before the last one, back to the one in force at the
    /// snapshot, oldest first: a snapshot names the membership of its own entry.
    #[serde(default)]
    pub earlier_memberships: Vec<StoredMembership<u64, BasicNode>>,
}

impl Saved {
    /// The membership in force at entry `index`: the last applied at or before it.
    pub fn membership_at(&self, index: u64) -> StoredMembership<u64, BasicNode> {
        let mut applied = self.earlier_memberships.iter().chain([&self.membership]);
        applied
            .rfind(|m| m.log_id().is_some_and(|id| id.index <= index))
            .cloned()
            .unwrap_or_default()
    }

    /// Applies membership `applied`: the one it replaces is kept for the snapshots to come
    /// (a membership entry applied again after a restart changes nothing).
    pub fn apply_membership(&mut self, applied: StoredMembership<u64, BasicNode>) {
        if applied.log_id() <= self.membership.log_id() {
            return;
        }
        let previous = std::mem::replace(&mut self.membership, applied);
        if previous.log_id().is_some() {
            self.earlier_memberships.push(previous);
        }
    }

    /// Records a snapshot at `point` (not one older than the recorded one), forgetting the
    /// memberships no later snapshot names.
    pub fn snapshot_at(&mut self, point: SnapshotPoint) {
        let index = point.last.index;
        if (self.snapshot.as_ref()).is_some_and(|recorded| recorded.last.index >= index) {
            return;
        }
        let in_force = self.membership_at(index);
        self.earlier_memberships
            .retain(|m| *m == in_force || m.log_id().is_some_and(|id| id.index > index));
        self.snapshot = Some(point);
    }
}

/// A snapshot: the state as of entry `last`, which is the log itself up to there. Nothing is
/// copied: the log continues at `next_seq` after it, so a replica that lacks `last` restarts
/// its log there, and the entries after it come as appends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct SnapshotPoint {
    pub last: LogId<u64>,
    pub membership: StoredMembership<u64, BasicNode>,
    /// The sequence number of the first record after `last`.
    pub next_seq: u64,
    /// The shard's close, if `last` is at or past it.
    pub closed: Option<Closed>,
}

/// A shard's close entry: its records are the log's before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Closed {
    /// The close entry's index: readers see nothing after it.
    pub index: u64,
    /// Its log number: every record of the shard is numbered below it.
    pub ending_seq: u64,
}

/// The saved state shared by a group's log store and state machine; writes are one at a time,
/// in the order their changes were made.
pub(super) struct SavedCell {
    replica: Replica,
    inner: tokio::sync::Mutex<Inner>,
}

struct Inner {
    saved: Saved,
    /// The last entry known durable in the log: the commit and applied id written no further.
    durable: Option<LogId<u64>>,
    last_write: Option<Instant>,
}

/// Whether a change is written before the call returns.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Write {
    Now,
    Lazily,
}

impl SavedCell {
    /// Reads the replica's saved state (the default when it has none).
    pub(super) async fn open(replica: Replica) -> Result<SavedCell, RaftStorageError> {
        let bytes = replica
            .state()
            .await
            .map_err(|e| StorageIOError::read(&e))?;
        let saved = match bytes {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| StorageIOError::read(&e))?,
            None => Saved::default(),
        };
        let durable = replica
            .last_entry()
            .await
            .map_err(|e| StorageIOError::read_logs(&e))?
            .map(super::entry::log_id_of);
        // What a power loss took from the log's end cannot be committed or applied here: a
        // position saved beyond the recovered log goes back to its last entry, or to the
        // purge point (what a snapshot put here).
        let mut saved = saved;
        saved.purged = recorded_purge(saved.purged, saved.snapshot.as_ref());
        saved.committed = no_further_than(saved.committed, durable, saved.purged);
        saved.applied = no_further_than(saved.applied, durable, saved.purged);
        Ok(SavedCell {
            replica,
            inner: tokio::sync::Mutex::new(Inner {
                saved,
                durable,
                last_write: None,
            }),
        })
    }

    /// A copy of the state as it stands (some of it perhaps not written yet).
    pub(super) async fn get(&self) -> Saved {
        self.inner.lock().await.saved.clone()
    }

    /// The purge point alone (read on every read of entries: no copy of the rest).
    pub(super) async fn purged(&self) -> Option<LogId<u64>> {
        self.inner.lock().await.saved.purged
    }

    /// The log's durable end moved (a flush covered an append, a snapshot's entries synced).
    pub(super) async fn set_durable(&self, durable: Option<LogId<u64>>) {
        self.inner.lock().await.durable = durable;
    }

    /// A truncation left `last` as the log's last entry: the durable end goes no further.
    pub(super) async fn cut_durable(&self, last: Option<LogId<u64>>) {
        let mut inner = self.inner.lock().await;
        inner.durable = lowest(inner.durable, last);
    }

    /// Makes `change` and writes the state, now or lazily.
    pub(super) async fn change(
        &self,
        write: Write,
        change: impl FnOnce(&mut Saved),
    ) -> Result<(), RaftStorageError> {
        let mut inner = self.inner.lock().await;
        change(&mut inner.saved);
        let due = inner
            .last_write
            .is_none_or(|at| at.elapsed() >= LAZY_WRITE_EVERY);
        if write == Write::Lazily && !due {
            return Ok(());
        }
        let mut on_disk = inner.saved.clone();
        on_disk.purged = recorded_purge(on_disk.purged, on_disk.snapshot.as_ref());
        on_disk.committed = no_further_than(on_disk.committed, inner.durable, on_disk.purged);
        on_disk.applied = no_further_than(on_disk.applied, inner.durable, on_disk.purged);
        let bytes = serde_json::to_vec(&on_disk).map_err(|e| StorageIOError::write(&e))?;
        self.replica
            .save_state(bytes)
            .await
            .map_err(|e| StorageIOError::write(&e))?;
        inner.last_write = Some(Instant::now());
        Ok(())
    }
}

/// The purge point written and acted on (retention): `purged`, but never past the recorded
/// snapshot, and none without one. openraft purges up to a snapshot it is about to install
/// before the state machine has installed it; until the install records the snapshot (and
/// its own purge), that purge stays in memory: a crash between leaves a state the log agrees
/// with, and the leader sends the snapshot again.
pub(super) fn recorded_purge(
    purged: Option<LogId<u64>>,
    snapshot: Option<&SnapshotPoint>,
) -> Option<LogId<u64>> {
    let (purged, snapshot) = (purged?, snapshot?);
    Some(if purged.index > snapshot.last.index {
        snapshot.last
    } else {
        purged
    })
}

/// `id`, or the highest position a power loss cannot take back where `id` is above it: the
/// log's durable end (`None`: no entry is), or the purge point (what a snapshot put here).
fn no_further_than(
    id: Option<LogId<u64>>,
    durable: Option<LogId<u64>>,
    purged: Option<LogId<u64>>,
) -> Option<LogId<u64>> {
    let id = id?;
    if purged.is_some_and(|p| id.index <= p.index) {
        return Some(id);
    }
    match durable {
        Some(durable) if durable.index >= id.index => Some(id),
        Some(durable) if purged.is_none_or(|p| durable.index > p.index) => Some(durable),
        _ => purged,
    }
}

/// The lower of two log positions, by index (`None`, nothing, is the lowest).
fn lowest(a: Option<LogId<u64>>, b: Option<LogId<u64>>) -> Option<LogId<u64>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.index < a.index { b } else { a }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{Saved, SnapshotPoint, no_further_than};
    use openraft::{CommittedLeaderId, LogId, Membership, StoredMembership};
    use std::collections::BTreeSet;

    fn membership(index: u64) -> StoredMembership<u64, openraft::BasicNode> {
        StoredMembership::new(
            at(index),
            Membership::new(vec![BTreeSet::from([index])], ()),
        )
    }

    /// A snapshot names the membership in force at its own entry, also after later ones were
    /// applied; one applied again (after a restart) changes nothing; a snapshot forgets only
    /// the memberships no later snapshot can name.
    #[test]
    fn a_snapshot_names_the_membership_of_its_entry() {
        let mut saved = Saved::default();
        for index in [2, 5, 9] {
            saved.apply_membership(membership(index));
        }
        saved.apply_membership(membership(5));
        assert_eq!(saved.membership, membership(9));
        assert_eq!(saved.membership_at(1), StoredMembership::default());
        assert_eq!(saved.membership_at(4), membership(2));
        assert_eq!(saved.membership_at(5), membership(5));
        assert_eq!(saved.membership_at(20), membership(9));
        saved.snapshot_at(SnapshotPoint {
            last: at(6).unwrap(),
            membership: saved.membership_at(6),
            next_seq: 0,
            closed: None,
        });
        assert_eq!(saved.earlier_memberships, vec![membership(5)]);
        let older = SnapshotPoint {
            last: at(4).unwrap(),
            membership: membership(2),
            next_seq: 0,
            closed: None,
        };
        saved.snapshot_at(older);
        assert_eq!(
            saved.snapshot.as_ref().map(|s| s.last),
            at(6),
            "never an older one"
        );
        assert_eq!(saved.membership_at(7), membership(5));
        assert_eq!(saved.membership_at(9), membership(9));
    }

    fn at(index: u64) -> Option<LogId<u64>> {
        Some(LogId::new(CommittedLeaderId::new(1, 1), index))
    }

    /// A saved position never passes what a power loss cannot take back: the durable end,
    /// or, where no entry above it is durable, the purge point (a snapshot's).
    #[test]
    fn a_saved_position_goes_no_further_than_what_survives() {
        assert_eq!(no_further_than(at(5), at(9), None), at(5));
        assert_eq!(no_further_than(at(9), at(5), None), at(5));
        assert_eq!(
            no_further_than(at(9), None, None),
            None,
            "nothing is durable"
        );
        assert_eq!(no_further_than(at(9), None, at(7)), at(7));
        assert_eq!(
            no_further_than(at(6), None, at(7)),
            at(6),
            "covered by the purge"
        );
        assert_eq!(
            no_further_than(at(9), at(3), at(7)),
            at(7),
            "durable below the purge"
        );
        assert_eq!(no_further_than(at(9), at(8), at(7)), at(8));
        assert_eq!(no_further_than(None, at(8), at(7)), None);
    }
}
