//! Replicated logs hosted by the engine (cluster mode's storage seam): a leader's replica on one
//! engine and a follower's on another, driven from tokio tasks and from a plain thread, kept
//! record-identical (the copy a leader keeps of an entry it appends is its log's), committed,
//! truncated, reopened with their state, removed; and the errors.

mod common;

use sluice_core::{
    Durability, EncodedBatch, EntryId, ReadLimits, Replica, ReplicaError, ReplicaId, StorageError,
};

const ID: ReplicaId = ReplicaId {
    stream_uid: 7,
    shard: 3,
};
const DAY_MS: u64 = 24 * 3_600_000;

fn entry(term: u64, index: u64) -> EntryId {
    EntryId {
        term,
        leader: term,
        index,
    }
}

/// Entry `index` of `term`: a control entry every 10th, else `index % 5 + 1` records.
fn batch(term: u64, index: u64) -> EncodedBatch {
    if index.is_multiple_of(10) {
        return EncodedBatch::control(format!("membership {index}").as_bytes());
    }
    let mut batch = EncodedBatch::entry_with_capacity(0);
    for r in 0..index % 5 + 1 {
        let data = format!("term {term} entry {index} record {r}").repeat(40);
        batch.push(format!("k{r}").as_bytes(), data.as_bytes());
    }
    batch
}

/// Every visible record: (sequence number, time, key, data).
fn visible(replica: &Replica) -> Vec<(u64, u64, Vec<u8>, Vec<u8>)> {
    let reader = replica.reader();
    let (mut seq, mut records) = (reader.trim_horizon(), Vec::new());
    while seq < reader.next_seq() {
        let batch = reader.read(seq, ReadLimits::default()).unwrap();
        records.extend(
            batch
                .records()
                .map(|r| (r.seq, r.timestamp_ms, r.key.to_vec(), r.data.to_vec())),
        );
        seq = batch.next_seq();
    }
    records
}

/// The leader appends `range` in `term`; the follower takes them as the leader's log holds
/// them, in bulk.
async fn replicate(
    leader: &Replica,
    follower: &Replica,
    term: u64,
    range: std::ops::RangeInclusive<u64>,
) {
    let first = *range.start();
    for index in range {
        let (new, id) = (batch(term, index), entry(term, index));
        let appended = if index.is_multiple_of(2) {
            leader
                .append_entry(new, id, Durability::Durable)
                .await
                .unwrap()
        } else {
            // The copy a leader keeps to ship and apply is the entry as its log holds it.
            let (appended, copy) = leader
                .append_entry_copied(new, id, Durability::Durable)
                .await
                .unwrap();
            let stored = leader.entries(index..index + 1, u64::MAX).await.unwrap();
            assert!(copy.is_some(), "entry {index}");
            assert_eq!(copy.as_ref(), stored.first(), "entry {index}");
            appended
        };
        assert_eq!(appended.record_count == 0, index.is_multiple_of(10));
    }
    let mut next = first;
    loop {
        let shipped = leader.entries(next..u64::MAX, 16 * 1024).await.unwrap();
        if shipped.is_empty() {
            break;
        }
        next += shipped.len() as u64;
        follower
            .append_received(shipped, Durability::Durable)
            .await
            .unwrap();
    }
}

#[test]
fn a_follower_on_another_engine_keeps_its_leaders_records_across_restarts() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (engine_a, engine_b) = (common::open(dirs[0].path()), common::open(dirs[1].path()));
    let leader = runtime.block_on(async {
        let leader = engine_a.open_replica(ID, DAY_MS).await.unwrap();
        let follower = engine_b.open_replica(ID, DAY_MS).await.unwrap();
        // From a tokio task: the handles are Send and their calls run on the engines' cores.
        let task = tokio::spawn({
            let (leader, follower) = (leader.clone(), follower.clone());
            async move { replicate(&leader, &follower, 1, 1..=120).await }
        });
        task.await.unwrap();
        assert_eq!(follower.last_entry().await.unwrap(), Some(entry(1, 120)));
        assert!(visible(&follower).is_empty(), "nothing committed yet");
        leader.commit_to(100).await.unwrap();
        follower.commit_to(100).await.unwrap();
        let records = visible(&leader);
        assert_eq!(visible(&follower), records);
        let expected: u64 = (1..=100u64)
            .filter(|i| i % 10 != 0)
            .map(|i| i % 5 + 1)
            .sum();
        assert_eq!(records.len() as u64, expected);
        follower.save_state(b"vote 1 for 1".to_vec()).await.unwrap();
        leader
    });
    drop(runtime);
    engine_b.close().unwrap();
    // Reopened, from a plain thread: the log, its last entry and its state are back, and
    // nothing is visible until the Raft layer commits again.
    let engine_b = common::open(dirs[1].path());
    let follower = engine_b.open_replica(ID, DAY_MS).wait().unwrap();
    assert_eq!(follower.last_entry().wait().unwrap(), Some(entry(1, 120)));
    assert_eq!(
        follower.state().wait().unwrap(),
        Some(b"vote 1 for 1".to_vec())
    );
    assert!(visible(&follower).is_empty());
    follower.commit_to(100).wait().unwrap();
    assert_eq!(visible(&follower), visible(&leader));
    // A new leader (engine C) took 1..=100 and leads 101..=130 in term 2: the follower's
    // uncommitted 101..=120 go, the committed entries cannot.
    let engine_c = common::open(dirs[2].path());
    let new_leader = engine_c.open_replica(ID, DAY_MS).wait().unwrap();
    let mut prefix = leader.entries(1..u64::MAX, u64::MAX).wait().unwrap();
    prefix.truncate(100);
    new_leader
        .append_received(prefix, Durability::Durable)
        .wait()
        .unwrap();
    for index in 101..=130 {
        new_leader
            .append_entry(batch(2, index), entry(2, index), Durability::Durable)
            .wait()
            .unwrap();
    }
    let refused = follower.truncate_from(100).wait().unwrap_err();
    assert!(matches!(
        refused,
        ReplicaError::Storage(StorageError::TruncateCommitted { .. })
    ));
    follower.truncate_from(101).wait().unwrap();
    let suffix = new_leader.entries(101..u64::MAX, u64::MAX).wait().unwrap();
    assert_eq!(suffix.len(), 30);
    follower
        .append_received(suffix, Durability::Durable)
        .wait()
        .unwrap();
    new_leader.commit_to(130).wait().unwrap();
    follower.commit_to(130).wait().unwrap();
    assert_eq!(follower.last_entry().wait().unwrap(), Some(entry(2, 130)));
    assert_eq!(visible(&follower), visible(&new_leader));
}

#[test]
fn replicas_are_opened_once_refuse_what_does_not_fit_and_are_removed_with_their_files() {
    let dir = tempfile::tempdir().unwrap();
    let engine = common::open(dir.path());
    let replica = engine.open_replica(ID, DAY_MS).wait().unwrap();
    assert!(matches!(
        engine.open_replica(ID, DAY_MS).wait(),
        Err(ReplicaError::AlreadyOpen(ID))
    ));
    let appended = replica
        .append_entry(batch(1, 1), entry(1, 1), Durability::Durable)
        .wait()
        .unwrap();
    assert_eq!(appended.base_seq, 0);
    let out_of_place = replica
        .append_entry(batch(1, 3), entry(1, 3), Durability::Durable)
        .wait();
    assert!(matches!(
        out_of_place,
        Err(ReplicaError::Storage(StorageError::EntryRefused { .. }))
    ));
    let mut damaged = replica.entries(1..2, u64::MAX).wait().unwrap();
    damaged[0][100] ^= 1;
    let refused = replica.append_received(damaged, Durability::Durable).wait();
    let Err(ReplicaError::Storage(StorageError::EntryRefused { reason })) = refused else {
        panic!("a damaged entry was taken: {refused:?}");
    };
    assert!(reason.contains("does not check"), "{reason}");
    // Closed, its files kept: opened again, it holds what it held.
    engine.close_replica(ID).wait().unwrap();
    assert!(matches!(
        replica.last_entry().wait(),
        Err(ReplicaError::NotOpen(ID))
    ));
    let replica = engine.open_replica(ID, DAY_MS).wait().unwrap();
    assert_eq!(replica.last_entry().wait().unwrap(), Some(entry(1, 1)));
    let files = dir.path().join("replicas").join("7-3");
    assert!(files.join("seg-00000000.log").exists());
    engine.remove_replica(ID).wait().unwrap();
    assert!(!files.exists());
    assert!(matches!(
        replica.last_entry().wait(),
        Err(ReplicaError::NotOpen(ID))
    ));
    assert!(matches!(
        engine.remove_replica(ID).wait(),
        Err(ReplicaError::NotOpen(ID))
    ));
    // Opened again: a new, empty log.
    let again = engine.open_replica(ID, DAY_MS).wait().unwrap();
    assert_eq!(again.last_entry().wait().unwrap(), None);
    again.commit_to(1).wait().unwrap();
}
