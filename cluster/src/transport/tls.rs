//! Mutual TLS on the peer port: every node holds a certificate (and its key) signed by the
//! cluster's certificate authority. A node accepts a connection only from a client whose
//! certificate chains to that authority, and calls a peer only after checking that the
//! peer's certificate chains to it and names the address called (an IP address or DNS name
//! in its subjectAltName). So nothing outside the cluster can send a Raft message, read a
//! replica's records off the wire, or pose as a node. HTTP/2 is agreed by ALPN, as the
//! Kinesis port's TLS does; rustls with the ring provider. The files are read again on
//! [`PeerTls::reload`] (`sluice serve` does on SIGHUP): new connections, both ways, use what
//! they hold; connections already made keep what they agreed.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Why the peer TLS files could not be used.
#[derive(Debug, thiserror::Error)]
#[error("peer TLS: {0}")]
pub struct PeerTlsError(String);

/// The node's TLS for the peer port: the server side and the calling side, as last read
/// from its files. Clones share them (a reload reaches every clone).
#[derive(Clone)]
pub struct PeerTls {
    files: Arc<PeerTlsFiles>,
    current: Arc<RwLock<Sides>>,
}

/// Where the node's certificate, its key and the cluster's authority are read from.
struct PeerTlsFiles {
    cert: PathBuf,
    key: PathBuf,
    authority: PathBuf,
}

/// Both sides made from one reading of the files.
struct Sides {
    acceptor: TlsAcceptor,
    connector: TlsConnector,
}

impl std::fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerTls")
    }
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, PeerTlsError> {
    let failed = |e: &dyn std::fmt::Display| {
        PeerTlsError(format!("reading certificates from {}: {e}", path.display()))
    };
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| failed(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| failed(&e))?;
    if chain.is_empty() {
        return Err(PeerTlsError(format!(
            "{} holds no certificate",
            path.display()
        )));
    }
    Ok(chain)
}

impl PeerTls {
    /// The node's certificate chain and key, and the cluster's authority, from PEM files.
    pub fn from_pem(cert: &Path, key: &Path, authority: &Path) -> Result<PeerTls, PeerTlsError> {
        let files = PeerTlsFiles {
            cert: cert.to_owned(),
            key: key.to_owned(),
            authority: authority.to_owned(),
        };
        Ok(PeerTls {
            current: Arc::new(RwLock::new(files.read()?)),
            files: Arc::new(files),
        })
    }

    /// Reads the files again; new connections use what they hold from now on. When they
    /// cannot be used the error says why and the node keeps what it had.
    pub fn reload(&self) -> Result<(), PeerTlsError> {
        let fresh = self.files.read()?;
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = fresh;
        Ok(())
    }

    /// The node's certificate file, to name in messages.
    pub fn cert_path(&self) -> &Path {
        &self.files.cert
    }

    fn sides(&self) -> std::sync::RwLockReadGuard<'_, Sides> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(super) fn acceptor(&self) -> TlsAcceptor {
        self.sides().acceptor.clone()
    }

    pub(super) fn connector(&self) -> TlsConnector {
        self.sides().connector.clone()
    }
}

impl PeerTlsFiles {
    fn read(&self) -> Result<Sides, PeerTlsError> {
        let (cert, key, authority) = (&self.cert, &self.key, &self.authority);
        let chain = certificates(cert)?;
        let key = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| PeerTlsError(format!("reading the key in {}: {e}", key.display())))?;
        let mut roots = RootCertStore::empty();
        for root in certificates(authority)? {
            roots
                .add(root)
                .map_err(|e| PeerTlsError(format!("{}: {e}", authority.display())))?;
        }
        let roots = Arc::new(roots);
        let verifier = WebPkiClientVerifier::builder(Arc::clone(&roots))
            .build()
            .map_err(|e| PeerTlsError(format!("the authority: {e}")))?;
        let mut server = ServerConfig::builder()
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(|e| PeerTlsError(format!("the certificate and key: {e}")))?;
        server.alpn_protocols = vec![b"h2".to_vec()];
        let mut client = ClientConfig::builder()
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| PeerTlsError(format!("the certificate and key: {e}")))?;
        client.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Sides {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector: TlsConnector::from(Arc::new(client)),
        })
    }
}

/// The name a peer's certificate must carry: the host of `peer` (`host:port`), an IP
/// address or a DNS name.
pub(super) fn server_name(peer: &str) -> Result<ServerName<'static>, String> {
    let host = match peer.rsplit_once(':') {
        Some((host, _)) => host.trim_start_matches('[').trim_end_matches(']'),
        None => peer,
    };
    ServerName::try_from(host.to_owned()).map_err(|e| format!("{host:?} is no server name: {e}"))
}
