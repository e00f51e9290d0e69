//! Cancel safety, enforced by a drop guard rather than by a comment.

use super::ShardLog;
use crate::io::SegmentIo;

/// Latches the log if dropped while armed: a future cancelled mid-I/O leaves the log in a state
/// it cannot vouch for (a write that may or may not have landed, a half-done roll), so it
/// refuses writes until reopened rather than wedge or guess. The engine never cancels these.
pub(super) struct CancelLatch<'a, I: SegmentIo> {
    log: &'a ShardLog<I>,
    what: &'static str,
    armed: bool,
}

impl<'a, I: SegmentIo> CancelLatch<'a, I> {
    pub(super) fn arm(log: &'a ShardLog<I>, what: &'static str) -> Self {
        CancelLatch {
            log,
            what,
            armed: true,
        }
    }

    /// The operation finished: dropping the latch now only does its wake-ups.
    pub(super) fn disarm(mut self) {
        self.armed = false;
    }
}

impl<I: SegmentIo> Drop for CancelLatch<'_, I> {
    fn drop(&mut self) {
        if self.armed {
            self.log.shared.latch(format!(
                "{} was cancelled during its I/O; reopen the log",
                self.what
            ));
            self.log.published.notify(usize::MAX);
        }
        if self.what == SPARE_ALLOCATION {
            // Whether it finished or was cancelled, rolls waiting for the spare must wake.
            self.log.writer.borrow_mut().allocating_spare = false;
            self.log.spare_ready.notify(usize::MAX);
        }
    }
}

pub(super) const SPARE_ALLOCATION: &str = "a segment allocation";
