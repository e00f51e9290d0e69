//! The HTTP endpoint target: a flush's records sent as one Firehose HTTP delivery request
//! (JSON, the records' data in base64, gzipped if asked), tried again with back-off for the
//! retry duration under the same request id; a 413 is not tried again. What the endpoint did
//! not take goes to the error output, one envelope per record. docs/design/firehose.md,
//! "HTTP endpoints".

use super::buffer::Records;
use super::retry::{Failure, Refused, retrying};
use super::{Interrupted, now_ms};
use crate::spec::HttpEndpoint;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use std::io::Write;
use std::time::Duration;
use tokio::sync::watch;

/// The most of an answer read: Firehose's answer is a request id and a timestamp.
#[cfg_attr(not(feature = "http"), allow(dead_code))]
const ANSWER_BYTES_MAX: usize = 64 << 10;

/// A delivery stream's endpoint.
pub(super) struct Endpoint {
    spec: HttpEndpoint,
    /// `X-Amz-Firehose-Source-Arn`.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    source_arn: String,
    stop: watch::Receiver<bool>,
}

/// One delivery request: the same id and body on every attempt.
pub(super) struct Request {
    pub(super) id: String,
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    body: bytes::Bytes,
    pub(super) records: Records,
}

impl Endpoint {
    /// Whether request bodies are gzipped.
    pub(super) fn gzip(&self) -> bool {
        self.spec.gzip
    }

    pub(super) fn new(
        spec: &HttpEndpoint,
        delivery_stream: &str,
        stop: watch::Receiver<bool>,
    ) -> Endpoint {
        let source_arn = match spec.source_arn.as_str() {
            "" => format!("arn:aws:firehose:::deliverystream/{delivery_stream}"),
            arn => arn.to_owned(),
        };
        Endpoint {
            spec: spec.clone(),
            source_arn,
            stop,
        }
    }

    /// Sends `request` until the endpoint takes it, the retry duration is over, or it
    /// refuses for good: the attempts it took, or why it was not taken.
    pub(super) async fn send(
        &self,
        request: &Request,
        failed: impl FnMut(&Refused),
    ) -> Result<Result<u32, Failure>, Interrupted> {
        let timeout = Duration::from_millis(self.spec.request_timeout_ms);
        let retry = Duration::from_millis(self.spec.retry_ms);
        retrying(retry, &self.stop, failed, || async move {
            tokio::time::timeout(timeout, self.attempt(request))
                .await
                .unwrap_or_else(|_| {
                    Err(Refused::again(
                        "HttpEndpoint.RequestTimeout",
                        format!("The endpoint did not answer within {timeout:?}."),
                    ))
                })
        })
        .await
    }

    #[cfg(not(feature = "http"))]
    async fn attempt(&self, _request: &Request) -> Result<(), Refused> {
        Err(Refused {
            code: "HttpEndpoint.ConnectionFailed",
            message: "sluice-firehose was built without its `http` feature.".to_owned(),
            retry: true,
        })
    }

    /// One POST of the request; Ok when the endpoint answered 200 with the request's id.
    #[cfg(feature = "http")]
    async fn attempt(&self, request: &Request) -> Result<(), Refused> {
        use http_body_util::{BodyExt, Limited};
        let failed = Refused::again;
        // Checked at creation: an http:// URL with a host.
        let uri: hyper::Uri = self
            .spec
            .url
            .parse()
            .map_err(|e| failed("HttpEndpoint.ConnectionFailed", format!("{e}")))?;
        let authority = uri.authority().map_or("", |a| a.as_str());
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let host = uri.host().unwrap_or_default().trim_matches(['[', ']']);
        let https = uri.scheme_str() == Some("https");
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let stream = tokio::net::TcpStream::connect((host, port))
            .await
            .map_err(|e| failed("HttpEndpoint.ConnectionFailed", format!("{authority}: {e}")))?;
        let mut sender = if https {
            let stream = tls::connect(host, stream).await.map_err(|e| {
                failed(
                    "HttpEndpoint.SSLHandshakeFailure",
                    format!("{authority}: {e}"),
                )
            })?;
            handshake(stream).await?
        } else {
            handshake(stream).await?
        };
        let post = self
            .post(request, authority, path)
            .map_err(|e| failed("HttpEndpoint.ConnectionFailed", e.to_string()))?;
        let answer = sender
            .send_request(post)
            .await
            .map_err(|e| failed("HttpEndpoint.ConnectionFailed", e.to_string()))?;
        let status = answer.status();
        // The status decides; an answer too long to read is still a refusal of that status.
        let body = Limited::new(answer.into_body(), ANSWER_BYTES_MAX)
            .collect()
            .await
            .map(|body| body.to_bytes());
        let text = match &body {
            Ok(body) => String::from_utf8_lossy(&body[..body.len().min(1024)]).into_owned(),
            Err(e) => format!("(an answer not read whole: {e})"),
        };
        if status != hyper::StatusCode::OK {
            return Err(Refused {
                code: "HttpEndpoint.DestinationException",
                message: format!(
                    "The following response was received from the endpoint destination. {}: {text}",
                    status.as_u16()
                ),
                retry: status != hyper::StatusCode::PAYLOAD_TOO_LARGE,
            });
        }
        let body = body.map_err(|e| failed("HttpEndpoint.ResponseTooLarge", e.to_string()))?;
        let answered: Option<String> = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("requestId")?.as_str().map(str::to_owned));
        if answered.as_deref() != Some(request.id.as_str()) {
            return Err(failed(
                "HttpEndpoint.InvalidResponseFromDestination",
                format!("The response did not carry the request's requestId: {text}"),
            ));
        }
        Ok(())
    }

    /// The POST of `request`, with Firehose's headers.
    #[cfg(feature = "http")]
    fn post(
        &self,
        request: &Request,
        authority: &str,
        path: &str,
    ) -> Result<hyper::Request<http_body_util::Full<bytes::Bytes>>, hyper::http::Error> {
        let mut builder = hyper::Request::post(path)
            .header("host", authority)
            .header("content-type", "application/json")
            .header(
                "user-agent",
                "Amazon Kinesis Data Firehose Agent/1.0 (Sluice)",
            )
            .header("x-amz-firehose-protocol-version", "1.0")
            .header("x-amz-firehose-request-id", request.id.as_str())
            .header("x-amz-firehose-source-arn", self.source_arn.as_str());
        if self.spec.gzip {
            builder = builder.header("content-encoding", "gzip");
        }
        if let Some(key) = &self.spec.access_key {
            builder = builder.header("x-amz-firehose-access-key", key.as_str());
        }
        if !self.spec.common_attributes.is_empty() {
            let attributes =
                serde_json::json!({ "commonAttributes": self.spec.common_attributes }).to_string();
            builder = builder.header("x-amz-firehose-common-attributes", attributes);
        }
        builder.body(http_body_util::Full::new(request.body.clone()))
    }
}

/// An HTTP/1.1 connection over `stream`, driven by a task of its own.
#[cfg(feature = "http")]
async fn handshake<S>(
    stream: S,
) -> Result<hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>, Refused>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| Refused::again("HttpEndpoint.ConnectionFailed", e.to_string()))?;
    tokio::spawn(connection);
    Ok(sender)
}

/// TLS for `https://` endpoints: rustls (ring), the server's certificate checked against the
/// system's trust roots, or instead those of `SSL_CERT_FILE` / `SSL_CERT_DIR` when set (as
/// OpenSSL takes them: a bundle replacing the system's), loaded once.
#[cfg(feature = "http")]
mod tls {
    use std::sync::{Arc, OnceLock};
    use tokio_rustls::TlsConnector;
    use tokio_rustls::client::TlsStream;
    use tokio_rustls::rustls::pki_types::ServerName;
    use tokio_rustls::rustls::{ClientConfig, RootCertStore};

    /// The client configuration, or why there is none (no trust roots could be read: tried
    /// again on the next connection, and kept once made).
    fn config() -> Result<Arc<ClientConfig>, String> {
        static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
        if let Some(config) = CONFIG.get() {
            return Ok(config.clone());
        }
        let found = rustls_native_certs::load_native_certs();
        let mut roots = RootCertStore::empty();
        let (added, _ignored) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            let why: Vec<String> = found.errors.iter().map(|e| e.to_string()).collect();
            return Err(format!(
                "no trust roots could be read from the system (or SSL_CERT_FILE): {}",
                why.join("; ")
            ));
        }
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(CONFIG.get_or_init(|| Arc::new(config)).clone())
    }

    /// `stream` to `host` (a name or an IP address), once TLS is up and the certificate
    /// names the host.
    pub(super) async fn connect(
        host: &str,
        stream: tokio::net::TcpStream,
    ) -> Result<TlsStream<tokio::net::TcpStream>, String> {
        let name = ServerName::try_from(host.to_owned()).map_err(|e| e.to_string())?;
        let connector = TlsConnector::from(config()?);
        connector
            .connect(name, stream)
            .await
            .map_err(|e| e.to_string())
    }
}

/// The request for `records`: `{"requestId", "timestamp", "records": [{"data"}]}` (ids and
/// base64 need no JSON escaping), gzipped when the endpoint asks for it. CPU work: run it
/// off the async threads.
pub(super) fn request(records: Records, gzip: bool) -> Request {
    let id = uuid::Uuid::new_v4().to_string();
    let mut json = Vec::with_capacity(records.data.len() * 4 / 3 + 64 * records.ends.len());
    write!(
        json,
        r#"{{"requestId":"{id}","timestamp":{},"records":["#,
        now_ms()
    )
    .expect("write to a Vec");
    let mut encoded = String::new();
    for (i, (data, _)) in records.iter().enumerate() {
        if i > 0 {
            json.push(b',');
        }
        json.extend_from_slice(br#"{"data":""#);
        encoded.clear();
        STANDARD.encode_string(data, &mut encoded);
        json.extend_from_slice(encoded.as_bytes());
        json.extend_from_slice(br#""}"#);
    }
    json.extend_from_slice(b"]}");
    let body = if gzip {
        crate::compress::compress(crate::spec::Compression::Gzip, json, "")
            .expect("gzip into memory")
    } else {
        json
    };
    Request {
        id,
        body: body.into(),
        records,
    }
}
