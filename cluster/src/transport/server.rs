//! The peer port: HTTP/2 connections from other nodes (h2c, or over mutual TLS: tls.rs),
//! each carrying any number of concurrent calls for any groups.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::client::{KEEP_ALIVE_INTERVAL, KEEP_ALIVE_TIMEOUT};
use super::{GroupId, Io, PeerTls, frame};

/// The largest request body taken (a Raft append of several batches of records).
const BODY_MAX: usize = 64 << 20;

/// What a node answers to its peers' calls.
pub trait PeerHandler: Send + Sync + 'static {
    /// Answers `method` for `group` (heartbeats come as method `heartbeat`). An `Err` is sent
    /// back as the call's failure.
    fn call(
        &self,
        group: GroupId,
        method: &str,
        body: Bytes,
    ) -> impl Future<Output = Result<Bytes, String>> + Send;
}

/// Counters of a peer port (for tests and metrics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerStats {
    /// Connections accepted.
    pub connections: u64,
    /// Calls answered (one per group message, heartbeats included).
    pub calls: u64,
    /// Heartbeat batches received.
    pub heartbeat_batches: u64,
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    calls: AtomicU64,
    heartbeat_batches: AtomicU64,
}

/// A running peer port; dropping it closes the port and every connection it accepted.
pub struct PeerServer {
    local_addr: SocketAddr,
    counters: Arc<Counters>,
    acceptor: JoinHandle<()>,
}

impl PeerServer {
    /// Serves `handler` on `listener` from the current tokio runtime (h2c).
    pub fn start<H: PeerHandler>(
        listener: TcpListener,
        handler: Arc<H>,
    ) -> std::io::Result<PeerServer> {
        PeerServer::start_with(listener, handler, None)
    }

    /// Serves `handler` on `listener`, over mutual TLS when `tls` is given (then only a
    /// client whose certificate the cluster's authority signed is served).
    pub fn start_with<H: PeerHandler>(
        listener: TcpListener,
        handler: Arc<H>,
        tls: Option<PeerTls>,
    ) -> std::io::Result<PeerServer> {
        let local_addr = listener.local_addr()?;
        let counters = Arc::new(Counters::default());
        let accepting = accept(listener, handler, Arc::clone(&counters), tls);
        let acceptor = tokio::spawn(accepting);
        Ok(PeerServer {
            local_addr,
            counters,
            acceptor,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Its counters so far.
    pub fn stats(&self) -> PeerStats {
        PeerStats {
            connections: self.counters.connections.load(Ordering::Relaxed),
            calls: self.counters.calls.load(Ordering::Relaxed),
            heartbeat_batches: self.counters.heartbeat_batches.load(Ordering::Relaxed),
        }
    }
}

impl Drop for PeerServer {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

/// How long a connection may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

async fn accept<H: PeerHandler>(
    listener: TcpListener,
    handler: Arc<H>,
    counters: Arc<Counters>,
    tls: Option<PeerTls>,
) {
    // The connections are this task's: aborting it (the server dropped) ends them too.
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of descriptors or the like: let it pass rather than spin.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        while connections.try_join_next().is_some() {}
        let _ = stream.set_nodelay(true);
        counters.connections.fetch_add(1, Ordering::Relaxed);
        let (handler, counters) = (Arc::clone(&handler), Arc::clone(&counters));
        let service = hyper::service::service_fn(move |request| {
            let (handler, counters) = (Arc::clone(&handler), Arc::clone(&counters));
            async move { Ok::<_, std::convert::Infallible>(route(request, handler, &counters).await) }
        });
        let tls = tls.clone();
        connections.spawn(async move {
            let stream: Box<dyn Io> = match tls {
                None => Box::new(stream),
                // A client without a certificate of the cluster's is refused here.
                Some(tls) => {
                    let handshake = tls.acceptor().accept(stream);
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                        Ok(Ok(stream)) => Box::new(stream),
                        _ => return,
                    }
                }
            };
            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .keep_alive_interval(KEEP_ALIVE_INTERVAL)
                .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
}

async fn route<H: PeerHandler>(
    request: Request<Incoming>,
    handler: Arc<H>,
    counters: &Counters,
) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    // The route and the group are checked before the body is read.
    let call = match (path.strip_prefix("/sluice/peer/v1/call/"), path.as_str()) {
        (Some(method), _) => {
            let group = request
                .headers()
                .get("x-sluice-group")
                .and_then(|v| v.to_str().ok())
                .map(str::parse::<GroupId>);
            match group {
                Some(Ok(group)) => Some((group, method.to_owned())),
                Some(Err(e)) => return reply(StatusCode::BAD_REQUEST, e),
                None => return reply(StatusCode::BAD_REQUEST, "no x-sluice-group header"),
            }
        }
        (None, "/sluice/peer/v1/heartbeats") => None,
        (None, _) => return reply(StatusCode::NOT_FOUND, format!("no peer route {path}")),
    };
    let body = match Limited::new(request.into_body(), BODY_MAX).collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) => {
            return reply(
                StatusCode::BAD_REQUEST,
                format!("the body could not be read: {e}"),
            );
        }
    };
    if let Some((group, method)) = call {
        counters.calls.fetch_add(1, Ordering::Relaxed);
        // On a task of its own: a handler that panics fails its call, not the connection.
        let answer = tokio::spawn(async move { handler.call(group, &method, body).await }).await;
        return match answer {
            Ok(Ok(answer)) => reply(StatusCode::OK, answer),
            Ok(Err(message)) => reply(StatusCode::INTERNAL_SERVER_ERROR, message),
            Err(e) => reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the handler failed: {e}"),
            ),
        };
    }
    let items = match frame::decode_requests(body) {
        Ok(items) => items,
        Err(e) => return reply(StatusCode::BAD_REQUEST, e),
    };
    counters.heartbeat_batches.fetch_add(1, Ordering::Relaxed);
    counters
        .calls
        .fetch_add(items.len() as u64, Ordering::Relaxed);
    // The groups answer concurrently; the answers go back in request order.
    let tasks: Vec<JoinHandle<Result<Bytes, String>>> = items
        .into_iter()
        .map(|(group, payload)| {
            let handler = Arc::clone(&handler);
            tokio::spawn(async move { handler.call(group, "heartbeat", payload).await })
        })
        .collect();
    let mut answers = Vec::with_capacity(tasks.len());
    for task in tasks {
        answers.push(
            task.await
                .unwrap_or_else(|e| Err(format!("the heartbeat's handler failed: {e}"))),
        );
    }
    reply(StatusCode::OK, frame::encode_answers(&answers))
}
