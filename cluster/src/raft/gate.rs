//! Appends wait for a snapshot being installed. openraft counts a snapshot's entry as its
//! log's last as soon as it decides to install it, and the state machine installs it on a
//! task of its own; an append of the next entry (from a new leader) may arrive before a log
//! that lacks the snapshot's entry has restarted after it, and the log would refuse it. The
//! log store learns of the install from openraft's purge to the snapshot, which comes right
//! after that decision (before any later append); the install opens the gate again.

use std::time::Duration;
use tokio::sync::watch;

/// How long an append waits for an install at most: then it fails (and openraft stops the
/// group on this node) rather than hang it.
const INSTALL_WAIT_MAX: Duration = Duration::from_secs(60);

/// Whether appends wait, and for which install.
#[derive(Clone, Copy, Default)]
struct Installs {
    /// The snapshot entry an install is awaited for.
    awaited: Option<u64>,
    /// The highest snapshot entry whose install ended (done or failed): an install may end
    /// before openraft's purge for it arrives, which then shuts nothing.
    ended: Option<u64>,
}

/// Shut while an install is awaited.
pub(super) struct InstallGate {
    installs: watch::Sender<Installs>,
}

impl Default for InstallGate {
    fn default() -> InstallGate {
        InstallGate {
            installs: watch::Sender::new(Installs::default()),
        }
    }
}

impl InstallGate {
    /// A snapshot at entry `index` is to be installed: appends wait for it (unless its
    /// install already ended).
    pub(super) fn expect(&self, index: u64) {
        self.installs.send_if_modified(|installs| {
            if installs.ended.is_some_and(|ended| ended >= index) {
                return false;
            }
            installs.awaited = Some(index);
            true
        });
    }

    /// An install to entry `index` ended (done, or failed: openraft then stops the group).
    pub(super) fn ended(&self, index: u64) {
        self.installs.send_if_modified(|installs| {
            installs.ended = installs.ended.max(Some(index));
            if installs.awaited.is_some_and(|awaited| awaited <= index) {
                installs.awaited = None;
            }
            true
        });
    }

    /// Returns once no install is awaited; `Err` with the awaited entry after
    /// `INSTALL_WAIT_MAX`.
    pub(super) async fn wait(&self) -> Result<(), u64> {
        let mut installs = self.installs.subscribe();
        let open = installs.wait_for(|installs| installs.awaited.is_none());
        match tokio::time::timeout(INSTALL_WAIT_MAX, open).await {
            Ok(_) => Ok(()),
            Err(_) => Err(self.installs.borrow().awaited.unwrap_or_default()),
        }
    }
}

/// Ends the install to `index` when dropped: however `install_snapshot` ends, a panic
/// included.
pub(super) struct Installing<'a> {
    pub gate: &'a InstallGate,
    pub index: u64,
}

impl Drop for Installing<'_> {
    fn drop(&mut self) {
        self.gate.ended(self.index);
    }
}

#[cfg(test)]
mod tests {
    use super::{InstallGate, Installing};
    use std::time::Duration;

    /// Whether appends would pass now.
    async fn open(gate: &InstallGate) -> bool {
        tokio::time::timeout(Duration::from_millis(50), gate.wait())
            .await
            .is_ok()
    }

    /// The gate shuts for an awaited install and opens when it (or a later one) ends; an
    /// install that ended before openraft's purge for it shuts nothing; a dropped install
    /// (a panic, an error) ends it too.
    #[tokio::test]
    async fn appends_wait_only_for_an_install_still_to_end() {
        let gate = InstallGate::default();
        assert!(open(&gate).await);
        gate.expect(5);
        assert!(!open(&gate).await);
        gate.ended(4);
        assert!(!open(&gate).await, "an older install ending leaves it shut");
        gate.ended(5);
        assert!(open(&gate).await);

        gate.ended(7);
        gate.expect(7);
        assert!(open(&gate).await, "the install ended before its purge came");

        gate.expect(9);
        drop(Installing {
            gate: &gate,
            index: 9,
        });
        assert!(open(&gate).await);
    }
}
