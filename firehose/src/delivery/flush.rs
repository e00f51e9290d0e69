//! Writing one object: journal, write, make durable, commit, clear; and settling a flush a
//! crash interrupted (docs/design/firehose.md, "Crash argument").

use super::buffer::Flush;
use super::{Delivery, Interrupted, RETRY_FIRST, RETRY_MAX, failed, now_ms};
use crate::intent::{self, Intent};
use crate::naming::object_key;
use crate::spec::Compression;
use sluice_core::{Durability, SequenceNumber};
use std::collections::BTreeMap;
use std::io::Write;

impl Delivery {
    /// Settles a flush a crash interrupted. Its object exists whole: it is made durable
    /// and its positions committed (no record is written twice). It does not (or is torn):
    /// its records are read and delivered again. A journal of another incarnation of the
    /// delivery stream, or of a source stream deleted since, is dropped.
    pub(super) async fn recover(&mut self) -> Result<(), Interrupted> {
        let found =
            intent::read(&self.intent_path).map_err(|e| failed("read the flush journal", e))?;
        let Some(intent) = found else {
            return Ok(());
        };
        let source_created_ms = self.source_created_ms()?;
        if intent.incarnation == self.incarnation && intent.source_created_ms == source_created_ms {
            self.settle(&intent).await?;
        }
        intent::clear(&self.intent_path).map_err(|e| failed("clear the flush journal", e))
    }

    async fn settle(&mut self, intent: &Intent) -> Result<(), Interrupted> {
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
                self.commit(&positions).await?;
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
    pub(super) async fn flush(&mut self, flush: Flush) -> Result<(), Interrupted> {
        if flush.records == 0 {
            return Ok(());
        }
        let key = object_key(
            &self.destination.prefix,
            &self.name,
            self.version,
            now_ms(),
            self.destination.compression,
        );
        let raw_bytes = flush.data.len() as u64;
        let compression = self.destination.compression;
        let body = blocking(move || compress(compression, flush.data), "compress").await?;
        let intent = Intent {
            key: key.clone(),
            positions: flush
                .positions
                .iter()
                .map(|(shard, seq)| (shard.clone(), seq.to_string()))
                .collect(),
            records: flush.records,
            size: body.len() as u64,
            incarnation: self.incarnation.clone(),
            source_created_ms: self.source_created_ms()?,
        };
        let path = self.intent_path.clone();
        blocking(move || intent::write(&path, &intent), "journal a flush").await?;
        self.put_until_done(&key, body).await?;
        self.commit(&flush.positions).await?;
        intent::clear(&self.intent_path).map_err(|e| failed("clear the flush journal", e))?;
        self.stats.delivered(flush.records, raw_bytes, now_ms());
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
                    self.sleep(pause).await?;
                    pause = (pause * 2).min(RETRY_MAX);
                }
                Err(stop) => return Err(stop),
            }
        }
    }

    /// Commits each shard's position; the last commit is durable, and covers the others
    /// (one consumers log per stream, one fdatasync for every frame before it).
    pub(super) async fn commit(
        &mut self,
        positions: &BTreeMap<String, SequenceNumber>,
    ) -> Result<(), Interrupted> {
        let consumer = self.consumer()?;
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

fn compress(compression: Compression, data: Vec<u8>) -> std::io::Result<Vec<u8>> {
    match compression {
        Compression::Uncompressed => Ok(data),
        Compression::Gzip => {
            let mut encoder = flate2::write::GzEncoder::new(
                Vec::with_capacity(data.len() / 4),
                flate2::Compression::default(),
            );
            encoder.write_all(&data)?;
            encoder.finish()
        }
    }
}
