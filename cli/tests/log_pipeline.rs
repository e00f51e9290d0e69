//! The log pipeline example end to end (examples/log-pipeline): real nginx under load with a
//! burst of server errors, `sluice agent` tailing its access log, an analytics application
//! counting and scoring windows, Firehose writing Parquet to moto's S3 server, an alarm on
//! the server errors. The example's `--check` verifies every access-log line in the stream,
//! the window counts against a batch recount, the burst's windows scored highest, the
//! Parquet rows (read by pyarrow), the alarm going to ALARM and back to OK, and the usage.

mod common;

use std::path::Path;
use std::process::Command;

#[test]
fn web_server_logs_to_windows_anomalies_parquet_and_an_alarm() {
    let nginx =
        Path::new("/usr/sbin/nginx").exists() || Command::new("nginx").arg("-v").output().is_ok();
    let libraries = Command::new("python3")
        .args(["-c", "import boto3, moto.server, pyarrow"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !common::needs_python_clients()
        || !common::needs(
            nginx,
            "nginx",
            "run scripts/setup (it installs Debian's nginx-light)",
        )
        || !common::needs(
            libraries,
            "python3 with boto3, moto's server and pyarrow",
            "run scripts/setup",
        )
    {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let output = Command::new("python3")
        .arg(root.join("examples/log-pipeline/pipeline.py"))
        .args(["--check", "--sluice", env!("CARGO_BIN_EXE_sluice")])
        .output()
        .expect("running the example");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{text}");
    assert!(output.status.success(), "the example failed:\n{text}");
    assert!(text.contains("every check passed"), "{text}");
}
