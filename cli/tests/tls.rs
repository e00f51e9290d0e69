//! TLS: a certificate made for the test (openssl, CN and SAN 127.0.0.1), the server started
//! with it, boto3 and curl (HTTP/2 by ALPN) trusting it, and a client that does not; a
//! renewed certificate served after SIGHUP, and files that do not go together refused.

mod common;

use common::{TestServer, run_suite_with};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn https_with_http2_by_alpn_serves_sdks_and_subscriptions() {
    if !(common::needs_openssl() && common::needs_python_clients() && common::needs_curl()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .args(["-addext", "subjectAltName=IP:127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("running openssl");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let data = dir.path().join("data");
    let server = TestServer::start(
        &data,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--first-request-timeout-ms",
            "1000",
        ],
    );
    run_suite_with(
        &server.tls_endpoint(),
        "tls_suite.py",
        &[cert.to_str().unwrap()],
    );
}

/// curl's exit status for a request to `endpoint` trusting `authority` only: 0 when the
/// handshake passed (whatever the HTTP answer), 60 when the server's certificate is not
/// the authority's.
fn curl_trusting(endpoint: &str, authority: &Path) -> i32 {
    let status = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "--max-time", "10", "--cacert"])
        .arg(authority)
        .arg(format!("{endpoint}/"))
        .stderr(Stdio::null())
        .status()
        .expect("running curl");
    status.code().unwrap_or(-1)
}

/// Waits until the server's stderr (`log`) says `what` `count` times.
fn said(log: &Path, what: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.matches(what).count() >= count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not say {what:?} {count} times:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn hangup(server: &TestServer) {
    let sent = Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .expect("running kill");
    assert!(sent.success());
}

/// A certificate renewed without a restart: the files rewritten, SIGHUP, and new
/// connections get the new certificate (a client trusting only the old authority is
/// refused); then a key that does not go with the certificate: SIGHUP is refused, said so,
/// and the renewed certificate is still served. The server answers throughout.
#[test]
fn sighup_serves_a_renewed_certificate_and_keeps_it_when_the_files_are_wrong() {
    if !(common::needs_openssl() && common::needs_curl()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (dir.path().join("old"), dir.path().join("new"));
    for authority in [&old, &new] {
        std::fs::create_dir(authority).unwrap();
        common::certificates(authority);
    }
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let install = |from: &Path, file: &str, to: &Path| {
        // Written beside and renamed over, as certificate tools do.
        let beside = to.with_extension("writing");
        std::fs::copy(from.join(file), &beside).unwrap();
        std::fs::rename(&beside, to).unwrap();
    };
    install(&old, "cert.pem", &cert);
    install(&old, "key.pem", &key);
    let log = dir.path().join("stderr.log");
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--print-address"])
        .args(["--cores", "1", "--segment-mib", "4", "--dir"])
        .arg(dir.path().join("data"))
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key);
    let stderr = std::fs::File::create(&log).unwrap();
    let server = TestServer::spawn_with_stderr(command, &dir.path().join("data"), stderr.into());
    let endpoint = server.tls_endpoint();
    assert_eq!(curl_trusting(&endpoint, &old.join("ca.pem")), 0);
    assert_eq!(curl_trusting(&endpoint, &new.join("ca.pem")), 60);

    install(&new, "cert.pem", &cert);
    install(&new, "key.pem", &key);
    // Not before the signal: the files are read at start and on SIGHUP only.
    assert_eq!(curl_trusting(&endpoint, &old.join("ca.pem")), 0);
    hangup(&server);
    said(&log, "certificate reloaded from", 1);
    assert_eq!(curl_trusting(&endpoint, &new.join("ca.pem")), 0);
    assert_eq!(curl_trusting(&endpoint, &old.join("ca.pem")), 60);

    install(&old, "key.pem", &key);
    hangup(&server);
    said(&log, "certificate kept as it was", 1);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("do not go together"), "{text}");
    assert_eq!(curl_trusting(&endpoint, &new.join("ca.pem")), 0);
    assert_eq!(curl_trusting(&endpoint, &old.join("ca.pem")), 60);
    assert!(
        server.stop("TERM").success(),
        "the server did not stop cleanly"
    );
}
