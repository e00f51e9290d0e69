//! SubscribeToShard leases: one live subscription per (consumer, shard), and Kinesis'
//! 5-second rule between subscriptions. The tenant holds the table; deregistering a consumer
//! or deleting a stream revokes its leases.

use crate::clock::now_ms;
use crate::state::Consumer;
use crate::wire::ApiError;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::Notify;

/// A new subscription to the same (consumer, shard) within this time of the last one is
/// refused (Kinesis' rule); after it, the new one takes over.
pub const RESUBSCRIBE_INTERVAL_MS: u64 = 5_000;

/// Which (consumer, shard) a lease is for, by identity rather than by the ARN's spelling:
/// the stream and consumer with their creation times, and the shard.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LeaseKey {
    stream: String,
    stream_created_ms: u64,
    consumer: String,
    consumer_created_ms: u64,
    shard: String,
}

impl LeaseKey {
    /// The lease of `consumer` of `stream` (created at `stream_created_ms`) on `shard`
    /// (spelled canonically: `shardId-7` and `shardId-000000000007` are one shard).
    pub fn new(stream: &str, stream_created_ms: u64, consumer: &Consumer, shard: &str) -> LeaseKey {
        let shard = match sluice_core::seqnum::parse_shard_id(shard) {
            Some(index) => sluice_core::ShardId::new(index).to_string(),
            None => shard.to_owned(),
        };
        LeaseKey {
            stream: stream.to_owned(),
            stream_created_ms,
            consumer: consumer.name.clone(),
            consumer_created_ms: consumer.created_ms,
            shard,
        }
    }
}

#[derive(Debug)]
struct LeaseEntry {
    started_ms: u64,
    cancel: Arc<Notify>,
    /// Alive while the subscription's task runs.
    holder: Weak<()>,
}

/// Who holds each (consumer, shard) lease, and when it was taken (for the 5-second rule).
/// Entries go once their subscription ended and 5 seconds have passed, so the map holds the
/// live subscriptions and the recent ones.
#[derive(Debug, Default)]
pub struct Leases {
    entries: Mutex<HashMap<LeaseKey, LeaseEntry>>,
}

/// A held lease; `cancel` fires when another subscription takes it over or the consumer or
/// stream goes away.
pub struct Lease {
    /// Notified when the lease is taken over or revoked.
    pub cancel: Arc<Notify>,
    _holder: Arc<()>,
}

/// The refusal of a subscription within [`RESUBSCRIBE_INTERVAL_MS`] of the last one.
pub fn too_soon(consumer: &str, shard: &str) -> ApiError {
    ApiError::in_use(format!(
        "Another subscription of consumer {consumer} to shard {shard} started less than {} seconds ago.",
        RESUBSCRIBE_INTERVAL_MS / 1000
    ))
}

impl Leases {
    /// Takes the lease of `key`: refused within [`RESUBSCRIBE_INTERVAL_MS`] of the last
    /// subscription to it, taken over (its holder cancelled) after.
    pub fn acquire(&self, key: LeaseKey) -> Result<Lease, ApiError> {
        let now = now_ms();
        let recent =
            |entry: &LeaseEntry| now.saturating_sub(entry.started_ms) < RESUBSCRIBE_INTERVAL_MS;
        let mut entries = self.entries.lock().expect("leases lock");
        entries.retain(|_, entry| entry.holder.strong_count() > 0 || recent(entry));
        if let Some(entry) = entries.get(&key) {
            if recent(entry) {
                return Err(too_soon(&key.consumer, &key.shard));
            }
            entry.cancel.notify_one();
        }
        let cancel = Arc::new(Notify::new());
        let holder = Arc::new(());
        entries.insert(
            key,
            LeaseEntry {
                started_ms: now,
                cancel: cancel.clone(),
                holder: Arc::downgrade(&holder),
            },
        );
        Ok(Lease {
            cancel,
            _holder: holder,
        })
    }

    /// Ends the subscriptions that `matches` selects.
    fn revoke(&self, matches: impl Fn(&LeaseKey) -> bool) {
        let mut entries = self.entries.lock().expect("leases lock");
        entries.retain(|key, entry| {
            if matches(key) {
                entry.cancel.notify_one();
            }
            !matches(key)
        });
    }

    /// Ends every subscription of a deregistered consumer.
    pub fn revoke_consumer(&self, stream: &str, consumer: &str, consumer_created_ms: u64) {
        self.revoke(|key| {
            key.stream == stream
                && key.consumer == consumer
                && key.consumer_created_ms == consumer_created_ms
        });
    }

    /// Ends every subscription to a deleted stream (the one created at `created_ms`).
    pub fn revoke_stream(&self, stream: &str, created_ms: u64) {
        self.revoke(|key| key.stream == stream && key.stream_created_ms == created_ms);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().expect("leases lock").len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(consumer: &str, shard: &str) -> LeaseKey {
        LeaseKey {
            stream: "s".into(),
            stream_created_ms: 1,
            consumer: consumer.into(),
            consumer_created_ms: 2,
            shard: shard.into(),
        }
    }

    #[test]
    fn a_second_subscription_within_five_seconds_is_refused() {
        let leases = Leases::default();
        let _first = leases.acquire(key("c", "shardId-000000000000")).unwrap();
        let second = leases
            .acquire(key("c", "shardId-000000000000"))
            .err()
            .unwrap();
        assert_eq!(second.name, "ResourceInUseException");
        assert!(
            leases.acquire(key("c", "shardId-000000000001")).is_ok(),
            "other shards are free"
        );
        assert_eq!(leases.len(), 2);
    }

    #[test]
    fn revoking_a_consumer_or_its_stream_cancels_its_leases() {
        let leases = Leases::default();
        let lease = leases.acquire(key("c", "shardId-000000000000")).unwrap();
        let other = leases.acquire(key("d", "shardId-000000000000")).unwrap();
        leases.revoke_consumer("s", "c", 2);
        assert_eq!(leases.len(), 1);
        // The permit stored by notify_one wakes the holder's next wait at once.
        futures_lite::future::block_on(lease.cancel.notified());
        leases.revoke_stream("s", 1);
        assert_eq!(leases.len(), 0);
        futures_lite::future::block_on(other.cancel.notified());
    }

    #[test]
    fn ended_subscriptions_are_forgotten_after_the_interval() {
        let leases = Leases::default();
        drop(leases.acquire(key("c", "shardId-000000000000")).unwrap());
        for entry in leases.entries.lock().unwrap().values_mut() {
            entry.started_ms -= RESUBSCRIBE_INTERVAL_MS;
        }
        let _live = leases.acquire(key("c", "shardId-000000000001")).unwrap();
        assert_eq!(leases.len(), 1, "the ended, old entry was pruned");
    }
}
