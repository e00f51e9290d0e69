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
    /// The credential the node verifies, which its calls are signed with.
    pub signer: Option<(String, String)>,
    pub cluster: Arc<ClusterNode<EmbeddedBackend>>,
    _stop: tokio::sync::oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

/// The account's open shards at most, small enough to reach.
pub const SHARD_QUOTA: u32 = 6;

/// How long a SubscribeToShard lasts on these nodes.
pub const SUBSCRIPTION_MS: u64 = 4_000;

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
    clocks: (Arc<dyn sluice_core::Clock>, Arc<dyn sluice_core::Clock>),
) -> Node {
    start_configured(meta, name, clocks, None).await
}

/// A node that verifies SigV4 signatures by `AKIDEXAMPLE:secret` (and so evaluates resource
/// policies); its calls are signed.
pub async fn start_signed(meta: &ClusterMeta<EmbeddedBackend>, name: &str) -> Node {
    let system: Arc<dyn sluice_core::Clock> = Arc::new(sluice_core::SystemClock);
    let signer = ("AKIDEXAMPLE".to_owned(), "secret".to_owned());
    start_configured(meta, name, (system.clone(), system), Some(signer)).await
}

async fn start_configured(
    meta: &ClusterMeta<EmbeddedBackend>,
    name: &str,
    (controller_clock, engine_clock): (Arc<dyn sluice_core::Clock>, Arc<dyn sluice_core::Clock>),
    signer: Option<(String, String)>,
) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServeConfig::new(dir.path());
    if let Some((key, secret)) = &signer {
        config.credentials = vec![sluice_server::config::Credential {
            access_key_id: key.clone(),
            secret: secret.clone(),
            account: None,
            session_token: None,
            policy: None,
        }];
    }
    config.engine_clock = sluice_server::EngineClock(engine_clock);
    config.cores = 1;
    config.segment_size_bytes = 1 << 20;
    // Subscriptions end soon enough for a test to read one whole.
    config.subscription_ms = SUBSCRIPTION_MS;
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
        signer,
        cluster,
        _stop: stop,
        _dir: dir,
    }
}

impl Node {
    /// The node's data directory.
    pub fn dir(&self) -> &std::path::Path {
        self._dir.path()
    }
}

/// Waits until one of the nodes on `meta` holds the controller's office.
pub async fn controller_elected(meta: &ClusterMeta<EmbeddedBackend>) {
    eventually("a controller is elected", async || {
        meta.controller().await.unwrap().is_some()
    })
    .await;
}

pub fn shard_index(shard: &str) -> u32 {
    shard.trim_start_matches("shardId-").parse().unwrap()
}

/// One Kinesis call over HTTP/1.1: the status and the JSON reply.
pub async fn call(node: &Node, operation: &str, body: Value) -> (u16, Value) {
    let (status, body) = call_raw(node, operation, body).await;
    let body = String::from_utf8(body).unwrap();
    let value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
    };
    (status, value)
}

/// A SubscribeToShard call read to its end (the subscription's time is up): its events,
/// each as (event or exception type, JSON payload).
pub async fn subscription(node: &Node, body: Value) -> Vec<(String, Value)> {
    use aws_smithy_types::event_stream::HeaderValue;
    let (status, body) = call_raw(node, "SubscribeToShard", body).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let mut buffer = &body[..];
    let mut events = Vec::new();
    while !buffer.is_empty() {
        let message = aws_smithy_eventstream::frame::read_message_from(&mut buffer).unwrap();
        let header = |name: &str| {
            (message.headers().iter())
                .find(|h| h.name().as_str() == name)
                .and_then(|h| match h.value() {
                    HeaderValue::String(s) => Some(s.as_str().to_owned()),
                    _ => None,
                })
                .unwrap_or_default()
        };
        let kind = match header(":message-type").as_str() {
            "event" => header(":event-type"),
            _ => header(":exception-type"),
        };
        events.push((kind, serde_json::from_slice(message.payload()).unwrap()));
    }
    events
}

/// One Kinesis call over HTTP/1.1: the status and the body (de-chunked).
async fn call_raw(node: &Node, operation: &str, body: Value) -> (u16, Vec<u8>) {
    let body = body.to_string();
    let host = node.address.to_string();
    let target = format!("Kinesis_20131202.{operation}");
    let headers = [
        ("host", host.as_str()),
        ("content-type", "application/x-amz-json-1.1"),
        ("x-amz-target", target.as_str()),
    ];
    let mut head: String = (headers.iter())
        .map(|(n, v)| format!("{n}: {v}\r\n"))
        .collect();
    if let Some(signer) = &node.signer {
        for (name, value) in signature(signer, &host, &headers, &body) {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    let request = format!(
        "POST / HTTP/1.1\r\n{head}content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(node.address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).await.unwrap();
    let split = (reply.windows(4).position(|w| w == b"\r\n\r\n")).expect("a head") + 4;
    let head = String::from_utf8_lossy(&reply[..split]).to_ascii_lowercase();
    let status: u16 = head[9..12].parse().unwrap();
    let body = &reply[split..];
    if head.contains("transfer-encoding: chunked") {
        (status, dechunk(body))
    } else {
        (status, body.to_vec())
    }
}

/// The headers SigV4 adds to a request of `headers` and `body` to `/` (in us-east-1).
fn signature(
    (key, secret): &(String, String),
    host: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Vec<(String, String)> {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    let identity =
        aws_credential_types::Credentials::new(key, secret, None, None, "cluster tests").into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("kinesis")
        .time(std::time::SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let uri = format!("http://{host}/");
    let signable = SignableRequest::new(
        "POST",
        &uri,
        headers.iter().copied(),
        SignableBody::Bytes(body.as_bytes()),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let (added, _) = instructions.into_parts();
    (added.iter())
        .map(|h| (h.name().to_owned(), h.value().to_owned()))
        .collect()
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line = body.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = std::str::from_utf8(&body[..line]).unwrap();
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        let rest = &body[line + 2..];
        out.extend_from_slice(&rest[..size]);
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
