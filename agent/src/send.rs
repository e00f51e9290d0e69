//! Records put into a stream (`PutRecords`) or a delivery stream (`PutRecordBatch`) over the
//! wire, as the Kinesis Agent puts them (docs/design/agent.md, "Sending"): JSON 1.1, signed
//! with SigV4, over one HTTP/1.1 keep-alive connection (TLS for `https://`) made again when
//! it breaks.

use crate::AgentError;
use crate::config::Destination;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use std::time::{Duration, SystemTime};

/// A record to put: its data and, into a stream, its partition key.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The record's bytes.
    pub data: Vec<u8>,
    /// Its partition key (streams only).
    pub partition_key: String,
}

impl Entry {
    /// What it counts for in a put's limit: its data and its partition key.
    pub fn size(&self) -> usize {
        self.data.len() + self.partition_key.len()
    }
}

/// Why a put failed as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name} ({status}): {message}")]
pub struct PutError {
    /// The error's name (`__type`), or `Connection` when no answer came.
    pub name: String,
    /// The HTTP status (0 with no answer).
    pub status: u16,
    /// What the service said.
    pub message: String,
}

impl PutError {
    fn connection(error: impl std::fmt::Display) -> PutError {
        PutError {
            name: "Connection".into(),
            status: 0,
            message: error.to_string(),
        }
    }
}

/// A destination's endpoint, signed for.
pub struct Sender {
    destination: Destination,
    /// Where calls go.
    target: Target,
    region: String,
    credentials: Credentials,
    connection: Option<SendRequest<Full<Bytes>>>,
    /// How long a call may take, connecting included.
    timeout: Duration,
}

impl Sender {
    /// A sender to `destination` through `endpoint` (`http://host:port`), signing with
    /// `credentials` (or `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`), in the
    /// endpoint's region (`AWS_REGION` for one that names none, or us-east-1), giving up a
    /// call after `timeout` (its connection is made again).
    pub fn new(
        destination: Destination,
        endpoint: Option<&str>,
        credentials: Option<&(String, String)>,
        timeout: Duration,
    ) -> Result<Sender, AgentError> {
        let key = match &destination {
            Destination::Stream(_) => "kinesis.endpoint",
            Destination::DeliveryStream(_) => "firehose.endpoint",
        };
        let region = endpoint
            .and_then(region_of)
            .or_else(|| std::env::var("AWS_REGION").ok())
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
            .unwrap_or_else(|| "us-east-1".into());
        // Without one, the service's own endpoint in the region, as the Kinesis Agent does.
        let service = match &destination {
            Destination::Stream(_) => "kinesis",
            Destination::DeliveryStream(_) => "firehose",
        };
        let endpoint = endpoint.map_or_else(
            || format!("https://{service}.{region}.amazonaws.com"),
            str::to_owned,
        );
        let target = Target::parse(&endpoint).ok_or_else(|| {
            AgentError::config(
                key,
                format!("{endpoint} is not http://host[:port] or https://host[:port]"),
            )
        })?;
        let (id, secret) = match credentials {
            Some((id, secret)) => (id.clone(), secret.clone()),
            None => match (
                std::env::var("AWS_ACCESS_KEY_ID"),
                std::env::var("AWS_SECRET_ACCESS_KEY"),
            ) {
                (Ok(id), Ok(secret)) => (id, secret),
                _ => {
                    return Err(AgentError::config(
                        "awsAccessKeyId",
                        "no credentials: set awsAccessKeyId and awsSecretAccessKey, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
                    ));
                }
            },
        };
        let token = std::env::var("AWS_SESSION_TOKEN").ok();
        Ok(Sender {
            destination,
            target,
            region,
            credentials: Credentials::new(id, secret, token, None, "agent.json"),
            connection: None,
            timeout,
        })
    }

    /// Puts `entries` in one call; returns the indexes of those the service refused (to
    /// put again), or why the call failed as a whole.
    pub async fn put(&mut self, entries: &[Entry]) -> Result<Vec<usize>, PutError> {
        let (target, service, body) = self.body(entries);
        let answer = self.call(target, service, body).await?;
        let (results, failed_key) = match self.destination {
            Destination::Stream(_) => ("Records", "ErrorCode"),
            Destination::DeliveryStream(_) => ("RequestResponses", "ErrorCode"),
        };
        let results = answer
            .get(results)
            .and_then(|r| r.as_array())
            .filter(|r| r.len() == entries.len())
            .ok_or_else(|| PutError {
                name: "InvalidResponse".into(),
                status: 200,
                message: format!("the answer has no {results} for each record: {answer}"),
            })?;
        Ok(results
            .iter()
            .enumerate()
            .filter(|(_, result)| result.get(failed_key).is_some_and(|e| !e.is_null()))
            .map(|(i, _)| i)
            .collect())
    }

    /// The call's target, its signing name and its body.
    fn body(&self, entries: &[Entry]) -> (&'static str, &'static str, String) {
        let mut records = Vec::with_capacity(entries.len());
        for entry in entries {
            let data = STANDARD.encode(&entry.data);
            records.push(match self.destination {
                Destination::Stream(_) => {
                    serde_json::json!({ "Data": data, "PartitionKey": entry.partition_key })
                }
                Destination::DeliveryStream(_) => serde_json::json!({ "Data": data }),
            });
        }
        match &self.destination {
            Destination::Stream(name) => (
                "Kinesis_20131202.PutRecords",
                "kinesis",
                serde_json::json!({ "StreamName": name, "Records": records }).to_string(),
            ),
            Destination::DeliveryStream(name) => (
                "Firehose_20150804.PutRecordBatch",
                "firehose",
                serde_json::json!({ "DeliveryStreamName": name, "Records": records }).to_string(),
            ),
        }
    }

    /// One signed call, given up after the timeout (its connection made again); its
    /// answer's JSON.
    async fn call(
        &mut self,
        target: &str,
        service: &str,
        body: String,
    ) -> Result<serde_json::Value, PutError> {
        let request = self.signed(target, service, body)?;
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, self.exchange(request)).await {
            Ok(answer) => answer,
            Err(_) => {
                self.connection = None;
                Err(PutError::connection(format!(
                    "no answer within {} ms",
                    timeout.as_millis()
                )))
            }
        }
    }

    /// The request of a call, signed.
    fn signed(
        &mut self,
        target: &str,
        service: &str,
        body: String,
    ) -> Result<hyper::Request<Full<Bytes>>, PutError> {
        let headers = [
            ("host", self.target.authority.as_str()),
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", target),
        ];
        let identity = self.credentials.clone().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(service)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(PutError::connection)?
            .into();
        let signable = SignableRequest::new(
            "POST",
            &self.target.uri,
            headers.iter().copied(),
            SignableBody::Bytes(body.as_bytes()),
        )
        .map_err(PutError::connection)?;
        let (instructions, _) = sign(signable, &params)
            .map_err(PutError::connection)?
            .into_parts();
        let mut request = hyper::Request::post("/");
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let (signed, _) = instructions.into_parts();
        for header in signed {
            request = request.header(header.name(), header.value());
        }
        request
            .body(Full::new(Bytes::from(body)))
            .map_err(PutError::connection)
    }

    /// Sends `request` and reads its answer.
    async fn exchange(
        &mut self,
        request: hyper::Request<Full<Bytes>>,
    ) -> Result<serde_json::Value, PutError> {
        let sender = self.connection().await?;
        let answer = match sender.send_request(request).await {
            Ok(answer) => answer,
            Err(e) => {
                self.connection = None;
                return Err(PutError::connection(e));
            }
        };
        let status = answer.status().as_u16();
        let bytes = answer
            .into_body()
            .collect()
            .await
            .map_err(|e| {
                self.connection = None;
                PutError::connection(e)
            })?
            .to_bytes();
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        if status != 200 {
            let name = value["__type"].as_str().unwrap_or("Error");
            return Err(PutError {
                name: name.rsplit('#').next().unwrap_or(name).to_owned(),
                status,
                message: value["message"]
                    .as_str()
                    .or(value["Message"].as_str())
                    .map_or_else(
                        || String::from_utf8_lossy(&bytes).into_owned(),
                        str::to_owned,
                    ),
            });
        }
        Ok(value)
    }

    /// The connection, made when there is none (or the last one broke).
    async fn connection(&mut self) -> Result<&mut SendRequest<Full<Bytes>>, PutError> {
        if self.connection.as_ref().is_none_or(|c| c.is_closed()) {
            let target = &self.target;
            let stream = tokio::net::TcpStream::connect((target.host.as_str(), target.port))
                .await
                .map_err(PutError::connection)?;
            stream.set_nodelay(true).map_err(PutError::connection)?;
            let sender = if target.tls {
                let stream = crate::tls::connect(&target.host, stream)
                    .await
                    .map_err(PutError::connection)?;
                handshake(stream).await?
            } else {
                handshake(stream).await?
            };
            self.connection = Some(sender);
        }
        let sender = self.connection.as_mut().expect("made above");
        sender.ready().await.map_err(PutError::connection)?;
        Ok(sender)
    }
}

/// An HTTP/1.1 connection over `io`, its driver spawned.
async fn handshake<T>(io: T) -> Result<SendRequest<Full<Bytes>>, PutError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
            .await
            .map_err(PutError::connection)?;
    tokio::spawn(connection);
    Ok(sender)
}

/// Where a sender's calls go.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    /// Over TLS (`https://`).
    tls: bool,
    /// The host, a name or an IP address (without brackets).
    host: String,
    port: u16,
    /// The `Host` header (and the signed URI's authority), as the endpoint writes it.
    authority: String,
    /// `scheme://authority/`, as signed.
    uri: String,
}

impl Target {
    /// `http://host[:port]` or `https://host[:port]`, with nothing after but a `/`.
    fn parse(endpoint: &str) -> Option<Target> {
        let (tls, rest) = match endpoint.split_once("://")? {
            ("http", rest) => (false, rest),
            ("https", rest) => (true, rest),
            _ => return None,
        };
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
            return None;
        }
        let uri: hyper::Uri = format!("http://{authority}/").parse().ok()?;
        let host = uri
            .host()?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let default_port = if tls { 443 } else { 80 };
        let port = uri.port_u16().unwrap_or(default_port);
        let scheme = if tls { "https" } else { "http" };
        Some(Target {
            tls,
            host,
            port,
            authority: authority.to_owned(),
            uri: format!("{scheme}://{authority}/"),
        })
    }
}

/// The region of an AWS endpoint's host (`kinesis.eu-west-1.amazonaws.com`).
fn region_of(endpoint: &str) -> Option<String> {
    let host = endpoint.split("://").nth(1)?.split(['/', ':']).next()?;
    let mut parts = host.split('.');
    let (_service, region) = (parts.next()?, parts.next()?);
    host.ends_with(".amazonaws.com").then(|| region.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_in_either_scheme_with_or_without_a_port() {
        let aws = Target::parse("https://kinesis.eu-west-1.amazonaws.com").unwrap();
        assert_eq!(
            (
                aws.tls,
                aws.host.as_str(),
                aws.port,
                aws.authority.as_str(),
                aws.uri.as_str()
            ),
            (
                true,
                "kinesis.eu-west-1.amazonaws.com",
                443,
                "kinesis.eu-west-1.amazonaws.com",
                "https://kinesis.eu-west-1.amazonaws.com/"
            )
        );
        let local = Target::parse("http://127.0.0.1:4567/").unwrap();
        assert_eq!(
            (local.tls, local.host.as_str(), local.port),
            (false, "127.0.0.1", 4567)
        );
        let v6 = Target::parse("https://[::1]:8443").unwrap();
        assert_eq!(
            (v6.host.as_str(), v6.port, v6.authority.as_str()),
            ("::1", 8443, "[::1]:8443")
        );
        for bad in [
            "ftp://x",
            "http://",
            "https://host/path",
            "host:80",
            "http://u@host",
        ] {
            assert_eq!(Target::parse(bad), None, "{bad}");
        }
        assert_eq!(
            region_of("https://kinesis.eu-west-1.amazonaws.com").as_deref(),
            Some("eu-west-1")
        );
    }
}
