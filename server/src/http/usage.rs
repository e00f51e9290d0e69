//! `GET /_sluice/usage?from=..&to=..`: every tenant's usage in billing units, as JSON, under
//! the rules of `/metrics` (a bearer token on a server that verifies signatures).

use super::{ReplyBody, json_reply, plain};
use crate::service::Service;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

/// The path.
pub const USAGE_PATH: &str = "/_sluice/usage";

#[derive(serde::Serialize)]
struct Report {
    /// The first hour reported (RFC 3339).
    from: String,
    /// The end of the last hour reported.
    to: String,
    lines: Vec<crate::usage::UsageLine>,
}

pub(super) fn reply(service: &Service, request: &Request<Incoming>) -> Response<ReplyBody> {
    if let Some(refused) = super::prometheus::operator_refusal(service, request, USAGE_PATH) {
        return refused;
    }
    let now = crate::clock::now_ms() / 1000;
    let mut from = month_start(now);
    let mut to = now;
    for (key, value) in form_urlencoded::parse(request.uri().query().unwrap_or_default().as_bytes())
    {
        let parsed = match crate::usage::parse_time(&value) {
            Ok(parsed) => parsed,
            Err(message) => return plain(StatusCode::BAD_REQUEST, format!("{key}: {message}\n")),
        };
        match &*key {
            "from" => from = parsed,
            "to" => to = parsed,
            other => {
                return plain(
                    StatusCode::BAD_REQUEST,
                    format!("unknown parameter {other}: {USAGE_PATH} takes from and to\n"),
                );
            }
        }
    }
    if from >= to {
        return plain(StatusCode::BAD_REQUEST, "from must be before to\n".into());
    }
    let lines = service.usage(from, to);
    let hour = |s: u64| crate::cloudwatch::protocol::iso8601(s as f64);
    json_reply(&Report {
        from: hour(from - from % 3600),
        to: hour(to.div_ceil(3600) * 3600),
        lines,
    })
}

/// The first second of the month (UTC) `now` is in.
fn month_start(now: u64) -> u64 {
    let text = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(now),
    )
    .to_string();
    crate::usage::parse_time(&format!("{}-01T00:00:00Z", &text[..7])).unwrap_or(0)
}
