//! The seam under the control plane: the few etcd v3 operations it is built from (leases,
//! prefix reads, compare-and-swap transactions, watches from a revision). `EtcdBackend`
//! speaks them to etcd; `EmbeddedBackend` implements them in memory with the same
//! semantics, so everything above (registration, election, fencing, the map) is one code
//! path, tested against both.

use std::future::Future;
use std::time::Duration;

use crate::error::MetaError;
use crate::model::Revision;

/// A lease id (etcd's); keys put with it are deleted when it expires or is revoked.
pub type LeaseId = i64;

/// A key and its value with etcd's bookkeeping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kv {
    /// The full key.
    pub key: String,
    /// The value.
    pub value: Vec<u8>,
    /// The revision that created the key (it stays until the key is deleted).
    pub create_revision: Revision,
    /// The revision of its last write.
    pub mod_revision: Revision,
    /// The lease it is attached to; 0 for none.
    pub lease: LeaseId,
}

/// One change seen by a watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvEvent {
    /// A key was written (created or replaced).
    Put(Kv),
    /// A key was deleted (by a transaction, or by its lease's end).
    Delete {
        /// The full key.
        key: String,
        /// The revision of the deletion.
        revision: Revision,
    },
}

impl KvEvent {
    /// The revision the change happened at.
    pub fn revision(&self) -> Revision {
        match self {
            KvEvent::Put(kv) => kv.mod_revision,
            KvEvent::Delete { revision, .. } => *revision,
        }
    }

    /// The key it changed.
    pub fn key(&self) -> &str {
        match self {
            KvEvent::Put(kv) => &kv.key,
            KvEvent::Delete { key, .. } => key,
        }
    }
}

/// A condition of a transaction. A revision of 0 means "the key does not exist".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Compare {
    /// The key's creation revision equals this one.
    CreateRevision(String, Revision),
    /// The key's last write was at this revision.
    ModRevision(String, Revision),
}

/// A write of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Writes the key, attached to `lease` (0: none).
    Put {
        /// The full key.
        key: String,
        /// The value.
        value: Vec<u8>,
        /// The lease, or 0.
        lease: LeaseId,
    },
    /// Deletes the key (nothing happens if it is absent).
    Delete(String),
}

/// What a transaction did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxnOutcome {
    /// Every condition held and the writes were applied, all at `revision`.
    pub succeeded: bool,
    /// The store's revision after the transaction.
    pub revision: Revision,
}

/// The operations the control plane is built from. Every future is `Send`: the typed layer
/// runs them from tasks on the server's runtime.
pub trait Backend: Clone + Send + Sync + 'static {
    /// A watch's stream of changes.
    type Watch: BackendWatch;

    /// A new lease that expires `ttl` after its last renewal (etcd rounds up to whole
    /// seconds and has a minimum of its own).
    fn grant(&self, ttl: Duration) -> impl Future<Output = Result<LeaseId, MetaError>> + Send;

    /// Renews the lease; `false` when it has already expired (its keys are gone).
    fn keep_alive(&self, lease: LeaseId) -> impl Future<Output = Result<bool, MetaError>> + Send;

    /// Ends the lease now, deleting its keys in one revision. An unknown lease is not an error.
    fn revoke(&self, lease: LeaseId) -> impl Future<Output = Result<(), MetaError>> + Send;

    /// Every key starting with `prefix`, sorted, and the revision they were read at.
    fn range(
        &self,
        prefix: &str,
    ) -> impl Future<Output = Result<(Vec<Kv>, Revision), MetaError>> + Send;

    /// The key `key` exactly (no other key it begins), if it exists.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Kv>, MetaError>> + Send;

    /// Applies `then` at one new revision if every condition holds; writes nothing otherwise.
    /// A put with a lease that does not exist fails with `LeaseExpired`.
    fn txn(
        &self,
        when: Vec<Compare>,
        then: Vec<Op>,
    ) -> impl Future<Output = Result<TxnOutcome, MetaError>> + Send;

    /// Every change to keys under `prefix` from revision `from` on (inclusive), in order.
    /// A revision already compacted is `Compacted`, here or from the watch.
    fn watch(
        &self,
        prefix: &str,
        from: Revision,
    ) -> impl Future<Output = Result<Self::Watch, MetaError>> + Send;

    /// Forgets the history before `revision` (a watch from before it fails with `Compacted`).
    fn compact(&self, revision: Revision) -> impl Future<Output = Result<(), MetaError>> + Send;
}

/// The changes a watch delivers.
pub trait BackendWatch: Send + 'static {
    /// The next changes, at least one, in revision order; waits until there are some.
    fn next(&mut self) -> impl Future<Output = Result<Vec<KvEvent>, MetaError>> + Send;
}
