//! The `Firehose` service: the catalogue of delivery streams, their puts, and one delivery
//! task each.

use crate::bucket::Buckets;
use crate::catalogue::{self, Stored};
use crate::delivery::{BufferBudget, Delivery, DeliveryParts, now_ms};
use crate::envelopes::{Envelopes, backing_scope};
use crate::error::FirehoseError;
use crate::intent;
use crate::spec::{DeliveryStreamSpec, Processor, Source};
use crate::stats::{DeliverySnapshot, DeliveryStats};
use crate::transform::Transforms;
use sluice_core::{AdminError, CreateStream, Durability, Engine, IteratorStart, Stream};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Delivery streams one `Firehose` holds at most (Firehose's default quota per region).
pub const DELIVERY_STREAMS_MAX: usize = 5000;

/// How a `Firehose` is set up.
#[derive(Clone)]
pub struct FirehoseConfig {
    /// Its own directory: the catalogue and the flush journals.
    pub dir: PathBuf,
    /// The engine holding DirectPut delivery streams' backing streams.
    pub backing_engine: Engine,
    /// Backing streams are named `<backing_prefix><delivery stream name>`.
    pub backing_prefix: String,
    /// The engine whose streams `Source::Stream` names.
    pub source_engine: Engine,
    /// Resolves destination buckets to stores.
    pub buckets: Arc<dyn Buckets>,
    /// Where delivery tasks run.
    pub runtime: tokio::runtime::Handle,
    /// Labels added to every delivery stream's metrics, beside `delivery_stream`.
    pub metric_labels: Vec<(String, String)>,
    /// Bytes all delivery streams may hold in their buffers together; past it, a delivery
    /// stream with anything buffered flushes at once rather than wait for its hints.
    pub buffer_bytes_max: u64,
    /// The functions a `Lambda` processor calls (a closure is one); `None` refuses delivery
    /// streams with a Lambda processor.
    pub transforms: Option<Arc<dyn Transforms>>,
    /// Seals and opens encrypted records: DirectPut records of delivery streams with
    /// encryption on, and records of source streams their writer sealed. `None` refuses
    /// [`Firehose::start_encryption`], and stops a delivery at an encrypted record (it is
    /// never delivered sealed).
    pub envelopes: Option<Arc<dyn Envelopes>>,
}

/// The tag a backing stream carries (its value is the delivery stream's name): a stream
/// without it is never deleted to make room for one.
pub const BACKING_STREAM_TAG: &str = "firehose-backing-stream";

/// Firehose delivery streams over Sluice engines. Dropping it stops the deliveries (each
/// at its next pause; what they were doing is settled by the next open).
pub struct Firehose {
    config: FirehoseConfig,
    streams: Mutex<BTreeMap<String, Arc<Entry>>>,
    /// Serialises creations and deletions (they write the catalogue).
    changes: tokio::sync::Mutex<()>,
    /// Partition keys for DirectPut records: a counter spreads them over the shards.
    next_key: std::sync::atomic::AtomicU64,
    budget: Arc<BufferBudget>,
}

/// Tags one delivery stream holds at most.
pub const TAGS_MAX: usize = 50;

/// One open delivery stream.
struct Entry {
    stored: Stored,
    /// Its tags now (stored with it when the catalogue is written).
    tags: Mutex<BTreeMap<String, String>>,
    /// The backing stream, for DirectPut.
    backing: Option<Stream>,
    /// The KMS key its DirectPut records are sealed under, while encryption is on.
    encryption: Mutex<Option<String>>,
    stats: Arc<DeliveryStats>,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

/// A delivery stream as Describe shows it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DeliveryStreamInfo {
    /// What it was created with.
    pub spec: DeliveryStreamSpec,
    /// When (ms since the epoch).
    pub created_ms: u64,
    /// Its version id.
    pub version: u64,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
    /// The KMS key its records are sealed under, while encryption is on.
    pub encryption_key: Option<String>,
    /// Its counters.
    pub stats: DeliverySnapshot,
}

/// Why one record of a PutRecordBatch was not taken (the others may have been).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordFailure {
    /// Firehose's error code for it.
    pub code: &'static str,
    /// What went wrong.
    pub message: String,
}

impl Firehose {
    /// Opens the delivery streams stored in `config.dir` and starts their deliveries.
    pub fn open(config: FirehoseConfig) -> Result<Firehose, FirehoseError> {
        std::fs::create_dir_all(&config.dir)
            .map_err(|e| FirehoseError::internal("create the Firehose directory", e))?;
        let stored = catalogue::load(&config.dir)?;
        let firehose = Firehose {
            budget: Arc::new(BufferBudget::new(config.buffer_bytes_max)),
            config,
            streams: Mutex::new(BTreeMap::new()),
            changes: tokio::sync::Mutex::new(()),
            next_key: std::sync::atomic::AtomicU64::new(now_ms()),
        };
        for stored in stored {
            let backing = match stored.spec.source {
                Source::DirectPut => Some(firehose.open_backing_stream(&stored.spec.name)?),
                Source::Stream { .. } => None,
            };
            firehose.start(stored, backing)?;
        }
        Ok(firehose)
    }

    /// Creates a delivery stream and starts its delivery.
    pub async fn create(&self, spec: DeliveryStreamSpec) -> Result<(), FirehoseError> {
        self.create_encrypted(spec, None).await
    }

    /// Creates a delivery stream whose DirectPut records are sealed under the KMS key
    /// `encryption_key` from the first (none: as [`Firehose::create`]).
    pub async fn create_encrypted(
        &self,
        spec: DeliveryStreamSpec,
        encryption_key: Option<String>,
    ) -> Result<(), FirehoseError> {
        spec.validate()?;
        if let Some(key) = &encryption_key {
            self.check_encryption(&spec, key)?;
        }
        let lambda = |p: &Processor| matches!(p, Processor::Lambda { .. });
        if self.config.transforms.is_none() && spec.destination.processors.iter().any(lambda) {
            return Err(crate::delivery::no_transforms());
        }
        let _changing = self.changes.lock().await;
        {
            let streams = self.lock();
            if streams.contains_key(&spec.name) {
                return Err(FirehoseError::InUse {
                    name: spec.name.clone(),
                    reason: "already exists".into(),
                });
            }
            if streams.len() >= DELIVERY_STREAMS_MAX {
                return Err(FirehoseError::LimitExceeded(format!(
                    "At most {DELIVERY_STREAMS_MAX} delivery streams may exist."
                )));
            }
        }
        // Refused now rather than stored and failing at every delivery.
        self.check_buckets(&spec.destination)?;
        // A journal left by an earlier life of the name goes first.
        intent::remove_durably(&self.intent_path(&spec.name))
            .map_err(|e| FirehoseError::internal("clear an old flush journal", e))?;
        let backing = match &spec.source {
            Source::DirectPut => Some(self.new_backing_stream(&spec.name).await?),
            Source::Stream { name } => {
                let stream = self.config.source_engine.stream(name).map_err(|_| {
                    FirehoseError::invalid(format!("Stream {name} does not exist."))
                })?;
                start_at_latest(&stream, &consumer_name(&spec.name)).await?;
                None
            }
        };
        let stored = Stored {
            spec,
            created_ms: now_ms(),
            version: 1,
            incarnation: uuid::Uuid::new_v4().to_string(),
            tags: BTreeMap::new(),
            encryption_key,
        };
        let mut all = self.stored();
        all.push(stored.clone());
        catalogue::save(&self.config.dir, all)?;
        self.start(stored, backing)
    }

    /// Deletes a delivery stream: stops its delivery (records not delivered yet are not
    /// delivered) and, for DirectPut, deletes its backing stream. Runs to its end even if
    /// the caller stops waiting.
    pub async fn delete(self: &Arc<Self>, name: &str) -> Result<(), FirehoseError> {
        let (firehose, name) = (self.clone(), name.to_owned());
        self.config
            .runtime
            .spawn(async move { firehose.delete_now(&name).await })
            .await
            .map_err(|e| FirehoseError::internal("delete", e))?
    }

    async fn delete_now(&self, name: &str) -> Result<(), FirehoseError> {
        let _changing = self.changes.lock().await;
        let entry = self.entry(name)?;
        let _ = entry.stop.send(true);
        let task = entry.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
        intent::remove_durably(&self.intent_path(name))
            .map_err(|e| FirehoseError::internal("clear the flush journal", e))?;
        let remaining = self
            .stored()
            .into_iter()
            .filter(|s| s.spec.name != name)
            .collect();
        catalogue::save(&self.config.dir, remaining)?;
        self.lock().remove(name);
        if let Some(backing) = &entry.backing {
            match backing.delete().await {
                Ok(()) | Err(AdminError::StreamNotFound { .. }) => {}
                Err(e) => return Err(FirehoseError::internal("delete the backing stream", e)),
            }
        }
        Ok(())
    }

    /// Replaces a delivery stream's destination (Firehose's UpdateDestination) when its
    /// version is `current_version` (and its embedder's metadata, when given); returns the
    /// new version (one more). The delivery
    /// finishes the write under way; the records after it go to the new destination, in
    /// objects named with the new version. Its counters and tags carry over.
    pub async fn update_destination(
        &self,
        name: &str,
        current_version: u64,
        destination: crate::spec::Destination,
        metadata: Option<BTreeMap<String, String>>,
    ) -> Result<u64, FirehoseError> {
        let _changing = self.changes.lock().await;
        let entry = self.entry(name)?;
        if entry.stored.version != current_version {
            return Err(FirehoseError::VersionMismatch {
                name: name.to_owned(),
                current: entry.stored.version,
            });
        }
        let mut stored = entry.stored.clone();
        stored.spec.destination = destination;
        if let Some(metadata) = metadata {
            stored.spec.metadata = metadata;
        }
        stored.spec.validate()?;
        let lambda = |p: &Processor| matches!(p, Processor::Lambda { .. });
        if self.config.transforms.is_none() && stored.spec.destination.processors.iter().any(lambda)
        {
            return Err(crate::delivery::no_transforms());
        }
        self.check_buckets(&stored.spec.destination)?;
        stored.version += 1;
        stored.tags = entry.tags.lock().unwrap_or_else(|e| e.into_inner()).clone();
        stored.encryption_key = lock(&entry.encryption).clone();
        let _ = entry.stop.send(true);
        let task = entry.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
        let all = self
            .stored()
            .into_iter()
            .map(|s| {
                if s.spec.name == name {
                    stored.clone()
                } else {
                    s
                }
            })
            .collect();
        let saved = catalogue::save(&self.config.dir, all);
        // Restarted either way: on the new destination when it is stored, else the old.
        let (restarted, version) = match saved {
            Ok(()) => (stored, entry.stored.version + 1),
            Err(_) => (entry.stored.clone(), entry.stored.version),
        };
        self.start_with(restarted, entry.backing.clone(), Some(entry.stats.clone()))?;
        saved.map(|()| version)
    }

    /// Adds or replaces tags (at most 50 in all; keys of 1–128 characters, not starting
    /// with `aws:`; values of at most 256).
    pub async fn tag(
        &self,
        name: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), FirehoseError> {
        for (key, value) in tags {
            if key.is_empty() || key.chars().count() > 128 || value.chars().count() > 256 {
                return Err(FirehoseError::invalid(format!(
                    "Tag {key:?}: keys are 1 to 128 characters and values at most 256."
                )));
            }
            if key.starts_with("aws:") {
                return Err(FirehoseError::invalid(format!(
                    "Tag {key:?}: the aws: prefix is reserved."
                )));
            }
        }
        let _changing = self.changes.lock().await;
        let entry = self.entry(name)?;
        let mut now = entry.tags.lock().unwrap_or_else(|e| e.into_inner()).clone();
        now.extend(tags.iter().map(|(k, v)| (k.clone(), v.clone())));
        if now.len() > TAGS_MAX {
            return Err(FirehoseError::LimitExceeded(format!(
                "A delivery stream has at most {TAGS_MAX} tags."
            )));
        }
        self.save_tags(&entry, now)
    }

    /// Removes the tags with these keys (absent ones are ignored).
    pub async fn untag(&self, name: &str, keys: &[String]) -> Result<(), FirehoseError> {
        let _changing = self.changes.lock().await;
        let entry = self.entry(name)?;
        let mut now = entry.tags.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for key in keys {
            now.remove(key);
        }
        self.save_tags(&entry, now)
    }

    fn save_tags(
        &self,
        entry: &Entry,
        tags: BTreeMap<String, String>,
    ) -> Result<(), FirehoseError> {
        self.save_changed(entry, |stored| stored.tags = tags.clone())?;
        *lock(&entry.tags) = tags;
        Ok(())
    }

    /// Writes the catalogue with `entry`'s delivery stream changed by `change` (the others
    /// as they are); the caller changes the entry in memory once it is stored.
    fn save_changed(
        &self,
        entry: &Entry,
        change: impl Fn(&mut Stored),
    ) -> Result<(), FirehoseError> {
        let name = &entry.stored.spec.name;
        let all = self
            .stored()
            .into_iter()
            .map(|mut s| {
                if &s.spec.name == name {
                    change(&mut s);
                }
                s
            })
            .collect();
        catalogue::save(&self.config.dir, all)
    }

    /// Seals the DirectPut records put from now on under the KMS key `key` (Firehose's
    /// StartDeliveryStreamEncryption; called again, it changes the key). Records stored
    /// before stay as they are; each is opened as it is read.
    pub async fn start_encryption(&self, name: &str, key: &str) -> Result<(), FirehoseError> {
        let _changing = self.changes.lock().await;
        let entry = self.entry(name)?;
        self.check_encryption(&entry.stored.spec, key)?;
        self.save_encryption(&entry, Some(key.to_owned()))
    }

    /// Stores DirectPut records in the clear from now on (Firehose's
    /// StopDeliveryStreamEncryption); the sealed ones are still opened as they are read.
    pub async fn stop_encryption(&self, name: &str) -> Result<(), FirehoseError> {
        let _changing = self.changes.lock().await;
        let entry = self.entry(name)?;
        self.save_encryption(&entry, None)
    }

    /// The destination's buckets (and its backup's) can be reached.
    fn check_buckets(&self, destination: &crate::spec::Destination) -> Result<(), FirehoseError> {
        self.config.buckets.bucket(&destination.bucket)?;
        if let Some(backup) = &destination.backup {
            self.config.buckets.bucket(&backup.bucket)?;
        }
        Ok(())
    }

    fn check_encryption(&self, spec: &DeliveryStreamSpec, key: &str) -> Result<(), FirehoseError> {
        if spec.source != Source::DirectPut {
            return Err(FirehoseError::invalid(format!(
                "Delivery stream {} reads a Kinesis stream: its records are encrypted as that stream's are.",
                spec.name
            )));
        }
        if self.config.envelopes.is_none() {
            return Err(FirehoseError::invalid(
                "This Firehose has no keys to encrypt with (FirehoseConfig::envelopes).",
            ));
        }
        if key.is_empty() {
            return Err(FirehoseError::invalid("The encryption key id is empty."));
        }
        Ok(())
    }

    /// Stores the delivery stream with `key`, then puts under it: a put sealed under a key
    /// is never acknowledged before the key is stored.
    fn save_encryption(&self, entry: &Entry, key: Option<String>) -> Result<(), FirehoseError> {
        self.save_changed(entry, |stored| stored.encryption_key = key.clone())?;
        *lock(&entry.encryption) = key;
        Ok(())
    }

    /// A delivery stream's description and counters.
    pub fn describe(&self, name: &str) -> Result<DeliveryStreamInfo, FirehoseError> {
        let entry = self.entry(name)?;
        Ok(DeliveryStreamInfo {
            spec: entry.stored.spec.clone(),
            created_ms: entry.stored.created_ms,
            version: entry.stored.version,
            tags: entry.tags.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            encryption_key: lock(&entry.encryption).clone(),
            stats: entry.stats.snapshot(),
        })
    }

    /// Up to `limit` names after `exclusive_start`, in order, of the delivery streams whose
    /// source `direct_put` selects (`None`: all); and whether more follow.
    pub fn list(
        &self,
        limit: usize,
        exclusive_start: Option<&str>,
        direct_put: Option<bool>,
    ) -> (Vec<String>, bool) {
        let streams = self.lock();
        let mut matching = streams
            .iter()
            .filter(|(name, _)| exclusive_start.is_none_or(|start| name.as_str() > start))
            .filter(|(_, entry)| {
                let is_direct = entry.stored.spec.source == Source::DirectPut;
                direct_put.is_none_or(|wanted| wanted == is_direct)
            })
            .map(|(name, _)| name.clone());
        let names: Vec<String> = matching.by_ref().take(limit).collect();
        (names, matching.next().is_some())
    }

    /// The stream holding `name`'s records, for a layer that reads them as they come in
    /// (analytics' inputs): its backing stream (DirectPut; sealed records are flagged so
    /// in the log). A delivery stream that reads a stream is refused: who reads it should
    /// read that stream, under that stream's own permissions.
    pub fn records_stream(&self, name: &str) -> Result<Stream, FirehoseError> {
        let entry = self.entry(name)?;
        match (&entry.backing, &entry.stored.spec.source) {
            (Some(backing), _) => Ok(backing.clone()),
            (None, Source::Stream { name: source }) => Err(FirehoseError::invalid(format!(
                "Delivery stream {name} reads stream {source}: read that stream instead."
            ))),
            (None, Source::DirectPut) => Err(FirehoseError::Internal(format!(
                "Delivery stream {name} takes DirectPut records and has no backing stream."
            ))),
        }
    }

    /// The backing stream of `name`, for a layer that puts records into it as
    /// PutRecordBatch would (analytics' outputs, which find their rows there after a
    /// crash). Refused for a delivery stream that reads a stream, and for one that seals
    /// its records (a layer's puts would be kept unsealed).
    pub fn intake_stream(&self, name: &str) -> Result<Stream, FirehoseError> {
        let entry = self.entry(name)?;
        let Some(backing) = &entry.backing else {
            return Err(FirehoseError::invalid(format!(
                "Delivery stream {name} reads a Kinesis stream: put records into that stream."
            )));
        };
        if lock(&entry.encryption).is_some() {
            return Err(FirehoseError::invalid(format!(
                "Delivery stream {name} seals its records (server-side encryption): rows cannot be put into it unsealed."
            )));
        }
        Ok(backing.clone())
    }

    /// Puts one record; returns its record id once it is durable.
    pub async fn put_record(&self, name: &str, data: &[u8]) -> Result<String, FirehoseError> {
        let mut results = self.put_record_batch(name, &[data]).await?;
        results
            .pop()
            .expect("one result per record")
            .map_err(|failure| FirehoseError::Unavailable(failure.message))
    }

    /// Puts up to 500 records (4 MiB); each gets its record id once durable, or a failure.
    pub async fn put_record_batch(
        &self,
        name: &str,
        records: &[&[u8]],
    ) -> Result<Vec<Result<String, RecordFailure>>, FirehoseError> {
        crate::put::check_batch(records)?;
        let entry = self.entry(name)?;
        let Some(backing) = &entry.backing else {
            return Err(FirehoseError::invalid(format!(
                "Delivery stream {name} reads a Kinesis stream: put records into that stream."
            )));
        };
        let first_key = self
            .next_key
            .fetch_add(records.len() as u64, std::sync::atomic::Ordering::Relaxed);
        let key = lock(&entry.encryption).clone();
        let results = match (key, &self.config.envelopes) {
            (Some(key), Some(envelopes)) => {
                let scope = (backing_scope(name), entry.stored.created_ms);
                let sealed = envelopes.seal((&scope.0, scope.1), &key, records).await?;
                if sealed.len() != records.len() {
                    return Err(FirehoseError::Internal(format!(
                        "{} envelopes were made for {} records.",
                        sealed.len(),
                        records.len()
                    )));
                }
                let sealed: Vec<&[u8]> = sealed.iter().map(Vec::as_slice).collect();
                crate::put::put(backing, first_key, &sealed, true).await?
            }
            (Some(_), None) => {
                return Err(FirehoseError::Key(format!(
                    "Delivery stream {name} encrypts its records and this Firehose has no keys to seal them with (FirehoseConfig::envelopes)."
                )));
            }
            (None, _) => crate::put::put(backing, first_key, records, false).await?,
        };
        let taken: Vec<&[u8]> = records
            .iter()
            .zip(&results)
            .filter(|(_, r)| r.is_ok())
            .map(|(record, _)| *record)
            .collect();
        entry.stats.incoming(
            taken.len() as u64,
            taken.iter().map(|r| r.len() as u64).sum(),
        );
        Ok(results)
    }

    /// Stops every delivery and waits for them (each stops at its next pause).
    pub async fn close(&self) {
        let entries: Vec<Arc<Entry>> = self.lock().values().cloned().collect();
        for entry in &entries {
            let _ = entry.stop.send(true);
        }
        for entry in entries {
            let task = entry.task.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(task) = task {
                let _ = task.await;
            }
        }
    }

    fn start(&self, stored: Stored, backing: Option<Stream>) -> Result<(), FirehoseError> {
        self.start_with(stored, backing, None)
    }

    /// Starts a delivery task for `stored`, counting in `stats` (new ones when `None`).
    fn start_with(
        &self,
        stored: Stored,
        backing: Option<Stream>,
        stats: Option<Arc<DeliveryStats>>,
    ) -> Result<(), FirehoseError> {
        let name = stored.spec.name.clone();
        let source = match &stored.spec.source {
            Source::DirectPut => (
                self.config.backing_engine.clone(),
                format!("{}{name}", self.config.backing_prefix),
            ),
            Source::Stream { name } => (self.config.source_engine.clone(), name.clone()),
        };
        let stats = stats
            .unwrap_or_else(|| Arc::new(DeliveryStats::new(&name, &self.config.metric_labels)));
        let (stop, stopped) = watch::channel(false);
        let delivery = Delivery::new(DeliveryParts {
            name: name.clone(),
            version: stored.version,
            incarnation: stored.incarnation.clone(),
            source,
            consumer_name: consumer_name(&name),
            budget: self.budget.clone(),
            destination: stored.spec.destination.clone(),
            buckets: self.config.buckets.clone(),
            transforms: self.config.transforms.clone(),
            envelopes: self.config.envelopes.clone().map(|envelopes| {
                let scope = match &stored.spec.source {
                    Source::DirectPut => backing_scope(&name),
                    Source::Stream { name } => name.clone(),
                };
                (envelopes, scope)
            }),
            intent_path: self.intent_path(&name),
            stats: stats.clone(),
            stop: stopped,
        })?;
        let task = self.config.runtime.spawn(delivery.run());
        let entry = Entry {
            tags: Mutex::new(stored.tags.clone()),
            encryption: Mutex::new(stored.encryption_key.clone()),
            stored,
            backing,
            stats,
            stop,
            task: Mutex::new(Some(task)),
        };
        self.lock().insert(name, Arc::new(entry));
        Ok(())
    }

    /// The backing stream of a stored DirectPut delivery stream (created again, empty, if
    /// it went missing). Blocks: `open` is not called from async code.
    fn open_backing_stream(&self, name: &str) -> Result<Stream, FirehoseError> {
        let engine = &self.config.backing_engine;
        let stream_name = format!("{}{name}", self.config.backing_prefix);
        if let Ok(stream) = engine.stream(&stream_name) {
            return Ok(stream);
        }
        engine
            .create_stream(CreateStream::provisioned(&stream_name, 1))
            .wait()
            .map_err(|e| FirehoseError::internal("create the backing stream", e))
    }

    /// A new, empty backing stream for a new DirectPut delivery stream; one left by a
    /// delivery stream deleted (or never stored) before a crash is replaced.
    async fn new_backing_stream(&self, name: &str) -> Result<Stream, FirehoseError> {
        let engine = &self.config.backing_engine;
        let stream_name = format!("{}{name}", self.config.backing_prefix);
        let tag = (BACKING_STREAM_TAG.to_owned(), name.to_owned());
        if let Ok(stale) = engine.stream(&stream_name) {
            // Only a stream this library made: never a user's stream of the same name.
            if !stale.tags().is_ok_and(|tags| tags.contains(&tag)) {
                return Err(FirehoseError::InUse {
                    name: name.to_owned(),
                    reason: format!(
                        "cannot take its backing stream name {stream_name}: a stream of that name exists"
                    ),
                });
            }
            stale
                .delete()
                .await
                .map_err(|e| FirehoseError::internal("replace a stale backing stream", e))?;
        }
        let mut create = CreateStream::provisioned(&stream_name, 1);
        create.tags.push(tag);
        engine
            .create_stream(create)
            .await
            .map_err(|e| FirehoseError::internal("create the backing stream", e))
    }

    fn entry(&self, name: &str) -> Result<Arc<Entry>, FirehoseError> {
        self.lock()
            .get(name)
            .cloned()
            .ok_or_else(|| FirehoseError::not_found(name))
    }

    fn stored(&self) -> Vec<Stored> {
        self.lock()
            .values()
            .map(|e| Stored {
                tags: e.tags.lock().unwrap_or_else(|e| e.into_inner()).clone(),
                encryption_key: lock(&e.encryption).clone(),
                ..e.stored.clone()
            })
            .collect()
    }

    fn intent_path(&self, name: &str) -> PathBuf {
        self.config.dir.join(format!("{name}.intent"))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<Entry>>> {
        self.streams.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A mutex's value, even after a panic elsewhere (each is replaced whole).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The engine consumer whose positions are a delivery stream's checkpoints.
fn consumer_name(delivery_stream: &str) -> String {
    format!("firehose.{delivery_stream}")
}

/// Commits the current end of every shard of `stream`: a delivery stream reading a stream
/// starts with the records put after its creation, as Firehose does (and a delivery stream
/// created again under a name does not resume an earlier one's positions).
async fn start_at_latest(stream: &Stream, consumer: &str) -> Result<(), FirehoseError> {
    let failed =
        |e: &dyn std::fmt::Display| FirehoseError::internal("start at the stream's end", e);
    let consumer = stream.consumer(consumer).map_err(|e| failed(&e))?;
    let mut shards = Vec::new();
    loop {
        let after = shards.last().cloned();
        let page = stream
            .describe(None, after.as_deref())
            .map_err(|e| failed(&e))?;
        shards.extend(page.shards.iter().map(|s| s.shard_id.to_string()));
        if !page.has_more_shards {
            break;
        }
    }
    let last = shards.len().saturating_sub(1);
    for (i, shard) in shards.iter().enumerate() {
        let end = stream
            .shard_iterator(shard, IteratorStart::Latest)
            .map_err(|e| failed(&e))?
            .position()
            .checkpoint();
        let durability = if i == last {
            Durability::Durable
        } else {
            Durability::Visible
        };
        consumer
            .commit(shard, end)
            .durability(durability)
            .await
            .map_err(|e| failed(&e))?;
    }
    Ok(())
}
