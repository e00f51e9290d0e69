//! `sluice usage`: what a running `sluice serve` metered, in billing units, per account,
//! region and stream, priced by a table the user supplies.

use anyhow::Context as _;
use http_body_util::BodyExt as _;
use sluice_server::usage::PriceTable;
use std::collections::BTreeSet;

/// Options of `sluice usage`.
#[derive(clap::Args, Debug)]
pub struct UsageArgs {
    /// The server (its Kinesis listener).
    #[arg(long, default_value = "http://127.0.0.1:4567")]
    endpoint: String,
    /// The server's --metrics-token (needed when it verifies signatures).
    #[arg(long, env = "SLUICE_METRICS_TOKEN")]
    token: Option<String>,
    /// The first hour reported: RFC 3339 or seconds since 1970 (default: the start of this
    /// month, UTC).
    #[arg(long)]
    since: Option<String>,
    /// The end of the report (default: now); a partial last hour counts whole.
    #[arg(long)]
    until: Option<String>,
    /// A price table (JSON: {"currency": "USD", "prices": {"Kinesis:ShardHour": 0.015,
    /// "Kinesis:PutRequestPayloadUnits": {"price": 0.014, "per": 1000000}}}) for a cost
    /// estimate.
    #[arg(long)]
    prices: Option<std::path::PathBuf>,
    /// Print the server's JSON report as it is (with a cost per line when priced).
    #[arg(long)]
    json: bool,
}

pub fn run(args: UsageArgs) -> anyhow::Result<()> {
    let prices = match &args.prices {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Some(PriceTable::parse(&text).map_err(anyhow::Error::msg)?)
        }
        None => None,
    };
    let mut query = form_urlencoded::Serializer::new(String::new());
    if let Some(since) = &args.since {
        query.append_pair("from", since);
    }
    if let Some(until) = &args.until {
        query.append_pair("to", until);
    }
    let url = format!(
        "{}/_sluice/usage?{}",
        args.endpoint.trim_end_matches('/'),
        query.finish()
    );
    let body = get(&url, args.token.as_deref())?;
    let mut report: serde_json::Value =
        serde_json::from_slice(&body).context("the server's usage report is not JSON")?;
    let lines = report["lines"]
        .as_array_mut()
        .context("the report has no lines")?;
    let mut unpriced = BTreeSet::new();
    let mut total = 0.0;
    for line in lines.iter_mut() {
        let Some(prices) = &prices else { break };
        let usage: sluice_server::usage::UsageLine = parsed_line(line)?;
        match prices.cost(&usage) {
            Some(cost) => {
                total += cost;
                line["cost"] = cost.into();
            }
            None => {
                unpriced.insert(usage.usage_type);
            }
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    print_table(&report, prices.as_ref(), total, &unpriced);
    Ok(())
}

/// A report line back as the library's type (its usage type must be one the library knows).
fn parsed_line(line: &serde_json::Value) -> anyhow::Result<sluice_server::usage::UsageLine> {
    let name = line["usage_type"].as_str().unwrap_or_default();
    let usage = sluice_server::usage::USAGE_TYPES
        .iter()
        .find(|u| u.name == name)
        .with_context(|| {
            format!("the server reports a usage type this sluice does not know: {name:?}")
        })?;
    let text = |key: &str| line[key].as_str().unwrap_or_default().to_owned();
    Ok(sluice_server::usage::UsageLine {
        account: text("account"),
        region: text("region"),
        resource: text("resource"),
        usage_type: usage.name,
        quantity: line["quantity"].as_f64().unwrap_or(0.0),
        unit: usage.unit,
    })
}

fn print_table(
    report: &serde_json::Value,
    prices: Option<&PriceTable>,
    total: f64,
    unpriced: &BTreeSet<&str>,
) {
    println!(
        "usage from {} to {} (whole hours)",
        report["from"].as_str().unwrap_or("?"),
        report["to"].as_str().unwrap_or("?")
    );
    let currency = prices.map_or("", |p| p.currency.as_str());
    println!(
        "{:<14} {:<14} {:<34} {:<42} {:>16} {:<6} {}",
        "account",
        "region",
        "resource",
        "usage type",
        "quantity",
        "unit",
        if prices.is_some() {
            format!("cost ({currency})")
        } else {
            String::new()
        }
    );
    let empty = Vec::new();
    let lines = report["lines"].as_array().unwrap_or(&empty);
    for line in lines {
        let text = |key: &str| line[key].as_str().unwrap_or("").to_owned();
        let cost = line["cost"]
            .as_f64()
            .map_or_else(String::new, |c| format!("{c:.6}"));
        println!(
            "{:<14} {:<14} {:<34} {:<42} {:>16.6} {:<6} {}",
            text("account"),
            text("region"),
            text("resource"),
            text("usage_type"),
            line["quantity"].as_f64().unwrap_or(0.0),
            text("unit"),
            cost
        );
    }
    if lines.is_empty() {
        println!("(nothing metered in this range)");
    }
    if prices.is_some() {
        println!("total: {total:.6} {currency}");
        if !unpriced.is_empty() {
            let names: Vec<&str> = unpriced.iter().copied().collect();
            println!(
                "no price in the table for: {} (not in the total)",
                names.join(", ")
            );
        }
    }
}

/// `GET url` over HTTP/1.1; the body of a 200, or the server's answer as the error.
pub(crate) fn get(url: &str, token: Option<&str>) -> anyhow::Result<Vec<u8>> {
    let uri: hyper::Uri = url.parse().with_context(|| format!("{url} is not a URL"))?;
    anyhow::ensure!(
        uri.scheme_str() == Some("http"),
        "sluice speaks plain http:// to the server (got {url})"
    );
    let host = uri.host().context("the endpoint has no host")?.to_owned();
    let port = uri.port_u16().unwrap_or(80);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let stream = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .with_context(|| format!("connecting to {host}:{port} (is sluice serve running?)"))?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        let mut request = hyper::Request::get(uri.path_and_query().map_or("/", |p| p.as_str()))
            .header("host", format!("{host}:{port}"));
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let response = sender
            .send_request(request.body(http_body_util::Empty::<bytes::Bytes>::new())?)
            .await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes().to_vec();
        anyhow::ensure!(
            status.is_success(),
            "the server answered {status}: {}",
            String::from_utf8_lossy(&body).trim()
        );
        Ok(body)
    })
}
