//! loom models of the storage's cross-thread protocols, on the real `Shared`, `Segment`,
//! `LogReader` and `reclaim` code (their primitives are loom's under `--cfg loom`, see
//! `sync.rs`). Run by scripts/loom.
//!
//! The batches' bytes reach the segment file by pwrite, which loom cannot see. So each model
//! maps a segment anonymously with its batches already in place (the real reader verifies
//! them), and a loom atomic per batch, written with `Relaxed` by the owner before it publishes,
//! stands in for the pwrite: loom then explores every value a reader could load, and a reader
//! that is not ordered after the write by the real orderings can load the stale one.

use crate::clock::ManualClock;
use crate::error::StorageError;
use crate::format::{RecordIn, SEGMENT_DATA_START, encode_batch};
use crate::fs_sync::Syncer;
use crate::index::SparseIndex;
use crate::log::reclaim;
use crate::mapping::{FileId, Mapping};
use crate::reader::{LogReader, ReadLimits};
use crate::segment::{BatchLoc, Segment};
use crate::shared::Shared;
use crate::sync::{Arc, AtomicU64, Ordering};
use loom::thread;
use memmap2::MmapMut;
use std::path::PathBuf;

/// Batches the owner publishes in the watermark model.
const BATCHES: u64 = 2;
/// What the stand-in for a batch's bytes holds once written (plus the batch's number).
const WRITTEN: u64 = 100;
/// What the owner writes into a recycled segment after `reset`.
const REWRITTEN: u64 = 200;

/// Runs `f` under loom with the default preemption bound of 3 (see `sync::loom_model`).
fn model(f: impl Fn() + Sync + Send + 'static) {
    crate::sync::loom_model(3, f);
}

/// A segment over an anonymous mapping holding `BATCHES` encoded one-record batches (record
/// `i` has data `[i; 8]`), none of them published yet, and where each batch is. The mapping
/// counts in the registry as one of file `file` (two segments of one file stand for two logs
/// that mapped it, one after the other).
fn segment_with_batches(generation: u64, base_seq: u64, file: u64) -> (Segment, Vec<BatchLoc>) {
    let mut bytes = Vec::new();
    let mut locs = Vec::new();
    let mut prev_checksum = 0;
    for i in 0..BATCHES {
        let pos = SEGMENT_DATA_START + bytes.len() as u64;
        let data = [i as u8; 8];
        let record = RecordIn {
            key: b"k",
            data: &data,
        };
        let header = encode_batch(
            &mut bytes,
            &[record],
            base_seq + i,
            generation,
            i,
            prev_checksum,
        );
        prev_checksum = header.checksum;
        locs.push(BatchLoc { pos, header });
    }
    let start = usize::try_from(SEGMENT_DATA_START).unwrap();
    let mut map = MmapMut::map_anon(start + bytes.len()).expect("anonymous mapping");
    map[start..].copy_from_slice(&bytes);
    let map = map.make_read_only().expect("read-only mapping");
    let map = Mapping::register(map, FileId::new(0, file));
    let segment = Segment::new(PathBuf::from("loom"), map, generation, base_seq);
    (segment, locs)
}

/// Shared state of a log whose table is `table`, with nothing published and nothing expired.
fn shared_with(table: Vec<Arc<Segment>>, next_seq: u64) -> Shared {
    let clock = std::sync::Arc::new(ManualClock::new(0));
    Shared::new(PathBuf::from("loom"), table, next_seq, 0, u64::MAX, clock)
}

fn stand_ins(count: u64) -> Arc<Vec<AtomicU64>> {
    Arc::new((0..count).map(|_| AtomicU64::new(0)).collect())
}

/// The owner's side of an append, as `ShardLog::complete` does it after the write landed.
fn publish(shared: &Shared, segment: &Segment, loc: &BatchLoc) {
    segment.publish(loc);
    shared.publish_next_seq(loc.header.end_seq());
}

#[test]
fn a_reader_sees_every_published_batch_complete_and_waits_without_missing_one() {
    model(|| {
        let (segment, locs) = segment_with_batches(1, 0, 1);
        let shared = Arc::new(shared_with(vec![Arc::new(segment)], 0));
        let pwrites = stand_ins(BATCHES);
        let owner = {
            let (shared, pwrites) = (shared.clone(), pwrites.clone());
            thread::spawn(move || {
                let segment = shared.table()[0].clone();
                for (i, loc) in locs.iter().enumerate() {
                    pwrites[i].store(WRITTEN + i as u64, Ordering::Relaxed);
                    publish(&shared, &segment, loc);
                }
            })
        };
        let reader = LogReader::new(shared.clone());
        let mut next = 0;
        while next < BATCHES {
            let batch = reader.read(next, ReadLimits::default()).expect("read");
            for record in batch.records() {
                assert_eq!(record.seq, next, "records in order, none skipped");
                assert_eq!(record.data, [next as u8; 8]);
                let written = pwrites[usize::try_from(next).unwrap()].load(Ordering::Relaxed);
                assert_eq!(
                    written,
                    WRITTEN + next,
                    "a visible batch's bytes are written"
                );
                next += 1;
            }
            // Continue from where the read says, as a consumer does: nothing may be skipped.
            assert_eq!(
                batch.next_seq(),
                next,
                "continuing from the read skips nothing"
            );
            if batch.is_empty() {
                // Register, re-check, then wait: a publish in between must not be missed.
                let listener = reader.listen();
                if reader.next_seq() == next {
                    loom::future::block_on(listener);
                }
            }
        }
        // The owner may still be between publishing the last batch in its segment and moving
        // the watermark: the position the reads returned must still be a valid one.
        let batch = reader
            .read(next, ReadLimits::default())
            .expect("a position a read returned is never past the end");
        assert!(batch.is_empty());
        owner.join().unwrap();
    });
}

#[test]
fn a_waiting_reader_wakes_when_the_log_latches() {
    model(|| {
        let (segment, _) = segment_with_batches(1, 0, 1);
        let shared = Arc::new(shared_with(vec![Arc::new(segment)], 0));
        let owner = {
            let shared = shared.clone();
            thread::spawn(move || shared.latch("write failed".to_string()))
        };
        let reader = LogReader::new(shared.clone());
        while reader.latch_cause().is_none() {
            let listener = reader.listen();
            if reader.latch_cause().is_none() {
                loom::future::block_on(listener);
            }
        }
        assert_eq!(reader.latch_cause().as_deref(), Some("write failed"));
        owner.join().unwrap();
    });
}

#[test]
fn a_leased_segment_is_never_reset_and_is_reclaimed_once_released() {
    model(|| {
        let (old, old_locs) = segment_with_batches(1, 0, 1);
        old.publish(&old_locs[0]); // one batch, published before any reader exists
        let (active, _) = segment_with_batches(2, 1, 2);
        let live = vec![Arc::new(old), Arc::new(active)];
        let shared = Arc::new(shared_with(live.clone(), 1));
        let pwrites = stand_ins(1);
        pwrites[0].store(WRITTEN, Ordering::Relaxed);
        let reader = {
            let (shared, pwrites) = (shared.clone(), pwrites.clone());
            thread::spawn(move || {
                // A lease from a table snapshot: still the old segment, it reads as published.
                let lease = shared.table()[0].clone();
                if lease.base_seq == 0 {
                    assert_eq!(lease.generation, 1);
                    assert_eq!(lease.end_seq(), 1);
                    assert_eq!(lease.visible_end(), old_locs[0].end());
                    assert_eq!(pwrites[0].load(Ordering::Relaxed), WRITTEN);
                }
                drop(lease);
                // The lease a real read takes (its ReadBatch): the record stays as written.
                match LogReader::new(shared).read(0, ReadLimits::default()) {
                    Ok(batch) => {
                        let records: Vec<_> = batch.records().map(|r| (r.seq, r.data)).collect();
                        assert_eq!(records, [(0, &[0u8; 8][..])]);
                        assert_eq!(pwrites[0].load(Ordering::Relaxed), WRITTEN);
                    }
                    Err(StorageError::SequenceTrimmed { .. }) => {} // retired before the read
                    Err(e) => panic!("read failed: {e}"),
                }
            })
        };
        // The owner retires the old segment (as `enforce_retention`), then tries to reuse it
        // (as `take_segment` and `start_segment`).
        let mut live = live;
        let mut retiring = vec![live.remove(0)];
        shared.raise_trim(retiring[0].end_seq());
        shared.set_table(live.clone());
        let mut free = Vec::new();
        let reuse = |free: &mut Vec<Arc<Segment>>| {
            let mut segment = free.pop().expect("reclaimed");
            Arc::get_mut(&mut segment)
                .expect("a segment being started has no readers")
                .reset(3, 7, 0, SparseIndex::new(4096));
            pwrites[0].store(REWRITTEN, Ordering::Relaxed);
        };
        reclaim(&mut retiring, &mut free);
        let reused_early = !free.is_empty();
        if reused_early {
            reuse(&mut free);
        }
        reader.join().unwrap();
        if !reused_early {
            reclaim(&mut retiring, &mut free);
            assert_eq!(free.len(), 1, "reclaimed once the reader let go");
            reuse(&mut free);
        }
        assert!(retiring.is_empty());
    });
}

/// A log closed while a reader still reads through it (its `LogReader`, then the `ReadBatch` it
/// returns); the log reopened on the directory maps the same file, finds it retired, and tries to
/// reuse it. It may only once the reader has let go of everything that maps the file.
#[test]
fn a_file_an_earlier_log_maps_for_a_reader_is_not_reset_by_a_later_log_until_released() {
    model(|| {
        let (old, old_locs) = segment_with_batches(1, 0, 1);
        old.publish(&old_locs[0]);
        let closed = Arc::new(shared_with(vec![Arc::new(old)], 1));
        let pwrites = stand_ins(1);
        pwrites[0].store(WRITTEN, Ordering::Relaxed);
        let reader = {
            let (reader, pwrites) = (LogReader::new(closed), pwrites.clone());
            thread::spawn(move || {
                let batch = reader
                    .read(0, ReadLimits::default())
                    .expect("a closed log reads");
                drop(reader);
                let records: Vec<_> = batch.records().map(|r| (r.seq, r.data)).collect();
                assert_eq!(records, [(0, &[0u8; 8][..])]);
                assert_eq!(
                    pwrites[0].load(Ordering::Relaxed),
                    WRITTEN,
                    "the file is not rewritten under a held batch"
                );
            })
        };
        // The reopened log's own segment of the file, retired (as recovery finds it free).
        let (reopened, _) = segment_with_batches(3, 1, 1);
        let mut retiring = vec![Arc::new(reopened)];
        let mut free = Vec::new();
        let reuse = |free: &mut Vec<Arc<Segment>>| {
            let mut segment = free.pop().expect("reclaimed");
            Arc::get_mut(&mut segment)
                .expect("a segment being started has no readers")
                .reset(4, 1, 0, SparseIndex::new(4096));
            pwrites[0].store(REWRITTEN, Ordering::Relaxed);
        };
        reclaim(&mut retiring, &mut free);
        let reused_early = !free.is_empty();
        if reused_early {
            reuse(&mut free);
        }
        reader.join().unwrap();
        if !reused_early {
            reclaim(&mut retiring, &mut free);
            assert_eq!(free.len(), 1, "reclaimed once the reader let go");
            reuse(&mut free);
        }
        assert!(retiring.is_empty());
    });
}

/// The filesystem syncer (fs_sync.rs): a log asks for a sync only once its write completed,
/// and must be answered by a sync that started after the request, so the sync covers the
/// write. Two logs write (each its own bit) and ask while the syncer's thread runs; the
/// stand-in for syncfs records, as durable, the bits written when it started. Four threads (the syncer's,
/// two logs', the one closing it): explored to 2 preemptions, as the two-sender queue model.
#[test]
fn loom_a_filesystem_sync_answers_only_requests_made_before_it_started() {
    crate::sync::loom_model(2, || {
        let syncer = Arc::new(Syncer::default());
        let written = Arc::new(AtomicU64::new(0));
        let durable = Arc::new(AtomicU64::new(0));
        let runner = {
            let (syncer, written, durable) = (syncer.clone(), written.clone(), durable.clone());
            thread::spawn(move || {
                syncer.run(&mut || {
                    let covered = written.load(Ordering::SeqCst);
                    durable.fetch_or(covered, Ordering::SeqCst);
                    Ok(())
                })
            })
        };
        let logs: Vec<_> = [1u64, 2]
            .into_iter()
            .map(|write| {
                let (syncer, written, durable) = (syncer.clone(), written.clone(), durable.clone());
                thread::spawn(move || {
                    written.fetch_or(write, Ordering::SeqCst);
                    let ticket = syncer.request().expect("no sync fails here");
                    loom::future::block_on(syncer.wait(ticket)).expect("no sync fails here");
                    assert!(
                        durable.load(Ordering::SeqCst) & write != 0,
                        "answered by a sync that started before write {write} completed"
                    );
                })
            })
            .collect();
        for log in logs {
            log.join().unwrap();
        }
        syncer.close();
        runner.join().unwrap();
    });
}
