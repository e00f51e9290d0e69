//! Starting `sluice serve` for a test: the real binary on 127.0.0.1, port 0, in a directory
//! the test owns. Dropping the server kills it.

#![allow(dead_code)] // each test binary uses part of this

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub struct TestServer {
    child: Child,
    pub address: SocketAddr,
    pub dir: PathBuf,
}

impl TestServer {
    /// Starts a server on `dir` with extra arguments.
    pub fn start(dir: &Path, extra: &[&str]) -> TestServer {
        TestServer::start_in(Path::new("."), dir, extra)
    }

    /// Starts a server in the working directory `cwd` on `dir` (which may be relative to it).
    pub fn start_in(cwd: &Path, dir: &Path, extra: &[&str]) -> TestServer {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
        command
            .current_dir(cwd)
            .args(["serve", "--listen", "127.0.0.1:0", "--print-address"])
            .args(["--cores", "1", "--segment-mib", "4", "--dir"])
            .arg(dir)
            .args(extra);
        TestServer::spawn(command, dir)
    }

    /// Starts `command` (a `sluice serve` that prints its address first) and reads the
    /// address; `dir` is its data directory, as far as the test knows it.
    pub fn spawn(command: Command, dir: &Path) -> TestServer {
        TestServer::spawn_with_stderr(command, dir, Stdio::inherit())
    }

    /// `spawn`, with the server's stderr going to `stderr` (a file the test reads).
    pub fn spawn_with_stderr(mut command: Command, dir: &Path, stderr: Stdio) -> TestServer {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("starting sluice serve");
        let stdout = child.stdout.take().expect("piped stdout");
        // Read on a thread of its own: a server that never prints its address (stuck while
        // starting) fails the test within a minute instead of hanging it, and is killed.
        let (sent, received) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = sent.send(line);
        });
        let line = received
            .recv_timeout(std::time::Duration::from_secs(60))
            .unwrap_or_default();
        let Ok(address) = line.trim().parse() else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("sluice serve printed {line:?} instead of its address");
        };
        TestServer {
            child,
            address,
            dir: dir.to_owned(),
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The endpoint when serving TLS (the certificate names 127.0.0.1).
    pub fn tls_endpoint(&self) -> String {
        format!("https://{}", self.address)
    }

    /// Sends `signal` (`TERM`, `INT`) and waits for the server to exit.
    pub fn stop(mut self, signal: &str) -> std::process::ExitStatus {
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("running kill");
        assert!(sent.success(), "kill -{signal} failed");
        self.child.wait().expect("reaping the server")
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaping the server");
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub use sluice_storage::testing::needs;
pub use sluice_storage::testing::runs;

/// Python with the client libraries the suites drive the server with.
pub fn needs_python_clients() -> bool {
    needs(
        runs("python3", &["-c", "import boto3, botocore, cbor2, snappy"]),
        "python3 with boto3, botocore, cbor2 and python-snappy",
        "run scripts/setup (it installs cli/tests/clients/requirements.txt with pip)",
    )
}

/// The AWS CLI, `aws`.
pub fn needs_aws_cli() -> bool {
    needs(
        runs("aws", &["--version"]),
        "the AWS CLI (aws)",
        "run scripts/setup (it installs awscli from cli/tests/clients/requirements.txt with pip)",
    )
}

/// curl, for HTTP/2 and raw request bodies.
pub fn needs_curl() -> bool {
    needs(
        runs("curl", &["--version"]),
        "curl",
        "run scripts/setup as root (it installs curl with apt-get), or install curl",
    )
}

/// openssl, to make a certificate.
pub fn needs_openssl() -> bool {
    needs(
        runs("openssl", &["version"]),
        "openssl",
        "run scripts/setup as root (it installs openssl with apt-get), or install openssl",
    )
}

/// Node.js with the AWS SDK for JavaScript installed in cli/tests/clients/js.
pub fn needs_js_sdk() -> bool {
    let js = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/js");
    needs(
        runs("node", &["--version"]) && js.join("node_modules/@aws-sdk/client-kinesis").is_dir(),
        "Node.js and the AWS SDK for JavaScript",
        &format!(
            "run scripts/setup (as root it installs Node.js and npm with apt-get; it runs npm ci in {})",
            js.display()
        ),
    )
}

/// `POST path` with an empty body over HTTP/1.1: the status and the body.
pub fn post(address: SocketAddr, path: &str) -> (u16, String) {
    request(address, "POST", path, &[])
}

/// `METHOD path` with `headers` and an empty body over HTTP/1.1: the status and the body.
pub fn request(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    request_with_body(address, method, path, headers, &[])
}

/// `METHOD path` with `headers` and `body` over HTTP/1.1: the status and the body.
pub fn request_with_body(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(address).expect("connecting");
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    stream.write_all(head.as_bytes()).expect("sending");
    stream.write_all(body).expect("sending the body");
    let mut reply = String::new();
    stream
        .read_to_string(&mut reply)
        .expect("reading the reply");
    let status = reply
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP reply: {reply:?}"));
    let body = reply
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

/// Runs a client suite from cli/tests/clients against `server`; fails with its output.
pub fn run_suite(server: &TestServer, suite: &str) {
    run_suite_with(&server.endpoint(), suite, &[]);
}

/// Runs a client suite against `endpoint` with extra arguments.
pub fn run_suite_with(endpoint: &str, suite: &str, extra: &[&str]) {
    run_suite_in_env(endpoint, suite, extra, &[]);
}

/// Runs a client suite against `endpoint` with extra arguments and environment variables.
pub fn run_suite_in_env(endpoint: &str, suite: &str, extra: &[&str], env: &[(&str, &str)]) {
    if !needs_python_clients() {
        return;
    }
    let clients = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients");
    let output = Command::new("python3")
        .arg(clients.join(suite))
        .arg(endpoint)
        .args(extra)
        .envs(env.iter().copied())
        .current_dir(&clients)
        .output()
        .expect("running python3");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{text}");
    assert!(output.status.success(), "{suite} failed:\n{text}");
    assert!(
        text.contains(" passed, 0 failed"),
        "{suite} ran no tests:\n{text}"
    );
}

/// The event-stream messages of a finished SubscribeToShard reply: (event type, JSON payload).
pub fn events(body: &[u8]) -> Vec<(String, serde_json::Value)> {
    use aws_smithy_types::event_stream::HeaderValue;
    let mut buffer = body;
    let mut out = Vec::new();
    while !buffer.is_empty() {
        let message =
            aws_smithy_eventstream::frame::read_message_from(&mut buffer).expect("a valid frame");
        let header = |name: &str| {
            message
                .headers()
                .iter()
                .find(|h| h.name().as_str() == name)
                .and_then(|h| match h.value() {
                    HeaderValue::String(s) => Some(s.as_str().to_owned()),
                    _ => None,
                })
                .unwrap_or_default()
        };
        let kind = match header(":message-type").as_str() {
            "event" => header(":event-type"),
            _ => header(":exception-type"),
        };
        out.push((
            kind,
            serde_json::from_slice(message.payload()).expect("a JSON payload"),
        ));
    }
    out
}

/// The peak resident memory of process `pid`, KiB.
pub fn peak_rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The resident memory of process `pid` now, KiB.
pub fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The objects delivered into a bucket's directory (its subdirectories walked; files of
/// deliveries under way, whose names hold `#`, left out).
pub fn delivered_objects(bucket: &Path) -> Vec<PathBuf> {
    let mut objects = Vec::new();
    let mut dirs = vec![bucket.to_owned()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if !path.to_string_lossy().contains('#') {
                objects.push(path);
            }
        }
    }
    objects
}

/// Runs openssl with `args` in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let made = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("running openssl");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
}

/// A certificate authority (`ca.pem`) and a certificate it signed for 127.0.0.1
/// (`cert.pem`, `key.pem`), in `dir`.
pub fn certificates(dir: &Path) {
    let key = ["-newkey", "rsa:2048", "-nodes"];
    openssl(
        dir,
        &[
            &["req", "-x509"][..],
            &key,
            &[
                "-days",
                "2",
                "-subj",
                "/CN=Sluice test CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
            ],
        ]
        .concat(),
    );
    openssl(
        dir,
        &[
            &["req"][..],
            &key,
            &[
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                "key.pem",
                "-out",
                "cert.csr",
            ],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "cert.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
            "-out",
            "cert.pem",
        ],
    );
}
