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

/// Starts the endpoint, logging to `log`, over TLS with `tls` (certificate, key); its URL.
fn start_endpoint(log: &Path, tls: Option<(&Path, &Path)>) -> (HttpEndpoint, String) {
    let clients = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients");
    let mut command = Command::new("python3");
    command.arg(clients.join("http_endpoint.py")).arg(log);
    if let Some((cert, key)) = tls {
        command.arg(cert).arg(key);
    }
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting the HTTP endpoint");
    let mut port = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut port)
        .unwrap();
    let scheme = if tls.is_some() { "https" } else { "http" };
    (
        HttpEndpoint(child),
        format!("{scheme}://127.0.0.1:{}", port.trim()),
    )
}

#[test]
fn records_reach_an_http_endpoint_and_what_it_refuses_lands_in_the_backup_bucket() {
    if !(common::needs_python_clients() && common::needs_openssl()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("requests.jsonl");
    let (_endpoint, target) = start_endpoint(&log, None);
    // The same endpoint over TLS, its certificate signed by a CA only SSL_CERT_FILE trusts.
    common::certificates(dir.path());
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let (_tls_endpoint, tls_target) = start_endpoint(&log, Some((&cert, &key)));
    let buckets = dir.path().join("buckets");
    let data = dir.path().join("data");
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--print-address"])
        .args(["--cores", "1", "--segment-mib", "4", "--dir"])
        .arg(&data)
        .arg("--firehose-bucket-dir")
        .arg(&buckets)
        .args(["--firehose-http-timeout", "2"])
        .env("SSL_CERT_FILE", dir.path().join("ca.pem"));
    let server = TestServer::spawn(command, &data);
    common::run_suite_with(
        &server.endpoint(),
        "firehose_http_suite.py",
        &[
            buckets.to_str().unwrap(),
            &target,
            log.to_str().unwrap(),
            &tls_target,
        ],
    );
}
