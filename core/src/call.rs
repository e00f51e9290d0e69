//! Calls that wait for another thread: one type that is a future on any runtime and has a
//! blocking `wait()` for plain threads, instead of a `_blocking` twin per method.

use std::future::{Future, IntoFuture};
use std::time::Duration;

/// An operation that waits for another thread of the engine (a control-plane change, a
/// reshard). `.await` it on any runtime, or call [`Call::wait`] on a plain thread.
#[must_use = "a call does nothing until it is awaited or waited for"]
pub struct Call<F> {
    future: F,
}

impl<F: Future> Call<F> {
    pub(crate) fn new(future: F) -> Call<F> {
        Call { future }
    }

    /// Runs the call to completion on this thread. Do not call it from inside an async task:
    /// it blocks the thread until the answer comes.
    pub fn wait(self) -> F::Output {
        block(self.future)
    }
}

impl<F: Future> IntoFuture for Call<F> {
    type Output = F::Output;
    type IntoFuture = F;

    fn into_future(self) -> F {
        self.future
    }
}

impl<F> std::fmt::Debug for Call<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Call")
    }
}

/// Runs an async operation to completion on the calling thread.
pub(crate) fn block<F: Future>(future: F) -> F::Output {
    futures_lite::future::block_on(future)
}

/// [`block`], polling the operation for up to `spin` before parking the thread: an answer
/// that comes within it costs no sleep and no wake-up (a futex and, across CPUs, an IPI).
pub(crate) fn block_spinning<F: Future>(future: F, spin: Duration) -> F::Output {
    let mut future = std::pin::pin!(future);
    if !spin.is_zero() {
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        let until = std::time::Instant::now() + spin;
        loop {
            if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut context) {
                return output;
            }
            if std::time::Instant::now() >= until {
                break;
            }
            std::hint::spin_loop();
        }
    }
    futures_lite::future::block_on(future)
}
