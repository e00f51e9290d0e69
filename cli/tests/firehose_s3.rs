//! Firehose delivering to an S3-compatible server: moto's (from PyPI; scripts/setup installs
//! it), started here on 127.0.0.1. boto3 creates the bucket and the delivery stream, puts
//! records, and reads the objects back through S3. Needs the `s3` feature (CI runs it in a
//! step of its own).

mod common;

use common::TestServer;
use sluice_storage::testing::{needs, runs};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// moto's S3 server, stopped when dropped.
struct Moto(Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_moto() -> (Moto, String) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("python3")
        .args(["-c", "from moto.server import main; main()"])
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting moto's server");
    let moto = Moto(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "moto's server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    (moto, format!("http://127.0.0.1:{port}"))
}

#[test]
fn firehose_delivers_to_an_s3_compatible_server() {
    if !common::needs_python_clients()
        || !needs(
            runs("python3", &["-c", "import moto.server, flask"]),
            "moto's S3 server (moto[server])",
            "run scripts/setup (it installs cli/tests/clients/requirements.txt with pip)",
        )
    {
        return;
    }
    let (_moto, s3) = start_moto();
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--print-address"])
        .args(["--cores", "1", "--segment-mib", "4", "--dir"])
        .arg(dir.path())
        .args(["--firehose-s3-endpoint", &s3])
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1");
    let server = TestServer::spawn(command, dir.path());
    common::run_suite_with(&server.endpoint(), "firehose_s3_suite.py", &[&s3]);
}
