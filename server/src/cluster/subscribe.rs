//! SubscribeToShard in cluster mode: the single-node pusher (frames, heartbeats, budgets,
//! leases) fed from a shard's replicas through this node. Records come from this node's
//! replica when it runs the shard's group (woken as its commit moves), else from a node that
//! does (asked again every [`REMOTE_POLL`]). A continuation number from any node resumes on
//! any other: numbers are the shard log's, which every replica repeats.
//!
//! One subscription per consumer and shard, and Kinesis' 5-second rule, hold across the
//! cluster: besides this node's lease (which ends a subscription it replaces here at once),
//! a subscription claims its (consumer, shard) in the control plane. A claim within 5 seconds
//! of the last one is refused on every node; a later one takes over, and the subscription it
//! replaced, on whichever node, sees its claim gone within [`CLAIM_CHECK`] and ends as taken
//! over. A claim is removed 5 seconds after it was taken once its subscription ended (one
//! left by a node that died stays, and is taken over as any other).

use super::records::{children_of, millis_behind, place, records_out, retained_shard};
use super::{ClusterFront, ClusterKeys, admin::retained, consumers, incarnation};
use crate::clock::now_ms;
use crate::leases::{Lease, LeaseKey, RESUBSCRIBE_INTERVAL_MS, too_soon};
use crate::shapes::ChildShard;
use crate::subscribe::{
    EVENT_RECORD_BYTES_MAX, EventFacts, Feed, Sink, Started, SubscribeInput, SubscribeToShardEvent,
    Subscriber, checkpoint, encoded_bytes_bound, push,
};
use crate::wire::{ApiError, Incarnation, Protocol};
use ring::rand::{SecureRandom as _, SystemRandom};
use sluice_cluster::reads::{ReadFrom, ReadRecord, ReadRequest};
use sluice_cluster::settings::ConsumerEntry;
use sluice_cluster::transport::GroupId;
use sluice_cluster::{Backend, Claim, ClusterNode, Snapshot, StreamPlacement, StreamStatus};
use sluice_core::limits::GET_RECORDS_MAX;
use sluice_core::{SequenceNumber, ShardId};
use std::sync::Arc;
use std::time::Duration;

/// How often a shard with no replica on this node is asked for new records.
const REMOTE_POLL: Duration = Duration::from_millis(200);

/// How long a caught-up subscription on this node's replica waits before asking again past
/// it (a read barrier: the replica may be cut off from its group, or the shard closed).
const LOCAL_RECHECK: Duration = Duration::from_secs(2);

/// How long reads may keep failing (a failover, a partition) before the subscription ends
/// with the error; heartbeats go on meanwhile.
const FAILING_MAX: Duration = Duration::from_secs(10);

/// How often a subscription checks that its claim still stands.
const CLAIM_CHECK: Duration = Duration::from_secs(2);

/// Checks the request, places its start, takes this node's lease and starts pushing.
pub(super) async fn start<B: Backend>(
    front: &ClusterFront<B>,
    input: SubscribeInput,
    protocol: Protocol,
    sink: Sink,
) -> Result<Started, ApiError> {
    let consumer_arn = input.consumer_arn.expect("validated");
    let shard_text = input.shard_id.expect("validated");
    let position = input.starting_position.expect("validated");
    let found = consumers::Named::by_arn(front, &consumer_arn)?
        .find(front)
        .await?;
    let stream = front.serving_stream(&found.stream.name).await?;
    let shard = retained_shard(&stream, &shard_text)?;
    let incarnation = incarnation(&stream);
    let start = position.start((&stream.name, incarnation))?;
    let text = position.sequence_number.as_deref().unwrap_or_default();
    let next_seq = place(front, &stream, shard, (start, text)).await?;
    let consumer = &found.consumer;
    // The cluster's claim first: a call it refuses counts for nothing on this node either.
    let claimed = SubscriptionClaim::take(front, (&stream, consumer, shard)).await?;
    let lease = (front.tenant.leases).acquire(LeaseKey::new(
        &stream.name,
        stream.created_ms,
        &consumers::as_consumer(consumer),
        &shard_text,
    ));
    let lease = match lease {
        Ok(lease) => lease,
        Err(refused) => {
            claimed.let_go(Duration::ZERO);
            return Err(refused);
        }
    };
    let claim = claimed.watch(&lease);
    // A deregistration through this node between the lookup and the lease revoked nothing
    // of ours: look again now that the lease is visible to revocations.
    consumers::Named::by_arn(front, &consumer_arn)?
        .find(front)
        .await?;
    let feed = ShardFeed {
        node: front.node.clone(),
        keys: front.keys.clone(),
        group: GroupId {
            stream_uid: stream.uid,
            shard,
        },
        consumer: (consumer.name.clone(), consumer.created_ms),
        incarnation,
        next_seq,
        ended: false,
        failing_since: None,
        _claim: claim,
    };
    let subscriber = Subscriber {
        tenant: front.tenant.clone(),
        stream: stream.name.clone(),
        consumer: consumer.name.clone(),
        incarnation,
        lease,
    };
    Ok(push(feed, subscriber, protocol, sink))
}

/// One shard's records, read through a node from where the subscriber is.
struct ShardFeed<B: Backend> {
    node: Arc<ClusterNode<B>>,
    /// Opens the records of an encrypted stream.
    keys: Arc<ClusterKeys<B>>,
    group: GroupId,
    /// The consumer's name and registration time: deregistered, the subscription ends.
    consumer: (String, u64),
    incarnation: Incarnation,
    /// The log number the next event starts at.
    next_seq: u64,
    /// The end of the shard was sent.
    ended: bool,
    /// Since when reads have failed, if the last one did.
    failing_since: Option<tokio::time::Instant>,
    /// Held while the subscription runs: dropped, its claim is let go.
    _claim: tokio::sync::oneshot::Sender<()>,
}

/// A subscription's claim on its (consumer, shard) across the cluster (the module's comment).
struct SubscriptionClaim<B: Backend> {
    meta: sluice_cluster::ClusterMeta<B>,
    name: String,
    holder: String,
    /// The revision that wrote it.
    revision: sluice_cluster::Revision,
}

impl<B: Backend> SubscriptionClaim<B> {
    /// Claims (consumer, shard) of `stream` for a subscription through this node: refused
    /// within 5 seconds of the last claim, through any node.
    async fn take(
        front: &ClusterFront<B>,
        (stream, consumer, shard): (&StreamPlacement, &ConsumerEntry, u32),
    ) -> Result<SubscriptionClaim<B>, ApiError> {
        let name = format!(
            "subscriptions/{}/{}@{}/{shard}",
            stream.uid, consumer.name, consumer.created_ms
        );
        let mut tag = [0u8; 8];
        SystemRandom::new()
            .fill(&mut tag)
            .map_err(|_| ApiError::internal("No randomness for a subscription's claim."))?;
        let holder = format!("{}/{}", front.node.id(), u64::from_le_bytes(tag));
        let mine = Claim {
            holder: holder.clone(),
            since_ms: now_ms(),
        };
        let meta = front.node.meta().clone();
        let quiet = Duration::from_millis(RESUBSCRIBE_INTERVAL_MS);
        let claimed = meta.claim(&name, &mine, quiet).await;
        let claimed = claimed.map_err(|e| super::store_unavailable(&e))?;
        let Ok(revision) = claimed else {
            return Err(too_soon(&consumer.name, ShardId::new(shard).as_ref()));
        };
        Ok(SubscriptionClaim {
            meta,
            name,
            holder,
            revision,
        })
    }

    /// Watches the claim while the subscription holding `lease` runs: taken over, the
    /// lease is cancelled (the subscription ends as taken over). Dropping the sender ends
    /// the watch; the claim is let go 5 seconds after it was taken.
    fn watch(self, lease: &Lease) -> tokio::sync::oneshot::Sender<()> {
        let kept_until =
            tokio::time::Instant::now() + Duration::from_millis(RESUBSCRIBE_INTERVAL_MS);
        let (ended, mut ending) = tokio::sync::oneshot::channel();
        let cancel = lease.cancel.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut ending => break,
                    () = tokio::time::sleep(CLAIM_CHECK) => {}
                }
                // The store not answering is no proof of a takeover: asked again next time.
                if let Ok(held) = self.meta.claim_of(&self.name).await
                    && held.is_none_or(|(held, _)| held.holder != self.holder)
                {
                    cancel.notify_one();
                    break;
                }
            }
            // Kept 5 seconds from its start, for Kinesis' rule.
            let left = kept_until.saturating_duration_since(tokio::time::Instant::now());
            self.let_go(left);
        });
        ended
    }

    /// Removes the claim after `after`, unless another claim replaced it.
    fn let_go(self, after: Duration) {
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let _ = self.meta.release(&self.name, self.revision).await;
        });
    }
}

/// Records read for one event, or the end of a closed shard.
struct ShardEvent {
    records: Vec<ReadRecord>,
    /// Where the next event starts.
    continuation: u64,
    millis_behind_latest: u64,
    /// The shard's children, on the event that ends it.
    end: Option<Vec<ChildShard>>,
}

/// What this node's map says of the subscription's shard now.
enum ShardNow {
    /// Gone: the stream deleted, or the shard no longer in it.
    Gone,
    /// The consumer was deregistered.
    Deregistered,
    /// Read to its end (closed), or all of it expired: the children take over.
    Ended(Vec<ChildShard>),
    /// Readable: the map, and the stream's name in it.
    Readable(Arc<Snapshot>, String),
}

impl<B: Backend> ShardFeed<B> {
    fn shard_now(&self) -> ShardNow {
        let map = self.node.map();
        let stream = map
            .streams
            .values()
            .map(|s| &s.value)
            .find(|s| s.uid == self.group.stream_uid && s.status != StreamStatus::Deleting);
        let Some(stream) = stream else {
            return ShardNow::Gone;
        };
        let (name, created_ms) = &self.consumer;
        let registered = (stream.settings.consumers.iter())
            .any(|c| (&c.name, c.created_ms) == (name, *created_ms));
        if !registered {
            return ShardNow::Deregistered;
        }
        let Some(shard) = stream.shards.iter().find(|s| s.index == self.group.shard) else {
            return ShardNow::Gone;
        };
        let expired = !retained(stream, shard, now_ms());
        if expired || shard.ending_seq.is_some_and(|end| self.next_seq >= end) {
            return ShardNow::Ended(children_of(stream, self.group.shard));
        }
        let name = stream.name.clone();
        ShardNow::Readable(map, name)
    }

    /// Waits for records past `next_seq` to be worth asking for.
    async fn wait(&self, listener: Option<impl std::future::Future<Output = ()>>) {
        match listener {
            Some(listener) => {
                let _ = tokio::time::timeout(LOCAL_RECHECK, listener).await;
            }
            None => tokio::time::sleep(REMOTE_POLL).await,
        }
    }
}

impl<B: Backend> Feed for ShardFeed<B> {
    type Event = ShardEvent;

    fn position(&self) -> SequenceNumber {
        SequenceNumber::new(self.group.shard, self.next_seq)
    }

    async fn next(&mut self) -> Option<Result<ShardEvent, ApiError>> {
        if self.ended {
            return None;
        }
        loop {
            let (map, name) = match self.shard_now() {
                ShardNow::Gone => return None,
                ShardNow::Deregistered => {
                    let (name, _) = &self.consumer;
                    return Some(Err(ApiError::not_found(format!(
                        "Consumer {name} was deregistered."
                    ))));
                }
                ShardNow::Ended(children) => {
                    self.ended = true;
                    return Some(Ok(ShardEvent {
                        records: Vec::new(),
                        continuation: self.next_seq,
                        millis_behind_latest: 0,
                        end: Some(children),
                    }));
                }
                ShardNow::Readable(map, name) => (map, name),
            };
            let stream = &map.streams[&name].value;
            // Listening before the read: a record committed after it still wakes the wait.
            let listener = (self.node.replica(self.group)).map(|r| r.reader().listen());
            let request = ReadRequest {
                from: ReadFrom::Position(self.next_seq),
                records_max: GET_RECORDS_MAX,
                bytes_max: Some(EVENT_RECORD_BYTES_MAX),
            };
            let mut reply = match self.node.read(stream, self.group.shard, request).await {
                Ok(reply) => reply,
                Err(error) => {
                    let since = *self
                        .failing_since
                        .get_or_insert_with(tokio::time::Instant::now);
                    if since.elapsed() >= FAILING_MAX {
                        return Some(Err(ApiError::internal(format!(
                            "The shard could not be read: {error}"
                        ))));
                    }
                    tokio::time::sleep(REMOTE_POLL).await;
                    continue;
                }
            };
            self.failing_since = None;
            if reply.records.is_empty() {
                // Past records expired meanwhile (the start placed at the oldest kept), or
                // a gap a damaged log left: go on from there; else wait for more.
                let placed = reply.next.max(reply.from);
                if placed > self.next_seq {
                    self.next_seq = placed;
                } else {
                    self.wait(listener).await;
                }
                continue;
            }
            if let Err(error) = self.keys.open_records(&name, &mut reply.records).await {
                return Some(Err(error));
            }
            self.next_seq = reply.next;
            return Some(Ok(ShardEvent {
                millis_behind_latest: millis_behind(&reply),
                continuation: reply.next,
                records: reply.records,
                end: None,
            }));
        }
    }

    fn facts(event: &ShardEvent) -> EventFacts {
        let sizes = || (event.records.iter()).map(|r| (r.data.len(), r.key.len()));
        EventFacts {
            records: event.records.len(),
            data_bytes: sizes().map(|(data, _)| data).sum(),
            millis_behind_latest: event.millis_behind_latest,
            end_of_shard: event.end.is_some(),
            encoded_bytes_bound: encoded_bytes_bound(sizes()),
        }
    }

    fn payload(&self, event: &ShardEvent, protocol: Protocol) -> Result<Vec<u8>, ApiError> {
        let continuation = SequenceNumber::new(self.group.shard, event.continuation);
        let reply = SubscribeToShardEvent {
            records: records_out(self.incarnation, self.group.shard, &event.records),
            continuation_sequence_number: event
                .end
                .is_none()
                .then(|| checkpoint(self.incarnation, continuation)),
            millis_behind_latest: event.millis_behind_latest,
            child_shards: event.end.clone().unwrap_or_default(),
        };
        Ok(crate::reads::encode_with_records(protocol, reply))
    }
}
