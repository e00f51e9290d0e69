//! CloudWatch requests in each wire form (Smithy RPC v2 CBOR, JSON 1.0, the query protocol):
//! the first byte picks the form, the second the operation, the rest is the body. Each is
//! decoded and run on an in-memory store and a scratch alarm list, and its reply encoded,
//! as the server does. Never a panic, never a stack overflow, whatever the body nests.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_server::cloudwatch::alarms::{self, Alarms};
use sluice_server::cloudwatch::evaluate::evaluate_all;
use sluice_server::cloudwatch::metrics;
use sluice_server::cloudwatch::store::{MetricStore, now_s};
use sluice_server::cloudwatch::{Form, OPERATIONS, Out};
use std::sync::OnceLock;

fn alarms() -> &'static Alarms {
    static ALARMS: OnceLock<(tempfile::TempDir, Alarms)> = OnceLock::new();
    &ALARMS
        .get_or_init(|| {
            let dir = tempfile::tempdir().expect("a scratch directory");
            let alarms = Alarms::open(dir.path()).expect("alarms");
            (dir, alarms)
        })
        .1
}

fn run(
    store: &MetricStore,
    form: Form,
    operation: &str,
    body: &[u8],
) -> Result<Out, sluice_server::wire::ApiError> {
    let alarms = alarms();
    let urls = ["http://127.0.0.1/".to_owned()];
    let scope = ("000000000000", "us-east-1", &urls[..]);
    match operation {
        "PutMetricData" => metrics::put_metric_data(store, form.decode(body)?),
        "GetMetricStatistics" => metrics::get_metric_statistics(store, form.decode(body)?),
        "GetMetricData" => metrics::get_metric_data(store, form.decode(body)?),
        "ListMetrics" => metrics::list_metrics(store, form.decode(body)?),
        "PutMetricAlarm" => alarms::put_metric_alarm(alarms, scope, form.decode(body)?),
        "DescribeAlarms" => alarms::describe_alarms(alarms, (scope.0, scope.1), form.decode(body)?),
        "DeleteAlarms" => alarms::delete_alarms(alarms, form.decode(body)?),
        _ => alarms::set_alarm_state(alarms, form.decode(body)?).map(|_| Out::Struct(vec![])),
    }
}

fuzz_target!(|data: &[u8]| {
    let [form, operation, body @ ..] = data else {
        return;
    };
    let form = [Form::Cbor, Form::Json, Form::Query][usize::from(*form) % 3];
    let operation = OPERATIONS[usize::from(*operation) % OPERATIONS.len()];
    let store = MetricStore::in_memory(60, 86_400);
    if let Ok(out) = run(&store, form, operation, body) {
        let _ = form.encode(operation, &out, "request-id");
    }
    if let Err(error) = run(&store, form, operation, body) {
        let _ = form.error(&error, "request-id");
    }
    let _ = evaluate_all(alarms(), &store, now_s() as f64);
    // Each alarm change rewrites (and syncs) the whole list: kept short, so runs stay fast.
    if alarms().all().len() > 16 {
        let _ = alarms().update(|all| {
            all.clear();
            Ok(())
        });
    }
});
