//! Who may use the server's own endpoints. `/metrics` names every tenant's streams and
//! their traffic: anyone may read it on a server without authentication; on a server that
//! verifies signatures, only a client with the metrics token, or anyone who reaches the
//! separate metrics listener. `POST /_sluice/reset` on a server that verifies signatures
//! needs a signature too.

mod common;

use common::{TestServer, request};

const CREDENTIAL: &[&str] = &["--credential", "AKIDEXAMPLE:secret"];
const TOKEN: &str = "a-long-metrics-token";

fn metrics(server: &TestServer, headers: &[(&str, &str)]) -> (u16, String) {
    request(server.address, "GET", "/metrics", headers)
}

#[test]
fn a_server_without_authentication_serves_metrics_to_anyone() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), &[]);
    // Metrics render once something was recorded; a health check records nothing, so
    // only the status is checked here.
    assert_eq!(metrics(&server, &[]).0, 200);
}

#[test]
fn a_signed_server_serves_metrics_only_with_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(
        dir.path(),
        &[CREDENTIAL, &["--metrics-token", TOKEN]].concat(),
    );
    let (status, body) = metrics(&server, &[]);
    assert_eq!(status, 401, "{body}");
    let wrong = metrics(&server, &[("Authorization", "Bearer not-the-token-at-all")]);
    assert_eq!(wrong.0, 401, "{}", wrong.1);
    let bearer = format!("Bearer {TOKEN}");
    let (status, body) = metrics(&server, &[("Authorization", &bearer)]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(request(server.address, "GET", "/health", &[]).0, 200);
}

#[test]
fn a_signed_server_without_a_token_keeps_metrics_off_its_kinesis_listener() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), CREDENTIAL);
    let (status, body) = metrics(&server, &[]);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("--metrics-token"), "{body}");
}

#[test]
fn the_metrics_listener_serves_metrics_and_the_kinesis_listener_does_not() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let metrics_address = free.local_addr().unwrap();
    drop(free);
    let dir = tempfile::tempdir().unwrap();
    let listen = metrics_address.to_string();
    let server = TestServer::start(
        dir.path(),
        &[CREDENTIAL, &["--metrics-listen", &listen]].concat(),
    );
    assert_eq!(metrics(&server, &[]).0, 404);
    let (status, body) = request(metrics_address, "GET", "/metrics", &[]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(request(metrics_address, "POST", "/", &[]).0, 404);
}

#[test]
fn a_signed_server_resets_only_for_a_signed_request() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), &[CREDENTIAL, &["--allow-reset"]].concat());
    let (status, body) = request(server.address, "POST", "/_sluice/reset", &[]);
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("MissingAuthenticationTokenException"),
        "{body}"
    );
}

#[test]
fn a_policy_that_cannot_be_applied_stops_the_server_at_start_saying_why() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.json");
    std::fs::write(&policy, r#"{"Statement": {"Effect": "Allow", "Action": "*", "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/99"}}}}"#).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["serve", "--listen", "127.0.0.1:0", "--dir"])
        .arg(dir.path().join("data"))
        .args(["--credential", "AKIDEXAMPLE:secret", "--policy"])
        .arg(format!("AKIDEXAMPLE={}", policy.display()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("the policy of AKIDEXAMPLE") && stderr.contains("10.0.0.0/99"),
        "{stderr}"
    );
    let unknown = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["serve", "--listen", "127.0.0.1:0", "--dir"])
        .arg(dir.path().join("data"))
        .args(["--credential", "AKIDEXAMPLE:secret", "--policy"])
        .arg(format!("AKIDOTHER={}", policy.display()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(stderr.contains("which no --credential has"), "{stderr}");
}

#[test]
fn the_data_directory_is_the_server_user_s_alone() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let _server = TestServer::start(&data, &[]);
    let mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "{mode:o}");
}
