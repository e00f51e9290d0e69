//! What the server keeps that the engine does not: consumers, encryption settings, enhanced
//! monitoring, resource policies (kept with the stream or consumer they are on, so they go
//! with it), account settings, warm throughput.
//!
//! On disk (journal.rs): a snapshot, `server-state.json`, and a journal of the changes since,
//! `server-state.journal`. A change appends one checksummed frame holding the streams it
//! changed (not the whole state) and fdatasyncs it before it is acknowledged, so a change
//! costs what it changes. When the journal outgrows the snapshot, a new snapshot is written
//! (write, fdatasync, rename, fsync the directory) and the journal emptied.

mod journal;
#[cfg(test)]
use journal::{JOURNAL, SNAPSHOT};

use crate::wire::ApiError;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, RwLock};

/// A registered consumer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Consumer {
    /// Its name, unique within the stream.
    pub name: String,
    /// Registration time, ms since the epoch (the ARN carries it in seconds).
    pub created_ms: u64,
    /// Its tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Its resource policy.
    #[serde(default)]
    pub policy: Option<String>,
}

/// One stream's extra settings. Bound to the stream's creation time, so that a stream
/// deleted and created again starts clean.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct StreamExtras {
    /// The creation time of the stream these belong to.
    pub stream_created_ms: u64,
    /// Registered consumers, in registration order.
    pub consumers: Vec<Consumer>,
    /// `(EncryptionType, KeyId)` once StartStreamEncryption ran.
    pub encryption: Option<(String, String)>,
    /// Enhanced-monitoring metric names.
    pub shard_level_metrics: BTreeSet<String>,
    /// WarmThroughputMiBps asked for.
    pub warm_throughput_mibps: Option<u64>,
    /// The stream's resource policy.
    #[serde(default)]
    pub policy: Option<String>,
}

/// Everything persisted. Each stream's extras are shared (`Arc`): a change clones the map
/// of pointers and the one stream it changes, never the others (a 20 KiB policy on each of
/// 400 streams is not copied for every consumer registered).
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct Persisted {
    /// By stream name.
    pub streams: BTreeMap<String, Arc<StreamExtras>>,
    /// MinimumThroughputBillingCommitment status (`ENABLED`/`DISABLED`), when set.
    pub billing_commitment: Option<String>,
    /// Data keys of encrypted streams, wrapped by their KMS key, by id (never removed: old
    /// records need them).
    #[serde(default)]
    pub data_keys: BTreeMap<u32, WrappedDataKey>,
}

/// A data key as stored: wrapped (encrypted) by a KMS key of the tenant's keyring.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WrappedDataKey {
    /// The KMS key's id.
    pub kms_key: String,
    /// The keyring's ciphertext blob, base64.
    wrapped: String,
}

impl WrappedDataKey {
    /// A key wrapped by `kms_key` as `blob`.
    pub fn new(kms_key: &str, blob: &[u8]) -> WrappedDataKey {
        use base64::Engine as _;
        WrappedDataKey {
            kms_key: kms_key.to_owned(),
            wrapped: base64::engine::general_purpose::STANDARD.encode(blob),
        }
    }

    /// The keyring's blob.
    pub fn blob(&self) -> Vec<u8> {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(&self.wrapped)
            .unwrap_or_default()
    }
}

impl Persisted {
    /// The extras of the stream created at `created_ms`; those of an older stream of the
    /// name are replaced. A change for a stream older than the one stored (it was deleted
    /// and created again since the caller looked) is refused, not applied to the new one.
    pub fn stream_mut(
        &mut self,
        name: &str,
        created_ms: u64,
    ) -> Result<&mut StreamExtras, ApiError> {
        let extras = Arc::make_mut(self.streams.entry(name.to_owned()).or_default());
        if extras.stream_created_ms > created_ms {
            return Err(ApiError::not_found(format!(
                "Stream {name} was deleted and created again meanwhile; retry."
            )));
        }
        if extras.stream_created_ms != created_ms {
            *extras = StreamExtras {
                stream_created_ms: created_ms,
                ..StreamExtras::default()
            };
        }
        Ok(extras)
    }

    /// The extras of the stream created at `created_ms`, if any were stored for it.
    pub fn stream(&self, name: &str, created_ms: u64) -> Option<&StreamExtras> {
        self.streams
            .get(name)
            .map(|extras| &**extras)
            .filter(|extras| extras.stream_created_ms == created_ms)
    }

    /// Forgets a deleted stream: its consumers, settings and policies. (A crash between
    /// the engine's delete and this leaves an entry whose creation time no stream has; it
    /// is never read, and replaced when the name is used again.)
    pub fn forget_stream(&mut self, name: &str, created_ms: u64) {
        if self.stream(name, created_ms).is_some() {
            self.streams.remove(name);
        }
    }
}

/// The persisted state: readers take a snapshot (an `Arc` clone under a lock held for no
/// I/O); writers are serialized by an async lock and write on the blocking pool.
#[derive(Debug)]
pub struct ServerState {
    current: Arc<RwLock<Arc<Persisted>>>,
    /// The files, behind the writer lock.
    store: Arc<tokio::sync::Mutex<journal::Store>>,
}

impl ServerState {
    /// Loads the state of `data_dir` (snapshot and journal), or starts empty. A torn last
    /// frame (a crash in the middle of a change that was never acknowledged) is dropped; a
    /// damaged one before the end is an error naming the file.
    pub fn open(data_dir: &Path) -> std::io::Result<ServerState> {
        let (store, current) = journal::Store::open(data_dir)?;
        Ok(ServerState {
            current: Arc::new(RwLock::new(Arc::new(current))),
            store: Arc::new(tokio::sync::Mutex::new(store)),
        })
    }

    fn snapshot(&self) -> Arc<Persisted> {
        self.current.read().expect("state lock").clone()
    }

    /// Reads the current state.
    pub fn read<R>(&self, f: impl FnOnce(&Persisted) -> R) -> R {
        f(&self.snapshot())
    }

    /// Applies `change` and persists it before returning; on an error from `change`, or a
    /// write that failed, nothing changes. The write and the swap in memory run in a task
    /// of their own that holds the writer lock to the end: a caller that goes away (a reset
    /// HTTP/2 stream) cannot leave a half-done write for the next writer to trip over.
    pub async fn update<R>(
        &self,
        change: impl FnOnce(&mut Persisted) -> Result<R, ApiError>,
    ) -> Result<R, ApiError> {
        let store = self.store.clone().lock_owned().await;
        let current = self.snapshot();
        let mut next = Persisted::clone(&current);
        let result = change(&mut next)?;
        let changes = journal::diff(&current, &next);
        if changes.is_empty() {
            return Ok(result);
        }
        let published = self.current.clone();
        let commit = tokio::spawn(async move {
            let mut store = store;
            let next = Arc::new(next);
            let written = tokio::task::spawn_blocking({
                let next = next.clone();
                move || {
                    let written = store.append(&changes, &next);
                    (store, written)
                }
            })
            .await;
            match written {
                Ok((_store, Ok(()))) => {
                    *published.write().expect("state lock") = next;
                    Ok(())
                }
                Ok((_store, Err(e))) => Err(format!("writing the server state: {e}")),
                Err(e) => Err(format!("writing the server state: {e}")),
            }
        });
        match commit.await {
            Ok(Ok(())) => Ok(result),
            Ok(Err(message)) => Err(ApiError::internal(message)),
            Err(e) => Err(ApiError::internal(format!("writing the server state: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests;
