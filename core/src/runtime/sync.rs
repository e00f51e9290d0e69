//! The primitives of the core queue's protocol: std's and crossbeam's in every normal build,
//! loom's under `--cfg loom` (scripts/loom), so the loom models run the real `queue` code
//! with every interleaving and ordering checked.
//!
//! event-listener needs no stand-in: under `--cfg loom` it is built with its `loom` feature,
//! so the real crate runs on loom's primitives. crossbeam-channel has no loom build; under
//! loom, `channel` is a small bounded channel with the semantics crossbeam documents for the
//! part of its API the queue uses (see `channel`).

#[cfg(loom)]
pub(crate) use loom::sync::Arc;
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::Arc;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, Ordering};

#[cfg(not(loom))]
pub(crate) mod channel {
    pub(crate) use crossbeam_channel::{
        Receiver, RecvTimeoutError, Sender, TryRecvError, TrySendError, bounded,
    };
}

/// A bounded multi-producer channel on loom's `Mutex` and `Condvar`, with crossbeam-channel's
/// semantics: `try_send` fails with `Disconnected` once the receiver is gone (even when full),
/// else with `Full` at capacity; `try_recv` returns queued messages even after every sender is
/// gone, then `Disconnected`; blocking `send` and `recv` wait for space or a message and fail
/// on disconnection. Test scaffolding: the queue's own code is what the models check.
#[cfg(loom)]
pub(crate) mod channel {
    use loom::sync::{Arc, Condvar, Mutex, MutexGuard};
    use std::collections::VecDeque;

    #[derive(Debug, PartialEq, Eq)]
    pub(crate) enum TrySendError<T> {
        Full(T),
        Disconnected(T),
    }

    #[derive(Debug, PartialEq, Eq)]
    pub(crate) enum TryRecvError {
        Empty,
        Disconnected,
    }

    /// The receiver is gone; the message comes back.
    #[derive(Debug)]
    pub(crate) struct SendError<T>(#[allow(dead_code)] pub(crate) T);

    /// Empty and every sender is gone.
    #[derive(Debug)]
    pub(crate) struct RecvError;

    /// As crossbeam's: the wait ran out, or every sender is gone.
    #[derive(Debug, PartialEq, Eq)]
    #[allow(dead_code)]
    pub(crate) enum RecvTimeoutError {
        Timeout,
        Disconnected,
    }

    struct State<T> {
        messages: VecDeque<T>,
        capacity: usize,
        senders: usize,
        receiver_alive: bool,
    }

    struct Channel<T> {
        state: Mutex<State<T>>,
        /// Any change: a message in or out, a side gone. Waiters re-check their condition.
        changed: Condvar,
    }

    impl<T> Channel<T> {
        fn lock(&self) -> MutexGuard<'_, State<T>> {
            self.state.lock().unwrap_or_else(|e| e.into_inner())
        }
    }

    pub(crate) struct Sender<T>(Arc<Channel<T>>);

    pub(crate) struct Receiver<T>(Arc<Channel<T>>);

    pub(crate) fn bounded<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
        assert!(
            capacity > 0,
            "crossbeam's zero-capacity channel is not modelled"
        );
        let channel = Arc::new(Channel {
            state: Mutex::new(State {
                messages: VecDeque::new(),
                capacity,
                senders: 1,
                receiver_alive: true,
            }),
            changed: Condvar::new(),
        });
        (Sender(channel.clone()), Receiver(channel))
    }

    impl<T> Sender<T> {
        pub(crate) fn try_send(&self, message: T) -> Result<(), TrySendError<T>> {
            let mut state = self.0.lock();
            if !state.receiver_alive {
                return Err(TrySendError::Disconnected(message));
            }
            if state.messages.len() == state.capacity {
                return Err(TrySendError::Full(message));
            }
            state.messages.push_back(message);
            self.0.changed.notify_all();
            Ok(())
        }

        pub(crate) fn send(&self, message: T) -> Result<(), SendError<T>> {
            let mut state = self.0.lock();
            loop {
                if !state.receiver_alive {
                    return Err(SendError(message));
                }
                if state.messages.len() < state.capacity {
                    state.messages.push_back(message);
                    self.0.changed.notify_all();
                    return Ok(());
                }
                state = self
                    .0
                    .changed
                    .wait(state)
                    .unwrap_or_else(|e| e.into_inner());
            }
        }
    }

    impl<T> Clone for Sender<T> {
        fn clone(&self) -> Self {
            self.0.lock().senders += 1;
            Sender(self.0.clone())
        }
    }

    impl<T> Drop for Sender<T> {
        fn drop(&mut self) {
            self.0.lock().senders -= 1;
            self.0.changed.notify_all();
        }
    }

    impl<T> Receiver<T> {
        pub(crate) fn try_recv(&self) -> Result<T, TryRecvError> {
            let mut state = self.0.lock();
            match state.messages.pop_front() {
                Some(message) => {
                    self.0.changed.notify_all();
                    Ok(message)
                }
                None if state.senders == 0 => Err(TryRecvError::Disconnected),
                None => Err(TryRecvError::Empty),
            }
        }

        pub(crate) fn recv(&self) -> Result<T, RecvError> {
            let mut state = self.0.lock();
            loop {
                if let Some(message) = state.messages.pop_front() {
                    self.0.changed.notify_all();
                    return Ok(message);
                }
                if state.senders == 0 {
                    return Err(RecvError);
                }
                state = self
                    .0
                    .changed
                    .wait(state)
                    .unwrap_or_else(|e| e.into_inner());
            }
        }
    }

    impl<T> Receiver<T> {
        /// loom does not model time: waits as `recv` does and never times out.
        pub(crate) fn recv_timeout(
            &self,
            _timeout: std::time::Duration,
        ) -> Result<T, RecvTimeoutError> {
            self.recv()
                .map_err(|RecvError| RecvTimeoutError::Disconnected)
        }
    }

    impl<T> Drop for Receiver<T> {
        fn drop(&mut self) {
            self.0.lock().receiver_alive = false;
            self.0.changed.notify_all();
        }
    }
}
