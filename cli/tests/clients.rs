//! The server against real clients: boto3 over every operation, the AWS CLI, and the raw
//! wire (CBOR for every operation, event streams, h2c, malformed input), and SigV4. Each
//! suite gets its own server and data directory. boto3 runs against a server that verifies
//! signatures, so every operation's signing is checked along the way.

mod common;

use common::{TestServer, run_suite};

/// The credential the client suites sign with.
const CREDENTIAL: &[&str] = &[
    "--credential",
    "AKIDEXAMPLE:secret",
    "--credential",
    "AKIDOTHER:secret2:111111111111",
    "--credential",
    "AKIDTEMP:secret3::token-of-the-session",
];

#[test]
fn boto3_drives_every_operation_and_sees_kinesis_errors() {
    if !common::needs_python_clients() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), CREDENTIAL);
    run_suite(&server, "boto3_suite.py");
}

#[test]
fn sigv4_signatures_are_verified_in_header_and_presigned_forms() {
    if !common::needs_python_clients() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), CREDENTIAL);
    run_suite(&server, "auth_suite.py");
}

#[test]
fn the_aws_cli_works_unchanged() {
    if !(common::needs_python_clients() && common::needs_aws_cli()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), &[]);
    run_suite(&server, "aws_cli_suite.py");
}

#[test]
fn cbor_event_streams_h2c_and_malformed_input_on_the_wire() {
    if !(common::needs_python_clients() && common::needs_curl()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), &[]);
    run_suite(&server, "wire_suite.py");
}
