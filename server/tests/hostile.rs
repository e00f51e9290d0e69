//! Hostile and careless clients against the real server (HTTP layer, engine, data
//! directory), each attack as a client would make it, with a small budget so that it
//! takes few connections: connections that declare large bodies and send nothing (over
//! HTTP/1.1 and HTTP/2), one connection taking the whole body budget, silent and idle
//! connections, one address taking every connection, and unsigned requests with bodies.

use bytes::Bytes;
use futures_lite::StreamExt as _;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use sluice_server::config::Credential;
use sluice_server::{ServeConfig, Service};
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};

/// A server on a free loopback port, stopped when dropped.
struct Server {
    address: SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

/// A small server: 1 MiB bodies, a 4 MiB budget (so a connection's share is one body).
fn small_config(dir: &std::path::Path) -> ServeConfig {
    let mut config = ServeConfig::new(dir);
    config.cores = 1;
    config.segment_size_bytes = 4 << 20;
    config.body_bytes_max = 1 << 20;
    config.body_bytes_in_flight_max = 4 << 20;
    config
}

async fn start(adjust: impl FnOnce(&mut ServeConfig)) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut config = small_config(dir.path());
    adjust(&mut config);
    let service = Arc::new(Service::open(config).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
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
    Server {
        address,
        _stop: stop,
        _dir: dir,
    }
}

/// A connection to `server` from the loopback address `from` (Linux routes all of
/// 127/8 to the loopback device, so tests can be several clients).
async fn connect_from(server: &Server, from: [u8; 4]) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(IpAddr::from(from), 0)).unwrap();
    socket.connect(server.address).await.unwrap()
}

/// An HTTP/1.1 request's head that announces `content_length` body bytes.
fn head(target: &str, content_length: usize) -> String {
    format!(
        "POST / HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-amz-json-1.1\r\nx-amz-target: Kinesis_20131202.{target}\r\ncontent-length: {content_length}\r\n\r\n"
    )
}

/// One whole request on a new connection from `from`; the reply's status and body.
async fn call_from(server: &Server, from: [u8; 4], target: &str, body: &str) -> (u16, String) {
    let mut stream = connect_from(server, from).await;
    let request =
        head(target, body.len()).replace("host: x\r\n", "host: x\r\nconnection: close\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    // Bounded: an attack that works makes the server answer late (10 s) or never.
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut reply))
        .await
        .expect("an answer within 30 s")
        .unwrap();
    let reply = String::from_utf8_lossy(&reply).into_owned();
    let status = reply
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {reply:?}"));
    (status, reply)
}

async fn list_streams_from(server: &Server, from: [u8; 4]) -> (u16, String) {
    call_from(server, from, "ListStreams", "{}").await
}

/// Whether the server closes `stream` (reads end) within `within`; bytes it sent first
/// (a reply, a GOAWAY) are skipped.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let read_to_end = async {
        let mut sink = Vec::new();
        let _ = stream.read_to_end(&mut sink).await;
    };
    tokio::time::timeout(within, read_to_end).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_declare_large_bodies_and_send_nothing_hold_no_budget() {
    let server = start(|_| {}).await;
    // Each claims a whole body; eight claim twice the server's budget.
    let mut stalled = Vec::new();
    for i in 0..8 {
        let mut stream = connect_from(&server, [127, 0, 0, 10 + i]).await;
        stream
            .write_all(head("PutRecord", 1 << 20).as_bytes())
            .await
            .unwrap();
        stalled.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, reply) = list_streams_from(&server, [127, 0, 0, 2]).await;
    assert_eq!(status, 200, "{reply}");
}

/// A request body sent frame by frame.
type Streamed = StreamBody<futures_lite::stream::Boxed<Result<Frame<Bytes>, Infallible>>>;

/// An HTTP/2 request whose body never comes: its Content-Length is a claim only.
fn stalled_h2_request(
    content_length: usize,
    first_bytes: usize,
) -> (hyper::Request<Streamed>, tokio::sync::oneshot::Sender<()>) {
    let (keep, kept) = tokio::sync::oneshot::channel::<()>();
    let first = Bytes::from(vec![b' '; first_bytes]);
    let frames = futures_lite::stream::once(Ok(Frame::data(first))).chain(
        futures_lite::stream::once_future(async move {
            let _ = kept.await;
            Ok(Frame::data(Bytes::new()))
        }),
    );
    let request = hyper::Request::post("http://x/")
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amz-target", "Kinesis_20131202.PutRecord")
        .header("content-length", content_length)
        .body(StreamBody::new(futures_lite::stream::StreamExt::boxed(
            frames,
        )))
        .unwrap();
    (request, keep)
}

/// Opens `streams` HTTP/2 requests on one connection from `from`, each declaring a whole
/// body and sending `first_bytes` of it; they stay open while the returned values live.
async fn h2_attack(
    server: &Server,
    from: [u8; 4],
    streams: usize,
    first_bytes: usize,
) -> Vec<tokio::sync::oneshot::Sender<()>> {
    let io = TokioIo::new(connect_from(server, from).await);
    let (sender, connection) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut keeps = Vec::new();
    for _ in 0..streams {
        let (request, keep) = stalled_h2_request(1 << 20, first_bytes);
        let mut sender = sender.clone();
        tokio::spawn(async move {
            let _ = sender.ready().await;
            let _ = sender.send_request(request).await;
        });
        keeps.push(keep);
    }
    keeps
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_http2_connection_with_many_stalled_streams_cannot_starve_others() {
    let server = start(|_| {}).await;
    // Eight streams each claim a whole body and send none of it.
    let _quiet = h2_attack(&server, [127, 0, 0, 10], 8, 0).await;
    // Eight streams on another connection each send almost a whole body and stall: the
    // bytes are real, but the connection's share of the budget is one body.
    let _sending = h2_attack(&server, [127, 0, 0, 11], 8, (1 << 20) - 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, reply) = list_streams_from(&server, [127, 0, 0, 2]).await;
    assert_eq!(status, 200, "{reply}");
    // A whole-body request from another client still gets its budget.
    let record = format!(
        r#"{{"StreamName":"absent","PartitionKey":"k","Data":"{}"}}"#,
        "A".repeat(700_000)
    );
    let (status, reply) = call_from(&server, [127, 0, 0, 3], "PutRecord", &record).await;
    assert!(
        status == 400 && reply.contains("ResourceNotFoundException"),
        "the body was read and the request answered: {status} {reply}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_idle_connections_are_closed() {
    let server = start(|config| {
        config.first_request_timeout_ms = 300;
        config.idle_timeout_ms = 600;
    })
    .await;
    let within = Duration::from_secs(10);
    let mut silent = connect_from(&server, [127, 0, 0, 1]).await;
    assert!(
        closed_within(&mut silent, within).await,
        "a socket that never sends"
    );

    let mut half = connect_from(&server, [127, 0, 0, 1]).await;
    half.write_all(b"POST / HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    assert!(
        closed_within(&mut half, within).await,
        "headers begun and never ended"
    );

    // Keep-alive: a request answered, then nothing.
    let mut idle = connect_from(&server, [127, 0, 0, 1]).await;
    idle.write_all(format!("{}{{}}", head("ListStreams", 2)).as_bytes())
        .await
        .unwrap();
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    assert!(
        closed_within(&mut idle, within).await,
        "an idle keep-alive connection"
    );

    // HTTP/2 that answers the server's pings but sends no request.
    let io = TokioIo::new(connect_from(&server, [127, 0, 0, 1]).await);
    let (mut sender, connection) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
        .await
        .unwrap();
    let driven = tokio::spawn(connection);
    let request = hyper::Request::post("http://x/")
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amz-target", "Kinesis_20131202.ListStreams")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let reply = sender.send_request(request).await.unwrap();
    assert_eq!(reply.status(), 200);
    let _ = reply.into_body().collect().await;
    let ended = tokio::time::timeout(within, driven).await;
    assert!(ended.is_ok(), "an idle HTTP/2 connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_take_every_connection() {
    let server = start(|config| {
        config.connections_max = 16;
        config.connections_per_address_max = 4;
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(connect_from(&server, [127, 0, 0, 1]).await);
    }
    let mut fifth = connect_from(&server, [127, 0, 0, 1]).await;
    assert!(
        closed_within(&mut fifth, Duration::from_secs(5)).await,
        "past its address's cap a connection is closed"
    );
    // Many more silent sockets from the same address do not fill the server.
    for _ in 0..32 {
        held.push(connect_from(&server, [127, 0, 0, 1]).await);
    }
    let (status, reply) = list_streams_from(&server, [127, 0, 0, 2]).await;
    assert_eq!(status, 200, "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsigned_request_is_refused_before_its_body_is_read() {
    let server = start(|config| {
        config.credentials = vec![Credential {
            access_key_id: "AKIDEXAMPLE".into(),
            secret: "secret".into(),
            account: None,
            session_token: None,
            policy: None,
        }];
    })
    .await;
    let mut stream = connect_from(&server, [127, 0, 0, 1]).await;
    // A body is announced and never sent: the answer cannot wait for it.
    stream
        .write_all(head("PutRecord", 1 << 20).as_bytes())
        .await
        .unwrap();
    let mut reply = [0u8; 12];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut reply))
        .await
        .expect("an answer before the body")
        .unwrap();
    // MissingAuthenticationTokenException, 403 as AWS lists it.
    assert_eq!(&reply, b"HTTP/1.1 403");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_s_many_connections_share_one_part_of_the_body_budget() {
    let server = start(|_| {}).await;
    // Eight connections from one address each send half a body and stall: together the
    // whole 4 MiB budget, had each connection its own share; the client's share is one body.
    let mut stalled = Vec::new();
    for _ in 0..8 {
        let mut stream = connect_from(&server, [127, 0, 0, 20]).await;
        stream
            .write_all(head("PutRecord", 1 << 20).as_bytes())
            .await
            .unwrap();
        let sending = tokio::spawn(async move {
            let _ = stream.write_all(&vec![b' '; 1 << 19]).await;
            stream
        });
        stalled.push(sending);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let record = format!(
        r#"{{"StreamName":"absent","PartitionKey":"k","Data":"{}"}}"#,
        "A".repeat(700_000)
    );
    let (status, reply) = call_from(&server, [127, 0, 0, 3], "PutRecord", &record).await;
    assert!(
        status == 400 && reply.contains("ResourceNotFoundException"),
        "the body was read and the request answered: {status} {reply}"
    );
}

/// One unsigned JSON call over a new HTTP/1.1 connection; the reply body as JSON.
async fn json_call(server: &Server, target: &str, body: serde_json::Value) -> serde_json::Value {
    let (status, reply) = call_from(server, [127, 0, 0, 1], target, &body.to_string()).await;
    assert_eq!(status, 200, "{target}: {reply}");
    let body = reply.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    // Chunked or not, the JSON object is between the first `{` and the last `}`.
    let json = &body[body.find('{').unwrap_or(0)..=body.rfind('}').unwrap_or(0)];
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{target}: {e}: {body}"))
}

/// A SubscribeToShard request for `consumer` from the shard's start.
fn subscribe_request(consumer: &str) -> hyper::Request<Full<Bytes>> {
    let subscribe = serde_json::json!({
        "ConsumerARN": consumer, "ShardId": "shardId-000000000000",
        "StartingPosition": {"Type": "TRIM_HORIZON"},
    });
    hyper::Request::post("http://x/")
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amz-target", "Kinesis_20131202.SubscribeToShard")
        .body(Full::new(Bytes::from(subscribe.to_string())))
        .unwrap()
}

async fn consumer_of(server: &Server, stream: &str, name: &str) -> String {
    let arn = format!("arn:aws:kinesis:us-east-1:000000000000:stream/{stream}");
    let registered = json_call(
        server,
        "RegisterStreamConsumer",
        serde_json::json!({"StreamARN": arn, "ConsumerName": name}),
    )
    .await;
    registered["Consumer"]["ConsumerARN"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_subscriber_that_keeps_a_window_shut_loses_its_connection() {
    let server = start(|config| {
        config.stall_timeout_ms = 1000;
        config.heartbeat_ms = 100;
    })
    .await;
    for (stream, records) in [("backlog", 4), ("quiet", 0)] {
        json_call(
            &server,
            "CreateStream",
            serde_json::json!({"StreamName": stream, "ShardCount": 1}),
        )
        .await;
        for _ in 0..records {
            let data = "A".repeat(400_000);
            let record =
                serde_json::json!({"StreamName": stream, "PartitionKey": "k", "Data": data});
            json_call(&server, "PutRecord", record).await;
        }
    }
    let stalled_consumer = consumer_of(&server, "backlog", "c").await;
    let live_consumer = consumer_of(&server, "quiet", "c").await;
    // Streams get a 16 KiB window: heartbeats fit, the backlog's events do not.
    let io = TokioIo::new(connect_from(&server, [127, 0, 0, 30]).await);
    let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .initial_stream_window_size(16 << 10)
        .handshake(io)
        .await
        .unwrap();
    let driven = tokio::spawn(connection);
    // The quiet subscription is read, so the connection as a whole makes progress...
    let live = sender
        .clone()
        .send_request(subscribe_request(&live_consumer))
        .await
        .unwrap();
    tokio::spawn(async move {
        let mut body = live.into_body();
        while let Some(Ok(_)) = body.frame().await {}
    });
    // ...while the backlog's is never read: its window stays shut.
    let unread = sender
        .clone()
        .send_request(subscribe_request(&stalled_consumer))
        .await
        .unwrap();
    assert_eq!(unread.status(), 200);
    let closed = tokio::time::timeout(Duration::from_secs(20), driven).await;
    assert!(
        closed.is_ok(),
        "the connection with a stalled subscription is still open"
    );
    drop(unread);
}
