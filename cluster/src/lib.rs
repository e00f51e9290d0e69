//! Sluice's cluster control plane: which nodes are alive, which one is the controller, and
//! the stream map (every shard's hash range, lineage and replica set), kept in etcd (feature
//! `etcd`) or in memory, with replica placement.
//!
//! ```no_run
//! # async fn run() -> Result<(), sluice_cluster::MetaError> {
//! use std::time::Duration;
//! use sluice_cluster::{ClusterMeta, EmbeddedBackend, NodeId, NodeInfo};
//!
//! let meta = ClusterMeta::new(EmbeddedBackend::new(), "main")?;
//! let id = NodeId::new("node-1")?;
//! let node = NodeInfo {
//!     id: id.clone(),
//!     peer_address: "10.0.0.1:4600".into(),
//!     client_endpoint: "http://10.0.0.1:4567".into(),
//!     failure_domain: Some("rack-a".into()),
//!     started_ms: 0,
//! };
//! let _registration = meta.register(node, Duration::from_secs(10)).await?;
//! let office = meta.campaign(&id, Duration::from_secs(10)).await?; // waits until elected
//! let map = meta.snapshot().await?;
//! let mut changes = meta.watch(map.revision + 1).await?;
//! # let _ = (office, changes.next().await?);
//! # Ok(()) }
//! ```
//!
//! Design, key layout and invariants: docs/design/cluster.md.

mod backend;
pub mod controller;
mod data_dir;
mod embedded;
mod error;
#[cfg(feature = "etcd")]
mod etcd;
mod lease;
mod meta;
mod metrics;
mod model;
pub mod node;
pub mod placement;
pub mod plan;
pub mod raft;
pub mod reads;
pub mod reconcile;
pub mod reshard;
pub mod settings;
pub mod status;
pub mod transport;

pub use backend::{Backend, BackendWatch, Compare, Kv, KvEvent, LeaseId, Op, TxnOutcome};
pub use embedded::{EmbeddedBackend, EmbeddedWatch};
pub use error::MetaError;
#[cfg(feature = "etcd")]
pub use etcd::{EtcdBackend, EtcdTls, EtcdWatch};
pub use meta::{
    Change, Claim, ClusterEvent, ClusterMeta, ClusterWatch, GoneTimes, Leadership, Registration,
    Snapshot,
};
pub use model::{
    NodeId, NodeInfo, Resharding, Revision, ShardPlacement, StreamPlacement, StreamSettings,
    StreamStatus, Versioned,
};
pub use node::{AdminError, ClusterNode, NodeConfig};
