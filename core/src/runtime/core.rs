//! One engine core: a glommio executor thread that owns a share of the shard logs.

use super::io::EngineIo;
use super::queue::QueueReceiver;
use crate::catalog::ShardKey;
use event_listener::Event;
use sluice_storage::runtime::{sleep, spawn_detached};
use sluice_storage::{ReadOnlyLog, ShardLog, StorageError};
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

/// Work for a core: runs on the core's thread with its state.
pub(crate) type CoreJob = Box<dyn FnOnce(&Rc<CoreState>) + Send>;

/// A message on a core's queue.
pub(crate) enum CoreMessage {
    /// Run this.
    Job(CoreJob),
    /// Finish accepted work, sync every log, stop.
    Shutdown,
}

/// A shard log as the core holds it.
pub(crate) type Log = Rc<ShardLog<EngineIo>>;

/// What a core owns. Lives on the core's thread only.
pub(crate) struct CoreState {
    logs: RefCell<HashMap<ShardKey, Log>>,
    /// Replicated logs of cluster mode (`crate::replica`).
    replicas: RefCell<HashMap<crate::replica::ReplicaId, Log>>,
    /// Closed shards whose writers let go: they hold no descriptor until they are removed.
    read_only: RefCell<HashMap<ShardKey, ReadOnlyLog>>,
    in_flight: Cell<usize>,
    idle: Event,
    stopping: Cell<bool>,
    /// Shards being closed by a reshard: puts to them answer `Resharded`. Expired shards
    /// stay in it, so a put routed by a very old layout still learns that the layout changed.
    closing: RefCell<HashSet<ShardKey>>,
    /// Shards whose writers are letting go (`release_writer` runs): `close` and `forget`
    /// wait for it, so no read-only log is left behind a closed one.
    releasing: RefCell<HashSet<ShardKey>>,
    /// Appends per shard that are not visible yet; a closing shard waits for zero.
    appending: RefCell<HashMap<ShardKey, usize>>,
    appends_visible: Event,
}

impl CoreState {
    pub(crate) fn log(&self, key: ShardKey) -> Option<Log> {
        self.logs.borrow().get(&key).cloned()
    }

    pub(crate) fn insert(&self, key: ShardKey, log: Log) {
        let previous = self.logs.borrow_mut().insert(key, log);
        assert!(previous.is_none(), "shard {key:?} opened twice on one core");
    }

    /// Holds a closed shard's log without its writer (see [`CoreState::release_writer`]).
    pub(crate) fn insert_read_only(&self, key: ShardKey, log: ReadOnlyLog) {
        self.mark_closed(key);
        let previous = self.read_only.borrow_mut().insert(key, log);
        assert!(previous.is_none(), "shard {key:?} opened twice on one core");
    }

    /// Changes a shard's retention, whether its writer is open or not; `None` if the core
    /// does not hold the shard.
    pub(crate) fn set_retention_ms(
        &self,
        key: ShardKey,
        retention_ms: u64,
    ) -> Option<Result<(), StorageError>> {
        if let Some(log) = self.log(key) {
            return Some(log.set_retention_ms(retention_ms));
        }
        let read_only = self.read_only.borrow();
        Some(read_only.get(&key)?.set_retention_ms(retention_ms))
    }

    /// Takes the log out of the core and waits until no task uses it any more (an append in
    /// flight, a durable append waiting for its sync, a maintenance pass creating a spare
    /// segment).
    async fn take_idle(&self, key: ShardKey) -> Option<ShardLog<super::io::EngineIo>> {
        let mut log = self.logs.borrow_mut().remove(&key)?;
        loop {
            match Rc::try_unwrap(log) {
                Ok(log) => return Some(log),
                Err(shared) => log = shared,
            }
            sleep(Duration::from_millis(1)).await;
        }
    }

    /// Takes the log out of the core, waits until no task uses it, and syncs it: after
    /// this, nothing touches its directory.
    pub(crate) async fn close(&self, key: ShardKey) {
        self.wait_released(key).await;
        self.closing.borrow_mut().remove(&key);
        self.read_only.borrow_mut().remove(&key);
        let Some(log) = self.take_idle(key).await else {
            return;
        };
        // A failed sync latched the log; what was acknowledged durable is already durable.
        let _ = log.close().await;
    }

    /// A reshard closed the shard and recorded its ending: its writer syncs and closes its
    /// files and directory lock, and readers go on reading from the mappings. Puts to it
    /// keep answering `Resharded`.
    pub(crate) async fn release_writer(&self, key: ShardKey) {
        debug_assert!(
            self.is_closing(key),
            "only a closed shard lets go of its writer"
        );
        self.releasing.borrow_mut().insert(key);
        if let Some(log) = self.take_idle(key).await {
            let read_only = log.into_read_only().await;
            self.read_only.borrow_mut().insert(key, read_only);
        }
        self.releasing.borrow_mut().remove(&key);
    }

    /// Drops an expired shard's read-only log; the shard stays marked closed.
    pub(crate) async fn forget(&self, key: ShardKey) {
        self.wait_released(key).await;
        self.read_only.borrow_mut().remove(&key);
    }

    async fn wait_released(&self, key: ShardKey) {
        while self.releasing.borrow().contains(&key) {
            sleep(Duration::from_millis(1)).await;
        }
    }

    /// True when a reshard is closing the shard: new appends must go to its children.
    pub(crate) fn is_closing(&self, key: ShardKey) -> bool {
        self.closing.borrow().contains(&key)
    }

    /// Counts an append to `key` until the guard is dropped (once the append is visible, or
    /// has failed, or was cancelled).
    pub(crate) fn begin_append(self: &Rc<Self>, key: ShardKey) -> AppendGuard {
        *self.appending.borrow_mut().entry(key).or_insert(0) += 1;
        AppendGuard {
            state: self.clone(),
            key,
        }
    }

    /// Stops appends to `key` and waits until every append already started is visible;
    /// returns the log position after its last record (the shard's ending position), or
    /// `None` if the core does not hold the shard.
    pub(crate) async fn close_for_reshard(&self, key: ShardKey) -> Option<u64> {
        let log = self.log(key)?;
        self.closing.borrow_mut().insert(key);
        loop {
            let visible = self.appends_visible.listen();
            if self.appending.borrow().get(&key).copied().unwrap_or(0) == 0 {
                break;
            }
            visible.await;
        }
        Some(log.next_seq())
    }

    /// Marks a shard that a reshard closed before a restart: it takes no appends.
    pub(crate) fn mark_closed(&self, key: ShardKey) {
        self.closing.borrow_mut().insert(key);
    }

    fn all_logs(&self) -> Vec<Log> {
        let logs = self.logs.borrow();
        let replicas = self.replicas.borrow();
        logs.values().chain(replicas.values()).cloned().collect()
    }

    pub(crate) fn replica(&self, id: crate::replica::ReplicaId) -> Option<Log> {
        self.replicas.borrow().get(&id).cloned()
    }

    pub(crate) fn insert_replica(&self, id: crate::replica::ReplicaId, log: Log) {
        let previous = self.replicas.borrow_mut().insert(id, log);
        assert!(
            previous.is_none(),
            "replica {id:?} opened twice on one core"
        );
    }

    pub(crate) fn remove_replica(&self, id: crate::replica::ReplicaId) -> Option<Log> {
        self.replicas.borrow_mut().remove(&id)
    }

    /// Runs `task` on this core; shutdown waits for it.
    pub(crate) fn spawn(self: &Rc<Self>, task: impl Future<Output = ()> + 'static) {
        self.in_flight.set(self.in_flight.get() + 1);
        let state = self.clone();
        spawn_detached(async move {
            task.await;
            state.in_flight.set(state.in_flight.get() - 1);
            state.idle.notify(usize::MAX);
        });
    }

    /// Waits until fewer than `limit` tasks run.
    async fn wait_below(&self, limit: usize) {
        while self.in_flight.get() >= limit {
            let idle = self.idle.listen();
            if self.in_flight.get() < limit {
                break;
            }
            idle.await;
        }
    }
}

/// Counts one append as not yet visible (see [`CoreState::begin_append`]).
pub(crate) struct AppendGuard {
    state: Rc<CoreState>,
    key: ShardKey,
}

impl Drop for AppendGuard {
    fn drop(&mut self) {
        let mut appending = self.state.appending.borrow_mut();
        let count = appending
            .get_mut(&self.key)
            .expect("counted by begin_append");
        *count -= 1;
        if *count == 0 {
            appending.remove(&self.key);
        }
        drop(appending);
        self.state.appends_visible.notify(usize::MAX);
    }
}

/// The core's main loop: take jobs until shutdown, then drain, sync and return the first
/// failed sync (for `Engine::close`). At most `tasks_max` tasks run at once; beyond that the
/// core stops taking jobs, its queue fills, and callers wait (back-pressure instead of
/// unbounded memory).
pub(crate) async fn run_core(
    queue: QueueReceiver<CoreMessage>,
    maintenance_interval: Duration,
    tasks_max: usize,
) -> Result<(), StorageError> {
    let state = Rc::new(CoreState {
        logs: RefCell::new(HashMap::new()),
        replicas: RefCell::new(HashMap::new()),
        read_only: RefCell::new(HashMap::new()),
        in_flight: Cell::new(0),
        idle: Event::new(),
        stopping: Cell::new(false),
        closing: RefCell::new(HashSet::new()),
        releasing: RefCell::new(HashSet::new()),
        appending: RefCell::new(HashMap::new()),
        appends_visible: Event::new(),
    });
    state.spawn(maintenance_loop(state.clone(), maintenance_interval));
    loop {
        state.wait_below(tasks_max).await;
        match queue.recv().await {
            Some(CoreMessage::Job(job)) => job(&state),
            Some(CoreMessage::Shutdown) | None => break,
        }
    }
    // Calls sent from now on fail at once instead of waiting in the queue.
    drop(queue);
    state.stopping.set(true);
    state.wait_below(1).await;
    let mut synced = Ok(());
    // Closed shards synced when they let go of their writers: report a sync that failed then.
    for log in state.read_only.borrow().values() {
        if let Some(cause) = log.sync_error() {
            synced = synced.and(Err(StorageError::Latched {
                cause: cause.to_owned(),
            }));
        }
    }
    for log in state.all_logs() {
        // A failed sync latched the log; what was acknowledged durable is already durable,
        // what was only visible may not be: the caller of `close` hears of it.
        if let Err(e) = log.sync().await {
            synced = synced.and(Err(e));
        }
    }
    // Drop the logs while the executor still runs: glommio closes files asynchronously, and
    // a close still pending when the executor stops never happens (a descriptor leak).
    state.logs.borrow_mut().clear();
    state.replicas.borrow_mut().clear();
    sleep(Duration::from_millis(1)).await;
    synced
}

/// Retention, sealing and spare segments for every log on the core, every `interval`.
async fn maintenance_loop(state: Rc<CoreState>, interval: Duration) {
    while !state.stopping.get() {
        for log in state.all_logs() {
            // A failure latches that log and is reported to its writers; keep serving others.
            let _ = log.maintain().await;
        }
        sleep(interval).await;
    }
}
