//! The runtime Sluice runs on: glommio executors, one per thread (the engine's cores), with
//! task spawning and timers on the current executor. Like the storage I/O seam ([`crate::io`]),
//! this module keeps glommio's types to itself: nothing else in Sluice names glommio.

use glommio::{LocalExecutorBuilder, Placement, PoolPlacement};
use std::future::Future;
use std::io;

/// glommio registers this much memory with io_uring per executor. Sluice writes through the
/// page cache and never uses glommio's DMA buffers, so it keeps the minimum: that also keeps
/// the executor within a default `ulimit -l`.
const IO_MEMORY_BYTES: usize = 64 * 1024;

/// Threads of each executor's blocking pool, where every shard's fdatasync runs (off the
/// ring: see `io::glommio`). glommio's default is one, so a core's shards synced one after
/// another and durable ingest fell as shards were added (2 cores, 100 B records: 2 shards
/// 1.9 M records/s, 16 shards 0.41 M). Syncs of different files in flight together share the
/// device's cache flushes. Mostly asleep in the kernel, the threads are not pinned.
const BLOCKING_THREADS: usize = 8;

/// Runs `future` to completion on a new single-threaded glommio executor on this thread.
///
/// For tests, benchmarks and tools; the engine's cores build their executors in sluice-core.
pub fn block_on<T>(future: impl Future<Output = T>) -> T {
    let executor = LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(IO_MEMORY_BYTES)
        .blocking_thread_pool_placement(PoolPlacement::Unbound(BLOCKING_THREADS))
        .make()
        .expect("cannot start a glommio executor (is io_uring available?)");
    executor.run(future)
}

/// How to start an engine core: an executor on its own thread.
#[derive(Debug, Clone)]
pub struct CoreSpec {
    /// Thread name (glommio appends an id).
    pub name: String,
    /// Pin the thread to this CPU; `None` leaves it unbound.
    pub cpu: Option<usize>,
    /// Spin this long before parking when idle: lower wake-up latency for cross-thread
    /// requests at the cost of CPU time.
    pub spin_before_park: Option<std::time::Duration>,
}

/// A running core thread; [`CoreThread::join`] waits for its future to finish.
#[derive(Debug)]
pub struct CoreThread<T: Send + 'static>(glommio::ExecutorJoinHandle<T>);

impl<T: Send + 'static> CoreThread<T> {
    /// Waits for the core's future to return.
    pub fn join(self) -> io::Result<T> {
        self.0.join().map_err(|e| io::Error::other(e.to_string()))
    }
}

/// Starts a glommio executor on a new thread and runs the future `make` builds on it.
pub fn spawn_core<G, F, T>(spec: CoreSpec, make: G) -> io::Result<CoreThread<T>>
where
    G: FnOnce() -> F + Send + 'static,
    F: Future<Output = T> + 'static,
    T: Send + 'static,
{
    let placement = match spec.cpu {
        Some(cpu) => Placement::Fixed(cpu),
        None => Placement::Unbound,
    };
    let mut builder = LocalExecutorBuilder::new(placement)
        .name(&spec.name)
        .io_memory(IO_MEMORY_BYTES)
        .blocking_thread_pool_placement(PoolPlacement::Unbound(BLOCKING_THREADS));
    if let Some(spin) = spec.spin_before_park {
        builder = builder.spin_before_park(spin);
    }
    builder
        .spawn(make)
        .map(CoreThread)
        .map_err(|e| io::Error::other(e.to_string()))
}

/// Spawns a task on the current glommio executor that runs on its own (nobody joins it).
pub fn spawn_detached(future: impl Future<Output = ()> + 'static) {
    glommio::spawn_local(future).detach();
}

/// Spawns a task on the current glommio executor; await the result to join it.
pub fn spawn<T: 'static>(future: impl Future<Output = T> + 'static) -> impl Future<Output = T> {
    glommio::spawn_local(future)
}

/// Sleeps on the current glommio executor's timer, letting other tasks and I/O run.
pub async fn sleep(duration: std::time::Duration) {
    glommio::timer::sleep(duration).await;
}
