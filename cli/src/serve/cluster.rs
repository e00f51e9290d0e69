//! `sluice serve --cluster`: this server as one node of a cluster (the `cluster` feature),
//! with etcd as the control plane. Start-up order: the engine (the data directory, as in
//! single-node mode), the registration, the peer port, the map and the shard groups, the
//! controller's candidacy, then the Kinesis port serves from the cluster.

use anyhow::Context as _;
use clap::Args;
use clap::builder::FalseyValueParser;
use sluice_cluster::transport::PeerTls;
use sluice_cluster::{ClusterMeta, ClusterNode, EtcdBackend, EtcdTls, NodeConfig, NodeId};
use sluice_server::Service;
use sluice_server::cluster::ClusterFront;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Cluster mode's options.
#[derive(Args, Debug, Clone)]
pub struct ClusterArgs {
    /// Run as a node of a cluster: every shard replicated on --replication nodes, any node
    /// serving any request, etcd (--etcd) holding the membership and the stream map.
    /// (Not with --ephemeral: a node id must keep its data, or it votes as its old self
    /// without the records it acknowledged.)
    #[arg(long, env = "SLUICE_CLUSTER", value_parser = FalseyValueParser::new(), requires_all = ["etcd", "node_id"], conflicts_with = "ephemeral")]
    pub cluster: bool,
    /// etcd's client URLs, comma-separated (http://127.0.0.1:2379; https:// with --etcd-ca).
    #[arg(long, env = "SLUICE_ETCD", value_delimiter = ',')]
    pub etcd: Vec<String>,
    /// Reach etcd over TLS: the authority that signed etcd's certificate (PEM).
    #[arg(long, env = "SLUICE_ETCD_CA")]
    pub etcd_ca: Option<PathBuf>,
    /// The node's client certificate for etcd (PEM), when etcd asks for one
    /// (`--client-cert-auth`, or a `--trusted-ca-file`).
    #[arg(long, env = "SLUICE_ETCD_CERT", requires_all = ["etcd_key", "etcd_ca"])]
    pub etcd_cert: Option<PathBuf>,
    /// The private key of --etcd-cert (PEM).
    #[arg(long, env = "SLUICE_ETCD_KEY", requires = "etcd_cert")]
    pub etcd_key: Option<PathBuf>,
    /// This node's id, unique among the live nodes: `[A-Za-z0-9._-]`, up to 64 characters.
    /// Keep it across restarts: the node's replicas are known by it.
    #[arg(long, env = "SLUICE_NODE_ID")]
    pub node_id: Option<String>,
    /// Where this node listens for the other nodes (Raft traffic, forwarded requests).
    #[arg(long, env = "SLUICE_PEER_LISTEN", default_value = "127.0.0.1:4600")]
    pub peer_listen: SocketAddr,
    /// The address the other nodes reach the peer port at (host:port); default: the
    /// address --peer-listen bound.
    #[arg(long, env = "SLUICE_ADVERTISE")]
    pub advertise: Option<String>,
    /// The cluster's name: its key prefix in etcd (clusters can share one etcd).
    #[arg(long, env = "SLUICE_CLUSTER_NAME", default_value = "main")]
    pub cluster_name: String,
    /// Copies of each shard of a new stream (a majority must be up to write).
    #[arg(long, env = "SLUICE_REPLICATION", default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=7))]
    pub replication: u8,
    /// This node's failure domain (a rack, a zone): replicas of a shard go to different
    /// domains while there are enough.
    #[arg(long, env = "SLUICE_FAILURE_DOMAIN")]
    pub failure_domain: Option<String>,
    /// How long a node may be gone (stopped, crashed, cut off) before the controller
    /// re-creates its replicas on other nodes, in seconds: long enough for a restart or an
    /// upgrade, short enough that a lost machine is not missed for long.
    #[arg(long, env = "SLUICE_REPLACE_AFTER_SECS", default_value_t = 300)]
    pub replace_after_secs: u64,
    /// Mutual TLS on the peer port: this node's certificate chain (PEM), signed by
    /// --peer-tls-ca and naming the address the others reach it at (--advertise, or
    /// --peer-listen) in its subjectAltName. Every node of the cluster needs one. The three
    /// files are read again on SIGHUP.
    #[arg(long, env = "SLUICE_PEER_TLS_CERT", requires_all = ["peer_tls_key", "peer_tls_ca"])]
    pub peer_tls_cert: Option<PathBuf>,
    /// The private key of --peer-tls-cert (PEM).
    #[arg(long, env = "SLUICE_PEER_TLS_KEY", requires = "peer_tls_cert")]
    pub peer_tls_key: Option<PathBuf>,
    /// The cluster's certificate authority (PEM): only nodes whose certificates it signed
    /// are called or answered.
    #[arg(long, env = "SLUICE_PEER_TLS_CA", requires = "peer_tls_cert")]
    pub peer_tls_ca: Option<PathBuf>,
}

/// Starts this node and makes `service` serve Kinesis from the cluster; `endpoint` is the
/// URL clients reach this node's Kinesis port at.
pub async fn join(
    args: &ClusterArgs,
    service: &Service,
    endpoint: String,
) -> anyhow::Result<(Arc<ClusterNode<EtcdBackend>>, Option<PeerTls>)> {
    let data_dir = &service.config.data_dir;
    let id = args.node_id.clone().context("--cluster needs --node-id")?;
    let id = NodeId::new(id).context("--node-id")?;
    let tls = args.etcd_ca.clone().map(|ca| EtcdTls {
        ca,
        identity: args.etcd_cert.clone().zip(args.etcd_key.clone()),
    });
    let backend = EtcdBackend::connect_with(&args.etcd, Duration::from_secs(5), tls.as_ref())
        .await
        .with_context(|| format!("connecting to etcd at {}", args.etcd.join(",")))?;
    let meta = ClusterMeta::new(backend, &args.cluster_name).context("--cluster-name")?;
    let peers = tokio::net::TcpListener::bind(args.peer_listen)
        .await
        .with_context(|| format!("listening for peers on {}", args.peer_listen))?;
    let mut config = NodeConfig::new(id.clone(), endpoint);
    config.advertise = args.advertise.clone();
    config.failure_domain = args.failure_domain.clone();
    config.lease_file = Some(data_dir.join("cluster-node.lease"));
    config.controller.replication = args.replication;
    config.controller.replace_after = Duration::from_secs(args.replace_after_secs);
    config.controller.shard_quota = service.config.shards_max;
    config.controller.update_shard_count_per_day_max =
        service.config.update_shard_count_per_day_max;
    if let (Some(cert), Some(key), Some(ca)) =
        (&args.peer_tls_cert, &args.peer_tls_key, &args.peer_tls_ca)
    {
        config.transport.tls = Some(PeerTls::from_pem(cert, key, ca)?);
    }
    let peer_tls = config.transport.tls.clone();
    let engine = service.default_tenant().engine.clone();
    let node = ClusterNode::start(meta, engine, peers, config)
        .await
        .with_context(|| format!("starting cluster node {id}"))?;
    let node = Arc::new(node);
    let front = ClusterFront::new(node.clone(), service.default_tenant().clone())
        .await
        .context("reading the cluster's iterator key")?;
    service.attach_cluster(Arc::new(front))?;
    eprintln!(
        "  cluster {}: node {id}, peers on {} ({}), etcd at {}, replication {}",
        args.cluster_name,
        node.peer_address(),
        match peer_tls {
            Some(_) => "mutual TLS",
            None => "h2c, unauthenticated: keep it on a private network",
        },
        args.etcd.join(","),
        args.replication
    );
    Ok((node, peer_tls))
}
