//! The server against real clients: boto3 over every operation, the AWS CLI, and the raw
//! wire (CBOR for every operation, event streams, h2c, malformed input). Each suite gets its
//! own server and data directory.

mod common;

use common::{TestServer, run_suite};

#[test]
fn boto3_drives_every_operation_and_sees_kinesis_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), &[]);
    run_suite(&server, "boto3_suite.py");
}

#[test]
fn the_aws_cli_works_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), &[]);
    run_suite(&server, "aws_cli_suite.py");
}

#[test]
fn cbor_event_streams_h2c_and_malformed_input_on_the_wire() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), &[]);
    run_suite(&server, "wire_suite.py");
}
