//! The HTTP side: accepting connections (HTTP/1.1 or h2c, per connection), routing `POST`s
//! to the Kinesis operations, `/health`, `/metrics` and `POST /_sluice/reset`, and the reply
//! headers clients expect.

mod body;
mod cloudwatch;
mod connection;
mod prometheus;
mod usage;
#[cfg(feature = "video")]
mod video;

pub use prometheus::serve_metrics;

use crate::auth::SignedRequest;
pub(crate) use crate::budget::Budget;
use crate::service::Service;
use crate::tenant::Tenant;
use crate::wire::{ApiError, Protocol};
use crate::{ops, reset, subscribe};
use bytes::Bytes;
use connection::{AddressSlots, Connection, IdleLimits, InFlight, Quiet};
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
use tokio::sync::{Semaphore, mpsc};

/// Reply bodies: a whole body, or an event stream (which fails, aborting its stream or
/// connection, when its client stopped reading).
pub type ReplyBody = BoxBody<Bytes, BodyError>;

/// Why a reply body stopped.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

const TARGET_PREFIX: &str = "Kinesis_20131202.";

/// How long a client has to send a request's headers once it began them.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Interval of HTTP/2 pings on idle connections.
const HTTP2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(60);
/// How long a client has to finish its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection being closed for idleness gets to finish (HTTP/2's GOAWAY).
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// A connection's byte stream, plain or TLS.
trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for T {}

/// Serves connections from `listener` (over TLS when `tls` is given) until `shutdown`
/// completes. Connections in flight are dropped at shutdown (their requests were either
/// answered or never acknowledged).
pub async fn serve(
    service: Arc<Service>,
    listener: TcpListener,
    tls: Option<Arc<crate::tls::ServerTls>>,
    metrics: Option<PrometheusHandle>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    // Once a client begins a request's headers it gets this long to finish them; HTTP/2
    // connections are pinged so dead peers are noticed. Idle connections are closed by
    // their watchdog (connection.rs).
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(HTTP2_KEEP_ALIVE_INTERVAL));
    let config = &service.config;
    let connections = Arc::new(Semaphore::new(config.connections_max));
    let per_address = AddressSlots::new(config.connections_per_address_max, client_share(config));
    let limits = IdleLimits {
        first_request: Duration::from_millis(config.first_request_timeout_ms),
        between_requests: Duration::from_millis(config.idle_timeout_ms),
        stalled: Duration::from_millis(config.stall_timeout_ms),
    };
    tokio::pin!(shutdown);
    loop {
        // At the connection cap, new connections wait in the kernel's backlog (and a
        // shutdown is still heard).
        let slot = tokio::select! {
            slot = connections.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => return Ok(()),
            },
            () = &mut shutdown => return Ok(()),
        };
        let (stream, peer) = tokio::select! {
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
        // Past its address's cap a connection is closed at once.
        let Some(address_slot) = per_address.take(peer.ip()) else {
            metrics::counter!("sluice_connections_refused_total", "reason" => "per_address_cap")
                .increment(1);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let transport = crate::authorize::Transport {
            peer: Some(peer.ip()),
            secure: tls.is_some(),
        };
        let connection = Connection::new(address_slot.budget.clone(), transport);
        // The certificate as last loaded: a reload serves new connections.
        let acceptor = tls.as_ref().map(|tls| tls.acceptor());
        let (service, metrics, builder) = (service.clone(), metrics.clone(), builder.clone());
        tokio::spawn(async move {
            let _slots = (slot, address_slot);
            let io: Box<dyn Stream> = match acceptor {
                None => Box::new(stream),
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                    match handshake.await {
                        Ok(Ok(stream)) => Box::new(stream),
                        _ => return,
                    }
                }
            };
            serve_connection(&builder, io, connection, limits, service, metrics).await;
        });
    }
}

/// Serves one connection's requests until it closes, or until it stays idle past
/// `limits` (then it is shut down gracefully: HTTP/2's GOAWAY, HTTP/1.1's close).
async fn serve_connection(
    builder: &hyper_util::server::conn::auto::Builder<TokioExecutor>,
    io: Box<dyn Stream>,
    connection: Arc<Connection>,
    limits: IdleLimits,
    service: Arc<Service>,
    metrics: Option<PrometheusHandle>,
) {
    let handler = hyper::service::service_fn({
        let connection = connection.clone();
        move |request| {
            handle(
                service.clone(),
                connection.clone(),
                metrics.clone(),
                request,
            )
        }
    });
    let served = builder.serve_connection_with_upgrades(TokioIo::new(io), handler);
    tokio::pin!(served);
    tokio::select! {
        _ = served.as_mut() => {}
        () = connection.aborted() => {
            metrics::counter!("sluice_connections_closed_total", "reason" => "client_stopped_reading").increment(1);
        }
        quiet = connection.idle(limits) => match quiet {
            Quiet::Idle => {
                metrics::counter!("sluice_connections_closed_total", "reason" => "idle").increment(1);
                served.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(CLOSE_GRACE, served).await;
            }
            // Its client takes nothing: no grace, which would wait on the stuck replies.
            // Dropping the connection frees what they hold.
            Quiet::Stalled => {
                metrics::counter!("sluice_connections_closed_total", "reason" => "stalled").increment(1);
            }
        }
    }
}

/// The body bytes one client (an address, an IPv6 /64) may hold at once over all its
/// connections: a quarter of the server's budget, and at least one largest body.
fn client_share(config: &crate::ServeConfig) -> usize {
    (config.body_bytes_in_flight_max / 4).max(config.body_bytes_max + crate::budget::UNIT)
}

async fn handle(
    service: Arc<Service>,
    connection: Arc<Connection>,
    metrics: Option<PrometheusHandle>,
    request: Request<Incoming>,
) -> Result<Response<ReplyBody>, Infallible> {
    let in_flight = connection.begin();
    let response = match (request.method(), request.uri().path()) {
        (&Method::GET, "/health") => plain(StatusCode::OK, "ok\n".into()),
        (&Method::GET, "/metrics") => prometheus::reply(&service, metrics.as_ref(), &request),
        (&Method::GET, usage::USAGE_PATH) => usage::reply(&service, &request),
        (&Method::POST, reset::RESET_PATH) => reset_reply(&service, request).await,
        #[cfg(feature = "cluster")]
        (&Method::GET, crate::cluster::STATUS_PATH) => cluster_status(&service, &request).await,
        #[cfg(feature = "video")]
        (&Method::GET, path)
            if path.starts_with(video::HLS_PREFIX) || path.starts_with(video::DASH_PREFIX) =>
        {
            video::playback(&service, &request).await
        }
        (&Method::POST, _) => kinesis(service, connection.clone(), request).await,
        _ => error_reply(
            Protocol::Json,
            &ApiError::with_status(
                "AccessDeniedException",
                403,
                "Unable to determine service/operation name to be authorized",
            ),
        ),
    };
    // The connection counts as busy until the body is sent (an event stream's included).
    Ok(response.map(|body| Guarded { body, in_flight }.boxed()))
}

/// `POST /_sluice/reset`: on a server that verifies signatures, only signed.
async fn reset_reply(service: &Service, request: Request<Incoming>) -> Response<ReplyBody> {
    if let Some(verifier) = &service.verifier {
        let (parts, body) = request.into_parts();
        // A reset has no body to speak of: at most a small one is read.
        let Ok(body) = http_body_util::Limited::new(body, 64 << 10).collect().await else {
            return error_reply(
                Protocol::Json,
                &ApiError::serialization("The reset request's body is cut off or too large."),
            );
        };
        let body = body.to_bytes();
        let request = signed_request(&parts, &body, Api::Kinesis.signing_name());
        let allowed = verifier
            .verify(&request, SystemTime::now())
            .and_then(|caller| crate::authorize::authorize_reset(service, &caller));
        if let Err(error) = allowed {
            return error_reply(Protocol::Json, &error);
        }
    }
    match reset::reset(service).await {
        Ok(report) => json_reply(&report),
        Err(error) => error_reply(Protocol::Json, &error),
    }
}

async fn kinesis(
    service: Arc<Service>,
    connection: Arc<Connection>,
    request: Request<Incoming>,
) -> Response<ReplyBody> {
    let (parts, body) = request.into_parts();
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    #[cfg(feature = "video")]
    if let Some(operation) = video::operation(parts.uri.path()) {
        return video::serve(service, &connection, (parts, body), operation).await;
    }
    if let Some(form) = crate::cloudwatch::Form::of(
        parts.uri.path(),
        header("x-amz-target"),
        header("content-type"),
    ) {
        return cloudwatch::serve(service, &connection, (parts, body), form).await;
    }
    let protocol = Protocol::from_content_type(header("content-type"));
    let target = header("x-amz-target").unwrap_or_default().to_owned();
    let api = Api::of(&target);
    // A request that cannot be authenticated is refused before its body is read.
    if let Some(verifier) = &service.verifier
        && let Err(error) = verifier.verify_headers(
            &signed_request(&parts, &[], api.signing_name()),
            SystemTime::now(),
        )
    {
        return error_reply(protocol, &error);
    }
    let limit = service.config.body_bytes_max;
    let declared_len = header("content-length").and_then(|v| v.parse().ok());
    let read = body::read(body, declared_len, limit, &service.body_budget, &connection);
    let (body, _reservation) = match read.await {
        Ok(body) => body,
        Err(error) => return error_reply(protocol, &error),
    };
    // Unknown targets are answered after authentication, as AWS does.
    let operation = api.operation(&target);
    let started = Instant::now();
    let transport = connection.transport;
    let call = Call {
        api,
        operation: &operation,
        protocol,
        transport,
        connection: &connection,
    };
    let result = AssertUnwindSafe(run(service.clone(), &parts, call, body))
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

/// What a request asks for, and how it came.
#[derive(Clone, Copy)]
struct Call<'a> {
    api: Api,
    operation: &'a str,
    protocol: Protocol,
    transport: crate::authorize::Transport,
    connection: &'a Arc<Connection>,
}

async fn run(
    service: Arc<Service>,
    parts: &hyper::http::request::Parts,
    call: Call<'_>,
    body: Bytes,
) -> Result<Response<ReplyBody>, ApiError> {
    let Call {
        api,
        operation,
        protocol,
        transport,
        connection,
    } = call;
    let caller = match &service.verifier {
        Some(verifier) => Some(verifier.verify(
            &signed_request(parts, &body, api.signing_name()),
            SystemTime::now(),
        )?),
        None => None,
    };
    if operation == "unknown" {
        return Err(ApiError::unknown_operation());
    }
    let tenant = match (&caller, api) {
        (Some(caller), Api::Kinesis) => {
            crate::authorize::authorize(&service, caller, operation, protocol, &body, transport)
                .await?
        }
        (Some(caller), Api::Kms) => {
            crate::authorize::authorize_kms(&service, caller, operation, protocol, &body, transport)
                .await?
        }
        #[cfg(feature = "firehose")]
        (Some(caller), Api::Firehose) => {
            crate::authorize::authorize_firehose(
                &service, caller, operation, protocol, &body, transport,
            )
            .await?
        }
        #[cfg(feature = "analytics")]
        (Some(caller), Api::Analytics) => {
            crate::authorize::authorize_analytics(
                &service, caller, operation, protocol, &body, transport,
            )
            .await?
        }
        (None, _) => service.tenant(None).await?,
    };
    let budget = service.subscription_budget.clone();
    let weak = Arc::downgrade(connection);
    let abort: subscribe::Abort = Arc::new(move || {
        if let Some(connection) = weak.upgrade() {
            connection.abort();
        }
    });
    let sink = subscribe::Sink { budget, abort };
    #[cfg(feature = "cluster")]
    if matches!(api, Api::Kinesis)
        && let Some(cluster) = service.cluster()
    {
        return on_cluster(
            cluster.as_ref(),
            (&service, &tenant),
            (operation, protocol),
            &body,
            sink,
        )
        .await;
    }
    if let Some(reply) = other_service(api, &tenant, operation, protocol, &body).await {
        let reply = reply.map_err(|error| error.for_account(&tenant.account))?;
        return Ok(operation_reply(protocol, reply));
    }
    on_tenant(tenant.clone(), operation, protocol, body, sink)
        .await
        .map_err(|error| error.for_account(&tenant.account))
}

/// `GET /_sluice/cluster`: the cluster's status as JSON, under the rules of `/metrics` (it
/// names every stream and node).
#[cfg(feature = "cluster")]
async fn cluster_status(service: &Service, request: &Request<Incoming>) -> Response<ReplyBody> {
    let path = crate::cluster::STATUS_PATH;
    if let Some(refused) = prometheus::operator_refusal(service, request, path) {
        return refused;
    }
    let Some(cluster) = service.cluster() else {
        return plain(
            StatusCode::NOT_FOUND,
            "this server is not in cluster mode\n".into(),
        );
    };
    match cluster.status().await {
        Ok(json) => Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/json")
            .body(whole(json))
            .expect("a valid response"),
        Err(error) => plain(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{}\n", error.message),
        ),
    }
}

/// A Kinesis call in cluster mode: the cluster's front answers for the configured account
/// and region (other tenants are not served in cluster mode yet).
#[cfg(feature = "cluster")]
async fn on_cluster(
    cluster: &dyn crate::cluster::KinesisCluster,
    (service, tenant): (&Service, &Arc<Tenant>),
    (operation, protocol): (&str, Protocol),
    body: &[u8],
    sink: subscribe::Sink,
) -> Result<Response<ReplyBody>, ApiError> {
    if !Arc::ptr_eq(tenant, service.default_tenant()) {
        return Err(ApiError::not_found(format!(
            "This cluster serves account {} in {} only.",
            service.config.account, service.config.region
        )));
    }
    if operation == "SubscribeToShard" {
        return Ok(event_stream(cluster.subscribe(protocol, body, sink).await?));
    }
    let reply = cluster.call(operation, protocol, body).await?;
    Ok(operation_reply(protocol, reply))
}

/// The reply of a call to the services beside Kinesis (KMS, Firehose, Kinesis Data
/// Analytics); `None` for a Kinesis call.
async fn other_service(
    api: Api,
    tenant: &Arc<Tenant>,
    operation: &str,
    protocol: Protocol,
    body: &[u8],
) -> Option<Result<Vec<u8>, ApiError>> {
    match api {
        Api::Kinesis => None,
        Api::Kms => Some(crate::kms::call(tenant, operation, protocol, body)),
        #[cfg(feature = "firehose")]
        Api::Firehose => Some(crate::firehose::call(tenant, operation, protocol, body).await),
        // On a task of its own: a client that goes away does not cancel a change half-way
        // (an application stopped and not started again, a catalogue not saved).
        #[cfg(feature = "analytics")]
        Api::Analytics => {
            Some(crate::analytics::call_to_completion(tenant, operation, protocol, body).await)
        }
    }
}

async fn on_tenant(
    tenant: Arc<Tenant>,
    operation: &str,
    protocol: Protocol,
    body: Bytes,
    sink: subscribe::Sink,
) -> Result<Response<ReplyBody>, ApiError> {
    if operation == "SubscribeToShard" {
        let input = ops::input(protocol, &body)?;
        let started = subscribe::start(tenant, input, protocol, sink)?;
        return Ok(event_stream(started));
    }
    let reply = ops::call(&tenant, operation, protocol, &body).await?;
    Ok(operation_reply(protocol, reply))
}

/// The reply of a started subscription: its frames as they come.
fn event_stream(started: subscribe::Started) -> Response<ReplyBody> {
    let response = Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/vnd.amazon.eventstream");
    with_ids(response)
        .body(
            ChannelBody {
                frames: started.frames,
                stalled: started.stalled,
            }
            .boxed(),
        )
        .expect("a valid response")
}

/// The parts of a request SigV4 covers.
fn signed_request<'a>(
    parts: &'a hyper::http::request::Parts,
    body: &'a [u8],
    service: &'static str,
) -> SignedRequest<'a> {
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
        service,
    }
}

/// The service a request is for, by its `X-Amz-Target`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    Kinesis,
    Kms,
    #[cfg(feature = "firehose")]
    Firehose,
    #[cfg(feature = "analytics")]
    Analytics,
}

impl Api {
    fn of(target: &str) -> Api {
        #[cfg(feature = "analytics")]
        if target.starts_with(crate::analytics::TARGET_PREFIX) {
            return Api::Analytics;
        }
        #[cfg(feature = "firehose")]
        if target.starts_with(crate::firehose::TARGET_PREFIX) {
            return Api::Firehose;
        }
        match target.starts_with(crate::kms::TARGET_PREFIX) {
            true => Api::Kms,
            false => Api::Kinesis,
        }
    }

    /// The name its signatures are scoped to.
    fn signing_name(self) -> &'static str {
        match self {
            Api::Kinesis => "kinesis",
            Api::Kms => "kms",
            #[cfg(feature = "firehose")]
            Api::Firehose => "firehose",
            #[cfg(feature = "analytics")]
            Api::Analytics => "kinesisanalytics",
        }
    }

    /// The operation `target` names, or `unknown`.
    fn operation(self, target: &str) -> String {
        let (prefix, operations) = match self {
            Api::Kinesis => (TARGET_PREFIX, &ops::OPERATIONS[..]),
            Api::Kms => (crate::kms::TARGET_PREFIX, crate::kms::OPERATIONS),
            #[cfg(feature = "firehose")]
            Api::Firehose => (crate::firehose::TARGET_PREFIX, crate::firehose::OPERATIONS),
            #[cfg(feature = "analytics")]
            Api::Analytics => (
                crate::analytics::TARGET_PREFIX,
                crate::analytics::OPERATIONS,
            ),
        };
        target
            .strip_prefix(prefix)
            .filter(|op| operations.contains(op))
            .unwrap_or("unknown")
            .to_owned()
    }
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
        .body(whole(body))
        .expect("a valid response")
}

/// A JSON reply of the server's own (not a Kinesis operation's).
fn json_reply(value: &impl Serialize) -> Response<ReplyBody> {
    with_ids(Response::builder())
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(whole(Protocol::Json.encode(value)))
        .expect("a valid response")
}

/// An operation's successful reply: 200, the protocol's content type, the request ids.
fn operation_reply(protocol: Protocol, reply: Vec<u8>) -> Response<ReplyBody> {
    let response = Response::builder()
        .status(StatusCode::OK)
        .header("content-type", protocol.content_type());
    with_ids(response)
        .body(whole(reply))
        .expect("a valid response")
}

/// A whole reply body.
fn whole(bytes: impl Into<Bytes>) -> ReplyBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

fn plain(status: StatusCode, text: String) -> Response<ReplyBody> {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain; version=0.0.4")
        .body(whole(text))
        .expect("a valid response")
}

/// A response body that keeps its request counted as in flight until it is sent.
struct Guarded {
    body: ReplyBody,
    in_flight: InFlight,
}

impl Body for Guarded {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        // Asked for more: the previous frame was taken on.
        self.in_flight.progress();
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// A body fed by a channel of event-stream frames; it ends when the sender is dropped, and
/// fails once the subscription found its client stopped reading.
struct ChannelBody {
    frames: mpsc::Receiver<Bytes>,
    stalled: Arc<std::sync::atomic::AtomicBool>,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        if self.stalled.load(std::sync::atomic::Ordering::Acquire) {
            return Poll::Ready(Some(
                Err("the subscriber stopped reading its events".into()),
            ));
        }
        self.frames
            .poll_recv(cx)
            .map(|frame| frame.map(|bytes| Ok(Frame::data(bytes))))
    }
}
