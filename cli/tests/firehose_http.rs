//! Firehose's HTTP endpoint destination through `sluice serve`: a local endpoint
//! (cli/tests/clients/http_endpoint.py) takes the requests, boto3 is the client
//! (cli/tests/clients/firehose_http_suite.py).

mod common;

use common::TestServer;
use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};

/// The endpoint, stopped when dropped.
struct HttpEndpoint(std::process::Child);

impl Drop for HttpEndpoint {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn records_reach_an_http_endpoint_and_what_it_refuses_lands_in_the_backup_bucket() {
    if !common::needs_python_clients() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("requests.jsonl");
    let clients = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients");
    let mut child = Command::new("python3")
        .arg(clients.join("http_endpoint.py"))
        .arg(&log)
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting the HTTP endpoint");
    let mut port = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut port)
        .unwrap();
    let _endpoint = HttpEndpoint(child);
    let target = format!("http://127.0.0.1:{}", port.trim());
    let buckets = dir.path().join("buckets");
    let server = TestServer::start(
        &dir.path().join("data"),
        &[
            "--firehose-bucket-dir",
            buckets.to_str().unwrap(),
            "--firehose-http-timeout",
            "2",
        ],
    );
    common::run_suite_with(
        &server.endpoint(),
        "firehose_http_suite.py",
        &[buckets.to_str().unwrap(), &target, log.to_str().unwrap()],
    );
}
