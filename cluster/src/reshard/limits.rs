//! Kinesis' limits on resharding calls, kept by the controller (every reshard goes through
//! it): five resharding calls (SplitShard, MergeShards, UpdateShardCount) per second for the
//! account, and a number of UpdateShardCount calls per stream in any 24 hours (ten by
//! default). As in single-node mode the windows live in memory: a new controller starts them
//! afresh.

use std::collections::{BTreeMap, VecDeque};

use super::{ReshardChange, ReshardRefused};

const DAY_MS: u64 = 24 * 3_600_000;
/// Resharding calls per second for the account.
pub const RESHARDS_PER_SECOND_MAX: usize = 5;

/// The resharding calls the controller carried out lately.
#[derive(Debug, Default)]
pub struct ReshardWindows {
    /// Times of the last second's resharding calls.
    calls: VecDeque<u64>,
    /// Times of each stream's UpdateShardCount calls of the last day, by stream uid (a
    /// stream made again under the same name starts afresh).
    updates: BTreeMap<u64, VecDeque<u64>>,
}

impl ReshardWindows {
    /// Whether `change` of stream `uid` may be carried out at `now_ms`, at most
    /// `updates_per_day` UpdateShardCount calls a stream (0: no limit).
    pub fn check(
        &mut self,
        uid: u64,
        change: &ReshardChange,
        now_ms: u64,
        updates_per_day: u32,
    ) -> Result<(), ReshardRefused> {
        while self.calls.front().is_some_and(|&t| t + 1_000 <= now_ms) {
            self.calls.pop_front();
        }
        // Windows a day old are empty: their streams are forgotten.
        self.updates
            .retain(|_, times| times.back().is_some_and(|&t| t + DAY_MS > now_ms));
        if self.calls.len() >= RESHARDS_PER_SECOND_MAX {
            return Err(ReshardRefused::RateExceeded {
                per_second: RESHARDS_PER_SECOND_MAX,
            });
        }
        if !matches!(change, ReshardChange::ScaleTo { .. }) || updates_per_day == 0 {
            return Ok(());
        }
        let Some(times) = self.updates.get_mut(&uid) else {
            return Ok(());
        };
        while times.front().is_some_and(|&t| t + DAY_MS <= now_ms) {
            times.pop_front();
        }
        if times.len() >= updates_per_day as usize {
            let next_ms = times.front().map_or(now_ms, |&t| t + DAY_MS);
            return Err(ReshardRefused::UpdatesPerDay {
                per_day: updates_per_day,
                next_in_ms: next_ms - now_ms,
            });
        }
        Ok(())
    }

    /// Counts `change` of stream `uid`, carried out at `now_ms`.
    pub fn record(&mut self, uid: u64, change: &ReshardChange, now_ms: u64) {
        self.calls.push_back(now_ms);
        if matches!(change, ReshardChange::ScaleTo { .. }) {
            self.updates.entry(uid).or_default().push_back(now_ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPLIT: ReshardChange = ReshardChange::Split {
        shard: 0,
        new_starting_hash_key: 5,
    };
    const SCALE: ReshardChange = ReshardChange::ScaleTo { target: 2 };

    #[test]
    fn five_calls_a_second_for_the_account() {
        let mut windows = ReshardWindows::default();
        for (i, uid) in (0..5).zip([1, 2, 1, 3, 1]) {
            windows.check(uid, &SPLIT, 1_000 + i, 10).unwrap();
            windows.record(uid, &SPLIT, 1_000 + i);
        }
        let refused = windows.check(4, &SPLIT, 1_999, 10);
        assert_eq!(refused, Err(ReshardRefused::RateExceeded { per_second: 5 }));
        // A second after the first, it has left the window.
        windows.check(4, &SPLIT, 2_000, 10).unwrap();
    }

    #[test]
    fn a_stream_s_updates_in_any_24_hours() {
        let mut windows = ReshardWindows::default();
        let t0 = 1_000_000_000;
        for i in 0..3 {
            let at = t0 + i * 2_000;
            windows.check(1, &SCALE, at, 3).unwrap();
            windows.record(1, &SCALE, at);
        }
        let at = t0 + 3_600_000;
        let refused = windows.check(1, &SCALE, at, 3);
        let next_in_ms = DAY_MS - 3_600_000;
        assert_eq!(
            refused,
            Err(ReshardRefused::UpdatesPerDay {
                per_day: 3,
                next_in_ms
            })
        );
        // Another stream, a split of this one, and no limit at all are not held back.
        windows.check(2, &SCALE, at, 3).unwrap();
        windows.check(1, &SPLIT, at, 3).unwrap();
        windows.check(1, &SCALE, at, 0).unwrap();
        // A day after the first, one more.
        windows.check(1, &SCALE, t0 + DAY_MS, 3).unwrap();
    }
}
