//! The clock seam: wall-clock milliseconds, replaceable in tests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Source of arrival timestamps and of "now" for retention.
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The system's real-time clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)
    }
}

/// A clock that only moves when told to; for tests of retention and timestamps.
#[derive(Debug, Default)]
pub struct ManualClock {
    now_ms: AtomicU64,
}

impl ManualClock {
    /// A clock reading `now_ms`.
    pub fn new(now_ms: u64) -> Self {
        ManualClock {
            now_ms: AtomicU64::new(now_ms),
        }
    }

    /// Sets the time.
    pub fn set_ms(&self, now_ms: u64) {
        self.now_ms.store(now_ms, Ordering::SeqCst);
    }

    /// Moves the time forward.
    pub fn advance_ms(&self, delta_ms: u64) {
        self.now_ms.fetch_add(delta_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now_ms.load(Ordering::SeqCst)
    }
}

/// Real time sped up `speed` times from the moment it was made, until frozen. Benchmarks run
/// an engine on it so the 24-hour minimum retention passes within a short run: records expire
/// and rings wrap and recycle their segments under load, as a long-running engine's do.
#[derive(Debug)]
pub struct ScaledClock {
    started: std::time::Instant,
    base_ms: u64,
    speed: u64,
    /// The time it stopped at; 0 while it runs.
    frozen_ms: AtomicU64,
}

impl ScaledClock {
    /// A clock reading the real time now and running `speed` times faster from here.
    pub fn new(speed: u64) -> Self {
        ScaledClock {
            started: std::time::Instant::now(),
            base_ms: SystemClock.now_ms(),
            speed: speed.max(1),
            frozen_ms: AtomicU64::new(0),
        }
    }

    /// Stops the clock where it is (a read-back after the run then sees what was retained
    /// at that moment, without records expiring under it).
    pub fn freeze(&self) {
        let now = self.now_ms();
        let _ = self
            .frozen_ms
            .compare_exchange(0, now, Ordering::SeqCst, Ordering::SeqCst);
    }
}

impl Clock for ScaledClock {
    fn now_ms(&self) -> u64 {
        let frozen = self.frozen_ms.load(Ordering::SeqCst);
        if frozen != 0 {
            return frozen;
        }
        let elapsed_us = self.started.elapsed().as_micros() as u64;
        let now = self.base_ms + elapsed_us.saturating_mul(self.speed) / 1000;
        // A freeze while this was computed wins, so no reading ever comes after the frozen
        // time (a freeze computed after this reading is at least this reading).
        match self.frozen_ms.load(Ordering::SeqCst) {
            0 => now,
            frozen => frozen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scaled_clock_runs_faster_than_real_time_until_frozen() {
        let clock = ScaledClock::new(1000);
        let start = clock.now_ms();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let later = clock.now_ms();
        // 20 ms of real time is at least 20 s of this clock's.
        assert!(later - start >= 20_000, "{start} -> {later}");
        clock.freeze();
        let frozen = clock.now_ms();
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert_eq!(clock.now_ms(), frozen);
        assert!(frozen >= later);
    }
}
