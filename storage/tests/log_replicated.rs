//! A shard's Raft log (cluster mode) on the real engine: a leader's entries shipped to a
//! follower as the leader's log holds them, visibility by commit only, truncation of an
//! uncommitted suffix (also into a sealed segment and across segments), reopening, refusals,
//! and power loss around a truncation.

mod common;

use common::replicated::*;
use common::*;
use sluice_storage::io::{FaultyIo, PageLoss, PowerLoss};
use sluice_storage::runtime::block_on;
use sluice_storage::{
    Appended, Durability, EncodedBatch, GlommioIo, ReadLimits, RecordIn, ShardLog, StorageError,
};
use std::collections::BTreeMap;

/// Entries in bulk, as one append request ships them: in order, across segments, each the
/// batch `entry` gives, up to the byte bound (the first always) and the range's end.
fn check_bulk_reads(leader: &ShardLog<GlommioIo>) {
    let all = leader.entries(1..u64::MAX, u64::MAX).unwrap();
    assert_eq!(all.len(), 300);
    for (index, bytes) in (1..).zip(&all) {
        assert_eq!(Some(bytes), leader.entry(index).unwrap().as_ref());
    }
    let some = leader.entries(120..u64::MAX, 64 * 1024).unwrap();
    let size: usize = some.iter().map(Vec::len).sum();
    assert!(size <= 64 * 1024 && size + all[120 - 1 + some.len()].len() > 64 * 1024);
    assert_eq!(some[..], all[119..119 + some.len()]);
    assert_eq!(leader.entries(301..u64::MAX, u64::MAX).unwrap().len(), 0);
    assert_eq!(leader.entries(300..u64::MAX, 0).unwrap().len(), 1);
    assert_eq!(leader.first_entry_index().unwrap(), Some(1));
    // The range's end bounds it too, across segments; an empty range copies nothing.
    assert_eq!(
        leader.entries(100..250, u64::MAX).unwrap()[..],
        all[99..249]
    );
    assert_eq!(leader.entries(120..120, u64::MAX).unwrap().len(), 0);
}

#[test]
fn a_follower_holds_its_leaders_records_byte_for_byte_and_readers_see_only_committed_entries() {
    let (leader_dir, follower_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let clock = manual_clock();
    block_on(async {
        let leader = open_at(GlommioIo, leader_dir.path(), &clock).await;
        let follower = open_at(GlommioIo, follower_dir.path(), &clock).await;
        let mut appended = BTreeMap::new();
        for index in 1..=300 {
            clock.advance_ms(1);
            let ours = lead(&leader, 1, index, Durability::Durable).await;
            let theirs = ship(&leader, &follower, index, Durability::Durable).await;
            assert_eq!(
                ours, theirs,
                "entry {index} lands on the same numbers and time"
            );
            appended.insert(index, ours);
        }
        assert!(leader.stats().live_segments >= 4, "{:?}", leader.stats());
        check_bulk_reads(&leader);
        assert_eq!(follower.last_entry(), Some(id(1, 300)));
        // Written, durable, and invisible: nothing is committed.
        for log in [&leader, &follower] {
            assert_eq!(log.reader().next_seq(), 0);
            assert!(
                log.reader()
                    .read(0, ReadLimits::default())
                    .unwrap()
                    .is_empty()
            );
            assert_eq!(log.visible_entry(), None);
            assert_eq!(log.reader().latest_timestamp_ms(), 0, "no visible record");
        }
        // A commit shows what it covers; a control entry moves no sequence number.
        for commit in [150, 155, 300] {
            leader.commit_to(commit).unwrap();
            follower.commit_to(commit).unwrap();
            let end = appended[&commit].end_seq();
            assert_eq!(follower.reader().next_seq(), end, "commit {commit}");
            assert_eq!(follower.visible_entry(), Some(id(1, commit)));
            let newest_record = (1..=commit).rev().find(|&i| contents(1, i).is_some());
            let newest_ms = appended[&newest_record.unwrap()].timestamp_ms;
            assert_eq!(follower.reader().latest_timestamp_ms(), newest_ms);
            let records = visible(&follower);
            assert_eq!(records.len() as u64, end);
            assert_eq!(records, visible(&leader));
        }
        follower.commit_to(100).unwrap();
        assert_eq!(
            follower.visible_entry(),
            Some(id(1, 300)),
            "a commit never goes back"
        );
        // Time seeks step over control entries: entry 20 holds no record and carries entry
        // 19's time; a time after 19's lands on entry 21.
        assert_eq!(appended[&20].timestamp_ms, appended[&19].timestamp_ms);
        let reader = follower.reader();
        let sought = reader
            .seek_timestamp(appended[&19].timestamp_ms + 1)
            .unwrap();
        assert_eq!(sought, appended[&21].base_seq);
        let expected = visible(&follower);
        leader.maintain().await.unwrap();
        follower.maintain().await.unwrap();
        follower.close().await.unwrap();
        // Reopened (sealed segments from their footers): nothing visible until committed.
        let follower = open_at(GlommioIo, follower_dir.path(), &clock).await;
        assert_eq!(follower.last_entry(), Some(id(1, 300)));
        assert_eq!(follower.reader().next_seq(), 0);
        assert!(follower.recovery_report().sealed_segments >= 3);
        follower.commit_to(300).unwrap();
        assert_eq!(visible(&follower), expected);
        // It goes on from its last entry.
        lead(&leader, 1, 301, Durability::Visible).await;
        ship(&leader, &follower, 301, Durability::Durable).await;
        assert_eq!(follower.last_entry(), Some(id(1, 301)));
    });
}

#[test]
fn entries_out_of_place_and_logs_of_the_other_kind_are_refused_and_change_nothing() {
    let (dir, plain_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let clock = manual_clock();
    let refused = |result: Result<Appended, StorageError>| match result {
        Err(StorageError::EntryRefused { reason }) => reason,
        other => panic!("expected a refusal, got {other:?}"),
    };
    block_on(async {
        let leader = open_at(GlommioIo, dir.path(), &clock).await;
        lead(&leader, 2, 1, Durability::Visible).await;
        let one = [RecordIn {
            key: b"k",
            data: b"v",
        }];
        let reason = refused(leader.append(&one, Durability::Visible).await);
        assert!(reason.contains("takes entries only"), "{reason}");
        let entry = || EncodedBatch::control(b"x");
        let reason = refused(
            leader
                .append_entry(entry(), id(2, 3), Durability::Visible)
                .await,
        );
        assert!(reason.contains("does not follow"), "{reason}");
        let reason = refused(
            leader
                .append_entry(entry(), id(1, 2), Durability::Visible)
                .await,
        );
        assert!(reason.contains("does not follow"), "{reason}");
        // A follower that lacks entry 1 cannot take entry 2: neither its index nor its numbers.
        lead(&leader, 2, 2, Durability::Visible).await;
        let follower_dir = tempfile::tempdir().unwrap();
        let follower = open_at(GlommioIo, follower_dir.path(), &clock).await;
        let second = EncodedBatch::received(leader.entry(2).unwrap().unwrap()).unwrap();
        let reason = refused(follower.append_received(second, Durability::Visible).await);
        assert!(reason.contains("starts at sequence number"), "{reason}");
        let mut damaged = leader.entry(1).unwrap().unwrap();
        damaged[100] ^= 4;
        assert!(EncodedBatch::received(damaged).is_err());
        let received = EncodedBatch::received(leader.entry(1).unwrap().unwrap()).unwrap();
        refused(
            leader
                .append_entry(received, id(2, 3), Durability::Visible)
                .await,
        );
        assert_eq!(leader.last_entry(), Some(id(2, 2)));
        assert_eq!(follower.last_entry(), None);
        assert_eq!(follower.first_entry_index().unwrap(), None);
        // A single-node log takes no entry, has none to truncate, and refuses to open as a
        // replicated one (recovery would take its batches for damage).
        let plain = open(GlommioIo, plain_dir.path(), small_config(), clock.clone()).await;
        append_expected(&plain, 5, 100).await;
        refused(
            plain
                .append_entry(entry(), id(1, 1), Durability::Visible)
                .await,
        );
        assert!(matches!(
            plain.truncate_from(1).await,
            Err(StorageError::EntryRefused { .. })
        ));
        plain.close().await.unwrap();
        let wrong = ShardLog::open(GlommioIo, plain_dir.path(), config(), clock.clone()).await;
        let Err(StorageError::InvalidConfig(message)) = wrong else {
            panic!("opened a single-node log as replicated");
        };
        assert!(
            message.contains("cannot be opened as replicated"),
            "{message}"
        );
        let plain = open(GlommioIo, plain_dir.path(), small_config(), clock.clone()).await;
        check_range(&plain.reader(), 0, 5, |_| 100);
        leader.close().await.unwrap();
        let wrong = ShardLog::open(GlommioIo, dir.path(), small_config(), clock.clone()).await;
        assert!(matches!(wrong, Err(StorageError::InvalidConfig(_))));
    });
}

#[test]
fn truncation_removes_only_uncommitted_entries_even_from_a_sealed_segment_and_the_log_goes_on() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let clock = manual_clock();
    block_on(async {
        let follower = open_at(GlommioIo, dirs[0].path(), &clock).await;
        let second = diverged(&follower, (dirs[1].path(), dirs[2].path()), &clock, 30, 90).await;
        // Entry 30 lies in the first segment, sealed by now; 200 entries span several.
        follower.maintain().await.unwrap();
        let segments = follower.stats().live_segments;
        assert!(segments >= 3, "{:?}", follower.stats());
        follower.commit_to(25).unwrap();
        let committed = visible(&follower);
        assert!(matches!(
            follower.truncate_from(25).await,
            Err(StorageError::TruncateCommitted {
                index: 25,
                visible_index: 25
            })
        ));
        follower.truncate_from(201).await.unwrap();
        assert_eq!(
            follower.last_entry(),
            Some(id(1, 200)),
            "nothing above the end"
        );
        follower.truncate_from(30).await.unwrap();
        assert_eq!(follower.last_entry(), Some(id(1, 29)));
        assert_eq!(follower.stats().live_segments, 1, "later segments released");
        assert!(follower.entry(30).unwrap().is_none());
        // What the truncation changed on disk holds across a restart (the seal of the cut
        // segment no longer describes the removed entries).
        follower.close().await.unwrap();
        let follower = open_at(GlommioIo, dirs[0].path(), &clock).await;
        assert_eq!(follower.last_entry(), Some(id(1, 29)));
        assert_eq!(follower.stats().live_segments, 1);
        follower.commit_to(25).unwrap();
        assert_eq!(visible(&follower), committed);
        for index in 30..=90 {
            ship(&second, &follower, index, Durability::Durable).await;
        }
        second.commit_to(90).unwrap();
        follower.commit_to(90).unwrap();
        let expected = visible(&second);
        assert_eq!(visible(&follower), expected);
        follower.maintain().await.unwrap();
        follower.close().await.unwrap();
        let follower = open_at(GlommioIo, dirs[0].path(), &clock).await;
        assert_eq!(follower.last_entry(), Some(id(2, 90)));
        follower.commit_to(90).unwrap();
        assert_eq!(visible(&follower), expected);
    });
}

/// One entry at a time from the end: where a truncation removes a whole segment (its first
/// entry), the segment is released on disk, or a restart would chain it again (it starts
/// exactly where the kept entries end).
#[test]
fn truncating_entry_by_entry_releases_each_segment_it_empties_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let clock = manual_clock();
    block_on(async {
        let mut log = open_at(GlommioIo, dir.path(), &clock).await;
        for index in 1..=120 {
            lead(&log, 1, index, Durability::Visible).await;
        }
        let mut segments = log.stats().live_segments;
        assert!(segments >= 2, "{:?}", log.stats());
        let mut restarts = 0;
        for index in (2..=120).rev() {
            log.truncate_from(index).await.unwrap();
            assert_eq!(log.last_entry(), Some(id(1, index - 1)));
            if log.stats().live_segments < segments {
                segments = log.stats().live_segments;
                log.close().await.unwrap();
                log = open_at(GlommioIo, dir.path(), &clock).await;
                assert_eq!(log.last_entry(), Some(id(1, index - 1)), "after a restart");
                restarts += 1;
            }
        }
        assert!(restarts >= 1);
        // The log takes entries again where it was cut, in a later term.
        lead(&log, 2, 2, Durability::Durable).await;
        log.commit_to(2).unwrap();
        let first = contents(1, 1).unwrap().len() + contents(2, 2).unwrap().len();
        assert_eq!(visible(&log).len(), first);
    });
}

/// Power fails after a truncation and the new leader's entries (some durable, the rest not):
/// whatever subset of the unsynced pages reached the device, the follower's log is the kept
/// prefix and a prefix of the new entries holding every durable one, and no entry of the old
/// suffix comes back.
#[test]
fn power_loss_after_a_truncation_never_brings_back_a_removed_entry() {
    for seed in 0..8u64 {
        let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let clock = manual_clock();
        let io = FaultyIo::new(GlommioIo);
        let expected = block_on(async {
            let follower = open_at(io.clone(), dirs[0].path(), &clock).await;
            let second = diverged(
                &follower,
                (dirs[1].path(), dirs[2].path()),
                &clock,
                121,
                200,
            )
            .await;
            follower.truncate_from(121).await.unwrap();
            for index in 121..=200 {
                let durability = match index <= 150 {
                    true => Durability::Durable,
                    false => Durability::Visible,
                };
                ship(&second, &follower, index, durability).await;
            }
            io.cut_power();
            drop(follower);
            second.commit_to(200).unwrap();
            visible(&second)
        });
        let loss = PageLoss {
            seed,
            keep_percent: (seed * 29 % 101) as u8,
            torn_percent: (seed * 17 % 50) as u8,
        };
        io.lose_power(PowerLoss::Pages(loss)).unwrap();
        io.heal();
        block_on(async {
            let follower = open_at(GlommioIo, dirs[0].path(), &clock).await;
            let last = follower.last_entry().expect("entries survive");
            assert_eq!(last.term, 2, "{loss:?}: an old entry came back: {last:?}");
            assert!((150..=200).contains(&last.index), "{loss:?}: {last:?}");
            follower.commit_to(last.index).unwrap();
            let records = visible(&follower);
            assert_eq!(records, expected[..records.len()], "{loss:?}");
        });
    }
}

/// A control entry holds no record: it carries the last record's time and moves no time
/// forward, on the leader that makes it and on a follower that makes its own (each replica
/// writes control entries itself), so a follower whose clock runs ahead still takes the
/// leader's next records.
#[test]
fn control_entries_carry_the_last_records_time_and_move_none() {
    let (leader_dir, follower_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (leader_clock, follower_clock) = (manual_clock(), manual_clock());
    block_on(async {
        let leader = open_at(GlommioIo, leader_dir.path(), &leader_clock).await;
        let follower = open_at(GlommioIo, follower_dir.path(), &follower_clock).await;
        let first = lead(&leader, 1, 1, Durability::Visible).await;
        ship(&leader, &follower, 1, Durability::Visible).await;
        // Entry 10 is a control entry; the follower makes its own, its clock a minute ahead.
        follower_clock.advance_ms(60_000);
        leader_clock.advance_ms(5);
        for index in 2..=9 {
            lead(&leader, 1, index, Durability::Visible).await;
            ship(&leader, &follower, index, Durability::Visible).await;
        }
        let last_record = leader.entry(9).unwrap().unwrap();
        let last_time = sluice_storage::format::BatchHeader::parse(&last_record)
            .unwrap()
            .max_timestamp_ms;
        assert!(last_time > first.timestamp_ms);
        let control = || EncodedBatch::control(b"membership");
        let on_leader = leader
            .append_entry(control(), id(1, 10), Durability::Visible)
            .await
            .unwrap();
        let on_follower = follower
            .append_entry(control(), id(1, 10), Durability::Visible)
            .await
            .unwrap();
        assert_eq!(on_leader.timestamp_ms, last_time);
        assert_eq!(on_follower.timestamp_ms, last_time);
        // The leader's next records, stamped by its own clock, follow on the follower.
        let next = lead(&leader, 1, 11, Durability::Visible).await;
        let shipped = ship(&leader, &follower, 11, Durability::Durable).await;
        assert_eq!(shipped, next);
        assert!(next.timestamp_ms < sluice_storage::Clock::now_ms(&*follower_clock));
    });
}

/// Reads of entries keep their place (the next read starts where the last stopped instead of
/// walking a segment's headers from its start): reads in chunks by several readers at once,
/// by byte bound and from the end of the log as it grows, and reads back to front, all give
/// what a read from scratch gives; a truncation forgets every place, so entries led again at
/// the cut are read as the new ones.
#[test]
fn reads_of_entries_that_keep_their_place_match_reads_from_scratch() {
    let dir = tempfile::tempdir().unwrap();
    let clock = manual_clock();
    block_on(async {
        let log = open_at(GlommioIo, dir.path(), &clock).await;
        for index in 1..=300 {
            lead(&log, 1, index, Durability::Visible).await;
        }
        assert!(log.stats().live_segments >= 4);
        let all = log.entries(1..u64::MAX, u64::MAX).unwrap();
        assert_eq!(all.len(), 300);
        // Two readers in chunks, interleaved: one by count, one by a byte bound.
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let (mut next_a, mut next_b) = (1u64, 50u64);
        while next_a <= 300 || next_b <= 300 {
            if next_a <= 300 {
                let chunk = log.entries(next_a..next_a + 7, u64::MAX).unwrap();
                next_a += chunk.len() as u64;
                a.extend(chunk);
            }
            if next_b <= 300 {
                let chunk = log.entries(next_b..u64::MAX, 10 * 1024).unwrap();
                next_b += chunk.len() as u64;
                b.extend(chunk);
            }
        }
        assert_eq!(a[..], all[..]);
        assert_eq!(b[..], all[49..]);
        for index in (1..=300).rev().step_by(13) {
            assert_eq!(
                log.entry(index).unwrap().as_ref(),
                Some(&all[index as usize - 1])
            );
        }
        // A reader at the end of the log reads what is appended next.
        lead(&log, 1, 301, Durability::Visible).await;
        let next = log.entries(301..u64::MAX, u64::MAX).unwrap();
        assert_eq!(next.len(), 1);
        assert_eq!(log.entries(302..u64::MAX, u64::MAX).unwrap().len(), 0);
        // Cut at 296, in the last segment, and led again in term 2: reads from before the cut
        // see the new entries, also reads where earlier reads had stopped past the cut.
        for index in [297, 299] {
            assert_eq!(
                log.entry(index).unwrap().as_ref(),
                Some(&all[index as usize - 1])
            );
        }
        log.truncate_from(296).await.unwrap();
        // Control entries first, so the new entries do not lie where the old ones did.
        for index in 296..=297 {
            let control = EncodedBatch::control(b"new term");
            log.append_entry(control, id(2, index), Durability::Visible)
                .await
                .unwrap();
        }
        for index in 298..=310 {
            lead(&log, 2, index, Durability::Visible).await;
        }
        let around = log.entries(290..u64::MAX, u64::MAX).unwrap();
        assert_eq!(around.len(), 21);
        assert_eq!(around[..6], all[289..295]);
        for (bytes, index) in around.iter().zip(290u64..) {
            let header = sluice_storage::format::BatchHeader::parse(bytes).unwrap();
            let term = if index < 296 { 1 } else { 2 };
            assert_eq!(header.entry, Some(id(term, index)));
        }
        for index in (296..=310).rev() {
            let bytes = log.entry(index).unwrap().expect("held");
            assert_eq!(bytes, around[index as usize - 290]);
        }
    });
}

/// Where retention ends, and a follower restarted past it. The retention point is the last
/// entry of the oldest sealed, committed, expired segments (none while nothing expired); a
/// follower that lacks it drops its whole log, committed entries too, and takes the leader's
/// next entry at the leader's numbering, across a reopen. A restart never goes below a
/// number its readers have seen.
#[test]
fn a_follower_restarts_at_the_leaders_retention_point_and_holds_what_follows() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let clock = manual_clock();
    block_on(async {
        let leader = open_at(GlommioIo, dirs[0].path(), &clock).await;
        let follower = open_at(GlommioIo, dirs[1].path(), &clock).await;
        let mut appended = BTreeMap::new();
        for index in 1..=300 {
            clock.advance_ms(1);
            appended.insert(index, lead(&leader, 1, index, Durability::Durable).await);
            if index <= 40 {
                ship(&leader, &follower, index, Durability::Durable).await;
            }
        }
        leader.commit_to(300).unwrap();
        follower.commit_to(40).unwrap();
        leader.maintain().await.unwrap();
        assert!(leader.stats().live_segments >= 4, "{:?}", leader.stats());
        assert_eq!(leader.retention_point().unwrap(), None, "nothing expired");
        clock.advance_ms(25 * 3_600_000);
        let point = leader.retention_point().unwrap().expect("expired segments");
        let last = point.entry.index;
        assert!((41..300).contains(&last), "{point:?}");
        assert_eq!(point.entry, id(1, last));
        assert_eq!(point.next_seq, appended[&last].end_seq());

        let seen = appended[&40].end_seq();
        assert!(matches!(
            follower.restart_at(seen - 1).await,
            Err(StorageError::EntryRefused { .. })
        ));
        assert_eq!(
            follower.last_entry(),
            Some(id(1, 40)),
            "a refusal changes nothing"
        );
        follower.restart_at(point.next_seq).await.unwrap();
        assert_eq!(follower.last_entry(), None);
        assert_eq!(follower.stats().live_segments, 0);
        let reader = follower.reader();
        assert_eq!(
            (reader.trim_horizon(), reader.next_seq()),
            (point.next_seq, point.next_seq)
        );
        assert!(visible(&follower).is_empty());
        // The restart is on the device: a reopened log takes the leader's next entry.
        follower.close().await.unwrap();
        let follower = open_at(GlommioIo, dirs[1].path(), &clock).await;
        assert_eq!(follower.last_entry(), None);
        for index in last + 1..=300 {
            ship(&leader, &follower, index, Durability::Durable).await;
        }
        follower.commit_to(300).unwrap();
        let expected: Vec<_> = visible(&leader)
            .into_iter()
            .filter(|r| r.0 >= point.next_seq)
            .collect();
        assert_eq!(visible(&follower), expected);
        follower.close().await.unwrap();
        let follower = open_at(GlommioIo, dirs[1].path(), &clock).await;
        assert_eq!(follower.last_entry(), Some(id(1, 300)));
        assert_eq!(follower.first_entry_index().unwrap(), Some(last + 1));
        follower.commit_to(300).unwrap();
        assert_eq!(visible(&follower), expected);
    });
}
