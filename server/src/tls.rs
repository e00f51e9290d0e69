//! Optional TLS (`--tls-cert`, `--tls-key`): rustls with the ring provider, offering HTTP/2
//! and HTTP/1.1 by ALPN, as the Java SDK's Netty client expects for SubscribeToShard. The
//! files are read again on [`ServerTls::reload`] (`sluice serve` does on SIGHUP), so a
//! renewed certificate is served without a restart.

use anyhow::Context as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The server's TLS: the acceptor made from the certificate and key files as last read.
pub struct ServerTls {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<TlsAcceptor>,
}

impl ServerTls {
    /// TLS from the certificate chain and private key in these PEM files.
    pub fn open(cert_path: &Path, key_path: &Path) -> anyhow::Result<Arc<ServerTls>> {
        Ok(Arc::new(ServerTls {
            current: RwLock::new(acceptor(cert_path, key_path)?),
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
        }))
    }

    /// The acceptor for a new connection (connections already made keep theirs).
    pub fn acceptor(&self) -> TlsAcceptor {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Reads the files again and serves what they hold from the next connection on. When
    /// they cannot be used (unreadable, no certificate, a key that does not go with it) the
    /// error says why and the certificate served so far stays.
    pub fn reload(&self) -> anyhow::Result<()> {
        let fresh = acceptor(&self.cert_path, &self.key_path)?;
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = fresh;
        Ok(())
    }

    /// The certificate file, to name in messages.
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }
}

/// An acceptor for the certificate chain and private key in these PEM files.
fn acceptor(cert_path: &Path, key_path: &Path) -> anyhow::Result<TlsAcceptor> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .with_context(|| format!("reading certificates from {}", cert_path.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing certificates in {}", cert_path.display()))?;
    anyhow::ensure!(
        !chain.is_empty(),
        "{} holds no certificate",
        cert_path.display()
    );
    let key = PrivateKeyDer::from_pem_file(key_path)
        .with_context(|| format!("reading the private key in {}", key_path.display()))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the certificate and key do not go together")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
