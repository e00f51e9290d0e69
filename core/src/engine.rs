//! The `Engine`: opening, the threads it runs, shutdown, and how calls reach them.

use crate::catalog::Catalog;
use crate::config::{EngineConfig, SyncScope};
use crate::control::{Control, ControlJobOrStop, StepError};
use crate::error::{AdminError, CloseError, OpenError};
use crate::runtime::queue::{QueueSender, queue};
use crate::runtime::{CoreMessage, run_core};
use crate::shared::EngineShared;
use crate::token::TokenKey;
use sluice_storage::format::{BATCH_HEADER_LEN, RECORD_HEADER_LEN};
use sluice_storage::runtime::{CoreSpec, CoreThread, spawn_core};
use sluice_storage::{
    DataDir, FilesystemSync, LogConfig, StorageError, prepare_after_failed_filesystem_sync,
};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Control-plane requests waiting at most; control calls are rare.
const CONTROL_QUEUE_DEPTH: usize = 64;

/// A Sluice engine: streams of shards, each owned by one core thread. Cheap to clone; the
/// engine shuts down when the last clone is dropped (accepted puts finish, logs are synced),
/// or at once with [`Engine::close`], which reports whether the final syncs succeeded.
///
/// Operations that wait for another thread return a call that is a future on any runtime and
/// has a blocking `.wait()` for plain threads. Do not call `.wait()` from inside an async
/// task.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<EngineInner>,
}

pub(crate) struct EngineInner {
    pub(crate) shared: Arc<EngineShared>,
    control: QueueSender<ControlJobOrStop>,
    threads: Mutex<Threads>,
    _lock: std::fs::File,
}

#[derive(Default)]
struct Threads {
    control: Option<JoinHandle<Result<(), StorageError>>>,
    cores: Vec<CoreThread<Result<(), StorageError>>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("data_dir", &self.inner.shared.data_dir.root())
            .field("cores", &self.inner.shared.cores.len())
            .finish()
    }
}

impl Engine {
    /// Opens (or creates) the engine in `config.data_dir`: starts the core threads, replays
    /// the metadata log and reopens every shard log (recovering any that were not closed).
    pub fn open(config: EngineConfig) -> Result<Engine, OpenError> {
        let record_size_bytes_supported = validate(&config)?;
        let batch_bytes_max = LogConfig {
            segment_size_bytes: config.segment_size_bytes,
            ..LogConfig::default()
        }
        .batch_bytes_max();
        let data_dir = DataDir::new(&config.data_dir)?;
        let lock = data_dir.lock()?;
        let token_key = TokenKey::load_or_create(data_dir.root())?;
        // A filesystem sync of the last run failed: every log writes its data again as it
        // opens (whatever the scope now).
        prepare_after_failed_filesystem_sync(data_dir.root(), crate::control::META_LOG).map_err(
            |e| {
                OpenError::Storage(StorageError::io(
                    "mark the logs for rewriting in",
                    data_dir.root(),
                    e,
                ))
            },
        )?;
        let filesystem_sync = filesystem_sync(&config)?;
        let (threads, cores) = start_cores(&config)?;
        let shared = Arc::new(EngineShared {
            config,
            data_dir,
            catalog: Catalog::default(),
            cores,
            token_key,
            record_size_bytes_supported,
            batch_bytes_max,
            filesystem_sync,
        });
        let (control_tx, control_rx) = queue(CONTROL_QUEUE_DEPTH);
        // Build the engine first: if replay fails, dropping it stops the cores.
        let engine = Engine {
            inner: Arc::new(EngineInner {
                shared: shared.clone(),
                control: control_tx,
                threads: Mutex::new(threads),
                _lock: lock,
            }),
        };
        let control = Control::open(shared).map_err(|e| match e {
            StepError::Storage(e) => OpenError::from(e),
            StepError::Shutdown => OpenError::Thread {
                what: "a core",
                source: std::io::Error::other("a core stopped while the engine opened"),
            },
        })?;
        let thread = std::thread::Builder::new()
            .name("sluice-control".into())
            .spawn(move || control.run(control_rx))
            .map_err(|source| OpenError::Thread {
                what: "the control thread",
                source,
            })?;
        engine
            .inner
            .threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .control = Some(thread);
        Ok(engine)
    }

    pub(crate) fn shared(&self) -> &EngineShared {
        &self.inner.shared
    }

    /// Runs `op` on the control thread and returns its result.
    pub(crate) async fn control<T: Send + 'static>(
        &self,
        op: impl FnOnce(&mut Control) -> Result<T, AdminError> + Send + 'static,
    ) -> Result<T, AdminError> {
        let (tx, rx) = oneshot::channel();
        let job = Box::new(move |control: &mut Control| {
            let _ = tx.send(op(control));
        });
        self.inner
            .control
            .send(ControlJobOrStop::Job(job))
            .await
            .map_err(|_| AdminError::Shutdown)?;
        rx.await.map_err(|_| AdminError::Shutdown)?
    }

    /// The data directory.
    pub fn data_dir(&self) -> &std::path::Path {
        self.shared().data_dir.root()
    }

    /// Number of core threads.
    pub fn core_count(&self) -> usize {
        self.shared().cores.len()
    }

    /// The largest record (partition key + data) this engine can store: 10 MiB, or less when
    /// the configured segment size cannot hold that much.
    pub fn record_size_bytes_supported(&self) -> u64 {
        self.shared().record_size_bytes_supported
    }
}

impl Engine {
    /// Shuts the engine down now and reports how it went: the control thread stops (the
    /// consumers logs synced), every core finishes the work it accepted, syncs each shard log
    /// and stops. Returns the first failure: a final sync that failed, a log latched by an
    /// earlier failure with data not yet on disk, a latched metadata log, or a thread that
    /// panicked. Other clones and handles stay valid, but every call through them answers
    /// `Shutdown` from now on (reads of mapped records already returned keep working).
    pub fn close(self) -> Result<(), CloseError> {
        self.inner.shutdown()
    }
}

impl EngineInner {
    /// Stops the threads (once: later calls find none) and returns the first failure.
    fn shutdown(&self) -> Result<(), CloseError> {
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        let mut first: Option<CloseError> = None;
        if let Some(control) = threads.control {
            let _ = self.control.send_blocking(ControlJobOrStop::Stop);
            let ended = control.join().map_err(|panic| panic_text(&*panic));
            note(&mut first, "the control thread", ended);
        }
        for core in &self.shared.cores {
            let _ = core.send_blocking(CoreMessage::Shutdown);
        }
        for core in threads.cores {
            note(&mut first, "a core", core.join().map_err(|e| e.to_string()));
        }
        first.map_or(Ok(()), Err)
    }
}

/// Keeps the first failure of a thread's end: its join failed, or it reported a storage error.
fn note(
    first: &mut Option<CloseError>,
    what: &'static str,
    ended: Result<Result<(), StorageError>, String>,
) {
    let failure = match ended {
        Ok(Ok(())) => return,
        Ok(Err(e)) => CloseError::Storage(e),
        Err(detail) => CloseError::Thread { what, detail },
    };
    first.get_or_insert(failure);
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_owned())
}

impl Drop for EngineInner {
    fn drop(&mut self) {
        // Nobody is left to hear the result: `Engine::close` is the way to get it.
        let _ = self.shutdown();
    }
}

fn core_spec(config: &EngineConfig, index: usize) -> CoreSpec {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    CoreSpec {
        name: format!("sluice-core-{index}"),
        cpu: config.pin_cores.then_some(index % cpus),
        spin_before_park: (config.spin_before_park_us > 0)
            .then(|| Duration::from_micros(config.spin_before_park_us)),
    }
}

/// The filesystem syncer `SyncScope::Filesystem` asks for (through the test injector, when a
/// test set one, so its power-loss model sees the syncs).
fn filesystem_sync(config: &EngineConfig) -> Result<Option<FilesystemSync>, OpenError> {
    if config.sync_scope != SyncScope::Filesystem {
        return Ok(None);
    }
    if let Some(shared) = &config.shared_filesystem_sync {
        return Ok(Some(shared.clone()));
    }
    let dir = &config.data_dir;
    let opened = match config.io_faults() {
        Some(faults) => faults.filesystem_sync(dir),
        None => FilesystemSync::open(dir),
    };
    opened.map(Some).map_err(|e| match e.kind() {
        std::io::ErrorKind::Unsupported => OpenError::Config(format!("sync_scope Filesystem: {e}")),
        _ => OpenError::Storage(StorageError::io("start the filesystem sync of", dir, e)),
    })
}

/// Starts the core threads and waits until each runs. A core whose executor could not start
/// (its io_uring refused by a seccomp filter or `kernel.io_uring_disabled`, too little locked
/// memory) ends its thread before running anything: that is an error here, naming the cause,
/// where the engine used to wait for ever on a core that would never answer.
fn start_cores(
    config: &EngineConfig,
) -> Result<(Threads, Vec<QueueSender<CoreMessage>>), OpenError> {
    let mut threads = Threads::default();
    let mut cores = Vec::new();
    for index in 0..config.core_count() {
        let (tx, rx) = queue(config.core_queue_depth);
        let interval = Duration::from_millis(config.maintenance_interval_ms);
        let tasks_max = config.core_tasks_max;
        let (started_tx, started) = std::sync::mpsc::sync_channel::<()>(1);
        let thread = spawn_core(core_spec(config, index), move || {
            let _ = started_tx.send(());
            run_core(rx, interval, tasks_max)
        })
        .map_err(|source| OpenError::Thread {
            what: "a core",
            source,
        })?;
        if started.recv().is_err() {
            // The executor failed before running the core: its thread's result says why.
            let cause = match thread.join() {
                Err(e) => e.to_string(),
                Ok(_) => "it stopped at once".to_owned(),
            };
            return Err(OpenError::Thread {
                what: "a core",
                source: std::io::Error::other(format!(
                    "core {index} could not start: {cause} (io_uring refused by a seccomp \
                     filter or kernel.io_uring_disabled, or too little locked memory?)"
                )),
            });
        }
        cores.push(tx);
        threads.cores.push(thread);
    }
    Ok((threads, cores))
}

/// Checks the configuration; returns the largest record a segment can hold.
fn validate(config: &EngineConfig) -> Result<u64, OpenError> {
    if config.core_queue_depth == 0 {
        return Err(OpenError::Config(
            "core_queue_depth must be positive".into(),
        ));
    }
    if config.maintenance_interval_ms == 0 {
        return Err(OpenError::Config(
            "maintenance_interval_ms must be positive".into(),
        ));
    }
    if config.shards_max == 0 {
        return Err(OpenError::Config("shards_max must be positive".into()));
    }
    if config.expiry_interval_ms == 0 {
        return Err(OpenError::Config(
            "expiry_interval_ms must be positive".into(),
        ));
    }
    // The maintenance loop is one of a core's tasks; at least one request must fit beside it.
    if config.core_tasks_max < 2 {
        return Err(OpenError::Config(
            "core_tasks_max must be at least 2".into(),
        ));
    }
    if config.iterator_ttl_ms == 0 {
        return Err(OpenError::Config("iterator_ttl_ms must be positive".into()));
    }
    // Segments smaller than a default record are allowed (tests, tiny deployments): the
    // engine then accepts only records that fit.
    let probe = LogConfig {
        segment_size_bytes: config.segment_size_bytes,
        record_size_bytes_max: 1,
        ..LogConfig::default()
    };
    // The storage error's text already says "invalid configuration"; `OpenError::Config`
    // says it again, so it carries only the reason.
    probe.validate().map_err(|e| match e {
        StorageError::InvalidConfig(reason) => OpenError::Config(reason),
        other => OpenError::Config(other.to_string()),
    })?;
    let per_record = (BATCH_HEADER_LEN + RECORD_HEADER_LEN) as u64;
    let capacity = (probe.batch_bytes_max() - per_record) & !7;
    Ok(capacity.min(crate::limits::RECORD_SIZE_BYTES_LIMIT))
}
