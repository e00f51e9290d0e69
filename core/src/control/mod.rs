//! The control thread: the one sequencer of control-plane changes. Every change is validated,
//! appended to the metadata log (fdatasync), applied to the catalog, then carried out on the
//! owning cores. See docs/design/core-engine.md.

use crate::catalog::{
    ExpiredShard, MetaEntry, ShardKey, ShardRecord, ShardState, StreamRecord, StreamSettings,
    StreamState,
};
use crate::error::{AdminError, ReshardError, ShardLimit};
use crate::runtime::EngineIo;
use crate::runtime::queue::{QueueReceiver, Received};
use crate::runtime::{CoreJob, CoreMessage, CoreState};
use crate::shared::EngineShared;
use sluice_storage::io::{BlockingIo, FaultyIo};
use sluice_storage::{LogConfig, MetaLog, ShardLog, StorageError};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) mod consumers;
mod expiry;
pub(crate) mod streams;

/// How a control step fails: storage (the metadata log or a shard log) or a core that
/// stopped. Every operation's error type takes it in, keeping its code.
#[derive(Debug)]
pub(crate) enum StepError {
    Storage(StorageError),
    Shutdown,
}

impl From<StorageError> for StepError {
    fn from(error: StorageError) -> StepError {
        StepError::Storage(error)
    }
}

impl From<StepError> for AdminError {
    fn from(error: StepError) -> AdminError {
        match error {
            StepError::Storage(e) => AdminError::Storage(e),
            StepError::Shutdown => AdminError::Shutdown,
        }
    }
}

impl From<StepError> for ReshardError {
    fn from(error: StepError) -> ReshardError {
        match error {
            StepError::Storage(e) => ReshardError::Storage(e),
            StepError::Shutdown => ReshardError::Shutdown,
        }
    }
}

/// Work for the control thread.
pub(crate) type ControlJob = Box<dyn FnOnce(&mut Control) + Send>;

/// The metadata log's file name in the data directory.
pub(crate) const META_LOG: &str = "meta.log";

/// The directory of the stream directories (named by uid) in the data directory.
pub(crate) const STREAMS_DIR: &str = "streams";

/// Where stream directories the metadata log does not know are set aside, as `<uid>-<ms>`.
pub(crate) const ORPHANS_DIR: &str = "orphaned-streams";

/// Metadata log entries between compactions.
const META_ENTRIES_BEFORE_COMPACTION: usize = 1000;

/// The control thread's state.
pub(crate) struct Control {
    pub(crate) shared: Arc<EngineShared>,
    meta: MetaLog<MetaEntry>,
    next_uid: u64,
    /// Round-robin placement of new shards on cores.
    next_core: usize,
    /// The consumers log of each stream that has one, by stream uid.
    pub(crate) consumers_logs: HashMap<u64, crate::consumer::file::ConsumersLog>,
    /// Directories of expired shards whose removal failed, tried again by each expiry pass.
    pub(crate) expired_dirs: Vec<PathBuf>,
}

impl Control {
    /// Replays the metadata log, removes directories of deleted streams and opens every
    /// shard log on its core.
    pub(crate) fn open(shared: Arc<EngineShared>) -> Result<Control, StepError> {
        let path = shared.data_dir.root().join(META_LOG);
        let io = shared
            .config
            .io_faults()
            .map_or_else(BlockingIo::plain, FaultyIo::blocking);
        let (meta, entries) = MetaLog::<MetaEntry>::open_with_io(io, &path)?;
        let Replayed {
            streams,
            expired,
            next_uid,
        } = replay(entries);
        let mut control = Control {
            shared,
            meta,
            next_uid,
            next_core: 0,
            consumers_logs: HashMap::new(),
            expired_dirs: Vec::new(),
        };
        control.set_aside_unknown_stream_dirs(&streams)?;
        for record in streams.values() {
            control.remove_uncommitted_shard_dirs(record)?;
        }
        let no_expired = BTreeMap::new();
        for record in streams.values() {
            let expired = expired.get(&record.uid).unwrap_or(&no_expired);
            let shards = expiry::open_with_expired(&mut control, record, expired)?;
            let stream = Arc::new(StreamState::new(record, shards));
            consumers::open(&mut control, &stream)?;
            control.shared.catalog.insert(stream);
        }
        Ok(control)
    }

    /// Runs jobs until shutdown; then syncs the consumers logs. Returns the first failure of
    /// that sync, or the cause of a latched metadata log (a change whose state on disk is
    /// unknown), for `Engine::close`.
    pub(crate) fn run(
        mut self,
        queue: QueueReceiver<ControlJobOrStop>,
    ) -> Result<(), StorageError> {
        let interval = Duration::from_millis(self.shared.config.expiry_interval_ms);
        let mut next_expiry = Instant::now() + interval;
        loop {
            let wait = next_expiry.saturating_duration_since(Instant::now());
            match queue.recv_blocking_timeout(wait) {
                Received::Message(ControlJobOrStop::Job(job)) => job(&mut self),
                Received::Message(ControlJobOrStop::Stop) | Received::Closed => break,
                Received::TimedOut => {}
            }
            if Instant::now() >= next_expiry {
                expiry::expire_closed_shards(&mut self);
                next_expiry = Instant::now() + interval;
            }
            // After the job: the catalog now holds every change the log holds.
            self.maybe_compact();
        }
        // Stop taking jobs first: a call sent from now on fails instead of waiting.
        drop(queue);
        consumers::sync_all(&mut self)?;
        match self.meta.latch_cause() {
            Some(cause) => Err(StorageError::Latched {
                cause: cause.to_owned(),
            }),
            None => Ok(()),
        }
    }

    fn streams_dir(&self) -> PathBuf {
        self.shared.data_dir.root().join(STREAMS_DIR)
    }

    pub(crate) fn stream_dir(&self, uid: u64) -> PathBuf {
        self.streams_dir().join(uid.to_string())
    }

    pub(crate) fn shard_dir(&self, uid: u64, index: u32) -> PathBuf {
        shard_dir_in(self.shared.data_dir.root(), uid, index)
    }

    /// Moves stream directories the catalog does not know out of the way. They are left by a
    /// crash between a `Delete` entry and the removal of the directory, or by a metadata log
    /// damaged in the middle: never delete data on that evidence, set it aside.
    fn set_aside_unknown_stream_dirs(
        &self,
        known: &BTreeMap<u64, StreamRecord>,
    ) -> Result<(), StepError> {
        let dir = self.streams_dir();
        let orphans = self.shared.data_dir.root().join(ORPHANS_DIR);
        std::fs::create_dir_all(&dir)
            .map_err(|e| StorageError::io("create streams dir", &dir, e))?;
        let listing =
            std::fs::read_dir(&dir).map_err(|e| StorageError::io("list streams", &dir, e))?;
        for entry in listing {
            let entry = entry.map_err(|e| StorageError::io("list streams", &dir, e))?;
            let uid = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u64>().ok());
            if uid.is_some_and(|uid| known.contains_key(&uid)) {
                continue;
            }
            std::fs::create_dir_all(&orphans)
                .map_err(|e| StorageError::io("create orphans dir", &orphans, e))?;
            let stamp = self.shared.config.clock.now_ms();
            let name = entry.file_name().to_string_lossy().into_owned();
            let mut target = orphans.join(format!("{name}-{stamp}"));
            while target.exists() {
                target.as_mut_os_string().push("+");
            }
            let path = entry.path();
            std::fs::rename(&path, &target)
                .map_err(|e| StorageError::io("set aside unknown stream", &path, e))?;
        }
        Ok(())
    }

    /// Removes shard directories of a known stream that its record does not list: children
    /// of a reshard that crashed before its commit. Nothing routes a put to a child before
    /// the commit, so they hold no record (docs/design/resharding.md).
    fn remove_uncommitted_shard_dirs(&self, record: &StreamRecord) -> Result<(), StepError> {
        let dir = self.stream_dir(record.uid);
        let listing = match std::fs::read_dir(&dir) {
            Ok(listing) => listing,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(StorageError::io("list stream", &dir, e).into()),
        };
        for entry in listing {
            let entry = entry.map_err(|e| StorageError::io("list stream", &dir, e))?;
            let index = entry
                .file_name()
                .to_str()
                .and_then(|n| n.strip_prefix("shard-"))
                .and_then(|n| n.parse::<usize>().ok());
            if index.is_some_and(|i| i >= record.shards.len()) {
                let path = entry.path();
                std::fs::remove_dir_all(&path)
                    .map_err(|e| StorageError::io("remove uncommitted shard", &path, e))?;
            }
        }
        Ok(())
    }

    /// The stream called `name` if it is still incarnation `uid` (a handle's stream): a
    /// handle never acts on a stream recreated under its name.
    pub(crate) fn stream(&self, name: &str, uid: u64) -> Result<Arc<StreamState>, AdminError> {
        self.shared
            .catalog
            .get(name)
            .filter(|s| s.uid == uid)
            .ok_or_else(|| AdminError::stream_not_found(name))
    }

    /// Refuses a change that would open `added` more shards than `shards_max` allows.
    pub(crate) fn check_shard_quota(&self, added: u32) -> Result<(), ShardLimit> {
        let open = self.shared.catalog.open_shard_count();
        let limit = self.shared.config.shards_max;
        if open as u64 + u64::from(added) > u64::from(limit) {
            return Err(ShardLimit { open, limit, added });
        }
        Ok(())
    }

    /// Fails if the metadata log latched after a failed write: no change can commit until
    /// the engine is reopened.
    pub(crate) fn check_metadata_writable(&self) -> Result<(), StepError> {
        match self.meta.latch_cause() {
            Some(cause) => Err(StorageError::Latched {
                cause: cause.to_owned(),
            }
            .into()),
            None => Ok(()),
        }
    }

    /// Writes `entry` durably: when this returns `Ok`, the change survives a crash.
    pub(crate) fn record(&mut self, entry: &MetaEntry) -> Result<(), StepError> {
        self.meta.append(entry)?;
        Ok(())
    }

    /// Rewrites the metadata log as one entry per stream once it has grown. Runs between
    /// jobs, when the catalog holds every logged change. A failure is not the last job's
    /// failure: the log latches if its state is unknown, and the next change reports it.
    fn maybe_compact(&mut self) {
        if self.meta.entries_since_compaction() < META_ENTRIES_BEFORE_COMPACTION {
            return;
        }
        let mut snapshot = vec![MetaEntry::UidFloor {
            next_uid: self.next_uid,
        }];
        for stream in self.shared.catalog.all() {
            snapshot.push(MetaEntry::Upsert(stream.to_record(&stream.settings())));
            snapshot.extend(expiry::expired_entry(&stream));
        }
        let _ = self.meta.compact(&snapshot);
    }

    pub(crate) fn take_uid(&mut self) -> u64 {
        let uid = self.next_uid;
        self.next_uid += 1;
        uid
    }

    fn log_config(&self, retention_hours: u32) -> LogConfig {
        LogConfig {
            segment_size_bytes: self.shared.config.segment_size_bytes,
            record_size_bytes_max: self.shared.record_size_bytes_supported,
            retention_ms: u64::from(retention_hours) * 3_600_000,
            filesystem_sync: self.shared.filesystem_sync.clone(),
            ..LogConfig::default()
        }
    }

    /// Opens the logs of `shards` (of `stream`) on their cores, in parallel across cores.
    pub(crate) fn open_shards(
        &mut self,
        stream: &StreamRecord,
        shards: &[ShardRecord],
    ) -> Result<Vec<Arc<ShardState>>, StepError> {
        let config = self.log_config(stream.retention_hours);
        let mut pending = Vec::with_capacity(shards.len());
        for shard in shards {
            let core = self.next_core % self.shared.cores.len();
            self.next_core += 1;
            let key: ShardKey = (stream.uid, shard.index);
            let dir = self.shard_dir(stream.uid, shard.index);
            let (config, clock) = (config.clone(), self.shared.config.clock.clone());
            let io = EngineIo::new(self.shared.config.io_faults());
            let closed = shard.closed_ms.is_some();
            let reply = self.on_core(core, move |state, reply| {
                let state = state.clone();
                state.clone().spawn(async move {
                    let opened = match std::fs::create_dir_all(&dir) {
                        Ok(()) => ShardLog::open(io, &dir, config, clock).await,
                        Err(e) => Err(StorageError::io("create shard dir", &dir, e)),
                    };
                    let opened = match opened {
                        Ok(log) => {
                            let reader = (log.reader(), log.recovery_report().clone());
                            if closed {
                                // A reshard closed it: it takes no more appends and needs no
                                // writer, only its mappings for readers.
                                state.insert_read_only(key, log.into_read_only().await);
                            } else {
                                state.insert(key, Rc::new(log));
                            }
                            Ok(reader)
                        }
                        Err(e) => Err(e),
                    };
                    let _ = reply.send(opened);
                });
            });
            pending.push((core, shard, reply));
        }
        let now_ms = self.shared.config.clock.now_ms();
        let limits = self.shared.config.throughput_limits;
        let mut opened = Vec::with_capacity(shards.len());
        let mut failure = None;
        // Every reply is collected, so a failure leaves no log open behind it.
        for (core, shard, reply) in pending {
            let reader = reply
                .recv()
                .map_err(|_| StepError::Shutdown)
                .and_then(|r| r.map_err(StepError::from));
            match reader {
                Ok((reader, recovery)) => {
                    let state = ShardState::new(
                        shard,
                        &stream.name,
                        core,
                        reader,
                        limits,
                        now_ms,
                        &self.shared.config.metric_labels,
                    );
                    state.metrics.count_recovery(&recovery);
                    opened.push(Arc::new(state));
                }
                Err(e) => failure = failure.or(Some(e)),
            }
        }
        match failure {
            None => Ok(opened),
            Some(e) => {
                self.close_shards(stream.uid, &opened);
                Err(e)
            }
        }
    }

    /// Closes the logs of `shards` (syncing them first) and waits until they are closed.
    pub(crate) fn close_shards(&self, uid: u64, shards: &[Arc<ShardState>]) {
        let pending = self.on_owning_cores(uid, shards, |state, key, reply| {
            let core = state.clone();
            state.spawn(async move {
                core.close(key).await;
                let _ = reply.send(());
            });
        });
        for reply in pending {
            let _ = reply.recv();
        }
    }

    /// Lets the logs of closed `shards` give up their writers and files, on their cores,
    /// without waiting: each waits for its appends in flight and syncs, and no control job
    /// should wait on a device for that.
    pub(crate) fn release_writers(&self, uid: u64, shards: &[Arc<ShardState>]) {
        let _ = self.on_owning_cores(uid, shards, |state, key, reply: oneshot::Sender<()>| {
            let core = state.clone();
            state.spawn(async move {
                core.release_writer(key).await;
                let _ = reply.send(());
            });
        });
    }

    /// Drops the read-only logs of expired `shards` from their cores, and waits.
    pub(crate) fn forget_shards(&self, uid: u64, shards: &[Arc<ShardState>]) {
        let pending = self.on_owning_cores(uid, shards, |state, key, reply| {
            let core = state.clone();
            state.spawn(async move {
                core.forget(key).await;
                let _ = reply.send(());
            });
        });
        for reply in pending {
            let _ = reply.recv();
        }
    }

    /// Applies a new retention to the logs of `shards`.
    pub(crate) fn set_log_retention(
        &self,
        uid: u64,
        shards: &[Arc<ShardState>],
        retention_ms: u64,
    ) -> Result<(), StepError> {
        let pending = self.on_owning_cores(uid, shards, move |state, key, reply| {
            let result = state.set_retention_ms(key, retention_ms);
            let _ = reply.send(result.unwrap_or(Ok(())));
        });
        for reply in pending {
            reply.recv().map_err(|_| StepError::Shutdown)??;
        }
        Ok(())
    }

    /// Runs `job` for each of `shards` (of stream `uid`) on the core that owns it, all at
    /// once; returns the reply channels in the order of `shards`.
    pub(crate) fn on_owning_cores<T: Send + 'static>(
        &self,
        uid: u64,
        shards: &[Arc<ShardState>],
        job: impl Fn(&Rc<CoreState>, ShardKey, oneshot::Sender<T>) + Send + Clone + 'static,
    ) -> Vec<oneshot::Receiver<T>> {
        shards
            .iter()
            .map(|shard| {
                let (key, job) = ((uid, shard.index), job.clone());
                self.on_core(shard.core, move |state, reply| job(state, key, reply))
            })
            .collect()
    }

    /// Runs `job` on core `core` with a reply channel; returns the receiving end.
    pub(crate) fn on_core<T: Send + 'static>(
        &self,
        core: usize,
        job: impl FnOnce(&Rc<CoreState>, oneshot::Sender<T>) + Send + 'static,
    ) -> oneshot::Receiver<T> {
        let (tx, rx) = oneshot::channel();
        let job: CoreJob = Box::new(move |state| job(state, tx));
        // A failed send drops the job and its reply sender: the receiver reports it.
        let _ = self.shared.cores[core].send_blocking(CoreMessage::Job(job));
        rx
    }

    /// Applies new settings to a stream: metadata log first, then the catalog.
    pub(crate) fn update_settings(
        &mut self,
        stream: &StreamState,
        settings: StreamSettings,
    ) -> Result<(), StepError> {
        self.record(&MetaEntry::Upsert(stream.to_record(&settings)))?;
        stream.set_settings(settings);
        Ok(())
    }
}

/// What the metadata log's entries leave.
pub(crate) struct Replayed {
    /// The streams, by uid.
    pub(crate) streams: BTreeMap<u64, StreamRecord>,
    /// Each stream's expired shards (by uid), with their endings.
    pub(crate) expired: BTreeMap<u64, BTreeMap<u32, u64>>,
    /// The next uid to issue: above every uid the entries name and every uid floor.
    pub(crate) next_uid: u64,
}

/// Replays the metadata log's entries in order.
pub(crate) fn replay(entries: Vec<MetaEntry>) -> Replayed {
    let mut streams: BTreeMap<u64, StreamRecord> = BTreeMap::new();
    let mut expired: BTreeMap<u64, BTreeMap<u32, u64>> = BTreeMap::new();
    let mut next_uid = 1;
    for entry in entries {
        match entry {
            MetaEntry::Upsert(record) => {
                next_uid = next_uid.max(record.uid + 1);
                streams.insert(record.uid, record);
            }
            MetaEntry::Delete { uid } => {
                next_uid = next_uid.max(uid + 1);
                streams.remove(&uid);
                expired.remove(&uid);
            }
            MetaEntry::UidFloor { next_uid: floor } => next_uid = next_uid.max(floor),
            MetaEntry::ShardsExpired { uid, shards } => {
                // Only a known stream's shards; an entry never precedes its stream's.
                if streams.contains_key(&uid) {
                    let of_stream = expired.entry(uid).or_default();
                    for ExpiredShard {
                        index,
                        ending_log_seq,
                    } in shards
                    {
                        of_stream.insert(index, ending_log_seq);
                    }
                }
            }
        }
    }
    Replayed {
        streams,
        expired,
        next_uid,
    }
}

/// A message for the control thread.
pub(crate) enum ControlJobOrStop {
    /// Run this.
    Job(ControlJob),
    /// Stop.
    Stop,
}

/// The log directory of shard `index` of the stream `uid`, under the data directory `root`.
pub(crate) fn shard_dir_in(root: &std::path::Path, uid: u64, index: u32) -> PathBuf {
    root.join(STREAMS_DIR)
        .join(uid.to_string())
        .join(format!("shard-{index}"))
}
