//! The store on etcd (v3 API, 3.4 or newer), through the `etcd-client` crate, over plain
//! HTTP/2 or TLS (with a client certificate when etcd asks for one).

use std::path::PathBuf;
use std::time::Duration;

use etcd_client::{
    Certificate, Client, Compare as EtcdCompare, CompareOp, ConnectOptions, EventType, GetOptions,
    Identity, PutOptions, TlsOptions, Txn, TxnOp, WatchOptions, WatchStream,
};

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use etcd_client::{LeaseKeepAliveStream, LeaseKeeper};

use crate::backend::{Backend, BackendWatch, Compare, Kv, KvEvent, LeaseId, Op, TxnOutcome};
use crate::error::MetaError;
use crate::model::Revision;

/// A connection to an etcd cluster. Clones share it (one gRPC channel, balanced over the
/// endpoints given).
#[derive(Clone)]
pub struct EtcdBackend {
    client: Client,
    /// One keep-alive stream per lease, reused by its renewals (a stream taken out for a
    /// renewal is put back only once the renewal completed, so one cut short by a timeout
    /// is dropped and never answers a later renewal with a stale reply).
    keepers: Arc<Mutex<HashMap<LeaseId, (LeaseKeeper, LeaseKeepAliveStream)>>>,
}

/// The largest answer taken from etcd: the whole map is read in one range, and each stream's
/// entry may take up to 1.5 MB (`plan::STREAM_ENTRY_BYTES_MAX`); gRPC's default of 4 MiB
/// would fail every node's reads of a map with three large streams.
const RECEIVED_BYTES_MAX: usize = 1 << 30;

/// TLS to etcd (`https://` endpoints): the authority that signed etcd's certificate, and
/// the node's certificate and key when etcd asks clients for one (`--client-cert-auth`).
#[derive(Clone, Debug)]
pub struct EtcdTls {
    /// The authority's certificate (PEM).
    pub ca: PathBuf,
    /// The node's certificate chain and private key (PEM).
    pub identity: Option<(PathBuf, PathBuf)>,
}

impl EtcdTls {
    fn options(&self) -> Result<TlsOptions, MetaError> {
        let read = |path: &PathBuf| {
            std::fs::read(path).map_err(|e| {
                MetaError::InvalidRequest(format!("etcd TLS: reading {}: {e}", path.display()))
            })
        };
        let mut options = TlsOptions::new().ca_certificate(Certificate::from_pem(read(&self.ca)?));
        if let Some((cert, key)) = &self.identity {
            options = options.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        Ok(options)
    }
}

impl EtcdBackend {
    /// Connects to etcd at `endpoints` (`http://host:port`), giving up on a connection attempt
    /// after `connect_timeout`.
    pub async fn connect(
        endpoints: &[String],
        connect_timeout: Duration,
    ) -> Result<EtcdBackend, MetaError> {
        EtcdBackend::connect_with(endpoints, connect_timeout, None).await
    }

    /// Connects as `connect` does, over TLS when `tls` is given (`https://` endpoints).
    pub async fn connect_with(
        endpoints: &[String],
        connect_timeout: Duration,
        tls: Option<&EtcdTls>,
    ) -> Result<EtcdBackend, MetaError> {
        let mut options = ConnectOptions::new()
            .with_connect_timeout(connect_timeout)
            .with_timeout(Duration::from_secs(10));
        if let Some(tls) = tls {
            options = options.with_tls(tls.options()?);
        }
        let client = Client::connect(endpoints, Some(options))
            .await
            .map_err(unavailable)?;
        Ok(EtcdBackend {
            client,
            keepers: Arc::default(),
        })
    }
}

impl EtcdBackend {
    fn keepers(&self) -> MutexGuard<'_, HashMap<LeaseId, (LeaseKeeper, LeaseKeepAliveStream)>> {
        self.keepers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn unavailable(error: etcd_client::Error) -> MetaError {
    MetaError::Unavailable(error.to_string())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn kv(from: &etcd_client::KeyValue) -> Kv {
    Kv {
        key: text(from.key()),
        value: from.value().to_vec(),
        create_revision: from.create_revision(),
        mod_revision: from.mod_revision(),
        lease: from.lease(),
    }
}

impl Backend for EtcdBackend {
    type Watch = EtcdWatch;

    async fn grant(&self, ttl: Duration) -> Result<LeaseId, MetaError> {
        let seconds = i64::try_from(ttl.as_millis().div_ceil(1000))
            .unwrap_or(i64::MAX)
            .max(1);
        let granted = self
            .client
            .clone()
            .lease_grant(seconds, None)
            .await
            .map_err(unavailable)?;
        Ok(granted.id())
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<bool, MetaError> {
        let kept = self.keepers().remove(&lease);
        let Some((mut keeper, mut replies)) = kept else {
            // The first renewal opens the stream (etcd-client sends one renewal and reads its
            // reply; a lease that is gone is its "lease not found" error).
            return match self.client.clone().lease_keep_alive(lease).await {
                Ok(stream) => {
                    self.keepers().insert(lease, stream);
                    Ok(true)
                }
                Err(etcd_client::Error::LeaseKeepAliveError(m))
                    if m.contains("lease not found") =>
                {
                    Ok(false)
                }
                Err(e) => Err(unavailable(e)),
            };
        };
        keeper.keep_alive().await.map_err(unavailable)?;
        match replies.message().await.map_err(unavailable)? {
            Some(reply) if reply.ttl() > 0 => {
                self.keepers().insert(lease, (keeper, replies));
                Ok(true)
            }
            Some(_) => Ok(false),
            None => Err(MetaError::Unavailable(
                "the keep-alive stream closed".into(),
            )),
        }
    }

    async fn revoke(&self, lease: LeaseId) -> Result<(), MetaError> {
        self.keepers().remove(&lease);
        match self.client.clone().lease_revoke(lease).await {
            Ok(_) => Ok(()),
            Err(etcd_client::Error::GRpcStatus(status))
                if status.message().contains("lease not found") =>
            {
                Ok(())
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn range(&self, prefix: &str) -> Result<(Vec<Kv>, Revision), MetaError> {
        let got = self
            .client
            .kv_client()
            .max_decoding_message_size(RECEIVED_BYTES_MAX)
            .get(prefix, Some(GetOptions::new().with_prefix()))
            .await
            .map_err(unavailable)?;
        let revision = got
            .header()
            .map_or(0, etcd_client::ResponseHeader::revision);
        Ok((got.kvs().iter().map(kv).collect(), revision))
    }

    async fn get(&self, key: &str) -> Result<Option<Kv>, MetaError> {
        let got = self
            .client
            .kv_client()
            .max_decoding_message_size(RECEIVED_BYTES_MAX)
            .get(key, None)
            .await
            .map_err(unavailable)?;
        Ok(got.kvs().first().map(kv))
    }

    async fn txn(&self, when: Vec<Compare>, then: Vec<Op>) -> Result<TxnOutcome, MetaError> {
        let compares: Vec<EtcdCompare> = when
            .into_iter()
            .map(|c| match c {
                Compare::CreateRevision(key, rev) => {
                    EtcdCompare::create_revision(key, CompareOp::Equal, rev)
                }
                Compare::ModRevision(key, rev) => {
                    EtcdCompare::mod_revision(key, CompareOp::Equal, rev)
                }
            })
            .collect();
        let ops: Vec<TxnOp> = then
            .into_iter()
            .map(|op| match op {
                Op::Put {
                    key,
                    value,
                    lease: 0,
                } => TxnOp::put(key, value, None),
                Op::Put { key, value, lease } => {
                    TxnOp::put(key, value, Some(PutOptions::new().with_lease(lease)))
                }
                Op::Delete(key) => TxnOp::delete(key, None),
            })
            .collect();
        let txn = Txn::new().when(compares).and_then(ops);
        match self.client.clone().txn(txn).await {
            Ok(response) => {
                let revision = response
                    .header()
                    .map_or(0, etcd_client::ResponseHeader::revision);
                Ok(TxnOutcome {
                    succeeded: response.succeeded(),
                    revision,
                })
            }
            Err(etcd_client::Error::GRpcStatus(status))
                if status.message().contains("lease not found") =>
            {
                Err(MetaError::LeaseExpired)
            }
            Err(etcd_client::Error::GRpcStatus(status))
                if status.message().contains("duplicate key") =>
            {
                Err(MetaError::InvalidRequest(status.message().to_owned()))
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn watch(&self, prefix: &str, from: Revision) -> Result<EtcdWatch, MetaError> {
        let options = WatchOptions::new().with_prefix().with_start_revision(from);
        let stream = self
            .client
            .watch_client()
            .max_decoding_message_size(RECEIVED_BYTES_MAX)
            .watch(prefix, Some(options))
            .await
            .map_err(unavailable)?;
        Ok(EtcdWatch {
            stream,
            asked: from,
        })
    }

    async fn compact(&self, revision: Revision) -> Result<(), MetaError> {
        match self.client.clone().compact(revision, None).await {
            Ok(_) => Ok(()),
            Err(etcd_client::Error::GRpcStatus(status))
                if status.message().contains("future revision") =>
            {
                Err(MetaError::InvalidRequest(status.message().to_owned()))
            }
            Err(etcd_client::Error::GRpcStatus(status))
                if status.message().contains("compacted") =>
            {
                Err(MetaError::Compacted {
                    asked: revision,
                    compacted: revision,
                })
            }
            Err(e) => Err(unavailable(e)),
        }
    }
}

/// A watch on etcd.
pub struct EtcdWatch {
    stream: WatchStream,
    asked: Revision,
}

impl BackendWatch for EtcdWatch {
    async fn next(&mut self) -> Result<Vec<KvEvent>, MetaError> {
        loop {
            let Some(response) = self.stream.message().await.map_err(unavailable)? else {
                return Err(MetaError::Unavailable("the watch stream closed".into()));
            };
            if response.canceled() {
                if response.compact_revision() > 0 {
                    return Err(MetaError::Compacted {
                        asked: self.asked,
                        compacted: response.compact_revision(),
                    });
                }
                return Err(MetaError::Unavailable(format!(
                    "the watch was cancelled: {}",
                    response.cancel_reason()
                )));
            }
            let events: Vec<KvEvent> = response
                .events()
                .iter()
                .filter_map(|event| {
                    let kv = event.kv()?;
                    Some(match event.event_type() {
                        EventType::Put => KvEvent::Put(self::kv(kv)),
                        EventType::Delete => KvEvent::Delete {
                            key: text(kv.key()),
                            revision: kv.mod_revision(),
                        },
                    })
                })
                .collect();
            if let Some(last) = events.last() {
                self.asked = last.revision() + 1;
                return Ok(events);
            }
        }
    }
}
