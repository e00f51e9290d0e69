//! What the server keeps that the engine does not: consumers, encryption settings, enhanced
//! monitoring, resource policies (kept with the stream or consumer they are on, so they go
//! with it), account settings, warm throughput. One small JSON file,
//! replaced atomically (write, fdatasync, rename, fsync the directory) before a change is
//! acknowledged.

use crate::wire::ApiError;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
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

/// Everything persisted.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct Persisted {
    /// By stream name.
    pub streams: BTreeMap<String, StreamExtras>,
    /// MinimumThroughputBillingCommitment status (`ENABLED`/`DISABLED`), when set.
    pub billing_commitment: Option<String>,
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
        let extras = self.streams.entry(name.to_owned()).or_default();
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
/// I/O); writers are serialized by an async lock and write the file on the blocking pool.
#[derive(Debug)]
pub struct ServerState {
    path: PathBuf,
    current: Arc<RwLock<Arc<Persisted>>>,
    writer: Arc<tokio::sync::Mutex<()>>,
}

const FILE_NAME: &str = "server-state.json";

/// How far a write got when it failed.
enum WriteFailure {
    /// Before the rename: the old file stands.
    Before(std::io::Error),
    /// After the rename (syncing the directory): the new file is in place, its rename
    /// perhaps not yet durable.
    After(std::io::Error),
}

impl ServerState {
    /// Loads `<data_dir>/server-state.json`, or starts empty.
    pub fn open(data_dir: &Path) -> std::io::Result<ServerState> {
        let path = data_dir.join(FILE_NAME);
        let current = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} is damaged: {e}", path.display()),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Persisted::default(),
            Err(e) => return Err(e),
        };
        Ok(ServerState {
            path,
            current: Arc::new(RwLock::new(Arc::new(current))),
            writer: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    fn snapshot(&self) -> Arc<Persisted> {
        self.current.read().expect("state lock").clone()
    }

    /// Reads the current state.
    pub fn read<R>(&self, f: impl FnOnce(&Persisted) -> R) -> R {
        f(&self.snapshot())
    }

    /// Applies `change` and persists the result before returning; on an error from
    /// `change`, or a write that failed before its rename, nothing changes. The write and
    /// the swap in memory run in a task of their own that holds the writer lock to the end:
    /// a caller that goes away (a reset HTTP/2 stream) cannot leave a half-done write for the
    /// next writer to trip over.
    pub async fn update<R>(
        &self,
        change: impl FnOnce(&mut Persisted) -> Result<R, ApiError>,
    ) -> Result<R, ApiError> {
        let writer = self.writer.clone().lock_owned().await;
        let current = self.snapshot();
        let mut next = Persisted::clone(&current);
        let result = change(&mut next)?;
        if next == *current {
            return Ok(result);
        }
        let (path, published) = (self.path.clone(), self.current.clone());
        let commit = tokio::spawn(async move {
            let _writer = writer;
            let bytes = serde_json::to_vec_pretty(&next).expect("state serializes");
            let written = tokio::task::spawn_blocking({
                let path = path.clone();
                move || write(&path, &bytes)
            })
            .await;
            let publish = || *published.write().expect("state lock") = Arc::new(next);
            let failure = |e: std::io::Error| format!("writing {}: {e}", path.display());
            match written {
                Ok(Ok(())) => {
                    publish();
                    Ok(())
                }
                Ok(Err(WriteFailure::Before(e))) => Err(failure(e)),
                // The file holds the new state: memory follows it; the client retries.
                Ok(Err(WriteFailure::After(e))) => {
                    publish();
                    Err(failure(e))
                }
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

fn write(path: &Path, bytes: &[u8]) -> Result<(), WriteFailure> {
    let tmp = path.with_extension("json.tmp");
    let before = |result: std::io::Result<()>| result.map_err(WriteFailure::Before);
    let mut file = std::fs::File::create(&tmp).map_err(WriteFailure::Before)?;
    before(file.write_all(bytes))?;
    before(file.sync_data())?;
    before(std::fs::rename(&tmp, path))?;
    let dir = path
        .parent()
        .expect("the state file is in the data directory");
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(WriteFailure::After)
}
