//! A shard's Raft storage (openraft's log store and state machine over a replica's log on a
//! real engine): openraft's own conformance suite, then what it does not reach: entries with
//! records as a leader appends them and a follower takes them, the answers applying gives,
//! a restart, and snapshots at the retention point (a follower lacking it restarts its log).

use openraft::storage::RaftLogStorageExt;
use openraft::storage::{RaftLogReader, RaftLogStorage, RaftStateMachine, StorageHelper};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{
    CommittedLeaderId, Entry, EntryPayload, LogId, Membership, RaftSnapshotBuilder, Vote,
};
use sluice_cluster::raft::{
    NewRecord, RaftStorageError, ShardLogStore, ShardRaft, ShardStateMachine, ShardWrite,
    open_storage,
};
use sluice_core::{Engine, EngineConfig, ReadLimits, Replica, ReplicaId};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use tempfile::TempDir;

const ID: ReplicaId = ReplicaId {
    stream_uid: 11,
    shard: 0,
};
const DAY_MS: u64 = 24 * 3_600_000;

fn engine(dir: &std::path::Path) -> Engine {
    let mut config = EngineConfig::new(dir);
    config.cores = 1;
    config.segment_size_bytes = 1 << 20;
    config.maintenance_interval_ms = 20;
    Engine::open(config).expect("engine opens")
}

/// A fresh engine in a temporary directory, one replica on it, its Raft storage.
struct Fresh;

impl StoreBuilder<ShardRaft, ShardLogStore, ShardStateMachine, (Engine, TempDir)> for Fresh {
    async fn build(
        &self,
    ) -> Result<((Engine, TempDir), ShardLogStore, ShardStateMachine), RaftStorageError> {
        let dir = tempfile::tempdir().expect("temporary directory");
        let engine = engine(dir.path());
        let replica = engine
            .open_replica(ID, DAY_MS)
            .await
            .expect("replica opens");
        let (log, state_machine) = open_storage(replica).await?;
        Ok(((engine, dir), log, state_machine))
    }
}

fn log_id(term: u64, leader: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, leader), index)
}

/// A client's write of `index % 4 + 1` records as the leader of `term` appends it.
fn write(term: u64, leader: u64, index: u64) -> Entry<ShardRaft> {
    let records = (0..index % 4 + 1)
        .map(|r| NewRecord {
            partition_key: format!("key-{r}"),
            data: format!("term {term} entry {index} record {r}").into_bytes(),
            flags: 0,
        })
        .collect();
    Entry {
        log_id: log_id(term, leader, index),
        payload: EntryPayload::Normal(ShardWrite::New(records)),
    }
}

fn membership(term: u64, leader: u64, index: u64) -> Entry<ShardRaft> {
    Entry {
        log_id: log_id(term, leader, index),
        payload: EntryPayload::Membership(Membership::new(vec![BTreeSet::from([1, 2, 3])], ())),
    }
}

/// Every visible record: (sequence number, time, key, data).
fn visible(replica: &Replica) -> Vec<(u64, u64, Vec<u8>, Vec<u8>)> {
    let reader = replica.reader();
    let (mut seq, mut records) = (reader.trim_horizon(), Vec::new());
    while seq < reader.next_seq() {
        let batch = reader.read(seq, ReadLimits::default()).expect("readable");
        records.extend(
            batch
                .records()
                .map(|r| (r.seq, r.timestamp_ms, r.key.to_vec(), r.data.to_vec())),
        );
        seq = batch.next_seq();
    }
    records
}

/// The stored batches of a log's entries from `from` on.
async fn stored(log: &mut ShardLogStore, from: u64) -> Vec<Vec<u8>> {
    let entries = log.try_get_log_entries(from..).await.expect("entries read");
    entries
        .into_iter()
        .map(|e| match e.payload {
            EntryPayload::Normal(ShardWrite::Stored(bytes)) => bytes,
            other => panic!("entry {} is {other:?}", e.log_id),
        })
        .collect()
}

/// A replica of its own on `engine`, and its Raft storage.
async fn storage(engine: &Engine, shard: u32) -> (Replica, ShardLogStore, ShardStateMachine) {
    let id = ReplicaId { shard, ..ID };
    let replica = engine
        .open_replica(id, DAY_MS)
        .await
        .expect("replica opens");
    let (log, state_machine) = open_storage(replica.clone()).await.expect("storage opens");
    (replica, log, state_machine)
}

/// openraft's storage suite, each of its tests as one of ours (`Suite::test_all` runs them
/// in one).
type OpenraftSuite = Suite<ShardRaft, ShardLogStore, ShardStateMachine, Fresh, (Engine, TempDir)>;

/// Runs one test of the suite on fresh storage, on a runtime of its own (as the suite does).
fn run_suite_test<F, Fut>(test: F)
where
    F: FnOnce(ShardLogStore, ShardStateMachine) -> Fut,
    Fut: std::future::Future<Output = Result<(), RaftStorageError>>,
{
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime
        .block_on(async {
            let (_engine, log, state_machine) = Fresh.build().await?;
            test(log, state_machine).await
        })
        .expect("the test passes");
}

macro_rules! suite_tests {
    ($($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            run_suite_test(OpenraftSuite::$name);
        }
    )*};
}

// Every test of the suite but three. `get_initial_state_membership_from_log_and_sm` appends
// entry 3 after entry 1, a gap openraft never asks of a log in operation and the shard log
// refuses (entries follow index + 1); `a_gap_is_refused` below checks that refusal.
// `snapshot_meta` and `transfer_snapshot` want a snapshot at the last applied entry; a
// shard's snapshot is at its retention point instead (what it covers has expired, so a purge
// to it frees only that), and the snapshot tests below check that.
suite_tests!(
    last_membership_in_log_initial,
    last_membership_in_log,
    last_membership_in_log_multi_step,
    get_membership_initial,
    get_membership_from_log_and_empty_sm,
    get_membership_from_empty_log_and_sm,
    get_membership_from_log_le_sm_last_applied,
    get_membership_from_log_gt_sm_last_applied_1,
    get_membership_from_log_gt_sm_last_applied_2,
    get_initial_state_without_init,
    get_initial_state_with_state,
    get_initial_state_last_log_gt_sm,
    get_initial_state_last_log_lt_sm,
    get_initial_state_log_ids,
    get_initial_state_re_apply_committed,
    save_vote,
    get_log_entries,
    limited_get_log_entries,
    try_get_log_entry,
    initial_logs,
    get_log_state,
    get_log_id,
    last_id_in_log,
    last_applied_state,
    purge_logs_upto_0,
    purge_logs_upto_5,
    purge_logs_upto_20,
    delete_logs_since_11,
    delete_logs_since_0,
    append_to_log,
    apply_single,
    apply_multiple,
);

#[tokio::test(flavor = "multi_thread")]
async fn a_gap_is_refused() {
    let (_engine, mut log, _state_machine) = Fresh.build().await.unwrap();
    log.blocking_append([membership(1, 0, 1)]).await.unwrap();
    let refused = log.blocking_append([membership(1, 0, 3)]).await;
    let message = refused
        .expect_err("entry 3 after entry 1 is refused")
        .to_string();
    assert!(message.contains("does not follow"), "{message}");
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_log_id, Some(log_id(1, 0, 1)));
}

/// The leader appends clients' records, its log numbers them; the follower takes the entries
/// as the leader's log holds them; applying makes them readable and answers with their numbers.
#[tokio::test(flavor = "multi_thread")]
async fn a_follower_holds_the_leaders_batches() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let (leader_replica, mut leader, mut leader_sm) = storage(&engine, 0).await;
    let (follower_replica, mut follower, mut follower_sm) = storage(&engine, 1).await;
    let mut entries = vec![membership(1, 1, 0)];
    entries.extend((1..=40).map(|i| write(1, 1, i)));
    leader.blocking_append(entries).await.unwrap();
    let shipped = leader.try_get_log_entries(0..).await.unwrap();
    assert_eq!(shipped.len(), 41);
    assert!(matches!(shipped[0].payload, EntryPayload::Membership(_)));
    // In two append requests, as a leader's replication stream would send them.
    let (first, rest) = shipped.split_at(17);
    follower.blocking_append(first.to_vec()).await.unwrap();
    follower.blocking_append(rest.to_vec()).await.unwrap();
    assert_eq!(stored(&mut follower, 1).await, stored(&mut leader, 1).await);
    assert!(visible(&leader_replica).is_empty() && visible(&follower_replica).is_empty());

    // Applied up to entry 20 on both: readers see those, numbered as the leader numbered them.
    let upto_20 = leader.try_get_log_entries(0..21).await.unwrap();
    let replies = leader_sm.apply(upto_20.clone()).await.unwrap();
    follower_sm.apply(upto_20).await.unwrap();
    assert_eq!(replies.len(), 21);
    assert_eq!(
        replies[0].record_count, 0,
        "a membership entry holds no records"
    );
    let mut next_seq = replies[1].base_seq;
    for (i, reply) in (1..).zip(&replies[1..]) {
        assert_eq!(reply.base_seq, next_seq);
        assert_eq!(u64::from(reply.record_count), i % 4 + 1);
        next_seq += u64::from(reply.record_count);
    }
    let seen = visible(&leader_replica);
    assert_eq!(seen.len() as u64, next_seq - replies[1].base_seq);
    assert_eq!(seen, visible(&follower_replica));
    let (applied, stored_membership) = follower_sm.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(1, 1, 20)));
    assert_eq!(stored_membership.log_id(), &Some(log_id(1, 1, 0)));
}

/// A restart keeps the vote, the membership and what readers saw; openraft re-applies the
/// rest from the saved commit.
#[test]
fn a_restart_keeps_the_vote_and_what_was_applied() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let before = runtime.block_on(async {
        let engine = engine(dir.path());
        let (replica, mut log, mut state_machine) = storage(&engine, 0).await;
        log.save_vote(&Vote::new(3, 1)).await.unwrap();
        let mut entries = vec![membership(3, 1, 0)];
        entries.extend((1..=10).map(|i| write(3, 1, i)));
        log.blocking_append(entries).await.unwrap();
        log.save_committed(Some(log_id(3, 1, 10))).await.unwrap();
        let committed = log.try_get_log_entries(0..11).await.unwrap();
        state_machine.apply(committed).await.unwrap();
        let seen = visible(&replica);
        assert!(!seen.is_empty());
        seen
    });
    let engine = engine(dir.path());
    let (after, committed, applied, vote) = runtime.block_on(async {
        let (replica, mut log, mut state_machine) = storage(&engine, 0).await;
        let (applied, stored_membership) = state_machine.applied_state().await.unwrap();
        assert_eq!(stored_membership.log_id(), &Some(log_id(3, 1, 0)));
        let state = log.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id, Some(log_id(3, 1, 10)));
        let committed = log.read_committed().await.unwrap();
        (
            visible(&replica),
            committed,
            applied,
            log.read_vote().await.unwrap(),
        )
    });
    assert_eq!(vote, Some(Vote::new(3, 1)));
    // The applied id and the commit are written at most once a second: what was saved is
    // behind what happened or equal, never ahead, and readers see what was applied.
    let applied = applied.expect("the first apply is saved");
    assert!(applied.index <= 10);
    assert!(committed.is_some_and(|c| c.index >= applied.index && c.index <= 10));
    let applied_records: u64 = (1..=applied.index).map(|i| i % 4 + 1).sum();
    assert_eq!(after[..], before[..applied_records as usize]);
}

/// A write the leader's log refuses (no record, a record over the limit) becomes an entry
/// standing for the refusal: followers take it, applying answers the reason, numbers nothing,
/// and the group goes on (a refused write must never fail the group's storage).
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_write_is_answered_and_the_log_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let (leader_replica, mut leader, mut leader_sm) = storage(&engine, 0).await;
    let (follower_replica, mut follower, _) = storage(&engine, 1).await;
    let too_large = NewRecord {
        partition_key: "big".into(),
        data: vec![7; 2 << 20],
        flags: 0,
    };
    let entries = vec![
        write(1, 1, 1),
        Entry {
            log_id: log_id(1, 1, 2),
            payload: EntryPayload::Normal(ShardWrite::New(Vec::new())),
        },
        Entry {
            log_id: log_id(1, 1, 3),
            payload: EntryPayload::Normal(ShardWrite::New(vec![too_large])),
        },
        write(1, 1, 4),
    ];
    leader.blocking_append(entries).await.unwrap();
    let shipped = leader.try_get_log_entries(1..).await.unwrap();
    follower.blocking_append(shipped.clone()).await.unwrap();
    assert_eq!(stored(&mut follower, 1).await, stored(&mut leader, 1).await);
    let replies = leader_sm.apply(shipped).await.unwrap();
    assert_eq!(replies[0].record_count, 2);
    assert_eq!(replies[0].refused, None);
    for refused in &replies[1..3] {
        assert_eq!(refused.record_count, 0);
        assert!(refused.refused.is_some(), "{refused:?}");
    }
    assert!(
        replies[1]
            .refused
            .as_ref()
            .unwrap()
            .contains("at least one record")
    );
    assert!(
        replies[2]
            .refused
            .as_ref()
            .unwrap()
            .contains("over the limit")
    );
    assert_eq!(
        replies[3].base_seq,
        replies[0].base_seq + 2,
        "nothing numbered between"
    );
    assert_eq!(visible(&leader_replica).len(), 2 + 1);
    assert!(
        visible(&follower_replica).is_empty(),
        "the follower applied nothing yet"
    );
}

/// Entry `index` of `term` holding one record of `size` bytes.
fn sized_write(term: u64, leader: u64, index: u64, size: usize) -> Entry<ShardRaft> {
    Entry {
        log_id: log_id(term, leader, index),
        payload: EntryPayload::Normal(ShardWrite::New(vec![NewRecord {
            partition_key: "k".into(),
            data: vec![index as u8; size],
            flags: 0,
        }])),
    }
}

/// The replica, with a retention of 1 ms, and its Raft storage.
async fn open_expiring(engine: &Engine) -> (Replica, ShardLogStore, ShardStateMachine) {
    let replica = engine.open_replica(ID, 1).await.expect("replica opens");
    let (log, state_machine) = open_storage(replica.clone()).await.unwrap();
    (replica, log, state_machine)
}

async fn first_held(replica: &Replica) -> Option<u64> {
    replica.first_entry_index().await.unwrap()
}

/// Retention retires a replicated log's segments only below Raft's purge point: an expired,
/// committed log openraft never purged stays whole (a restart would otherwise ask for entry 0
/// and a lagging follower for entries gone), and once purged, retention takes what was purged
/// and a restart starts after it.
#[test]
fn retention_waits_for_raft_to_purge() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let engine = engine(dir.path());
        let (replica, mut log, mut state_machine) = open_expiring(&engine).await;
        let mut entries = vec![membership(1, 1, 0)];
        entries.extend((1..=60).map(|i| sized_write(1, 1, i, 64 << 10)));
        log.blocking_append(entries).await.unwrap();
        let all = log.try_get_log_entries(0..).await.unwrap();
        state_machine.apply(all).await.unwrap();
        // Expired (1 ms) and committed, through many maintenance passes: nothing retires.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(first_held(&replica).await, Some(0));
    });
    runtime.block_on(async {
        let engine = engine(dir.path());
        let (replica, mut log, mut state_machine) = open_expiring(&engine).await;
        StorageHelper::new(&mut log, &mut state_machine)
            .get_initial_state()
            .await
            .expect("a restart finds the log openraft knows");
        // Without a recorded snapshot a purge stays in memory: nothing retires.
        log.purge(log_id(1, 1, 10)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(first_held(&replica).await, Some(0));
        let mut builder = state_machine.get_snapshot_builder().await;
        let snapshot = builder.build_snapshot().await.unwrap().meta.last_log_id;
        assert!(snapshot.is_some_and(|s| s.index >= 30), "{snapshot:?}");
        // openraft purges up to its snapshot at most: here, less.
        log.purge(log_id(1, 1, 30)).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while first_held(&replica).await == Some(0) {
            assert!(
                Instant::now() < deadline,
                "retention never takes the purged segments"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let first = first_held(&replica).await.unwrap();
        assert!(
            first <= 31,
            "only purged entries retire: the log starts at {first}"
        );
        let entries = log.try_get_log_entries(0..).await.unwrap();
        assert_eq!(entries[0].log_id.index, 31);
        assert_eq!(entries.len(), 30);
    });
    runtime.block_on(async {
        let engine = engine(dir.path());
        let (_replica, mut log, mut state_machine) = open_expiring(&engine).await;
        StorageHelper::new(&mut log, &mut state_machine)
            .get_initial_state()
            .await
            .expect("a restart after a purge and retention");
        let state = log.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(log_id(1, 1, 30)));
        assert_eq!(state.last_log_id, Some(log_id(1, 1, 60)));
        // One append request's worth: a copy of at most 4 MiB (30 entries of 64 KiB fit).
        let limited = log.limited_get_log_entries(31, 61).await.unwrap();
        assert_eq!(limited.len(), 30);
        assert_eq!(limited[0].log_id.index, 31);
        let mut more = (61..=160).map(|i| sized_write(1, 1, i, 100 << 10));
        log.blocking_append(more.by_ref()).await.unwrap();
        let limited = log.limited_get_log_entries(61, 161).await.unwrap();
        assert_eq!(limited[0].log_id.index, 61);
        assert!(
            (30..=41).contains(&limited.len()),
            "{} entries",
            limited.len()
        );
    });
}

/// The replica `shard` with a retention of 1 ms, and its Raft storage.
async fn expiring(engine: &Engine, shard: u32) -> (Replica, ShardLogStore, ShardStateMachine) {
    let id = ReplicaId { shard, ..ID };
    let replica = engine.open_replica(id, 1).await.expect("replica opens");
    let (log, state_machine) = open_storage(replica.clone()).await.unwrap();
    (replica, log, state_machine)
}

/// The membership entry 0, then entries 1 to 60 of one 64 KiB record each (a record
/// numbered one below its entry), over four segments of 1 MiB.
fn sixty_entries() -> Vec<Entry<ShardRaft>> {
    let mut entries = vec![membership(1, 1, 0)];
    entries.extend((1..=60).map(|i| sized_write(1, 1, i, 64 << 10)));
    entries
}

/// Every visible record as (sequence number, its data's first byte): entry i's record is
/// numbered i - 1 and filled with i.
fn marks(replica: &Replica) -> Vec<(u64, u8)> {
    visible(replica)
        .into_iter()
        .map(|(seq, _, _, data)| (seq, data[0]))
        .collect()
}

/// What `marks` reads of the records `seqs` of `sixty_entries`.
fn sixty_marks(seqs: std::ops::Range<u64>) -> Vec<(u64, u8)> {
    seqs.map(|seq| (seq, (seq + 1) as u8)).collect()
}

/// A leader that appended and applied `sixty_entries` and built its snapshot.
async fn snapshot_of_sixty(
    log: &mut ShardLogStore,
    state_machine: &mut ShardStateMachine,
) -> openraft::storage::Snapshot<ShardRaft> {
    log.blocking_append(sixty_entries()).await.unwrap();
    let all = log.try_get_log_entries(0..).await.unwrap();
    state_machine.apply(all).await.unwrap();
    let mut builder = state_machine.get_snapshot_builder().await;
    builder.build_snapshot().await.unwrap()
}

/// Replica 1 holding and showing entries 0 to 5 of `leader`'s.
async fn follower_of_six(
    engine: &Engine,
    leader: &mut ShardLogStore,
) -> (Replica, ShardLogStore, ShardStateMachine) {
    let (replica, mut follower, mut follower_sm) = storage(engine, 1).await;
    let shipped = leader.try_get_log_entries(0..6).await.unwrap();
    follower.blocking_append(shipped.clone()).await.unwrap();
    follower_sm.apply(shipped).await.unwrap();
    (replica, follower, follower_sm)
}

/// Installs `snapshot` on a follower.
async fn install(
    state_machine: &mut ShardStateMachine,
    snapshot: openraft::storage::Snapshot<ShardRaft>,
) -> Result<(), RaftStorageError> {
    let mut receiving = state_machine.begin_receiving_snapshot().await.unwrap();
    *receiving = *snapshot.snapshot;
    state_machine
        .install_snapshot(&snapshot.meta, receiving)
        .await
}

/// A snapshot names the last entry of the oldest expired segments, with the membership in
/// force there; nothing while no record has expired; the same one again until that point
/// moves. It survives a restart (openraft purged to it), and a purge to it lets retention
/// free exactly what it covers.
#[test]
fn a_snapshot_names_the_retention_point_and_stays_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let built = runtime.block_on(async {
        let engine = engine(dir.path());
        let (_, mut keeping, mut keeping_sm) = storage(&engine, 1).await;
        let kept = snapshot_of_sixty(&mut keeping, &mut keeping_sm).await;
        assert_eq!(kept.meta.last_log_id, None, "nothing expired");

        let (replica, mut log, mut state_machine) = expiring(&engine, 0).await;
        let snapshot = snapshot_of_sixty(&mut log, &mut state_machine).await;
        let last = snapshot.meta.last_log_id.expect("expired segments");
        assert!(
            (16..60).contains(&last.index),
            "{last}: sealed segments only"
        );
        assert_eq!(
            snapshot.meta.last_membership.log_id(),
            &Some(log_id(1, 1, 0))
        );
        let current = state_machine.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta, snapshot.meta);
        let mut builder = state_machine.get_snapshot_builder().await;
        assert_eq!(builder.build_snapshot().await.unwrap().meta, snapshot.meta);

        log.purge(last).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while first_held(&replica).await == Some(0) {
            assert!(Instant::now() < deadline, "retention never frees the purge");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let first = first_held(&replica).await.unwrap();
        assert!(
            first <= last.index + 1,
            "only what the snapshot covers goes"
        );
        snapshot.meta
    });
    runtime.block_on(async {
        let engine = engine(dir.path());
        let (_, mut log, mut state_machine) = expiring(&engine, 0).await;
        StorageHelper::new(&mut log, &mut state_machine)
            .get_initial_state()
            .await
            .expect("a restart after a purge");
        let current = state_machine.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta, built);
        let state = log.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, built.last_log_id);
        assert_eq!(state.last_log_id, Some(log_id(1, 1, 60)));
    });
}

/// A follower that lacks the snapshot's entry (it holds entries 0 to 5 only) restarts its
/// log after it: readers' trim horizon is the leader's number there, the leader's later
/// entries come as appends, and it then holds what the leader shows from there on, across
/// a restart. One that holds the entry keeps its whole log and shows it up to there.
#[test]
fn a_follower_that_lacks_the_snapshots_entry_restarts_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (expected, last) = runtime.block_on(async {
        let engine = engine(dir.path());
        let (_, mut leader, mut leader_sm) = expiring(&engine, 0).await;
        let snapshot = snapshot_of_sixty(&mut leader, &mut leader_sm).await;
        let last = snapshot.meta.last_log_id.unwrap();
        let (holding_replica, mut holding, mut holding_sm) = storage(&engine, 2).await;
        holding
            .blocking_append(leader.try_get_log_entries(0..).await.unwrap())
            .await
            .unwrap();
        let early = holding.try_get_log_entries(0..4).await.unwrap();
        holding_sm.apply(early).await.unwrap();

        let (replica, mut follower, mut follower_sm) = follower_of_six(&engine, &mut leader).await;
        assert_eq!(visible(&replica).len(), 5);
        let snapshot_again = leader_sm.get_current_snapshot().await.unwrap().unwrap();
        install(&mut holding_sm, snapshot_again).await.unwrap();
        install(&mut follower_sm, snapshot).await.unwrap();

        assert_eq!(
            marks(&holding_replica),
            sixty_marks(0..last.index),
            "kept, shown up to the snapshot"
        );
        assert_eq!(first_held(&holding_replica).await, Some(0));

        assert_eq!(first_held(&replica).await, None, "the log restarted");
        let reader = replica.reader();
        assert_eq!(
            (reader.trim_horizon(), reader.next_seq()),
            (last.index, last.index)
        );
        let state = follower.get_log_state().await.unwrap();
        assert_eq!(
            (state.last_purged_log_id, state.last_log_id),
            (Some(last), Some(last))
        );
        assert_eq!(follower_sm.applied_state().await.unwrap().0, Some(last));
        let rest = leader.try_get_log_entries(last.index + 1..).await.unwrap();
        follower.blocking_append(rest.clone()).await.unwrap();
        follower_sm.apply(rest).await.unwrap();
        let expected = sixty_marks(last.index..60);
        assert_eq!(marks(&replica), expected);
        (expected, last)
    });
    runtime.block_on(async {
        let engine = engine(dir.path());
        let (replica, mut follower, mut follower_sm) = storage(&engine, 1).await;
        StorageHelper::new(&mut follower, &mut follower_sm)
            .get_initial_state()
            .await
            .expect("a restart after a restarted log");
        let state = follower.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(last));
        assert_eq!(state.last_log_id, Some(log_id(1, 1, 60)));
        let applied = follower_sm.applied_state().await.unwrap().0.unwrap();
        assert!(applied.index >= last.index);
        let readable = marks(&replica);
        assert_eq!(
            readable[..],
            expected[..(applied.index - last.index) as usize]
        );
    });
}

/// A crash after the snapshot was recorded and before the log restarted: the next open
/// restarts it, so the log takes the leader's entries after the snapshot.
#[test]
fn a_log_short_of_its_recorded_snapshot_restarts_when_opened() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (last, rest) = runtime.block_on(async {
        let engine = engine(dir.path());
        let (_, mut leader, mut leader_sm) = expiring(&engine, 0).await;
        let snapshot = snapshot_of_sixty(&mut leader, &mut leader_sm).await;
        let last = snapshot.meta.last_log_id.unwrap();
        let (installed, _, mut installed_sm) = storage(&engine, 1).await;
        install(&mut installed_sm, snapshot).await.unwrap();
        let recorded = installed.state().await.unwrap().unwrap();
        // A log that was never restarted, under the state the install recorded.
        let (crashed, mut log, _) = storage(&engine, 2).await;
        log.blocking_append(leader.try_get_log_entries(0..6).await.unwrap())
            .await
            .unwrap();
        crashed.save_state(recorded).await.unwrap();
        let rest = leader.try_get_log_entries(last.index + 1..).await.unwrap();
        (last, rest)
    });
    runtime.block_on(async {
        let engine = engine(dir.path());
        let (replica, mut log, mut state_machine) = storage(&engine, 2).await;
        assert_eq!(first_held(&replica).await, None, "restarted on open");
        StorageHelper::new(&mut log, &mut state_machine)
            .get_initial_state()
            .await
            .unwrap();
        assert_eq!(log.get_log_state().await.unwrap().last_log_id, Some(last));
        log.blocking_append(rest.clone()).await.unwrap();
        state_machine.apply(rest).await.unwrap();
        assert_eq!(replica.reader().trim_horizon(), last.index);
        assert_eq!(marks(&replica), sixty_marks(last.index..60));
    });
}

/// openraft purges up to a snapshot it is about to install before the state machine has
/// installed it. That purge is not recorded (a crash then leaves a log and a state that
/// agree: the leader sends the snapshot again), and an append of the next entry waits for
/// the install (the log cannot take it before it restarts).
#[test]
fn a_purge_ahead_of_its_install_waits_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (snapshot, rest) = runtime.block_on(async {
        let engine = engine(dir.path());
        let (_, mut leader, mut leader_sm) = expiring(&engine, 0).await;
        let snapshot = snapshot_of_sixty(&mut leader, &mut leader_sm).await;
        let last = snapshot.meta.last_log_id.unwrap();
        let (_, mut follower, _) = follower_of_six(&engine, &mut leader).await;
        follower.purge(last).await.unwrap();
        let rest = leader.try_get_log_entries(last.index + 1..).await.unwrap();
        (snapshot, rest)
    });
    // A crash here: the purge was not recorded, the log still ends at entry 5.
    runtime.block_on(async {
        let engine = engine(dir.path());
        let (replica, mut follower, mut follower_sm) = storage(&engine, 1).await;
        StorageHelper::new(&mut follower, &mut follower_sm)
            .get_initial_state()
            .await
            .expect("a restart after an unrecorded purge");
        let state = follower.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, None);
        assert_eq!(state.last_log_id, Some(log_id(1, 1, 5)));
        assert_eq!(marks(&replica), sixty_marks(0..5));

        // Again, this time with the install: the append sent meanwhile waits for it.
        let last = snapshot.meta.last_log_id.unwrap();
        follower.purge(last).await.unwrap();
        let mut appending = follower.clone();
        let append = tokio::spawn(async move { appending.blocking_append(rest).await });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!append.is_finished(), "the append waits for the install");
        install(&mut follower_sm, snapshot).await.unwrap();
        append.await.unwrap().expect("the append after the install");
        let state = follower.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(last));
        assert_eq!(state.last_log_id, Some(log_id(1, 1, 60)));
    });
}

/// Readers may see an entry before its apply is recorded: a snapshot never names an entry
/// past the applied one (its membership and the close would not be known yet).
#[tokio::test(flavor = "multi_thread")]
async fn a_snapshot_never_passes_the_applied_entry() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let (replica, mut log, mut state_machine) = expiring(&engine, 0).await;
    log.blocking_append(sixty_entries()).await.unwrap();
    let early = log.try_get_log_entries(0..11).await.unwrap();
    state_machine.apply(early).await.unwrap();
    replica.commit_to(60).await.unwrap();
    let mut builder = state_machine.get_snapshot_builder().await;
    let snapshot = builder.build_snapshot().await.unwrap();
    assert_eq!(snapshot.meta.last_log_id, None, "applied only to 10");
    let rest = log.try_get_log_entries(11..).await.unwrap();
    state_machine.apply(rest).await.unwrap();
    let snapshot = builder.build_snapshot().await.unwrap();
    assert!(snapshot.meta.last_log_id.is_some());
}
