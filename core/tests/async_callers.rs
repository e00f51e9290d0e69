//! The async API from a tokio runtime: no glommio, no blocking calls on the caller's side.

mod common;

use sluice_core::{CreateStream, IteratorStart, PutRecord};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_tasks_create_put_and_subscribe_through_the_async_forms() {
    let dir = tempfile::tempdir().unwrap();
    let engine = common::open(dir.path());
    engine
        .create_stream(CreateStream::provisioned("tokio", 2))
        .await
        .unwrap();
    let mut subscription = engine
        .stream("tokio")
        .unwrap()
        .subscribe("shardId-000000000000", IteratorStart::TrimHorizon)
        .unwrap();
    let writers: Vec<_> = (0..8)
        .map(|task| {
            let engine = engine.clone();
            tokio::spawn(async move {
                let data: Vec<Vec<u8>> = (0..50)
                    .map(|i| format!("{task}-{i}").into_bytes())
                    .collect();
                let records: Vec<PutRecord<'_>> = data
                    .iter()
                    .map(|d| PutRecord::new("k", d).with_explicit_hash_key("0"))
                    .collect();
                let results = engine
                    .stream("tokio")
                    .unwrap()
                    .put_batch(&records)
                    .await
                    .unwrap();
                results
                    .into_iter()
                    .map(|r| r.unwrap().sequence_number)
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut acknowledged = Vec::new();
    for writer in writers {
        acknowledged.extend(writer.await.unwrap());
    }
    let mut delivered = Vec::new();
    while delivered.len() < acknowledged.len() {
        let event = tokio::time::timeout(std::time::Duration::from_secs(30), subscription.next())
            .await
            .expect("records within 30 s")
            .unwrap()
            .unwrap();
        delivered.extend(event.records.records().map(|r| r.sequence_number));
    }
    acknowledged.sort();
    assert_eq!(delivered, acknowledged, "every record, in sequence order");
}
