//! The in-memory catalog of streams and shards, read by every thread, changed only by the
//! control thread after the metadata log holds the change.

mod record;

pub(crate) use record::{ExpiredShard, MetaEntry, ShardRecord, StreamRecord};

use crate::config::ThroughputLimits;
use crate::hashkey::HashKeyRange;
use crate::metrics::ShardMetrics;
use crate::seqnum::{SequenceNumber, ShardId};
use crate::throttle::TokenBucket;
use sluice_storage::LogReader;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// Identifies a shard log across the engine: stream uid and shard index.
pub(crate) type ShardKey = (u64, u32);

/// Consumer name → shard index → committed position (docs/design/checkpoints.md).
pub(crate) type ConsumerPositions = BTreeMap<String, BTreeMap<u32, SequenceNumber>>;

/// Every stream, by name.
#[derive(Default)]
pub(crate) struct Catalog {
    streams: RwLock<BTreeMap<String, Arc<StreamState>>>,
}

impl Catalog {
    pub(crate) fn get(&self, name: &str) -> Option<Arc<StreamState>> {
        read(&self.streams).get(name).cloned()
    }

    /// Stream names in order, starting after `exclusive_start`.
    pub(crate) fn names_after(
        &self,
        exclusive_start: Option<&str>,
        limit: usize,
    ) -> (Vec<String>, bool) {
        let streams = read(&self.streams);
        let mut names = streams
            .keys()
            .filter(|name| exclusive_start.is_none_or(|start| name.as_str() > start));
        let page: Vec<String> = names.by_ref().take(limit).cloned().collect();
        (page, names.next().is_some())
    }

    /// Open shards over all streams (what the shard quota counts).
    pub(crate) fn open_shard_count(&self) -> usize {
        read(&self.streams)
            .values()
            .map(|s| s.shards().open_by_start.len())
            .sum()
    }

    pub(crate) fn all(&self) -> Vec<Arc<StreamState>> {
        read(&self.streams).values().cloned().collect()
    }

    pub(crate) fn insert(&self, stream: Arc<StreamState>) {
        write(&self.streams).insert(stream.name.clone(), stream);
    }

    pub(crate) fn remove(&self, name: &str) -> Option<Arc<StreamState>> {
        let removed = write(&self.streams).remove(name);
        if let Some(stream) = &removed {
            stream.deleted.store(true, Ordering::Release);
            stream.layout_changed.notify(usize::MAX);
        }
        removed
    }
}

/// One stream.
pub(crate) struct StreamState {
    pub(crate) uid: u64,
    pub(crate) name: String,
    pub(crate) created_ms: u64,
    pub(crate) settings: RwLock<StreamSettings>,
    shards: RwLock<Arc<ShardSet>>,
    /// Notified when `shards` is swapped (a reshard) or the stream is deleted.
    layout_changed: event_listener::Event,
    deleted: AtomicBool,
    /// Consumers' committed positions, changed by the control thread once its consumers
    /// log holds them.
    pub(crate) consumers: Mutex<ConsumerPositions>,
}

/// A stream's changeable settings.
#[derive(Debug, Clone)]
pub(crate) struct StreamSettings {
    pub(crate) on_demand: bool,
    pub(crate) retention_hours: u32,
    pub(crate) max_record_size_bytes: u64,
    pub(crate) tags: BTreeMap<String, String>,
}

/// A stream's shards: all of them by index, and the open ones by hash range for routing.
pub(crate) struct ShardSet {
    pub(crate) by_index: Vec<Arc<ShardState>>,
    pub(crate) open_by_start: Vec<Arc<ShardState>>,
}

impl ShardSet {
    pub(crate) fn new(by_index: Vec<Arc<ShardState>>) -> ShardSet {
        let mut open_by_start: Vec<Arc<ShardState>> = by_index
            .iter()
            .filter(|s| s.ending_log_seq.is_none())
            .cloned()
            .collect();
        open_by_start.sort_by_key(|s| s.range.start);
        ShardSet {
            by_index,
            open_by_start,
        }
    }

    /// The open shard whose range contains `hash`.
    pub(crate) fn route(&self, hash: u128) -> &Arc<ShardState> {
        let after = self
            .open_by_start
            .partition_point(|s| s.range.start <= hash);
        let shard = &self.open_by_start[after
            .checked_sub(1)
            .expect("open shards cover the key space")];
        debug_assert!(shard.range.contains(hash));
        shard
    }

    pub(crate) fn get(&self, index: u32) -> Option<&Arc<ShardState>> {
        self.by_index.get(index as usize)
    }
}

impl StreamState {
    pub(crate) fn new(record: &StreamRecord, shards: Vec<Arc<ShardState>>) -> StreamState {
        StreamState {
            uid: record.uid,
            name: record.name.clone(),
            created_ms: record.created_ms,
            settings: RwLock::new(StreamSettings {
                on_demand: record.on_demand,
                retention_hours: record.retention_hours,
                max_record_size_bytes: record.max_record_size_bytes,
                tags: record.tags.iter().cloned().collect(),
            }),
            shards: RwLock::new(Arc::new(ShardSet::new(shards))),
            layout_changed: event_listener::Event::new(),
            deleted: AtomicBool::new(false),
            consumers: Mutex::new(BTreeMap::new()),
        }
    }

    pub(crate) fn shards(&self) -> Arc<ShardSet> {
        read(&self.shards).clone()
    }

    /// Replaces the shard set (a reshard committed, or failed and restores the old layout
    /// under a new identity so that waiting putters retry) and wakes waiting putters.
    pub(crate) fn set_shards(&self, shards: Vec<Arc<ShardState>>) {
        *write(&self.shards) = Arc::new(ShardSet::new(shards));
        self.layout_changed.notify(usize::MAX);
    }

    /// A listener woken by the next [`StreamState::set_shards`] or deletion.
    pub(crate) fn listen_for_layout(&self) -> event_listener::EventListener {
        self.layout_changed.listen()
    }

    /// The largest record the stream takes, without copying the settings (put path).
    pub(crate) fn max_record_size_bytes(&self) -> u64 {
        read(&self.settings).max_record_size_bytes
    }

    /// Retention in milliseconds, without copying the settings.
    pub(crate) fn retention_ms(&self) -> u64 {
        u64::from(read(&self.settings).retention_hours) * 3_600_000
    }

    pub(crate) fn settings(&self) -> StreamSettings {
        read(&self.settings).clone()
    }

    pub(crate) fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    /// The durable form of the stream with `settings` (which the caller is about to apply).
    pub(crate) fn to_record(&self, settings: &StreamSettings) -> StreamRecord {
        StreamRecord {
            uid: self.uid,
            name: self.name.clone(),
            on_demand: settings.on_demand,
            retention_hours: settings.retention_hours,
            max_record_size_bytes: settings.max_record_size_bytes,
            created_ms: self.created_ms,
            tags: settings
                .tags
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            shards: self
                .shards()
                .by_index
                .iter()
                .map(|s| s.to_record())
                .collect(),
        }
    }

    pub(crate) fn set_settings(&self, settings: StreamSettings) {
        *write(&self.settings) = settings;
    }

    /// The consumers' positions (a short lock: never held across I/O).
    pub(crate) fn consumers(&self) -> std::sync::MutexGuard<'_, ConsumerPositions> {
        self.consumers.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One shard: identity, owner, and the read handle on its log.
pub(crate) struct ShardState {
    pub(crate) index: u32,
    pub(crate) id: ShardId,
    pub(crate) range: HashKeyRange,
    pub(crate) parent: Option<u32>,
    pub(crate) adjacent_parent: Option<u32>,
    pub(crate) created_ms: u64,
    pub(crate) ending_log_seq: Option<u64>,
    pub(crate) closed_ms: Option<u64>,
    /// Every record expired and the files are gone (docs/design/resharding.md, "Expired
    /// shards"): `reader` is empty at the ending, and the shard is never listed again.
    pub(crate) expired: bool,
    /// The core that owns the shard's log.
    pub(crate) core: usize,
    pub(crate) reader: LogReader,
    /// Shared with the same shard's closed state after a reshard, so limits carry over.
    pub(crate) buckets: Option<Arc<Mutex<ShardBuckets>>>,
    pub(crate) metrics: ShardMetrics,
}

impl ShardState {
    pub(crate) fn new(
        record: &ShardRecord,
        stream_name: &str,
        core: usize,
        reader: LogReader,
        limits: Option<ThroughputLimits>,
        now_ms: u64,
        metric_labels: &[(String, String)],
    ) -> ShardState {
        let id = ShardId::new(record.index);
        ShardState {
            index: record.index,
            metrics: ShardMetrics::new(stream_name, &id, metric_labels),
            id,
            range: HashKeyRange {
                start: record.hash_start,
                end: record.hash_end,
            },
            parent: record.parent,
            adjacent_parent: record.adjacent_parent,
            created_ms: record.created_ms,
            // Closed by a reshard whose endings were not recorded yet (a crash came between):
            // the shard ends where its log ends, as it took no append after closing.
            ending_log_seq: record
                .ending_log_seq
                .or_else(|| record.closed_ms.map(|_| reader.next_seq())),
            closed_ms: record.closed_ms,
            expired: false,
            core,
            reader,
            buckets: limits.map(|l| Arc::new(Mutex::new(ShardBuckets::new(l, now_ms)))),
        }
    }

    /// The same shard, closed at `ending_log_seq`: same log, same owner, no more writes.
    pub(crate) fn closed(&self, ending_log_seq: u64, closed_ms: u64) -> ShardState {
        ShardState {
            index: self.index,
            id: self.id,
            range: self.range,
            parent: self.parent,
            adjacent_parent: self.adjacent_parent,
            created_ms: self.created_ms,
            ending_log_seq: Some(ending_log_seq),
            closed_ms: Some(closed_ms),
            expired: false,
            core: self.core,
            reader: self.reader.clone(),
            buckets: self.buckets.clone(),
            metrics: self.metrics.clone(),
        }
    }

    /// A closed shard whose records all expired, ending at `ending_log_seq`: its identity and
    /// lineage stay (children name it as parent, tokens name its index), its data is gone.
    pub(crate) fn expired(record: &ShardRecord, ending_log_seq: u64, core: usize) -> ShardState {
        let id = ShardId::new(record.index);
        ShardState {
            index: record.index,
            id,
            range: HashKeyRange {
                start: record.hash_start,
                end: record.hash_end,
            },
            parent: record.parent,
            adjacent_parent: record.adjacent_parent,
            created_ms: record.created_ms,
            ending_log_seq: Some(ending_log_seq),
            closed_ms: record.closed_ms,
            expired: true,
            core,
            reader: LogReader::exhausted(ending_log_seq),
            buckets: None,
            metrics: ShardMetrics::none(),
        }
    }

    pub(crate) fn to_record(&self) -> ShardRecord {
        ShardRecord {
            index: self.index,
            hash_start: self.range.start,
            hash_end: self.range.end,
            parent: self.parent,
            adjacent_parent: self.adjacent_parent,
            created_ms: self.created_ms,
            ending_log_seq: self.ending_log_seq,
            closed_ms: self.closed_ms,
        }
    }

    /// Takes write tokens for `records` records of `bytes` bytes, or says the shard is over
    /// its limit (and takes nothing).
    pub(crate) fn admit_write(&self, records: u64, bytes: u64, now_ms: u64) -> bool {
        let Some(buckets) = &self.buckets else {
            return true;
        };
        let mut b = buckets.lock().unwrap_or_else(|e| e.into_inner());
        if !(b.write_records.has(records, now_ms) && b.write_bytes.has(bytes, now_ms)) {
            return false;
        }
        b.write_records.take(records, now_ms);
        b.write_bytes.take(bytes, now_ms);
        true
    }

    /// Takes a read call token, or says the shard is over its limit. Bytes are charged
    /// after the read ([`ShardState::charge_read_bytes`]), as Kinesis does.
    pub(crate) fn admit_read(&self, now_ms: u64) -> bool {
        let Some(buckets) = &self.buckets else {
            return true;
        };
        let mut b = buckets.lock().unwrap_or_else(|e| e.into_inner());
        if !(b.read_calls.has(1, now_ms) && b.read_bytes.has(1, now_ms)) {
            return false;
        }
        b.read_calls.take(1, now_ms);
        true
    }

    pub(crate) fn charge_read_bytes(&self, bytes: u64, now_ms: u64) {
        if let Some(buckets) = &self.buckets {
            let mut b = buckets.lock().unwrap_or_else(|e| e.into_inner());
            b.read_bytes.take(bytes, now_ms);
        }
    }
}

/// The token buckets of one throttled shard.
pub(crate) struct ShardBuckets {
    write_bytes: TokenBucket,
    write_records: TokenBucket,
    read_bytes: TokenBucket,
    read_calls: TokenBucket,
}

impl ShardBuckets {
    fn new(limits: ThroughputLimits, now_ms: u64) -> ShardBuckets {
        ShardBuckets {
            write_bytes: TokenBucket::new(limits.write_bytes_per_sec, now_ms),
            write_records: TokenBucket::new(limits.write_records_per_sec, now_ms),
            read_bytes: TokenBucket::new(limits.read_bytes_per_sec, now_ms),
            read_calls: TokenBucket::new(limits.read_calls_per_sec, now_ms),
        }
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}
