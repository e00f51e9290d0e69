//! SIGHUP: the TLS files read again (the Kinesis port's, and in cluster mode the peer
//! port's), so a renewed certificate is used without a restart. A file that cannot be used
//! is reported and the certificate in use stays. Without TLS, SIGHUP keeps its default
//! meaning (the process ends).

use sluice_server::tls::ServerTls;
use std::sync::Arc;

/// What SIGHUP reloads.
pub(super) struct Certificates {
    pub kinesis: Option<Arc<ServerTls>>,
    #[cfg(feature = "cluster")]
    pub peers: Option<sluice_cluster::transport::PeerTls>,
}

impl Certificates {
    /// The Kinesis port's certificate (in cluster mode the peer port's is added).
    pub(super) fn new(kinesis: Option<Arc<ServerTls>>) -> Certificates {
        Certificates {
            kinesis,
            #[cfg(feature = "cluster")]
            peers: None,
        }
    }

    /// From now on, each SIGHUP reloads the certificates (when there are any).
    pub(super) fn reload_on_hangup(self) -> anyhow::Result<()> {
        if self.is_empty() {
            return Ok(());
        }
        let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                self.reload();
            }
        });
        Ok(())
    }

    fn is_empty(&self) -> bool {
        #[cfg(feature = "cluster")]
        let peers = self.peers.is_some();
        #[cfg(not(feature = "cluster"))]
        let peers = false;
        self.kinesis.is_none() && !peers
    }

    fn reload(&self) {
        if let Some(tls) = &self.kinesis {
            report(
                "the Kinesis port's",
                &tls.cert_path().display(),
                tls.reload(),
            );
        }
        #[cfg(feature = "cluster")]
        if let Some(tls) = &self.peers {
            report("the peer port's", &tls.cert_path().display(), tls.reload());
        }
    }
}

fn report<E: Into<anyhow::Error>>(
    port: &str,
    cert: &dyn std::fmt::Display,
    reloaded: Result<(), E>,
) {
    match reloaded {
        Ok(()) => eprintln!("sluice serve: SIGHUP: {port} certificate reloaded from {cert}"),
        Err(error) => eprintln!(
            "sluice serve: SIGHUP: {port} certificate kept as it was ({:#})",
            error.into()
        ),
    }
}
