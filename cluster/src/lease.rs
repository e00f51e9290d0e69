//! A lease kept alive by a task until its holder lets go: what a node's registration and a
//! controller candidacy stand on.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::backend::{Backend, LeaseId};
use crate::error::MetaError;

/// A granted lease renewed every third of its TTL. Dropping it stops the renewals and
/// revokes the lease (on the current tokio runtime, when there is one; otherwise the lease
/// runs out by itself within its TTL). The revocation runs after the drop: a holder that
/// must be gone before it goes on (registering the same node id again) calls `revoke`.
pub(crate) struct KeptLease<B: Backend> {
    backend: B,
    id: LeaseId,
    renewer: Option<JoinHandle<()>>,
    alive: watch::Receiver<bool>,
}

impl<B: Backend> KeptLease<B> {
    pub(crate) async fn grant(backend: &B, ttl: Duration) -> Result<KeptLease<B>, MetaError> {
        // The lease lives at least `ttl` from before it was asked for.
        let asked = Instant::now();
        let id = backend.grant(ttl).await?;
        let (alive_tx, alive) = watch::channel(true);
        let renewer = tokio::spawn(renew(backend.clone(), id, ttl, asked + ttl, alive_tx));
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

    /// Resolves once the lease may be gone: a renewal found it expired, or no renewal
    /// succeeded within a TTL of the last one that did, counted from when that one was sent.
    /// The store ends the lease no earlier than that, so a holder that stops acting when
    /// this resolves never acts beside its successor (clocks running at the same rate).
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

async fn renew<B: Backend>(
    backend: B,
    id: LeaseId,
    ttl: Duration,
    mut deadline: Instant,
    alive: watch::Sender<bool>,
) {
    let every = (ttl / 3).max(Duration::from_millis(100));
    let mut next = Instant::now() + every;
    loop {
        // Never sleep past the deadline: at the deadline the lease is given up.
        tokio::time::sleep_until(next.min(deadline)).await;
        let sent = Instant::now();
        if sent >= deadline {
            break;
        }
        // A renewal that does not answer before the deadline is as good as a failed one.
        match tokio::time::timeout_at(deadline, backend.keep_alive(id)).await {
            Ok(Ok(true)) => {
                deadline = sent + ttl;
                next = sent + every;
            }
            Ok(Ok(false)) | Err(_) => break,
            // The store did not answer: try again soon, until the deadline.
            Ok(Err(_)) => next = Instant::now() + every.min(Duration::from_millis(200)),
        }
    }
    let _ = alive.send(false);
}
