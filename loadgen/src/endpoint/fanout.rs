//! `--fan-out N`: N registered consumers, each subscribed to every shard with
//! SubscribeToShard from TRIM_HORIZON before the puts start, as enhanced fan-out consumers
//! tail a stream. Each subscription must receive exactly its shard's acknowledged records,
//! once and in order (their number and an order-independent fingerprint of their sequence
//! numbers are compared with the put phase's, so a missing record cannot hide behind an extra
//! one), or the bench fails. Put-to-delivery is timed from the record's
//! ApproximateArrivalTimestamp (the endpoint's clock, whole ms: meaningful when the load
//! generator shares the endpoint's machine). Subscriptions that end (5 minutes, or the
//! endpoint's own limit) or are refused for a moment (ResourceInUse within 5 seconds,
//! LimitExceeded, a dropped connection) are made again from where they stopped.

use super::{Acked, Sequence, shard_index};
use crate::client::{CallError, EventStream, KinesisClient};
use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// After the puts end, how long the subscriptions may take, all together, to deliver the rest.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);
/// Before subscribing again after a refusal or a dropped connection.
const RESUBSCRIBE_PAUSE: Duration = Duration::from_secs(1);

/// Each shard's acknowledged records: how many, and their fingerprint.
type Expected = Option<Arc<HashMap<u32, Tally>>>;

/// A count and an order-independent fingerprint (a wrapping sum of hashes) of sequence numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Tally {
    records: u64,
    fingerprint: u64,
}

impl Tally {
    fn add(&mut self, sequence: &Sequence) {
        let mut hasher = DefaultHasher::new();
        sequence.hash(&mut hasher);
        self.records += 1;
        self.fingerprint = self.fingerprint.wrapping_add(hasher.finish());
    }
}

/// Subscriptions running beside the put phase.
pub(super) struct FanOut {
    consumers: usize,
    subscriptions: Vec<JoinHandle<anyhow::Result<Delivered>>>,
    expected: watch::Sender<Expected>,
}

/// What one subscription received.
struct Delivered {
    shard: u32,
    tally: Tally,
    last: Option<Instant>,
    latency_ms: Histogram<u64>,
}

/// The fan-out's figures.
pub(super) struct FanOutResult {
    /// Records delivered over all subscriptions (every consumer got every record).
    pub delivered: u64,
    /// From the start of the puts to the last delivery of any consumer.
    pub elapsed: Duration,
    /// From the last put's acknowledgement to the last delivery: how far behind the
    /// consumers ended.
    pub lag: Duration,
    /// Each consumer's records over the time from the puts' start to its own last delivery,
    /// records/s. Consumers that keep up receive at the put rate: this is the rate the whole
    /// system sustained with this many consumers, not a consumer's own limit.
    pub per_consumer_rates: Vec<f64>,
    /// Put-to-delivery, ms.
    pub latency_ms: Histogram<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ShardEvent {
    records: Vec<EventRecord>,
    continuation_sequence_number: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EventRecord {
    sequence_number: String,
    approximate_arrival_timestamp: f64,
}

impl FanOutResult {
    /// Prints the figures under the put phase's.
    pub(super) fn print(&self, consumers: usize, shards: usize, record_size: usize) {
        crate::report(
            &format!(
                "SubscribeToShard fan-out: {consumers} consumers x {shards} shards, {} deliveries (each consumer got exactly the acknowledged records, once, in order)",
                self.delivered
            ),
            self.delivered,
            self.delivered * record_size as u64,
            self.elapsed,
        );
        let rates = &self.per_consumer_rates;
        let mean = rates.iter().sum::<f64>() / rates.len().max(1) as f64;
        let slowest = rates.iter().copied().fold(f64::INFINITY, f64::min);
        println!(
            "  per consumer: {mean:.0} records/s on average, {slowest:.0} the slowest (from the puts' start to its last delivery; at most the put rate); last delivery {} ms after the last put",
            self.lag.as_millis()
        );
        let l = &self.latency_ms;
        println!(
            "  put-to-delivery (ApproximateArrivalTimestamp to receipt, whole ms): p50 {} p99 {} p99.9 {} max {}",
            l.value_at_quantile(0.5),
            l.value_at_quantile(0.99),
            l.value_at_quantile(0.999),
            l.max()
        );
    }
}

/// Registers `consumers` consumers and subscribes each to every shard.
pub(super) async fn start(
    address: SocketAddr,
    admin: &mut KinesisClient,
    stream: &str,
    shards: &[String],
    consumers: usize,
) -> anyhow::Result<FanOut> {
    let summary: Value = admin
        .call("DescribeStreamSummary", &json!({"StreamName": stream}))
        .await?;
    let stream_arn = summary["StreamDescriptionSummary"]["StreamARN"]
        .as_str()
        .context("StreamARN")?
        .to_owned();
    let (expected, expected_rx) = watch::channel(None);
    let mut subscriptions = Vec::new();
    for i in 0..consumers {
        let registered: Value = admin
            .call(
                "RegisterStreamConsumer",
                &json!({"StreamARN": stream_arn, "ConsumerName": format!("bench-{i}")}),
            )
            .await?;
        let arn = registered["Consumer"]["ConsumerARN"]
            .as_str()
            .context("ConsumerARN")?
            .to_owned();
        wait_active(admin, &arn).await?;
        for shard in shards {
            let subscriber = Subscriber {
                address,
                consumer: arn.clone(),
                shard_id: shard.clone(),
                shard: shard_index(shard).context("shard id")?,
            };
            let expected = expected_rx.clone();
            subscriptions.push(tokio::spawn(async move { subscriber.run(expected).await }));
        }
    }
    Ok(FanOut {
        consumers,
        subscriptions,
        expected,
    })
}

async fn wait_active(admin: &mut KinesisClient, arn: &str) -> anyhow::Result<()> {
    for _ in 0..100 {
        let described: Value = admin
            .call("DescribeStreamConsumer", &json!({"ConsumerARN": arn}))
            .await?;
        if described["ConsumerDescription"]["ConsumerStatus"] == "ACTIVE" {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("consumer {arn} did not become ACTIVE")
}

impl FanOut {
    /// Tells the subscriptions what the puts acknowledged, waits until each received its
    /// shard's records, and checks they are exactly those.
    pub(super) async fn finish(
        self,
        acknowledged: &[Acked],
        puts_started: Instant,
    ) -> anyhow::Result<FanOutResult> {
        let puts_ended = Instant::now();
        let mut per_shard: HashMap<u32, Tally> = HashMap::new();
        for acked in acknowledged {
            per_shard
                .entry(acked.shard)
                .or_default()
                .add(&acked.sequence);
        }
        let per_shard = Arc::new(per_shard);
        let _ = self.expected.send(Some(Arc::clone(&per_shard)));
        let shards = self.subscriptions.len() / self.consumers.max(1);
        let mut consumer_last = vec![puts_started; self.consumers];
        let (mut delivered, mut latency_ms) = (0, Histogram::<u64>::new(3).expect("histogram"));
        let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
        for (i, subscription) in self.subscriptions.into_iter().enumerate() {
            let got = tokio::time::timeout_at(deadline, subscription)
                .await
                .context(
                    "the subscriptions did not receive every record within 60 s of the puts' end",
                )???;
            let expected = per_shard.get(&got.shard).copied().unwrap_or_default();
            if got.tally != expected {
                bail!(
                    "consumer {} on shard {}: {} records received, {} acknowledged{}",
                    i / shards,
                    got.shard,
                    got.tally.records,
                    expected.records,
                    if got.tally.records == expected.records {
                        " (but not the same ones)"
                    } else {
                        ""
                    }
                );
            }
            delivered += got.tally.records;
            latency_ms
                .add(&got.latency_ms)
                .expect("same histogram bounds");
            if let Some(last) = got.last {
                consumer_last[i / shards] = consumer_last[i / shards].max(last);
            }
        }
        let each = acknowledged.len() as f64;
        let per_consumer_rates = consumer_last
            .iter()
            .map(|last| each / last.duration_since(puts_started).as_secs_f64().max(1e-9))
            .collect();
        let last = consumer_last.iter().max().copied().unwrap_or(puts_started);
        Ok(FanOutResult {
            delivered,
            elapsed: last.duration_since(puts_started),
            lag: last.saturating_duration_since(puts_ended),
            per_consumer_rates,
            latency_ms,
        })
    }
}

/// One consumer on one shard.
struct Subscriber {
    address: SocketAddr,
    consumer: String,
    shard_id: String,
    shard: u32,
}

/// Where a subscription stands.
struct Progress {
    got: Delivered,
    last_sequence: Option<Sequence>,
    position: Value,
}

impl Subscriber {
    /// From TRIM_HORIZON until it has as many records as were acknowledged on its shard,
    /// subscribing again after each subscription ends or is refused for a moment.
    async fn run(self, mut expected: watch::Receiver<Expected>) -> anyhow::Result<Delivered> {
        let mut progress = Progress {
            got: Delivered {
                shard: self.shard,
                tally: Tally::default(),
                last: None,
                latency_ms: Histogram::new(3).expect("histogram"),
            },
            last_sequence: None,
            position: json!({"Type": "TRIM_HORIZON"}),
        };
        let mut client = KinesisClient::connect(self.address).await?;
        loop {
            let input = json!({"ConsumerARN": self.consumer, "ShardId": self.shard_id, "StartingPosition": progress.position});
            let ended = match client.subscribe(&input).await {
                Ok(events) => self.consume(events, &mut progress, &mut expected).await?,
                Err(e) if retryable(&e) => true,
                Err(e) => bail!("{} on {}: {e}", self.consumer, self.shard_id),
            };
            if !ended {
                return Ok(progress.got);
            }
            tokio::time::sleep(RESUBSCRIBE_PAUSE).await;
            client = KinesisClient::connect(self.address).await?;
        }
    }

    /// Reads one subscription's events. Returns `false` once every acknowledged record has
    /// come, `true` when the subscription ended first (to be made again).
    async fn consume(
        &self,
        mut events: EventStream,
        progress: &mut Progress,
        expected: &mut watch::Receiver<Expected>,
    ) -> anyhow::Result<bool> {
        loop {
            let wanted = expected
                .borrow()
                .as_ref()
                .map(|e| e.get(&self.shard).copied().unwrap_or_default().records);
            if wanted.is_some_and(|wanted| progress.got.tally.records >= wanted) {
                return Ok(false);
            }
            let event = tokio::select! {
                event = events.next() => event,
                // The puts ended: look whether everything has come.
                changed = expected.changed() => {
                    changed.context("the bench ended before the subscription was done")?;
                    continue;
                }
            };
            let (kind, payload) = match event {
                Ok(Some(event)) => event,
                Ok(None) => return Ok(true),
                Err(e) if retryable(&e) => return Ok(true),
                Err(e) => bail!("{} on {}: {e}", self.consumer, self.shard_id),
            };
            match kind.as_str() {
                "initial-response" => {}
                "SubscribeToShardEvent" => {
                    self.record(&serde_json::from_slice(&payload)?, progress)?
                }
                // Refused for a moment, or the endpoint failing once: subscribe again.
                "ResourceInUseException"
                | "LimitExceededException"
                | "InternalFailureException" => return Ok(true),
                other => bail!(
                    "{} on {}: {other}: {}",
                    self.consumer,
                    self.shard_id,
                    String::from_utf8_lossy(&payload)
                ),
            }
        }
    }

    fn record(&self, event: &ShardEvent, progress: &mut Progress) -> anyhow::Result<()> {
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs_f64() * 1000.0;
        for record in &event.records {
            let sequence = Sequence::parse(&record.sequence_number);
            if progress
                .last_sequence
                .as_ref()
                .is_some_and(|last| *last >= sequence)
            {
                bail!(
                    "{} on {}: {} delivered after {:?}",
                    self.consumer,
                    self.shard_id,
                    record.sequence_number,
                    progress.last_sequence
                );
            }
            progress.got.tally.add(&sequence);
            progress.last_sequence = Some(sequence);
            // Whole ms on the endpoint's clock; a clock behind ours reads as 0.
            let waited = (now_ms - record.approximate_arrival_timestamp * 1000.0).max(0.0);
            let _ = progress.got.latency_ms.record(waited as u64);
        }
        if !event.records.is_empty() {
            progress.got.last = Some(Instant::now());
        }
        if let Some(next) = &event.continuation_sequence_number {
            progress.position = json!({"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": next});
        }
        Ok(())
    }
}

/// A refusal worth waiting out: a dropped connection, a subscription made again within 5
/// seconds of the last (ResourceInUse), too many at once (LimitExceeded).
fn retryable(error: &CallError) -> bool {
    error.status == 0
        || error.message.contains("ResourceInUseException")
        || error.message.contains("LimitExceededException")
}
