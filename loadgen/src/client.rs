//! A minimal Kinesis JSON 1.1 client over one keep-alive HTTP/1.1 connection: what
//! `sluice bench --endpoint` and the server's tests drive an endpoint with. No retries:
//! callers see every error. Requests carry a SigV4-shaped `Authorization` header with a
//! dummy signature: enough for endpoints that want one present but do not verify it
//! (kinesalite, kinesis-mock, Sluice without `--auth`), not for AWS.

use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::HeaderValue;
use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::net::SocketAddr;

/// An error reply, or a transport failure (`name` is `"Transport"`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name} ({status}): {message}")]
pub struct CallError {
    /// The exception name from `__type`.
    pub name: String,
    /// HTTP status (0 for transport failures).
    pub status: u16,
    /// Its message.
    pub message: String,
}

impl CallError {
    fn transport(error: impl std::fmt::Display) -> CallError {
        CallError {
            name: "Transport".into(),
            status: 0,
            message: error.to_string(),
        }
    }
}

const DUMMY_AUTHORIZATION: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261126/us-east-1/kinesis/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=0000000000000000000000000000000000000000000000000000000000000000";

/// One connection to an endpoint.
pub struct KinesisClient {
    sender: SendRequest<Full<Bytes>>,
    host: String,
}

impl KinesisClient {
    /// Connects (the connection runs on the current tokio runtime).
    pub async fn connect(address: SocketAddr) -> std::io::Result<KinesisClient> {
        let stream = tokio::net::TcpStream::connect(address).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(connection);
        Ok(KinesisClient {
            sender,
            host: address.to_string(),
        })
    }

    /// Subscribes (`SubscribeToShard` with this JSON input) and returns its event stream, or
    /// the error reply.
    pub async fn subscribe<I: Serialize>(&mut self, input: &I) -> Result<EventStream, CallError> {
        let body = Bytes::from(serde_json::to_vec(input).expect("inputs serialize"));
        let response = self.request("SubscribeToShard", body).await?;
        let status = response.status().as_u16();
        if status != 200 {
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(CallError::transport)?
                .to_bytes();
            return Err(CallError {
                name: "SubscribeToShard".into(),
                status,
                message: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        Ok(EventStream {
            body: response.into_body(),
            buffer: BytesMut::new(),
            decoder: MessageFrameDecoder::new(),
        })
    }

    /// Sends a pre-encoded JSON body to `Kinesis_20131202.<operation>` (or to `operation`
    /// itself when it names its service, as `Firehose_20150804.PutRecord`); returns the
    /// status and the body.
    pub async fn send(&mut self, operation: &str, body: Bytes) -> Result<(u16, Bytes), CallError> {
        let response = self.request(operation, body).await?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(CallError::transport)?
            .to_bytes();
        Ok((status, body))
    }

    async fn request(
        &mut self,
        operation: &str,
        body: Bytes,
    ) -> Result<hyper::Response<Incoming>, CallError> {
        let target = if operation.contains('.') {
            operation.to_owned()
        } else {
            format!("Kinesis_20131202.{operation}")
        };
        let request = Request::post("/")
            .header("host", &self.host)
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amz-target", target)
            .header("x-amz-date", "20261126T000000Z")
            .header("authorization", DUMMY_AUTHORIZATION)
            .body(Full::new(body))
            .expect("a valid request");
        self.sender.ready().await.map_err(CallError::transport)?;
        self.sender
            .send_request(request)
            .await
            .map_err(CallError::transport)
    }

    /// Calls an operation with a JSON input and decodes the reply, or the error.
    pub async fn call<I: Serialize, O: DeserializeOwned>(
        &mut self,
        operation: &str,
        input: &I,
    ) -> Result<O, CallError> {
        let body = serde_json::to_vec(input).expect("inputs serialize");
        let (status, reply) = self.send(operation, Bytes::from(body)).await?;
        if status == 200 {
            let reply: &[u8] = if reply.is_empty() { b"{}" } else { &reply };
            return serde_json::from_slice(reply).map_err(CallError::transport);
        }
        #[derive(serde::Deserialize)]
        struct ErrorBody {
            __type: String,
            #[serde(default)]
            message: String,
        }
        let error: ErrorBody = serde_json::from_slice(&reply).map_err(CallError::transport)?;
        Err(CallError {
            name: error.__type,
            status,
            message: error.message,
        })
    }
}

/// A SubscribeToShard reply's events, read as they arrive.
pub struct EventStream {
    body: Incoming,
    buffer: BytesMut,
    decoder: MessageFrameDecoder,
}

impl EventStream {
    /// The next event: its type (`:event-type`, or `:exception-type` for an exception) and
    /// its JSON payload; `None` when the subscription ended.
    pub async fn next(&mut self) -> Result<Option<(String, Bytes)>, CallError> {
        loop {
            if let DecodedFrame::Complete(message) = self
                .decoder
                .decode_frame(&mut self.buffer)
                .map_err(CallError::transport)?
            {
                let header = |name: &str| {
                    message
                        .headers()
                        .iter()
                        .find(|h| h.name().as_str() == name)
                        .and_then(|h| match h.value() {
                            HeaderValue::String(s) => Some(s.as_str().to_owned()),
                            _ => None,
                        })
                };
                let kind = match header(":message-type").as_deref() {
                    Some("event") => header(":event-type"),
                    Some("error") => header(":error-code"),
                    _ => header(":exception-type"),
                };
                return Ok(Some((kind.unwrap_or_default(), message.payload().clone())));
            }
            match self.body.frame().await {
                None => return Ok(None),
                Some(frame) => {
                    if let Ok(data) = frame.map_err(CallError::transport)?.into_data() {
                        self.buffer.extend_from_slice(&data);
                    }
                }
            }
        }
    }
}
