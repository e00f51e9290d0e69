//! What test suites use a server for: `--ephemeral` (nothing left behind after Ctrl-C or
//! SIGTERM), `POST /_sluice/reset` (refused unless allowed), and configuration through
//! `SLUICE_*` environment variables.

mod common;

use common::TestServer;
use serde_json::{Value, json};
use sluice_loadgen::client::KinesisClient;
use std::path::Path;
use std::process::Command;

/// `sluice serve --ephemeral` on port 0 with its temporary directories under `tmp`.
fn ephemeral(tmp: &Path, extra: &[&str]) -> TestServer {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    command
        .env("TMPDIR", tmp)
        .args(["serve", "--ephemeral", "--listen", "127.0.0.1:0"])
        .args(["--print-address", "--cores", "1", "--segment-mib", "4"])
        .args(extra);
    TestServer::spawn(command, Path::new(""))
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

async fn create_and_put(server: &TestServer, name: &str) {
    let mut client = KinesisClient::connect(server.address).await.unwrap();
    let _: Value = client
        .call(
            "CreateStream",
            &json!({"StreamName": name, "ShardCount": 2}),
        )
        .await
        .unwrap();
    let _: Value = client
        .call(
            "PutRecord",
            &json!({"StreamName": name, "PartitionKey": "k", "Data": "aGVsbG8="}),
        )
        .await
        .unwrap();
}

async fn stream_names(server: &TestServer) -> Value {
    let mut client = KinesisClient::connect(server.address).await.unwrap();
    let listed: Value = client.call("ListStreams", &json!({})).await.unwrap();
    listed["StreamNames"].clone()
}

async fn ephemeral_data_goes_when_stopped_by(signal: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let server = ephemeral(tmp.path(), &[]);
    create_and_put(&server, "orders").await;
    let held = entries(tmp.path());
    assert_eq!(held.len(), 1, "one data directory: {held:?}");
    assert!(held[0].starts_with("sluice-ephemeral-"), "{held:?}");
    let status = server.stop(signal);
    assert!(status.success(), "SIG{signal} is a clean stop: {status}");
    assert_eq!(entries(tmp.path()), Vec::<String>::new(), "left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemeral_data_is_removed_when_stopped_by_sigterm() {
    ephemeral_data_goes_when_stopped_by("TERM").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemeral_data_is_removed_when_stopped_by_ctrl_c() {
    ephemeral_data_goes_when_stopped_by("INT").await;
}

#[test]
fn ephemeral_and_a_data_directory_are_refused_together() {
    let output = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["serve", "--ephemeral", "--dir", "somewhere"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot be used with"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ephemeral_server_resets_to_no_streams_and_keeps_serving() {
    let tmp = tempfile::tempdir().unwrap();
    let server = ephemeral(tmp.path(), &[]);
    create_and_put(&server, "orders").await;
    create_and_put(&server, "payments").await;
    let (status, body) = common::post(server.address, "/_sluice/reset");
    assert_eq!(status, 200, "{body}");
    let report: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report, json!({"StreamsDeleted": 2, "Tenants": 1}));
    assert_eq!(stream_names(&server).await, json!([]));
    // The same name again: a new, empty stream.
    create_and_put(&server, "orders").await;
    assert_eq!(stream_names(&server).await, json!(["orders"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_is_refused_without_ephemeral_or_allow_reset() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), &[]);
    create_and_put(&server, "kept").await;
    let (status, body) = common::post(server.address, "/_sluice/reset");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("--allow-reset"), "{body}");
    assert_eq!(stream_names(&server).await, json!(["kept"]));
    drop(server);
    let allowed = TestServer::start(dir.path(), &["--allow-reset"]);
    let (status, body) = common::post(allowed.address, "/_sluice/reset");
    assert_eq!(status, 200, "{body}");
    assert_eq!(stream_names(&allowed).await, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_variables_configure_serve() {
    let tmp = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    command
        .arg("serve")
        .env("TMPDIR", tmp.path())
        .env("SLUICE_LISTEN", "127.0.0.1:0")
        .env("SLUICE_PRINT_ADDRESS", "1")
        .env("SLUICE_EPHEMERAL", "true")
        .env("SLUICE_CORES", "1")
        .env("SLUICE_ACCOUNT", "123456789012")
        .env("SLUICE_REGION", "eu-west-1");
    let server = TestServer::spawn(command, Path::new(""));
    create_and_put(&server, "configured").await;
    let mut client = KinesisClient::connect(server.address).await.unwrap();
    let summary: Value = client
        .call(
            "DescribeStreamSummary",
            &json!({"StreamName": "configured"}),
        )
        .await
        .unwrap();
    assert_eq!(
        summary["StreamDescriptionSummary"]["StreamARN"],
        "arn:aws:kinesis:eu-west-1:123456789012:stream/configured"
    );
    assert_eq!(entries(tmp.path()).len(), 1, "SLUICE_EPHEMERAL took effect");
}

#[test]
fn every_serve_option_has_an_environment_variable_in_its_help() {
    let output = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(output.stdout).unwrap();
    // An option's block: its `--name` line and the lines under it, up to the next option.
    let mut options: Vec<String> = Vec::new();
    for line in help.lines() {
        let line = line.trim_start();
        if line.starts_with("--") || line.starts_with("-h, --") {
            options.push(String::new());
        }
        if let Some(option) = options.last_mut() {
            option.push_str(line);
            option.push('\n');
        }
    }
    options.retain(|o| !o.starts_with("-h, --help"));
    assert!(options.len() >= 20, "options in:\n{help}");
    for option in options {
        let name = option.split([' ', '\n']).next().unwrap();
        let variable = format!(
            "[env: SLUICE_{}=",
            name.trim_start_matches("--")
                .to_uppercase()
                .replace('-', "_")
        );
        // Repeatable options take a comma-separated list in a plural variable.
        let variable = variable
            .replace("SLUICE_CREDENTIAL=", "SLUICE_CREDENTIALS=")
            .replace("SLUICE_EXTRA_REGION=", "SLUICE_EXTRA_REGIONS=")
            .replace("SLUICE_POLICY=", "SLUICE_POLICIES=")
            .replace("SLUICE_ALARM_ACTION_URL=", "SLUICE_ALARM_ACTION_URLS=");
        assert!(
            option.contains(&variable),
            "{name} lacks {variable}:\n{option}"
        );
    }
}
