//! The plain log: appends answer dense offsets from 0, reads and tails start at any offset,
//! offsets survive a restart, and a stream that is not one open shard is refused.

use sluice_core::{AdminError, CreateStream, Durability, Engine, EngineConfig, ErrorCode};
use std::path::Path;
use std::time::Duration;

fn config(dir: &Path) -> EngineConfig {
    let mut config = EngineConfig::new(dir);
    config.cores = 1;
    config.segment_size_bytes = 1 << 20;
    config
}

#[test]
fn appends_get_dense_offsets_that_reads_return_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(dir.path())).unwrap();
    let log = engine.log("events").wait().unwrap();
    assert_eq!((log.start_offset(), log.next_offset()), (0, 0));
    assert_eq!(log.append(b"zero").wait().unwrap(), 0);
    let batch: Vec<&[u8]> = vec![b"one", b"two", b"three"];
    assert_eq!(log.append_batch(&batch).wait().unwrap(), [1, 2, 3]);
    let visible = log.append(b"four").durability(Durability::Visible);
    assert_eq!(visible.wait().unwrap(), 4);
    assert_eq!(log.next_offset(), 5);

    let read = log.read(2, 2).unwrap();
    let entries: Vec<(u64, &[u8])> = read.entries().map(|e| (e.offset, e.data)).collect();
    assert_eq!(entries, [(2, &b"two"[..]), (3, &b"three"[..])]);
    assert_eq!(read.next_offset(), 4);
    assert!(log.read(5, 10).unwrap().is_empty(), "the end: nothing yet");
    let past = log.read(6, 10).unwrap_err();
    assert_eq!(past.code(), ErrorCode::InvalidArgument, "past the end");
    drop((log, engine));

    let engine = Engine::open(config(dir.path())).unwrap();
    let log = engine.log("events").wait().unwrap();
    assert_eq!(log.append(b"five").wait().unwrap(), 5, "offsets go on");
    // A read may stop early (here at the segment the restart began): go on from its end.
    let mut all = Vec::new();
    let mut from = 0;
    while from < log.next_offset() {
        let read = log.read(from, 100).unwrap();
        all.extend(read.entries().map(|e| e.offset));
        from = read.next_offset();
    }
    assert_eq!(all, [0, 1, 2, 3, 4, 5]);
}

#[test]
fn a_tail_gets_records_as_they_are_appended_blocking_and_async() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(dir.path())).unwrap();
    let log = engine.log("ticks").wait().unwrap();
    log.append(b"old").wait().unwrap();
    let mut tail = log.tail(1).unwrap();
    assert!(
        tail.next_blocking(Duration::from_millis(10))
            .unwrap()
            .is_none(),
        "nothing after offset 1 yet"
    );
    let writer = {
        let log = log.clone();
        std::thread::spawn(move || log.append(b"new").wait())
    };
    let read = tail
        .next_blocking(Duration::from_secs(30))
        .unwrap()
        .expect("the new record within the timeout");
    let entry = read.entries().next().unwrap();
    assert_eq!((entry.offset, entry.data), (1, &b"new"[..]));
    assert_eq!(writer.join().unwrap().unwrap(), 1);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut from_start = log.tail(0).unwrap();
    let read = runtime.block_on(from_start.next()).unwrap().unwrap();
    let data: Vec<&[u8]> = read.entries().map(|e| e.data).collect();
    assert_eq!(data, [&b"old"[..], b"new"]);
}

#[test]
fn a_stream_that_is_not_one_open_shard_is_not_a_log() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(dir.path())).unwrap();
    engine
        .create_stream(CreateStream::provisioned("wide", 2))
        .wait()
        .unwrap();
    let refused = engine.log("wide").wait().unwrap_err();
    assert!(
        matches!(
            refused,
            AdminError::NotALog {
                shards: 2,
                open: 2,
                ..
            }
        ),
        "{refused:?}"
    );
    assert_eq!(refused.code(), ErrorCode::ResourceInUse);
    let bad = engine.log("no/slashes").wait().unwrap_err();
    assert_eq!(bad.code(), ErrorCode::Validation);
    assert_eq!(engine.list_streams(None, None).unwrap().names, ["wide"]);
}
