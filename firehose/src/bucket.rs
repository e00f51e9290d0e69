//! Where objects go: a bucket name resolved to an object store, and for a local bucket, the
//! fsyncs that make a delivered object survive a power cut before its records are committed.

use crate::error::FirehoseError;
use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Directories a local bucket remembers as durable, at most.
const DURABLE_DIRS_MAX: usize = 10_000;

/// Objects from this size on go to a remote store as multipart uploads (a single PUT of
/// up to Firehose's 128 MiB buffer would be resent whole after any failure)...
const MULTIPART_MIN_BYTES: usize = 16 << 20;
/// ...in parts of this size (S3's parts are 5 MiB to 5 GiB, but the last)...
const PART_BYTES: usize = 8 << 20;
/// ...at most this many uploading at once.
const PARTS_IN_FLIGHT: usize = 4;

/// Resolves the bucket of a destination to a store. Called when a delivery starts.
pub trait Buckets: Send + Sync + 'static {
    /// The store holding `bucket` (a valid S3 bucket name).
    fn bucket(&self, bucket: &str) -> Result<Bucket, FirehoseError>;

    /// The store holding `bucket`, to read objects from: unlike [`Buckets::bucket`], a
    /// bucket that does not exist is not made.
    fn bucket_to_read(&self, bucket: &str) -> Result<Bucket, FirehoseError> {
        self.bucket(bucket)
    }
}

/// One bucket's store.
#[derive(Debug, Clone)]
pub struct Bucket {
    pub(crate) store: Arc<dyn ObjectStore>,
    /// For a local bucket: the store and its directory, whose objects are fsynced once
    /// written.
    local: Option<LocalBucket>,
}

#[derive(Debug, Clone)]
struct LocalBucket {
    store: Arc<LocalFileSystem>,
    root: PathBuf,
    /// Directories whose own entry (in their parent) is known durable, with the inode it
    /// was for: a new object's directories are fsynced once, not with every object (an
    /// object key has five levels); one removed and made again (another inode) is fsynced
    /// again.
    durable_dirs: Arc<Mutex<HashMap<PathBuf, (u64, u64)>>>,
}

impl Bucket {
    /// A bucket in a remote store, whose PUT is durable once acknowledged (S3's is).
    pub fn remote(store: Arc<dyn ObjectStore>) -> Bucket {
        Bucket { store, local: None }
    }

    /// A bucket that is the directory `root` (created if missing).
    pub fn local(root: &Path) -> Result<Bucket, FirehoseError> {
        std::fs::create_dir_all(root)
            .map_err(|e| FirehoseError::internal(&format!("create {}", root.display()), e))?;
        // As the store sees it, so the files it names are found under it.
        let root = &std::fs::canonicalize(root)
            .map_err(|e| FirehoseError::internal(&format!("resolve {}", root.display()), e))?;
        // The bucket's own entry is durable before any object in it is.
        if let Some(parent) = root.parent() {
            std::fs::File::open(parent)
                .and_then(|dir| dir.sync_all())
                .map_err(|e| FirehoseError::internal(&format!("sync {}", parent.display()), e))?;
        }
        let store = Arc::new(
            LocalFileSystem::new_with_prefix(root)
                .map_err(|e| FirehoseError::internal("open a local bucket", e))?,
        );
        Ok(Bucket {
            store: store.clone(),
            local: Some(LocalBucket {
                store,
                root: root.to_path_buf(),
                durable_dirs: Arc::default(),
            }),
        })
    }

    /// Writes `body` as the object at `path`: one PUT, or for a large object in a remote
    /// store, a multipart upload, aborted if any part or its completion fails (no part is
    /// left behind but after a crash, which S3's lifecycle rule for incomplete uploads
    /// cleans). The object appears whole or not at all either way.
    pub(crate) async fn put(
        &self,
        path: &object_store::path::Path,
        body: bytes::Bytes,
    ) -> object_store::Result<()> {
        if self.local.is_some() || body.len() < MULTIPART_MIN_BYTES {
            return self.store.put(path, body.into()).await.map(drop);
        }
        let upload = self.store.put_multipart(path).await?;
        put_in_parts(upload, body).await
    }

    /// The object at `key` (S3's rules: no empty, `.` or `..` part), whole, if it holds
    /// at most `max_bytes`: what other layers read from the buckets deliveries write
    /// (analytics' reference tables).
    pub async fn read(&self, key: &str, max_bytes: u64) -> Result<Vec<u8>, FirehoseError> {
        let path = object_store::path::Path::parse(key)
            .map_err(|e| FirehoseError::invalid(format!("Key {key:?} is not valid: {e}")))?;
        let found = self
            .store
            .get(&path)
            .await
            .map_err(|e| FirehoseError::invalid(format!("{key}: {e}")))?;
        if found.meta.size > max_bytes {
            return Err(FirehoseError::invalid(format!(
                "{key} is {} bytes: at most {max_bytes} are read.",
                found.meta.size
            )));
        }
        let bytes = found
            .bytes()
            .await
            .map_err(|e| FirehoseError::internal(&format!("read {key}"), e))?;
        Ok(bytes.to_vec())
    }

    /// Makes the object at `key` durable: for a local bucket, fsyncs the file, its
    /// directory (its new entry), and each directory above up to the bucket's root not yet
    /// known durable (a new object may have created them).
    pub(crate) fn sync(&self, key: &str) -> std::io::Result<()> {
        let Some(local) = &self.local else {
            return Ok(());
        };
        // The file the store wrote, whatever encoding its key's characters took.
        let path = local
            .store
            .path_to_filesystem(&object_store::path::Path::from(key))
            .map_err(std::io::Error::other)?;
        std::fs::File::open(&path)?.sync_all()?;
        let Some(mut dir) = path.parent() else {
            return Ok(());
        };
        std::fs::File::open(dir)?.sync_all()?;
        let mut durable = local.durable_dirs.lock().unwrap_or_else(|e| e.into_inner());
        if durable.len() > DURABLE_DIRS_MAX {
            // Keys with seconds or random strings make a directory per object: forget them
            // all (each is fsynced again once), rather than grow without end.
            durable.clear();
        }
        while dir != local.root && dir.starts_with(&local.root) {
            let meta = std::fs::metadata(dir)?;
            let inode = (meta.dev(), meta.ino());
            if durable.get(dir) == Some(&inode) {
                break;
            }
            let Some(parent) = dir.parent() else { break };
            std::fs::File::open(parent)?.sync_all()?;
            durable.insert(dir.to_path_buf(), inode);
            dir = parent;
        }
        Ok(())
    }
}

/// Sends `body` as the parts of `upload` and completes it; aborts it if a part or the
/// completion fails.
async fn put_in_parts(
    mut upload: Box<dyn object_store::MultipartUpload>,
    body: bytes::Bytes,
) -> object_store::Result<()> {
    let done = match upload_parts(upload.as_mut(), body).await {
        Ok(()) => upload.complete().await.map(drop),
        Err(e) => Err(e),
    };
    if done.is_err() {
        let _ = upload.abort().await;
    }
    done
}

/// Sends `body` as the parts of `upload`, in order, `PARTS_IN_FLIGHT` at a time; the first
/// failure stops the others (dropping the set cancels them).
async fn upload_parts(
    upload: &mut dyn object_store::MultipartUpload,
    mut body: bytes::Bytes,
) -> object_store::Result<()> {
    let mut in_flight = tokio::task::JoinSet::new();
    let joined = |joined: Result<object_store::Result<()>, tokio::task::JoinError>| {
        joined.map_err(|e| object_store::Error::Generic {
            store: "multipart upload",
            source: Box::new(e),
        })?
    };
    while !body.is_empty() {
        if in_flight.len() >= PARTS_IN_FLIGHT
            && let Some(done) = in_flight.join_next().await
        {
            joined(done)?;
        }
        // Parts are numbered as they are made: in order, whatever order they finish in.
        let part = body.split_to(body.len().min(PART_BYTES));
        in_flight.spawn(upload.put_part(part.into()));
    }
    while let Some(done) = in_flight.join_next().await {
        joined(done)?;
    }
    Ok(())
}

/// Buckets in S3 or an S3-compatible store (MinIO, moto, Ceph), with the credentials and
/// region of the `AWS_*` environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`, `AWS_REGION`, ...), at `endpoint` when one is given (path-style
/// requests; plain HTTP allowed for an `http://` endpoint).
#[cfg(feature = "s3")]
#[derive(Debug, Clone)]
pub struct S3Buckets {
    endpoint: Option<String>,
}

#[cfg(feature = "s3")]
impl S3Buckets {
    /// Buckets at `endpoint`, or at AWS' own endpoint for the region when `None`.
    pub fn new(endpoint: Option<String>) -> S3Buckets {
        S3Buckets { endpoint }
    }
}

#[cfg(feature = "s3")]
impl Buckets for S3Buckets {
    fn bucket(&self, bucket: &str) -> Result<Bucket, FirehoseError> {
        let mut builder = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
        if let Some(endpoint) = &self.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
        }
        let store = builder
            .build()
            .map_err(|e| FirehoseError::internal(&format!("reach bucket {bucket}"), e))?;
        Ok(Bucket::remote(Arc::new(store)))
    }
}

/// Buckets as directories: bucket `b` is `<root>/b/`. What `sluice serve` uses when no S3
/// endpoint is configured.
#[derive(Debug, Clone)]
pub struct LocalBuckets {
    root: PathBuf,
}

impl LocalBuckets {
    /// Buckets under `root`.
    pub fn new(root: impl Into<PathBuf>) -> LocalBuckets {
        LocalBuckets { root: root.into() }
    }
}

impl Buckets for LocalBuckets {
    fn bucket(&self, bucket: &str) -> Result<Bucket, FirehoseError> {
        // The name was validated as an S3 bucket name: no separator, no `..`.
        Bucket::local(&self.root.join(bucket))
    }

    fn bucket_to_read(&self, bucket: &str) -> Result<Bucket, FirehoseError> {
        if !self.root.join(bucket).is_dir() {
            return Err(FirehoseError::invalid(format!(
                "Bucket {bucket} does not exist."
            )));
        }
        self.bucket(bucket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::{MultipartUpload, PutPayload, PutResult, UploadPart};
    use std::future::Future;
    use std::pin::Pin;

    /// An upload that fails its part `failing` (none: `usize::MAX`), and notes what it saw.
    #[derive(Debug, Default)]
    struct Upload {
        failing: usize,
        parts: Arc<Mutex<Vec<usize>>>,
        outcome: Arc<Mutex<Option<&'static str>>>,
    }

    type Done<'a, T> = Pin<Box<dyn Future<Output = object_store::Result<T>> + Send + 'a>>;

    impl MultipartUpload for Upload {
        fn put_part(&mut self, data: PutPayload) -> UploadPart {
            let (parts, failing) = (self.parts.clone(), self.failing);
            Box::pin(async move {
                let mut parts = parts.lock().unwrap();
                parts.push(data.content_length());
                if parts.len() - 1 == failing {
                    return Err(object_store::Error::NotImplemented);
                }
                Ok(())
            })
        }

        fn complete<'a, 'b>(&'a mut self) -> Done<'b, PutResult>
        where
            'a: 'b,
            Self: 'b,
        {
            *self.outcome.lock().unwrap() = Some("completed");
            Box::pin(async {
                Ok(PutResult {
                    e_tag: None,
                    version: None,
                })
            })
        }

        fn abort<'a, 'b>(&'a mut self) -> Done<'b, ()>
        where
            'a: 'b,
            Self: 'b,
        {
            *self.outcome.lock().unwrap() = Some("aborted");
            Box::pin(async { Ok(()) })
        }
    }

    #[tokio::test]
    async fn an_upload_is_completed_whole_or_aborted_whichever_part_fails() {
        // 21 MB: two full parts and a short last one; a failure of any of them aborts.
        let body = bytes::Bytes::from(vec![7u8; 21_000_000]);
        for failing in [usize::MAX, 0, 1, 2] {
            let upload = Upload {
                failing,
                ..Upload::default()
            };
            let (parts, outcome) = (upload.parts.clone(), upload.outcome.clone());
            let put = put_in_parts(Box::new(upload), body.clone()).await;
            assert_eq!(put.is_ok(), failing == usize::MAX, "part {failing}");
            let expected = if failing == usize::MAX {
                "completed"
            } else {
                "aborted"
            };
            assert_eq!(*outcome.lock().unwrap(), Some(expected), "part {failing}");
            if failing == usize::MAX {
                assert_eq!(
                    *parts.lock().unwrap(),
                    [PART_BYTES, PART_BYTES, 21_000_000 - 2 * PART_BYTES]
                );
            }
        }
    }

    #[tokio::test]
    async fn an_object_is_read_whole_within_its_limit_and_only_under_its_bucket() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret"), b"outside").unwrap();
        let bucket = Bucket::local(&dir.path().join("bucket")).unwrap();
        std::fs::create_dir_all(dir.path().join("bucket/a")).unwrap();
        std::fs::write(dir.path().join("bucket/a/object.csv"), b"AMZN,Amazon\n").unwrap();
        assert_eq!(
            bucket.read("a/object.csv", 100).await.unwrap(),
            b"AMZN,Amazon\n"
        );
        let too_big = bucket
            .read("a/object.csv", 5)
            .await
            .unwrap_err()
            .to_string();
        assert!(too_big.contains("12 bytes"), "{too_big}");
        for key in ["../secret", "a/../../secret", "a//object.csv", "missing"] {
            assert!(bucket.read(key, 100).await.is_err(), "{key}");
        }
        // A bucket read is not made.
        let buckets = LocalBuckets::new(dir.path());
        assert!(buckets.bucket_to_read("bucket").is_ok());
        assert!(buckets.bucket_to_read("nowhere").is_err());
        assert!(!dir.path().join("nowhere").exists());
    }
}
