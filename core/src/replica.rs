//! Replicated shard logs hosted on the engine's cores: cluster mode's storage seam
//! (docs/design/cluster.md, "Where openraft runs"). A replica's log is a replicated
//! `ShardLog` owned by one core like any shard's; a [`Replica`] handle, usable from any thread
//! and runtime, sends each operation to that core and awaits its answer, and reads go straight
//! to the mapped segments through its reader.

use crate::call::Call;
use crate::engine::Engine;
use crate::runtime::{CoreJob, CoreMessage, CoreState, EngineIo};
use crate::shared::EngineShared;
use sluice_storage::{
    Appended, Durability, EncodedBatch, EntryId, LogConfig, LogReader, RetentionPoint, ShardLog,
    StorageError,
};
use std::future::Future;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

/// A shard replica: its stream's cluster-wide uid and the shard's index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReplicaId {
    /// The stream's uid in the cluster's map.
    pub stream_uid: u64,
    /// The shard's index in its stream.
    pub shard: u32,
}

/// Why a replica operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplicaError {
    /// The replica is not open on this engine (never opened, or removed).
    #[error("replica {0:?} is not open here")]
    NotOpen(ReplicaId),
    /// The replica is already open on this engine.
    #[error("replica {0:?} is already open")]
    AlreadyOpen(ReplicaId),
    /// The engine is closing.
    #[error("the engine is shutting down")]
    Shutdown,
    /// The log refused or failed (an entry out of place, a truncation below the commit, I/O).
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// A replica's log as the core holds it.
pub(crate) type ReplicaLog = Rc<ShardLog<EngineIo>>;

/// A new entry appended, and a copy of it as the log holds it (`None`: it could not be read
/// back).
type AppendedCopy = (Appended, Option<Vec<u8>>);

/// A handle on an open replica: cheap to clone, `Send + Sync`.
#[derive(Clone)]
pub struct Replica {
    id: ReplicaId,
    core: usize,
    shared: Arc<EngineShared>,
    reader: LogReader,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("id", &self.id)
            .field("core", &self.core)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Opens (or creates) the replicated log of replica `id` under the data directory's
    /// `replicas/`, recovering what is there, on a core of its own choosing. Its records expire
    /// after `retention_ms` once committed.
    pub fn open_replica(
        &self,
        id: ReplicaId,
        retention_ms: u64,
    ) -> Call<impl Future<Output = Result<Replica, ReplicaError>> + Send + '_> {
        let shared = self.inner.shared.clone();
        Call::new(async move {
            let core = core_of(id, shared.cores.len());
            let dir = replica_dir(&shared, id);
            let config = LogConfig {
                replicated: true,
                segment_size_bytes: shared.config.segment_size_bytes,
                record_size_bytes_max: shared.record_size_bytes_supported,
                retention_ms,
                filesystem_sync: shared.filesystem_sync.clone(),
                ..LogConfig::default()
            };
            let (clock, io) = (
                shared.config.clock.clone(),
                EngineIo::new(shared.config.io_faults()),
            );
            let reader = on_core(&shared, core, move |state| async move {
                if state.replica(id).is_some() {
                    return Err(ReplicaError::AlreadyOpen(id));
                }
                std::fs::create_dir_all(&dir)
                    .map_err(|e| StorageError::io("create replica dir", &dir, e))?;
                let log = ShardLog::open(io, &dir, config, clock).await?;
                let reader = log.reader();
                state.insert_replica(id, Rc::new(log));
                Ok(reader)
            })
            .await??;
            Ok(Replica {
                id,
                core,
                shared,
                reader,
            })
        })
    }

    /// Closes replica `id`, syncing what it wrote, and keeps its files (it moved to another
    /// node, which catches up before this copy goes; `open_replica` takes it up again).
    pub fn close_replica(
        &self,
        id: ReplicaId,
    ) -> Call<impl Future<Output = Result<(), ReplicaError>> + Send + '_> {
        self.end_replica(id, false)
    }

    /// Closes replica `id` and removes its files (its stream was deleted).
    pub fn remove_replica(
        &self,
        id: ReplicaId,
    ) -> Call<impl Future<Output = Result<(), ReplicaError>> + Send + '_> {
        self.end_replica(id, true)
    }

    /// The replicas whose files are in the data directory, open or not (a node that comes
    /// back checks them against the map: a deleted stream's are discarded).
    pub fn replicas_on_disk(&self) -> Result<Vec<ReplicaId>, ReplicaError> {
        let dir = self.inner.shared.data_dir.root().join("replicas");
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StorageError::io("list replicas", &dir, e).into()),
        };
        let mut ids = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| StorageError::io("list replicas", &dir, e))?;
            let name = entry.file_name();
            // Directories named `<uid>-<shard>` are replicas; anything else is not ours.
            let parsed = name
                .to_str()
                .and_then(|name| name.split_once('-'))
                .and_then(|(uid, shard)| {
                    Some(ReplicaId {
                        stream_uid: uid.parse().ok()?,
                        shard: shard.parse().ok()?,
                    })
                });
            if let Some(id) = parsed {
                ids.push(id);
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Removes the files of replica `id`, which must not be open (`AlreadyOpen`): the
    /// replica of a stream deleted while this node was away.
    pub fn discard_replica(
        &self,
        id: ReplicaId,
    ) -> Call<impl Future<Output = Result<(), ReplicaError>> + Send + '_> {
        let shared = self.inner.shared.clone();
        Call::new(async move {
            let core = core_of(id, shared.cores.len());
            let dir = replica_dir(&shared, id);
            on_core(&shared, core, move |state| async move {
                // Checked on the replica's core, where opens happen: none can start meanwhile.
                if state.replica(id).is_some() {
                    return Err(ReplicaError::AlreadyOpen(id));
                }
                match std::fs::remove_dir_all(&dir) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        Err(StorageError::io("remove replica dir", &dir, e).into())
                    }
                    _ => Ok(()),
                }
            })
            .await?
        })
    }

    fn end_replica(
        &self,
        id: ReplicaId,
        remove: bool,
    ) -> Call<impl Future<Output = Result<(), ReplicaError>> + Send + '_> {
        let shared = self.inner.shared.clone();
        Call::new(async move {
            let core = core_of(id, shared.cores.len());
            let dir = replica_dir(&shared, id);
            on_core(&shared, core, move |state| async move {
                let log = state.remove_replica(id).ok_or(ReplicaError::NotOpen(id))?;
                // A task of its own may still hold the log (an operation in flight): sync
                // what is written either way; its files close when the last holder lets go,
                // and readers holding batches keep their mappings.
                match Rc::try_unwrap(log) {
                    Ok(log) => log.close().await?,
                    Err(log) => log.sync().await?,
                }
                if remove {
                    std::fs::remove_dir_all(&dir)
                        .map_err(|e| StorageError::io("remove replica dir", &dir, e))?;
                }
                Ok(())
            })
            .await?
        })
    }
}

impl Replica {
    /// Which replica this is.
    pub fn id(&self) -> ReplicaId {
        self.id
    }

    /// A reader of its visible (committed) records, for any thread.
    pub fn reader(&self) -> &LogReader {
        &self.reader
    }

    /// Appends a new entry as its leader (`ShardLog::append_entry`).
    pub fn append_entry(
        &self,
        batch: EncodedBatch,
        entry: EntryId,
        durability: Durability,
    ) -> Call<impl Future<Output = Result<Appended, ReplicaError>> + Send + '_> {
        self.with_log(move |log| async move { log.append_entry(batch, entry, durability).await })
    }

    /// Appends a new entry as its leader, as [`Replica::append_entry`] does, and answers with a
    /// copy of it as the log now holds it (what [`Replica::entries`] would copy; `None` if it
    /// cannot be read back), taken in the same call: a leader that ships and applies the entry
    /// then needs no read of its own, each of which is a trip to the replica's core.
    pub fn append_entry_copied(
        &self,
        batch: EncodedBatch,
        entry: EntryId,
        durability: Durability,
    ) -> Call<impl Future<Output = Result<AppendedCopy, ReplicaError>> + Send + '_> {
        self.with_log(move |log| async move {
            let appended = log.append_entry(batch, entry, durability).await?;
            // A read that fails leaves the copy out: the entry is in the log all the same.
            let copy = (log.entries(entry.index..entry.index + 1, u64::MAX).ok())
                .and_then(|mut copies| copies.pop());
            Ok((appended, copy))
        })
    }

    /// Appends entries received from the leader, in order, each as the leader's log holds it
    /// (`ShardLog::entries`); stops at the first refused. Asked to be durable, it waits for
    /// the device once, for the last entry (durability covers a log's batches in order).
    pub fn append_received(
        &self,
        entries: Vec<Vec<u8>>,
        durability: Durability,
    ) -> Call<impl Future<Output = Result<Vec<Appended>, ReplicaError>> + Send + '_> {
        self.with_log(move |log| async move {
            let mut appended = Vec::with_capacity(entries.len());
            let last = entries.len().saturating_sub(1);
            for (i, bytes) in entries.into_iter().enumerate() {
                let batch =
                    EncodedBatch::received(bytes).map_err(|e| StorageError::EntryRefused {
                        reason: format!("a received entry does not check: {}", e.0),
                    })?;
                let durability = if i == last {
                    durability
                } else {
                    Durability::Visible
                };
                appended.push(log.append_received(batch, durability).await?);
            }
            Ok(appended)
        })
    }

    /// Removes the entries from `index` on (`ShardLog::truncate_from`).
    pub fn truncate_from(
        &self,
        index: u64,
    ) -> Call<impl Future<Output = Result<(), ReplicaError>> + Send + '_> {
        self.with_log(move |log| async move { log.truncate_from(index).await })
    }

    /// Copies of the entries in `indexes`, up to `bytes_max` (`ShardLog::entries`).
    pub fn entries(
        &self,
        indexes: std::ops::Range<u64>,
        bytes_max: u64,
    ) -> Call<impl Future<Output = Result<Vec<Vec<u8>>, ReplicaError>> + Send + '_> {
        self.with_log(move |log| async move { log.entries(indexes, bytes_max) })
    }

    /// Moves the commit to `index`: readers see every entry up to it.
    pub fn commit_to(
        &self,
        index: u64,
    ) -> Call<impl Future<Output = Result<(), ReplicaError>> + Send + '_> {
        self.with_log(move |log| async move { log.commit_to(index) })
    }

    /// The index of the oldest entry the log holds (`ShardLog::first_entry_index`).
    pub fn first_entry_index(
        &self,
    ) -> Call<impl Future<Output = Result<Option<u64>, ReplicaError>> + Send + '_> {
        self.with_log(|log| async move { log.first_entry_index() })
    }

    /// The Raft layer purged the entries below `index`: retention may retire them
    /// (`ShardLog::set_retain_from`).
    pub fn set_retain_from(
        &self,
        index: u64,
    ) -> Call<impl Future<Output = Result<(), ReplicaError>> + Send + '_> {
        self.with_log(move |log| async move {
            log.set_retain_from(index);
            Ok(())
        })
    }

    /// The last entry retention would retire once purged, and the number after it
    /// (`ShardLog::retention_point`): where the Raft layer snapshots.
    pub fn retention_point(
        &self,
    ) -> Call<impl Future<Output = Result<Option<RetentionPoint>, ReplicaError>> + Send + '_> {
        self.with_log(|log| async move { log.retention_point() })
    }

    /// Drops every entry and continues at `next_seq` (`ShardLog::restart_at`): a follower
    /// that lacks the entry a snapshot names.
    pub fn restart_at(
        &self,
        next_seq: u64,
    ) -> Call<impl Future<Output = Result<(), ReplicaError>> + Send + '_> {
        self.with_log(move |log| async move { log.restart_at(next_seq).await })
    }

    /// Records now expire `retention_ms` after they were committed (the stream's retention
    /// changed); a decrease hides the records now older at once, as a stream's does.
    pub fn set_retention_ms(
        &self,
        retention_ms: u64,
    ) -> Call<impl Future<Output = Result<(), ReplicaError>> + Send + '_> {
        self.with_log(move |log| async move { log.set_retention_ms(retention_ms) })
    }

    /// How long its records stay readable once committed, in ms.
    pub fn retention_ms(
        &self,
    ) -> Call<impl Future<Output = Result<u64, ReplicaError>> + Send + '_> {
        self.with_log(|log| async move { Ok(log.retention_ms()) })
    }

    /// Makes every entry written so far durable (sharing syncs with concurrent callers): an
    /// append asked to be only written, then this, is a durable append split in two.
    pub fn sync(&self) -> Call<impl Future<Output = Result<(), ReplicaError>> + Send + '_> {
        self.with_log(|log| async move { log.sync().await })
    }

    /// The log's last entry.
    pub fn last_entry(
        &self,
    ) -> Call<impl Future<Output = Result<Option<EntryId>, ReplicaError>> + Send + '_> {
        self.with_log(|log| async move { Ok(log.last_entry()) })
    }

    /// Replaces the Raft layer's saved state (`ShardLog::save_raft_state`); durable on return.
    pub fn save_state(
        &self,
        state: Vec<u8>,
    ) -> Call<impl Future<Output = Result<(), ReplicaError>> + Send + '_> {
        self.with_log(move |log| async move { log.save_raft_state(&state).await })
    }

    /// The Raft layer's saved state.
    pub fn state(
        &self,
    ) -> Call<impl Future<Output = Result<Option<Vec<u8>>, ReplicaError>> + Send + '_> {
        self.with_log(|log| async move { Ok(log.raft_state()) })
    }

    /// Runs `op` on the replica's log, on its core.
    fn with_log<T, F, Fut>(
        &self,
        op: F,
    ) -> Call<impl Future<Output = Result<T, ReplicaError>> + Send + '_>
    where
        T: Send + 'static,
        F: FnOnce(ReplicaLog) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, StorageError>> + 'static,
    {
        let id = self.id;
        Call::new(async move {
            on_core(&self.shared, self.core, move |state| async move {
                let log = state.replica(id).ok_or(ReplicaError::NotOpen(id))?;
                Ok(op(log).await?)
            })
            .await?
        })
    }
}

/// Runs `op` as a task on core `core` and awaits its answer.
async fn on_core<T, F, Fut>(shared: &EngineShared, core: usize, op: F) -> Result<T, ReplicaError>
where
    T: Send + 'static,
    F: FnOnce(Rc<CoreState>) -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
{
    let (reply, answer) = oneshot::channel();
    let job: CoreJob = Box::new(move |state| {
        let task = op(state.clone());
        state.spawn(async move {
            let _ = reply.send(task.await);
        });
    });
    shared.cores[core]
        .send(CoreMessage::Job(job))
        .await
        .map_err(|_| ReplicaError::Shutdown)?;
    answer.await.map_err(|_| ReplicaError::Shutdown)
}

/// The core that owns replica `id`: the same on every open, so a replica is never opened on
/// two cores at once.
fn core_of(id: ReplicaId, cores: usize) -> usize {
    let mixed = id.stream_uid.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ u64::from(id.shard);
    (mixed % cores as u64) as usize
}

fn replica_dir(shared: &EngineShared, id: ReplicaId) -> PathBuf {
    shared
        .data_dir
        .root()
        .join("replicas")
        .join(format!("{}-{}", id.stream_uid, id.shard))
}
