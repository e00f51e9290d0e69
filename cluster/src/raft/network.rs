//! A shard group's Raft messages over the node-to-node transport: every group's calls to a
//! node share its one HTTP/2 connection, and appends without entries (heartbeats) go in the
//! peer's next heartbeat batch. Messages are CBOR (batches of records travel as byte strings),
//! each addressed to the node it is meant for, so a process that took over a departed node's
//! address refuses calls meant for that node.
//!
//! [`ShardNetwork`] is the calling side openraft asks for; [`RaftHost`] answers a node's
//! peers for every group it runs.

use super::{ShardGroup, ShardRaft};
use crate::transport::{GroupId, PeerHandler, Peers, RpcError};
use bytes::Bytes;
use openraft::BasicNode;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RPCTypes, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// A message and the node it is meant for.
#[derive(Serialize, Deserialize)]
pub(super) struct Addressed<T> {
    pub(super) to: u64,
    pub(super) message: T,
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Bytes {
    let mut bytes = Vec::new();
    ciborium::into_writer(value, &mut bytes).expect("a Raft message encodes to memory");
    Bytes::from(bytes)
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    ciborium::from_reader(bytes).map_err(|e| format!("a Raft message does not decode: {e}"))
}

/// The calling side of one group's Raft traffic on a node.
#[derive(Clone)]
pub struct ShardNetwork {
    peers: Peers,
    group: GroupId,
    node: u64,
}

impl ShardNetwork {
    /// Group `group`'s calls from node `node`, over the node's shared peer connections.
    pub fn new(peers: Peers, group: GroupId, node: u64) -> ShardNetwork {
        ShardNetwork { peers, group, node }
    }
}

impl RaftNetworkFactory<ShardRaft> for ShardNetwork {
    type Network = ShardPeer;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> ShardPeer {
        ShardPeer {
            peers: self.peers.clone(),
            group: self.group,
            from: self.node,
            target,
            address: node.addr.clone(),
        }
    }
}

/// One group's calls to one peer.
pub struct ShardPeer {
    peers: Peers,
    group: GroupId,
    from: u64,
    target: u64,
    address: String,
}

type Failed<E> = RPCError<u64, BasicNode, RaftError<u64, E>>;

impl ShardPeer {
    /// Sends `message` as `method` (as a heartbeat when `heartbeat`) and decodes the answer:
    /// the peer's Raft answer or its Raft error.
    async fn send<M, A, E>(
        &self,
        action: RPCTypes,
        message: M,
        heartbeat: bool,
        option: &RPCOption,
    ) -> Result<A, Failed<E>>
    where
        M: Serialize,
        A: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let body = encode(&Addressed {
            to: self.target,
            message,
        });
        let method = match action {
            RPCTypes::Vote => "vote",
            RPCTypes::AppendEntries => "append",
            RPCTypes::InstallSnapshot => "snapshot",
        };
        let call = async {
            if heartbeat {
                self.peers.heartbeat(&self.address, self.group, body).await
            } else {
                self.peers
                    .call(&self.address, self.group, method, body)
                    .await
            }
        };
        // A peer that is down (refused, reset) is unreachable: openraft backs off. One that is
        // slow is a timeout: openraft tries again at once, as it would for a lost message.
        let timeout = option.hard_ttl();
        let timed_out = || {
            RPCError::Timeout(Timeout {
                action,
                id: self.from,
                target: self.target,
                timeout,
            })
        };
        let answer = match tokio::time::timeout(timeout, call).await {
            Ok(Ok(answer)) => answer,
            // Refused, reset, or a peer that does not run the group (yet): back off.
            Ok(Err(e @ (RpcError::Unreachable { .. } | RpcError::Remote { .. }))) => {
                return Err(RPCError::Unreachable(Unreachable::new(&e)));
            }
            Ok(Err(RpcError::Timeout { .. })) | Err(_) => return Err(timed_out()),
        };
        let answer: Result<A, RaftError<u64, E>> = decode(&answer)
            .map_err(|e| RPCError::Network(NetworkError::new(&std::io::Error::other(e))))?;
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<ShardRaft> for ShardPeer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<ShardRaft>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, Failed<openraft::error::Infallible>> {
        let heartbeat = rpc.entries.is_empty();
        self.send(RPCTypes::AppendEntries, rpc, heartbeat, &option)
            .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<ShardRaft>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, Failed<InstallSnapshotError>> {
        self.send(RPCTypes::InstallSnapshot, rpc, false, &option)
            .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, Failed<openraft::error::Infallible>> {
        self.send(RPCTypes::Vote, rpc, false, &option).await
    }
}

/// The groups a node runs (its directory of them), answering its peers' Raft calls (a
/// [`PeerHandler`]).
pub struct RaftHost {
    node: u64,
    groups: RwLock<HashMap<GroupId, ShardGroup>>,
}

impl RaftHost {
    /// Node `node`'s host, with no group yet.
    pub fn new(node: u64) -> Arc<RaftHost> {
        Arc::new(RaftHost {
            node,
            groups: RwLock::default(),
        })
    }

    /// The node it answers for.
    pub fn node(&self) -> u64 {
        self.node
    }

    /// Answers `id`'s calls with `group` from now on.
    pub fn add(&self, id: GroupId, group: ShardGroup) {
        self.groups.write().expect("groups lock").insert(id, group);
    }

    /// Stops answering `id`'s calls; returns the group.
    pub fn remove(&self, id: GroupId) -> Option<ShardGroup> {
        self.groups.write().expect("groups lock").remove(&id)
    }

    /// Group `id`, if this node runs it.
    pub fn group(&self, id: GroupId) -> Option<ShardGroup> {
        self.groups.read().expect("groups lock").get(&id).cloned()
    }

    /// The groups this node runs.
    pub fn groups(&self) -> Vec<GroupId> {
        self.groups
            .read()
            .expect("groups lock")
            .keys()
            .copied()
            .collect()
    }

    /// Decodes a message meant for this node.
    fn open<T: DeserializeOwned>(&self, body: &[u8]) -> Result<T, String> {
        let addressed: Addressed<T> = decode(body)?;
        if addressed.to != self.node {
            return Err(format!(
                "a message for node {} reached node {}",
                addressed.to, self.node
            ));
        }
        Ok(addressed.message)
    }
}

/// How a node says it does not run a group (yet: a new shard's group starts on each of its
/// nodes as their maps show it).
pub(super) const NOT_RUNNING: &str = "does not run on node";

impl PeerHandler for RaftHost {
    async fn call(&self, group: GroupId, method: &str, body: Bytes) -> Result<Bytes, String> {
        let running = self
            .group(group)
            .ok_or_else(|| format!("group {group} {NOT_RUNNING} {}", self.node))?;
        let raft = &running.raft;
        match method {
            "append" | "heartbeat" => Ok(encode(&raft.append_entries(self.open(&body)?).await)),
            "vote" => Ok(encode(&raft.vote(self.open(&body)?).await)),
            "snapshot" => Ok(encode(&raft.install_snapshot(self.open(&body)?).await)),
            "write" => {
                let write = super::ShardWrite::New(self.open(&body)?);
                Ok(encode(&super::client::write_here(&running, write).await))
            }
            "close" => {
                let () = self.open(&body)?;
                let write = super::ShardWrite::Close;
                Ok(encode(&super::client::write_here(&running, write).await))
            }
            "read-index" => {
                let () = self.open(&body)?;
                Ok(encode(&super::client::read_index_here(raft).await))
            }
            "members" => {
                let () = self.open(&body)?;
                Ok(encode(&super::client::members_here(raft).await))
            }
            other => Err(format!("no Raft call {other:?}")),
        }
    }
}
