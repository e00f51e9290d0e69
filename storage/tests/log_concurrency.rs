//! Readers on other threads, and durable appends sharing syncs.

mod common;

use common::*;
use sluice_storage::io::FaultyIo;
use sluice_storage::runtime::{block_on, spawn};
use sluice_storage::{Durability, GlommioIo, ReadLimits, RecordIn};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Record data says which batch it belongs to: (batch base seq, batch length, index).
fn tagged(base: u64, len: u64, index: u64) -> Vec<u8> {
    [base.to_le_bytes(), len.to_le_bytes(), index.to_le_bytes()].concat()
}

fn untag(data: &[u8]) -> (u64, u64, u64) {
    let word = |i: usize| u64::from_le_bytes(data[i * 8..i * 8 + 8].try_into().unwrap());
    (word(0), word(1), word(2))
}

#[test]
fn readers_on_other_threads_see_every_batch_once_and_never_a_partial_one() {
    let dir = tempfile::tempdir().unwrap();
    let batches = 2_000u64;
    let (tx, rx) = std::sync::mpsc::channel();
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (dir, done) = (dir.path().to_path_buf(), done.clone());
        std::thread::spawn(move || {
            block_on(async move {
                let log = open(GlommioIo, &dir, small_config(), manual_clock()).await;
                tx.send(log.reader()).unwrap();
                for b in 0..batches {
                    let base = log.next_seq();
                    let len = 1 + b % 13;
                    let data: Vec<Vec<u8>> = (0..len).map(|i| tagged(base, len, i)).collect();
                    let records: Vec<RecordIn<'_>> = data
                        .iter()
                        .map(|d| RecordIn { key: b"k", data: d })
                        .collect();
                    log.append(&records, Durability::Visible).await.unwrap();
                    if b % 64 == 0 {
                        glommio_yield().await;
                    }
                }
                done.store(true, Ordering::SeqCst);
                log.next_seq()
            })
        })
    };
    let reader = rx.recv().unwrap();
    let tails: Vec<_> = (0..2)
        .map(|_| {
            let (reader, done) = (reader.clone(), done.clone());
            std::thread::spawn(move || {
                let (mut next, mut partial_views) = (0u64, 0u64);
                loop {
                    let finished = done.load(Ordering::SeqCst);
                    let batch = reader.read(next, ReadLimits::default()).unwrap();
                    let mut last = None;
                    for record in batch.records() {
                        assert_eq!(record.seq, next, "each record exactly once, in order");
                        let (base, len, index) = untag(record.data);
                        assert_eq!(base + index, record.seq);
                        last = Some((len, index));
                        next += 1;
                    }
                    // A read that reaches the watermark ends on the last record of a batch.
                    if let Some((len, index)) = last
                        && batch.next_seq() == reader.next_seq()
                        && index + 1 != len
                    {
                        partial_views += 1;
                    }
                    if finished && next == reader.next_seq() {
                        return (next, partial_views);
                    }
                }
            })
        })
        .collect();
    let end = writer.join().unwrap();
    for tail in tails {
        let (seen, partial_views) = tail.join().unwrap();
        assert_eq!(seen, end);
        assert_eq!(partial_views, 0);
    }
}

async fn glommio_yield() {
    // A short timer lets the reader threads interleave with the writer.
    let (tx, rx) = async_oneshot();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_micros(50));
        tx.lock().unwrap().take();
    });
    rx.await;
}

/// A tiny cross-thread completion: resolves when the sender side is dropped.
fn async_oneshot() -> (
    Arc<Mutex<Option<()>>>,
    impl std::future::Future<Output = ()>,
) {
    let slot = Arc::new(Mutex::new(Some(())));
    let watch = slot.clone();
    let future = std::future::poll_fn(move |cx| {
        if watch.lock().unwrap().is_none() {
            std::task::Poll::Ready(())
        } else {
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    });
    (slot, future)
}

#[test]
fn concurrent_durable_appends_share_syncs() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let io = FaultyIo::new(GlommioIo);
        let log =
            std::rc::Rc::new(open(io.clone(), dir.path(), small_config(), manual_clock()).await);
        let tasks: Vec<_> = (0..64u64)
            .map(|i| {
                let log = log.clone();
                spawn(async move {
                    let data = payload(i, 200);
                    log.append(
                        &[RecordIn {
                            key: b"k",
                            data: &data,
                        }],
                        Durability::Durable,
                    )
                    .await
                    .unwrap()
                })
            })
            .collect();
        let mut ends = Vec::new();
        for task in tasks {
            ends.push(task.await.end_seq());
        }
        assert!(ends.iter().all(|&end| end <= log.durable_seq()));
        assert_eq!(log.durable_seq(), 64);
        let syncs = io.syncs_completed();
        assert!(
            (1..64).contains(&syncs),
            "64 durable appends took {syncs} syncs"
        );
    });
}

#[test]
fn appends_continue_while_a_sync_is_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let io = FaultyIo::new(GlommioIo);
        let log =
            std::rc::Rc::new(open(io.clone(), dir.path(), small_config(), manual_clock()).await);
        let hold = io.hold_syncs().await;
        let durable = {
            let log = log.clone();
            spawn(async move {
                log.append(
                    &[RecordIn {
                        key: b"d",
                        data: b"durable",
                    }],
                    Durability::Durable,
                )
                .await
            })
        };
        // Let the durable append reach its sync, which now waits on `hold`.
        for _ in 0..10 {
            let visible = log
                .append(
                    &[RecordIn {
                        key: b"v",
                        data: b"visible",
                    }],
                    Durability::Visible,
                )
                .await
                .unwrap();
            assert!(
                log.reader()
                    .read(visible.base_seq, ReadLimits::default())
                    .unwrap()
                    .len()
                    == 1
            );
        }
        assert_eq!(log.durable_seq(), 0, "the sync is still held");
        assert_eq!(log.next_seq(), 11);
        drop(hold);
        let appended = durable.await.unwrap();
        assert!(log.durable_seq() >= appended.end_seq());
    });
}
