//! Firehose's Lambda processor through `sluice serve --firehose-lambda-endpoint`: a Lambda
//! emulator (cli/tests/clients/lambda_emulator.py) is the function, boto3 the client
//! (cli/tests/clients/firehose_lambda_suite.py).

mod common;

use common::TestServer;
use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};

/// The emulator, stopped when dropped.
struct Emulator(std::process::Child);

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_lambda_transform_changes_drops_and_fails_records_as_it_answers() {
    if !common::needs_python_clients() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("invocations.jsonl");
    let clients = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients");
    let mut child = Command::new("python3")
        .arg(clients.join("lambda_emulator.py"))
        .arg(&log)
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting the Lambda emulator");
    let mut port = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut port)
        .unwrap();
    let _emulator = Emulator(child);
    let endpoint = format!("http://127.0.0.1:{}", port.trim());
    let buckets = dir.path().join("buckets");
    let server = TestServer::start(
        &dir.path().join("data"),
        &[
            "--firehose-bucket-dir",
            buckets.to_str().unwrap(),
            "--firehose-lambda-endpoint",
            &endpoint,
        ],
    );
    common::run_suite_with(
        &server.endpoint(),
        "firehose_lambda_suite.py",
        &[buckets.to_str().unwrap(), log.to_str().unwrap()],
    );
}
