//! `sluice serve` where io_uring is refused, as in a container under Docker's default seccomp
//! profile: a filter (cli/tests/tools/deny_io_uring.py) makes io_uring_setup fail with EPERM,
//! and the server must exit saying why and how to fix it (without the check it hung for ever).

use sluice_storage::testing::{needs, runs};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long the server may take to give up before the test calls it a hang. Not a timing
/// assertion: without the start-up check the server hangs for ever (the engine waits on
/// cores whose io_uring failed), and the test must fail rather than wait with it.
const HANG_GUARD: Duration = Duration::from_secs(120);

#[test]
fn a_refused_io_uring_exits_naming_the_seccomp_fix_instead_of_hanging() {
    if !needs(
        runs("python3", &["--version"]),
        "python3",
        "run scripts/setup as root (it installs python3 with apt-get), or install python3",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let output = run_with_io_uring_refused(&["serve", "--listen", "127.0.0.1:0", "--dir", data]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "an error exit:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains("io_uring_setup failed here (Operation not permitted"),
        "{stderr}"
    );
    assert!(stderr.contains("under a seccomp filter"), "{stderr}");
    assert!(
        stderr.contains("--security-opt seccomp=unconfined"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("data").exists(),
        "checked before anything is created"
    );
}

/// The engine itself, opened by a command without `serve`'s probe (`sluice inspect`), or by a
/// program embedding it: a core whose io_uring is refused is an error naming the cause. The
/// engine used to open with dead cores: the first call that needed one waited for ever (a
/// server hung at start-up reopening its shards; `sluice inspect` of an empty directory only
/// failed at its close, without a cause).
#[test]
fn an_engine_whose_cores_cannot_start_says_so_instead_of_hanging() {
    if !needs(
        runs("python3", &["--version"]),
        "python3",
        "run scripts/setup as root (it installs python3 with apt-get), or install python3",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let output = run_with_io_uring_refused(&["inspect", "--dir", dir.path().to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("core 0 could not start"), "{stderr}");
    assert!(stderr.contains("seccomp"), "{stderr}");
}

/// Runs `sluice args` under the filter that refuses io_uring (cli/tests/tools/deny_io_uring.py)
/// and returns how it ended; a run past `HANG_GUARD` is killed and fails the test as a hang.
fn run_with_io_uring_refused(args: &[&str]) -> std::process::Output {
    let filter = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/deny_io_uring.py");
    let mut child = Command::new("python3")
        .arg(filter)
        .arg(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > HANG_GUARD {
            child.kill().unwrap();
            let output = child.wait_with_output().unwrap();
            panic!(
                "sluice {args:?} hung where io_uring is refused:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}
