//! A real etcd for the tests: Debian's `etcd` binary (scripts/setup installs it) started on
//! 127.0.0.1 with a fresh data directory, and killed when dropped.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sluice_cluster::{Backend, EtcdBackend, EtcdTls};

use super::pki::Pki;

pub struct Etcd {
    child: Child,
    pub endpoint: String,
    dir: tempfile::TempDir,
    /// How a client reaches it, when it serves over TLS.
    pub tls: Option<EtcdTls>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn etcd_binary() -> PathBuf {
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/bin", "/usr/local/bin"])
    {
        let candidate = PathBuf::from(dir).join("etcd");
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("these tests need etcd's server (`etcd`; Debian: etcd-server): run scripts/setup");
}

impl Etcd {
    /// Starts a one-member etcd and waits until it answers.
    pub async fn start() -> Etcd {
        Etcd::launch(None).await
    }

    /// Starts a one-member etcd serving clients over TLS only (its certificate, `etcd`, and
    /// each client's signed by `pki`'s authority `cluster`, which must exist), asking every
    /// client for a certificate; `tls` holds a client's (`client`).
    #[allow(
        dead_code,
        reason = "one of the test binaries sharing this module uses it"
    )]
    pub async fn start_tls(pki: &Pki) -> Etcd {
        let (cert, key) = pki.certificate("etcd", "cluster", "IP:127.0.0.1");
        let client = pki.certificate("client", "cluster", "IP:127.0.0.1");
        let ca = pki.path("cluster.pem");
        let tls = EtcdTls {
            ca: ca.clone(),
            identity: Some(client),
        };
        Etcd::launch(Some(((cert, key, ca), tls))).await
    }

    /// Starts etcd, over TLS with (its certificate, its key, the clients' authority) and how
    /// a client connects when given.
    async fn launch(tls: Option<((PathBuf, PathBuf, PathBuf), EtcdTls)>) -> Etcd {
        let dir = tempfile::tempdir().unwrap();
        let (client, peer) = (free_port(), free_port());
        let scheme = if tls.is_some() { "https" } else { "http" };
        let endpoint = format!("{scheme}://127.0.0.1:{client}");
        let mut command = Command::new(etcd_binary());
        let (server_tls, tls) = tls.unzip();
        if let Some((cert, key, ca)) = server_tls {
            command
                .arg("--cert-file")
                .arg(cert)
                .arg("--key-file")
                .arg(key);
            command
                .arg("--trusted-ca-file")
                .arg(ca)
                .arg("--client-cert-auth");
        }
        let peer_url = format!("http://127.0.0.1:{peer}");
        let log = std::fs::File::create(dir.path().join("etcd.log")).unwrap();
        let child = command
            .args(["--name", "test", "--data-dir"])
            .arg(dir.path().join("data"))
            .args([
                "--listen-client-urls",
                &endpoint,
                "--advertise-client-urls",
                &endpoint,
            ])
            .args([
                "--listen-peer-urls",
                &peer_url,
                "--initial-advertise-peer-urls",
                &peer_url,
            ])
            .args(["--initial-cluster", &format!("test={peer_url}")])
            .args(["--logger", "zap", "--log-level", "warn"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("etcd starts");
        let etcd = Etcd {
            child,
            endpoint,
            dir,
            tls,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let endpoints = std::slice::from_ref(&etcd.endpoint);
            let connected =
                EtcdBackend::connect_with(endpoints, Duration::from_secs(1), etcd.tls.as_ref());
            if let Ok(backend) = connected.await
                && backend.range("/").await.is_ok()
            {
                return etcd;
            }
            assert!(
                Instant::now() < deadline,
                "etcd did not answer within 20 s; its log: {}",
                etcd.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn backend(&self) -> EtcdBackend {
        let endpoints = std::slice::from_ref(&self.endpoint);
        EtcdBackend::connect_with(endpoints, Duration::from_secs(2), self.tls.as_ref())
            .await
            .expect("etcd is up")
    }

    /// Sends the server a signal (`STOP`, `CONT`) with kill(1).
    #[allow(
        dead_code,
        reason = "one of the test binaries sharing this module uses it"
    )]
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name} failed");
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
