//! The store in memory, with etcd's semantics: one revision per write transaction, creation
//! and modification revisions per key, leases whose end deletes their keys in one revision,
//! watches from any revision still in the history. For tests and for one process; it keeps
//! nothing across restarts.
//!
//! Leases end lazily: every operation, and every waiting watch at the earliest deadline,
//! first expires what is due. Every observation goes through one of those, so nobody can
//! see a lease alive past its deadline.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::backend::{Backend, BackendWatch, Compare, Kv, KvEvent, LeaseId, Op, TxnOutcome};
use crate::error::MetaError;
use crate::model::Revision;

/// Events kept for watches; older ones are compacted away (a watch from before them fails
/// with `Compacted`, as with etcd).
const HISTORY_MAX: usize = 100_000;

/// The in-memory store. Clones share it.
#[derive(Clone, Default)]
pub struct EmbeddedBackend {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// Notified after every change (watches wait on it).
    changed: Notify,
}

struct State {
    /// The revision of the last write (etcd starts an empty store at 1).
    revision: Revision,
    /// Revisions up to this one are gone from `history`.
    compacted: Revision,
    /// The revision of the last explicit compaction (0: none).
    compacted_at: Revision,
    kv: BTreeMap<String, Kv>,
    leases: HashMap<LeaseId, Lease>,
    next_lease: LeaseId,
    history: VecDeque<KvEvent>,
}

struct Lease {
    ttl: Duration,
    deadline: Instant,
}

impl Default for State {
    fn default() -> State {
        State {
            revision: 1,
            compacted: 0,
            compacted_at: 0,
            kv: BTreeMap::new(),
            leases: HashMap::new(),
            next_lease: 0x5100_0000,
            history: VecDeque::new(),
        }
    }
}

impl EmbeddedBackend {
    /// An empty store.
    pub fn new() -> EmbeddedBackend {
        EmbeddedBackend::default()
    }

    /// The state with every due lease ended.
    fn state(&self) -> MutexGuard<'_, State> {
        let mut state = self
            .shared
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if state.expire(Instant::now()) {
            self.shared.changed.notify_waiters();
        }
        state
    }
}

impl State {
    /// Ends every lease due at `now`, each deleting its keys at a revision of its own.
    /// Returns whether anything changed.
    fn expire(&mut self, now: Instant) -> bool {
        let mut due: Vec<LeaseId> = self
            .leases
            .iter()
            .filter(|(_, l)| l.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        due.sort_unstable_by_key(|id| (self.leases[id].deadline, *id));
        let mut changed = false;
        for lease in due {
            changed |= self.end_lease(lease);
        }
        changed
    }

    fn end_lease(&mut self, lease: LeaseId) -> bool {
        if self.leases.remove(&lease).is_none() {
            return false;
        }
        let keys: Vec<String> = self
            .kv
            .values()
            .filter(|kv| kv.lease == lease)
            .map(|kv| kv.key.clone())
            .collect();
        if keys.is_empty() {
            return false;
        }
        self.revision += 1;
        for key in keys {
            self.kv.remove(&key);
            self.record(KvEvent::Delete {
                key,
                revision: self.revision,
            });
        }
        true
    }

    fn record(&mut self, event: KvEvent) {
        self.history.push_back(event);
        while self.history.len() > HISTORY_MAX {
            if let Some(old) = self.history.pop_front() {
                self.compacted = self.compacted.max(old.revision());
            }
        }
    }

    fn holds(&self, compare: &Compare) -> bool {
        match compare {
            Compare::CreateRevision(key, rev) => {
                self.kv.get(key).map_or(0, |kv| kv.create_revision) == *rev
            }
            Compare::ModRevision(key, rev) => {
                self.kv.get(key).map_or(0, |kv| kv.mod_revision) == *rev
            }
        }
    }

    /// Applies the writes at one new revision; as etcd, none if nothing changes (only
    /// deletions of absent keys), and two writes to one key are refused.
    fn apply(&mut self, ops: Vec<Op>) -> Result<(), MetaError> {
        let mut keys = std::collections::BTreeSet::new();
        for op in &ops {
            let (Op::Put { key, .. } | Op::Delete(key)) = op;
            if !keys.insert(key) {
                return Err(MetaError::InvalidRequest(
                    "duplicate key given in txn request".into(),
                ));
            }
            if let Op::Put { lease, .. } = op
                && *lease != 0
                && !self.leases.contains_key(lease)
            {
                return Err(MetaError::LeaseExpired);
            }
        }
        let changes = |op: &Op| match op {
            Op::Put { .. } => true,
            Op::Delete(key) => self.kv.contains_key(key),
        };
        if !ops.iter().any(changes) {
            return Ok(());
        }
        self.revision += 1;
        let revision = self.revision;
        for op in ops {
            match op {
                Op::Put { key, value, lease } => {
                    let create_revision =
                        self.kv.get(&key).map_or(revision, |kv| kv.create_revision);
                    let kv = Kv {
                        key: key.clone(),
                        value,
                        create_revision,
                        mod_revision: revision,
                        lease,
                    };
                    self.kv.insert(key, kv.clone());
                    self.record(KvEvent::Put(kv));
                }
                Op::Delete(key) => {
                    if self.kv.remove(&key).is_some() {
                        self.record(KvEvent::Delete { key, revision });
                    }
                }
            }
        }
        Ok(())
    }

    /// The earliest lease deadline: when a waiting watch must look again.
    fn next_deadline(&self) -> Option<Instant> {
        self.leases.values().map(|l| l.deadline).min()
    }
}

impl Backend for EmbeddedBackend {
    type Watch = EmbeddedWatch;

    async fn grant(&self, ttl: Duration) -> Result<LeaseId, MetaError> {
        // Whole seconds, at least one, as etcd grants them (etcd also has a minimum TTL of
        // its own, 2 s with its default timings).
        let ttl = Duration::from_secs(ttl.as_millis().div_ceil(1000).max(1) as u64);
        let mut state = self.state();
        state.next_lease += 1;
        let id = state.next_lease;
        state.leases.insert(
            id,
            Lease {
                ttl,
                deadline: Instant::now() + ttl,
            },
        );
        drop(state);
        // A new deadline: watches waiting for the earliest one look again.
        self.shared.changed.notify_waiters();
        Ok(id)
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<bool, MetaError> {
        let mut state = self.state();
        Ok(match state.leases.get_mut(&lease) {
            Some(l) => {
                l.deadline = Instant::now() + l.ttl;
                true
            }
            None => false,
        })
    }

    async fn revoke(&self, lease: LeaseId) -> Result<(), MetaError> {
        let changed = self.state().end_lease(lease);
        if changed {
            self.shared.changed.notify_waiters();
        }
        Ok(())
    }

    async fn range(&self, prefix: &str) -> Result<(Vec<Kv>, Revision), MetaError> {
        let state = self.state();
        let kvs = state
            .kv
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, kv)| kv.clone())
            .collect();
        Ok((kvs, state.revision))
    }

    async fn get(&self, key: &str) -> Result<Option<Kv>, MetaError> {
        Ok(self.state().kv.get(key).cloned())
    }

    async fn txn(&self, when: Vec<Compare>, then: Vec<Op>) -> Result<TxnOutcome, MetaError> {
        let mut state = self.state();
        if !when.iter().all(|c| state.holds(c)) {
            return Ok(TxnOutcome {
                succeeded: false,
                revision: state.revision,
            });
        }
        state.apply(then)?;
        let revision = state.revision;
        drop(state);
        self.shared.changed.notify_waiters();
        Ok(TxnOutcome {
            succeeded: true,
            revision,
        })
    }

    async fn watch(&self, prefix: &str, from: Revision) -> Result<EmbeddedWatch, MetaError> {
        let state = self.state();
        // As etcd: a start revision of 0 (or below) means from now on.
        let from = if from <= 0 { state.revision + 1 } else { from };
        if from <= state.compacted {
            return Err(MetaError::Compacted {
                asked: from,
                compacted: state.compacted + 1,
            });
        }
        Ok(EmbeddedWatch {
            store: self.clone(),
            prefix: prefix.to_owned(),
            next: from,
        })
    }

    async fn compact(&self, revision: Revision) -> Result<(), MetaError> {
        let mut state = self.state();
        // etcd's refusals: a revision not written yet, or one at or below the last compaction.
        if revision > state.revision {
            return Err(MetaError::InvalidRequest(
                "mvcc: required revision is a future revision".into(),
            ));
        }
        if revision <= state.compacted_at {
            return Err(MetaError::Compacted {
                asked: revision,
                compacted: state.compacted_at,
            });
        }
        state.compacted_at = revision;
        while state
            .history
            .front()
            .is_some_and(|e| e.revision() < revision)
        {
            state.history.pop_front();
        }
        state.compacted = state.compacted.max(revision - 1);
        Ok(())
    }
}

/// A watch on the in-memory store.
pub struct EmbeddedWatch {
    store: EmbeddedBackend,
    prefix: String,
    /// The first revision not yet delivered.
    next: Revision,
}

impl EmbeddedWatch {
    /// The events from `next` on, or when to look again.
    fn poll_events(&self, state: &State) -> Result<Vec<KvEvent>, MetaError> {
        if self.next <= state.compacted {
            return Err(MetaError::Compacted {
                asked: self.next,
                compacted: state.compacted + 1,
            });
        }
        // The history is in revision order: skip what was delivered, keep this prefix's.
        let start = state.history.partition_point(|e| e.revision() < self.next);
        Ok(state
            .history
            .range(start..)
            .filter(|e| e.key().starts_with(&self.prefix))
            .cloned()
            .collect())
    }
}

impl BackendWatch for EmbeddedWatch {
    async fn next(&mut self) -> Result<Vec<KvEvent>, MetaError> {
        loop {
            let shared = Arc::clone(&self.store.shared);
            let notified = shared.changed.notified();
            tokio::pin!(notified);
            // Registered before looking, so a change made after the look wakes this wait.
            notified.as_mut().enable();
            let deadline = {
                let state = self.store.state();
                let events = self.poll_events(&state)?;
                if let Some(last) = events.last() {
                    self.next = last.revision() + 1;
                    return Ok(events);
                }
                // Nothing for this prefix yet: everything up to the store's revision is seen.
                self.next = self.next.max(state.revision + 1);
                state.next_deadline()
            };
            match deadline {
                Some(at) => {
                    tokio::select! {
                        () = &mut notified => {}
                        () = tokio::time::sleep_until(at) => {}
                    }
                }
                None => notified.await,
            }
        }
    }
}
