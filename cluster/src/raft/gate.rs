//! Appends wait for a snapshot being installed. openraft counts a snapshot's entry as its
//! log's last as soon as it decides to install it, and the state machine installs it on a
//! task of its own; an append of the next entry (from a new leader) may arrive before a log
//! that lacks the snapshot's entry has restarted after it, and the log would refuse it. The
//! log store learns of the install from openraft's purge to the snapshot, which comes right
//! after that decision (before any later append); the install opens the gate again.

use tokio::sync::watch;

/// The snapshot entry an install is awaited for, if any.
pub(super) struct InstallGate {
    awaited: watch::Sender<Option<u64>>,
}

impl Default for InstallGate {
    fn default() -> InstallGate {
        InstallGate {
            awaited: watch::Sender::new(None),
        }
    }
}

impl InstallGate {
    /// A snapshot at entry `index` is to be installed: appends wait for it.
    pub(super) fn expect(&self, index: u64) {
        self.awaited.send_replace(Some(index));
    }

    /// An install to entry `index` ended (done, or failed: openraft then stops the group).
    pub(super) fn ended(&self, index: u64) {
        self.awaited.send_if_modified(|awaited| {
            let ends = awaited.is_some_and(|awaited| awaited <= index);
            if ends {
                *awaited = None;
            }
            ends
        });
    }

    /// Returns once no install is awaited.
    pub(super) async fn wait(&self) {
        let mut awaited = self.awaited.subscribe();
        // The sender lives as long as this gate: the wait ends only by the condition.
        let _ = awaited.wait_for(Option::is_none).await;
    }
}
