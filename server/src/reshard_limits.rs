//! Kinesis' limits on resharding, and what the process can hold.
//!
//! Kinesis allows ten UpdateShardCount calls per stream in any rolling 24 hours, and five
//! resharding calls (SplitShard, MergeShards, UpdateShardCount) per second per account. Each
//! new shard costs the server files and descriptors, so besides those limits a request is
//! refused up front when the shards it would add need more descriptors than the process has
//! left (a LimitExceededException naming the limit), rather than failing half-way with "too
//! many open files" for every tenant. The windows live in memory: a restart forgets them.

use crate::wire::ApiError;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

const DAY_MS: u64 = 24 * 3600 * 1000;
/// Resharding calls per second per account.
const RESHARDS_PER_SECOND_MAX: usize = 5;
/// Descriptors a new shard may take (its directory lock, its segment, a spare segment).
const DESCRIPTORS_PER_SHARD: u64 = 3;
/// Descriptors kept free for connections, tenants and the metadata log.
const DESCRIPTORS_RESERVED: u64 = 512;

/// One tenant's resharding history.
#[derive(Debug, Default)]
pub(crate) struct ReshardLimits {
    /// UpdateShardCount times per stream incarnation (name, creation time).
    updates: Mutex<HashMap<(String, u64), VecDeque<u64>>>,
    /// Resharding call times of the account, over the last second.
    calls: Mutex<VecDeque<u64>>,
}

impl ReshardLimits {
    /// Whether a resharding call at `now_ms` is under the per-second limit (calls that
    /// resharded count; refused ones do not).
    pub(crate) fn check_rate(&self, now_ms: u64, account: &str) -> Result<(), ApiError> {
        let mut calls = self.calls.lock().expect("reshard limits lock");
        while calls.front().is_some_and(|&t| t + 1000 <= now_ms) {
            calls.pop_front();
        }
        if calls.len() >= RESHARDS_PER_SECOND_MAX {
            return Err(rate_exceeded(account, RESHARDS_PER_SECOND_MAX));
        }
        Ok(())
    }

    /// Counts a resharding call that succeeded.
    pub(crate) fn record_call(&self, now_ms: u64) {
        self.calls
            .lock()
            .expect("reshard limits lock")
            .push_back(now_ms);
    }

    /// Whether stream `stream` (created at `created_ms`) may take another UpdateShardCount
    /// at `now_ms`: at most `per_day_max` in any 24 hours (0: no limit).
    pub(crate) fn check_update(
        &self,
        stream: &str,
        created_ms: u64,
        now_ms: u64,
        per_day_max: u32,
        account: &str,
    ) -> Result<(), ApiError> {
        if per_day_max == 0 {
            return Ok(());
        }
        let mut updates = self.updates.lock().expect("reshard limits lock");
        // Windows a day old are empty: their streams (or incarnations) are forgotten.
        updates.retain(|_, times| times.back().is_some_and(|&t| t + DAY_MS > now_ms));
        let times = updates.entry((stream.to_owned(), created_ms)).or_default();
        while times.front().is_some_and(|&t| t + DAY_MS <= now_ms) {
            times.pop_front();
        }
        if times.len() >= per_day_max as usize {
            let next_ms = times.front().map_or(now_ms, |&t| t + DAY_MS);
            return Err(updates_exceeded(
                stream,
                account,
                per_day_max,
                next_ms - now_ms,
            ));
        }
        Ok(())
    }

    /// Counts a successful UpdateShardCount.
    pub(crate) fn record_update(&self, stream: &str, created_ms: u64, now_ms: u64) {
        let mut updates = self.updates.lock().expect("reshard limits lock");
        updates
            .entry((stream.to_owned(), created_ms))
            .or_default()
            .push_back(now_ms);
    }
}

/// More than `per_second` resharding calls in a second under `account`.
pub(crate) fn rate_exceeded(account: &str, per_second: usize) -> ApiError {
    ApiError::limit_exceeded(format!(
        "Rate exceeded for resharding calls under account {account}: at most {per_second} per second."
    ))
}

/// Stream `stream` had `per_day` UpdateShardCount calls in the last 24 hours; the next is
/// possible in `next_in_ms`.
pub(crate) fn updates_exceeded(
    stream: &str,
    account: &str,
    per_day: u32,
    next_in_ms: u64,
) -> ApiError {
    ApiError::limit_exceeded(format!(
        "Stream {stream} under account {account} has had {per_day} UpdateShardCount calls in the last 24 hours, the most allowed; the next is possible in {} minutes.",
        next_in_ms.div_ceil(60_000)
    ))
}

/// Refuses a request that would add `new_shards` shards when the process has too few file
/// descriptors left for them.
pub(crate) fn check_descriptors(new_shards: u64) -> Result<(), ApiError> {
    let Some((open, limit)) = descriptors() else {
        return Ok(());
    };
    let needed = new_shards * DESCRIPTORS_PER_SHARD;
    if open + needed + DESCRIPTORS_RESERVED > limit {
        return Err(ApiError::limit_exceeded(format!(
            "This server cannot hold {new_shards} more shards: it has {open} of its {limit} file descriptors open and keeps {DESCRIPTORS_RESERVED} free. Raise its open-file limit (ulimit -n), or delete streams."
        )));
    }
    Ok(())
}

/// Descriptors open in this process, and its soft limit (Linux: /proc/self, so no
/// `unsafe` getrlimit).
fn descriptors() -> Option<(u64, u64)> {
    let open = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    // "Max open files            1024                 524288               files"
    let soft = limits
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))?
        .split_whitespace()
        .next()?;
    Some((open, soft.parse().unwrap_or(u64::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_updates_per_stream_in_any_24_hours() {
        let limits = ReshardLimits::default();
        let t0 = 1_000_000_000;
        for i in 0..10 {
            limits.check_update("s", 1, t0 + i, 10, "a").unwrap();
            limits.record_update("s", 1, t0 + i);
        }
        let error = limits
            .check_update("s", 1, t0 + 3_600_000, 10, "a")
            .unwrap_err();
        assert_eq!(error.name, "LimitExceededException");
        assert!(
            error.message.contains("in 1380 minutes"),
            "{}",
            error.message
        );
        // Another stream, and another incarnation of the same name, have their own.
        limits.check_update("t", 1, t0, 10, "a").unwrap();
        limits.check_update("s", 2, t0, 10, "a").unwrap();
        // A day after the first, one more is allowed.
        limits.check_update("s", 1, t0 + DAY_MS, 10, "a").unwrap();
        limits.check_update("s", 1, t0, 0, "a").unwrap();
    }

    #[test]
    fn five_resharding_calls_per_second_per_account() {
        let limits = ReshardLimits::default();
        for i in 0..5 {
            limits.check_rate(10_000 + i * 100, "a").unwrap();
            limits.record_call(10_000 + i * 100);
        }
        assert!(limits.check_rate(10_600, "a").is_err());
        limits.check_rate(11_000, "a").unwrap();
    }

    #[test]
    fn descriptors_are_counted_against_the_limit() {
        let (open, limit) = descriptors().unwrap();
        assert!(open > 0 && limit >= open);
        check_descriptors(0).unwrap();
        let error = check_descriptors(limit).unwrap_err();
        assert!(
            error.message.contains("file descriptors"),
            "{}",
            error.message
        );
    }
}
