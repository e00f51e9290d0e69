//! The README's "On a fresh machine" path in a clean clone of this repository's HEAD:
//! `scripts/serve` run from another directory, the README's AWS CLI commands as written, and
//! the server's own start-up hint pasted as printed.
//!
//! It runs the clone's scripts with `SLUICE_BIN` set to the binary this test run built, so the
//! clone does not compile the workspace again (a release build, minutes here; the build itself
//! is what CI's clean-clone run covers). The server listens on port 0, not the README's 4567,
//! which other work on the same machine may hold; the commands get its address instead.

mod common;

use sluice_storage::testing::{needs, runs};
use std::io::{BufRead, BufReader, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Attempts at `/health` before giving up (the listener is bound once the address is printed,
/// so the first normally answers).
const HEALTH_ATTEMPTS_MAX: u32 = 100;

/// The server started through the clone's script: killed if the test fails before it stops
/// it (a `Child` is not killed on drop).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if self.0.try_wait().is_ok_and(|status| status.is_none()) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A clone of the repository at this checkout's HEAD, in `dir`.
fn clone_head(dir: &Path) -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let git = |args: &[&str], cwd: &Path| {
        let output = Command::new("git")
            .args(args)
            .current_dir(cwd)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        assert!(
            output.status.success(),
            "git {args:?}: {text}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        text
    };
    let head = git(&["rev-parse", "HEAD"], &repo);
    let clone = dir.join("sluice");
    let source = repo.canonicalize().unwrap();
    git(
        &[
            "clone",
            "--quiet",
            "--no-checkout",
            source.to_str().unwrap(),
            "sluice",
        ],
        dir,
    );
    git(&["checkout", "--quiet", &head], &clone);
    clone
}

/// A command with no AWS settings from this machine: what the README says must be enough.
fn scrubbed(program: &str, home: &Path) -> Command {
    let mut command = Command::new(program);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("AWS_") {
            command.env_remove(name);
        }
    }
    command.env("HOME", home);
    command
}

/// The README's first shell block with AWS CLI commands.
fn readme_aws_commands(readme: &str) -> String {
    readme
        .split("```sh\n")
        .skip(1)
        .filter_map(|block| block.split_once("```").map(|(b, _)| b))
        .find(|block| block.contains("aws kinesis "))
        .expect("README.md has a ```sh block of aws kinesis commands")
        .to_owned()
}

/// The README's first block that opens with `fence`.
fn readme_block(readme: &str, fence: &str) -> String {
    readme
        .split(fence)
        .nth(1)
        .and_then(|block| block.split_once("```").map(|(b, _)| b.to_owned()))
        .unwrap_or_else(|| panic!("README.md has a {fence:?} block"))
}

/// Runs `script` with bash (`-e`: every command must succeed); its stdout.
fn bash(script: &str, home: &Path) -> String {
    let output = scrubbed("bash", home)
        .args(["-euo", "pipefail", "-c", script])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "failed:\n{script}\n{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn healthy(address: &str) -> bool {
    let Ok(mut stream) = std::net::TcpStream::connect(address) else {
        return false;
    };
    let request = format!("GET /health HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    let mut reply = String::new();
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_to_string(&mut reply).is_ok()
        && reply.starts_with("HTTP/1.1 200")
}

/// The "try:" line of the server's start-up output, once written.
fn hint(log: &Path, child: &mut Child) -> String {
    loop {
        let text = std::fs::read_to_string(log).unwrap();
        if let Some(line) = text.lines().find_map(|l| l.trim().strip_prefix("try: ")) {
            return line.to_owned();
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the server stopped:\n{text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn the_readme_fresh_machine_path_works_in_a_clean_clone() {
    if !needs(runs("git", &["--version"]), "git", "install git")
        || !common::needs_aws_cli()
        || !common::needs_python_clients()
    {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let clone = clone_head(tmp.path());
    let (work, home) = (tmp.path().join("work"), tmp.path().join("home"));
    std::fs::create_dir_all(&work).unwrap();
    std::fs::create_dir_all(&home).unwrap();
    let log = tmp.path().join("serve.log");
    let mut server = Running(
        scrubbed(clone.join("scripts/serve").to_str().unwrap(), &home)
            .args(["--listen", "127.0.0.1:0", "--print-address", "--cores", "1"])
            .env("SLUICE_BIN", env!("CARGO_BIN_EXE_sluice"))
            .current_dir(&work)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let mut address = String::new();
    BufReader::new(server.0.stdout.take().unwrap())
        .read_line(&mut address)
        .unwrap();
    let address = address.trim().to_owned();
    assert!(
        !address.is_empty(),
        "no address:\n{}",
        std::fs::read_to_string(&log).unwrap()
    );
    assert!(
        (0..HEALTH_ATTEMPTS_MAX).any(|_| healthy(&address)),
        "no /health"
    );

    // The start-up hint, pasted as printed.
    let listed = bash(&hint(&log, &mut server.0), &home);
    assert!(listed.contains("\"StreamNames\": []"), "{listed}");
    // The README's commands, as written but for the address.
    let readme = std::fs::read_to_string(clone.join("README.md")).unwrap();
    let commands = readme_aws_commands(&readme).replace("127.0.0.1:4567", &address);
    let out = bash(&commands, &home);
    assert!(
        out.contains("\"SequenceNumber\": "),
        "the put answered:\n{out}"
    );
    assert_eq!(
        out.matches("\"ShardId\": ").count(),
        3,
        "a put and two shards listed:\n{out}"
    );

    // The README's Python, as written but for the address: it creates a stream.
    let python = readme_block(&readme, "```python\n").replace("127.0.0.1:4567", &address);
    let ran = scrubbed("python3", &home)
        .args(["-c", &python])
        .output()
        .unwrap();
    assert!(
        ran.status.success(),
        "the README's Python failed:\n{python}\n{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    let listed = bash(&hint(&log, &mut server.0), &home);
    assert!(listed.contains("\"events\""), "{listed}");

    // Relative paths are the caller's: the data is in work/, not in the clone.
    assert!(work.join("sluice-data").is_dir());
    assert!(!clone.join("sluice-data").exists());
    let pid = server.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = server.0.wait().unwrap();
    assert!(status.success(), "a clean stop: {status}");
}
