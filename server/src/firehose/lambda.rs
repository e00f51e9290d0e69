//! Firehose's Lambda processor in `sluice serve`: a function named by its ARN is invoked on
//! the endpoint `--firehose-lambda-endpoint` gives, through Lambda's Invoke API
//! (`POST /2015-03-31/functions/<name>/invocations`, as `sam local start-lambda` and other
//! Lambda emulators serve it), with Firehose's data-transformation event.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Request;
use hyper_util::rt::TokioIo;
use sluice_firehose::{Invocation, TransformFuture, Transforms, parse_lambda_response};
use std::time::Duration;

/// Lambda's limit on a synchronous invocation's response: a longer answer fails the call
/// (and no endpoint can make the server hold more).
const RESPONSE_BYTES_MAX: usize = 6 << 20;

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
        let (name, qualifier) = function_name(function);
        let path = match qualifier {
            // `$LATEST` is `%24LATEST` in a query.
            Some(qualifier) => format!(
                "/2015-03-31/functions/{name}/invocations?Qualifier={}",
                qualifier.replace('$', "%24")
            ),
            None => format!("/2015-03-31/functions/{name}/invocations"),
        };
        let name = name.to_owned();
        let authority = self.authority.clone();
        Box::pin(async move {
            let answer = tokio::time::timeout(CALL_TIMEOUT, post(&authority, &name, &path, event))
                .await
                .map_err(|_| format!("Lambda function {name}: no answer in {CALL_TIMEOUT:?}"))??;
            parse_lambda_response(&answer).map_err(|e| format!("Lambda function {name}: {e}"))
        })
    }
}

/// Invokes `name` with `event`; the answer's body, or why there is none.
async fn post(authority: &str, name: &str, path: &str, event: Vec<u8>) -> Result<Bytes, String> {
    let fail =
        |what: &str, e: &dyn std::fmt::Display| format!("Lambda function {name}: {what}: {e}");
    let stream = tokio::net::TcpStream::connect(authority)
        .await
        .map_err(|e| fail(&format!("connect to {authority}"), &e))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| fail("handshake", &e))?;
    tokio::spawn(connection);
    let request = Request::post(path)
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
    let body = Limited::new(response.into_body(), RESPONSE_BYTES_MAX)
        .collect()
        .await
        .map_err(|e| {
            fail(
                &format!("read the answer (at most {RESPONSE_BYTES_MAX} bytes)"),
                &e,
            )
        })?
        .to_bytes();
    if !status.is_success() || function_error.is_some() {
        let text = String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned();
        return Err(fail(&format!("status {status}"), &text));
    }
    Ok(body)
}

/// The function's name and qualifier in `function`: a Lambda ARN
/// (`arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]`) or a bare name, as
/// `valid_function` checked it.
pub(super) fn function_name(function: &str) -> (&str, Option<&str>) {
    let rest = function
        .split_once(":function:")
        .map_or(function, |(_, rest)| rest);
    match rest.split_once(':') {
        Some((name, qualifier)) => (name, Some(qualifier)),
        None => (rest, None),
    }
}

/// Whether `function` names a Lambda function: an ARN of one, or a bare name, whose name
/// is 1-64 of `[A-Za-z0-9_-]` and qualifier 1-128 of `[A-Za-z0-9_$-]`.
pub(super) fn valid_function(function: &str) -> bool {
    let arn_ok = match function.split_once(":function:") {
        Some((head, _)) => {
            let parts: Vec<&str> = head.split(':').collect();
            parts.len() == 5 && parts[..3] == ["arn", "aws", "lambda"]
        }
        None => true,
    };
    let (name, qualifier) = function_name(function);
    let name_ok = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
    let qualifier_ok = qualifier.is_none_or(|q| {
        (1..=128).contains(&q.len())
            && q.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '$'))
    });
    arn_ok && name_ok && qualifier_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn functions_are_named_by_arn_or_name_with_an_optional_qualifier() {
        let arn = "arn:aws:lambda:us-east-1:123456789012:function:shout";
        assert_eq!(function_name(arn), ("shout", None));
        assert_eq!(
            function_name(&format!("{arn}:$LATEST")),
            ("shout", Some("$LATEST"))
        );
        assert_eq!(function_name("shout:prod"), ("shout", Some("prod")));
        for good in [
            arn,
            "shout",
            "shout:prod",
            "arn:aws:lambda:eu-west-1:1:function:a_b-c:v2",
        ] {
            assert!(valid_function(good), "{good}");
        }
        for bad in [
            "",
            "a/../b",
            "shout?x=1",
            "arn:aws:s3:::bucket",
            "arn:aws:lambda:us-east-1:1:function:",
            "shout:",
            "shout:a:b",
            &"x".repeat(65),
        ] {
            assert!(!valid_function(bad), "{bad}");
        }
    }
}
