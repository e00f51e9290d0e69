//! Firehose's Lambda processor in `sluice serve`: a function named by its ARN is invoked on
//! the endpoint `--firehose-lambda-endpoint` gives, through Lambda's Invoke API
//! (`POST /2015-03-31/functions/<name>/invocations`, as `sam local start-lambda` and other
//! Lambda emulators serve it), with Firehose's data-transformation event.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use sluice_firehose::{Invocation, TransformFuture, Transforms, parse_lambda_response};
use std::time::Duration;

/// A call that takes longer fails (and is retried): Lambda's own limit for a Firehose
/// transform is 5 minutes; a local endpoint that slow is broken.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// One tenant's view of the Lambda endpoint.
pub(super) struct LambdaEndpoint {
    /// `host:port` of an `http://` endpoint.
    pub(super) authority: String,
    pub(super) account: String,
    pub(super) region: String,
}

impl LambdaEndpoint {
    /// The endpoint of `url` (`http://host:port`), for the tenant `account`/`region`.
    pub(super) fn new(url: &str, account: &str, region: &str) -> anyhow::Result<LambdaEndpoint> {
        let authority = url
            .strip_prefix("http://")
            .map(|rest| rest.trim_end_matches('/'))
            .filter(|rest| !rest.is_empty() && !rest.contains('/'))
            .ok_or_else(|| {
                anyhow::anyhow!("--firehose-lambda-endpoint {url}: expected http://HOST:PORT")
            })?;
        Ok(LambdaEndpoint {
            authority: authority.to_owned(),
            account: account.to_owned(),
            region: region.to_owned(),
        })
    }
}

impl Transforms for LambdaEndpoint {
    fn invoke(&self, function: &str, invocation: Invocation) -> TransformFuture {
        let arn = format!(
            "arn:aws:firehose:{}:{}:deliverystream/{}",
            self.region, self.account, invocation.delivery_stream
        );
        let event = invocation.lambda_event(&arn, &self.region);
        // `arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]`, or a bare name.
        let name = function
            .split_once(":function:")
            .map_or(function, |(_, rest)| rest)
            .split(':')
            .next()
            .unwrap_or_default()
            .to_owned();
        let authority = self.authority.clone();
        Box::pin(async move {
            let answer = tokio::time::timeout(CALL_TIMEOUT, post(&authority, &name, event))
                .await
                .map_err(|_| format!("Lambda function {name}: no answer in {CALL_TIMEOUT:?}"))??;
            parse_lambda_response(&answer).map_err(|e| format!("Lambda function {name}: {e}"))
        })
    }
}

/// Invokes `name` with `event`; the answer's body, or why there is none.
async fn post(authority: &str, name: &str, event: Vec<u8>) -> Result<Bytes, String> {
    let fail =
        |what: &str, e: &dyn std::fmt::Display| format!("Lambda function {name}: {what}: {e}");
    let stream = tokio::net::TcpStream::connect(authority)
        .await
        .map_err(|e| fail(&format!("connect to {authority}"), &e))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| fail("handshake", &e))?;
    tokio::spawn(connection);
    let request = Request::post(format!("/2015-03-31/functions/{name}/invocations"))
        .header(hyper::header::HOST, authority)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(event)))
        .map_err(|e| fail("request", &e))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| fail("invoke", &e))?;
    let status = response.status();
    // Lambda answers 200 with this header when the function itself failed.
    let function_error = response.headers().get("x-amz-function-error").cloned();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| fail("read the answer", &e))?
        .to_bytes();
    if !status.is_success() || function_error.is_some() {
        let text = String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned();
        return Err(fail(&format!("status {status}"), &text));
    }
    Ok(body)
}
