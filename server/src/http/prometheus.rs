//! `/metrics` (Prometheus text), on the Kinesis listener under the rules of `reply`, or on
//! a listener of its own (`serve_metrics`, for an address only the monitoring can reach).

use super::{ReplyBody, plain};
use crate::service::Service;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use metrics_exporter_prometheus::PrometheusHandle;
use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;
use subtle::ConstantTimeEq as _;
use tokio::net::TcpListener;

/// `/metrics`: open on a server without authentication; with signatures on, only with the
/// configured bearer token (it names every tenant's streams).
pub(super) fn reply(
    service: &Service,
    metrics: Option<&PrometheusHandle>,
    request: &Request<Incoming>,
) -> Response<ReplyBody> {
    let Some(handle) = metrics else {
        return plain(
            StatusCode::NOT_FOUND,
            "metrics are not served here\n".into(),
        );
    };
    if let Some(refused) = operator_refusal(service, request, "/metrics") {
        return refused;
    }
    plain(StatusCode::OK, handle.render())
}

/// Serves `GET /metrics` and `GET /health` (nothing else) from `listener`, without
/// authentication, until `shutdown` completes. Connections are closed after 60 s.
pub async fn serve_metrics(
    listener: TcpListener,
    handle: PrometheusHandle,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = &mut shutdown => return Ok(()),
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            let handler = hyper::service::service_fn(move |request: Request<Incoming>| {
                let reply = match (request.method(), request.uri().path()) {
                    (&Method::GET, "/metrics") => plain(StatusCode::OK, handle.render()),
                    (&Method::GET, "/health") => plain(StatusCode::OK, "ok\n".into()),
                    _ => plain(
                        StatusCode::NOT_FOUND,
                        "only /metrics and /health here\n".into(),
                    ),
                };
                async move { Ok::<_, Infallible>(reply) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let served = builder.serve_connection(TokioIo::new(stream), handler);
            let _ = tokio::time::timeout(Duration::from_secs(60), served).await;
        });
    }
}

/// Why a request for the operator's pages (`/metrics`, `/_sluice/usage`) is refused, if it
/// is: they are open on a server without authentication; with signatures on, they need the
/// configured bearer token (they name every tenant's streams).
pub(super) fn operator_refusal(
    service: &Service,
    request: &Request<Incoming>,
    what: &str,
) -> Option<Response<ReplyBody>> {
    match &service.config.metrics_token {
        Some(token) => {
            let sent = request
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            let matches =
                sent.is_some_and(|sent| bool::from(sent.as_bytes().ct_eq(token.as_bytes())));
            if !matches {
                let mut reply = plain(
                    StatusCode::UNAUTHORIZED,
                    format!("{what} needs the metrics token: Authorization: Bearer <token>\n"),
                );
                reply.headers_mut().insert(
                    "www-authenticate",
                    hyper::header::HeaderValue::from_static("Bearer"),
                );
                return Some(reply);
            }
        }
        None if service.verifier.is_some() => {
            return Some(plain(
                StatusCode::FORBIDDEN,
                format!(
                    "{what} is off on a server that verifies signatures: start it with --metrics-token{}\n",
                    if what == "/metrics" {
                        " or --metrics-listen"
                    } else {
                        ""
                    }
                ),
            ));
        }
        None => {}
    }
    None
}
