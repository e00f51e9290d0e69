//! Delivering alarm state changes: CloudWatch's alarm message (the JSON its SNS
//! notifications carry) put to a Kinesis stream of the tenant, or POSTed to an http:// URL.
//! One attempt each, with a timeout; a failure is logged and counted
//! (`sluice_alarm_actions_failed_total`), never retried into a storm.

use super::alarms::{Change, alarm_arn};
use crate::tenant::Tenant;
use base64::Engine as _;
use http_body_util::BodyExt as _;
use std::sync::Arc;
use std::time::Duration;

/// How long one delivery may take.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);

/// The alarm message of a change.
pub fn message(change: &Change, account: &str, region: &str) -> serde_json::Value {
    let alarm = &change.alarm;
    serde_json::json!({
        "AlarmName": alarm.name,
        "AlarmDescription": alarm.description,
        "AWSAccountId": account,
        "AlarmConfigurationUpdatedTimestamp": super::protocol::iso8601(alarm.configuration_updated),
        "NewStateValue": alarm.state,
        "NewStateReason": alarm.state_reason,
        "StateChangeTime": super::protocol::iso8601(alarm.state_updated),
        "Region": region,
        "AlarmArn": alarm_arn(&alarm.name, account, region),
        "OldStateValue": change.old_state,
        "OKActions": alarm.ok_actions,
        "AlarmActions": alarm.alarm_actions,
        "InsufficientDataActions": alarm.insufficient_data_actions,
        "Trigger": {
            "MetricName": alarm.metric_name,
            "Namespace": alarm.namespace,
            "StatisticType": "Statistic",
            "Statistic": alarm.statistic.to_uppercase(),
            "Unit": alarm.unit,
            "Dimensions": alarm.dimensions.iter().map(|(n, v)| serde_json::json!({"value": v, "name": n})).collect::<Vec<_>>(),
            "Period": alarm.period,
            "EvaluationPeriods": alarm.evaluation_periods,
            "DatapointsToAlarm": alarm.datapoints_to_alarm,
            "ComparisonOperator": alarm.comparison,
            "Threshold": alarm.threshold,
            "TreatMissingData": alarm.treat_missing_data,
        },
    })
}

/// Runs the actions of each change, all at once (one slow endpoint does not hold up the
/// others), and returns when every one is done or has timed out.
pub async fn deliver(tenant: Arc<Tenant>, changes: Vec<Change>) {
    let mut running = tokio::task::JoinSet::new();
    for change in changes {
        let body = Arc::new(message(&change, &tenant.account, &tenant.region).to_string());
        for action in change.alarm.actions() {
            let (tenant, body, action) = (tenant.clone(), body.clone(), action.clone());
            let (alarm, state) = (change.alarm.name.clone(), change.alarm.state.clone());
            running.spawn(async move {
                let delivered = tokio::time::timeout(
                    DELIVERY_TIMEOUT,
                    deliver_one(&tenant, &action, &alarm, &body),
                )
                .await
                .unwrap_or_else(|_| Err(format!("no answer in {} s", DELIVERY_TIMEOUT.as_secs())));
                if let Err(why) = delivered {
                    metrics::counter!("sluice_alarm_actions_failed_total").increment(1);
                    eprintln!(
                        "sluice serve: alarm {alarm} went to {state}, and its action {action} failed: {why}"
                    );
                }
            });
        }
    }
    while running.join_next().await.is_some() {}
}

async fn deliver_one(tenant: &Tenant, action: &str, alarm: &str, body: &str) -> Result<(), String> {
    if let Some(url) = action.strip_prefix("http://") {
        // Checked again now: the operator may have narrowed what alarms may call since
        // the alarm was put.
        if !super::alarms::url_allowed(action, &tenant.config.alarm_action_urls) {
            return Err("the URL is no longer one the operator allows (--alarm-action-url)".into());
        }
        return post(url, body).await;
    }
    // A stream ARN (checked when the alarm was put): the put goes through the Kinesis call,
    // so the stream's encryption, limits and metrics apply as to any put.
    let input = serde_json::json!({
        "StreamARN": action,
        "PartitionKey": alarm,
        "Data": base64::engine::general_purpose::STANDARD.encode(body),
    });
    let request = serde_json::to_vec(&input).expect("JSON");
    crate::ops::call(tenant, "PutRecord", crate::wire::Protocol::Json, &request)
        .await
        .map(|_| ())
        .map_err(|e| format!("{}: {}", e.name, e.message))
}

/// POSTs `body` to `http://<url>`; any 2xx is delivered.
async fn post(url: &str, body: &str) -> Result<(), String> {
    let uri: hyper::Uri = format!("http://{url}")
        .parse()
        .map_err(|e| format!("not a URL: {e}"))?;
    let host = uri.host().ok_or("the URL has no host")?.to_owned();
    let port = uri.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| format!("connecting to {host}:{port}: {e}"))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let request = hyper::Request::post(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header("host", format!("{host}:{port}"))
        .header("content-type", "application/json")
        .header("x-sluice-alarm-message", "1")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            body.to_owned(),
        )))
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    // The answer is not read beyond its first 64 KiB.
    let _ = http_body_util::Limited::new(response.into_body(), 64 << 10)
        .collect()
        .await;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("the endpoint answered {status}"))
    }
}
