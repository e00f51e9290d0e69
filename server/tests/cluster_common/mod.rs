//! What the cluster-mode tests over HTTP share: nodes in one process (each a `Service` with
//! its own data directory and Kinesis port, a `ClusterNode` on its engine, the control plane
//! in memory) and a client speaking the JSON wire.
#![allow(dead_code)] // each test uses its own part

use serde_json::Value;
use sluice_cluster::{ClusterMeta, ClusterNode, EmbeddedBackend, NodeConfig, NodeId};
use sluice_server::cluster::ClusterFront;
use sluice_server::{ServeConfig, Service};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

pub const PATIENCE: Duration = Duration::from_secs(20);

pub struct Node {
    pub address: SocketAddr,
    pub cluster: Arc<ClusterNode<EmbeddedBackend>>,
    _stop: tokio::sync::oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

/// The account's open shards at most, small enough to reach.
pub const SHARD_QUOTA: u32 = 6;

pub async fn start(meta: &ClusterMeta<EmbeddedBackend>, name: &str) -> Node {
    let system: Arc<dyn sluice_core::Clock> = Arc::new(sluice_core::SystemClock);
    start_clocked(meta, name, (system.clone(), system)).await
}

/// A node whose controller (should it hold the office) reads the first clock (the times it
/// writes and retention's) and whose engine the second (records' arrival times and
/// retention's).
pub async fn start_clocked(
    meta: &ClusterMeta<EmbeddedBackend>,
    name: &str,
    (controller_clock, engine_clock): (Arc<dyn sluice_core::Clock>, Arc<dyn sluice_core::Clock>),
) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServeConfig::new(dir.path());
    config.engine_clock = sluice_server::EngineClock(engine_clock);
    config.cores = 1;
    config.segment_size_bytes = 1 << 20;
    config.shards_max = SHARD_QUOTA;
    let service = Arc::new(Service::open(config).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let mut node = NodeConfig::new(NodeId::new(name).unwrap(), format!("http://{address}"));
    node.registration_ttl = Duration::from_secs(3);
    node.controller.lease_ttl = Duration::from_secs(3);
    node.controller.tick = Duration::from_millis(200);
    node.controller.shard_quota = SHARD_QUOTA;
    node.controller.clock = controller_clock;
    let engine = service.default_tenant().engine.clone();
    let peers = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cluster = Arc::new(
        ClusterNode::start(meta.clone(), engine, peers, node)
            .await
            .unwrap(),
    );
    let front = ClusterFront::new(cluster.clone(), service.default_tenant().clone())
        .await
        .unwrap();
    service.attach_cluster(Arc::new(front)).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(sluice_server::http::serve(
        service,
        listener,
        None,
        None,
        async {
            let _ = stopped.await;
        },
    ));
    Node {
        address,
        cluster,
        _stop: stop,
        _dir: dir,
    }
}

pub fn shard_index(shard: &str) -> u32 {
    shard.trim_start_matches("shardId-").parse().unwrap()
}

/// One Kinesis call over HTTP/1.1: the status and the JSON reply.
pub async fn call(node: &Node, operation: &str, body: Value) -> (u16, Value) {
    let body = body.to_string();
    let request = format!(
        "POST / HTTP/1.1\r\nhost: {}\r\ncontent-type: application/x-amz-json-1.1\r\nx-amz-target: Kinesis_20131202.{operation}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        node.address,
        body.len()
    );
    let mut stream = TcpStream::connect(node.address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).await.unwrap();
    let text = String::from_utf8(reply).unwrap();
    let status: u16 = text[9..12].parse().unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    let value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
    };
    (status, value)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").unwrap();
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
}

/// A call that must succeed.
pub async fn ok(node: &Node, operation: &str, body: Value) -> Value {
    let (status, reply) = call(node, operation, body).await;
    assert_eq!(status, 200, "{operation}: {reply}");
    reply
}

pub async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn base64(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}
