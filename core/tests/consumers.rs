//! Consumer checkpoints: positions committed at either durability survive a restart, a
//! consumer's reader resumes after them along the lineage, bad commits are refused and change
//! nothing, the log compacts, deleting a stream deletes its consumers, and a position that a
//! power cut left past its shard's end is lowered before new records can take its numbers.

use sluice_core::{
    ConsumerError, CreateStream, Durability, Engine, EngineConfig, ErrorCode, PutRecord,
    SequenceNumber, ShardId, Stream, StreamReader,
};
use sluice_storage::GlommioIo;
use sluice_storage::io::{FaultyIo, PowerLoss};
use std::path::Path;

fn config(dir: &Path) -> EngineConfig {
    let mut config = EngineConfig::new(dir);
    config.cores = 1;
    config.segment_size_bytes = 1 << 20;
    config
}

/// Puts `count` records of key `key`, data `{key}-{i}`; returns their sequence numbers.
fn put(stream: &Stream, key: &str, count: usize) -> Vec<SequenceNumber> {
    (0..count)
        .map(|i| {
            let data = format!("{key}-{i}");
            let put = stream
                .put(PutRecord::new(key, data.as_bytes()))
                .wait()
                .unwrap();
            put.sequence_number
        })
        .collect()
}

/// Everything `reader` delivers until every shard had nothing new: (shard index, data).
fn drain(reader: &mut StreamReader) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    let mut empty_in_a_row = 0;
    while !reader.is_finished() && empty_in_a_row < 20 {
        let read = reader.read(None).unwrap().expect("a shard to read");
        if read.records.is_empty() && !read.records.end_of_shard {
            empty_in_a_row += 1;
        } else {
            empty_in_a_row = 0;
        }
        for record in read.records.records() {
            let data = String::from_utf8(record.data.to_vec()).unwrap();
            found.push((read.shard_id.index(), data));
        }
    }
    found
}

fn data(found: &[(u32, String)]) -> Vec<&str> {
    found.iter().map(|(_, d)| d.as_str()).collect()
}

#[test]
fn a_consumer_resumes_after_its_durable_and_visible_commits_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(dir.path())).unwrap();
    let stream = engine
        .create_stream(CreateStream::provisioned("orders", 1))
        .wait()
        .unwrap();
    let seqs = put(&stream, "a", 10);
    let consumer = stream.consumer("billing").unwrap();
    let shard = ShardId::new(0);
    assert_eq!(consumer.position(&shard).unwrap(), None);
    consumer
        .commit(&shard, seqs[3])
        .durability(Durability::Durable)
        .wait()
        .unwrap();
    consumer
        .commit(&shard, seqs[6])
        .durability(Durability::Visible)
        .wait()
        .unwrap();
    assert_eq!(consumer.position(&shard).unwrap(), Some(seqs[6]));
    drop((consumer, stream, engine));

    let engine = Engine::open(config(dir.path())).unwrap();
    let stream = engine.stream("orders").unwrap();
    assert_eq!(stream.consumers().unwrap(), ["billing"]);
    let consumer = stream.consumer("billing").unwrap();
    assert_eq!(consumer.position(&shard).unwrap(), Some(seqs[6]));
    let found = drain(&mut consumer.reader().unwrap());
    assert_eq!(
        data(&found),
        ["a-7", "a-8", "a-9"],
        "strictly after the commit"
    );
    // Another consumer of the same stream has its own (no) positions.
    let other = stream.consumer("audit").unwrap();
    assert_eq!(drain(&mut other.reader().unwrap()).len(), 10);
}

#[test]
fn a_parent_committed_to_its_end_is_done_and_its_children_start_from_the_trim_horizon() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(dir.path())).unwrap();
    let stream = engine
        .create_stream(CreateStream::provisioned("events", 2))
        .wait()
        .unwrap();
    // Keys "a".."d" spread over both shards.
    let keys = ["a", "b", "c", "d", "e", "f"];
    let mut last: std::collections::BTreeMap<u32, SequenceNumber> = Default::default();
    for key in keys {
        for seq in put(&stream, key, 3) {
            let entry = last.entry(seq.shard_index().unwrap()).or_insert(seq);
            *entry = (*entry).max(seq);
        }
    }
    assert_eq!(last.len(), 2, "both shards hold records");
    let consumer = stream.consumer("c1").unwrap();
    // Shard 0 processed to its end, shard 1 up to its first record only.
    let shard1_first = SequenceNumber::new(1, 0);
    consumer.commit(&ShardId::new(0), last[&0]).wait().unwrap();
    consumer
        .commit(&ShardId::new(1), shard1_first)
        .wait()
        .unwrap();
    // Merge the two into shard 2, then write more.
    stream
        .merge_shards(&ShardId::new(0), &ShardId::new(1))
        .wait()
        .unwrap();
    for key in keys {
        put(&stream, key, 1);
    }

    let found = drain(&mut consumer.reader().unwrap());
    let from_shard0 = found.iter().filter(|(s, _)| *s == 0).count();
    let from_shard1 = found.iter().filter(|(s, _)| *s == 1).count();
    let child: Vec<&(u32, String)> = found.iter().filter(|(s, _)| *s == 2).collect();
    assert_eq!(
        from_shard0, 0,
        "a parent committed to its end is not read again"
    );
    assert_eq!(
        from_shard1,
        last[&1].0 as u64 as usize - 1,
        "shard 1 after its first record"
    );
    assert_eq!(child.len(), keys.len(), "the child from its trim horizon");
    let first_child = found.iter().position(|(s, _)| *s == 2).unwrap();
    assert!(
        found[..first_child].iter().all(|(s, _)| *s == 1)
            && found[first_child..].iter().all(|(s, _)| *s == 2),
        "the unfinished parent comes before the child: {found:?}"
    );

    // Everything processed: commit the child's last record; nothing is left.
    consumer.commit(&ShardId::new(1), last[&1]).wait().unwrap();
    let mut reader = consumer.reader().unwrap();
    let rest = drain(&mut reader);
    assert_eq!(rest.len(), keys.len(), "only the child's records");
    assert!(rest.iter().all(|(s, _)| *s == 2));
}

#[test]
fn commits_outside_their_shard_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(dir.path())).unwrap();
    let stream = engine
        .create_stream(CreateStream::provisioned("s", 2))
        .wait()
        .unwrap();
    let seqs = put(&stream, "k", 3);
    let shard = seqs[0].shard_index().unwrap();
    let other = 1 - shard;
    let consumer = stream.consumer("c").unwrap();
    let id = ShardId::new(shard);
    consumer.commit(&id, seqs[1]).wait().unwrap();

    let code = |e: ConsumerError| e.code();
    let past_end = SequenceNumber::new(shard, 3);
    let another_shards = SequenceNumber::new(other, 0);
    let refused = [
        consumer.commit(&id, past_end).wait().unwrap_err(),
        consumer.commit(&id, another_shards).wait().unwrap_err(),
    ];
    for e in refused {
        assert!(
            matches!(e, ConsumerError::PositionOutsideShard { .. }),
            "{e:?}"
        );
        assert_eq!(code(e), ErrorCode::InvalidArgument);
    }
    let unknown = consumer.commit("shardId-000000000007", seqs[0]).wait();
    assert_eq!(code(unknown.unwrap_err()), ErrorCode::ResourceNotFound);
    assert_eq!(
        code(consumer.position("not-a-shard").unwrap_err()),
        ErrorCode::ResourceNotFound
    );
    for bad in ["", "a/b", "a b", &"x".repeat(129)] {
        let e = stream.consumer(bad).unwrap_err();
        assert!(
            matches!(e, ConsumerError::InvalidConsumerName { .. }),
            "{bad:?}"
        );
        assert_eq!(e.code(), ErrorCode::Validation);
    }
    assert_eq!(consumer.position(&id).unwrap(), Some(seqs[1]), "unchanged");
    // The shard's start is a position: nothing processed. A commit may move back.
    consumer
        .commit(&id, SequenceNumber::shard_start(shard))
        .wait()
        .unwrap();
    assert_eq!(drain(&mut consumer.reader().unwrap()).len(), 3);
}

#[test]
fn deleting_a_stream_deletes_its_consumers() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(dir.path())).unwrap();
    let stream = engine
        .create_stream(CreateStream::provisioned("s", 1))
        .wait()
        .unwrap();
    let seqs = put(&stream, "k", 2);
    let consumer = stream.consumer("c").unwrap();
    consumer.commit(&ShardId::new(0), seqs[1]).wait().unwrap();
    stream.delete().wait().unwrap();
    let gone = consumer
        .commit(&ShardId::new(0), seqs[0])
        .wait()
        .unwrap_err();
    assert!(
        matches!(gone, ConsumerError::StreamNotFound { .. }),
        "{gone:?}"
    );
    assert_eq!(
        consumer.position(&ShardId::new(0)).unwrap_err().code(),
        ErrorCode::ResourceNotFound
    );

    let again = engine
        .create_stream(CreateStream::provisioned("s", 1))
        .wait()
        .unwrap();
    assert!(
        again.consumers().unwrap().is_empty(),
        "a new stream starts with none"
    );
    drop((again, stream, consumer, engine));
    let engine = Engine::open(config(dir.path())).unwrap();
    let again = engine.stream("s").unwrap();
    assert!(
        again.consumers().unwrap().is_empty(),
        "also after a restart"
    );
    assert_eq!(
        again
            .consumer("c")
            .unwrap()
            .position(&ShardId::new(0))
            .unwrap(),
        None
    );
}

#[test]
fn frequent_visible_commits_compact_the_log_and_keep_the_last_positions() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(dir.path())).unwrap();
    let stream = engine
        .create_stream(CreateStream::provisioned("s", 1))
        .wait()
        .unwrap();
    let seqs = put(&stream, "k", 100);
    let consumer = stream.consumer("c").unwrap();
    let shard = ShardId::new(0);
    let commits = 2 * 4096 + 10;
    for i in 0..commits {
        consumer
            .commit(&shard, seqs[i % seqs.len()])
            .durability(Durability::Visible)
            .wait()
            .unwrap();
    }
    let last = seqs[(commits - 1) % seqs.len()];
    drop((consumer, stream, engine));
    // A frame of consumer "c" is 40 bytes: without compaction the file holds every commit.
    let file = dir.path().join("streams/1/consumers.log");
    let bytes = std::fs::metadata(&file).unwrap().len();
    assert!(
        bytes <= 16 + 4097 * 40,
        "{bytes} bytes after {commits} commits"
    );
    let engine = Engine::open(config(dir.path())).unwrap();
    let consumer = engine.stream("s").unwrap().consumer("c").unwrap();
    assert_eq!(consumer.position(&shard).unwrap(), Some(last));
}

#[test]
fn a_position_a_power_cut_left_past_its_shard_is_lowered_before_new_records_reuse_it() {
    let dir = tempfile::tempdir().unwrap();
    let faults = FaultyIo::new(GlommioIo);
    let open = || {
        let mut config = config(dir.path());
        config.testing.io_faults = Some(faults.clone());
        Engine::open(config).unwrap()
    };
    let engine = open();
    let stream = engine
        .create_stream(CreateStream::provisioned("s", 1))
        .wait()
        .unwrap();
    let durable = put(&stream, "k", 3);
    let visible: Vec<SequenceNumber> = (0..3)
        .map(|_| {
            let put = stream
                .put(PutRecord::new("k", b"lost"))
                .durability(Durability::Visible);
            put.wait().unwrap().sequence_number
        })
        .collect();
    // The consumers log is not behind the injector: this durable commit survives the cut,
    // the records it names do not.
    let consumer = stream.consumer("c").unwrap();
    consumer
        .commit(&ShardId::new(0), visible[2])
        .wait()
        .unwrap();
    faults.cut_power();
    drop((consumer, stream, engine));
    assert!(faults.lose_power(PowerLoss::Everything).unwrap() > 0);
    faults.heal();

    let engine = open();
    let stream = engine.stream("s").unwrap();
    let consumer = stream.consumer("c").unwrap();
    assert_eq!(
        consumer.position(&ShardId::new(0)).unwrap(),
        Some(durable[2]),
        "lowered to the shard's last record"
    );
    let fresh = put(&stream, "new", 3);
    assert_eq!(fresh[0], visible[0], "the lost numbers are issued again");
    let found = drain(&mut consumer.reader().unwrap());
    assert_eq!(data(&found), ["new-0", "new-1", "new-2"], "none skipped");
    // And the lowered position is on disk: a restart keeps it.
    drop((consumer, stream, engine));
    let engine = open();
    let consumer = engine.stream("s").unwrap().consumer("c").unwrap();
    assert_eq!(
        consumer.position(&ShardId::new(0)).unwrap(),
        Some(durable[2])
    );
}

#[test]
fn a_reader_after_positions_kept_elsewhere_reads_only_what_came_after_the_ends() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(dir.path())).unwrap();
    let stream = engine
        .create_stream(CreateStream::provisioned("events", 2))
        .wait()
        .unwrap();
    let ends = stream.ends().unwrap();
    assert_eq!(
        ends,
        [
            (ShardId::new(0), SequenceNumber::shard_start(0)),
            (ShardId::new(1), SequenceNumber::shard_start(1))
        ]
        .into_iter()
        .collect(),
        "empty shards end at their start"
    );
    let keys = ["a", "b", "c", "d", "e", "f"];
    let mut before = 0;
    for key in keys {
        before += put(&stream, key, 2).len();
    }
    // Every record so far is behind the ends taken now; the reader after them sees only the
    // records put later, from both shards.
    let ends = stream.ends().unwrap();
    assert!(
        ends.iter()
            .all(|(shard, end)| end.shard_index() == Some(shard.index()))
    );
    assert_eq!(
        drain(&mut stream.reader_after(&Default::default()).unwrap()).len(),
        before
    );
    for key in keys {
        put(&stream, key, 1);
    }
    let mut reader = stream.reader_after(&ends).unwrap();
    assert_eq!(
        reader.active_shards(),
        vec![ShardId::new(0), ShardId::new(1)]
    );
    let after = drain(&mut reader);
    let mut got = data(&after);
    got.sort_unstable();
    assert_eq!(got, vec!["a-0", "b-0", "c-0", "d-0", "e-0", "f-0"]);
    // A merge: the parents end, the child is active once both are read to their end.
    stream
        .merge_shards(&ShardId::new(0), &ShardId::new(1))
        .wait()
        .unwrap();
    let ends = stream.ends().unwrap();
    assert_eq!(ends.len(), 3, "the closed parents and the child: {ends:?}");
    put(&stream, "a", 1);
    let mut reader = stream.reader_after(&ends).unwrap();
    let found = drain(&mut reader);
    assert_eq!(data(&found), vec!["a-0"], "only the child's new record");
    assert_eq!(reader.active_shards(), vec![ShardId::new(2)]);
}
