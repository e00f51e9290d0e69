//! Kinesis Data Analytics through `sluice serve` (the `analytics` feature; CI runs it in a
//! step of its own): boto3's `kinesisanalytics` client discovers a schema, creates, starts,
//! updates, stops and deletes applications from the AWS documentation's examples, and the
//! `kinesis` client reads their output; IAM-style policies cover the applications and the
//! streams they read (cli/tests/clients/analytics_suite.py). Reference data is read from
//! the bucket directory, where the suite writes its objects.

mod common;

use common::TestServer;

/// `/metrics` on a server that verifies signatures needs a bearer token.
const METRICS_TOKEN: &str = "analytics-metrics-token";

#[test]
fn boto3_runs_the_documentations_sql_applications() {
    let dir = tempfile::tempdir().unwrap();
    // AKIDAPPS may do anything but read the fenced-* streams and tag the guarded-*
    // applications; AKIDEXAMPLE has no policy.
    let policy = dir.path().join("AKIDAPPS.json");
    std::fs::write(
        &policy,
        r#"{"Statement": [
            {"Effect": "Allow", "Action": ["kinesis:*", "kinesisanalytics:*", "s3:GetObject"], "Resource": "*"},
            {"Effect": "Deny", "Action": "kinesis:GetRecords", "Resource": "arn:aws:kinesis:*:*:stream/fenced-*"},
            {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::fenced-*"},
            {"Effect": "Deny", "Action": "kinesisanalytics:TagResource",
             "Resource": "arn:aws:kinesisanalytics:*:*:application/guarded-*"}]}"#,
    )
    .unwrap();
    let policy = format!("AKIDAPPS={}", policy.display());
    let buckets = dir.path().join("buckets");
    let server = TestServer::start(
        &dir.path().join("data"),
        &[
            "--credential",
            "AKIDEXAMPLE:secret",
            "--credential",
            "AKIDAPPS:secret",
            "--policy",
            &policy,
            "--metrics-token",
            METRICS_TOKEN,
            "--firehose-bucket-dir",
            buckets.to_str().unwrap(),
        ],
    );
    common::run_suite_with(
        &server.endpoint(),
        "analytics_suite.py",
        &[METRICS_TOKEN, buckets.to_str().unwrap()],
    );
}
