//! Metric alarms: PutMetricAlarm, DescribeAlarms, DeleteAlarms and SetAlarmState, kept in
//! `<tenant dir>/cloudwatch/alarms.json` (written whole: a temporary file, fsync, rename).
//! Evaluation is in `evaluate.rs`, delivery of state changes in `actions.rs`.

use super::metrics::{Dimension, check_statistic, dimensions, dimensions_out};
use super::protocol::{Out, invalid, lenient};
use crate::wire::ApiError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Alarms one tenant may hold.
const ALARMS_MAX: usize = 5000;
/// The comparisons with a fixed threshold (anomaly bands need a model this endpoint lacks).
pub const COMPARISONS: &[&str] = &[
    "GreaterThanOrEqualToThreshold",
    "GreaterThanThreshold",
    "LessThanThreshold",
    "LessThanOrEqualToThreshold",
];
const MISSING: &[&str] = &["breaching", "notBreaching", "ignore", "missing"];
/// The states an alarm can be in.
pub const STATES: &[&str] = &["OK", "ALARM", "INSUFFICIENT_DATA"];

/// One metric alarm, as stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Alarm {
    /// Its name.
    pub name: String,
    /// What the user wrote about it.
    pub description: Option<String>,
    /// Whether state changes run the actions.
    pub actions_enabled: bool,
    /// Where an OK, ALARM or INSUFFICIENT_DATA change is sent.
    pub ok_actions: Vec<String>,
    /// See `ok_actions`.
    pub alarm_actions: Vec<String>,
    /// See `ok_actions`.
    pub insufficient_data_actions: Vec<String>,
    /// The metric's namespace.
    pub namespace: String,
    /// The metric's name.
    pub metric_name: String,
    /// The metric's dimensions, sorted.
    pub dimensions: Vec<(String, String)>,
    /// Only this unit's datapoints, when given.
    pub unit: Option<String>,
    /// `Sum`, `Average`...
    pub statistic: String,
    /// Seconds per period.
    pub period: u64,
    /// Periods looked at.
    pub evaluation_periods: u64,
    /// Breaching periods among them that put it in ALARM.
    pub datapoints_to_alarm: u64,
    /// The threshold.
    pub threshold: f64,
    /// One of [`COMPARISONS`].
    pub comparison: String,
    /// One of `breaching`, `notBreaching`, `ignore`, `missing`.
    pub treat_missing_data: String,
    /// `OK`, `ALARM` or `INSUFFICIENT_DATA`.
    pub state: String,
    /// Why, in words.
    pub state_reason: String,
    /// Why, as JSON.
    pub state_reason_data: Option<String>,
    /// When the state was last set (seconds).
    pub state_updated: f64,
    /// When the state last changed to another.
    pub state_transitioned: f64,
    /// When the configuration last changed.
    pub configuration_updated: f64,
}

/// A state change to deliver to the alarm's actions.
#[derive(Debug, Clone)]
pub struct Change {
    /// The alarm after the change.
    pub alarm: Alarm,
    /// Its state before.
    pub old_state: String,
}

impl Alarm {
    /// The actions of its current state, when actions are enabled.
    pub fn actions(&self) -> &[String] {
        if !self.actions_enabled {
            return &[];
        }
        match self.state.as_str() {
            "OK" => &self.ok_actions,
            "ALARM" => &self.alarm_actions,
            _ => &self.insufficient_data_actions,
        }
    }

    /// Sets the state; a change to another state is returned for delivery.
    pub fn set_state(
        &mut self,
        state: &str,
        reason: String,
        data: Option<String>,
        now: f64,
    ) -> Option<Change> {
        let old_state = std::mem::replace(&mut self.state, state.to_owned());
        self.state_reason = reason;
        self.state_reason_data = data;
        self.state_updated = now;
        if old_state == state {
            return None;
        }
        self.state_transitioned = now;
        Some(Change {
            alarm: self.clone(),
            old_state,
        })
    }
}

/// One tenant's alarms.
pub struct Alarms {
    path: PathBuf,
    alarms: Mutex<BTreeMap<String, Alarm>>,
}

impl Alarms {
    /// Reads `<dir>/alarms.json`, or starts with none.
    pub fn open(dir: &Path) -> std::io::Result<Alarms> {
        let path = dir.join("alarms.json");
        let alarms = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} is not an alarm list: {e}", path.display()),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e),
        };
        Ok(Alarms {
            path,
            alarms: Mutex::new(alarms),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Alarm>> {
        self.alarms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `change` on the alarms and saves them; nothing changes when either fails.
    pub fn update<R>(
        &self,
        change: impl FnOnce(&mut BTreeMap<String, Alarm>) -> Result<R, ApiError>,
    ) -> Result<R, ApiError> {
        let mut alarms = self.lock();
        let mut changed = alarms.clone();
        let result = change(&mut changed)?;
        if changed != *alarms {
            save(&self.path, &changed).map_err(|e| {
                ApiError::with_status(
                    "InternalServiceFault",
                    500,
                    format!("saving the alarms: {e}"),
                )
            })?;
            *alarms = changed;
        }
        Ok(result)
    }

    /// A copy of every alarm.
    pub fn all(&self) -> Vec<Alarm> {
        self.lock().values().cloned().collect()
    }
}

fn save(path: &Path, alarms: &BTreeMap<String, Alarm>) -> std::io::Result<()> {
    use std::io::Write as _;
    let writing = path.with_extension("writing");
    let mut file = std::fs::File::create(&writing)?;
    file.write_all(&serde_json::to_vec_pretty(alarms).expect("alarms serialize"))?;
    file.sync_data()?;
    std::fs::rename(&writing, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// PutMetricAlarm's input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutMetricAlarmInput {
    alarm_name: Option<String>,
    alarm_description: Option<String>,
    #[serde(default, deserialize_with = "lenient::bool")]
    actions_enabled: Option<bool>,
    #[serde(default, rename = "OKActions")]
    ok_actions: Vec<String>,
    #[serde(default)]
    alarm_actions: Vec<String>,
    #[serde(default)]
    insufficient_data_actions: Vec<String>,
    metric_name: Option<String>,
    namespace: Option<String>,
    statistic: Option<String>,
    extended_statistic: Option<String>,
    #[serde(default)]
    dimensions: Vec<Dimension>,
    #[serde(default, deserialize_with = "lenient::i64")]
    period: Option<i64>,
    unit: Option<String>,
    #[serde(default, deserialize_with = "lenient::i64")]
    evaluation_periods: Option<i64>,
    #[serde(default, deserialize_with = "lenient::i64")]
    datapoints_to_alarm: Option<i64>,
    #[serde(default, deserialize_with = "lenient::f64")]
    threshold: Option<f64>,
    comparison_operator: Option<String>,
    treat_missing_data: Option<String>,
    metrics: Option<serde_json::Value>,
    threshold_metric_id: Option<String>,
}

fn missing(name: &str) -> ApiError {
    ApiError::with_status(
        "MissingRequiredParameterException",
        400,
        format!("The parameter {name} is required."),
    )
}

/// Checks an action: a Kinesis stream of this account and region, or an http:// URL under
/// one of the prefixes the operator allowed (`--alarm-action-url`; none by default, so an
/// alarm cannot make the server call addresses only it can reach).
fn check_action(
    action: &str,
    (account, region): (&str, &str),
    urls: &[String],
) -> Result<(), ApiError> {
    if action.len() > 1024 {
        return Err(invalid("An alarm action must be at most 1024 characters."));
    }
    let stream_prefix = format!("arn:aws:kinesis:{region}:{account}:stream/");
    if action
        .strip_prefix(&stream_prefix)
        .is_some_and(|name| !name.is_empty())
    {
        return Ok(());
    }
    if action.starts_with("http://") {
        if url_allowed(action, urls) {
            return Ok(());
        }
        return Err(invalid(format!(
            "The action {action} is not under a URL this server's operator allows for alarm actions (sluice serve --alarm-action-url)."
        )));
    }
    Err(invalid(format!(
        "The action {action} cannot be run by this endpoint: it delivers state changes to a Kinesis stream of the alarm's account and region ({stream_prefix}<name>) or by POST to an http:// URL its operator allows."
    )))
}

/// Whether `action` is under one of the operator's URLs: the same host (exactly, no user
/// part), the same port (any, where the allowed URL names none), and a path under the
/// allowed one at a `/`.
pub fn url_allowed(action: &str, allowed: &[String]) -> bool {
    let parts = |url: &str| -> Option<(String, Option<u16>, String)> {
        let rest = url.strip_prefix("http://")?;
        let (authority, path) = rest.split_at(rest.find(['/', '?', '#']).unwrap_or(rest.len()));
        if authority.is_empty() || authority.contains('@') {
            return None;
        }
        let uri: hyper::Uri = format!("http://{authority}/").parse().ok()?;
        let host = uri.host()?.to_ascii_lowercase();
        Some((host, uri.port_u16(), path.to_owned()))
    };
    let Some((host, port, path)) = parts(action) else {
        return false;
    };
    allowed
        .iter()
        .filter_map(|url| parts(url))
        .any(|(h, p, prefix)| {
            let port_matches = p.is_none() || p == Some(port.unwrap_or(80));
            let prefix = prefix.trim_end_matches('/');
            let path_matches = path
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['/', '?', '#']));
            h == host && port_matches && path_matches
        })
}

/// The Kinesis streams an alarm input's actions name (for authorizing the puts to them).
pub fn stream_actions(input: &serde_json::Value) -> Vec<String> {
    ["OKActions", "AlarmActions", "InsufficientDataActions"]
        .iter()
        .filter_map(|list| input.get(list)?.as_array())
        .flatten()
        .filter_map(|action| action.as_str())
        .filter(|action| action.starts_with("arn:aws:kinesis:"))
        .map(str::to_owned)
        .collect()
}

/// When an alarm alarms: its periods, threshold, comparison and missing-data rule.
struct Rule {
    period: u64,
    evaluation_periods: u64,
    datapoints_to_alarm: u64,
    threshold: f64,
    comparison: String,
    treat_missing_data: String,
}

fn rule(input: &PutMetricAlarmInput) -> Result<Rule, ApiError> {
    if input.metrics.is_some() || input.threshold_metric_id.is_some() {
        return Err(invalid(
            "Alarms on metric math (Metrics, ThresholdMetricId) are not evaluated by this endpoint; alarm on one metric with MetricName and Namespace.",
        ));
    }
    let period = input.period.ok_or_else(|| missing("Period"))?;
    if period < 60 || period % 60 != 0 {
        return Err(invalid(format!(
            "Period must be a multiple of 60 (this endpoint keeps one-minute resolution); got {period}."
        )));
    }
    let evaluation_periods = input
        .evaluation_periods
        .ok_or_else(|| missing("EvaluationPeriods"))?;
    let span = period.checked_mul(evaluation_periods);
    if evaluation_periods < 1 || span.is_none_or(|span| span > 7 * 86_400) {
        return Err(invalid(
            "EvaluationPeriods must be at least 1, and Period times EvaluationPeriods at most 7 days.",
        ));
    }
    let datapoints_to_alarm = input.datapoints_to_alarm.unwrap_or(evaluation_periods);
    if datapoints_to_alarm < 1 || datapoints_to_alarm > evaluation_periods {
        return Err(invalid(
            "DatapointsToAlarm must be from 1 to EvaluationPeriods.",
        ));
    }
    let threshold = input.threshold.ok_or_else(|| missing("Threshold"))?;
    let comparison = input
        .comparison_operator
        .clone()
        .ok_or_else(|| missing("ComparisonOperator"))?;
    if !COMPARISONS.contains(&comparison.as_str()) {
        return Err(invalid(format!(
            "ComparisonOperator {comparison} is not evaluated by this endpoint; it takes {}.",
            COMPARISONS.join(", ")
        )));
    }
    let treat_missing_data = input
        .treat_missing_data
        .clone()
        .unwrap_or_else(|| "missing".to_owned());
    if !MISSING.contains(&treat_missing_data.as_str()) {
        return Err(invalid(format!(
            "TreatMissingData must be one of {}.",
            MISSING.join(", ")
        )));
    }
    Ok(Rule {
        period: period as u64,
        evaluation_periods: evaluation_periods as u64,
        datapoints_to_alarm: datapoints_to_alarm as u64,
        threshold,
        comparison,
        treat_missing_data,
    })
}

/// Creates or replaces an alarm (a replaced alarm keeps its state).
pub fn put_metric_alarm(
    alarms: &Alarms,
    (account, region, urls): (&str, &str, &[String]),
    input: PutMetricAlarmInput,
) -> Result<Out, ApiError> {
    let rule = rule(&input)?;
    let name = input.alarm_name.ok_or_else(|| missing("AlarmName"))?;
    if name.is_empty() || name.len() > 255 {
        return Err(invalid("AlarmName must be 1 to 255 characters."));
    }
    let namespace = input.namespace.ok_or_else(|| missing("Namespace"))?;
    let metric_name = input.metric_name.ok_or_else(|| missing("MetricName"))?;
    if let Some(extended) = &input.extended_statistic {
        check_statistic(extended, "ExtendedStatistic")?;
    }
    let statistic = input.statistic.ok_or_else(|| missing("Statistic"))?;
    check_statistic(&statistic, "Statistic")?;
    if let Some(unit) = &input.unit
        && !super::metrics::UNITS.contains(&unit.as_str())
    {
        return Err(invalid(format!(
            "The value {unit} for parameter Unit is not a CloudWatch unit."
        )));
    }
    for (list, actions) in [
        ("OKActions", &input.ok_actions),
        ("AlarmActions", &input.alarm_actions),
        ("InsufficientDataActions", &input.insufficient_data_actions),
    ] {
        if actions.len() > 5 {
            return Err(invalid(format!("{list} must have at most 5 members.")));
        }
        for action in actions {
            check_action(action, (account, region), urls)?;
        }
    }
    if input
        .alarm_description
        .as_ref()
        .is_some_and(|d| d.len() > 1024)
    {
        return Err(invalid("AlarmDescription must be at most 1024 characters."));
    }
    let dims = dimensions(&input.dimensions, "Dimensions")?;
    let now = crate::clock::now_ms() as f64 / 1000.0;
    alarms.update(|alarms| {
        if !alarms.contains_key(&name) && alarms.len() >= ALARMS_MAX {
            return Err(ApiError::with_status(
                "LimitExceededFault",
                400,
                format!("This account and region hold {ALARMS_MAX} alarms, the most this endpoint keeps."),
            ));
        }
        let kept = alarms.get(&name);
        let alarm = Alarm {
            name: name.clone(),
            description: input.alarm_description,
            actions_enabled: input.actions_enabled.unwrap_or(true),
            ok_actions: input.ok_actions,
            alarm_actions: input.alarm_actions,
            insufficient_data_actions: input.insufficient_data_actions,
            namespace,
            metric_name,
            dimensions: dims,
            unit: input.unit,
            statistic,
            period: rule.period,
            evaluation_periods: rule.evaluation_periods,
            datapoints_to_alarm: rule.datapoints_to_alarm,
            threshold: rule.threshold,
            comparison: rule.comparison,
            treat_missing_data: rule.treat_missing_data,
            state: kept.map_or_else(|| "INSUFFICIENT_DATA".to_owned(), |k| k.state.clone()),
            state_reason: kept.map_or_else(|| "Unchecked: Initial alarm creation".to_owned(), |k| k.state_reason.clone()),
            state_reason_data: kept.and_then(|k| k.state_reason_data.clone()),
            state_updated: kept.map_or(now, |k| k.state_updated),
            state_transitioned: kept.map_or(now, |k| k.state_transitioned),
            configuration_updated: now,
        };
        alarms.insert(name.clone(), alarm);
        Ok(())
    })?;
    Ok(Out::Struct(vec![]))
}

/// DescribeAlarms' input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeAlarmsInput {
    #[serde(default)]
    alarm_names: Vec<String>,
    alarm_name_prefix: Option<String>,
    state_value: Option<String>,
    action_prefix: Option<String>,
    #[serde(default, deserialize_with = "lenient::i64")]
    max_records: Option<i64>,
    next_token: Option<String>,
    #[serde(default)]
    alarm_types: Vec<String>,
}

/// The alarms matching the filters, by name, `MaxRecords` (50 by default) per page.
pub fn describe_alarms(
    alarms: &Alarms,
    (account, region): (&str, &str),
    input: DescribeAlarmsInput,
) -> Result<Out, ApiError> {
    if input.alarm_names.len() > 100 {
        return Err(invalid("AlarmNames must have at most 100 members."));
    }
    if !input.alarm_names.is_empty() && input.alarm_name_prefix.is_some() {
        return Err(ApiError::with_status(
            "InvalidParameterCombinationException",
            400,
            "AlarmNames and AlarmNamePrefix cannot be given together.",
        ));
    }
    if let Some(state) = &input.state_value
        && !STATES.contains(&state.as_str())
    {
        return Err(invalid(format!(
            "StateValue must be one of {}.",
            STATES.join(", ")
        )));
    }
    let max = input.max_records.unwrap_or(50);
    if !(1..=100).contains(&max) {
        return Err(invalid("MaxRecords must be from 1 to 100."));
    }
    let skip = super::metrics::page_start(input.next_token.as_deref())?;
    let metric_alarms_wanted =
        input.alarm_types.is_empty() || input.alarm_types.iter().any(|t| t == "MetricAlarm");
    let matching: Vec<Alarm> = alarms
        .all()
        .into_iter()
        .filter(|_| metric_alarms_wanted)
        .filter(|a| input.alarm_names.is_empty() || input.alarm_names.contains(&a.name))
        .filter(|a| {
            input
                .alarm_name_prefix
                .as_ref()
                .is_none_or(|p| a.name.starts_with(p))
        })
        .filter(|a| input.state_value.as_ref().is_none_or(|s| *s == a.state))
        .filter(|a| {
            input.action_prefix.as_ref().is_none_or(|p| {
                a.ok_actions
                    .iter()
                    .chain(&a.alarm_actions)
                    .chain(&a.insufficient_data_actions)
                    .any(|x| x.starts_with(p))
            })
        })
        .collect();
    let page: Vec<Out> = matching
        .iter()
        .skip(skip)
        .take(max as usize)
        .map(|a| alarm_out(a, account, region))
        .collect();
    let mut members = vec![
        ("MetricAlarms", Out::List(page)),
        ("CompositeAlarms", Out::List(vec![])),
    ];
    if skip.saturating_add(max as usize) < matching.len() {
        members.push((
            "NextToken",
            Out::Str(format!("sluice-{}", skip + max as usize)),
        ));
    }
    Ok(Out::Struct(members))
}

/// An alarm's ARN.
pub fn alarm_arn(name: &str, account: &str, region: &str) -> String {
    format!("arn:aws:cloudwatch:{region}:{account}:alarm:{name}")
}

fn alarm_out(a: &Alarm, account: &str, region: &str) -> Out {
    let strings = |list: &[String]| Out::List(list.iter().map(|s| Out::Str(s.clone())).collect());
    let mut members = vec![
        ("AlarmName", Out::Str(a.name.clone())),
        ("AlarmArn", Out::Str(alarm_arn(&a.name, account, region))),
    ];
    if let Some(description) = &a.description {
        members.push(("AlarmDescription", Out::Str(description.clone())));
    }
    members.extend([
        (
            "AlarmConfigurationUpdatedTimestamp",
            Out::Time(a.configuration_updated),
        ),
        ("ActionsEnabled", Out::Bool(a.actions_enabled)),
        ("OKActions", strings(&a.ok_actions)),
        ("AlarmActions", strings(&a.alarm_actions)),
        (
            "InsufficientDataActions",
            strings(&a.insufficient_data_actions),
        ),
        ("StateValue", Out::Str(a.state.clone())),
        ("StateReason", Out::Str(a.state_reason.clone())),
    ]);
    if let Some(data) = &a.state_reason_data {
        members.push(("StateReasonData", Out::Str(data.clone())));
    }
    members.extend([
        ("StateUpdatedTimestamp", Out::Time(a.state_updated)),
        ("MetricName", Out::Str(a.metric_name.clone())),
        ("Namespace", Out::Str(a.namespace.clone())),
        ("Statistic", Out::Str(a.statistic.clone())),
        ("Dimensions", dimensions_out(&a.dimensions)),
        ("Period", Out::Int(a.period as i64)),
    ]);
    if let Some(unit) = &a.unit {
        members.push(("Unit", Out::Str(unit.clone())));
    }
    members.extend([
        ("EvaluationPeriods", Out::Int(a.evaluation_periods as i64)),
        ("DatapointsToAlarm", Out::Int(a.datapoints_to_alarm as i64)),
        ("Threshold", Out::Num(a.threshold)),
        ("ComparisonOperator", Out::Str(a.comparison.clone())),
        ("TreatMissingData", Out::Str(a.treat_missing_data.clone())),
        (
            "StateTransitionedTimestamp",
            Out::Time(a.state_transitioned),
        ),
    ]);
    Out::Struct(members)
}

/// DeleteAlarms' input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteAlarmsInput {
    alarm_names: Option<Vec<String>>,
}

/// Deletes alarms; when any does not exist, none is deleted.
pub fn delete_alarms(alarms: &Alarms, input: DeleteAlarmsInput) -> Result<Out, ApiError> {
    let names = input.alarm_names.ok_or_else(|| missing("AlarmNames"))?;
    if names.len() > 100 {
        return Err(invalid("AlarmNames must have at most 100 members."));
    }
    alarms.update(|alarms| {
        if let Some(unknown) = names.iter().find(|n| !alarms.contains_key(*n)) {
            return Err(ApiError::with_status(
                "ResourceNotFound",
                404,
                format!("The alarm {unknown} does not exist; no alarm was deleted."),
            ));
        }
        for name in &names {
            alarms.remove(name);
        }
        Ok(())
    })?;
    Ok(Out::Struct(vec![]))
}

/// SetAlarmState's input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SetAlarmStateInput {
    alarm_name: Option<String>,
    state_value: Option<String>,
    state_reason: Option<String>,
    state_reason_data: Option<String>,
}

/// Sets an alarm's state until its next evaluation; a change runs its actions.
pub fn set_alarm_state(
    alarms: &Alarms,
    input: SetAlarmStateInput,
) -> Result<Option<Change>, ApiError> {
    let name = input.alarm_name.ok_or_else(|| missing("AlarmName"))?;
    let state = input.state_value.ok_or_else(|| missing("StateValue"))?;
    let reason = input.state_reason.ok_or_else(|| missing("StateReason"))?;
    if !STATES.contains(&state.as_str()) {
        return Err(invalid(format!(
            "StateValue must be one of {}.",
            STATES.join(", ")
        )));
    }
    if reason.len() > 1023
        || input
            .state_reason_data
            .as_ref()
            .is_some_and(|d| d.len() > 4000)
    {
        return Err(invalid(
            "StateReason must be at most 1023 characters and StateReasonData at most 4000.",
        ));
    }
    if let Some(data) = &input.state_reason_data
        && serde_json::from_str::<serde_json::Value>(data).is_err()
    {
        return Err(ApiError::with_status(
            "InvalidFormatFault",
            400,
            "StateReasonData is not JSON.",
        ));
    }
    let now = crate::clock::now_ms() as f64 / 1000.0;
    alarms.update(|alarms| {
        let alarm = alarms.get_mut(&name).ok_or_else(|| {
            ApiError::with_status(
                "ResourceNotFound",
                404,
                format!("The alarm {name} does not exist."),
            )
        })?;
        Ok(alarm.set_state(&state, reason, input.state_reason_data, now))
    })
}

#[cfg(test)]
mod tests {
    use super::url_allowed;

    #[test]
    fn alarm_urls_match_host_port_and_path_exactly() {
        let allowed = [
            "http://hooks.internal:9000/alarms".to_owned(),
            "http://127.0.0.1".to_owned(),
        ];
        assert!(url_allowed("http://hooks.internal:9000/alarms", &allowed));
        assert!(url_allowed(
            "http://hooks.internal:9000/alarms/pager?x=1",
            &allowed
        ));
        assert!(url_allowed("http://HOOKS.internal:9000/alarms", &allowed));
        assert!(url_allowed("http://127.0.0.1:45123/anything", &allowed));
        for refused in [
            "http://hooks.internal:9000@169.254.169.254/latest/meta-data/",
            "http://hooks.internal.attacker.com:9000/alarms",
            "http://hooks.internal:9001/alarms",
            "http://hooks.internal:9000/alarmsx",
            "http://hooks.internal/alarms",
            "http://127.0.0.1:@10.0.0.5:6379/",
            "http://127.0.0.2/",
            "https://127.0.0.1/",
        ] {
            assert!(!url_allowed(refused, &allowed), "{refused}");
        }
    }
}
