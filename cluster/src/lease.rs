//! A lease kept alive by a task until its holder lets go: what a node's registration and a
//! controller candidacy stand on.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::backend::{Backend, LeaseId};
use crate::error::MetaError;

/// A granted lease renewed every third of its TTL. Dropping it stops the renewals and
/// revokes the lease (on the current tokio runtime, when there is one; otherwise the lease
/// runs out by itself within its TTL).
pub(crate) struct KeptLease<B: Backend> {
    backend: B,
    id: LeaseId,
    renewer: Option<JoinHandle<()>>,
    alive: watch::Receiver<bool>,
}

impl<B: Backend> KeptLease<B> {
    pub(crate) async fn grant(backend: &B, ttl: Duration) -> Result<KeptLease<B>, MetaError> {
        let id = backend.grant(ttl).await?;
        let (alive_tx, alive) = watch::channel(true);
        let renewer = tokio::spawn(renew(backend.clone(), id, ttl, alive_tx));
        Ok(KeptLease {
            backend: backend.clone(),
            id,
            renewer: Some(renewer),
            alive,
        })
    }

    pub(crate) fn id(&self) -> LeaseId {
        self.id
    }

    /// Whether the lease is still renewed and known to be alive (renewals stop when one finds
    /// it expired, and with `stop_renewing`).
    pub(crate) fn is_alive(&self) -> bool {
        self.alive.has_changed().is_ok() && *self.alive.borrow()
    }

    /// Resolves once the lease is known to be gone: a renewal found it expired, or renewals
    /// failed for a whole TTL (the store may still hold it a little longer; from then on the
    /// holder must act as if it did not).
    pub(crate) async fn lost(&self) {
        let mut alive = self.alive.clone();
        // An error means the renewer is gone, which only happens once the lease is lost.
        let _ = alive.wait_for(|alive| !alive).await;
    }

    /// Stops renewing without revoking: the lease runs out as a crashed holder's would.
    pub(crate) fn stop_renewing(&mut self) {
        if let Some(renewer) = self.renewer.take() {
            renewer.abort();
        }
    }

    /// Stops renewing and revokes the lease now, deleting its keys.
    pub(crate) async fn revoke(mut self) -> Result<(), MetaError> {
        if let Some(renewer) = self.renewer.take() {
            renewer.abort();
        }
        self.backend.revoke(self.id).await
    }
}

impl<B: Backend> Drop for KeptLease<B> {
    fn drop(&mut self) {
        let Some(renewer) = self.renewer.take() else {
            return;
        };
        renewer.abort();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (backend, id) = (self.backend.clone(), self.id);
            runtime.spawn(async move {
                let _ = backend.revoke(id).await;
            });
        }
    }
}

async fn renew<B: Backend>(backend: B, id: LeaseId, ttl: Duration, alive: watch::Sender<bool>) {
    let every = ttl / 3;
    let mut last_renewed = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(every).await;
        match backend.keep_alive(id).await {
            Ok(true) => last_renewed = tokio::time::Instant::now(),
            Ok(false) => break,
            // The store is unreachable: keep trying until the TTL has surely run out.
            Err(_) if last_renewed.elapsed() < ttl => {}
            Err(_) => break,
        }
    }
    let _ = alive.send(false);
}
