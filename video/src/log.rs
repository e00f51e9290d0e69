//! One video stream's fragments: stored durably in its engine log, indexed by time in
//! memory (docs/design/video.md, "Reads").

use crate::error::VideoError;
use crate::fragment::FragmentMeta;
use crate::session::ReceivedFragment;
use sluice_core::{Durability, Log, LogTail, SequenceNumber};
use std::sync::Mutex;

/// Fragments a ListFragments page holds at most.
pub const LIST_LIMIT_MAX: usize = 1_000;

/// One fragment as the index knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentEntry {
    /// Its offset in the log.
    pub offset: u64,
    /// Its metadata.
    pub meta: FragmentMeta,
    /// Its MKV's size in bytes.
    pub size: u64,
}

impl FragmentEntry {
    /// Its fragment number.
    pub fn number(&self) -> String {
        fragment_number(self.offset)
    }
}

/// The fragment number of the record at `offset`.
pub fn fragment_number(offset: u64) -> String {
    SequenceNumber::new(0, offset).to_string()
}

/// The offset a fragment number names, if it is one.
pub fn fragment_offset(number: &str) -> Option<u64> {
    let sequence = SequenceNumber::parse(number).ok()?;
    (sequence.shard_index() == Some(0)).then(|| sequence.record_log_seq())?
}

/// Which of a fragment's times a range selects on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeKind {
    /// The producer's time.
    Producer,
    /// The server's.
    Server,
}

/// A video stream's log and its index.
#[derive(Debug)]
pub struct FragmentLog {
    log: Log,
    /// In offset order.
    index: Mutex<Vec<FragmentEntry>>,
}

impl FragmentLog {
    /// Wraps `log`, reading every retained record's metadata (not its media) for the index.
    pub fn open(log: Log) -> Result<FragmentLog, VideoError> {
        let mut index = Vec::new();
        let mut from = log.start_offset();
        while from < log.next_offset() {
            let read = log.read(from, 1_000)?;
            for entry in read.entries() {
                index.push(entry_of(entry.offset, entry.data)?);
            }
            if read.next_offset() == from {
                break;
            }
            from = read.next_offset();
        }
        Ok(FragmentLog {
            log,
            index: Mutex::new(index),
        })
    }

    /// The engine log's name.
    pub fn name(&self) -> &str {
        self.log.name()
    }

    /// Stores a fragment; answers its entry once an fdatasync covered it.
    pub async fn append(&self, fragment: &ReceivedFragment) -> Result<FragmentEntry, VideoError> {
        let offset = self
            .log
            .append(&fragment.record)
            .durability(Durability::Durable)
            .await
            .map_err(|e| VideoError::Internal(format!("storing a fragment: {e}")))?;
        let entry = FragmentEntry {
            offset,
            meta: fragment.meta,
            size: fragment
                .record
                .len()
                .saturating_sub(crate::fragment::PREFIX_LEN) as u64,
        };
        let mut index = self.index.lock().expect("index lock");
        // Two sessions' appends may finish out of order: keep the index in offset order.
        let at = index.partition_point(|e| e.offset < offset);
        index.insert(at, entry);
        Ok(entry)
    }

    /// The retained entries (those retention removed are dropped from the index first).
    fn retained(&self) -> std::sync::MutexGuard<'_, Vec<FragmentEntry>> {
        let start = self.log.start_offset();
        let mut index = self.index.lock().expect("index lock");
        let expired = index.partition_point(|e| e.offset < start);
        index.drain(..expired);
        index
    }

    /// Fragments in number order from offset `from`, within `range` (inclusive) of the
    /// given time when one is given, at most `limit`; the offset to go on from when more may
    /// follow.
    pub fn list(
        &self,
        range: Option<(TimeKind, i64, i64)>,
        from: u64,
        limit: usize,
    ) -> (Vec<FragmentEntry>, Option<u64>) {
        let index = self.retained();
        let start = index.partition_point(|e| e.offset < from);
        let mut page = Vec::new();
        for entry in &index[start..] {
            if page.len() == limit {
                return (page, Some(entry.offset));
            }
            let selected = range.is_none_or(|(kind, low, high)| {
                let time = time_of(entry, kind);
                (low..=high).contains(&time)
            });
            if selected {
                page.push(*entry);
            }
        }
        (page, None)
    }

    /// The first fragment (in number order) that holds `ms` (its time at or before it, its
    /// end after it) or begins at or after it: where a read "from a time" starts.
    pub fn first_at(&self, kind: TimeKind, ms: i64) -> Option<FragmentEntry> {
        self.retained()
            .iter()
            .find(|e| {
                let start = time_of(e, kind);
                let end =
                    start.saturating_add(i64::try_from(e.meta.duration_ms).unwrap_or(i64::MAX));
                start >= ms || ms < end
            })
            .copied()
    }

    /// The entry of the fragment at `offset`, if it is retained.
    pub fn entry(&self, offset: u64) -> Option<FragmentEntry> {
        let index = self.retained();
        let at = index.binary_search_by_key(&offset, |e| e.offset).ok()?;
        Some(index[at])
    }

    /// The newest `n` retained fragments, oldest first (copied under the lock: `n` entries,
    /// not the index).
    pub fn latest(&self, n: usize) -> Vec<FragmentEntry> {
        let index = self.retained();
        index[index.len().saturating_sub(n)..].to_vec()
    }

    /// The oldest retained fragment.
    pub fn earliest(&self) -> Option<FragmentEntry> {
        self.retained().first().copied()
    }

    /// The offset the next fragment gets.
    pub fn next_offset(&self) -> u64 {
        self.log.next_offset()
    }

    /// The fragment at `offset`: its metadata and MKV.
    pub fn read(&self, offset: u64) -> Result<Option<(FragmentMeta, Vec<u8>)>, VideoError> {
        if offset < self.log.start_offset() || offset >= self.log.next_offset() {
            return Ok(None);
        }
        let read = self.log.read(offset, 1)?;
        let Some(entry) = read.entries().next().filter(|e| e.offset == offset) else {
            return Ok(None);
        };
        let (meta, mkv) =
            FragmentMeta::decode(entry.data).map_err(|e| VideoError::Internal(e.to_string()))?;
        Ok(Some((meta, mkv.to_vec())))
    }

    /// Follows the log from `offset`.
    pub fn tail(&self, offset: u64) -> Result<LogTail, VideoError> {
        Ok(self.log.tail(offset)?)
    }
}

fn time_of(entry: &FragmentEntry, kind: TimeKind) -> i64 {
    match kind {
        TimeKind::Producer => entry.meta.producer_ms,
        TimeKind::Server => entry.meta.server_ms,
    }
}

fn entry_of(offset: u64, record: &[u8]) -> Result<FragmentEntry, VideoError> {
    let (meta, mkv) =
        FragmentMeta::decode(record).map_err(|e| VideoError::Internal(e.to_string()))?;
    Ok(FragmentEntry {
        offset,
        meta,
        size: mkv.len() as u64,
    })
}
