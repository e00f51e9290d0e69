//! Changing a delivery stream after its creation: UpdateDestination (version checked,
//! records after the update in the new destination, under the new version, counters kept)
//! and tags, both kept across a restart.

use sluice_core::Engine;
use sluice_firehose::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

#[path = "support/local.rs"]
mod local;
use local::open;

/// Every object key under `root`.
fn keys(root: &Path) -> Vec<String> {
    local::files(root).into_iter().map(|(key, _)| key).collect()
}

async fn delivered(firehose: &Firehose, records: u64) {
    for _ in 0..1000 {
        if firehose.describe("orders").unwrap().stats.delivered_records >= records {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "not delivered: {:?}",
        firehose.describe("orders").unwrap().stats
    );
}

/// An engine, a `Firehose` on it, and the DirectPut delivery stream "orders" to `before/`.
async fn setup() -> (tempfile::TempDir, Engine, Firehose, Destination) {
    let dir = tempfile::tempdir().unwrap();
    let engine = local::engine(dir.path());
    let firehose = open(dir.path(), &engine);
    let destination = Destination {
        prefix: "before/".into(),
        buffering: BufferingHints::new(1, 0).unwrap(),
        ..Destination::new("lake")
    };
    let spec = DeliveryStreamSpec {
        name: "orders".into(),
        source: Source::DirectPut,
        destination: destination.clone(),
        metadata: Default::default(),
    };
    firehose.create(spec).await.unwrap();
    (dir, engine, firehose, destination)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_updated_destination_takes_the_records_after_the_update() {
    let (dir, engine, firehose, destination) = setup().await;
    firehose.put_record("orders", b"one\n").await.unwrap();
    delivered(&firehose, 1).await;
    let updated = Destination {
        prefix: "after/".into(),
        compression: Compression::Gzip,
        ..destination.clone()
    };
    let stale = firehose
        .update_destination("orders", 7, updated.clone(), None)
        .await;
    let current = FirehoseError::VersionMismatch {
        name: "orders".into(),
        current: 1,
    };
    assert_eq!(stale, Err(current));
    let bad = Destination {
        bucket: "No_Such".into(),
        ..updated.clone()
    };
    let refused = firehose.update_destination("orders", 1, bad, None).await;
    assert!(matches!(refused, Err(FirehoseError::InvalidArgument(_))));
    assert_eq!(
        firehose
            .update_destination("orders", 1, updated, None)
            .await,
        Ok(2)
    );
    firehose.put_record("orders", b"two\n").await.unwrap();
    delivered(&firehose, 2).await;
    let info = firehose.describe("orders").unwrap();
    assert_eq!(
        (info.version, info.stats.delivered_records),
        (2, 2),
        "counters carry over"
    );
    assert_eq!(info.spec.destination.prefix, "after/");
    let found = keys(&dir.path().join("buckets/lake"));
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found[0].starts_with("after/")
            && found[0].contains("/orders-2-")
            && found[0].ends_with(".gz"),
        "{found:?}"
    );
    assert!(
        found[1].starts_with("before/") && found[1].contains("/orders-1-"),
        "{found:?}"
    );
    // Kept across a restart.
    firehose.close().await;
    drop(firehose);
    let firehose = open(dir.path(), &engine);
    assert_eq!(firehose.describe("orders").unwrap().version, 2);
    firehose.put_record("orders", b"three\n").await.unwrap();
    delivered(&firehose, 1).await;
    let after = keys(&dir.path().join("buckets/lake"));
    assert_eq!(after.iter().filter(|k| k.starts_with("after/")).count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_are_added_removed_limited_and_kept() {
    let (dir, engine, firehose, _) = setup().await;
    let tags: BTreeMap<String, String> =
        [("team".into(), "web".into()), ("env".into(), String::new())].into();
    firehose.tag("orders", &tags).await.unwrap();
    firehose
        .untag("orders", &["env".to_owned(), "absent".to_owned()])
        .await
        .unwrap();
    let reserved: BTreeMap<String, String> = [("aws:x".into(), "y".into())].into();
    assert!(matches!(
        firehose.tag("orders", &reserved).await,
        Err(FirehoseError::InvalidArgument(_))
    ));
    let many: BTreeMap<String, String> = (0..50).map(|i| (format!("k{i}"), "v".into())).collect();
    assert!(matches!(
        firehose.tag("orders", &many).await,
        Err(FirehoseError::LimitExceeded(_))
    ));
    assert!(matches!(
        firehose.tag("nope", &tags).await,
        Err(FirehoseError::NotFound { .. })
    ));
    firehose.close().await;
    drop(firehose);
    let firehose = open(dir.path(), &engine);
    let info = firehose.describe("orders").unwrap();
    assert_eq!(info.tags, [("team".to_owned(), "web".to_owned())].into());
}
