//! `--fan-out N`: N registered consumers, each subscribed to every shard with
//! SubscribeToShard from TRIM_HORIZON before the puts start, as enhanced fan-out consumers
//! are. Each subscription checks that it receives every acknowledged record of its shard once
//! and in order, and times put-to-delivery from the record's ApproximateArrivalTimestamp
//! (the endpoint's clock, in ms: the load generator shares the machine with the endpoint).

use super::{Acked, Sequence, shard_index};
use crate::client::KinesisClient;
use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// After the puts end, how long the subscriptions may take to deliver the rest.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

/// Subscriptions running beside the put phase.
pub(super) struct FanOut {
    consumers: usize,
    subscriptions: Vec<JoinHandle<anyhow::Result<Delivered>>>,
    /// Each shard's acknowledged records, once the puts are done.
    expected: watch::Sender<Option<Arc<HashMap<u32, u64>>>>,
}

/// What one subscription received.
struct Delivered {
    records: u64,
    last: Option<Instant>,
    latency_ms: Histogram<u64>,
}

/// The fan-out's figures.
pub(super) struct FanOutResult {
    /// Records delivered over all subscriptions.
    pub delivered: u64,
    /// From the start of the puts to the last delivery of any consumer.
    pub elapsed: Duration,
    /// Each consumer's records over the time to its own last delivery, records/s.
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
                "SubscribeToShard fan-out: {consumers} consumers x {shards} shards, every record to each (checked: all, once, in order)"
            ),
            self.delivered,
            self.delivered * record_size as u64,
            self.elapsed,
        );
        let rates = &self.per_consumer_rates;
        let mean = rates.iter().sum::<f64>() / rates.len().max(1) as f64;
        let slowest = rates.iter().copied().fold(f64::INFINITY, f64::min);
        println!(
            "  per consumer: {mean:.0} records/s on average, {slowest:.0} the slowest (from the puts' start to its last delivery)"
        );
        let l = &self.latency_ms;
        println!(
            "  put-to-delivery (ApproximateArrivalTimestamp to receipt, ms): p50 {} p99 {} p99.9 {} max {}",
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
            let (arn, shard, expected) = (arn.clone(), shard.clone(), expected_rx.clone());
            subscriptions.push(tokio::spawn(async move {
                subscribe(address, &arn, &shard, expected).await
            }));
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
    /// Tells the subscriptions what the puts acknowledged and waits until each received all
    /// of its shard's records.
    pub(super) async fn finish(
        self,
        acknowledged: &[Acked],
        puts_started: Instant,
    ) -> anyhow::Result<FanOutResult> {
        let mut per_shard: HashMap<u32, u64> = HashMap::new();
        for acked in acknowledged {
            *per_shard.entry(acked.shard).or_default() += 1;
        }
        let _ = self.expected.send(Some(Arc::new(per_shard)));
        let shards = self.subscriptions.len() / self.consumers.max(1);
        let mut consumer_last = vec![puts_started; self.consumers];
        let (mut delivered, mut latency_ms) = (0, Histogram::<u64>::new(3).expect("histogram"));
        for (i, subscription) in self.subscriptions.into_iter().enumerate() {
            let got = tokio::time::timeout(DRAIN_TIMEOUT, subscription)
                .await
                .context(
                    "a subscription did not receive every record within 60 s of the puts' end",
                )???;
            delivered += got.records;
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
        let elapsed = consumer_last
            .iter()
            .max()
            .map_or(Duration::ZERO, |last| last.duration_since(puts_started));
        Ok(FanOutResult {
            delivered,
            elapsed,
            per_consumer_rates,
            latency_ms,
        })
    }
}

/// One consumer on one shard, from TRIM_HORIZON until it has every acknowledged record,
/// subscribing again after each subscription ends.
async fn subscribe(
    address: SocketAddr,
    consumer: &str,
    shard_id: &str,
    mut expected: watch::Receiver<Option<Arc<HashMap<u32, u64>>>>,
) -> anyhow::Result<Delivered> {
    let index = shard_index(shard_id).context("shard id")?;
    let mut client = KinesisClient::connect(address).await?;
    let mut got = Delivered {
        records: 0,
        last: None,
        latency_ms: Histogram::new(3).expect("histogram"),
    };
    let mut last_sequence: Option<Sequence> = None;
    let mut position = json!({"Type": "TRIM_HORIZON"});
    let done = |got: &Delivered, expected: &Option<Arc<HashMap<u32, u64>>>| {
        expected
            .as_ref()
            .is_some_and(|e| got.records >= e.get(&index).copied().unwrap_or(0))
    };
    loop {
        let input =
            json!({"ConsumerARN": consumer, "ShardId": shard_id, "StartingPosition": position});
        let mut events = client.subscribe(&input).await?;
        loop {
            if done(&got, &expected.borrow()) {
                return Ok(got);
            }
            let event = tokio::select! {
                event = events.next() => event?,
                // The puts ended: look whether everything has come.
                changed = expected.changed() => {
                    changed.context("the bench ended before the subscription was done")?;
                    continue;
                }
            };
            let Some((kind, payload)) = event else { break };
            match kind.as_str() {
                "initial-response" => {}
                "SubscribeToShardEvent" => {
                    let event: ShardEvent = serde_json::from_slice(&payload)?;
                    let now_ms =
                        SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs_f64() * 1000.0;
                    for record in &event.records {
                        let sequence = Sequence::parse(&record.sequence_number);
                        if last_sequence.as_ref().is_some_and(|last| *last >= sequence) {
                            bail!(
                                "{consumer} on {shard_id}: {} delivered after {:?}",
                                record.sequence_number,
                                last_sequence
                            );
                        }
                        last_sequence = Some(sequence);
                        let waited =
                            (now_ms - record.approximate_arrival_timestamp * 1000.0).max(0.0);
                        let _ = got.latency_ms.record(waited as u64);
                    }
                    if !event.records.is_empty() {
                        got.records += event.records.len() as u64;
                        got.last = Some(Instant::now());
                    }
                    if let Some(next) = event.continuation_sequence_number {
                        position = json!({"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": next});
                    }
                }
                other => bail!(
                    "{consumer} on {shard_id}: {other}: {}",
                    String::from_utf8_lossy(&payload)
                ),
            }
        }
        // The subscription ended (after 5 minutes, as Kinesis ends them): go on after it.
    }
}
