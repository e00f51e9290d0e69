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
fn cloudwatch_metrics_through_boto3_and_the_aws_cli_in_every_wire_form() {
    if !(common::needs_python_clients() && common::needs_aws_cli()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A credential allowed CloudWatch and nothing of Kinesis: it may not make an alarm
    // that puts to a stream.
    let watcher = dir.path().join("AKIDWATCH.json");
    std::fs::write(
        &watcher,
        r#"{"Statement": [{"Effect": "Allow", "Action": "cloudwatch:*", "Resource": "*"}]}"#,
    )
    .unwrap();
    let policy = format!("AKIDWATCH={}", watcher.display());
    let mut args = CREDENTIAL.to_vec();
    args.extend(["--alarm-action-url", "http://127.0.0.1/alarms"]);
    args.extend(["--credential", "AKIDWATCH:secret4", "--policy", &policy]);
    let server = TestServer::start(&dir.path().join("data"), &args);
    run_suite(&server, "cloudwatch_suite.py");
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

/// Credentials with identity policies, written for the test: a reader, one that may not
/// delete, one allowed only from 10.0.0.0/8, an admin without a policy, and another account.
fn policy_server(dir: &std::path::Path) -> TestServer {
    let write = |name: &str, document: &str| {
        let path = dir.join(name);
        std::fs::write(&path, document).unwrap();
        format!("{}={}", name.trim_end_matches(".json"), path.display())
    };
    let reader = write(
        "AKIDREADER.json",
        r#"{"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["kinesis:Get*", "kinesis:Describe*", "kinesis:List*"], "Resource": "*"}]}"#,
    );
    let no_delete = write(
        "AKIDNODELETE.json",
        r#"{"Statement": [{"Effect": "Allow", "Action": "kinesis:*", "Resource": "*"},
                          {"Effect": "Deny", "Action": "kinesis:DeleteStream", "Resource": "*"}]}"#,
    );
    let lan = write(
        "AKIDLAN.json",
        r#"{"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*",
                          "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}}"#,
    );
    let fenced = write(
        "AKIDFENCED.json",
        r#"{"Statement": [{"Effect": "Allow", "Action": ["kinesis:*", "firehose:*"], "Resource": "*"},
                          {"Effect": "Deny", "Action": "kinesis:*", "Resource": "arn:aws:kinesis:*:*:stream/fenced-*"}]}"#,
    );
    let data = dir.join("data");
    let mut args = vec!["--allow-reset".to_owned()];
    for key in [
        "AKIDADMIN",
        "AKIDREADER",
        "AKIDNODELETE",
        "AKIDLAN",
        "AKIDFENCED",
    ] {
        args.extend(["--credential".to_owned(), format!("{key}:secret")]);
    }
    args.extend([
        "--credential".to_owned(),
        "AKIDPARTNER:secret:222222222222".to_owned(),
    ]);
    for policy in [reader, no_delete, lan, fenced] {
        args.extend(["--policy".to_owned(), policy]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    TestServer::start(&data, &args)
}

#[test]
fn iam_policies_allow_deny_and_grant_across_accounts() {
    if !common::needs_python_clients() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = policy_server(dir.path());
    run_suite(&server, "policy_suite.py");
}

#[test]
fn the_kms_api_makes_keys_that_stream_encryption_takes() {
    if !(common::needs_python_clients() && common::needs_aws_cli()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), CREDENTIAL);
    run_suite(&server, "kms_suite.py");
}

#[test]
fn boto3_firehose_delivers_direct_puts_and_kinesis_streams_to_bucket_directories() {
    if !common::needs_python_clients() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let buckets = dir.path().join("buckets");
    let server = TestServer::start(
        &dir.path().join("data"),
        &[
            CREDENTIAL,
            &["--firehose-bucket-dir", buckets.to_str().unwrap()],
        ]
        .concat(),
    );
    common::run_suite_with(
        &server.endpoint(),
        "firehose_suite.py",
        &[buckets.to_str().unwrap()],
    );
}

#[test]
fn boto3_firehose_encrypts_delivery_streams_with_kms_keys() {
    if !common::needs_python_clients() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (buckets, data) = (dir.path().join("buckets"), dir.path().join("data"));
    let server = TestServer::start(
        &data,
        &[
            CREDENTIAL,
            &["--firehose-bucket-dir", buckets.to_str().unwrap()],
        ]
        .concat(),
    );
    common::run_suite_with(
        &server.endpoint(),
        "firehose_encryption_suite.py",
        &[buckets.to_str().unwrap(), data.to_str().unwrap()],
    );
}

#[test]
fn every_operation_meets_the_authentication_and_authorization_matrix() {
    if !(common::needs_python_clients() && common::needs_aws_cli()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = policy_server(dir.path());
    run_suite(&server, "auth_matrix_suite.py");
}
