//! openraft's log storage over a replica's log: entries are the log's batches, the vote and
//! the commit live in the saved state, and a purge is recorded there while the segments go by
//! retention (which only retires committed ones).

use super::entry::{ToAppend, from_stored, log_id_of, refused_entry, to_append};
use super::gate::InstallGate;
use super::recent::RecentEntries;
use super::saved::{SavedCell, Write, recorded_purge};
use super::{RaftStorageError, ShardRaft};
use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{Entry, LogId, OptionalSend, StorageIOError, Vote};
use sluice_core::{Durability, Replica, ReplicaError, StorageError};
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex};

/// How many bytes of entries one read copies from the log at most (one append request's
/// worth; a read asking for more goes on with the next copy).
const READ_BYTES_MAX: u64 = 4 << 20;

/// A shard replica's Raft log (and, cloned, its log reader).
#[derive(Clone)]
pub struct ShardLogStore {
    replica: Replica,
    saved: Arc<SavedCell>,
    /// The entries this replica appended as leader and has not applied yet (shared with the
    /// readers and the state machine, which forgets them as it applies them).
    recent: Arc<Mutex<RecentEntries>>,
    /// Shut while a snapshot openraft took is installed on a log that lacks its entry.
    gate: Arc<InstallGate>,
}

impl ShardLogStore {
    pub(super) fn new(
        replica: Replica,
        saved: Arc<SavedCell>,
        recent: Arc<Mutex<RecentEntries>>,
        gate: Arc<InstallGate>,
    ) -> ShardLogStore {
        ShardLogStore {
            replica,
            saved,
            recent,
            gate,
        }
    }

    fn recent(&self) -> std::sync::MutexGuard<'_, RecentEntries> {
        self.recent.lock().expect("recent entries lock")
    }

    /// Appends `entries` (a follower's come as received, in bulk), the last one durable: the
    /// log syncs its batches in order, so one sync covers them all. (openraft 0.9 waits for the
    /// flush before it goes on, so answering the callback from a task of its own gained
    /// nothing: measured, then taken out.)
    async fn append_all(&self, entries: Vec<Entry<ShardRaft>>) -> Result<(), RaftStorageError> {
        let count = entries.len();
        let mut received = Vec::new();
        for (i, entry) in entries.into_iter().enumerate() {
            let log_id = entry.log_id;
            let last = i + 1 == count;
            let durability = if last {
                Durability::Durable
            } else {
                Durability::Visible
            };
            let refused =
                |e: String| StorageIOError::write_log_entry(log_id, openraft::AnyError::error(e));
            match to_append(entry).map_err(refused)? {
                ToAppend::Received(bytes) => {
                    // Entries from a leader: this replica follows, and keeps none of its own.
                    self.recent().clear();
                    received.push(bytes);
                    if last {
                        self.append_received(std::mem::take(&mut received), durability)
                            .await?;
                    }
                }
                ToAppend::New(batch, id) => {
                    self.append_received(std::mem::take(&mut received), Durability::Visible)
                        .await?;
                    let appended = match self
                        .replica
                        .append_entry_copied(batch, id, durability)
                        .await
                    {
                        Err(ReplicaError::Storage(refused)) if refuses_the_write(&refused) => {
                            let batch = refused_entry(&refused.to_string());
                            self.replica
                                .append_entry_copied(batch, id, durability)
                                .await
                        }
                        other => other,
                    };
                    let (_, copy) =
                        appended.map_err(|e| StorageIOError::write_log_entry(log_id, &e))?;
                    if let Some(copy) = copy {
                        self.recent().appended(log_id.index, copy);
                    }
                }
            }
        }
        Ok(())
    }

    async fn append_received(
        &self,
        entries: Vec<Vec<u8>>,
        durability: Durability,
    ) -> Result<(), RaftStorageError> {
        if !entries.is_empty() {
            self.replica
                .append_received(entries, durability)
                .await
                .map_err(|e| StorageIOError::write_logs(&e))?;
        }
        Ok(())
    }

    async fn last_log_id(&self) -> Result<Option<LogId<u64>>, RaftStorageError> {
        Ok(self
            .replica
            .last_entry()
            .await
            .map_err(|e| StorageIOError::read_logs(&e))?
            .map(log_id_of))
    }
}

/// Whether the log refused a new entry for what the client wrote (nothing was written): the
/// entry stands as a refusal instead of failing the group.
fn refuses_the_write(error: &StorageError) -> bool {
    matches!(
        error,
        StorageError::EmptyBatch
            | StorageError::TooManyRecords { .. }
            | StorageError::KeyTooLong { .. }
            | StorageError::RecordTooLarge { .. }
            | StorageError::BatchTooLarge { .. }
    )
}

impl RaftLogReader<ShardRaft> for ShardLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<ShardRaft>>, RaftStorageError> {
        let start = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&i) => i.saturating_add(1),
            Bound::Excluded(&i) => i,
            Bound::Unbounded => u64::MAX,
        };
        self.read_entries(start, end, READ_BYTES_MAX, usize::MAX)
            .await
    }

    /// One copy of at most `READ_BYTES_MAX` (and the first entry whatever its size): what a
    /// leader ships in one append request.
    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<Entry<ShardRaft>>, RaftStorageError> {
        self.read_entries(start, end, READ_BYTES_MAX, 1).await
    }
}

impl ShardLogStore {
    /// The entries from `start` (past the purge point) below `end`, in copies of at most
    /// `bytes_max` each (the first entry of a copy whatever its size), `copies` of them at
    /// most: from the recent entries when they hold all of them, else from the log.
    async fn read_entries(
        &self,
        mut start: u64,
        end: u64,
        bytes_max: u64,
        copies: usize,
    ) -> Result<Vec<Entry<ShardRaft>>, RaftStorageError> {
        if let Some(purged) = self.saved.purged().await {
            // Purged entries are gone for Raft, even while retention still keeps their segment.
            start = start.max(purged.index + 1);
        }
        let limit = (copies == 1).then_some(bytes_max);
        let kept = self.recent().copies(start, end, limit);
        if let Some(kept) = kept {
            let mut entries = Vec::with_capacity(kept.len());
            for bytes in kept {
                let entry = from_stored(bytes).map_err(|e| {
                    StorageIOError::read_log_at_index(start, openraft::AnyError::error(e))
                })?;
                entries.push(entry);
            }
            return Ok(entries);
        }
        let mut entries = Vec::new();
        let mut copied_so_far = 0;
        while start < end && copied_so_far < copies {
            let at = start;
            let copied = self
                .replica
                .entries(start..end, bytes_max)
                .await
                .map_err(|e| StorageIOError::read_log_at_index(at, &e))?;
            if copied.is_empty() {
                // Below the log's first entry (a log that began past 0: a range from 0 asks
                // for what never was), the range goes on from the first one the log holds.
                let first = self
                    .replica
                    .first_entry_index()
                    .await
                    .map_err(|e| StorageIOError::read_log_at_index(at, &e))?;
                match first {
                    Some(first) if first > start => {
                        start = first;
                        continue;
                    }
                    _ => break,
                }
            }
            copied_so_far += 1;
            for bytes in copied {
                let entry = from_stored(bytes).map_err(|e| {
                    StorageIOError::read_log_at_index(start, openraft::AnyError::error(e))
                })?;
                start += 1;
                entries.push(entry);
            }
        }
        Ok(entries)
    }
}

impl RaftLogStorage<ShardRaft> for ShardLogStore {
    type LogReader = ShardLogStore;

    async fn get_log_state(&mut self) -> Result<LogState<ShardRaft>, RaftStorageError> {
        let purged = self.saved.purged().await;
        let last = self.last_log_id().await?;
        // Purged up to or past the last entry (a snapshot installed ahead of the log): the
        // purged id is the last one.
        let last_log_id = match (last, purged) {
            (Some(last), Some(purged)) if purged.index >= last.index => Some(purged),
            (None, purged) => purged,
            (last, _) => last,
        };
        Ok(LogState {
            last_purged_log_id: purged,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), RaftStorageError> {
        let vote = *vote;
        self.saved
            .change(Write::Now, |saved| saved.vote = Some(vote))
            .await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, RaftStorageError> {
        Ok(self.saved.get().await.vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<u64>>,
    ) -> Result<(), RaftStorageError> {
        self.saved
            .change(Write::Lazily, |saved| saved.committed = committed)
            .await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, RaftStorageError> {
        Ok(self.saved.get().await.committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<ShardRaft>,
    ) -> Result<(), RaftStorageError>
    where
        I: IntoIterator<Item = Entry<ShardRaft>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<_> = entries.into_iter().collect();
        if let Err(awaited) = self.gate.wait().await {
            let e = format!("the install of the snapshot to entry {awaited} never ended");
            let e = StorageIOError::write_logs(openraft::AnyError::error(e));
            callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
            return Err(e.into());
        }
        let Some(last) = entries.last().map(|e| e.log_id) else {
            callback.log_io_completed(Ok(()));
            return Ok(());
        };
        match self.append_all(entries).await {
            Ok(()) => {
                self.saved.set_durable(Some(last)).await;
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(e)
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), RaftStorageError> {
        self.recent().truncate_from(log_id.index);
        self.replica
            .truncate_from(log_id.index)
            .await
            .map_err(|e| StorageIOError::write_logs(&e))?;
        let last = self.last_log_id().await?;
        self.saved.cut_durable(last).await;
        Ok(())
    }

    /// Records the purge (written only as far as the recorded snapshot: `recorded_purge`),
    /// then lets retention retire what was written. A purge past the recorded snapshot on a
    /// log that lacks the entry is openraft's, ahead of installing that snapshot: appends wait
    /// for the install (gate.rs).
    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), RaftStorageError> {
        self.recent().forget_through(log_id.index);
        self.saved
            .change(Write::Now, |saved| {
                if saved.purged.is_none_or(|p| p.index < log_id.index) {
                    saved.purged = Some(log_id);
                }
            })
            .await?;
        let saved = self.saved.get().await;
        let recorded = recorded_purge(saved.purged, saved.snapshot.as_ref());
        if recorded.is_none_or(|r| r.index < log_id.index) {
            let last = self.last_log_id().await?;
            if last.is_none_or(|last| last.index < log_id.index) {
                self.gate.expect(log_id.index);
            }
        }
        // Recorded first: retention may now retire them, and a restart never finds an entry
        // gone that openraft does not know purged.
        let Some(recorded) = recorded else {
            return Ok(());
        };
        self.replica
            .set_retain_from(recorded.index + 1)
            .await
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }
}
