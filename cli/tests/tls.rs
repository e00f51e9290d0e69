//! TLS: a certificate made for the test (openssl, CN and SAN 127.0.0.1), the server started
//! with it, boto3 and curl (HTTP/2 by ALPN) trusting it, and a client that does not.

mod common;

use common::{TestServer, run_suite_with};
use std::process::Command;

#[test]
fn https_with_http2_by_alpn_serves_sdks_and_subscriptions() {
    if !(common::needs_openssl() && common::needs_python_clients() && common::needs_curl()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .args(["-addext", "subjectAltName=IP:127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("running openssl");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let data = dir.path().join("data");
    let server = TestServer::start(
        &data,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--first-request-timeout-ms",
            "1000",
        ],
    );
    run_suite_with(
        &server.tls_endpoint(),
        "tls_suite.py",
        &[cert.to_str().unwrap()],
    );
}
