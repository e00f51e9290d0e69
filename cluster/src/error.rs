//! The control plane's errors.

use crate::model::Revision;

/// What a store or the typed layer above it reports.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetaError {
    /// The store could not be reached or answered with a failure; the operation may be
    /// retried (with etcd: another member, or after the connection comes back).
    #[error("the metadata store is unavailable: {0}")]
    Unavailable(String),
    /// A watch started at a revision the store has compacted away: take a new snapshot.
    #[error("revision {asked} is compacted (the store keeps revisions from {compacted})")]
    Compacted {
        /// The revision asked for.
        asked: Revision,
        /// The oldest revision the store still has.
        compacted: Revision,
    },
    /// The lease is gone (expired or revoked): a registration or candidacy made with it ended.
    #[error("the lease expired or was revoked")]
    LeaseExpired,
    /// Another live node is registered with this id.
    #[error("node id {0} is already registered by a live node")]
    NodeIdTaken(String),
    /// Another node id goes by the same Raft number (the hash of its id) in the groups.
    #[error(
        "node id {node} would go by Raft number {number:016x} in its shards' groups, the \
         number node {other} goes by (a hash of the id): give this node another id"
    )]
    RaftIdTaken {
        /// The node id starting.
        node: String,
        /// The id that claimed the number first.
        other: String,
        /// The number.
        number: u64,
    },
    /// The node ran on another data directory (its disk replaced or wiped?): as its old self
    /// it could vote without the entries it acknowledged, so it does not start
    /// (docs/design/cluster.md, "A node's data directory").
    #[error(
        "node {node} ran on another data directory than {dir} (its disk replaced or wiped?): a \
         node that lost its shards' logs must not take part in their elections as its old self. \
         Start it on its old data directory, or on this one under a new node id (a new member: \
         the controller re-creates the old id's replicas on other nodes)"
    )]
    DataDirectoryChanged {
        /// The node id.
        node: String,
        /// The data directory it was started on.
        dir: String,
    },
    /// The writer is not the controller any more (its election key is gone or replaced).
    #[error("not the controller any more: the change was not written")]
    Fenced,
    /// A key was changed since the revision the change names: nothing was written.
    #[error("{key} changed since it was read: nothing was written")]
    Conflict {
        /// The key (relative to the cluster's prefix) that moved.
        key: String,
    },
    /// A stored value does not decode: the store holds something Sluice did not write.
    #[error("{key} holds a value that does not decode: {reason}")]
    Corrupt {
        /// The key, relative to the cluster's prefix.
        key: String,
        /// What the decoder said.
        reason: String,
    },
    /// A request the store refuses as malformed (two writes to one key in a transaction, a
    /// compaction to a future revision): retrying it cannot succeed.
    #[error("the metadata store refused the request: {0}")]
    InvalidRequest(String),
    /// A name or id that cannot be part of a key.
    #[error("invalid {what} {name:?}")]
    InvalidName {
        /// What it names.
        what: &'static str,
        /// The name as given.
        name: String,
    },
}
