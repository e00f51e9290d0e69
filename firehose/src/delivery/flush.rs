//! The writing half of a delivery task: one object at a time, journal, write, make
//! durable, commit, clear; and settling a flush a crash interrupted (docs/design/firehose.md,
//! "Crash argument").

use super::buffer::Flush;
use super::{Interrupted, RETRY_FIRST, RETRY_MAX, failed, now_ms, sleep};
use crate::bucket::{Bucket, Buckets};
use crate::compress::compress;
use crate::intent::{self, Intent};
use crate::naming::{Prefix, object_key};
use crate::spec::Compression;
use crate::stats::DeliveryStats;
use sluice_core::{Consumer, Durability, SequenceNumber};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::watch;

/// How a delivery stream's objects are named and compressed.
#[derive(Clone)]
pub(super) struct Naming {
    pub(super) name: String,
    pub(super) version: u64,
    pub(super) prefix: Prefix,
    pub(super) compression: Compression,
}

/// One object, ready to write: named, compressed, with the positions it delivers.
pub(super) struct Object {
    key: String,
    body: Vec<u8>,
    records: u64,
    /// Its records' bytes before compression.
    raw_bytes: u64,
    /// Per shard id, the last record in the object.
    positions: BTreeMap<String, SequenceNumber>,
}

impl Naming {
    /// Names and compresses a buffer's records (off the async threads).
    pub(super) async fn prepare(&self, flush: Flush) -> Result<Object, Interrupted> {
        let key = object_key(
            &self.prefix,
            &self.name,
            self.version,
            flush.oldest_ms,
            now_ms(),
            self.compression,
        );
        let raw_bytes = flush.data.len() as u64;
        let compression = self.compression;
        let data = flush.data;
        // A ZIP object's one entry is named as the object, without `.zip`.
        let entry = key.rsplit('/').next().unwrap_or_default();
        let entry = entry.strip_suffix(".zip").unwrap_or(entry).to_owned();
        let body = blocking(move || compress(compression, data, &entry), "compress").await?;
        Ok(Object {
            key,
            body,
            records: flush.records,
            raw_bytes,
            positions: flush.positions,
        })
    }
}

/// The writing half of a delivery task.
pub(super) struct Writing {
    pub(super) incarnation: String,
    /// The destination bucket's name.
    pub(super) bucket_name: String,
    pub(super) buckets: Arc<dyn Buckets>,
    /// Resolved when first needed, and again after a failure.
    pub(super) bucket: Option<Bucket>,
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
    ) -> Result<(), Interrupted> {
        let found =
            intent::read(&self.intent_path).map_err(|e| failed("read the flush journal", e))?;
        let Some(intent) = found else {
            return Ok(());
        };
        if intent.incarnation == self.incarnation && intent.source_created_ms == source_created_ms {
            self.settle(&intent, consumer).await?;
        }
        intent::clear(&self.intent_path).map_err(|e| failed("clear the flush journal", e))
    }

    async fn settle(&mut self, intent: &Intent, consumer: &Consumer) -> Result<(), Interrupted> {
        let bucket = self.bucket()?;
        let path = object_store::path::Path::from(intent.key.as_str());
        match bucket.store.head(&path).await {
            Ok(meta) if meta.size == intent.size => {
                let key = intent.key.clone();
                blocking(move || bucket.sync(&key), "make a written object durable").await?;
                let positions = intent
                    .positions
                    .iter()
                    .filter_map(|(shard, seq)| {
                        Some((shard.clone(), seq.parse().ok().map(SequenceNumber)?))
                    })
                    .collect();
                commit(consumer, &positions).await?;
                self.stats.recovered_object(intent.records);
            }
            // Torn by a power cut between its rename and its sync: its records go again.
            Ok(_) => {
                let _ = bucket.store.delete(&path).await;
            }
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(failed("look for an interrupted flush's object", e)),
        }
        Ok(())
    }

    /// Journal, write, make durable, commit, clear.
    pub(super) async fn write(
        &mut self,
        object: Object,
        consumer: &Consumer,
        source_created_ms: u64,
    ) -> Result<(), Interrupted> {
        if object.records == 0 {
            return Ok(());
        }
        let intent = Intent {
            key: object.key.clone(),
            positions: object
                .positions
                .iter()
                .map(|(shard, seq)| (shard.clone(), seq.to_string()))
                .collect(),
            records: object.records,
            size: object.body.len() as u64,
            incarnation: self.incarnation.clone(),
            source_created_ms,
        };
        let path = self.intent_path.clone();
        blocking(move || intent::write(&path, &intent), "journal a flush").await?;
        self.put_until_done(&object.key, object.body).await?;
        commit(consumer, &object.positions).await?;
        intent::clear(&self.intent_path).map_err(|e| failed("clear the flush journal", e))?;
        self.stats
            .delivered(object.records, object.raw_bytes, now_ms());
        Ok(())
    }

    /// Writes the object and makes it durable, retrying with back-off for as long as it
    /// fails (or until asked to stop: the journal lets the next start settle it).
    async fn put_until_done(&mut self, key: &str, body: Vec<u8>) -> Result<(), Interrupted> {
        let path = object_store::path::Path::from(key);
        let body = bytes::Bytes::from(body);
        let mut pause = RETRY_FIRST;
        loop {
            let bucket = self.bucket()?;
            let written = match bucket.store.put(&path, body.clone().into()).await {
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

    /// The destination bucket, resolved if needed.
    fn bucket(&mut self) -> Result<Bucket, Interrupted> {
        if let Some(bucket) = &self.bucket {
            return Ok(bucket.clone());
        }
        let bucket = self
            .buckets
            .bucket(&self.bucket_name)
            .map_err(|e| failed("reach the bucket", e))?;
        self.bucket = Some(bucket.clone());
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

/// Runs file I/O or compression off the async threads.
async fn blocking<T: Send + 'static, E: std::fmt::Display + Send + 'static>(
    work: impl FnOnce() -> Result<T, E> + Send + 'static,
    what: &str,
) -> Result<T, Interrupted> {
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(failed(what, e)),
        Err(e) => Err(failed(what, e)),
    }
}
