//! Durable appends through one filesystem sync (`LogConfig::filesystem_sync`): logs share its
//! syncs, what they acknowledge survives power loss, and after a failed filesystem sync no
//! log trusts what it wrote before it: those asking latch, and the next open has every log
//! write its data again (docs/design/filesystem-sync.md).

mod common;

use common::*;
use sluice_storage::io::{Fault, FaultPlan, FaultyIo, PowerLoss};
use sluice_storage::runtime::{block_on, sleep};
use sluice_storage::{
    Durability, FILESYSTEM_SYNC_FAILED, FilesystemSync, GlommioIo, LogConfig, RecordIn, ShardLog,
    StorageError, prepare_after_failed_filesystem_sync,
};
use std::path::Path;
use std::task::Poll;
use std::time::{Duration, Instant};

const LOGS: usize = 8;

fn config(filesystem: &FilesystemSync) -> LogConfig {
    LogConfig {
        filesystem_sync: Some(filesystem.clone()),
        ..small_config()
    }
}

async fn open_logs(
    io: &FaultyIo<GlommioIo>,
    root: &Path,
    filesystem: &FilesystemSync,
) -> Vec<ShardLog<FaultyIo<GlommioIo>>> {
    let mut logs = Vec::new();
    for i in 0..LOGS {
        let dir = root.join(format!("log-{i}"));
        logs.push(open(io.clone(), &dir, config(filesystem), manual_clock()).await);
    }
    logs
}

/// Appends `count` records of 100 bytes to `log` (contents as `check_range` expects).
async fn append(
    log: &ShardLog<FaultyIo<GlommioIo>>,
    count: u64,
    durability: Durability,
) -> Result<u64, StorageError> {
    let base = log.next_seq();
    let owned: Vec<(Vec<u8>, Vec<u8>)> = (base..base + count)
        .map(|s| (key(s), payload(s, 100)))
        .collect();
    let records: Vec<RecordIn<'_>> = owned
        .iter()
        .map(|(k, d)| RecordIn { key: k, data: d })
        .collect();
    log.append(&records, durability)
        .await
        .map(|a| a.base_seq + count)
}

/// Polls every future until all are done; their outputs in order.
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs
        .into_iter()
        .map(|o| o.expect("polled to the end"))
        .collect()
}

/// Durable appends into eight logs at once are answered by a few filesystem syncs, not one
/// sync per log, and every one of them survives losing everything unsynced.
#[test]
fn logs_share_filesystem_syncs_and_what_they_acknowledge_survives_power_loss() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultyIo::new(GlommioIo);
    let filesystem = io.filesystem_sync(dir.path()).unwrap();
    let ends = block_on(async {
        let logs = open_logs(&io, dir.path(), &filesystem).await;
        let file_syncs = io.syncs_completed();
        let mut ends = vec![0; LOGS];
        for _round in 0..20 {
            // Started together, so their durable waits meet at the syncer.
            let round = join_all(
                logs.iter()
                    .map(|log| append(log, 10, Durability::Durable))
                    .collect(),
            )
            .await;
            for (end, appended) in ends.iter_mut().zip(round) {
                *end = appended.expect("durable append");
            }
        }
        let filesystem_syncs = filesystem.syncs_completed();
        assert!(
            filesystem_syncs > 0,
            "the durable waits used the filesystem sync"
        );
        assert!(
            filesystem_syncs < (20 * LOGS) as u64,
            "{filesystem_syncs} syncs for {} durable appends: none shared",
            20 * LOGS
        );
        assert_eq!(
            io.syncs_completed() - file_syncs,
            filesystem_syncs,
            "no log synced its own files"
        );
        // Visible records after the last durable ones: lost with the power, as allowed.
        for log in &logs {
            append(log, 5, Durability::Visible).await.unwrap();
        }
        io.cut_power();
        drop(logs);
        ends
    });
    assert!(io.lose_power(PowerLoss::Everything).unwrap() > 0);
    io.heal();
    block_on(async {
        let logs = open_logs(&io, dir.path(), &filesystem).await;
        for (log, end) in logs.iter().zip(ends) {
            assert_eq!(
                log.next_seq(),
                end,
                "the durable records, and nothing after"
            );
            check_range(&log.reader(), 0, end, |_| 100);
        }
    });
}

/// A log's durable append asks for a filesystem sync as soon as its write completes, even
/// while an earlier append of the same log still waits for one: it does not queue behind it
/// and then miss the sync other logs asked for meanwhile. Here the second append's request
/// alone makes a second sync run, before anything polls it again.
#[test]
fn a_durable_append_asks_while_an_earlier_one_of_its_log_waits() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultyIo::new(GlommioIo);
    let filesystem = io.filesystem_sync(dir.path()).unwrap();
    let end = block_on(async {
        let log = open(
            io.clone(),
            &dir.path().join("log"),
            config(&filesystem),
            manual_clock(),
        )
        .await;
        let syncs = filesystem.syncs_completed();
        let hold = io.hold_syncs().await;
        let started = io.syncs_started();
        let mut first = std::pin::pin!(append(&log, 10, Durability::Durable));
        let mut second = std::pin::pin!(append(&log, 10, Durability::Durable));
        // The first append's sync starts (and is held); the second asks after that, in the
        // poll that finds its write complete (visible).
        until(|| io.syncs_started() > started, first.as_mut()).await;
        let base = log.next_seq();
        until(|| log.next_seq() >= base + 10, second.as_mut()).await;
        for _ in 0..20 {
            assert!(
                poll_once(first.as_mut()).await.is_pending(),
                "a sync finished"
            );
            assert!(
                poll_once(second.as_mut()).await.is_pending(),
                "a sync finished"
            );
            sleep(Duration::from_millis(1)).await;
        }
        drop(hold);
        first.await.unwrap();
        // The second append is not polled again: only its earlier request can start a sync.
        let started = Instant::now();
        while filesystem.syncs_completed() < syncs + 2 {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the second append had not asked for a sync while the first waited"
            );
            sleep(Duration::from_millis(1)).await;
        }
        let end = second.await.unwrap();
        assert_eq!(filesystem.syncs_completed(), syncs + 2, "no sync more");
        io.cut_power();
        end
    });
    io.lose_power(PowerLoss::Everything).unwrap();
    io.heal();
    block_on(async {
        let log = open(
            io.clone(),
            &dir.path().join("log"),
            config(&filesystem),
            manual_clock(),
        )
        .await;
        assert_eq!(log.next_seq(), end);
        check_range(&log.reader(), 0, end, |_| 100);
    });
}

/// Polls `future` once.
async fn poll_once<F: Future>(future: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    let mut future = future;
    std::future::poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx))).await
}

/// Polls `future` (which must stay pending) until `done` holds.
async fn until<F: Future>(done: impl Fn() -> bool, future: std::pin::Pin<&mut F>) {
    let mut future = future;
    let started = Instant::now();
    while !done() {
        assert!(poll_once(future.as_mut()).await.is_pending());
        assert!(started.elapsed() < Duration::from_secs(10), "never reached");
        sleep(Duration::from_millis(1)).await;
    }
}

/// A filesystem sync fails while log 0 waits on it; log 1 has written but is not waiting;
/// log 2 has nothing unsynced. The failed sync may have lost any page it wrote (log 1's are
/// poisoned: lost to a power loss), and an error of the filesystem's own commit reaches no
/// file, so no log can tell from its own files whether its data survived: every log asking
/// for durability afterwards latches, and keeps serving reads. Reopened (with a new syncer),
/// each holds every record it acknowledged durable and takes durable appends again.
#[test]
fn after_a_failed_filesystem_sync_every_log_asking_latches() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultyIo::new(GlommioIo);
    let filesystem = io.filesystem_sync(dir.path()).unwrap();
    let durable = block_on(async {
        let logs = open_logs(&io, dir.path(), &filesystem).await;
        let mut durable = Vec::new();
        for log in &logs {
            durable.push(append(log, 10, Durability::Durable).await.unwrap());
        }
        append(&logs[1], 10, Durability::Visible).await.unwrap();
        io.arm(FaultPlan {
            fail_sync_from: Some((0, Fault::Eio)),
            ..FaultPlan::default()
        });
        let err = append(&logs[0], 10, Durability::Durable).await.unwrap_err();
        assert!(matches!(err, StorageError::Io { .. }), "{err}");
        assert!(filesystem.failed());
        io.heal();
        let syncs = filesystem.syncs_completed();
        for log in &logs[1..3] {
            let err = append(log, 10, Durability::Durable).await.unwrap_err();
            assert!(matches!(err, StorageError::Io { .. }), "{err}");
            let err = append(log, 1, Durability::Visible).await.unwrap_err();
            assert!(matches!(err, StorageError::Latched { .. }), "{err}");
        }
        assert_eq!(
            filesystem.syncs_completed(),
            syncs,
            "no sync ran after the failure"
        );
        check_range(&logs[2].reader(), 0, durable[2], |_| 100);
        io.cut_power();
        drop(logs);
        durable
    });
    io.lose_power(PowerLoss::Everything).unwrap();
    io.heal();
    let filesystem = io.filesystem_sync(dir.path()).unwrap();
    block_on(async {
        let logs = open_logs(&io, dir.path(), &filesystem).await;
        for (i, (log, end)) in logs.iter().zip(&durable).enumerate() {
            assert!(log.next_seq() >= *end, "log {i} lost acknowledged records");
            check_range(&log.reader(), 0, *end, |_| 100);
            append(log, 10, Durability::Durable).await.unwrap();
        }
        assert!(!filesystem.failed());
    });
}

/// A failed filesystem sync may lose pages of a log that does not ask for durability again
/// before the process ends (here log 1's visible batch). Nothing reports that to the log's
/// own files, so a reopened log would trust them and acknowledge durable appends above a
/// hole. The marker the syncer leaves makes the next open's preparation give every log its
/// own marker, so each writes its data again, and a durable append after the reopen survives
/// a power loss. (Without the preparation the append is lost with the hole below it.)
#[test]
fn a_log_that_never_asked_after_the_failure_writes_its_data_again() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultyIo::new(GlommioIo);
    let filesystem = io.filesystem_sync(dir.path()).unwrap();
    block_on(async {
        let logs = open_logs(&io, dir.path(), &filesystem).await;
        for log in &logs {
            append(log, 10, Durability::Durable).await.unwrap();
        }
        append(&logs[1], 10, Durability::Visible).await.unwrap();
        io.arm(FaultPlan {
            fail_sync_from: Some((0, Fault::Eio)),
            ..FaultPlan::default()
        });
        append(&logs[0], 10, Durability::Durable).await.unwrap_err();
        io.heal();
        // The process ends without another sync.
        drop(logs);
    });
    let marker = dir.path().join(FILESYSTEM_SYNC_FAILED);
    assert!(marker.exists(), "the failed sync left its marker");
    let marked = prepare_after_failed_filesystem_sync(dir.path(), "meta.log").unwrap();
    assert_eq!(marked, LOGS, "every log, whether it asked or not");
    assert!(!marker.exists());
    let filesystem = io.filesystem_sync(dir.path()).unwrap();
    let end = block_on(async {
        let logs = open_logs(&io, dir.path(), &filesystem).await;
        assert_eq!(
            logs[1].next_seq(),
            20,
            "the visible batch is still in the page cache"
        );
        let end = append(&logs[1], 10, Durability::Durable).await.unwrap();
        io.cut_power();
        drop(logs);
        end
    });
    io.lose_power(PowerLoss::Everything).unwrap();
    io.heal();
    block_on(async {
        let logs = open_logs(&io, dir.path(), &filesystem).await;
        assert!(logs[1].next_seq() >= end, "an acknowledged record was lost");
        check_range(&logs[1].reader(), 0, end, |_| 100);
    });
}
