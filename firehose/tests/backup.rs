//! Source record backup: every record also lands in the backup bucket as it was read, before
//! any processor (no delimiter added, aggregates not split), compressed and prefixed as the
//! backup says, while the destination gets the processed records.

use sluice_firehose::*;

#[path = "support/local.rs"]
mod local;
use local::Local;

fn spec(backup: Option<Backup>) -> DeliveryStreamSpec {
    DeliveryStreamSpec {
        name: "clicks".into(),
        source: Source::DirectPut,
        destination: Destination {
            prefix: "processed/".into(),
            buffering: BufferingHints::new(1, 0).unwrap(),
            processors: vec![
                Processor::DeAggregate(SubRecords::Json),
                Processor::AppendNewline,
            ],
            backup,
            ..Destination::new("lake")
        },
        metadata: Default::default(),
    }
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(data), &mut out).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backup_holds_the_records_as_read_and_the_destination_the_processed_ones() {
    let local = Local::new();
    let backup = Backup {
        bucket: "vault".into(),
        prefix: "source/".into(),
        compression: Compression::Gzip,
    };
    local.firehose.create(spec(Some(backup))).await.unwrap();
    let records: [&[u8]; 2] = [br#"{"a":1}{"a":2}"#, br#"{"a":3}"#];
    local
        .firehose
        .put_record_batch("clicks", &records)
        .await
        .unwrap();
    local::until("both records delivered", || {
        local
            .firehose
            .describe("clicks")
            .unwrap()
            .stats
            .delivered_records
            == 3
    })
    .await;
    let processed: Vec<u8> = local::files(&local.bucket("lake"))
        .into_iter()
        .flat_map(|(key, data)| {
            assert!(key.starts_with("processed/"), "{key}");
            data
        })
        .collect();
    assert_eq!(processed, b"{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n");
    let backups = local::files(&local.bucket("vault"));
    assert_eq!(backups.len(), 1, "one backup object per flush");
    let (key, body) = &backups[0];
    let parts: Vec<&str> = key.split('/').collect();
    assert_eq!((parts[0], parts.len()), ("source", 6), "{key}");
    assert!(
        parts[5].starts_with("clicks-1-") && key.ends_with(".gz"),
        "{key}"
    );
    assert_eq!(gunzip(body), br#"{"a":1}{"a":2}{"a":3}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_prefix_with_partition_keys_or_a_bad_bucket_is_refused() {
    let local = Local::new();
    for (bucket, prefix) in [
        ("vault", "!{partitionKeyFromQuery:id}/"),
        ("Not_A_Bucket", "source/"),
    ] {
        let backup = Backup {
            bucket: bucket.into(),
            prefix: prefix.into(),
            compression: Compression::Uncompressed,
        };
        let refused = local.firehose.create(spec(Some(backup))).await;
        assert!(
            matches!(refused, Err(FirehoseError::InvalidArgument(_))),
            "{bucket} {prefix}: {refused:?}"
        );
    }
}
