//! TLS for `https://` endpoints (AWS itself, or a `sluice serve --tls-cert`): rustls with
//! the system's trust roots, or `SSL_CERT_FILE`'s instead when it is set; HTTP/1.1 by ALPN.

use std::sync::{Arc, OnceLock};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

/// The client configuration, made once (reading the trust roots takes a while).
fn config() -> Result<Arc<ClientConfig>, String> {
    static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    if let Some(config) = CONFIG.get() {
        return Ok(config.clone());
    }
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why: Vec<String> = found.errors.iter().map(|e| e.to_string()).collect();
        return Err(format!(
            "no trust roots could be read from the system (or SSL_CERT_FILE): {}",
            why.join("; ")
        ));
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(CONFIG.get_or_init(|| Arc::new(config)).clone())
}

/// `stream` to `host` (a name or an IP address) once TLS is up and the server's certificate
/// names the host.
pub(crate) async fn connect(
    host: &str,
    stream: tokio::net::TcpStream,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String> {
    let name = ServerName::try_from(host.to_owned())
        .map_err(|e| format!("{host} is not a host name TLS can check: {e}"))?;
    TlsConnector::from(config()?)
        .connect(name, stream)
        .await
        .map_err(|e| format!("TLS with {host}: {e}"))
}
