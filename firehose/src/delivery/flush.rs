//! The writing half of a delivery task: one object at a time, journal, write, make
//! durable, commit, clear; and settling a flush a crash interrupted (docs/design/firehose.md,
//! "Crash argument").

use super::prepare::{Named, Naming, Object};
use super::retry::Refused;
use super::{Interrupted, RETRY_FIRST, RETRY_MAX, blocking, failed, now_ms, sleep};
use crate::bucket::{Bucket, Buckets};
use crate::intent::{self, Intent};
use crate::stats::DeliveryStats;
use sluice_core::{Consumer, Durability, SequenceNumber};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::watch;

/// Which bucket an object goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Destination,
    Backup,
}

/// The writing half of a delivery task.
pub(super) struct Writing {
    pub(super) incarnation: String,
    /// The destination bucket's name.
    pub(super) bucket_name: String,
    pub(super) buckets: Arc<dyn Buckets>,
    /// Resolved when first needed, and again after a failure.
    pub(super) bucket: Option<Bucket>,
    /// The source record backup's bucket, if there is a backup; resolved as `bucket` is.
    pub(super) backup_bucket_name: Option<String>,
    pub(super) backup_bucket: Option<Bucket>,
    pub(super) intent_path: PathBuf,
    pub(super) stats: Arc<DeliveryStats>,
    pub(super) stop: watch::Receiver<bool>,
}

impl Writing {
    /// Settles a flush a crash interrupted. Its object exists whole: it is made durable
    /// and its positions committed (no record is written twice). It does not (or is torn):
    /// its records are read and delivered again. A journal of another incarnation of the
    /// delivery stream, or of a source stream deleted since, is dropped.
    pub(super) async fn recover(
        &mut self,
        consumer: &Consumer,
        source_created_ms: u64,
        naming: &Naming,
    ) -> Result<(), Interrupted> {
        let found =
            intent::read(&self.intent_path).map_err(|e| failed("read the flush journal", e))?;
        let Some(intent) = found else {
            return Ok(());
        };
        if intent.incarnation == self.incarnation && intent.source_created_ms == source_created_ms {
            // Settled in the buckets the flush wrote to, then back to the destination's.
            let now = (self.bucket_name.clone(), self.backup_bucket_name.clone());
            if !intent.bucket.is_empty() {
                self.use_buckets(
                    intent.bucket.clone(),
                    Some(intent.backup_bucket.clone()).filter(|b| !b.is_empty()),
                );
            }
            let settled = self.settle(&intent, consumer, naming).await;
            if !intent.bucket.is_empty() {
                self.use_buckets(now.0, now.1);
            }
            settled?;
        }
        intent::clear(&self.intent_path).map_err(|e| failed("clear the flush journal", e))
    }

    /// Writes to (and settles in) these buckets from now on.
    fn use_buckets(&mut self, bucket: String, backup: Option<String>) {
        if bucket != self.bucket_name {
            (self.bucket_name, self.bucket) = (bucket, None);
        }
        if backup != self.backup_bucket_name {
            (self.backup_bucket_name, self.backup_bucket) = (backup, None);
        }
    }

    async fn settle(
        &mut self,
        intent: &Intent,
        consumer: &Consumer,
        naming: &Naming,
    ) -> Result<(), Interrupted> {
        let positions: BTreeMap<String, SequenceNumber> = intent
            .positions
            .iter()
            .filter_map(|(shard, seq)| Some((shard.clone(), seq.parse().ok().map(SequenceNumber)?)))
            .collect();
        // A journal that came back after a power cut (clearing it is not synced) names a
        // flush committed since: its objects are delivered, and may be gone downstream.
        let mut committed = true;
        for (shard, seq) in &positions {
            let current = consumer
                .position(shard)
                .map_err(|e| failed("read a position", e))?;
            committed &= current.is_some_and(|current| current >= *seq);
        }
        if committed {
            return Ok(());
        }
        let http = !intent.request_id.is_empty();
        if http && intent.key.is_empty() {
            // Whether the endpoint took the request cannot be learnt: its records are sent
            // again (at least once), and counted.
            self.delete(Place::Destination, &[&intent.error_key])
                .await?;
            self.delete(Place::Backup, &[&intent.backup_key]).await?;
            self.stats.redelivered(intent.records);
            return Ok(());
        }
        let written: Vec<(&String, u64)> = [
            (&intent.key, intent.size),
            (&intent.error_key, intent.error_size),
        ]
        .into_iter()
        .chain(intent.more.iter().map(|(key, size)| (key, *size)))
        .filter(|(key, _)| !key.is_empty())
        .collect();
        let backup = &intent.backup_key;
        let mut whole = true;
        for &(key, size) in &written {
            whole &= self.exists_whole(Place::Destination, key, size).await?;
        }
        if !backup.is_empty() {
            whole &= self
                .exists_whole(Place::Backup, backup, intent.backup_size)
                .await?;
        }
        if !whole {
            // Not put, or torn by a power cut between a rename and its sync: all go (some
            // may be whole), and the records are read and delivered again.
            let keys: Vec<&String> = written.iter().map(|(key, _)| *key).collect();
            self.delete(Place::Destination, &keys).await?;
            self.delete(Place::Backup, &[backup]).await?;
            if http {
                self.stats.redelivered(intent.records);
            }
            return Ok(());
        }
        let backup = (!backup.is_empty()).then_some((Place::Backup, backup));
        let places = written.iter().map(|(key, _)| (Place::Destination, *key));
        for (place, key) in places.chain(backup) {
            let (bucket, key) = (self.bucket(place)?, key.clone());
            blocking(move || bucket.sync(&key), "make a written object durable").await?;
        }
        let mut undelivered = 0;
        if intent.load {
            // Loaded already or not, the load finds out (it records each object it loads).
            let staged = self.staged(&intent.key, naming).await?;
            undelivered = self
                .load(naming, &intent.key, &staged, intent.records)
                .await?;
        }
        commit(consumer, &positions).await?;
        // An HTTP flush settled this way delivered nothing (its records are in the error
        // output), nor did a load that went to a manifest.
        let delivered = if http {
            0
        } else {
            intent.records - undelivered
        };
        self.stats.recovered_object(delivered);
        Ok(())
    }

    /// Loads the staged object `key` (its records in `staged`) into the database; when the
    /// database does not take it within the retry duration, a manifest naming it goes to
    /// `errors/manifests/`. How many records were not loaded.
    async fn load(
        &mut self,
        naming: &Naming,
        key: &str,
        staged: &[u8],
        records: u64,
    ) -> Result<u64, Interrupted> {
        let database = naming.database.as_ref().expect("a load has its database");
        let stats = self.stats.clone();
        let retried =
            move |r: &Refused| stats.failed(format!("load {key}: {}: {}", r.code, r.message));
        match database.load(key, staged, records, retried).await? {
            Ok(_) => Ok(0),
            Err(failure) => {
                let manifest = naming.manifest(&self.bucket_name, key);
                self.put_until_done(Place::Destination, &manifest.key, manifest.body)
                    .await?;
                let message = format!(
                    "{}: {} (after {} attempts)",
                    failure.code, failure.message, failure.attempts
                );
                self.stats.undelivered(records, message);
                Ok(records)
            }
        }
    }

    /// The records of the staged object `key`, read back and uncompressed.
    async fn staged(&mut self, key: &str, naming: &Naming) -> Result<Vec<u8>, Interrupted> {
        let bucket = self.bucket(Place::Destination)?;
        let path = object_store::path::Path::from(key);
        let body = match bucket.store.get(&path).await {
            Ok(found) => found
                .bytes()
                .await
                .map_err(|e| failed("read a staged object", e))?,
            Err(e) => return Err(failed("read a staged object", e)),
        };
        if naming.compression != crate::spec::Compression::Gzip {
            return Ok(body.to_vec());
        }
        let gunzip = move || {
            let mut data = Vec::new();
            let mut reader = flate2::read::MultiGzDecoder::new(&body[..]);
            std::io::Read::read_to_end(&mut reader, &mut data).map(|_| data)
        };
        blocking(gunzip, "uncompress a staged object").await
    }

    /// Deletes the objects at `keys` (empty ones name none), if they exist.
    async fn delete(&mut self, place: Place, keys: &[&String]) -> Result<(), Interrupted> {
        for key in keys.iter().filter(|key| !key.is_empty()) {
            let bucket = self.bucket(place)?;
            let _ = bucket
                .store
                .delete(&object_store::path::Path::from(key.as_str()))
                .await;
        }
        Ok(())
    }

    /// Whether the object at `key` exists with `size` bytes.
    async fn exists_whole(
        &mut self,
        place: Place,
        key: &str,
        size: u64,
    ) -> Result<bool, Interrupted> {
        let bucket = self.bucket(place)?;
        match bucket
            .store
            .head(&object_store::path::Path::from(key))
            .await
        {
            Ok(meta) => Ok(meta.size == size),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(failed("look for an interrupted flush's object", e)),
        }
    }

    /// Journal, write the error output and the objects (or send the request), make them
    /// durable, load them (a database), commit, clear. A flush that writes nothing (every
    /// record dropped) only commits.
    pub(super) async fn write(
        &mut self,
        object: Object,
        naming: &Naming,
        consumer: &Consumer,
        source_created_ms: u64,
    ) -> Result<(), Interrupted> {
        // A request not taken is counted as its error output's object.
        let objects = object.mains.len()
            + usize::from(object.backup.is_some())
            + usize::from(object.errors.is_some())
            + usize::from(object.conversion_errors.is_some())
            + usize::from(object.request.is_some());
        if objects == 0 {
            // Every record dropped (by the transform, or unpacked to nothing).
            if !object.positions.is_empty() {
                commit(consumer, &object.positions).await?;
                self.stats.processed(object.dropped, 0);
            }
            return Ok(());
        }
        let mut intent = self.intent(&object, source_created_ms);
        self.journal(&intent).await?;
        if let Some(backup) = object.backup {
            self.put_until_done(Place::Backup, &backup.key, backup.body)
                .await?;
        }
        let errors = object.errors.into_iter().chain(object.conversion_errors);
        for named in errors.chain(object.mains) {
            self.put_until_done(Place::Destination, &named.key, named.body)
                .await?;
        }
        let mut undelivered = 0;
        if let Some(staged) = &object.staged {
            undelivered = self
                .load(naming, &intent.key, staged, object.records)
                .await?;
        }
        if let Some(request) = &object.request {
            undelivered = self
                .send(naming, request, &mut intent, object.oldest_ms)
                .await?;
        }
        commit(consumer, &object.positions).await?;
        intent::clear(&self.intent_path).map_err(|e| failed("clear the flush journal", e))?;
        let delivered = object.records - undelivered;
        let bytes = if delivered == 0 { 0 } else { object.raw_bytes };
        self.stats
            .delivered(delivered, bytes, objects as u64, now_ms());
        self.stats.processed(object.dropped, object.failed);
        Ok(())
    }

    /// The journal record of `object`'s flush.
    fn intent(&self, object: &Object, source_created_ms: u64) -> Intent {
        let key_and_size = |n: &Named| (n.key.clone(), n.body.len() as u64);
        let mut mains = object.mains.iter().map(key_and_size);
        let (key, size) = mains.next().unwrap_or_default();
        let (error_key, error_size) = object.errors.as_ref().map(key_and_size).unwrap_or_default();
        let (backup_key, backup_size) =
            object.backup.as_ref().map(key_and_size).unwrap_or_default();
        Intent {
            key,
            positions: object
                .positions
                .iter()
                .map(|(shard, seq)| (shard.clone(), seq.to_string()))
                .collect(),
            records: object.records,
            size,
            incarnation: self.incarnation.clone(),
            source_created_ms,
            error_key,
            error_size,
            request_id: object
                .request
                .as_ref()
                .map(|r| r.id.clone())
                .unwrap_or_default(),
            load: object.staged.is_some(),
            backup_key,
            backup_size,
            bucket: self.bucket_name.clone(),
            backup_bucket: self.backup_bucket_name.clone().unwrap_or_default(),
            more: object
                .conversion_errors
                .iter()
                .map(key_and_size)
                .chain(mains)
                .collect(),
        }
    }

    /// Sends `request` to the endpoint; when it is not taken, its records go to the error
    /// output, named in the journal before it is written (a restart that finds it whole
    /// knows the endpoint did not take them, and sends none again). How many records were
    /// not taken.
    async fn send(
        &mut self,
        naming: &Naming,
        request: &super::http::Request,
        intent: &mut Intent,
        oldest_ms: u64,
    ) -> Result<u64, Interrupted> {
        let endpoint = naming
            .endpoint
            .as_ref()
            .expect("a request has its endpoint");
        let stats = self.stats.clone();
        let retried = |r: &Refused| stats.failed(format!("send: {}: {}", r.code, r.message));
        let Err(failure) = endpoint.send(request, retried).await? else {
            return Ok(0);
        };
        let failed = naming.http_failed(request, &failure, oldest_ms).await?;
        (intent.key, intent.size) = (failed.key.clone(), failed.body.len() as u64);
        self.journal(intent).await?;
        self.put_until_done(Place::Destination, &failed.key, failed.body)
            .await?;
        self.stats.undelivered(intent.records, failure.message);
        Ok(intent.records)
    }

    async fn journal(&self, intent: &Intent) -> Result<(), Interrupted> {
        let (path, intent) = (self.intent_path.clone(), intent.clone());
        blocking(move || intent::write(&path, &intent), "journal a flush").await
    }

    /// Writes the object and makes it durable, retrying with back-off for as long as it
    /// fails (or until asked to stop: the journal lets the next start settle it).
    async fn put_until_done(
        &mut self,
        place: Place,
        key: &str,
        body: Vec<u8>,
    ) -> Result<(), Interrupted> {
        let path = object_store::path::Path::from(key);
        let body = bytes::Bytes::from(body);
        let mut pause = RETRY_FIRST;
        loop {
            let bucket = self.bucket(place)?;
            let written = match bucket.put(&path, body.clone()).await {
                Ok(_) => {
                    let key = key.to_owned();
                    blocking(move || bucket.sync(&key), "make the object durable").await
                }
                Err(e) => Err(failed("write", e)),
            };
            match written {
                Ok(()) => return Ok(()),
                Err(Interrupted::Failed(error)) => {
                    self.stats.failed(format!("object {key}: {error}"));
                    sleep(&mut self.stop, pause).await?;
                    pause = (pause * 2).min(RETRY_MAX);
                }
                Err(stop) => return Err(stop),
            }
        }
    }

    /// The destination or backup bucket, resolved if needed.
    fn bucket(&mut self, place: Place) -> Result<Bucket, Interrupted> {
        let (slot, name) = match place {
            Place::Destination => (&mut self.bucket, Some(&self.bucket_name)),
            Place::Backup => (&mut self.backup_bucket, self.backup_bucket_name.as_ref()),
        };
        if let Some(bucket) = slot {
            return Ok(bucket.clone());
        }
        let name = name.ok_or_else(|| failed("reach the backup bucket", "there is no backup"))?;
        let bucket = self
            .buckets
            .bucket(name)
            .map_err(|e| failed("reach the bucket", e))?;
        *slot = Some(bucket.clone());
        Ok(bucket)
    }
}

/// Commits each shard's position; the last commit is durable, and covers the others
/// (one consumers log per stream, one fdatasync for every frame before it).
async fn commit(
    consumer: &Consumer,
    positions: &BTreeMap<String, SequenceNumber>,
) -> Result<(), Interrupted> {
    let last = positions.len().saturating_sub(1);
    for (i, (shard, &seq)) in positions.iter().enumerate() {
        // Positions only move forward: a journal that came back after a crash may name
        // an older flush than one committed since.
        let current = consumer
            .position(shard)
            .map_err(|e| failed("read a position", e))?;
        let seq = current.map_or(seq, |current| current.max(seq));
        let durability = if i == last {
            Durability::Durable
        } else {
            Durability::Visible
        };
        consumer
            .commit(shard, seq)
            .durability(durability)
            .await
            .map_err(|e| failed("commit positions", e))?;
    }
    Ok(())
}
