//! What the kill tests share: a child process running an ignored test of the same test
//! binary (the application, printing `output <rows put>` as it goes), killed with SIGKILL
//! once it has put enough rows.

use std::ffi::OsStr;
use std::io::BufRead;

/// Killed and reaped when dropped, so a failing test leaves no child running.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the ignored test `test` of this binary in a child process with `envs`, until it
/// prints `output <n>` with `n` at least `rows`, then kills it with SIGKILL.
pub fn kill_child_after(test: &str, envs: &[(&str, &OsStr)], rows: u64) {
    let mut command = std::process::Command::new(std::env::current_exe().unwrap());
    command.args(["--exact", test, "--ignored", "--nocapture"]);
    for (name, value) in envs {
        command.env(name, value);
    }
    let mut child = Child(
        command
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // The pipe stays open until the child is killed: a closed one would fail its prints
    // and end it by a panic instead.
    let mut lines = std::io::BufReader::new(child.0.stdout.take().unwrap()).lines();
    let mut seen = 0;
    for line in lines.by_ref() {
        if let Some(n) = line.unwrap().strip_prefix("output ") {
            seen = n.parse().unwrap();
            if seen >= rows {
                break;
            }
        }
    }
    assert!(seen >= rows, "the child stopped after {seen} rows");
    child.0.kill().unwrap();
    let status = child.0.wait().unwrap();
    drop(lines);
    use std::os::unix::process::ExitStatusExt as _;
    assert_eq!(
        status.signal(),
        Some(9),
        "the child ended by SIGKILL: {status:?}"
    );
}
