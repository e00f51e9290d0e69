//! Calls to peers: one HTTP/2 connection per peer, made on first use and again after it
//! breaks, carrying every group's calls concurrently; heartbeats gathered per peer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http2::SendRequest;
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use super::tls::server_name;
use super::{GroupId, Io, PeerTls, RpcError, frame};

/// How calls to peers behave.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TransportConfig {
    /// Giving up on a connection attempt.
    pub connect_timeout: Duration,
    /// Giving up on a call's answer.
    pub call_timeout: Duration,
    /// Heartbeats to one peer asked for within this window go in one request. Zero (the
    /// default) waits for nothing: the heartbeats asked for while the first one's task gets
    /// to run go with it. openraft also sends an empty append to carry a new commit index,
    /// and the next entries to that peer wait for its answer, so a window here is added to
    /// every replicated write's latency (5 ms made a write take 8 ms instead of 3).
    pub heartbeat_window: Duration,
    /// Mutual TLS with peers (the node's certificate, the cluster's authority); h2c without.
    pub tls: Option<PeerTls>,
}

impl Default for TransportConfig {
    fn default() -> TransportConfig {
        TransportConfig {
            connect_timeout: Duration::from_secs(1),
            call_timeout: Duration::from_secs(5),
            heartbeat_window: Duration::ZERO,
            tls: None,
        }
    }
}

type Waiting = Vec<(GroupId, Bytes, oneshot::Sender<Result<Bytes, RpcError>>)>;
/// A peer's connection, made by one caller while the others wait for it.
type Slot = Arc<tokio::sync::Mutex<SlotState>>;

#[derive(Default)]
struct SlotState {
    /// The connection and its generation (which `forget` names).
    connection: Option<(u64, SendRequest<Full<Bytes>>)>,
    generation: u64,
    /// The last attempt's failure, shared with callers for `RETRY_AFTER`.
    failed: Option<(tokio::time::Instant, RpcError)>,
}

/// How long a failed connection attempt answers for the peer before another is made.
const RETRY_AFTER: Duration = Duration::from_millis(200);
/// HTTP/2 pings on idle and busy connections, and how long an unanswered one is waited for.
pub(super) const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(1);
pub(super) const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(3);
/// The largest answer taken.
const BODY_MAX: usize = 64 << 20;

/// The calling side of a node's peer traffic. Clones share the connections.
#[derive(Clone, Default)]
pub struct Peers {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    config: TransportConfig,
    /// A slot per peer.
    connections: Mutex<HashMap<String, Slot>>,
    /// Heartbeats waiting for their peer's next batch.
    heartbeats: Mutex<HashMap<String, Waiting>>,
}

impl Peers {
    /// A node's peer connections, none made yet.
    pub fn new(config: TransportConfig) -> Peers {
        Peers {
            inner: Arc::new(Inner {
                config,
                ..Inner::default()
            }),
        }
    }

    /// Calls `method` of `group` on the peer at `peer` (`host:port`).
    pub async fn call(
        &self,
        peer: &str,
        group: GroupId,
        method: &str,
        body: Bytes,
    ) -> Result<Bytes, RpcError> {
        let request = Request::post(format!("/sluice/peer/v1/call/{method}"))
            .header("x-sluice-group", group.to_string())
            .body(Full::new(body))
            .expect("a valid request");
        self.send(peer, request).await
    }

    /// Sends a heartbeat of `group` to `peer` in the peer's next batch, and returns its answer.
    pub async fn heartbeat(
        &self,
        peer: &str,
        group: GroupId,
        body: Bytes,
    ) -> Result<Bytes, RpcError> {
        let (answer, answered) = oneshot::channel();
        let first = {
            let mut waiting = lock(&self.inner.heartbeats);
            let queue = waiting.entry(peer.to_owned()).or_default();
            queue.push((group, body, answer));
            queue.len() == 1
        };
        // The first heartbeat of a batch sends it once the window has passed.
        if first {
            let (peers, peer) = (self.clone(), peer.to_owned());
            tokio::spawn(async move {
                let window = peers.inner.config.heartbeat_window;
                if window.is_zero() {
                    tokio::task::yield_now().await;
                } else {
                    tokio::time::sleep(window).await;
                }
                peers.send_heartbeats(&peer).await;
            });
        }
        answered.await.unwrap_or_else(|_| {
            Err(RpcError::Unreachable {
                peer: peer.to_owned(),
                reason: "the batch was dropped".into(),
                sent: true,
            })
        })
    }

    async fn send_heartbeats(&self, peer: &str) {
        let batch = lock(&self.inner.heartbeats)
            .remove(peer)
            .unwrap_or_default();
        let items: Vec<(GroupId, Bytes)> = batch.iter().map(|(g, b, _)| (*g, b.clone())).collect();
        let request = Request::post("/sluice/peer/v1/heartbeats")
            .body(Full::new(frame::encode_requests(&items)))
            .expect("a valid request");
        let answers = self.send(peer, request).await.and_then(|body| {
            frame::decode_answers(body, items.len()).map_err(|message| RpcError::Remote {
                peer: peer.to_owned(),
                status: 200,
                message,
            })
        });
        match answers {
            Ok(answers) => {
                for ((_, _, reply), answer) in batch.into_iter().zip(answers) {
                    let answer = answer.map_err(|message| RpcError::Remote {
                        peer: peer.to_owned(),
                        status: 500,
                        message,
                    });
                    let _ = reply.send(answer);
                }
            }
            Err(e) => {
                for (_, _, reply) in batch {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }

    /// Sends `request` and reads the answer, all within one `call_timeout` (the connection
    /// attempt included).
    async fn send(&self, peer: &str, request: Request<Full<Bytes>>) -> Result<Bytes, RpcError> {
        let timeout = self.inner.config.call_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        match tokio::time::timeout_at(deadline, self.exchange(peer, request)).await {
            Ok(answer) => answer,
            Err(_) => Err(RpcError::Timeout {
                peer: peer.to_owned(),
                timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            }),
        }
    }

    async fn exchange(&self, peer: &str, request: Request<Full<Bytes>>) -> Result<Bytes, RpcError> {
        // Past the connection, a failure may come after the request left.
        let unreachable = |reason: String| RpcError::Unreachable {
            peer: peer.to_owned(),
            reason,
            sent: true,
        };
        let (generation, mut sender) = self.connection(peer).await?;
        let response = match sender.send_request(request).await {
            Ok(response) => response,
            Err(e) => {
                // Only a broken connection is dropped (the next call makes a new one); a
                // stream reset leaves the connection to the other calls on it.
                if sender.is_closed() {
                    self.forget(peer, generation).await;
                }
                return Err(unreachable(e.to_string()));
            }
        };
        let status = response.status();
        let body = Limited::new(response.into_body(), BODY_MAX)
            .collect()
            .await
            .map_err(|e| unreachable(format!("the answer could not be read: {e}")))?
            .to_bytes();
        if status != StatusCode::OK {
            let message = String::from_utf8_lossy(&body).into_owned();
            return Err(RpcError::Remote {
                peer: peer.to_owned(),
                status: status.as_u16(),
                message,
            });
        }
        Ok(body)
    }

    /// The peer's connection (with its generation), made now if there is none or it closed.
    /// Callers wait for one attempt at a time and share its failure for `RETRY_AFTER`, so an
    /// unresponsive peer costs one connection attempt, not one per waiting call.
    async fn connection(&self, peer: &str) -> Result<(u64, SendRequest<Full<Bytes>>), RpcError> {
        let slot = Arc::clone(
            lock(&self.inner.connections)
                .entry(peer.to_owned())
                .or_default(),
        );
        let mut slot = slot.lock().await;
        if let Some((generation, sender)) = slot.connection.as_ref().filter(|(_, s)| !s.is_closed())
        {
            return Ok((*generation, sender.clone()));
        }
        if let Some((at, error)) = &slot.failed
            && at.elapsed() < RETRY_AFTER
        {
            return Err(error.clone());
        }
        match self.connect(peer).await {
            Ok(sender) => {
                slot.generation += 1;
                slot.connection = Some((slot.generation, sender.clone()));
                slot.failed = None;
                Ok((slot.generation, sender))
            }
            Err(error) => {
                slot.failed = Some((tokio::time::Instant::now(), error.clone()));
                Err(error)
            }
        }
    }

    async fn connect(&self, peer: &str) -> Result<SendRequest<Full<Bytes>>, RpcError> {
        let unreachable = |reason: String| RpcError::Unreachable {
            peer: peer.to_owned(),
            reason,
            sent: false,
        };
        let stream =
            tokio::time::timeout(self.inner.config.connect_timeout, TcpStream::connect(peer))
                .await
                .map_err(|_| unreachable("connection attempt timed out".into()))?
                .map_err(|e| unreachable(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let stream: Box<dyn Io> = match &self.inner.config.tls {
            None => Box::new(stream),
            Some(tls) => {
                let name = server_name(peer).map_err(unreachable)?;
                let handshake = tls.connector().connect(name, stream);
                let stream = tokio::time::timeout(self.inner.config.connect_timeout, handshake)
                    .await
                    .map_err(|_| unreachable("TLS handshake timed out".into()))?
                    .map_err(|e| unreachable(format!("TLS: {e}")))?;
                Box::new(stream)
            }
        };
        // Pings find a connection whose peer went away without a word (a frozen or
        // partitioned node): it closes, and the next call connects again.
        let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(KEEP_ALIVE_INTERVAL)
            .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
            .keep_alive_while_idle(true)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        tokio::spawn(connection);
        Ok(sender)
    }

    /// Drops the peer's connection of `generation` (not a newer one another caller made).
    async fn forget(&self, peer: &str, generation: u64) {
        let slot = lock(&self.inner.connections).get(peer).cloned();
        if let Some(slot) = slot {
            let mut slot = slot.lock().await;
            if slot
                .connection
                .as_ref()
                .is_some_and(|(g, _)| *g == generation)
            {
                slot.connection = None;
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
