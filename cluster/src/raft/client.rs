//! Writing to a shard's group and reading from it on any node. A write goes to the group's
//! leader: this node's group if it leads, else the leader it names (one redirect followed),
//! over the peer connection the node already has. A read is served by this node's replica
//! after a read barrier: the leader confirms it still leads and names its commit (ReadIndex),
//! and the replica waits until it applied that far, so a read never misses a write that was
//! acknowledged before it began.

use super::network::{Addressed, decode, encode};
use super::{NewRecord, RaftHost, ShardGroup, ShardRaft, ShardWrite, ShardWritten};
use crate::transport::{GroupId, Peers, RpcError};
use openraft::error::{CheckIsLeaderError, ClientWriteError, ForwardToLeader, RaftError};
use openraft::{BasicNode, Raft};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// How long a follower's read barrier waits for its replica to apply the leader's commit, and
/// a write on this node waits for its commit.
const CATCH_UP_WAIT: Duration = Duration::from_secs(5);

/// Why a write or a read barrier failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ClientError {
    /// The group has no leader right now (an election is running): try again shortly.
    #[error("the shard's group has no leader now; try again")]
    NoLeader,
    /// The leader's log refused the records (nothing was written).
    #[error("the write was refused: {0}")]
    Refused(String),
    /// No answer came back: the node asked could not be reached, or the connection broke or
    /// timed out once the write was sent, or no quorum committed it in time. A write may
    /// still commit: retrying may write its records twice, as a Kinesis client's retries can.
    #[error("no answer from the shard's group (a write may still commit): {0}")]
    Unreachable(String),
    /// This node does not run the group (reads are served by a local replica).
    #[error("group {0} does not run on this node")]
    NotHere(GroupId),
    /// The group failed (its storage, a message that does not decode).
    #[error("the shard's group failed: {0}")]
    Failed(String),
    /// A reshard closed the shard before the write (nothing of it is readable): route it by
    /// a map that shows the shard closed.
    #[error("{}", super::entry::CLOSED)]
    Closed,
}

/// A node's answer to a forwarded call.
#[derive(Clone, Serialize, Deserialize)]
pub(super) enum Answer<T> {
    Done(T),
    /// Not the leader; the leader it knows, if any.
    NotLeader(Option<(u64, BasicNode)>),
    Failed(String),
}

/// A write's answer as the caller takes it: where its records landed, or why not.
pub(super) fn written(answer: Answer<ShardWritten>) -> Result<ShardWritten, ClientError> {
    match answer {
        Answer::Done(written) => match written.refused {
            Some(reason) if reason == super::entry::CLOSED => Err(ClientError::Closed),
            Some(reason) => Err(ClientError::Refused(reason)),
            None => Ok(written),
        },
        Answer::NotLeader(_) => Err(ClientError::NoLeader),
        Answer::Failed(e) => Err(ClientError::Failed(e)),
    }
}

pub(super) fn not_leader<T>(forward: ForwardToLeader<u64, BasicNode>) -> Answer<T> {
    Answer::NotLeader(forward.leader_id.zip(forward.leader_node))
}

/// Writes through this node's `group`, if it leads: records with the others that arrive
/// with them (batcher.rs), a close alone.
pub(super) async fn write_here(group: &ShardGroup, write: ShardWrite) -> Answer<ShardWritten> {
    if let ShardWrite::New(records) = write {
        return group.writes.write(records).await;
    }
    match group.raft.client_write(write).await {
        Ok(response) => Answer::Done(response.data),
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => not_leader(forward),
        Err(e) => Answer::Failed(e.to_string()),
    }
}

/// The commit index a read must wait for, if this node's `raft` leads (and still does: it
/// heard from a quorum).
pub(super) async fn read_index_here(raft: &Raft<ShardRaft>) -> Answer<u64> {
    match raft.ensure_linearizable().await {
        Ok(read) => Answer::Done(read.map_or(0, |id| id.index)),
        Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(forward))) => {
            not_leader(forward)
        }
        Err(e) => Answer::Failed(e.to_string()),
    }
}

/// The members (voters and learners) of `raft`'s group, if this node leads it (and still
/// does: it heard from a quorum) and applied its newest membership: the group's committed
/// membership, which no later one replaces unless this leader or a later one writes it. Not
/// answered while a change is under way.
pub(super) async fn members_here(raft: &Raft<ShardRaft>) -> Answer<BTreeSet<u64>> {
    match raft.ensure_linearizable().await {
        Ok(_) => {}
        Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(forward))) => {
            return not_leader(forward);
        }
        Err(e) => return Answer::Failed(e.to_string()),
    }
    let metrics = raft.metrics().borrow().clone();
    let membership = &metrics.membership_config;
    match membership.log_id() {
        Some(id) if metrics.last_applied.is_some_and(|applied| applied >= *id) => {
            Answer::Done(membership.membership().nodes().map(|(id, _)| *id).collect())
        }
        _ => Answer::Failed("a membership change is under way".into()),
    }
}

/// Writes and read barriers for the groups of the cluster, from one node.
#[derive(Clone)]
pub struct ShardClient {
    host: Arc<RaftHost>,
    peers: Peers,
}

impl ShardClient {
    /// The client of the node `host` answers for, over its peer connections.
    pub fn new(host: Arc<RaftHost>, peers: Peers) -> ShardClient {
        ShardClient { host, peers }
    }

    /// Writes `records` to `group` through its leader and returns where they landed. This
    /// node's group answers if it runs it; otherwise the group's `replicas` (Raft id and peer
    /// address, from the map) are asked in turn. A node that does not lead names the leader,
    /// which is asked once.
    pub async fn write(
        &self,
        group: GroupId,
        records: &[NewRecord],
        replicas: &[(u64, String)],
    ) -> Result<ShardWritten, ClientError> {
        let message = ("write", &records);
        let local = || ShardWrite::New(records.to_vec());
        self.submit(group, local, message, replicas).await
    }

    /// Closes `group`'s shard for a reshard (a close entry, through its leader, as
    /// [`ShardClient::write`] goes) and returns its end, the close entry's log number (every
    /// record of the shard is numbered below it), and the close entry's time, its last
    /// record's arrival time (ms; a control entry carries it). Closing a closed shard answers
    /// its end again.
    pub async fn close(
        &self,
        group: GroupId,
        replicas: &[(u64, String)],
    ) -> Result<(u64, u64), ClientError> {
        let written = self
            .submit(group, || ShardWrite::Close, ("close", &()), replicas)
            .await?;
        Ok((written.base_seq, written.timestamp_ms))
    }

    /// Hands a write to `group`'s leader: this node's group (`make` makes it), or the one
    /// the map's replicas name; `message` is what a peer is sent for it (method and body).
    async fn submit<M: Serialize>(
        &self,
        group: GroupId,
        make: impl FnOnce() -> ShardWrite,
        (method, message): (&str, &M),
        replicas: &[(u64, String)],
    ) -> Result<ShardWritten, ClientError> {
        let local = match self.host.group(group) {
            Some(local) => {
                let written = write_here(&local, make());
                let written = tokio::time::timeout(CATCH_UP_WAIT, written).await;
                Some(written.map_err(|_| {
                    ClientError::Unreachable(format!("no commit within {CATCH_UP_WAIT:?}"))
                })?)
            }
            None => None,
        };
        let first = match local {
            // This node knows no leader (an election, or it has not joined yet): the map's
            // replicas may.
            Some(Answer::NotLeader(None)) | None => {
                self.ask_replicas(group, method, message, replicas).await?
            }
            Some(answer) => answer,
        };
        let answer = match first {
            Answer::NotLeader(Some((leader, node))) => {
                self.ask(&node.addr, leader, group, method, message).await?
            }
            answer => answer,
        };
        written(answer)
    }

    /// Waits until this node's replica of `group` applied every entry committed when the call
    /// began: a read after it sees every write acknowledged before it.
    pub async fn read_barrier(&self, group: GroupId) -> Result<(), ClientError> {
        let local = self.host.group(group).ok_or(ClientError::NotHere(group))?;
        let first = read_index_here(&local.raft).await;
        let answer = match first {
            Answer::NotLeader(Some((leader, node))) => {
                self.ask(&node.addr, leader, group, "read-index", &())
                    .await?
            }
            answer => answer,
        };
        let index = match answer {
            Answer::Done(index) => index,
            Answer::NotLeader(_) => return Err(ClientError::NoLeader),
            Answer::Failed(e) => return Err(ClientError::Failed(e)),
        };
        local
            .raft
            .wait(Some(CATCH_UP_WAIT))
            .applied_index_at_least(Some(index), "read barrier")
            .await
            .map(|_| ())
            .map_err(|e| ClientError::Failed(e.to_string()))
    }

    /// The members of `group` (voters and learners, Raft ids) as its leader has them
    /// committed (`members_here`), found through `replicas` (the map's, Raft id and peer
    /// address) as for [`ShardClient::confirm_leader`].
    pub async fn members(
        &self,
        group: GroupId,
        replicas: &[(u64, String)],
    ) -> Result<BTreeSet<u64>, ClientError> {
        let answer = match self.ask_replicas(group, "members", &(), replicas).await? {
            Answer::NotLeader(Some((leader, node))) => {
                self.ask(&node.addr, leader, group, "members", &()).await?
            }
            answer => answer,
        };
        match answer {
            Answer::Done(members) => Ok(members),
            Answer::NotLeader(_) => Err(ClientError::NoLeader),
            Answer::Failed(e) => Err(ClientError::Failed(e)),
        }
    }

    /// Succeeds when `group` has a leader that a quorum still follows: this node's group, or
    /// else the map's `replicas` (as for [`ShardClient::write`]), are asked for a read index,
    /// and a node that does not lead names the leader, which is asked once.
    pub async fn confirm_leader(
        &self,
        group: GroupId,
        replicas: &[(u64, String)],
    ) -> Result<(), ClientError> {
        let first = match self.host.group(group) {
            Some(local) => match read_index_here(&local.raft).await {
                Answer::NotLeader(None) => None,
                answer => Some(answer),
            },
            None => None,
        };
        let first = match first {
            Some(answer) => answer,
            None => {
                self.ask_replicas(group, "read-index", &(), replicas)
                    .await?
            }
        };
        let answer: Answer<u64> = match first {
            Answer::NotLeader(Some((leader, node))) => {
                self.ask(&node.addr, leader, group, "read-index", &())
                    .await?
            }
            answer => answer,
        };
        match answer {
            Answer::Done(_) => Ok(()),
            Answer::NotLeader(_) => Err(ClientError::NoLeader),
            Answer::Failed(e) => Err(ClientError::Failed(e)),
        }
    }

    /// Asks the replicas in turn; the first that answers (done, or naming a leader) wins.
    /// A write goes on to the next replica only when the last one surely did not take it (it
    /// answered without a leader, or no connection could be made): one that may have reached
    /// a leader and timed out is not sent again, or the cluster itself could store it twice.
    async fn ask_replicas<M: Serialize, T: DeserializeOwned>(
        &self,
        group: GroupId,
        method: &str,
        message: &M,
        replicas: &[(u64, String)],
    ) -> Result<Answer<T>, ClientError> {
        let writes = matches!(method, "write" | "close");
        let mut last = ClientError::NoLeader;
        for (id, address) in replicas {
            match self.ask_once(address, *id, group, method, message).await {
                // A failure may have followed an append: for a write it stays the answer
                // (no leader means nothing written, and a caller may retry that).
                Ok(Answer::NotLeader(None)) | Err((ClientError::NoLeader, _))
                    if writes && matches!(last, ClientError::Failed(_)) => {}
                Ok(Answer::NotLeader(None)) => last = ClientError::NoLeader,
                Ok(Answer::Failed(e)) => last = ClientError::Failed(e),
                Ok(answer) => return Ok(answer),
                Err((e, true)) if writes => return Err(e),
                Err((e, _)) => last = e,
            }
        }
        Err(last)
    }

    async fn ask<M: Serialize, T: DeserializeOwned>(
        &self,
        address: &str,
        to: u64,
        group: GroupId,
        method: &str,
        message: &M,
    ) -> Result<Answer<T>, ClientError> {
        let asked = self.ask_once(address, to, group, method, message).await;
        asked.map_err(|(e, _)| e)
    }

    /// One call; a failure says whether the message may have reached the peer.
    async fn ask_once<M: Serialize, T: DeserializeOwned>(
        &self,
        address: &str,
        to: u64,
        group: GroupId,
        method: &str,
        message: &M,
    ) -> Result<Answer<T>, (ClientError, bool)> {
        let body = encode(&Addressed { to, message });
        let answer = self.peers.call(address, group, method, body).await;
        match answer {
            Ok(bytes) => decode(&bytes).map_err(|e| (ClientError::Failed(e), true)),
            Err(e @ RpcError::Unreachable { sent, .. }) => {
                Err((ClientError::Unreachable(e.to_string()), sent))
            }
            Err(e @ RpcError::Timeout { .. }) => {
                Err((ClientError::Unreachable(e.to_string()), true))
            }
            // A group not started there yet (a new shard's): nothing ran, as with no leader.
            Err(RpcError::Remote { message, .. })
                if message.contains(super::network::NOT_RUNNING) =>
            {
                Err((ClientError::NoLeader, false))
            }
            // The peer refused the call before its handler ran it (a message it cannot read).
            Err(e) => Err((ClientError::Failed(e.to_string()), false)),
        }
    }
}
