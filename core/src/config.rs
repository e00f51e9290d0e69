//! Engine configuration.

use crate::limits::{
    ITERATOR_TTL_MS_DEFAULT, SHARD_READ_BYTES_PER_SEC, SHARD_READ_CALLS_PER_SEC,
    SHARD_WRITE_BYTES_PER_SEC, SHARD_WRITE_RECORDS_PER_SEC,
};
use sluice_storage::io::FaultyIo;
use sluice_storage::{
    Clock, Durability, FilesystemSync, GlommioIo, SEGMENT_SIZE_BYTES_DEFAULT, SystemClock,
};
use std::path::PathBuf;
use std::sync::Arc;

/// How to open an [`Engine`](crate::Engine). Start from [`EngineConfig::new`] and set the
/// fields to change; new settings are added without breaking callers (`#[non_exhaustive]`).
#[derive(Clone)]
#[non_exhaustive]
pub struct EngineConfig {
    /// Where streams live. Created if missing; one engine per directory at a time.
    pub data_dir: PathBuf,
    /// Core threads, each owning a share of the shards. `0` means one per available CPU.
    pub cores: usize,
    /// Pin core *i* to CPU *i* (modulo the CPUs available).
    pub pin_cores: bool,
    /// Size of every segment file of every shard log.
    pub segment_size_bytes: u64,
    /// Durability of a put that does not ask for one.
    pub durability: Durability,
    /// What a durable put's sync covers: each shard's own files (the default) or the whole
    /// filesystem of the data directory at once ([`SyncScope`]).
    pub sync_scope: SyncScope,
    /// With [`SyncScope::Filesystem`]: a filesystem syncer to share with the other engines
    /// on the same filesystem (a server's tenants), so that one failure stops them all and
    /// one marker at their common root (prepared by the engine opened there) covers them;
    /// `None`: the engine opens its own on its data directory.
    pub shared_filesystem_sync: Option<FilesystemSync>,
    /// Lifetime of iterator tokens.
    pub iterator_ttl_ms: u64,
    /// Per-shard throughput limits; `None` (the default) leaves shards unthrottled.
    pub throughput_limits: Option<ThroughputLimits>,
    /// Open shards the engine holds at most, over all streams (Kinesis' shard quota):
    /// creating more is `LimitExceeded`. Each open shard costs file descriptors and mappings.
    pub shards_max: u32,
    /// Messages a core's queue holds before senders wait.
    pub core_queue_depth: usize,
    /// Requests a core works on at once (appends in flight, logs opening); beyond it the core
    /// leaves messages in its queue, so memory held by pending puts stays bounded.
    pub core_tasks_max: usize,
    /// How often each core runs retention, sealing and spare-segment preparation.
    pub maintenance_interval_ms: u64,
    /// How often the control thread looks for closed shards whose every record has expired,
    /// to remove their files (they are no longer listed from the moment they expire).
    pub expiry_interval_ms: u64,
    /// Microseconds an idle core spins before parking: lower latency, more CPU.
    pub spin_before_park_us: u64,
    /// Microseconds a blocking put (`put_blocking` and the other `*_blocking` puts) polls
    /// for its answer before parking the caller's thread: an answer within it costs no sleep
    /// and no wake-up. Lower latency, more CPU on the callers' threads; give callers and cores
    /// CPUs of their own before turning it on.
    pub caller_spin_us: u64,
    /// Time source for arrival timestamps, retention and token expiry.
    pub clock: Arc<dyn Clock>,
    /// Labels added to every per-shard metric (beside `stream` and `shard`), to tell engines
    /// apart when one process runs several (the server labels its tenants' engines).
    pub metric_labels: Vec<(String, String)>,
    /// Hooks for the engine's own crash and fault tests (the `testing` feature).
    #[cfg(feature = "testing")]
    pub testing: TestHooks,
}

/// Hooks for crash and fault-injection tests; not for production (the `testing` feature).
#[cfg(feature = "testing")]
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct TestHooks {
    /// Called on the control thread at each step of a reshard (a test process stops there
    /// and is killed).
    pub reshard_observer: Option<Arc<dyn Fn(ReshardStep) + Send + Sync>>,
    /// Every shard log writes through this injector, which fails what its plan says and
    /// journals unsynced writes so a test can simulate power loss
    /// (docs/design/engine-faults.md).
    pub io_faults: Option<FaultyIo<GlommioIo>>,
}

/// The steps of a split or merge, in order (docs/design/resharding.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReshardStep {
    /// The children's logs are open; nothing routes to them.
    ChildrenOpened,
    /// The new layout is in the metadata log: the reshard has happened.
    Committed,
    /// The parents take no more appends; their ending positions are known.
    ParentsClosed,
    /// The catalog routes to the children.
    Applied,
    /// The parents' endings are in the metadata log.
    EndingsRecorded,
}

impl std::fmt::Debug for EngineConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineConfig")
            .field("data_dir", &self.data_dir)
            .field("cores", &self.cores)
            .field("segment_size_bytes", &self.segment_size_bytes)
            .field("durability", &self.durability)
            .field("sync_scope", &self.sync_scope)
            .field("throughput_limits", &self.throughput_limits)
            .finish_non_exhaustive()
    }
}

impl EngineConfig {
    /// Defaults for everything but the data directory: all CPUs, 64 MiB segments, durable
    /// puts, 300 s iterators, no throttling.
    pub fn new(data_dir: impl Into<PathBuf>) -> EngineConfig {
        EngineConfig {
            data_dir: data_dir.into(),
            cores: 0,
            pin_cores: true,
            segment_size_bytes: SEGMENT_SIZE_BYTES_DEFAULT,
            durability: Durability::Durable,
            sync_scope: SyncScope::PerFile,
            shared_filesystem_sync: None,
            iterator_ttl_ms: ITERATOR_TTL_MS_DEFAULT,
            throughput_limits: None,
            shards_max: 10_000,
            core_queue_depth: 1024,
            core_tasks_max: 256,
            maintenance_interval_ms: 100,
            expiry_interval_ms: 60_000,
            spin_before_park_us: 0,
            caller_spin_us: 0,
            clock: Arc::new(SystemClock),
            metric_labels: Vec::new(),
            #[cfg(feature = "testing")]
            testing: TestHooks::default(),
        }
    }

    /// The fault injector the shard logs write through, if a test set one.
    pub(crate) fn io_faults(&self) -> Option<&FaultyIo<GlommioIo>> {
        #[cfg(feature = "testing")]
        return self.testing.io_faults.as_ref();
        #[cfg(not(feature = "testing"))]
        None
    }

    /// Tells a test's observer that a reshard reached `step`.
    pub(crate) fn observe_reshard(&self, step: ReshardStep) {
        #[cfg(feature = "testing")]
        if let Some(observer) = &self.testing.reshard_observer {
            observer(step);
        }
        #[cfg(not(feature = "testing"))]
        let _ = step;
    }

    /// The number of core threads this configuration starts.
    pub fn core_count(&self) -> usize {
        if self.cores > 0 {
            self.cores
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    }
}

/// What the sync behind a durable put covers (docs/design/filesystem-sync.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncScope {
    /// Each shard log fdatasyncs its own segment files; puts to many shards wait for many
    /// syncs (they run concurrently, and the device merges what it can).
    #[default]
    PerFile,
    /// One `syncfs` of the data directory's filesystem answers every shard's durable waits at
    /// once (a group commit across shards and cores): durable puts into many shards cost one
    /// device flush. It also writes back every other dirty file of that filesystem, so give
    /// the data directory a filesystem of its own. Needs Linux 5.17 or later (its syncfs
    /// reports every error). A failed filesystem sync cannot say whose data it lost: every
    /// shard that asks for durability after it latches (reads go on, puts are refused) until
    /// the engine reopens, when each writes its data again.
    Filesystem,
}

/// Per-shard throughput limits (token buckets refilled continuously).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThroughputLimits {
    /// Bytes (data + partition keys) written per second.
    pub write_bytes_per_sec: u64,
    /// Records written per second.
    pub write_records_per_sec: u64,
    /// Bytes returned by reads per second.
    pub read_bytes_per_sec: u64,
    /// Read calls per second.
    pub read_calls_per_sec: u64,
}

impl Default for ThroughputLimits {
    /// Kinesis' provisioned shard: 1 MiB/s or 1000 records/s in, 2 MiB/s and 5 calls/s out.
    fn default() -> Self {
        ThroughputLimits {
            write_bytes_per_sec: SHARD_WRITE_BYTES_PER_SEC,
            write_records_per_sec: SHARD_WRITE_RECORDS_PER_SEC,
            read_bytes_per_sec: SHARD_READ_BYTES_PER_SEC,
            read_calls_per_sec: SHARD_READ_CALLS_PER_SEC,
        }
    }
}
