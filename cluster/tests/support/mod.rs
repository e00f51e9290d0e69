//! What the cluster tests share: nodes and streams to put in the map, a patience for
//! "eventually", and the macro that runs a test against both stores.

#[cfg(feature = "etcd")]
pub mod etcd;
#[allow(dead_code, reason = "the test binaries with etcd use it")]
pub mod pki;

use std::time::Duration;

use sluice_cluster::{NodeId, NodeInfo};

/// The tests' leases: etcd's smallest is about 2 s with its default timings, and 3 s leaves
/// a renewal (every second) room to be late on a busy machine.
pub const TTL: Duration = Duration::from_secs(3);
/// Far longer than any TTL here: what "eventually" means in these tests.
pub const PATIENCE: Duration = Duration::from_secs(20);

pub fn node(name: &str) -> NodeInfo {
    NodeInfo {
        id: NodeId::new(name).unwrap(),
        peer_address: format!("{name}.local:4600"),
        client_endpoint: format!("http://{name}.local:4567"),
        failure_domain: None,
        started_ms: 1,
    }
}

pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: not within {PATIENCE:?}"))
}

/// Runs each named test (an async fn taking a `ClusterMeta`) against the in-memory store and,
/// with the `etcd` feature, against a real etcd started for it.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(sluice_cluster::ClusterMeta::new(sluice_cluster::EmbeddedBackend::new(), "test").unwrap()).await;
                }
            )*
        }
        #[cfg(feature = "etcd")]
        mod etcd {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let server = crate::support::etcd::Etcd::start().await;
                    super::$name(sluice_cluster::ClusterMeta::new(server.backend().await, "test").unwrap()).await;
                    drop(server);
                }
            )*
        }
    };
}
