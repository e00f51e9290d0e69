//! SubscribeToShard: an event stream of records pushed from an engine `Subscription`, one
//! lease per (consumer, shard), heartbeats while idle, and an end after `subscription_ms`.

use crate::consumer::find_by_arn;
use crate::leases::{Lease, LeaseKey};
use crate::reads::{ITERATOR_TYPES, RecordOut, child_shards, iterator_start, records_out};
use crate::tenant::Tenant;
use crate::wire::validate::SEQUENCE_NUMBER_PATTERN;
use crate::wire::{ApiError, Protocol, Timestamp, Validate, Validator};
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sluice_core::{SequenceNumber, Subscription};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

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

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct SubscribeToShardEvent<'a> {
    records: Vec<RecordOut<'a>>,
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
    let lease = tenant.leases.acquire(LeaseKey::new(
        &found.stream,
        found.stream_created_ms,
        &found.consumer,
        &shard,
    ))?;
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
