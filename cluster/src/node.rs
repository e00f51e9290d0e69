//! One node of a cluster, assembled: its registration, its peer port, the reconciler running
//! the shard groups the map gives it, a candidacy for the controller's office, and a copy of
//! the map kept current. What a front end (the Kinesis server) needs from the cluster goes
//! through it: stream administration (sent to the controller, wherever it runs), writes
//! (through each shard's leader), reads (this node's replicas, after a read barrier).
//!
//! Start-up order: the registration (a node id held twice is refused before anything runs),
//! the peer port, the map, the reconciler, the candidacy.

use crate::backend::Backend;
use crate::controller::{self, ControllerConfig, ControllerError, GroupProbe, Request};
use crate::error::MetaError;
use crate::meta::{ClusterMeta, Registration, Snapshot};
use crate::model::{NodeId, NodeInfo, Revision, StreamPlacement, StreamSettings, StreamStatus};
use crate::plan::PlanError;
use crate::raft::{
    ClientError, GroupHost, NewRecord, RaftHost, ShardClient, ShardWritten, decode, encode,
    stop_group,
};
use crate::reads::{ReadReply, ReadRequest, read_local};
use crate::reconcile::Reconciler;
use crate::reshard::{ReshardChange, ReshardRefused};
use crate::settings::{SettingsChange, SettingsRefused};
use crate::status::{
    ClusterStatus, NodeReport, ReplicaReport, ShardReport, StreamReport, local_reports,
};
use crate::transport::{GroupId, PeerHandler, PeerServer, Peers, TransportConfig};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sluice_core::{Engine, Replica};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// The group named by calls to a node itself rather than to one of its groups (stream uids
/// start at 1).
const NODE_CALLS: GroupId = GroupId {
    stream_uid: 0,
    shard: 0,
};
/// How long an administrative request waits for the controller's answer at most: on the
/// controller's node, under the peer calls' timeout (so the node that forwarded it hears
/// the answer, or the refusal, rather than its own timeout while the request goes on).
const ADMIN_WAIT: Duration = Duration::from_secs(4);
/// How long a node waits for its map to show a change the controller made.
const MAP_WAIT: Duration = Duration::from_secs(10);

/// How long a put keeps asking a group that has no leader (an election, a group starting).
const LEADER_WAIT: Duration = Duration::from_secs(2);

/// How long a put refused by a closed shard waits for the map to show it closed (the
/// controller writes that on its next tick).
const CLOSED_WAIT: Duration = Duration::from_secs(5);

/// How a node runs.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct NodeConfig {
    /// Its identity (unique among live nodes).
    pub id: NodeId,
    /// Where other nodes reach its peer port (`host:port`); `None`: the listener's address.
    pub advertise: Option<String>,
    /// Where clients reach it: its Kinesis endpoint URL.
    pub client_endpoint: String,
    /// Its failure domain (rack, zone), if labelled.
    pub failure_domain: Option<String>,
    /// Its registration's lease: a node that stops renewing is gone within it.
    pub registration_ttl: Duration,
    /// The controller's settings, used when this node holds the office.
    pub controller: ControllerConfig,
    /// Node-to-node calls.
    pub transport: TransportConfig,
    /// Where the node notes its registration's lease (in its data directory, which one
    /// process at a time holds): a node restarted before its old lease ran out ends that
    /// lease and registers at once, instead of being refused as a second live node.
    pub lease_file: Option<std::path::PathBuf>,
}

impl NodeConfig {
    /// Defaults for node `id` serving clients at `client_endpoint`: a 10 s registration,
    /// replication 3, a day's retention.
    pub fn new(id: NodeId, client_endpoint: impl Into<String>) -> NodeConfig {
        NodeConfig {
            id,
            advertise: None,
            client_endpoint: client_endpoint.into(),
            failure_domain: None,
            registration_ttl: Duration::from_secs(10),
            controller: ControllerConfig::default(),
            transport: TransportConfig::default(),
            lease_file: None,
        }
    }
}

/// Why a stream could not be created or deleted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AdminError {
    /// A stream of that name exists (in any state, deleting included).
    #[error("stream {0} already exists")]
    StreamExists(String),
    /// No stream of that name.
    #[error("stream {0} not found")]
    StreamNotFound(String),
    /// The request cannot be carried out as asked (a bad name, a shard count out of range).
    #[error("{0}")]
    InvalidArgument(String),
    /// The account's open shards would pass its quota.
    #[error("{added} more shards would exceed the limit of {limit} open shards ({open} open)")]
    ShardQuota {
        /// Open shards now.
        open: usize,
        /// The quota.
        limit: u32,
        /// Shards the request would add.
        added: u32,
    },
    /// The stream is being created or deleted: its settings cannot change now.
    #[error("stream {0} is not ACTIVE but {1:?}")]
    NotActive(String, StreamStatus),
    /// A settings change refused as the stream's settings stand.
    #[error(transparent)]
    Settings(SettingsRefused),
    /// A reshard refused as the stream's shards stand.
    #[error(transparent)]
    Reshard(ReshardRefused),
    /// Fewer live nodes than the replication factor.
    #[error("{0}")]
    NotEnoughNodes(String),
    /// The stream's map entry would grow past what one entry may take (too many shards, or
    /// too long a lineage of reshards).
    #[error("{0}")]
    TooLarge(String),
    /// No controller is elected now (one is being elected): try again shortly.
    #[error("no controller is elected now; try again")]
    NoController,
    /// The store or the controller's node did not answer; the change may still be made.
    #[error("the control plane did not answer (the change may still be made): {0}")]
    Unavailable(String),
}

impl From<ControllerError> for AdminError {
    fn from(error: ControllerError) -> AdminError {
        match error {
            ControllerError::Plan(PlanError::StreamExists(name)) => AdminError::StreamExists(name),
            ControllerError::Plan(PlanError::StreamNotFound(name)) => {
                AdminError::StreamNotFound(name)
            }
            ControllerError::Plan(PlanError::InvalidArgument(why)) => {
                AdminError::InvalidArgument(why)
            }
            ControllerError::Plan(PlanError::NotActive(name, status)) => {
                AdminError::NotActive(name, status)
            }
            ControllerError::Plan(PlanError::Settings(refused)) => AdminError::Settings(refused),
            ControllerError::Plan(PlanError::Reshard(refused)) => AdminError::Reshard(refused),
            ControllerError::Plan(PlanError::ShardQuota { open, limit, added }) => {
                AdminError::ShardQuota { open, limit, added }
            }
            ControllerError::Plan(PlanError::Placement(why)) => {
                AdminError::NotEnoughNodes(why.to_string())
            }
            ControllerError::Plan(error @ PlanError::EntryTooLarge { .. }) => {
                AdminError::TooLarge(error.to_string())
            }
            ControllerError::Meta(MetaError::Fenced) => AdminError::NoController,
            other => AdminError::Unavailable(other.to_string()),
        }
    }
}

impl From<MetaError> for AdminError {
    fn from(error: MetaError) -> AdminError {
        AdminError::Unavailable(error.to_string())
    }
}

/// An administrative request, as sent to the controller's node.
#[derive(Debug, Serialize, Deserialize)]
enum AdminCall {
    CreateStream {
        name: String,
        shard_count: u32,
    },
    /// A create with settings other than the defaults: a variant of its own, so a controller
    /// of an earlier version refuses it rather than drop the settings.
    CreateStreamWith {
        name: String,
        shard_count: u32,
        settings: StreamSettings,
    },
    DeleteStream {
        name: String,
        /// Absent from a node of an earlier version, which knew no consumers.
        #[serde(default)]
        with_consumers: bool,
    },
    Configure {
        name: String,
        change: SettingsChange,
    },
    Reshard {
        name: String,
        change: ReshardChange,
    },
}

/// The controller's answer.
#[derive(Debug, Serialize, Deserialize)]
enum AdminDone {
    Created(StreamPlacement),
    Configured(StreamPlacement, Revision),
    Deleted,
}

/// A running node. [`ClusterNode::stop`] leaves the cluster; dropping it without stopping
/// is a crash as the others see it (its lease runs out).
pub struct ClusterNode<B: Backend> {
    id: NodeId,
    meta: ClusterMeta<B>,
    engine: Engine,
    raft: Arc<RaftHost>,
    peers: Peers,
    client: ShardClient,
    map: watch::Receiver<Arc<Snapshot>>,
    admin: mpsc::Sender<Request>,
    admin_wait: Duration,
    peer_address: std::net::SocketAddr,
    stop: watch::Sender<bool>,
    /// What `stop` ends; taken by the first call.
    running: tokio::sync::Mutex<Option<Running>>,
}

/// A node's parts that run until it stops.
struct Running {
    /// Keeps the registration (again after its lease is lost) and ends it at stop.
    registration: JoinHandle<Result<(), MetaError>>,
    server: PeerServer,
    reconciler: JoinHandle<()>,
    controller: JoinHandle<()>,
    /// The metrics task; ends on its own at stop.
    gauges: JoinHandle<()>,
    background: Vec<JoinHandle<()>>,
}

impl<B: Backend> ClusterNode<B> {
    /// Starts the node on `engine` (its data directory), its peer port on `listener`.
    pub async fn start(
        meta: ClusterMeta<B>,
        engine: Engine,
        listener: TcpListener,
        config: NodeConfig,
    ) -> Result<ClusterNode<B>, MetaError> {
        meta.claim_raft_id(&config.id).await?;
        crate::data_dir::check(&meta, &config.id, &engine).await?;
        let registration = register(&meta, node_info(&listener, &config)?, &config).await?;
        let raft = RaftHost::new(config.id.raft_id());
        let peers = Peers::new(config.transport.clone());
        let (admin, requests) = mpsc::channel(64);
        let client = ShardClient::new(raft.clone(), peers.clone());
        let admin_wait = ADMIN_WAIT.min(config.transport.call_timeout * 4 / 5);
        let calls = NodeCalls {
            id: config.id.clone(),
            meta: meta.clone(),
            raft: raft.clone(),
            client: client.clone(),
            admin: admin.clone(),
            admin_wait,
        };
        let tls = config.transport.tls.clone();
        let server = PeerServer::start_with(listener, Arc::new(calls), tls)
            .map_err(|e| MetaError::Unavailable(format!("the peer port: {e}")))?;
        let first = meta.snapshot().await?;
        let (publish, map) = watch::channel(Arc::new(first));
        let (stop, stopped) = watch::channel(false);
        let groups = GroupHost::new(engine.clone(), peers.clone(), raft.clone());
        let reconciler = tokio::spawn({
            let (meta, id, stop) = (meta.clone(), config.id.clone(), until(stopped.clone()));
            async move { Reconciler::new(id, groups).run(&meta, stop).await }
        });
        let probe = DataProbe {
            client: client.clone(),
            peers: peers.clone(),
        };
        let controller = tokio::spawn({
            let (meta, id, stop) = (meta.clone(), config.id.clone(), until(stopped.clone()));
            async move {
                let ran = controller::run(meta, id, config.controller, requests, (probe, stop));
                if let Err(e) = ran.await {
                    eprintln!("sluice cluster: the controller's candidacy ended: {e}");
                }
            }
        });
        let registration = tokio::spawn(keep_registered(
            meta.clone(),
            registration,
            (config.registration_ttl, config.lease_file.clone()),
            stopped.clone(),
        ));
        let gauges = tokio::spawn(crate::metrics::export(
            config.id.clone(),
            raft.clone(),
            map.clone(),
            until(stopped.clone()),
        ));
        let follower = tokio::spawn(follow_map(meta.clone(), publish, stopped));
        Ok(ClusterNode {
            id: config.id,
            meta,
            engine,
            raft,
            peers,
            client,
            map,
            admin,
            admin_wait,
            peer_address: server.local_addr(),
            stop,
            running: tokio::sync::Mutex::new(Some(Running {
                registration,
                server,
                reconciler,
                controller,
                gauges,
                background: vec![follower],
            })),
        })
    }

    /// Its identity.
    pub fn id(&self) -> &NodeId {
        &self.id
    }

    /// The engine holding its replicas.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The control plane it follows.
    pub fn meta(&self) -> &ClusterMeta<B> {
        &self.meta
    }

    /// The groups this node runs.
    pub fn raft_host(&self) -> &Arc<RaftHost> {
        &self.raft
    }

    /// Where its peer port listens.
    pub fn peer_address(&self) -> std::net::SocketAddr {
        self.peer_address
    }

    /// The map as this node last read it.
    pub fn map(&self) -> Arc<Snapshot> {
        self.map.borrow().clone()
    }

    /// Creates a stream of `shard_count` shards (through the controller, wherever it runs);
    /// returns once this node's map shows it, `CREATING` until its groups have leaders.
    pub async fn create_stream(
        &self,
        name: &str,
        shard_count: u32,
    ) -> Result<StreamPlacement, AdminError> {
        self.create_stream_with(name, shard_count, StreamSettings::default())
            .await
    }

    /// Creates a stream with `settings` (the controller refuses them whole unless valid), as
    /// `create_stream` does.
    pub async fn create_stream_with(
        &self,
        name: &str,
        shard_count: u32,
        settings: StreamSettings,
    ) -> Result<StreamPlacement, AdminError> {
        let call = match settings == StreamSettings::default() {
            true => AdminCall::CreateStream {
                name: name.to_owned(),
                shard_count,
            },
            false => AdminCall::CreateStreamWith {
                name: name.to_owned(),
                shard_count,
                settings,
            },
        };
        let AdminDone::Created(placement) = self.administer(call).await? else {
            return Err(AdminError::Unavailable(
                "the controller answered amiss".into(),
            ));
        };
        let uid = placement.uid;
        self.map_shows(|map| map.streams.get(name).is_some_and(|s| s.value.uid >= uid))
            .await?;
        Ok(placement)
    }

    /// Deletes a stream (through the controller); returns once this node's map shows it
    /// `DELETING` or gone. Its name is free again once no live node runs its groups. A stream
    /// with registered consumers is refused ([`SettingsRefused::HasConsumers`]); see
    /// [`ClusterNode::delete_stream_and_consumers`].
    pub async fn delete_stream(&self, name: &str) -> Result<(), AdminError> {
        self.delete(name, false).await
    }

    /// Deletes a stream with its registered consumers (Kinesis' EnforceConsumerDeletion).
    pub async fn delete_stream_and_consumers(&self, name: &str) -> Result<(), AdminError> {
        self.delete(name, true).await
    }

    async fn delete(&self, name: &str, with_consumers: bool) -> Result<(), AdminError> {
        let call = AdminCall::DeleteStream {
            name: name.to_owned(),
            with_consumers,
        };
        self.administer(call).await?;
        self.map_shows(|map| {
            map.streams
                .get(name)
                .is_none_or(|s| matches!(s.value.status, crate::model::StreamStatus::Deleting))
        })
        .await
    }

    /// Changes stream `name`'s settings (through the controller, which checks the change
    /// against the stream's entry as it writes it); returns once this node's map shows them.
    pub async fn configure(
        &self,
        name: &str,
        change: SettingsChange,
    ) -> Result<StreamSettings, AdminError> {
        let call = AdminCall::Configure {
            name: name.to_owned(),
            change,
        };
        Ok(self.change_entry(call).await?.settings)
    }

    /// Begins reshard `change` of stream `name` (through the controller, which checks it
    /// against the stream's entry as it writes it); returns the entry as written once this
    /// node's map shows it, `UPDATING` while the parents are closed and the children start.
    pub async fn reshard(
        &self,
        name: &str,
        change: ReshardChange,
    ) -> Result<StreamPlacement, AdminError> {
        let call = AdminCall::Reshard {
            name: name.to_owned(),
            change,
        };
        self.change_entry(call).await
    }

    /// Has the controller change a stream's entry (`call`); returns the entry as written,
    /// once this node's map reaches the write's revision (not its content: a later change
    /// may already have replaced it by the time this node's map moves on).
    async fn change_entry(&self, call: AdminCall) -> Result<StreamPlacement, AdminError> {
        let AdminDone::Configured(placement, revision) = self.administer(call).await? else {
            return Err(AdminError::Unavailable(
                "the controller answered amiss".into(),
            ));
        };
        self.map_shows(|map| map.revision >= revision).await?;
        Ok(placement)
    }

    /// Waits (up to [`MAP_WAIT`]) until this node's map satisfies `shows`.
    async fn map_shows(&self, shows: impl Fn(&Snapshot) -> bool) -> Result<(), AdminError> {
        let mut map = self.map.clone();
        let seen = tokio::time::timeout(MAP_WAIT, map.wait_for(|m| shows(m))).await;
        match seen {
            Ok(Ok(_)) => Ok(()),
            _ => Err(AdminError::Unavailable(
                "the change was made but this node's map does not show it yet".into(),
            )),
        }
    }

    /// Sends `call` to the controller: this node's office, or the node holding it.
    async fn administer(&self, call: AdminCall) -> Result<AdminDone, AdminError> {
        let controller = self.meta.controller().await?;
        match controller {
            None => Err(AdminError::NoController),
            Some(id) if id == self.id => ask_office(&self.admin, call, self.admin_wait).await,
            Some(id) => {
                let address = match self.map().nodes.get(&id) {
                    Some(node) => node.peer_address.clone(),
                    None => self
                        .meta
                        .snapshot()
                        .await?
                        .nodes
                        .get(&id)
                        .ok_or(AdminError::NoController)?
                        .peer_address
                        .clone(),
                };
                let answer = self
                    .peers
                    .call(&address, NODE_CALLS, "admin", encode(&call))
                    .await
                    .map_err(|e| AdminError::Unavailable(e.to_string()))?;
                decode::<Result<AdminDone, AdminError>>(&answer).map_err(AdminError::Unavailable)?
            }
        }
    }

    /// Writes `records` to shard `shard` of `stream` through the shard's leader. A shard a
    /// reshard closed refuses them ([`ClientError::Closed`]) once this node's map shows it
    /// closed (waited for, up to `CLOSED_WAIT`): route them again by that map.
    pub async fn put(
        &self,
        stream: &StreamPlacement,
        shard: u32,
        records: &[NewRecord],
    ) -> Result<ShardWritten, ClientError> {
        let group = GroupId {
            stream_uid: stream.uid,
            shard,
        };
        let replicas = self.replica_addresses(stream, shard);
        // No leader means nothing was written: asked again for a while (an election, a new
        // shard's group starting), so a failover or a reshard is a delay, not an error.
        let deadline = tokio::time::Instant::now() + LEADER_WAIT;
        let mut written = self.client.write(group, records, &replicas).await;
        while matches!(written, Err(ClientError::NoLeader))
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
            written = self.client.write(group, records, &replicas).await;
        }
        if let Err(ClientError::Closed) = written {
            let closed = |map: &Snapshot| {
                map.streams.values().any(|s| {
                    s.value.uid == stream.uid
                        && s.value.shards.iter().any(|s| s.index == shard && s.closed)
                })
            };
            let mut map = self.map.clone();
            let _ = tokio::time::timeout(CLOSED_WAIT, map.wait_for(|m| closed(m))).await;
        }
        written
    }

    /// Reads shard `shard` of `stream`: from this node's replica, or else from the first of
    /// the shard's live replicas that answers (see [`crate::reads`]).
    pub async fn read(
        &self,
        stream: &StreamPlacement,
        shard: u32,
        request: ReadRequest,
    ) -> Result<ReadReply, ClientError> {
        let group = GroupId {
            stream_uid: stream.uid,
            shard,
        };
        if let Some(replica) = self.replica(group) {
            return read_local(&self.client, group, &replica, request).await;
        }
        let mut last = ClientError::NotHere(group);
        for (_, address) in self.replica_addresses(stream, shard) {
            let body = encode(&(group.stream_uid, group.shard, request));
            let answer = match self.peers.call(&address, NODE_CALLS, "read", body).await {
                Ok(answer) => answer,
                Err(e) => {
                    last = ClientError::Unreachable(e.to_string());
                    continue;
                }
            };
            match decode::<Result<ReadReply, ClientError>>(&answer) {
                Ok(Ok(reply)) => return Ok(reply),
                Ok(Err(e)) => last = e,
                Err(e) => last = ClientError::Failed(e),
            }
        }
        Err(last)
    }

    /// This node's replica of `group`, if it runs the group.
    pub fn replica(&self, group: GroupId) -> Option<Replica> {
        self.raft.group(group).map(|running| running.replica)
    }

    /// Waits until this node's replica of `group` holds every record acknowledged before the
    /// call (see [`ShardClient::read_barrier`]).
    pub async fn read_barrier(&self, group: GroupId) -> Result<(), ClientError> {
        self.client.read_barrier(group).await
    }

    /// The Raft id and peer address of each live replica of a shard, as the map gives them.
    fn replica_addresses(&self, stream: &StreamPlacement, shard: u32) -> Vec<(u64, String)> {
        replica_addresses(&self.map().nodes, stream, shard)
    }

    /// The cluster as this node sees it: the map (read now), and every live node's running
    /// replicas (asked in parallel; a node that does not answer within 2 s is marked so).
    pub async fn status(&self) -> Result<ClusterStatus, MetaError> {
        let map = self.meta.snapshot().await?;
        let asks: Vec<_> = map
            .nodes
            .values()
            .map(|node| {
                let (peers, address) = (self.peers.clone(), node.peer_address.clone());
                let local = (node.id == self.id).then(|| local_reports(&self.raft));
                tokio::spawn(async move {
                    if local.is_some() {
                        return local;
                    }
                    let call = peers.call(&address, NODE_CALLS, "report", encode(&()));
                    let answer = tokio::time::timeout(Duration::from_secs(2), call).await;
                    decode::<Vec<ReplicaReport>>(&answer.ok()?.ok()?).ok()
                })
            })
            .collect();
        let mut reports = BTreeMap::new();
        for (id, ask) in map.nodes.keys().zip(asks) {
            reports.insert(id.clone(), ask.await.ok().flatten());
        }
        Ok(status_of(&self.id, &map, &reports))
    }

    /// Leaves the cluster: the reconciler stops, every group stops (their files kept), the
    /// peer port closes and the registration ends at once. Later calls do nothing.
    pub async fn stop(&self) -> Result<(), MetaError> {
        let Some(running) = self.running.lock().await.take() else {
            return Ok(());
        };
        let _ = self.stop.send(true);
        let _ = running.reconciler.await;
        // Its last pass marks the node's replicas as no longer running.
        let _ = tokio::time::timeout(Duration::from_secs(1), running.gauges).await;
        // The office is resigned (handed on at once); a resignation etcd does not answer
        // is given up after a while (the lease then runs out).
        let abort = running.controller.abort_handle();
        if tokio::time::timeout(Duration::from_secs(3), running.controller)
            .await
            .is_err()
        {
            abort.abort();
            eprintln!("sluice cluster: the controller did not resign within 3 s");
        }
        for task in &running.background {
            task.abort();
        }
        for group in self.raft.groups() {
            if let Err(e) = stop_group(&self.engine, &self.raft, group, false).await {
                eprintln!("sluice cluster: stopping group {group}: {e}");
            }
        }
        drop(running.server);
        match tokio::time::timeout(Duration::from_secs(3), running.registration).await {
            Ok(Ok(left)) => left,
            _ => Err(MetaError::Unavailable(
                "the registration could not be ended; its lease runs out".into(),
            )),
        }
    }
}

/// The status report from the map and each node's running replicas (`None`: no answer).
fn status_of(
    asked: &NodeId,
    map: &Snapshot,
    reports: &BTreeMap<NodeId, Option<Vec<ReplicaReport>>>,
) -> ClusterStatus {
    let by_raft_id: BTreeMap<u64, &NodeId> =
        map.nodes.keys().map(|id| (id.raft_id(), id)).collect();
    let nodes = map
        .nodes
        .values()
        .map(|node| NodeReport {
            id: node.id.clone(),
            peer_address: node.peer_address.clone(),
            client_endpoint: node.client_endpoint.clone(),
            failure_domain: node.failure_domain.clone(),
            answered: reports.get(&node.id).is_some_and(Option::is_some),
        })
        .collect();
    let streams = map
        .streams
        .values()
        .map(|stream| {
            let stream = &stream.value;
            // An expired shard has no replica left: nothing of it to report.
            let shards = stream
                .shards
                .iter()
                .filter(|shard| !shard.expired)
                .map(|shard| {
                    let group = GroupId {
                        stream_uid: stream.uid,
                        shard: shard.index,
                    };
                    let running: Vec<(NodeId, ReplicaReport)> = reports
                        .iter()
                        .filter_map(|(id, r)| Some((id, r.as_ref()?)))
                        .filter_map(|(id, r)| {
                            Some((id.clone(), r.iter().find(|r| r.group() == group)?.clone()))
                        })
                        .collect();
                    let leader = running
                        .iter()
                        .filter(|(_, r)| r.leader.is_some())
                        .max_by_key(|(_, r)| r.term)
                        .and_then(|(_, r)| by_raft_id.get(&r.leader?).map(|id| (*id).clone()));
                    ShardReport {
                        index: shard.index,
                        replicas: shard.replicas.clone(),
                        epoch: shard.epoch,
                        leader,
                        running,
                    }
                })
                .collect();
            StreamReport {
                name: stream.name.clone(),
                uid: stream.uid,
                status: stream.status,
                shards,
            }
        })
        .collect();
    ClusterStatus {
        asked: asked.clone(),
        controller: map.controller.clone(),
        revision: map.revision,
        nodes,
        streams,
    }
}

/// Resolves once `stopped` turns true (or its sender is gone).
async fn until(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}

/// What the node registers: its addresses (the peer listener's unless advertised) and labels.
fn node_info(listener: &TcpListener, config: &NodeConfig) -> Result<NodeInfo, MetaError> {
    let local = listener
        .local_addr()
        .map_err(|e| MetaError::Unavailable(format!("the peer port: {e}")))?;
    Ok(NodeInfo {
        id: config.id.clone(),
        peer_address: config.advertise.clone().unwrap_or(local.to_string()),
        client_endpoint: config.client_endpoint.clone(),
        failure_domain: config.failure_domain.clone(),
        started_ms: now_ms(),
    })
}

/// Registers the node. A node restarted before its previous run's leases ran out ends them
/// first: the registration's lease its previous run noted in `lease_file`, if that lease
/// still holds the node's registration and nothing answers at the address registered with
/// it (or it is this node's own address, whose port this process now holds: a copy of the
/// data directory elsewhere, still running, is refused), and then that run's candidacies for
/// the controller's office (so the office does not stay with a dead candidate).
async fn register<B: Backend>(
    meta: &ClusterMeta<B>,
    info: NodeInfo,
    config: &NodeConfig,
) -> Result<Registration<B>, MetaError> {
    let previous = config
        .lease_file
        .as_ref()
        .and_then(|file| std::fs::read_to_string(file).ok())
        .and_then(|text| text.trim().parse::<i64>().ok());
    if let Some(lease) = previous
        && let Some((registered, held)) = meta.registration_of(&info.id).await?
        && held == lease
    {
        if registered.peer_address != info.peer_address && answers(&registered.peer_address).await {
            return Err(MetaError::NodeIdTaken(info.id.to_string()));
        }
        meta.backend().revoke(lease).await?;
        for candidacy in meta.candidacies_of(&info.id).await? {
            meta.backend().revoke(candidacy).await?;
        }
    }
    // A previous run at this same address whose note did not survive (a power cut between
    // its registration and the note's sync): its lease runs out within about a TTL (etcd
    // may extend a lease when it elects a leader or restarts itself: three TTLs are
    // allowed), so the id is taken that long at most.
    let deadline =
        tokio::time::Instant::now() + config.registration_ttl * 3 + Duration::from_secs(2);
    let registration = loop {
        match meta.register(info.clone(), config.registration_ttl).await {
            Err(MetaError::NodeIdTaken(id)) if tokio::time::Instant::now() < deadline => {
                // Gone since (the lease just ran out): try again at once.
                if let Some((registered, _)) = meta.registration_of(&info.id).await? {
                    if registered.peer_address != info.peer_address {
                        return Err(MetaError::NodeIdTaken(id));
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            other => break other?,
        }
    };
    note_lease(config.lease_file.as_deref(), &registration)?;
    Ok(registration)
}

/// Notes the registration's lease in `file`, whole or not at all (written beside, synced,
/// renamed over, the directory synced): a power cut must not take the note back while the
/// lease lives, or the restarted node could not end it (the fault lab's power loss found
/// that).
fn note_lease<B: Backend>(
    file: Option<&std::path::Path>,
    registration: &Registration<B>,
) -> Result<(), MetaError> {
    let Some(file) = file else { return Ok(()) };
    crate::data_dir::write_synced(file, registration.lease().to_string().as_bytes())
        .map_err(|e| MetaError::Unavailable(format!("noting the lease in {}: {e}", file.display())))
}

/// Keeps the node registered until `stopped`, then ends the registration. A registration
/// lost (the node cut off from etcd, or frozen, for a whole TTL: its key is gone and the
/// others count it away) is made again with a new lease as soon as etcd takes it; until then
/// the node's groups go on as Raft lets them.
async fn keep_registered<B: Backend>(
    meta: ClusterMeta<B>,
    mut registration: Registration<B>,
    (ttl, lease_file): (Duration, Option<std::path::PathBuf>),
    stopped: watch::Receiver<bool>,
) -> Result<(), MetaError> {
    let stop = until(stopped);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return registration.revoke().await,
            () = registration.lost() => {}
        }
        let info = registration.node().clone();
        eprintln!(
            "sluice cluster: node {} lost its registration; registering again",
            info.id
        );
        let mut pause = Duration::from_millis(200);
        registration = loop {
            let registered = tokio::select! {
                () = &mut stop => return Ok(()),
                registered = meta.register(info.clone(), ttl) => registered,
            };
            match registered {
                Ok(registration) => break registration,
                Err(e) => {
                    eprintln!("sluice cluster: registering node {} again: {e}", info.id);
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        };
        if let Err(e) = note_lease(lease_file.as_deref(), &registration) {
            eprintln!("sluice cluster: {e}");
        }
    }
}

/// Whether something accepts connections at `address` within a second.
async fn answers(address: &str) -> bool {
    let connect = tokio::net::TcpStream::connect(address);
    matches!(
        tokio::time::timeout(Duration::from_secs(1), connect).await,
        Ok(Ok(_))
    )
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

fn replica_addresses(
    nodes: &BTreeMap<NodeId, NodeInfo>,
    stream: &StreamPlacement,
    shard: u32,
) -> Vec<(u64, String)> {
    stream
        .shards
        .iter()
        .filter(|s| s.index == shard)
        .flat_map(|s| &s.replicas)
        .filter_map(|id| nodes.get(id))
        .map(|node| (node.id.raft_id(), node.peer_address.clone()))
        .collect()
}

/// Hands `call` to this node's controller task and waits for its answer.
async fn ask_office(
    office: &mpsc::Sender<Request>,
    call: AdminCall,
    wait: Duration,
) -> Result<AdminDone, AdminError> {
    // The queue's room and the answer within one wait: a request still queued when the
    // caller gives up is dropped by the controller; one it already works on may still be
    // made, which the error says.
    let asked = async {
        match call {
            AdminCall::CreateStream { name, shard_count } => {
                let settings = StreamSettings::default();
                let made = request(office, |reply| Request::CreateStream {
                    name,
                    shard_count,
                    settings,
                    reply,
                });
                made.await.map(AdminDone::Created)
            }
            AdminCall::CreateStreamWith {
                name,
                shard_count,
                settings,
            } => {
                let made = request(office, |reply| Request::CreateStream {
                    name,
                    shard_count,
                    settings,
                    reply,
                });
                made.await.map(AdminDone::Created)
            }
            AdminCall::DeleteStream {
                name,
                with_consumers,
            } => {
                let deleted = request(office, |reply| Request::DeleteStream {
                    name,
                    with_consumers,
                    reply,
                });
                deleted.await.map(|()| AdminDone::Deleted)
            }
            AdminCall::Configure { name, change } => {
                let changed = request(office, |reply| Request::Configure {
                    name,
                    change,
                    reply,
                });
                let (placement, revision) = changed.await?;
                Ok(AdminDone::Configured(placement, revision))
            }
            AdminCall::Reshard { name, change } => {
                let begun = request(office, |reply| Request::Reshard {
                    name,
                    change,
                    reply,
                });
                let (placement, revision) = begun.await?;
                Ok(AdminDone::Configured(placement, revision))
            }
        }
    };
    tokio::time::timeout(wait, asked).await.unwrap_or_else(|_| {
        Err(AdminError::Unavailable(format!(
            "the controller did not answer within {wait:?}"
        )))
    })
}

/// Queues the request `make` builds around its reply channel and waits for the answer.
async fn request<T>(
    office: &mpsc::Sender<Request>,
    make: impl FnOnce(oneshot::Sender<Result<T, ControllerError>>) -> Request,
) -> Result<T, AdminError> {
    let gone = || AdminError::Unavailable("the controller's task has ended".into());
    let (reply, answer) = oneshot::channel();
    office.send(make(reply)).await.map_err(|_| gone())?;
    answer.await.map_err(|_| gone())?.map_err(AdminError::from)
}

/// Keeps `publish` at the map's latest state until `stopped`: a snapshot, then a new one at
/// every change a watch sees; after an error, again from a snapshot after a pause.
async fn follow_map<B: Backend>(
    meta: ClusterMeta<B>,
    publish: watch::Sender<Arc<Snapshot>>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut pause = Duration::from_millis(200);
    loop {
        let error = tokio::select! {
            _ = stopped.wait_for(|stop| *stop) => return,
            Err(e) = publish_changes(&meta, &publish) => e,
        };
        eprintln!("sluice cluster: following the map: {error}; reading it again");
        tokio::select! {
            _ = stopped.wait_for(|stop| *stop) => return,
            () = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

/// Publishes a snapshot, then a new one at every change a watch sees, until an error.
async fn publish_changes<B: Backend>(
    meta: &ClusterMeta<B>,
    publish: &watch::Sender<Arc<Snapshot>>,
) -> Result<std::convert::Infallible, MetaError> {
    let snapshot = meta.snapshot().await?;
    let mut watch = meta.watch(snapshot.revision + 1).await?;
    publish.send_replace(Arc::new(snapshot));
    loop {
        watch.next().await?;
        publish.send_replace(Arc::new(meta.snapshot().await?));
    }
}

/// What a node answers on its peer port: its groups' Raft calls, and calls to the node
/// itself (administration for the controller's office, the groups it runs).
struct NodeCalls<B: Backend> {
    id: NodeId,
    meta: ClusterMeta<B>,
    raft: Arc<RaftHost>,
    client: ShardClient,
    admin: mpsc::Sender<Request>,
    admin_wait: Duration,
}

impl<B: Backend> PeerHandler for NodeCalls<B> {
    async fn call(&self, group: GroupId, method: &str, body: Bytes) -> Result<Bytes, String> {
        if group != NODE_CALLS {
            return self.raft.call(group, method, body).await;
        }
        match method {
            "admin" => {
                let call: AdminCall = decode(&body)?;
                // The office may have moved since the caller looked: it asks again. All of
                // it within the wait, which is under the caller's timeout.
                let deadline = tokio::time::Instant::now() + self.admin_wait;
                let answered = tokio::time::timeout_at(deadline, async {
                    match self.meta.controller().await {
                        Ok(Some(id)) if id == self.id => {
                            let left = deadline - tokio::time::Instant::now();
                            ask_office(&self.admin, call, left).await
                        }
                        Ok(_) => Err(AdminError::NoController),
                        Err(e) => Err(AdminError::from(e)),
                    }
                });
                let answer = answered.await.unwrap_or_else(|_| {
                    Err(AdminError::Unavailable(
                        "the controller did not answer in time".into(),
                    ))
                });
                Ok(encode(&answer))
            }
            "report" => Ok(encode(&crate::status::local_reports(&self.raft))),
            "read" => {
                let (stream_uid, shard, request): (u64, u32, ReadRequest) = decode(&body)?;
                let group = GroupId { stream_uid, shard };
                let answer = match self.raft.group(group) {
                    Some(running) => {
                        read_local(&self.client, group, &running.replica, request).await
                    }
                    None => Err(ClientError::NotHere(group)),
                };
                Ok(encode(&answer))
            }
            "drained" => {
                // Whether this node's replica of the shard holds no readable record any more:
                // it applied up to the shard's end (one behind judges only what it has) and
                // every record is past retention by this node's clock. `None`: it does not
                // run the group.
                let (stream_uid, shard, end): (u64, u32, u64) = decode(&body)?;
                let running = self.raft.group(GroupId { stream_uid, shard });
                let drained = running.map(|running| {
                    let reader = running.replica.reader();
                    let next = reader.next_seq();
                    next >= end && reader.trim_horizon() >= next
                });
                Ok(encode(&drained))
            }
            "groups" => {
                let running: Vec<(u64, u32)> = (self.raft.groups().iter())
                    .map(|g| (g.stream_uid, g.shard))
                    .collect();
                Ok(encode(&running))
            }
            other => Err(format!("no node call {other:?}")),
        }
    }
}

/// The controller's questions, answered from the data plane.
#[derive(Clone)]
struct DataProbe {
    client: ShardClient,
    peers: Peers,
}

/// Whether every one of `asks` (tasks asked at once) answers true; the others are dropped
/// (aborted) at the first that does not.
async fn all_true(mut asks: tokio::task::JoinSet<bool>) -> bool {
    while let Some(answer) = asks.join_next().await {
        if !matches!(answer, Ok(true)) {
            return false;
        }
    }
    true
}

impl GroupProbe for DataProbe {
    async fn leading(&self, stream: &StreamPlacement, nodes: &BTreeMap<NodeId, NodeInfo>) -> bool {
        let asks = stream
            .shards
            .iter()
            .filter(|s| !s.closed)
            .map(|shard| {
                let group = GroupId {
                    stream_uid: stream.uid,
                    shard: shard.index,
                };
                let replicas = replica_addresses(nodes, stream, shard.index);
                let client = self.client.clone();
                async move { client.confirm_leader(group, &replicas).await.is_ok() }
            })
            .collect();
        all_true(asks).await
    }

    async fn close(
        &self,
        stream: &StreamPlacement,
        shard: u32,
        nodes: &BTreeMap<NodeId, NodeInfo>,
    ) -> Option<(u64, u64)> {
        let group = GroupId {
            stream_uid: stream.uid,
            shard,
        };
        let replicas = replica_addresses(nodes, stream, shard);
        self.client.close(group, &replicas).await.ok()
    }

    async fn drained(
        &self,
        stream: &StreamPlacement,
        shard: u32,
        nodes: &BTreeMap<NodeId, NodeInfo>,
    ) -> bool {
        let Some(placement) = stream.shards.iter().find(|s| s.index == shard) else {
            return false;
        };
        let Some(end) = placement.ending_seq else {
            return false;
        };
        let mut asks = tokio::task::JoinSet::new();
        for id in &placement.replicas {
            let Some(node) = nodes.get(id) else { continue };
            let (peers, address) = (self.peers.clone(), node.peer_address.clone());
            let body = encode(&(stream.uid, shard, end));
            asks.spawn(async move {
                let asked = peers.call(&address, NODE_CALLS, "drained", body).await;
                asked
                    .ok()
                    .and_then(|bytes| decode::<Option<bool>>(&bytes).ok().flatten())
            });
        }
        // Every replica that answers has nothing readable left, and a majority answered.
        let mut confirmed = 0;
        while let Some(answer) = asks.join_next().await {
            match answer {
                Ok(Some(true)) => confirmed += 1,
                Ok(Some(false)) => return false,
                _ => {}
            }
        }
        confirmed * 2 > placement.replicas.len()
    }

    async fn stopped(&self, stream: &StreamPlacement, nodes: &BTreeMap<NodeId, NodeInfo>) -> bool {
        let uid = stream.uid;
        let asks = nodes
            .values()
            .map(|node| {
                let (peers, address) = (self.peers.clone(), node.peer_address.clone());
                async move {
                    let asked = peers.call(&address, NODE_CALLS, "groups", encode(&()));
                    match asked.await.map(|bytes| decode::<Vec<(u64, u32)>>(&bytes)) {
                        Ok(Ok(running)) => !running.iter().any(|&(u, _)| u == uid),
                        _ => false,
                    }
                }
            })
            .collect();
        all_true(asks).await
    }
}
