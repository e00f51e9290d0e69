//! One engine core: a glommio executor thread that owns a share of the shard logs.

use super::queue::QueueReceiver;
use crate::catalog::ShardKey;
use event_listener::Event;
use sluice_storage::{GlommioIo, ShardLog, sleep, spawn_detached};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
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
pub(crate) type Log = Rc<ShardLog<GlommioIo>>;

/// What a core owns. Lives on the core's thread only.
pub(crate) struct CoreState {
    logs: RefCell<HashMap<ShardKey, Log>>,
    in_flight: Cell<usize>,
    idle: Event,
    stopping: Cell<bool>,
}

impl CoreState {
    pub(crate) fn log(&self, key: ShardKey) -> Option<Log> {
        self.logs.borrow().get(&key).cloned()
    }

    pub(crate) fn insert(&self, key: ShardKey, log: Log) {
        let previous = self.logs.borrow_mut().insert(key, log);
        assert!(previous.is_none(), "shard {key:?} opened twice on one core");
    }

    pub(crate) fn remove(&self, key: ShardKey) -> Option<Log> {
        self.logs.borrow_mut().remove(&key)
    }

    /// Takes the log out of the core, waits until no task uses it any more (an append in
    /// flight, a maintenance pass that may be creating a spare segment), and syncs it: after
    /// this, nothing touches its directory.
    pub(crate) async fn close(&self, key: ShardKey) {
        let Some(log) = self.remove(key) else {
            return;
        };
        while Rc::strong_count(&log) > 1 {
            sleep(Duration::from_millis(1)).await;
        }
        // A failed sync latched the log; what was acknowledged durable is already durable.
        let _ = log.sync().await;
    }

    fn all_logs(&self) -> Vec<Log> {
        self.logs.borrow().values().cloned().collect()
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

/// The core's main loop: take jobs until shutdown, then drain, sync and return. At most
/// `tasks_max` tasks run at once; beyond that the core stops taking jobs, its queue fills, and
/// callers wait (back-pressure instead of unbounded memory).
pub(crate) async fn run_core(
    queue: QueueReceiver<CoreMessage>,
    maintenance_interval: Duration,
    tasks_max: usize,
) {
    let state = Rc::new(CoreState {
        logs: RefCell::new(HashMap::new()),
        in_flight: Cell::new(0),
        idle: Event::new(),
        stopping: Cell::new(false),
    });
    state.spawn(maintenance_loop(state.clone(), maintenance_interval));
    loop {
        state.wait_below(tasks_max).await;
        match queue.recv().await {
            Some(CoreMessage::Job(job)) => job(&state),
            Some(CoreMessage::Shutdown) | None => break,
        }
    }
    state.stopping.set(true);
    state.wait_below(1).await;
    for log in state.all_logs() {
        // A failed sync latched the log; what was acknowledged durable is already durable.
        let _ = log.sync().await;
    }
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
