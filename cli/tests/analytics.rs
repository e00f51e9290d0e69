//! Kinesis Data Analytics through `sluice serve` (the `analytics` feature; CI runs it in a
//! step of its own): boto3's `kinesisanalytics` client discovers a schema, creates, starts,
//! updates, stops and deletes applications from the AWS documentation's examples, and the
//! `kinesis` client reads their output (cli/tests/clients/analytics_suite.py).

mod common;

use common::TestServer;

#[test]
fn boto3_runs_the_documentations_sql_applications() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("data"), &[]);
    common::run_suite_with(&server.endpoint(), "analytics_suite.py", &[]);
}
