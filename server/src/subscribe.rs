//! SubscribeToShard: an event stream of records pushed from a [`Feed`] (an engine
//! `Subscription`, or a cluster shard's replicas), one lease per (consumer, shard),
//! heartbeats while idle, and an end after `subscription_ms`.

use crate::budget::{self, Budget, Refused};
use crate::consumer::find_by_arn;
use crate::leases::{Lease, LeaseKey};
use crate::reads::{ITERATOR_TYPES, RecordOut, child_shards, iterator_start, records_out};
use crate::tenant::Tenant;
use crate::wire::validate::SEQUENCE_NUMBER_PATTERN;
use crate::wire::{ApiError, Incarnation, Protocol, Timestamp, Validate, Validator};
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sluice_core::{SequenceNumber, Subscription, SubscriptionEvent};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

/// Record bytes per event: a subscriber catching up gets its backlog in events of this size
/// rather than GetRecords' 10 MiB, so one that stops reading holds little of the
/// subscription budget (a frame written, one queued, one being made: about 4 MiB encoded).
pub(crate) const EVENT_RECORD_BYTES_MAX: u64 = 1 << 20;

/// Frames queued per subscription before the task waits for the client (an event holds up
/// to 10 MiB of records; every event frame also holds its bytes of the subscription budget).
const FRAMES_BUFFERED_MAX: usize = 1;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StartingPosition {
    pub(crate) r#type: Option<String>,
    pub(crate) sequence_number: Option<String>,
    pub(crate) timestamp: Option<Timestamp>,
}

impl StartingPosition {
    /// Where a subscription to a shard of `stream` (whose numbers `incarnation` tags) starts.
    pub(crate) fn start(
        &self,
        stream: (&str, Incarnation),
    ) -> Result<sluice_core::IteratorStart, ApiError> {
        iterator_start(
            self.r#type.as_deref().expect("validated"),
            self.sequence_number.as_deref(),
            self.timestamp,
            stream,
        )
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SubscribeInput {
    #[serde(rename = "ConsumerARN")]
    pub(crate) consumer_arn: Option<String>,
    pub(crate) shard_id: Option<String>,
    pub(crate) starting_position: Option<StartingPosition>,
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
pub(crate) struct SubscribeToShardEvent<'a> {
    pub(crate) records: Vec<RecordOut<'a>>,
    /// Absent on the event that ends a closed shard (KCL reads its absence as the end).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) continuation_sequence_number: Option<String>,
    pub(crate) millis_behind_latest: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) child_shards: Vec<crate::shapes::ChildShard>,
}

/// Where a subscription's events come from. `next` must be cancel-safe: the pusher drops it
/// when a heartbeat is due, and the next call must lose nothing.
pub(crate) trait Feed: Send + Sync + 'static {
    /// One event's records, read but not yet encoded.
    type Event: Send;

    /// Where the next event starts (a heartbeat's continuation).
    fn position(&self) -> SequenceNumber;

    /// The next event, once there is one; `None` once the feed ended quietly.
    fn next(&mut self) -> impl Future<Output = Option<Result<Self::Event, ApiError>>> + Send;

    /// What the pusher needs to know of `event` before encoding it.
    fn facts(event: &Self::Event) -> EventFacts;

    /// The encoded `SubscribeToShardEvent` of `event`.
    fn payload(&self, event: &Self::Event, protocol: Protocol) -> Result<Vec<u8>, ApiError>;
}

/// An event's size and place, known before it is encoded.
pub(crate) struct EventFacts {
    /// Its records.
    pub records: usize,
    /// Their data bytes.
    pub data_bytes: usize,
    /// How far behind the shard's newest record it ends.
    pub millis_behind_latest: u64,
    /// It ends a closed shard: the subscription ends with it.
    pub end_of_shard: bool,
    /// At least the bytes its frame encodes to (within a KiB unit of the truth is enough:
    /// the reservation is shrunk to the real frame).
    pub encoded_bytes_bound: usize,
}

/// The engine's subscription to a shard of `stream` (single-node mode).
struct EngineFeed {
    subscription: Subscription,
    tenant: Arc<Tenant>,
    stream: String,
    incarnation: Incarnation,
}

impl Feed for EngineFeed {
    type Event = SubscriptionEvent;

    fn position(&self) -> SequenceNumber {
        self.subscription.position()
    }

    async fn next(&mut self) -> Option<Result<SubscriptionEvent, ApiError>> {
        Some(self.subscription.next().await?.map_err(ApiError::from))
    }

    fn facts(event: &SubscriptionEvent) -> EventFacts {
        EventFacts {
            records: event.records.len(),
            data_bytes: event.records.records().map(|r| r.data.len()).sum(),
            millis_behind_latest: event.records.millis_behind_latest,
            end_of_shard: event.records.end_of_shard,
            encoded_bytes_bound: encoded_bytes_bound(
                event
                    .records
                    .raw_records()
                    .map(|r| (r.data.len(), r.partition_key.len())),
            ),
        }
    }

    fn payload(&self, event: &SubscriptionEvent, protocol: Protocol) -> Result<Vec<u8>, ApiError> {
        let records = records_out(
            &self.tenant,
            (&self.stream, self.incarnation),
            &event.records,
        )?;
        let reply = SubscribeToShardEvent {
            records,
            continuation_sequence_number: (!event.records.end_of_shard)
                .then(|| checkpoint(self.incarnation, event.continuation_sequence_number)),
            millis_behind_latest: event.records.millis_behind_latest,
            child_shards: child_shards(&self.tenant, &self.stream, &event.records)?,
        };
        Ok(crate::reads::encode_with_records(protocol, reply))
    }
}

impl<'a> crate::reads::WithRecords<'a> for SubscribeToShardEvent<'a> {
    fn records_mut(&mut self) -> &mut Vec<RecordOut<'a>> {
        &mut self.records
    }
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
    /// Set when the subscription ended because its client stopped reading: the reply must
    /// fail (aborting its HTTP/2 stream or HTTP/1.1 connection), which frees the frame it
    /// could not deliver.
    pub stalled: Arc<AtomicBool>,
}

/// Checks the request, takes the lease and starts the task that pushes frames. Event
/// frames hold their encoded bytes of `budget` for as long as they exist: until written to
/// the client, or dropped with its connection.
/// Drops the connection a subscription's reply goes out on.
pub type Abort = Arc<dyn Fn() + Send + Sync>;

/// Where a subscription's frames go: the budget they hold bytes of while they exist, and
/// the abort that cuts off a subscriber that stopped reading.
pub struct Sink {
    pub(crate) budget: Budget,
    pub(crate) abort: Abort,
}

pub(crate) fn start(
    tenant: Arc<Tenant>,
    input: SubscribeInput,
    protocol: Protocol,
    sink: Sink,
) -> Result<Started, ApiError> {
    let consumer_arn = input.consumer_arn.expect("validated");
    let shard = input.shard_id.expect("validated");
    let position = input.starting_position.expect("validated");
    let found = find_by_arn(&tenant, &consumer_arn)?;
    let incarnation = Incarnation::of(found.stream_created_ms);
    let start = position.start((&found.stream, incarnation))?;
    let mut subscription = tenant
        .engine
        .stream(&found.stream)?
        .subscribe(&shard, start)?;
    subscription.set_event_bytes_max(EVENT_RECORD_BYTES_MAX);
    let lease = tenant.leases.acquire(LeaseKey::new(
        &found.stream,
        found.stream_created_ms,
        &found.consumer,
        &shard,
    ))?;
    // A deregistration (or delete) between the lookup and the lease revoked nothing of
    // ours: look again now that the lease is visible to revocations.
    find_by_arn(&tenant, &consumer_arn)?;
    let feed = EngineFeed {
        subscription,
        tenant: tenant.clone(),
        stream: found.stream.clone(),
        incarnation,
    };
    let subscriber = Subscriber {
        tenant,
        stream: found.stream,
        consumer: found.consumer.name,
        incarnation,
        lease,
    };
    Ok(push(feed, subscriber, protocol, sink))
}

/// Whom a subscription's events are for: the consumer of `stream` (its account's tenant
/// counts and meters them), the tag of the numbers it hands out, and its lease.
pub(crate) struct Subscriber {
    pub tenant: Arc<Tenant>,
    pub stream: String,
    pub consumer: String,
    pub incarnation: Incarnation,
    pub lease: Lease,
}

/// Starts the task that pushes `feed`'s events to `subscriber` as frames.
pub(crate) fn push<F: Feed>(
    feed: F,
    subscriber: Subscriber,
    protocol: Protocol,
    Sink { budget, abort }: Sink,
) -> Started {
    let Subscriber {
        tenant,
        stream,
        consumer,
        incarnation,
        lease,
    } = subscriber;
    let (sender, frames) = mpsc::channel(FRAMES_BUFFERED_MAX);
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(tenant.config.subscription_ms);
    let heartbeat = Duration::from_millis(tenant.config.heartbeat_ms);
    let stalled = Arc::new(AtomicBool::new(false));
    let pusher = Pusher {
        feed,
        stall_limit: Duration::from_millis(tenant.config.stall_timeout_ms),
        incarnation,
        stuck_since: None,
        stalled: stalled.clone(),
        abort,
        tenant,
        stream,
        consumer,
        protocol,
        sender,
        lease,
        budget,
        outstanding: Budget::new(budget::UNIT),
        deadline,
        heartbeat,
    };
    tokio::spawn(pusher.run());
    Started { frames, stalled }
}

/// The task that pushes one subscription's frames.
struct Pusher<F: Feed> {
    feed: F,
    tenant: Arc<Tenant>,
    stream: String,
    /// The consumer's name, for the SubscribeToShardEvent metrics.
    consumer: String,
    protocol: Protocol,
    sender: mpsc::Sender<Bytes>,
    lease: Lease,
    budget: Budget,
    /// One event frame of this subscription may exist at a time: the next waits until the
    /// previous was written out, so a subscriber that stops reading holds one frame.
    outstanding: Budget,
    /// Tags the numbers this subscription hands out.
    incarnation: Incarnation,
    /// Since when the previous event frame has not been written out.
    stuck_since: Option<tokio::time::Instant>,
    /// How long that may last before the client is taken to have stopped reading.
    stall_limit: Duration,
    stalled: Arc<AtomicBool>,
    /// Drops the connection of a subscriber that stopped reading.
    abort: Abort,
    deadline: tokio::time::Instant,
    heartbeat: Duration,
}

/// What the pusher does next.
enum Step {
    /// Send this frame, then go on (or end, when `last`).
    Send { frame: Bytes, last: bool },
    /// End quietly.
    End,
}

impl<F: Feed> Pusher<F> {
    async fn run(mut self) {
        let initial = event_frame(
            self.protocol,
            "initial-response",
            self.protocol.encode(&crate::shapes::Empty {}),
        );
        if !self.deliver(initial).await {
            return;
        }
        // An event read but not yet sent for want of budget, and where it starts.
        let mut pending: Option<(F::Event, SequenceNumber)> = None;
        loop {
            let wait = self
                .deadline
                .saturating_duration_since(tokio::time::Instant::now())
                .min(self.heartbeat);
            if wait.is_zero() {
                return;
            }
            let step = match pending.take() {
                Some((event, starts)) => self.send_event(event, starts, wait, &mut pending).await,
                None => self.next_event(wait, &mut pending).await,
            };
            match step {
                Step::Send { frame, last } => {
                    if !self.deliver(frame).await || last {
                        return;
                    }
                }
                Step::End => return,
            }
        }
    }

    /// Waits up to `wait` for the subscription's next event: a heartbeat when none came,
    /// an exception when reading failed, else the event's frame (`send_event`).
    async fn next_event(
        &mut self,
        wait: Duration,
        pending: &mut Option<(F::Event, SequenceNumber)>,
    ) -> Step {
        let starts = self.feed.position();
        let next = tokio::select! {
            _ = self.lease.cancel.notified() => return self.taken_over(),
            next = tokio::time::timeout(wait, self.feed.next()) => next,
        };
        match next {
            Ok(Some(Ok(event))) => self.send_event(event, starts, wait, pending).await,
            Ok(Some(Err(error))) => {
                let error = error.for_account(&self.tenant.account);
                Step::Send {
                    frame: exception_frame(self.protocol, &error),
                    last: true,
                }
            }
            Ok(None) => Step::End,
            Err(_idle) => self.heartbeat_frame(starts, 0),
        }
    }

    /// The event's frame, once the budget has room for it. When it has none within
    /// `wait`, the event stays pending and a heartbeat goes instead: the consumer falls
    /// behind (MillisBehindLatest grows) until there is room, as Kinesis' does.
    async fn send_event(
        &mut self,
        event: F::Event,
        starts: SequenceNumber,
        wait: Duration,
        pending: &mut Option<(F::Event, SequenceNumber)>,
    ) -> Step {
        let facts = F::facts(&event);
        let started = tokio::time::Instant::now();
        let previous_written = tokio::select! {
            _ = self.lease.cancel.notified() => return self.taken_over(),
            held = self.outstanding.reserve(1, wait) => held,
        };
        let previous_written = match previous_written {
            Ok(held) => held,
            Err(Refused::Busy) => {
                // The client has not taken the previous event yet.
                let stuck_since = *self.stuck_since.get_or_insert(started);
                if stuck_since.elapsed() >= self.stall_limit {
                    return self.stopped_reading();
                }
                *pending = Some((event, starts));
                return self.heartbeat_frame(starts, facts.millis_behind_latest);
            }
            Err(Refused::Closed) => return Step::End,
        };
        self.stuck_since = None;
        let left = wait.saturating_sub(started.elapsed());
        let held = tokio::select! {
            _ = self.lease.cancel.notified() => return self.taken_over(),
            held = self.budget.reserve(facts.encoded_bytes_bound, left) => held,
        };
        let mut held = match held {
            Ok(held) => held,
            Err(Refused::Busy) => {
                // Other subscriptions hold the budget: this one falls behind meanwhile.
                metrics::counter!("sluice_subscription_events_delayed_total").increment(1);
                *pending = Some((event, starts));
                return self.heartbeat_frame(starts, facts.millis_behind_latest);
            }
            Err(Refused::Closed) => return Step::End,
        };
        let payload = match self.feed.payload(&event, self.protocol) {
            Ok(payload) => payload,
            Err(error) => {
                return Step::Send {
                    frame: exception_frame(self.protocol, &error),
                    last: true,
                };
            }
        };
        self.tenant
            .usage
            .fanout_sent(crate::clock::now_ms(), &self.stream, facts.data_bytes);
        self.record_event(facts.data_bytes, facts.records, facts.millis_behind_latest);
        let frame = event_frame(self.protocol, "SubscribeToShardEvent", payload);
        budget::shrink(&mut held, frame.len());
        Step::Send {
            frame: Bytes::from_owner(budget::HeldBytes::new(frame, vec![held, previous_written])),
            last: facts.end_of_shard,
        }
    }

    /// The `SubscribeToShardEvent.*` datapoints of an event sent, under `AWS/Kinesis` with
    /// the stream's and the consumer's names, as Kinesis publishes them.
    fn record_event(&self, bytes: usize, records: usize, behind_ms: u64) {
        use crate::cloudwatch::store::{SeriesKey, Stats};
        let dims = [
            ("StreamName", self.stream.as_str()),
            ("ConsumerName", self.consumer.as_str()),
        ];
        let point = |name: &str, unit: &str, value: f64| {
            (
                SeriesKey::new("AWS/Kinesis", name, &dims, unit),
                Stats::one(value),
            )
        };
        let points = [
            point("SubscribeToShardEvent.Bytes", "Bytes", bytes as f64),
            point("SubscribeToShardEvent.Records", "Count", records as f64),
            point(
                "SubscribeToShardEvent.MillisBehindLatest",
                "Milliseconds",
                behind_ms as f64,
            ),
            point("SubscribeToShardEvent.Success", "Count", 1.0),
        ];
        let now = crate::clock::now_ms() / 1000;
        self.tenant.cloudwatch.store.record(now, &points);
    }

    /// An event with no records whose continuation is `position`, `behind` ms behind the
    /// shard's tip.
    fn heartbeat_frame(&self, position: SequenceNumber, behind: u64) -> Step {
        let payload = crate::reads::encode_with_records(
            self.protocol,
            SubscribeToShardEvent {
                records: Vec::new(),
                continuation_sequence_number: Some(checkpoint(self.incarnation, position)),
                millis_behind_latest: behind,
                child_shards: Vec::new(),
            },
        );
        Step::Send {
            frame: event_frame(self.protocol, "SubscribeToShardEvent", payload),
            last: false,
        }
    }

    /// Ends a subscription whose client has not taken an event for `stall_limit`: the reply
    /// fails, which aborts it and frees the event it holds.
    fn stopped_reading(&self) -> Step {
        metrics::counter!("sluice_subscriptions_ended_total", "reason" => "stopped_reading")
            .increment(1);
        self.stalled.store(true, Ordering::Release);
        (self.abort)();
        Step::End
    }

    fn taken_over(&self) -> Step {
        let error = ApiError::in_use("Another subscription to this consumer and shard took over.");
        // Best effort: a client that stopped reading does not get it.
        let _ = self.sender.try_send(exception_frame(self.protocol, &error));
        Step::End
    }

    /// Sends a frame unless the client is gone, the subscription's time is up, or its
    /// lease was taken over: a client that stops reading cannot hold the task past its
    /// deadline.
    async fn deliver(&self, frame: Bytes) -> bool {
        tokio::select! {
            sent = self.sender.send(frame) => sent.is_ok(),
            _ = self.lease.cancel.notified() => false,
            () = tokio::time::sleep_until(self.deadline) => false,
            // Not even a heartbeat taken for that long: the client stopped reading.
            () = tokio::time::sleep(self.stall_limit) => {
                self.stopped_reading();
                false
            }
        }
    }
}

/// The ContinuationSequenceNumber for a subscriber whose next record is at `position`: the
/// number just below it (the last record delivered, or the shard's start). Clients resume
/// AFTER it, as KCL does, and lose nothing; it moves on even when no record arrives.
pub(crate) fn checkpoint(incarnation: Incarnation, position: SequenceNumber) -> String {
    incarnation.tag(position.checkpoint()).to_string()
}

/// At least the bytes the frame of records of these (data, partition key) lengths encodes
/// to: base64 (JSON) of the data, and each record's key, number and fields.
pub(crate) fn encoded_bytes_bound(records: impl Iterator<Item = (usize, usize)>) -> usize {
    /// Member names, the sequence number, the timestamp and the encryption type.
    const PER_RECORD: usize = 192;
    let record_bytes: usize = records
        .map(|(data, key)| data.div_ceil(3) * 4 + key * 6 + PER_RECORD)
        .sum();
    record_bytes + 1024
}
