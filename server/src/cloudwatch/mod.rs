//! CloudWatch-compatible metrics (docs/design/cloudwatch.md): the store each tenant keeps,
//! the Kinesis metrics the data-plane calls record into it, and the CloudWatch calls that
//! read it, in CloudWatch's three wire forms.

pub mod actions;
pub mod alarms;
pub mod evaluate;
pub mod kinesis;
pub mod metrics;
pub mod protocol;
pub mod store;

use crate::wire::ApiError;
pub use protocol::{Form, Out};
use std::path::Path;
use std::sync::Arc;
use store::MetricStore;

/// The calls served.
pub const OPERATIONS: &[&str] = &[
    "PutMetricData",
    "GetMetricStatistics",
    "GetMetricData",
    "ListMetrics",
    "PutMetricAlarm",
    "DescribeAlarms",
    "DeleteAlarms",
    "SetAlarmState",
];

/// One tenant's CloudWatch: its metric store, and the thread that writes it out.
pub struct CloudWatch {
    /// Datapoints per minute.
    pub store: Arc<MetricStore>,
    /// Metric alarms.
    pub alarms: alarms::Alarms,
}

impl CloudWatch {
    /// Opens the store in `<dir>/cloudwatch/`, keeping `retention_hours` of datapoints. The
    /// tenant's upkeep thread flushes it (`crate::tenant`).
    pub fn open(dir: &Path, retention_hours: u64) -> std::io::Result<CloudWatch> {
        let path = dir.join("cloudwatch").join("metrics.log");
        let alarms = alarms::Alarms::open(&dir.join("cloudwatch"))?;
        let store = Arc::new(MetricStore::open(&path, 60, retention_hours * 3600)?);
        let opened = store.opened();
        if opened.damaged_lines > 0 {
            eprintln!(
                "sluice serve: {} lines of {} failed their checksum and were skipped (metrics of those seconds are gone)",
                opened.damaged_lines,
                path.display()
            );
        }
        Ok(CloudWatch { store, alarms })
    }
}

/// Runs a CloudWatch call on the tenant's store and alarms; the alarm state changes it made
/// are returned for their actions.
pub fn call(
    tenant: &crate::tenant::Tenant,
    operation: &str,
    form: Form,
    body: &[u8],
) -> Result<(Out, Vec<alarms::Change>), ApiError> {
    let cloudwatch = &tenant.cloudwatch;
    let store = &cloudwatch.store;
    let scope = (tenant.account.as_str(), tenant.region.as_str());
    let out = match operation {
        "PutMetricData" => metrics::put_metric_data(store, form.decode(body)?),
        "GetMetricStatistics" => metrics::get_metric_statistics(store, form.decode(body)?),
        "GetMetricData" => metrics::get_metric_data(store, form.decode(body)?),
        "ListMetrics" => metrics::list_metrics(store, form.decode(body)?),
        "PutMetricAlarm" => {
            let urls = &tenant.config.alarm_action_urls;
            alarms::put_metric_alarm(
                &cloudwatch.alarms,
                (scope.0, scope.1, urls),
                form.decode(body)?,
            )
        }
        "DescribeAlarms" => alarms::describe_alarms(&cloudwatch.alarms, scope, form.decode(body)?),
        "DeleteAlarms" => alarms::delete_alarms(&cloudwatch.alarms, form.decode(body)?),
        "SetAlarmState" => {
            let change = alarms::set_alarm_state(&cloudwatch.alarms, form.decode(body)?)?;
            return Ok((Out::Struct(vec![]), change.into_iter().collect()));
        }
        other => Err(ApiError::with_status(
            "InvalidAction",
            400,
            format!(
                "The action {other} is not valid for this web service (this endpoint serves CloudWatch's {}).",
                OPERATIONS.join(", ")
            ),
        )),
    }?;
    Ok((out, Vec::new()))
}
