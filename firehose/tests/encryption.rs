//! Encrypted records: a delivery stream with encryption on stores its DirectPut records
//! sealed (flagged so in the backing stream's log) and delivers them opened; records a
//! source stream's writer sealed are opened as they are read; a record that cannot be
//! opened is never delivered, sealed or otherwise. The envelopes here are the test's own
//! (`sluice serve` seals with AES-GCM under KMS keys; its suite checks the bytes on disk).

#[path = "support/local.rs"]
mod local;

use local::Local;
use sluice_core::{CreateStream, Durability, IteratorStart, PutRecord};
use sluice_firehose::{
    BufferingHints, Compression, DeliveryStreamSpec, Destination, Envelopes, Firehose,
    FirehoseConfig, FirehoseError, LocalBuckets, SealFuture, Source, backing_scope,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Envelopes of `SEALED:<key>:<scope>:` and the data with every byte flipped; opening
/// checks the scope (as AES-GCM's associated data would) and counts.
#[derive(Default)]
struct TestEnvelopes {
    opened: AtomicU64,
}

const MARK: &[u8] = b"SEALED:";

impl Envelopes for TestEnvelopes {
    fn seal<'a>(
        &'a self,
        stream: (&'a str, u64),
        key: &'a str,
        records: &'a [&'a [u8]],
    ) -> SealFuture<'a> {
        let sealed = records
            .iter()
            .map(|data| {
                let mut envelope = [MARK, key.as_bytes(), b":", stream.0.as_bytes(), b":"].concat();
                envelope.extend(data.iter().map(|b| !b));
                envelope
            })
            .collect();
        Box::pin(std::future::ready(Ok(sealed)))
    }

    fn open(&self, stream: &str, envelope: &[u8]) -> Result<Vec<u8>, FirehoseError> {
        let damaged = || FirehoseError::Key(format!("an envelope of {stream} is damaged"));
        let rest = envelope.strip_prefix(MARK).ok_or_else(damaged)?;
        let colon = rest.iter().position(|&b| b == b':').ok_or_else(damaged)?;
        let scoped = [stream.as_bytes(), b":"].concat();
        let data = rest[colon + 1..]
            .strip_prefix(&scoped[..])
            .ok_or_else(damaged)?;
        self.opened.fetch_add(1, Ordering::Relaxed);
        Ok(data.iter().map(|b| !b).collect())
    }
}

/// A `Firehose` in `<dir>/<name>` with backing streams named `<name>.`, beside the one
/// `Local` made, sealing and opening through `envelopes`.
fn open_at(local: &Local, name: &str, envelopes: Option<Arc<dyn Envelopes>>) -> Firehose {
    Firehose::open(FirehoseConfig {
        dir: local.dir.path().join(name),
        backing_engine: local.engine.clone(),
        backing_prefix: format!("{name}."),
        source_engine: local.engine.clone(),
        buckets: Arc::new(LocalBuckets::new(local.dir.path().join("buckets"))),
        runtime: tokio::runtime::Handle::current(),
        metric_labels: Vec::new(),
        buffer_bytes_max: 64 << 20,
        transforms: None,
        envelopes,
    })
    .unwrap()
}

fn spec(name: &str, bucket: &str, source: Source) -> DeliveryStreamSpec {
    let mut destination = Destination::new(bucket);
    destination.buffering = BufferingHints::new(1, 0).unwrap();
    destination.compression = Compression::Uncompressed;
    DeliveryStreamSpec {
        name: name.into(),
        source,
        destination,
        metadata: Default::default(),
    }
}

/// The data and encryption flag of every record in shard 0 of `stream`.
fn stored(local: &Local, stream: &str) -> Vec<(Vec<u8>, bool)> {
    let stream = local.engine.stream(stream).unwrap();
    let mut iterator = stream
        .shard_iterator("shardId-000000000000", IteratorStart::TrimHorizon)
        .unwrap();
    let records = local.engine.get_records(&mut iterator, None).unwrap();
    records
        .records()
        .map(|r| (r.data.to_vec(), r.encrypted))
        .collect()
}

/// Every line delivered to `bucket`, sorted.
fn lines(local: &Local, bucket: &str) -> Vec<String> {
    let delivered = String::from_utf8(delivered(local, bucket)).unwrap();
    let mut lines: Vec<String> = delivered.lines().map(str::to_owned).collect();
    lines.sort();
    lines
}

fn delivered(local: &Local, bucket: &str) -> Vec<u8> {
    local::files(&local.bucket(bucket))
        .into_iter()
        .flat_map(|(_, data)| data)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_puts_are_stored_sealed_while_encryption_is_on_and_delivered_opened() {
    let local = Local::new();
    let envelopes = Arc::new(TestEnvelopes::default());
    let firehose = open_at(&local, "sealing", Some(envelopes.clone()));
    let spec = spec("sealed", "lake", Source::DirectPut);
    firehose
        .create_encrypted(spec, Some("key-1".into()))
        .await
        .unwrap();
    assert_eq!(
        firehose
            .describe("sealed")
            .unwrap()
            .encryption_key
            .as_deref(),
        Some("key-1")
    );
    firehose.put_record("sealed", b"one\n").await.unwrap();
    firehose.stop_encryption("sealed").await.unwrap();
    firehose.put_record("sealed", b"two\n").await.unwrap();
    firehose.start_encryption("sealed", "key-2").await.unwrap();
    firehose
        .put_record_batch("sealed", &[b"three\n", b"four\n"])
        .await
        .unwrap();
    local::settled(&firehose, "sealed", 4, 0).await;
    // Objects of one second are named in no set order: the lines, sorted.
    assert_eq!(lines(&local, "lake"), ["four", "one", "three", "two"]);
    assert_eq!(envelopes.opened.load(Ordering::Relaxed), 3);
    let stored = stored(&local, "sealing.sealed");
    let scope = backing_scope("sealed");
    let expected: Vec<(Vec<u8>, bool)> = [("one\n", Some("key-1")), ("two\n", None)]
        .into_iter()
        .chain([("three\n", Some("key-2")), ("four\n", Some("key-2"))])
        .map(|(data, key)| match key {
            Some(key) => {
                let mut envelope = format!("SEALED:{key}:{scope}:").into_bytes();
                envelope.extend(data.bytes().map(|b| !b));
                (envelope, true)
            }
            None => (data.as_bytes().to_vec(), false),
        })
        .collect();
    assert_eq!(stored, expected);
    // The key is stored: a restarted Firehose keeps sealing under it.
    drop(firehose);
    let firehose = open_at(&local, "sealing", Some(envelopes.clone()));
    assert_eq!(
        firehose
            .describe("sealed")
            .unwrap()
            .encryption_key
            .as_deref(),
        Some("key-2")
    );
    // Reopened with no keys, it refuses puts rather than store them in the clear.
    drop(firehose);
    let keyless = open_at(&local, "sealing", None);
    let refused = keyless.put_record("sealed", b"five\n").await;
    assert!(matches!(refused, Err(FirehoseError::Key(_))), "{refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encryption_is_refused_for_stream_sources_and_without_keys() {
    let local = Local::new();
    let source = CreateStream::provisioned("orders", 1);
    local.engine.create_stream(source).await.unwrap();
    let firehose = open_at(&local, "sealing", Some(Arc::new(TestEnvelopes::default())));
    let reading = spec(
        "reading",
        "lake",
        Source::Stream {
            name: "orders".into(),
        },
    );
    firehose.create(reading).await.unwrap();
    let refused = firehose.start_encryption("reading", "key-1").await;
    assert!(
        matches!(refused, Err(FirehoseError::InvalidArgument(_))),
        "{refused:?}"
    );
    let refused = firehose.start_encryption("absent", "key-1").await;
    assert!(
        matches!(refused, Err(FirehoseError::NotFound { .. })),
        "{refused:?}"
    );
    let keyless = open_at(&local, "keyless", None);
    let direct = spec("direct", "lake", Source::DirectPut);
    let refused = keyless.create_encrypted(direct, Some("key-1".into())).await;
    assert!(
        matches!(refused, Err(FirehoseError::InvalidArgument(_))),
        "{refused:?}"
    );
}

/// Puts `data` into stream `orders` as an envelope its writer sealed.
async fn put_sealed(local: &Local, data: &[u8]) {
    let stream = local.engine.stream("orders").unwrap();
    let record = PutRecord {
        encrypted: true,
        ..PutRecord::new("k", data)
    };
    stream
        .put(record)
        .durability(Durability::Durable)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_source_record_is_opened_and_one_that_cannot_be_is_never_delivered() {
    let local = Local::new();
    let source = CreateStream::provisioned("orders", 1);
    local.engine.create_stream(source).await.unwrap();
    let envelopes = Arc::new(TestEnvelopes::default());
    let firehose = open_at(&local, "sealing", Some(envelopes.clone()));
    let reading = spec(
        "reading",
        "lake",
        Source::Stream {
            name: "orders".into(),
        },
    );
    firehose.create(reading).await.unwrap();
    let sealed = envelopes
        .seal(("orders", 0), "key-1", &[b"order-1\n"])
        .await
        .unwrap();
    put_sealed(&local, &sealed[0]).await;
    local::settled(&firehose, "reading", 1, 0).await;
    assert_eq!(delivered(&local, "lake"), b"order-1\n");
    // Sealed for another stream (or damaged): the delivery stops there and says why.
    let elsewhere = envelopes
        .seal(("payments", 0), "key-1", &[b"order-2\n"])
        .await
        .unwrap();
    put_sealed(&local, &elsewhere[0]).await;
    let failing = || firehose.describe("reading").unwrap().stats;
    local::until("the failure to open", || {
        failing()
            .last_error
            .is_some_and(|e| e.contains("open an encrypted record"))
    })
    .await;
    // A Firehose with no keys does not deliver the envelopes either.
    let keyless = open_at(&local, "keyless", None);
    let blind = spec(
        "blind",
        "blind-lake",
        Source::Stream {
            name: "orders".into(),
        },
    );
    keyless.create(blind).await.unwrap();
    put_sealed(&local, &sealed[0]).await;
    local::until("the failure for want of keys", || {
        let stats = keyless.describe("blind").unwrap().stats;
        stats.last_error.is_some_and(|e| e.contains("no keys"))
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(delivered(&local, "lake"), b"order-1\n");
    assert!(delivered(&local, "blind-lake").is_empty());
    assert_eq!(failing().delivered_records, 1);
}
