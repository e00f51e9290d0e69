//! Helpers for the replicated log's tests: entries with contents that name their term and
//! index, a leader's append, shipping an entry as the leader's log holds it, reading back.

use super::{open, small_config};
use sluice_storage::format::EntryId;
use sluice_storage::{
    Appended, Durability, EncodedBatch, GlommioIo, LogConfig, ManualClock, ReadLimits, SegmentIo,
    ShardLog,
};
use std::path::Path;
use std::sync::Arc;

pub fn config() -> LogConfig {
    LogConfig {
        replicated: true,
        ..small_config()
    }
}

pub fn id(term: u64, index: u64) -> EntryId {
    EntryId {
        term,
        leader: 10 + term,
        index,
    }
}

/// A record of an entry: (sequence number, arrival time, key, data).
pub type Record = (u64, u64, Vec<u8>, Vec<u8>);

/// What entry `index` of `term` holds: `index % 10 == 0` is a control entry, the others hold
/// 1 to 7 records of up to 3 KB, each naming its term, index and place.
pub fn contents(term: u64, index: u64) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    if index.is_multiple_of(10) {
        return None;
    }
    let records = 1 + index % 7;
    Some(
        (0..records)
            .map(|r| {
                let key = format!("t{term}-i{index}-r{r}").into_bytes();
                let len = 100 + ((index * 7 + r * 13) % 30) as usize * 100;
                let data = (0..len)
                    .map(|b| (b as u64 ^ index ^ (term << 4) ^ r) as u8)
                    .collect();
                (key, data)
            })
            .collect(),
    )
}

/// The leader's append of entry `index` of `term`.
pub async fn lead<I: SegmentIo>(
    log: &ShardLog<I>,
    term: u64,
    index: u64,
    durability: Durability,
) -> Appended {
    let batch = match contents(term, index) {
        None => EncodedBatch::control(format!("blank {term}/{index}").as_bytes()),
        Some(records) => {
            let mut batch = EncodedBatch::entry_with_capacity(0);
            for (key, data) in &records {
                batch.push(key, data);
            }
            batch
        }
    };
    log.append_entry(batch, id(term, index), durability)
        .await
        .expect("leader's append")
}

/// Ships entry `index` from `from` to `to`, as the leader's log holds it.
pub async fn ship<I: SegmentIo, J: SegmentIo>(
    from: &ShardLog<I>,
    to: &ShardLog<J>,
    index: u64,
    durability: Durability,
) -> Appended {
    let bytes = from.entry(index).expect("read entry").expect("entry held");
    let batch = EncodedBatch::received(bytes).expect("entry checks");
    to.append_received(batch, durability)
        .await
        .expect("follower's append")
}

/// Every visible record, read from the trim horizon to the watermark.
pub fn visible(log: &ShardLog<impl SegmentIo>) -> Vec<Record> {
    let reader = log.reader();
    let mut seq = reader.trim_horizon();
    let mut records = Vec::new();
    while seq < reader.next_seq() {
        let batch = reader.read(seq, ReadLimits::default()).expect("read");
        assert!(!batch.is_empty(), "no records at {seq}");
        records.extend(
            batch
                .records()
                .map(|r| (r.seq, r.timestamp_ms, r.key.to_vec(), r.data.to_vec())),
        );
        seq = batch.next_seq();
    }
    records
}

pub async fn open_at<I: SegmentIo>(io: I, dir: &Path, clock: &Arc<ManualClock>) -> ShardLog<I> {
    open(io, dir, config(), clock.clone()).await
}

/// Leader 1 leads entries 1..=200 in term 1 and the follower takes them all; leader 2 took
/// 1..`diverge` from leader 1 and then led `diverge`..=`end` in term 2.
pub async fn diverged<I: SegmentIo>(
    follower: &ShardLog<I>,
    dirs: (&Path, &Path),
    clock: &Arc<ManualClock>,
    diverge: u64,
    end: u64,
) -> ShardLog<GlommioIo> {
    let first = open_at(GlommioIo, dirs.0, clock).await;
    let second = open_at(GlommioIo, dirs.1, clock).await;
    for index in 1..=200 {
        clock.advance_ms(1);
        lead(&first, 1, index, Durability::Visible).await;
        ship(&first, follower, index, Durability::Durable).await;
        if index < diverge {
            ship(&first, &second, index, Durability::Visible).await;
        }
    }
    for index in diverge..=end {
        clock.advance_ms(1);
        lead(&second, 2, index, Durability::Visible).await;
    }
    second
}
