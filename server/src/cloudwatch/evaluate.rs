//! Alarm evaluation: each alarm's last `EvaluationPeriods` whole periods (the current,
//! unfinished minute left out), compared with its threshold; `DatapointsToAlarm` of them
//! breaching put it in ALARM; missing periods count as `TreatMissingData` says.

use super::alarms::{Alarm, Alarms, Change};
use super::metrics::{MetricRef, aggregate, statistic};
use super::store::{MetricStore, Stats};
use std::collections::BTreeMap;

/// What one evaluation concluded.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The state it should be in; `None`: keep the current one (`ignore`, no data).
    pub state: Option<&'static str>,
    /// Why, in words.
    pub reason: String,
    /// Why, as JSON.
    pub data: String,
}

/// Evaluates every alarm at `now` (seconds) and applies the state changes; returns them,
/// for their actions.
pub fn evaluate_all(alarms: &Alarms, store: &MetricStore, now: f64) -> Vec<Change> {
    let verdicts: Vec<(Alarm, Verdict)> = alarms
        .all()
        .into_iter()
        .map(|alarm| {
            let verdict = evaluate(&alarm, store, now);
            (alarm, verdict)
        })
        .filter(|(alarm, verdict)| verdict.state.is_some_and(|s| s != alarm.state))
        .collect();
    if verdicts.is_empty() {
        return Vec::new();
    }
    let applied = alarms.update(|current| {
        let mut changes = Vec::new();
        for (seen, verdict) in verdicts {
            // An alarm changed or deleted since it was read is evaluated again next time.
            let Some(alarm) = current.get_mut(&seen.name) else {
                continue;
            };
            if alarm.configuration_updated != seen.configuration_updated
                || alarm.state != seen.state
            {
                continue;
            }
            let state = verdict.state.expect("a change");
            changes.extend(alarm.set_state(state, verdict.reason, Some(verdict.data), now));
        }
        Ok(changes)
    });
    applied.unwrap_or_else(|e| {
        eprintln!("sluice serve: saving alarm states: {}", e.message);
        Vec::new()
    })
}

/// Evaluates one alarm at `now` (seconds).
pub fn evaluate(alarm: &Alarm, store: &MetricStore, now: f64) -> Verdict {
    let end = (now as u64) - (now as u64) % 60;
    let span = alarm.period * alarm.evaluation_periods;
    let start = end.saturating_sub(span);
    let metric = MetricRef {
        namespace: &alarm.namespace,
        name: &alarm.metric_name,
        dimensions: &alarm.dimensions,
        unit: alarm.unit.as_deref(),
    };
    let mut periods: BTreeMap<u64, Stats> = BTreeMap::new();
    for (at, _, stats) in aggregate(store, &metric, (start, end), alarm.period) {
        periods
            .entry(at)
            .and_modify(|s| s.merge(&stats))
            .or_insert(stats);
    }
    let values: Vec<(u64, f64)> = periods
        .iter()
        .map(|(at, s)| (*at, statistic(s, &alarm.statistic)))
        .collect();
    let breaching = values.iter().filter(|(_, v)| breaches(alarm, *v)).count() as u64;
    let missing = alarm.evaluation_periods - values.len() as u64;
    let data = reason_data(alarm, &values, (start, end), &periods);
    let verdict = |state: Option<&'static str>, reason: String| Verdict {
        state,
        reason,
        data: data.clone(),
    };
    if values.is_empty() {
        let (state, reason) = without_data(alarm, missing);
        return verdict(state, reason);
    }
    let counted = breaching
        + if alarm.treat_missing_data == "breaching" {
            missing
        } else {
            0
        };
    let state = if counted >= alarm.datapoints_to_alarm {
        "ALARM"
    } else {
        "OK"
    };
    let shown: Vec<String> = values
        .iter()
        .rev()
        .map(|(at, v)| format!("{v:?} ({})", super::protocol::iso8601(*at as f64)))
        .collect();
    let reason = format!(
        "Threshold Crossed: {counted} out of the last {} datapoints [{}] {} {} the threshold ({:?}) (minimum {} datapoint{} for OK -> ALARM transition).",
        alarm.evaluation_periods,
        shown.join(", "),
        if counted == 1 { "was" } else { "were" },
        comparison_words(&alarm.comparison),
        alarm.threshold,
        alarm.datapoints_to_alarm,
        if alarm.datapoints_to_alarm == 1 {
            ""
        } else {
            "s"
        },
    );
    verdict(Some(state), reason)
}

/// The state and reason of an alarm with no datapoint in its periods.
fn without_data(alarm: &Alarm, missing: u64) -> (Option<&'static str>, String) {
    let periods = alarm.evaluation_periods;
    let treated = |how: &str| {
        format!(
            "Threshold Crossed: no datapoints were received for {periods} periods and {missing} missing datapoints were treated as [{how}]."
        )
    };
    match alarm.treat_missing_data.as_str() {
        "ignore" => (None, String::new()),
        "breaching" => (Some("ALARM"), treated("Breaching")),
        "notBreaching" => (Some("OK"), treated("NonBreaching")),
        _ => (
            Some("INSUFFICIENT_DATA"),
            format!("Insufficient Data: {periods} datapoints were unknown."),
        ),
    }
}

fn breaches(alarm: &Alarm, value: f64) -> bool {
    match alarm.comparison.as_str() {
        "GreaterThanOrEqualToThreshold" => value >= alarm.threshold,
        "GreaterThanThreshold" => value > alarm.threshold,
        "LessThanThreshold" => value < alarm.threshold,
        _ => value <= alarm.threshold,
    }
}

fn comparison_words(comparison: &str) -> &'static str {
    match comparison {
        "GreaterThanOrEqualToThreshold" => "greater than or equal to",
        "GreaterThanThreshold" => "greater than",
        "LessThanThreshold" => "less than",
        _ => "less than or equal to",
    }
}

/// CloudWatch's StateReasonData: the query and the datapoints it saw.
fn reason_data(
    alarm: &Alarm,
    values: &[(u64, f64)],
    (start, end): (u64, u64),
    periods: &BTreeMap<u64, Stats>,
) -> String {
    let iso = |s: u64| super::protocol::iso8601(s as f64);
    serde_json::json!({
        "version": "1.0",
        "queryDate": iso(end),
        "startDate": iso(start),
        "statistic": alarm.statistic,
        "period": alarm.period,
        "recentDatapoints": values.iter().map(|(_, v)| v).collect::<Vec<_>>(),
        "threshold": alarm.threshold,
        "evaluatedDatapoints": values.iter().rev().map(|(at, v)| serde_json::json!({
            "timestamp": iso(*at),
            "sampleCount": periods[at].count,
            "value": v,
        })).collect::<Vec<_>>(),
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloudwatch::store::SeriesKey;

    fn alarm(periods: u64, to_alarm: u64, missing: &str) -> Alarm {
        Alarm {
            name: "errors".into(),
            description: None,
            actions_enabled: true,
            ok_actions: vec![],
            alarm_actions: vec![],
            insufficient_data_actions: vec![],
            namespace: "Web".into(),
            metric_name: "Errors".into(),
            dimensions: vec![],
            unit: None,
            statistic: "Sum".into(),
            period: 60,
            evaluation_periods: periods,
            datapoints_to_alarm: to_alarm,
            threshold: 5.0,
            comparison: "GreaterThanThreshold".into(),
            treat_missing_data: missing.into(),
            state: "INSUFFICIENT_DATA".into(),
            state_reason: String::new(),
            state_reason_data: None,
            state_updated: 0.0,
            state_transitioned: 0.0,
            configuration_updated: 0.0,
        }
    }

    fn put(store: &MetricStore, at: u64, value: f64) {
        let key = SeriesKey::new("Web", "Errors", &[], "Count");
        store.record(at, &[(key, Stats::one(value))]);
    }

    #[test]
    fn m_of_n_breaching_periods_and_missing_data() {
        let store = MetricStore::in_memory(60, 86_400);
        let now = 1_800_000_000.0 + 30.0; // 30 s into a minute
        let minute = 1_800_000_000;
        // Three whole minutes back: 9, 1, 7 (the current minute's 100 is not looked at).
        put(&store, minute - 180, 9.0);
        put(&store, minute - 120, 1.0);
        put(&store, minute - 60, 4.0);
        put(&store, minute - 60 + 5, 3.0);
        put(&store, minute + 10, 100.0);
        let two_of_three = evaluate(&alarm(3, 2, "missing"), &store, now);
        assert_eq!(two_of_three.state, Some("ALARM"), "{}", two_of_three.reason);
        assert!(
            two_of_three
                .reason
                .starts_with("Threshold Crossed: 2 out of the last 3 datapoints"),
            "{}",
            two_of_three.reason
        );
        let data: serde_json::Value = serde_json::from_str(&two_of_three.data).unwrap();
        assert_eq!(data["recentDatapoints"], serde_json::json!([9.0, 1.0, 7.0]));
        assert_eq!(
            evaluate(&alarm(1, 1, "missing"), &store, now).state,
            Some("ALARM")
        );
        assert_eq!(
            evaluate(&alarm(2, 2, "missing"), &store, now).state,
            Some("OK")
        );
        // Five minutes on, nothing is left in the window.
        let later = now + 300.0;
        assert_eq!(
            evaluate(&alarm(2, 1, "missing"), &store, later).state,
            Some("INSUFFICIENT_DATA")
        );
        assert_eq!(evaluate(&alarm(2, 1, "ignore"), &store, later).state, None);
        assert_eq!(
            evaluate(&alarm(2, 1, "notBreaching"), &store, later).state,
            Some("OK")
        );
        assert_eq!(
            evaluate(&alarm(2, 1, "breaching"), &store, later).state,
            Some("ALARM")
        );
        // One datapoint and one missing period: breaching counts the gap.
        let partial = now + 120.0;
        assert_eq!(
            evaluate(&alarm(2, 2, "breaching"), &store, partial).state,
            Some("ALARM")
        );
        assert_eq!(
            evaluate(&alarm(2, 2, "missing"), &store, partial).state,
            Some("OK")
        );
    }
}
