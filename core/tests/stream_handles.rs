//! Stream handles: looked up once, they name one incarnation of a stream.

mod common;

use sluice_core::ErrorCode::ResourceNotFound;
use sluice_core::{CreateStream, Durability, IteratorStart, PutRecord};

#[test]
fn a_handle_of_a_deleted_stream_answers_not_found_even_after_the_name_is_reused() {
    let dir = tempfile::tempdir().unwrap();
    let engine = common::open(dir.path());
    let old = engine
        .create_stream(CreateStream::provisioned("orders", 2))
        .wait()
        .unwrap();
    let put = old.put(PutRecord::new("k", b"old")).wait().unwrap();
    old.delete().wait().unwrap();
    assert!(old.is_deleted());
    let new = engine
        .create_stream(CreateStream::provisioned("orders", 1))
        .wait()
        .unwrap();
    let new_put = new.put(PutRecord::new("k", b"new")).wait().unwrap();

    let codes = [
        (
            "put",
            old.put(PutRecord::new("k", b"v"))
                .wait()
                .unwrap_err()
                .code(),
        ),
        (
            "put_batch",
            old.put_batch(&[PutRecord::new("k", b"v")])
                .wait()
                .unwrap_err()
                .code(),
        ),
        ("describe", old.describe(None, None).unwrap_err().code()),
        ("tags", old.tags().unwrap_err().code()),
        (
            "iterator",
            old.shard_iterator(&put.shard_id, IteratorStart::TrimHorizon)
                .unwrap_err()
                .code(),
        ),
        ("get", old.get(put.sequence_number).unwrap_err().code()),
        ("reader", old.reader().unwrap_err().code()),
        (
            "retention",
            old.increase_retention(48).wait().unwrap_err().code(),
        ),
        (
            "split",
            old.split_shard(&put.shard_id, "1000")
                .wait()
                .unwrap_err()
                .code(),
        ),
        ("delete", old.delete().wait().unwrap_err().code()),
    ];
    for (call, code) in codes {
        assert_eq!(
            code, ResourceNotFound,
            "{call} on the deleted stream's handle"
        );
    }
    // None of those touched the new stream of the same name.
    let summary = new.summary().unwrap();
    assert_eq!((summary.open_shard_count, summary.retention_hours), (1, 24));
    let again = engine.stream("orders").unwrap();
    let record = again.get(new_put.sequence_number).unwrap();
    assert_eq!(record.records().next().unwrap().data, b"new");
}

#[test]
fn durability_is_an_option_of_the_call_and_both_forms_answer_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let engine = common::open(dir.path());
    common::create(&engine, "s", 1);
    let stream = engine.stream("s").unwrap();
    let visible = stream
        .put(PutRecord::new("k", b"visible"))
        .durability(Durability::Visible)
        .wait()
        .unwrap();
    let durable = futures_lite::future::block_on(async {
        stream
            .put(PutRecord::new("k", b"durable"))
            .durability(Durability::Durable)
            .await
    })
    .unwrap();
    assert!(durable.sequence_number > visible.sequence_number);
    let records = common::read_shard(&engine, "s", &durable.shard_id);
    let data: Vec<&[u8]> = records.iter().map(|(_, _, d)| d.as_slice()).collect();
    assert_eq!(data, [&b"visible"[..], b"durable"]);
}
