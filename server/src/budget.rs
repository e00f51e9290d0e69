//! Memory budgets: bytes the server may hold at once for one purpose (request bodies,
//! subscription events), counted in KiB units on a semaphore, so a holder waits for room
//! instead of allocating past the bound.

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Budgets count bytes in units of this many.
pub(crate) const UNIT: usize = 1024;

/// A budget of bytes.
#[derive(Clone, Debug)]
pub(crate) struct Budget {
    semaphore: Arc<Semaphore>,
    units: usize,
}

/// Bytes held of a budget, given back when dropped.
pub(crate) type Held = OwnedSemaphorePermit;

/// Why bytes could not be reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Not within the wait.
    Busy,
    /// The budget was closed (the server is stopping).
    Closed,
}

impl Budget {
    /// A budget of `bytes` (at least one unit).
    pub(crate) fn new(bytes: usize) -> Budget {
        let units = (bytes / UNIT).max(1);
        Budget {
            semaphore: Arc::new(Semaphore::new(units)),
            units,
        }
    }

    /// The units covering `bytes` (at least one, at most the whole budget, so any request
    /// can be met once the others are done).
    fn units(&self, bytes: usize) -> u32 {
        let units = bytes.div_ceil(UNIT).clamp(1, self.units);
        u32::try_from(units).unwrap_or(u32::MAX)
    }

    /// Reserves `bytes`, waiting at most `wait` for room.
    pub(crate) async fn reserve(&self, bytes: usize, wait: Duration) -> Result<Held, Refused> {
        let acquire = self.semaphore.clone().acquire_many_owned(self.units(bytes));
        match tokio::time::timeout(wait, acquire).await {
            Ok(Ok(held)) => Ok(held),
            Ok(Err(_)) => Err(Refused::Closed),
            Err(_) => Err(Refused::Busy),
        }
    }

    /// Units free now.
    #[cfg(test)]
    pub(crate) fn available_units(&self) -> usize {
        self.semaphore.available_permits()
    }
}

/// Shrinks `held` to cover `bytes` (at least one unit), giving the rest back.
pub(crate) fn shrink(held: &mut Held, bytes: usize) {
    let keep = bytes.div_ceil(UNIT).max(1);
    if held.num_permits() > keep {
        drop(held.split(held.num_permits() - keep));
    }
}

/// Bytes that hold their share of a budget for as long as they exist: wrapped in
/// `bytes::Bytes::from_owner`, the share is given back when the last clone is dropped
/// (written out, or dropped with a connection), whoever holds it by then.
pub(crate) struct HeldBytes {
    bytes: bytes::Bytes,
    _held: Vec<Held>,
}

impl HeldBytes {
    /// `bytes` holding `held` (of one budget or more).
    pub(crate) fn new(bytes: bytes::Bytes, held: Vec<Held>) -> HeldBytes {
        HeldBytes { bytes, _held: held }
    }
}

impl AsRef<[u8]> for HeldBytes {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn held_bytes_give_their_share_back_when_the_last_clone_goes() {
        let budget = Budget::new(8 * UNIT);
        let mut held = budget.reserve(5 * UNIT, Duration::ZERO).await.unwrap();
        assert_eq!(budget.available_units(), 3);
        shrink(&mut held, 2 * UNIT - 1);
        assert_eq!(budget.available_units(), 6, "shrunk to the bytes used");
        let frame = bytes::Bytes::from_owner(HeldBytes::new(
            bytes::Bytes::from_static(b"event"),
            vec![held],
        ));
        let written_part = frame.slice(1..);
        drop(frame);
        assert_eq!(budget.available_units(), 6, "a clone still holds it");
        assert_eq!(&written_part[..], b"vent");
        drop(written_part);
        assert_eq!(budget.available_units(), 8);
        // More than the whole budget is capped at it, so it can be met at all.
        let whole = budget.reserve(100 * UNIT, Duration::ZERO).await.unwrap();
        assert_eq!(whole.num_permits(), 8);
        let busy = budget.reserve(1, Duration::from_millis(10)).await;
        assert_eq!(busy.unwrap_err(), Refused::Busy);
    }
}
