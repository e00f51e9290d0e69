//! A bounded queue from any thread to one consumer (a core or the control thread), with
//! back-pressure for both async and blocking senders.
//!
//! Protocol: a sender pushes into a bounded crossbeam channel and then notifies `work`; the
//! consumer registers a `work` listener, re-checks the channel, and only then waits, so no
//! push is missed. When the channel is full an async sender registers a `space` listener,
//! retries, and waits; the consumer notifies `space` after taking messages.

use super::sync::channel::{self, Receiver, RecvTimeoutError, Sender, TryRecvError, TrySendError};
use super::sync::{Arc, AtomicBool, Ordering};
use event_listener::Event;

/// The consumer is gone (the engine shut down).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Closed;

/// The sending side; cheap to clone.
pub(crate) struct QueueSender<M> {
    /// `None` only while dropping (see `Drop for QueueSender`).
    tx: Option<Sender<M>>,
    events: Arc<QueueEvents>,
}

impl<M> Clone for QueueSender<M> {
    fn clone(&self) -> Self {
        QueueSender {
            tx: self.tx.clone(),
            events: self.events.clone(),
        }
    }
}

impl<M> Drop for QueueSender<M> {
    /// Wakes the consumer, so that a `recv` already waiting returns `None` if this was the last
    /// sender. The channel's sender goes first: a consumer woken before the channel disconnects
    /// would find it merely empty and wait again, for ever (as `closed` guards the other way).
    fn drop(&mut self) {
        drop(self.tx.take());
        self.events.work.notify(usize::MAX);
    }
}

/// The consuming side; owned by the one consumer.
pub(crate) struct QueueReceiver<M> {
    rx: Receiver<M>,
    events: Arc<QueueEvents>,
}

struct QueueEvents {
    work: Event,
    space: Event,
    /// The consumer is gone: waiting senders give up instead of waiting for space.
    closed: AtomicBool,
}

/// A queue holding at most `depth` messages.
pub(crate) fn queue<M>(depth: usize) -> (QueueSender<M>, QueueReceiver<M>) {
    assert!(depth > 0, "a queue holds at least one message");
    let (tx, rx) = channel::bounded(depth);
    let events = Arc::new(QueueEvents {
        work: Event::new(),
        space: Event::new(),
        closed: AtomicBool::new(false),
    });
    (
        QueueSender {
            tx: Some(tx),
            events: events.clone(),
        },
        QueueReceiver { rx, events },
    )
}

impl<M> QueueSender<M> {
    fn tx(&self) -> &Sender<M> {
        self.tx.as_ref().expect("taken only when dropped")
    }

    /// Sends, waiting (without blocking the thread) while the queue is full.
    pub(crate) async fn send(&self, message: M) -> Result<(), Closed> {
        let mut message = message;
        loop {
            match self.tx().try_send(message) {
                Ok(()) => {
                    self.events.work.notify(1);
                    return Ok(());
                }
                Err(TrySendError::Disconnected(_)) => return Err(Closed),
                Err(TrySendError::Full(back)) => {
                    let space = self.events.space.listen();
                    match self.tx().try_send(back) {
                        Ok(()) => {
                            self.events.work.notify(1);
                            return Ok(());
                        }
                        Err(TrySendError::Disconnected(_)) => return Err(Closed),
                        Err(TrySendError::Full(_))
                            if self.events.closed.load(Ordering::Acquire) =>
                        {
                            return Err(Closed);
                        }
                        Err(TrySendError::Full(back)) => {
                            message = back;
                            space.await;
                        }
                    }
                }
            }
        }
    }

    /// Sends, parking the thread while the queue is full.
    pub(crate) fn send_blocking(&self, message: M) -> Result<(), Closed> {
        self.tx().send(message).map_err(|_| Closed)?;
        self.events.work.notify(1);
        Ok(())
    }
}

impl<M> QueueReceiver<M> {
    /// Takes a message if one is waiting, and tells a waiting sender about the space.
    fn take(&self) -> Result<M, TryRecvError> {
        let message = self.rx.try_recv()?;
        self.events.space.notify(1);
        Ok(message)
    }

    /// Waits for a message on any executor (the consumer is a glommio core). `None` once
    /// every sender is gone.
    pub(crate) async fn recv(&self) -> Option<M> {
        loop {
            match self.take() {
                Ok(message) => return Some(message),
                Err(TryRecvError::Disconnected) => return None,
                Err(TryRecvError::Empty) => {}
            }
            let work = self.events.work.listen();
            match self.take() {
                Ok(message) => return Some(message),
                Err(TryRecvError::Disconnected) => return None,
                Err(TryRecvError::Empty) => work.await,
            }
        }
    }

    /// Parks the thread until a message arrives or `timeout` passes (the consumer is a plain
    /// thread).
    pub(crate) fn recv_blocking_timeout(&self, timeout: std::time::Duration) -> Received<M> {
        match self.rx.recv_timeout(timeout) {
            Ok(message) => {
                self.events.space.notify(1);
                Received::Message(message)
            }
            Err(RecvTimeoutError::Timeout) => Received::TimedOut,
            Err(RecvTimeoutError::Disconnected) => Received::Closed,
        }
    }
}

/// What a wait with a timeout got.
pub(crate) enum Received<M> {
    Message(M),
    TimedOut,
    /// Every sender is gone.
    Closed,
}

impl<M> Drop for QueueReceiver<M> {
    fn drop(&mut self) {
        self.events.closed.store(true, Ordering::Release);
        self.events.space.notify(usize::MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_holds_async_senders_until_the_consumer_takes() {
        let (tx, rx) = queue::<u32>(2);
        let sent = std::thread::scope(|scope| {
            let producer = scope.spawn(|| {
                for i in 0..100 {
                    futures_lite::future::block_on(tx.send(i)).unwrap();
                }
            });
            let mut got = Vec::new();
            while got.len() < 100 {
                got.push(futures_lite::future::block_on(rx.recv()).unwrap());
            }
            producer.join().unwrap();
            got
        });
        assert_eq!(sent, (0..100).collect::<Vec<u32>>());
    }

    #[test]
    fn a_sender_waiting_on_a_full_queue_fails_when_the_consumer_goes() {
        let (tx, rx) = queue::<u32>(1);
        tx.send_blocking(0).unwrap();
        std::thread::scope(|scope| {
            let waiting = scope.spawn(|| futures_lite::future::block_on(tx.send(1)));
            std::thread::sleep(std::time::Duration::from_millis(20));
            drop(rx);
            assert_eq!(waiting.join().unwrap(), Err(Closed));
        });
    }

    #[test]
    fn the_consumer_sees_the_end_when_every_sender_is_gone() {
        let (tx, rx) = queue::<u32>(1);
        drop(tx);
        assert_eq!(futures_lite::future::block_on(rx.recv()), None);
    }

    #[test]
    fn a_waiting_consumer_sees_the_end_when_the_last_sender_goes() {
        let (tx, rx) = queue::<u32>(1);
        std::thread::scope(|scope| {
            let waiting = scope.spawn(|| futures_lite::future::block_on(rx.recv()));
            std::thread::sleep(std::time::Duration::from_millis(20));
            drop(tx);
            assert_eq!(waiting.join().unwrap(), None);
        });
    }

    #[test]
    fn sending_to_a_dropped_consumer_fails_instead_of_hanging() {
        let (tx, rx) = queue::<u32>(1);
        drop(rx);
        assert_eq!(tx.send_blocking(1), Err(Closed));
        assert_eq!(futures_lite::future::block_on(tx.send(1)), Err(Closed));
    }
}

/// loom models of the queue's protocol on the real code above (its primitives are loom's under
/// `--cfg loom`, see `sync.rs`). Run by scripts/loom.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::future::block_on;
    use loom::thread;

    /// Messages a lone sender sends: two, so that the second finds the queue full.
    const MESSAGES: u8 = 2;
    /// Messages each of two concurrent senders sends: one sender's order is checked, and the
    /// state space stays small enough for CI (2 + 2 ran for over ten minutes).
    const TWO_SENDERS: [u8; 2] = [2, 1];

    /// Runs `f` under loom with a default preemption bound of 3 (keeps CI short; the
    /// `LOOM_MAX_PREEMPTIONS` environment variable overrides it for deeper runs), and prints
    /// how many interleavings it explored.
    fn model(f: impl Fn() + Sync + Send + 'static) {
        model_bounded(3, f);
    }

    /// [`model`] with another default preemption bound, for a model with a larger state space.
    fn model_bounded(preemptions: usize, f: impl Fn() + Sync + Send + 'static) {
        sluice_storage::loom_model(preemptions, f);
    }

    /// Checks that `received` holds messages `0..sends[s]` from each sender `s`, each
    /// sender's in the order it sent them.
    fn assert_complete_in_order(received: &[(u8, u8)], sends: &[u8]) {
        for (sender, &count) in (0u8..).zip(sends) {
            let from: Vec<u8> = received
                .iter()
                .filter(|(s, _)| *s == sender)
                .map(|&(_, i)| i)
                .collect();
            assert_eq!(from, (0..count).collect::<Vec<u8>>(), "sender {sender}");
        }
        let total: u8 = sends.iter().sum();
        assert_eq!(received.len(), usize::from(total));
    }

    #[test]
    fn async_senders_on_a_full_queue_all_get_through_in_order_to_an_async_consumer() {
        model_bounded(2, || {
            let (tx, rx) = queue::<(u8, u8)>(1);
            let senders: Vec<_> = (0u8..)
                .zip(TWO_SENDERS)
                .map(|(sender, count)| {
                    let tx = tx.clone();
                    thread::spawn(move || {
                        for i in 0..count {
                            assert_eq!(block_on(tx.send((sender, i))), Ok(()));
                        }
                    })
                })
                .collect();
            drop(tx);
            let mut received = Vec::new();
            while let Some(message) = block_on(rx.recv()) {
                received.push(message);
            }
            assert_complete_in_order(&received, &TWO_SENDERS);
            senders.into_iter().for_each(|s| s.join().unwrap());
        });
    }

    #[test]
    fn an_async_sender_on_a_full_queue_wakes_when_a_blocking_consumer_takes() {
        model(|| {
            let (tx, rx) = queue::<(u8, u8)>(1);
            let sender = thread::spawn(move || {
                for i in 0..MESSAGES {
                    assert_eq!(block_on(tx.send((0, i))), Ok(()));
                }
            });
            let mut received = Vec::new();
            // loom never times a wait out: this is a plain blocking receive.
            let hour = std::time::Duration::from_secs(3600);
            while let Received::Message(message) = rx.recv_blocking_timeout(hour) {
                received.push(message);
            }
            assert_complete_in_order(&received, &[MESSAGES]);
            sender.join().unwrap();
        });
    }

    #[test]
    fn a_blocking_sender_wakes_an_async_consumer() {
        model(|| {
            let (tx, rx) = queue::<(u8, u8)>(1);
            let sender = thread::spawn(move || {
                for i in 0..MESSAGES {
                    assert_eq!(tx.send_blocking((0, i)), Ok(()));
                }
            });
            let mut received = Vec::new();
            while let Some(message) = block_on(rx.recv()) {
                received.push(message);
            }
            assert_complete_in_order(&received, &[MESSAGES]);
            sender.join().unwrap();
        });
    }

    #[test]
    fn a_sender_waiting_on_a_full_queue_fails_when_the_consumer_is_dropped() {
        model(|| {
            let (tx, rx) = queue::<(u8, u8)>(1);
            assert_eq!(block_on(tx.send((0, 0))), Ok(()));
            let sender = thread::spawn(move || block_on(tx.send((0, 1))));
            drop(rx);
            assert_eq!(sender.join().unwrap(), Err(Closed));
        });
    }
}
