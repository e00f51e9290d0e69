//! IAM-style policy evaluation, per request (the security issue's target: under 1 µs for a
//! 20-statement policy). The policy mixes what users write: action and resource wildcards,
//! NotAction, an explicit Deny, IP and transport conditions; the request is allowed by the
//! last statement, so every statement is looked at. The target is absolute (a request's
//! budget), so there is no baseline.

use criterion::Criterion;
use sluice_benches::{criterion_config, mean_iteration_secs};
use sluice_server::iam::{Decision, Policy, Principal, Request, decide};
use std::time::{Duration, SystemTime};

/// Twenty statements, the one that allows the request last.
fn policy() -> Policy {
    let mut statements: Vec<String> = (0..18)
        .map(|i| {
            format!(
                r#"{{"Sid": "s{i}", "Effect": "Allow", "Action": ["kinesis:Describe*", "kinesis:List*"],
                    "Resource": "arn:aws:kinesis:us-east-1:000000000000:stream/team-{i}-*",
                    "Condition": {{"IpAddress": {{"aws:SourceIp": ["10.{i}.0.0/16", "192.168.{i}.0/24"]}}}}}}"#
            )
        })
        .collect();
    statements.push(
        r#"{"Sid": "no-deletes", "Effect": "Deny", "Action": "kinesis:Delete*", "Resource": "*",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}}"#
            .into(),
    );
    statements.push(
        r#"{"Sid": "writers", "Effect": "Allow", "NotAction": ["kinesis:Delete*", "kinesis:Update*"],
            "Resource": ["arn:aws:kinesis:*:000000000000:stream/orders-*", "arn:aws:kinesis:*:000000000000:stream/orders-*/consumer/*"]}"#
            .into(),
    );
    let document = format!(
        r#"{{"Version": "2012-10-17", "Statement": [{}]}}"#,
        statements.join(",")
    );
    Policy::parse(&document).expect("the bench's policy parses")
}

fn main() {
    sluice_benches::mark_run_start();
    let policy = policy();
    let principal = Principal {
        account: "000000000000".into(),
        user: "AKIDEXAMPLE".into(),
    };
    let request = Request {
        action: "kinesis:PutRecords",
        resource: "arn:aws:kinesis:us-east-1:000000000000:stream/orders-eu",
        principal: &principal,
        source_ip: Some("172.16.5.4".parse().unwrap()),
        secure_transport: true,
        now: SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_446_327),
        region: "us-east-1",
    };
    assert!(matches!(
        decide(Some(&policy), None, "000000000000", &request),
        Decision::Allow
    ));
    let mut criterion: Criterion = criterion_config();
    let mut group = criterion.benchmark_group("policy");
    group.bench_function("decide_20_statements", |b| {
        b.iter(|| {
            decide(
                Some(&policy),
                None,
                "000000000000",
                std::hint::black_box(&request),
            )
        })
    });
    group.finish();
    criterion.final_summary();
    if let Some(secs) = mean_iteration_secs("policy", "decide_20_statements") {
        let ns = secs * 1e9;
        let verdict = if ns < 1000.0 { "meets" } else { "BELOW" };
        println!(
            "\npolicy evaluation, 20 statements: {ns:.0} ns per request ({verdict} target: under 1 µs)"
        );
    }
}
