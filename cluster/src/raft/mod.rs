//! One Raft group per shard replica: openraft 0.9 (its storage v2 API) over the engine's
//! replicated shard log, so the Raft log *is* the shard's log and no record is written twice
//! (docs/design/cluster.md, "The Raft log is the shard's log").
//!
//! [`open_storage`] opens the two halves openraft asks for over one [`Replica`]:
//! - [`ShardLogStore`], the Raft log: one entry is one storage batch. A client's write reaches
//!   the leader as [`ShardWrite::New`] records, which the leader's log numbers; what a log
//!   holds and ships to followers is [`ShardWrite::Stored`], the batch itself, numbers
//!   included, which followers append as received.
//! - [`ShardStateMachine`]: the log is the state, so applying an entry moves the log's commit
//!   (readers see it) and answers with the numbers its records got.
//!
//! The vote, the commit index, the purged and applied log ids and the last applied membership
//! live in the replica's Raft state file (two synced slots), as one JSON value.

mod batcher;
mod client;
mod entry;
mod gate;
mod group;
mod host;
mod log_store;
mod network;
mod recent;
mod saved;
mod state_machine;

pub use client::{ClientError, ShardClient};
pub use entry::{NewRecord, ShardWrite, ShardWritten};
pub use group::{
    ELECTION_TIMEOUT_MS, GroupError, HEARTBEAT_MS, ShardGroup, group_config, replica_id,
    start_group, stop_group,
};
pub use host::GroupHost;
pub use log_store::ShardLogStore;
pub use network::{RaftHost, ShardNetwork, ShardPeer};
pub(crate) use network::{decode, encode};
pub use state_machine::ShardStateMachine;

use saved::SavedCell;
use sluice_core::Replica;
use std::sync::Arc;

openraft::declare_raft_types!(
    /// The types of a shard's Raft group: node ids are numbers, entries carry shard writes.
    pub ShardRaft:
        D = ShardWrite,
        R = ShardWritten,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<ShardRaft>,
        SnapshotData = std::io::Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// What the storage half of a shard's Raft group reports (openraft's storage error).
pub type RaftStorageError = openraft::StorageError<u64>;

/// Opens the Raft log and state machine of an open replica. Readers see again what was
/// applied before a restart (a log opens with nothing visible); openraft re-applies the rest
/// up to the saved commit.
pub async fn open_storage(
    replica: Replica,
) -> Result<(ShardLogStore, ShardStateMachine), RaftStorageError> {
    let saved = Arc::new(SavedCell::open(replica.clone()).await?);
    if let Some(purged) = saved.get().await.purged {
        replica
            .set_retain_from(purged.index + 1)
            .await
            .map_err(|e| openraft::StorageIOError::read_logs(&e))?;
    }
    let recent = Arc::default();
    let gate = Arc::new(gate::InstallGate::default());
    let state_machine =
        ShardStateMachine::open(replica.clone(), saved.clone(), &recent, gate.clone()).await?;
    Ok((
        ShardLogStore::new(replica, saved, recent, gate),
        state_machine,
    ))
}
