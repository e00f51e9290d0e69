//! Starting and stopping a shard's Raft group on a node: its replica on the engine, its
//! storage, its Raft, and the host answering its peers.

use super::batcher::WriteQueue;
use super::client::{ClientError, written};
use super::{
    NewRecord, RaftHost, RaftStorageError, ShardNetwork, ShardRaft, ShardWritten, open_storage,
};
use crate::transport::{GroupId, Peers};
use openraft::{Config, Raft, SnapshotPolicy};
use sluice_core::{Engine, Replica, ReplicaError, ReplicaId};
use std::sync::Arc;
use std::time::Duration;

/// Heartbeats to followers this often (ms).
pub const HEARTBEAT_MS: u64 = 100;
/// A follower that heard no leader for a random time in this range (ms) stands for election.
/// openraft first lets the last leader's lease run out (the range's top), so a dead leader is
/// replaced after 1.2 to 1.6 s.
pub const ELECTION_TIMEOUT_MS: (u64, u64) = (400, 800);
/// How often a group asks for a snapshot at its replica's retention point (a cheap no-op
/// while that point has not moved): what lets openraft purge and retention free segments.
pub const SNAPSHOT_CHECK: Duration = Duration::from_secs(10);

/// Why a group did not start or stop.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GroupError {
    /// The replica's log could not be opened or closed.
    #[error(transparent)]
    Replica(#[from] ReplicaError),
    /// Its Raft storage could not be read.
    #[error(transparent)]
    Storage(#[from] RaftStorageError),
    /// openraft refused to start or stop it.
    #[error("the Raft group failed: {0}")]
    Raft(String),
}

/// The Raft settings of a shard's group: the timeouts above, snapshots only when asked (a
/// snapshot is the replica's retention point, not a count of entries: `SNAPSHOT_CHECK`),
/// and a purge up to the snapshot itself (what it covers has expired).
pub fn group_config() -> Arc<Config> {
    let config = Config {
        cluster_name: "sluice-shard".into(),
        heartbeat_interval: HEARTBEAT_MS,
        election_timeout_min: ELECTION_TIMEOUT_MS.0,
        election_timeout_max: ELECTION_TIMEOUT_MS.1,
        snapshot_policy: SnapshotPolicy::Never,
        max_in_snapshot_log_to_keep: 0,
        // An install that restarts a log syncs each of its segments: longer than openraft's
        // 200 ms, after which the leader would send the snapshot again.
        install_snapshot_timeout: 5_000,
        ..Config::default()
    };
    Arc::new(config.validate().expect("the group settings are valid"))
}

/// The replica of `group` on an engine.
pub fn replica_id(group: GroupId) -> ReplicaId {
    ReplicaId {
        stream_uid: group.stream_uid,
        shard: group.shard,
    }
}

/// A shard's group running on a node: its Raft, and its replica (whose reader serves the
/// committed records).
#[derive(Clone)]
pub struct ShardGroup {
    /// The group's Raft on this node.
    pub raft: Raft<ShardRaft>,
    /// The replica its log is.
    pub replica: Replica,
    /// Writes of records through this node while it leads, coalesced (batcher.rs).
    pub(super) writes: WriteQueue,
}

impl ShardGroup {
    /// Writes `records` as one caller of this node's group, if it leads (with the writes
    /// that arrive meanwhile, in one entry), and answers where they landed: what a node
    /// does with each put it takes for the group. Not the leader: `NoLeader`.
    pub async fn write(&self, records: Vec<NewRecord>) -> Result<ShardWritten, ClientError> {
        written(self.writes.write(records).await)
    }
}

/// Starts `group` on the node `host` serves: opens (or recovers) its replica on `engine`, its
/// Raft over `peers`, and answers its peers' calls from now on.
pub async fn start_group(
    engine: &Engine,
    peers: &Peers,
    host: &RaftHost,
    group: GroupId,
    retention_ms: u64,
) -> Result<ShardGroup, GroupError> {
    let replica = engine.open_replica(replica_id(group), retention_ms).await?;
    let started = async {
        let (log, state_machine) = open_storage(replica.clone()).await?;
        let network = ShardNetwork::new(peers.clone(), group, host.node());
        Raft::new(host.node(), group_config(), network, log, state_machine)
            .await
            .map_err(|e| GroupError::Raft(e.to_string()))
    };
    match started.await {
        Ok(raft) => {
            let writes = WriteQueue::start(raft.clone());
            snapshot_on_retention(raft.clone());
            let running = ShardGroup {
                raft,
                replica,
                writes,
            };
            host.add(group, running.clone());
            Ok(running)
        }
        Err(e) => {
            // Closed again, so the next attempt opens it afresh.
            let _ = engine.close_replica(replica_id(group)).await;
            Err(e)
        }
    }
}

/// Asks `raft` for a snapshot every `SNAPSHOT_CHECK` until it stops.
fn snapshot_on_retention(raft: Raft<ShardRaft>) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(SNAPSHOT_CHECK);
        every.tick().await;
        loop {
            every.tick().await;
            if raft.trigger().snapshot().await.is_err() {
                return;
            }
        }
    });
}

/// Stops `group` on the node `host` serves and closes its replica, keeping its files unless
/// `remove_data` (its stream was deleted).
pub async fn stop_group(
    engine: &Engine,
    host: &RaftHost,
    group: GroupId,
    remove_data: bool,
) -> Result<(), GroupError> {
    if let Some(running) = host.remove(group) {
        running
            .raft
            .shutdown()
            .await
            .map_err(|e| GroupError::Raft(e.to_string()))?;
    }
    if remove_data {
        engine.remove_replica(replica_id(group)).await?;
    } else {
        engine.close_replica(replica_id(group)).await?;
    }
    Ok(())
}
