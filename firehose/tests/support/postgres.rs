//! A PostgreSQL server for a test: Debian's server binaries (`scripts/setup` installs the
//! `postgresql` package), a cluster made in a temporary directory and listening on
//! 127.0.0.1 at a free port, stopped when dropped. As root it runs as the `postgres` user
//! (the server refuses root). The role `sluice` (password `sluice`) owns database
//! `postgres`; connections over TCP need the password.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
}

/// The newest installed server's `bin` directory.
fn server_bin() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    found.sort_by_key(|bin| {
        bin.parent()
            .and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found.pop().unwrap_or_else(|| {
        panic!("no PostgreSQL server in /usr/lib/postgresql/*/bin: run scripts/setup (it installs Debian's postgresql)")
    })
}

fn root() -> bool {
    // SAFETY-free: `id -u` rather than libc, to keep tests free of unsafe.
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.starts_with(b"0\n"))
}

/// `program` with `args`, as the `postgres` user when we are root.
fn as_server_user(program: &Path, args: &[&str]) -> Command {
    if root() {
        let mut command = Command::new("runuser");
        command
            .args(["-u", "postgres", "--"])
            .arg(program)
            .args(args);
        command
    } else {
        let mut command = Command::new(program);
        command.args(args);
        command
    }
}

fn run(mut command: Command, what: &str) {
    let out = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Postgres {
    /// Makes a cluster and starts it; panics, saying why, when it cannot.
    pub fn start() -> Postgres {
        let bin = server_bin();
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let password = dir.path().join("password");
        std::fs::write(&password, "sluice\n").unwrap();
        if root() {
            run(
                {
                    let mut chown = Command::new("chown");
                    chown.args(["-R", "postgres:postgres"]).arg(dir.path());
                    chown
                },
                "chown the cluster's directory",
            );
        }
        let (data_arg, password_arg) = (data.to_str().unwrap(), password.to_str().unwrap());
        run(
            as_server_user(
                &bin.join("initdb"),
                &[
                    "-D",
                    data_arg,
                    "-U",
                    "sluice",
                    "--pwfile",
                    password_arg,
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ],
            ),
            "initdb",
        );
        // A free port, as the kernel gives one: another process may take it before the
        // server binds it, so a start that fails is tried again on another.
        let log = dir.path().join("server.log");
        let mut attempts = 0;
        let port = loop {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let options = format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
                dir.path().display()
            );
            let started = as_server_user(
                &bin.join("pg_ctl"),
                &[
                    "-D",
                    data_arg,
                    "-o",
                    &options,
                    "-l",
                    log.to_str().unwrap(),
                    "-w",
                    "start",
                ],
            )
            .stdin(Stdio::null())
            .output()
            .expect("pg_ctl start");
            attempts += 1;
            if started.status.success() {
                break port;
            }
            assert!(
                attempts < 3,
                "pg_ctl start failed: {}{}",
                String::from_utf8_lossy(&started.stderr),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        };
        Postgres { dir, bin, port }
    }

    /// A connection URL with the right password, or `password`.
    pub fn url_with(&self, password: &str) -> String {
        format!(
            "postgresql://sluice:{password}@127.0.0.1:{}/postgres",
            self.port
        )
    }

    pub fn url(&self) -> String {
        self.url_with("sluice")
    }

    /// `psql` on the server's database, with `sql` given on its standard input.
    pub fn psql(&self) -> Command {
        let mut command = Command::new(self.bin.join("psql"));
        command
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args([
                "-U",
                "sluice",
                "-d",
                "postgres",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
            ])
            .env("PGPASSWORD", "sluice");
        command
    }

    /// The rows `sql` returns, one line each, fields separated by `|`.
    pub fn query(&self, sql: &str) -> Vec<String> {
        let out = self.psql().args(["-c", sql]).output().unwrap();
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = as_server_user(
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    }
}
