//! Trying a destination again for a retry duration, as Firehose does for HTTP endpoints
//! and databases: a failed attempt is made again after a pause (0.5 s doubling to a
//! minute), always once at least, until the pauses add up to the retry duration. As
//! Firehose counts it, the duration starts after the first failed attempt and leaves out
//! the time spent waiting for the destination's answers (each attempt has its own timeout).
//! An attempt refused for good is not made again.

use super::{Interrupted, RETRY_MAX, sleep};
use std::future::Future;
use std::time::Duration;
use tokio::sync::watch;

/// A failed attempt is made again after this, doubling.
const RETRY_FIRST: Duration = Duration::from_millis(500);

/// Why an attempt did not succeed.
pub(super) struct Refused {
    /// Firehose's error code.
    pub(super) code: &'static str,
    pub(super) message: String,
    /// Worth another attempt (an HTTP 413 is not: the same body will not fit later).
    pub(super) retry: bool,
}

impl Refused {
    /// A failure worth another attempt.
    pub(super) fn again(code: &'static str, message: impl Into<String>) -> Refused {
        Refused {
            code,
            message: message.into(),
            retry: true,
        }
    }
}

/// Why the destination did not take the records in the end, and after how many attempts.
pub(super) struct Failure {
    pub(super) code: &'static str,
    pub(super) message: String,
    pub(super) attempts: u32,
}

/// Makes `attempt` until it succeeds (the attempts it took), is refused for good or the
/// retry duration is over (why, as a `Failure`), or a stop is asked for; each failed
/// attempt is told to `failed` (the stats show a destination being retried).
pub(super) async fn retrying<Attempt, Made>(
    retry: Duration,
    stop: &watch::Receiver<bool>,
    mut failed: impl FnMut(&Refused),
    mut attempt: Attempt,
) -> Result<Result<u32, Failure>, Interrupted>
where
    Attempt: FnMut() -> Made,
    Made: Future<Output = Result<(), Refused>>,
{
    let mut paused = Duration::ZERO;
    let mut stop = stop.clone();
    let (mut attempts, mut pause) = (0, RETRY_FIRST);
    loop {
        attempts += 1;
        if *stop.borrow() {
            return Err(Interrupted::Stop);
        }
        let refused = tokio::select! {
            outcome = attempt() => match outcome {
                Ok(()) => return Ok(Ok(attempts)),
                Err(refused) => refused,
            },
            _ = stop.changed() => return Err(Interrupted::Stop),
        };
        failed(&refused);
        let left = retry.saturating_sub(paused);
        if !refused.retry || left.is_zero() {
            return Ok(Err(Failure {
                code: refused.code,
                message: refused.message,
                attempts,
            }));
        }
        sleep(&mut stop, pause.min(left)).await?;
        paused += pause.min(left);
        pause = (pause * 2).min(RETRY_MAX);
    }
}
