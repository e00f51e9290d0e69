//! The HTTP side: accepting connections (HTTP/1.1 or h2c, per connection), routing `POST`s
//! to the Kinesis operations, `/health`, `/metrics` and `POST /_sluice/reset`, and the reply
//! headers clients expect.

use crate::auth::SignedRequest;
use crate::service::Service;
use crate::tenant::Tenant;
use crate::wire::{ApiError, Protocol};
use crate::{ops, reset, subscribe};
use bytes::Bytes;
use futures_lite::FutureExt as _;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;
use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;

/// Reply bodies: a whole body, or an event stream.
pub type ReplyBody = BoxBody<Bytes, Infallible>;

const TARGET_PREFIX: &str = "Kinesis_20131202.";

/// How long a client has to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Interval of HTTP/2 pings on idle connections.
const HTTP2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(60);
/// How long a client has to finish its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves connections from `listener` (over TLS when `tls` is given) until `shutdown`
/// completes. Connections in flight are dropped at shutdown (their requests were either
/// answered or never acknowledged).
pub async fn serve(
    service: Arc<Service>,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    metrics: Option<PrometheusHandle>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    // A client gets this long to send a request's headers (also between keep-alive
    // requests); HTTP/2 connections are pinged so dead peers are noticed.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(HTTP2_KEEP_ALIVE_INTERVAL));
    let connections = Arc::new(Semaphore::new(service.config.connections_max));
    tokio::pin!(shutdown);
    loop {
        // At the connection cap, new connections wait in the kernel's backlog.
        let Ok(slot) = connections.clone().acquire_owned().await else {
            return Ok(());
        };
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of descriptors, or a reset before accept: pause, then serve the others.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = &mut shutdown => return Ok(()),
        };
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        let metrics = metrics.clone();
        let builder = builder.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let handler = hyper::service::service_fn(move |request| {
                handle(service.clone(), metrics.clone(), request)
            });
            match tls {
                None => {
                    let _ = builder
                        .serve_connection_with_upgrades(TokioIo::new(stream), handler)
                        .await;
                }
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                    if let Ok(Ok(stream)) = handshake.await {
                        let _ = builder
                            .serve_connection_with_upgrades(TokioIo::new(stream), handler)
                            .await;
                    }
                }
            }
        });
    }
}

async fn handle(
    service: Arc<Service>,
    metrics: Option<PrometheusHandle>,
    request: Request<Incoming>,
) -> Result<Response<ReplyBody>, Infallible> {
    Ok(match (request.method(), request.uri().path()) {
        (&Method::GET, "/health") => plain(StatusCode::OK, "ok\n".into()),
        (&Method::GET, "/metrics") => match metrics {
            Some(handle) => plain(StatusCode::OK, handle.render()),
            None => plain(StatusCode::NOT_FOUND, "metrics are off\n".into()),
        },
        (&Method::POST, reset::RESET_PATH) => match reset::reset(&service).await {
            Ok(report) => json_reply(&report),
            Err(error) => error_reply(Protocol::Json, &error),
        },
        (&Method::POST, _) => kinesis(service, request).await,
        _ => error_reply(
            Protocol::Json,
            &ApiError::with_status(
                "AccessDeniedException",
                403,
                "Unable to determine service/operation name to be authorized",
            ),
        ),
    })
}

async fn kinesis(service: Arc<Service>, request: Request<Incoming>) -> Response<ReplyBody> {
    let (parts, body) = request.into_parts();
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let protocol = Protocol::from_content_type(header("content-type"));
    let target = header("x-amz-target").unwrap_or_default().to_owned();
    let limit = service.config.body_bytes_max;
    let declared_len = header("content-length").and_then(|v| v.parse().ok());
    let (body, _budget) = match read_body(body, declared_len, limit, &service.body_budget).await {
        Ok(body) => body,
        Err(error) => return error_reply(protocol, &error),
    };
    // Unknown targets are answered after authentication, as AWS does.
    let operation = target
        .strip_prefix(TARGET_PREFIX)
        .filter(|op| ops::OPERATIONS.contains(op))
        .unwrap_or("unknown")
        .to_owned();
    let started = Instant::now();
    let result = AssertUnwindSafe(run(service.clone(), &parts, &operation, protocol, body))
        .catch_unwind()
        .await
        .unwrap_or_else(|_| {
            Err(ApiError::internal(
                "The server failed while handling the request.",
            ))
        });
    metrics::histogram!("sluice_request_seconds", "operation" => operation.clone())
        .record(started.elapsed().as_secs_f64());
    match result {
        Ok(reply) => reply,
        Err(error) => {
            metrics::counter!("sluice_request_errors_total", "operation" => operation, "error" => error.name)
                .increment(1);
            error_reply(protocol, &error)
        }
    }
}

async fn run(
    service: Arc<Service>,
    parts: &hyper::http::request::Parts,
    operation: &str,
    protocol: Protocol,
    body: Bytes,
) -> Result<Response<ReplyBody>, ApiError> {
    let scope = match &service.verifier {
        Some(verifier) => Some(verifier.verify(&signed_request(parts, &body), SystemTime::now())?),
        None => None,
    };
    if operation == "unknown" {
        return Err(ApiError::unknown_operation());
    }
    let tenant = service.tenant(scope).await?;
    on_tenant(tenant.clone(), operation, protocol, body)
        .await
        .map_err(|error| error.for_account(&tenant.account))
}

async fn on_tenant(
    tenant: Arc<Tenant>,
    operation: &str,
    protocol: Protocol,
    body: Bytes,
) -> Result<Response<ReplyBody>, ApiError> {
    if operation == "SubscribeToShard" {
        let input = ops::input(protocol, &body)?;
        let started = subscribe::start(tenant, input, protocol)?;
        let response = Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/vnd.amazon.eventstream");
        return Ok(with_ids(response)
            .body(ChannelBody(started.frames).boxed())
            .expect("a valid response"));
    }
    let reply = ops::call(&tenant, operation, protocol, &body).await?;
    let response = Response::builder()
        .status(StatusCode::OK)
        .header("content-type", protocol.content_type());
    Ok(with_ids(response)
        .body(Full::new(Bytes::from(reply)).boxed())
        .expect("a valid response"))
}

/// The parts of a request SigV4 covers.
fn signed_request<'a>(parts: &'a hyper::http::request::Parts, body: &'a [u8]) -> SignedRequest<'a> {
    let headers = parts
        .headers
        .iter()
        .filter_map(|(name, value)| Some((name.as_str().to_owned(), value.to_str().ok()?)))
        .collect();
    let host = parts
        .headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()));
    SignedRequest {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query(),
        headers,
        host,
        body,
    }
}

/// Bytes of an oversized body read and dropped so that an HTTP/1.1 client, still sending,
/// gets to read the 413 rather than a reset; beyond this the connection is just closed.
const OVERSIZED_DRAIN_BYTES_MAX: usize = 64 << 20;

/// The whole body, up to `limit` bytes; a larger one is drained (bounded) and refused.
/// Request bodies are accounted in units of this many bytes against the server's budget.
const BODY_BUDGET_UNIT: usize = 1024;

/// How long a request waits for its share of the body budget before it is refused as a
/// retryable InternalFailure.
const BODY_BUDGET_WAIT: Duration = Duration::from_secs(10);
/// How long a body may take to arrive once its budget is reserved.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// The whole body, up to `limit` bytes; a larger one (declared or found) is drained, not
/// kept, and refused. Before reading, the body's bytes are reserved against the server-wide
/// budget at once (its Content-Length, or `limit` when it has none; all or nothing, so
/// requests holding part of what they need cannot block each other). A reservation is
/// waited for at most `BODY_BUDGET_WAIT` and held at most `BODY_READ_TIMEOUT` while the body
/// arrives, so clients that stall (or HTTP/2 streams starved of flow-control credit) cannot
/// hold the budget for ever. The permit returned keeps the reservation until the request is
/// answered.
async fn read_body(
    body: Incoming,
    declared_len: Option<usize>,
    limit: usize,
    budget: &Arc<Semaphore>,
) -> Result<(Bytes, Option<OwnedSemaphorePermit>), ApiError> {
    let oversized = declared_len.is_some_and(|len| len > limit);
    let reserve = match declared_len {
        _ if oversized => 0,
        Some(len) => len,
        None => limit,
    };
    let permit = match reserve.div_ceil(BODY_BUDGET_UNIT) {
        0 => None,
        units => {
            let units = u32::try_from(units).unwrap_or(u32::MAX);
            let acquire = budget.clone().acquire_many_owned(units);
            match tokio::time::timeout(BODY_BUDGET_WAIT, acquire).await {
                Ok(Ok(permit)) => Some(permit),
                Ok(Err(_)) => return Err(ApiError::internal("The server is shutting down.")),
                Err(_) => {
                    return Err(ApiError::internal(
                        "The server is busy receiving other requests; retry.",
                    ));
                }
            }
        }
    };
    let collect = collect_body(body, limit, oversized, reserve);
    match tokio::time::timeout(BODY_READ_TIMEOUT, collect).await {
        Ok(collected) => Ok((collected?, permit)),
        Err(_) => Err(ApiError::serialization(format!(
            "The request body did not arrive within {} s.",
            BODY_READ_TIMEOUT.as_secs()
        ))),
    }
}

async fn collect_body(
    mut body: Incoming,
    limit: usize,
    mut oversized: bool,
    capacity: usize,
) -> Result<Bytes, ApiError> {
    let mut collected = bytes::BytesMut::with_capacity(capacity.min(limit));
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| ApiError::serialization("The request body was cut off."))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen += data.len();
        oversized |= seen > limit;
        if !oversized {
            collected.extend_from_slice(&data);
        } else if seen > OVERSIZED_DRAIN_BYTES_MAX {
            break;
        }
    }
    if oversized {
        return Err(ApiError::too_large(limit));
    }
    Ok(collected.freeze())
}

fn with_ids(response: hyper::http::response::Builder) -> hyper::http::response::Builder {
    let id = uuid::Uuid::new_v4().to_string();
    response
        .header("x-amz-id-2", id.clone())
        .header("x-amzn-requestid", id)
}

/// An error in the request's protocol: `{"__type", "message"}` plus `x-amzn-ErrorType`.
pub fn error_reply(protocol: Protocol, error: &ApiError) -> Response<ReplyBody> {
    #[derive(Serialize)]
    struct ErrorBody<'a> {
        __type: &'a str,
        message: &'a str,
    }
    let body = protocol.encode(&ErrorBody {
        __type: error.name,
        message: &error.message,
    });
    let response = Response::builder()
        .status(StatusCode::from_u16(error.status).unwrap_or(StatusCode::BAD_REQUEST))
        .header("content-type", protocol.content_type())
        .header("x-amzn-errortype", error.name);
    with_ids(response)
        .body(Full::new(Bytes::from(body)).boxed())
        .expect("a valid response")
}

/// A JSON reply of the server's own (not a Kinesis operation's).
fn json_reply(value: &impl Serialize) -> Response<ReplyBody> {
    with_ids(Response::builder())
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(Protocol::Json.encode(value))).boxed())
        .expect("a valid response")
}

fn plain(status: StatusCode, text: String) -> Response<ReplyBody> {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain; version=0.0.4")
        .body(Full::new(Bytes::from(text)).boxed())
        .expect("a valid response")
}

/// A body fed by a channel of event-stream frames; it ends when the sender is dropped.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|frame| frame.map(|bytes| Ok(Frame::data(bytes))))
    }
}
