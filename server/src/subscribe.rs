//! SubscribeToShard: an event stream of records pushed from an engine `Subscription`, one
//! lease per (consumer, shard), heartbeats while idle, and an end after `subscription_ms`.

use crate::ops::consumers::{FoundConsumer, find_by_arn};
use crate::ops::records::{ITERATOR_TYPES, child_shards, iterator_start, records_out};
use crate::tenant::{Tenant, now_ms};
use crate::wire::validate::SEQUENCE_NUMBER_PATTERN;
use crate::wire::{ApiError, Protocol, Timestamp, Validate, Validator};
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sluice_core::{SequenceNumber, Subscription};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::{Notify, mpsc};

/// A new subscription to the same (consumer, shard) within this time of the last one is
/// refused (Kinesis' rule); after it, the new one takes over.
pub const RESUBSCRIBE_INTERVAL_MS: u64 = 5_000;

/// Frames buffered per subscription before the task waits for the client (an event holds
/// up to 10 MiB of records).
const FRAMES_BUFFERED_MAX: usize = 2;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StartingPosition {
    r#type: Option<String>,
    sequence_number: Option<String>,
    timestamp: Option<Timestamp>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SubscribeInput {
    #[serde(rename = "ConsumerARN")]
    consumer_arn: Option<String>,
    shard_id: Option<String>,
    starting_position: Option<StartingPosition>,
}

impl Validate for SubscribeInput {
    fn validate(&self, v: &mut Validator) {
        v.required("consumerARN", &self.consumer_arn);
        v.length("consumerARN", &self.consumer_arn, 1, 2048);
        v.required("shardId", &self.shard_id);
        v.name("shardId", &self.shard_id);
        v.required("startingPosition", &self.starting_position);
        if let Some(position) = &self.starting_position {
            v.required("startingPosition.type", &position.r#type);
            v.one_of("startingPosition.type", &position.r#type, &ITERATOR_TYPES);
            v.decimal(
                "startingPosition.sequenceNumber",
                &position.sequence_number,
                129,
                SEQUENCE_NUMBER_PATTERN,
            );
        }
    }
}

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
    /// The lease of `found` on `shard` (spelled canonically: `shardId-7` and
    /// `shardId-000000000007` are one shard).
    fn new(found: &FoundConsumer, shard: &str) -> LeaseKey {
        let shard = match sluice_core::seqnum::parse_shard_id(shard) {
            Some(index) => sluice_core::ShardId::new(index).to_string(),
            None => shard.to_owned(),
        };
        LeaseKey {
            stream: found.stream.clone(),
            stream_created_ms: found.stream_created_ms,
            consumer: found.consumer.name.clone(),
            consumer_created_ms: found.consumer.created_ms,
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
struct Lease {
    cancel: Arc<Notify>,
    _holder: Arc<()>,
}

impl Leases {
    fn acquire(&self, key: LeaseKey) -> Result<Lease, ApiError> {
        let now = now_ms();
        let recent =
            |entry: &LeaseEntry| now.saturating_sub(entry.started_ms) < RESUBSCRIBE_INTERVAL_MS;
        let mut entries = self.entries.lock().expect("leases lock");
        entries.retain(|_, entry| entry.holder.strong_count() > 0 || recent(entry));
        if let Some(entry) = entries.get(&key) {
            if recent(entry) {
                return Err(ApiError::in_use(format!(
                    "Another subscription of consumer {} to shard {} started less than {} seconds ago.",
                    key.consumer,
                    key.shard,
                    RESUBSCRIBE_INTERVAL_MS / 1000
                )));
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

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct SubscribeToShardEvent<'a> {
    records: Vec<crate::ops::records::RecordOut<'a>>,
    /// Absent on the event that ends a closed shard (KCL reads its absence as the end).
    #[serde(skip_serializing_if = "Option::is_none")]
    continuation_sequence_number: Option<String>,
    millis_behind_latest: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    child_shards: Vec<crate::shapes::ChildShard>,
}

/// The ContinuationSequenceNumber for a subscriber whose next record is at `position`: the
/// number just below it (the last record delivered, or the shard's start). Clients resume
/// AFTER it, as KCL does, and lose nothing; it moves on even when no record arrives.
fn checkpoint(position: SequenceNumber) -> String {
    position.checkpoint().to_string()
}

fn frame(headers: Vec<Header>, payload: Vec<u8>) -> Bytes {
    let message = Message::new_from_parts(headers, payload);
    let mut buffer = Vec::new();
    aws_smithy_eventstream::frame::write_message_to(&message, &mut buffer)
        .expect("event headers are within the format's limits");
    Bytes::from(buffer)
}

fn string_header(name: &'static str, value: &str) -> Header {
    Header::new(name, HeaderValue::String(value.to_owned().into()))
}

/// An event frame.
fn event_frame(protocol: Protocol, event_type: &str, payload: Vec<u8>) -> Bytes {
    frame(
        vec![
            string_header(":message-type", "event"),
            string_header(":event-type", event_type),
            string_header(":content-type", protocol.content_type()),
        ],
        payload,
    )
}

/// A modelled exception frame.
fn exception_frame(protocol: Protocol, error: &ApiError) -> Bytes {
    #[derive(Serialize)]
    struct ExceptionBody<'a> {
        message: &'a str,
    }
    frame(
        vec![
            string_header(":message-type", "exception"),
            string_header(":exception-type", error.name),
            string_header(":content-type", protocol.content_type()),
        ],
        protocol.encode(&ExceptionBody {
            message: &error.message,
        }),
    )
}

/// A started subscription: the frames arrive on `frames`.
pub struct Started {
    /// Event-stream frames, ending when the subscription does.
    pub frames: mpsc::Receiver<Bytes>,
}

/// Checks the request, takes the lease and starts the task that pushes frames.
pub fn start(
    tenant: Arc<Tenant>,
    input: SubscribeInput,
    protocol: Protocol,
) -> Result<Started, ApiError> {
    let consumer_arn = input.consumer_arn.expect("validated");
    let shard = input.shard_id.expect("validated");
    let position = input.starting_position.expect("validated");
    let found = find_by_arn(&tenant, &consumer_arn)?;
    let start = iterator_start(
        position.r#type.as_deref().expect("validated"),
        position.sequence_number.as_deref(),
        position.timestamp,
    )?;
    let subscription = tenant
        .engine
        .stream(&found.stream)?
        .subscribe(&shard, start)?;
    let lease = tenant.leases.acquire(LeaseKey::new(&found, &shard))?;
    // A deregistration (or delete) between the lookup and the lease revoked nothing of
    // ours: look again now that the lease is visible to revocations.
    find_by_arn(&tenant, &consumer_arn)?;
    let (sender, frames) = mpsc::channel(FRAMES_BUFFERED_MAX);
    tokio::spawn(push_events(
        tenant,
        found.stream,
        subscription,
        protocol,
        sender,
        lease,
    ));
    Ok(Started { frames })
}

async fn push_events(
    tenant: Arc<Tenant>,
    stream: String,
    mut subscription: Subscription,
    protocol: Protocol,
    sender: mpsc::Sender<Bytes>,
    lease: Lease,
) {
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(tenant.config.subscription_ms);
    let heartbeat = Duration::from_millis(tenant.config.heartbeat_ms);
    let initial = event_frame(
        protocol,
        "initial-response",
        protocol.encode(&crate::shapes::Empty {}),
    );
    if !deliver(&sender, initial, &lease, deadline).await {
        return;
    }
    loop {
        let wait = deadline
            .saturating_duration_since(tokio::time::Instant::now())
            .min(heartbeat);
        if wait.is_zero() {
            return;
        }
        let frame = tokio::select! {
            _ = lease.cancel.notified() => {
                let error = ApiError::in_use("Another subscription to this consumer and shard took over.");
                // Best effort: a client that stopped reading does not get it.
                let _ = sender.try_send(exception_frame(protocol, &error));
                return;
            }
            next = tokio::time::timeout(wait, subscription.next()) => next,
        };
        let (bytes, last) = match frame {
            Ok(Some(Ok(event))) => {
                let children = match child_shards(&tenant, &stream, &event.records) {
                    Ok(children) => children,
                    Err(error) => {
                        deliver(&sender, exception_frame(protocol, &error), &lease, deadline).await;
                        return;
                    }
                };
                let payload = protocol.encode(&SubscribeToShardEvent {
                    records: records_out(&event.records),
                    continuation_sequence_number: (!event.records.end_of_shard)
                        .then(|| checkpoint(event.continuation_sequence_number)),
                    millis_behind_latest: event.records.millis_behind_latest,
                    child_shards: children,
                });
                (
                    event_frame(protocol, "SubscribeToShardEvent", payload),
                    event.records.end_of_shard,
                )
            }
            Ok(Some(Err(error))) => (
                exception_frame(
                    protocol,
                    &ApiError::from(error).for_account(&tenant.account),
                ),
                true,
            ),
            Ok(None) => return,
            Err(_idle) => {
                let payload = protocol.encode(&SubscribeToShardEvent {
                    records: Vec::new(),
                    continuation_sequence_number: Some(checkpoint(subscription.position())),
                    millis_behind_latest: 0,
                    child_shards: Vec::new(),
                });
                (
                    event_frame(protocol, "SubscribeToShardEvent", payload),
                    false,
                )
            }
        };
        if !deliver(&sender, bytes, &lease, deadline).await || last {
            return;
        }
    }
}

/// Sends a frame unless the client is gone, the subscription's time is up, or its lease
/// was taken over: a client that stops reading cannot hold the task past its deadline.
async fn deliver(
    sender: &mpsc::Sender<Bytes>,
    frame: Bytes,
    lease: &Lease,
    deadline: tokio::time::Instant,
) -> bool {
    tokio::select! {
        sent = sender.send(frame) => sent.is_ok(),
        _ = lease.cancel.notified() => false,
        () = tokio::time::sleep_until(deadline) => false,
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
