//! Usage metering end to end: boto3 puts a known workload through `sluice serve`, `sluice
//! usage` reports its bill (and `/metrics` its totals); after a restart the bill is still
//! there, read from the usage log.

mod common;

use common::{TestServer, run_suite_in_env};
use std::process::Command;

#[test]
fn a_known_workload_is_billed_and_the_bill_survives_a_restart() {
    if !common::needs_python_clients() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = TestServer::start(&data, &[]);
    let endpoint = server.endpoint();
    let bin = env!("CARGO_BIN_EXE_sluice");
    let tmp = dir.path().to_str().unwrap();
    run_suite_in_env(
        &endpoint,
        "usage_suite.py",
        &[],
        &[("SLUICE_BIN", bin), ("TMPDIR_FOR_TEST", tmp)],
    );
    // A clean stop writes the meter's last changes; the restarted server reads them back.
    assert!(server.stop("TERM").success());
    let server = TestServer::start(&data, &[]);
    let output = Command::new(bin)
        .args(["usage", "--json", "--endpoint", &server.endpoint()])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let units: f64 = report["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["usage_type"] == "Kinesis:PutRequestPayloadUnits")
        .map(|l| l["quantity"].as_f64().unwrap())
        .sum();
    assert_eq!(units, 2000.0, "{report}");
    // An unreachable server is said to be one.
    drop(server);
    let output = Command::new(bin)
        .args(["usage", "--endpoint", "http://127.0.0.1:1"])
        .output()
        .unwrap();
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && error.contains("is sluice serve running?"),
        "{error}"
    );
}
