//! SIGHUP: the TLS files read again (the Kinesis port's, and in cluster mode the peer
//! port's), so a renewed certificate is used without a restart. A file that cannot be used
//! is reported and the certificate in use stays. Without TLS, SIGHUP keeps its default
//! meaning (the process ends).

use sluice_server::tls::ServerTls;
use std::io::Write as _;
use std::sync::Arc;
use tokio::signal::unix::{Signal, SignalKind, signal};

/// SIGHUP taken from the start (before the engine opens and the node joins, which may take
/// a while): one that arrives meanwhile waits for the reloading task instead of ending
/// the process. `None` without TLS files to reload. Call inside the runtime.
pub(super) fn take_hangup(args: &super::ServeArgs) -> anyhow::Result<Option<Signal>> {
    #[cfg(feature = "cluster")]
    let peers = args.cluster.cluster && args.cluster.peer_tls_cert.is_some();
    #[cfg(not(feature = "cluster"))]
    let peers = false;
    Ok(match args.tls_cert.is_some() || peers {
        true => Some(signal(SignalKind::hangup())?),
        false => None,
    })
}

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

    /// From now on, each SIGHUP taken by `take_hangup` reloads the certificates.
    pub(super) fn reload_on(self, hangup: Option<Signal>) {
        let Some(mut hangup) = hangup else {
            return;
        };
        tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                self.reload();
            }
        });
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

/// Says what a reload did, on stderr (a closed stderr is no reason to stop reloading).
fn report<E: Into<anyhow::Error>>(
    port: &str,
    cert: &dyn std::fmt::Display,
    reloaded: Result<(), E>,
) {
    let mut stderr = std::io::stderr();
    let _ = match reloaded {
        Ok(()) => writeln!(
            stderr,
            "sluice serve: SIGHUP: {port} certificate reloaded from {cert}"
        ),
        Err(error) => writeln!(
            stderr,
            "sluice serve: SIGHUP: {port} certificate kept as it was ({:#})",
            error.into()
        ),
    };
}
