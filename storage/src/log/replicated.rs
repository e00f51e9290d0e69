//! A shard's Raft log (cluster mode): entries appended by the leader or received from it, and
//! visibility moved by the commit index, never by the append (docs/design/segment-format.md,
//! "Replicated logs").

use super::append::Seal;
use super::{Appended, Durability, ShardLog, Writer};
use crate::error::{Result, StorageError};
use crate::format::{BatchHeader, EncodedBatch, EntryId, SEGMENT_DATA_START};
use crate::io::SegmentIo;
use crate::segment::Segment;
use crate::sync::Arc;

/// How far a replicated log is visible: the commit index the Raft layer gave, the last entry
/// readers can see, and a cursor at the first batch they cannot see yet.
#[derive(Debug, Default)]
pub(super) struct Commit {
    index: Option<u64>,
    visible_entry: Option<EntryId>,
    /// The first batch not yet visible: a segment (by generation: the cursor holds no lease,
    /// so retention may reuse a segment it has passed) and a position in it, at its written
    /// end when every written batch of it is visible.
    cursor: Option<(u64, u64)>,
    /// Sequence after the last visible record.
    visible_seq: u64,
    /// Retention retires only entries below this index: the Raft layer's purge point + 1
    /// (0 until it says: openraft must never find an entry gone that it did not purge).
    retain_from: u64,
}

impl Commit {
    /// Nothing visible: the cursor at the start of the log's first segment.
    pub(super) fn new(first: Option<&Arc<Segment>>, visible_seq: u64) -> Commit {
        Commit {
            cursor: first.map(|s| (s.generation, SEGMENT_DATA_START)),
            visible_seq,
            ..Commit::default()
        }
    }

    /// A log restarted at `next_seq`: nothing visible, the purge point kept.
    pub(super) fn restarted(&self, next_seq: u64) -> Commit {
        Commit {
            retain_from: self.retain_from,
            ..Commit::new(None, next_seq)
        }
    }

    pub(super) fn visible_entry(&self) -> Option<EntryId> {
        self.visible_entry
    }

    /// Truncation moved the written end back to `pos` in `segment`: a cursor past it (it cannot
    /// be: truncation stays above the visible end) would be a bug.
    pub(super) fn check_below(&self, segment: &Segment, pos: u64) {
        if let Some((generation, cursor)) = self.cursor {
            assert!(
                generation != segment.generation || cursor <= pos,
                "truncation stays above the visible end"
            );
        }
    }
}

/// Refuses an entry that does not follow the log's last one (index + 1, a term not lower) or,
/// received from the leader, does not continue the log's numbering and time.
pub(super) fn check_follows<F>(
    w: &Writer<F>,
    entry: EntryId,
    received: Option<&BatchHeader>,
) -> Result<()> {
    let refuse = |reason: String| Err(StorageError::EntryRefused { reason });
    if let Some(last) = w.last_entry
        && (entry.index != last.index + 1 || entry.term < last.term)
    {
        return refuse(format!(
            "entry {} of term {} does not follow the log's last entry, {} of term {}",
            entry.index, entry.term, last.index, last.term
        ));
    }
    if let Some(header) = received {
        if header.base_seq != w.next_seq {
            return refuse(format!(
                "entry {} starts at sequence number {}, the log's next is {}",
                entry.index, header.base_seq, w.next_seq
            ));
        }
        if header.min_timestamp_ms < w.last_timestamp_ms {
            return refuse(format!(
                "entry {} arrived at {} ms, before the log's last record ({} ms)",
                entry.index, header.min_timestamp_ms, w.last_timestamp_ms
            ));
        }
    }
    Ok(())
}

impl<I: SegmentIo> ShardLog<I> {
    /// Appends a new entry of a replicated log, as its leader: `batch` is a record entry
    /// (`EncodedBatch::entry_with_capacity`) or a control entry (`EncodedBatch::control`); the
    /// log numbers its records and gives them their arrival time. The entry must follow the
    /// log's last one. Returns once it is written, or durable, as asked; readers see it only
    /// once `commit_to` covers it.
    pub async fn append_entry(
        &self,
        batch: EncodedBatch,
        entry: EntryId,
        durability: Durability,
    ) -> Result<Appended> {
        if batch.received_header().is_some() || !batch.is_entry() {
            return Err(StorageError::EntryRefused {
                reason: "append_entry takes a new entry (entry_with_capacity, control)".into(),
            });
        }
        self.append_sealed(batch, Seal::Entry(entry), durability)
            .await
    }

    /// Appends an entry received from the leader (`EncodedBatch::received`), with the sequence
    /// numbers and times the leader gave it. It must follow the log's last entry and start at
    /// the log's next sequence number.
    pub async fn append_received(
        &self,
        batch: EncodedBatch,
        durability: Durability,
    ) -> Result<Appended> {
        if batch.received_header().is_none() {
            return Err(StorageError::EntryRefused {
                reason: "append_received takes an entry received from the leader".into(),
            });
        }
        self.append_sealed(batch, Seal::Received, durability).await
    }

    /// The log's last entry (appended, perhaps not yet written).
    pub fn last_entry(&self) -> Option<EntryId> {
        self.writer.borrow().last_entry
    }

    /// The last entry readers can see.
    pub fn visible_entry(&self) -> Option<EntryId> {
        self.writer.borrow().commit.visible_entry()
    }

    /// The Raft layer purged the entries below `index` (its purge point + 1): retention may
    /// retire their segments once they expire. Until it is told, retention retires no segment
    /// of a replicated log. A lower index than one given before changes nothing.
    pub fn set_retain_from(&self, index: u64) {
        let mut w = self.writer.borrow_mut();
        w.commit.retain_from = w.commit.retain_from.max(index);
    }

    /// The Raft commit index moved to `index`: readers see every written entry up to it, and
    /// entries written later as they land. An index lower than one given before changes
    /// nothing.
    pub fn commit_to(&self, index: u64) -> Result<()> {
        let mut w = self.writer.borrow_mut();
        if w.commit.index.is_some_and(|i| i >= index) {
            return Ok(());
        }
        w.commit.index = Some(index);
        self.advance_visible(&mut w)
    }

    /// Moves the visible end over every written entry at or below the commit index.
    pub(super) fn advance_visible(&self, w: &mut Writer<I::File>) -> Result<()> {
        let Some(commit) = w.commit.index else {
            return Ok(());
        };
        while let Some((segment, pos)) = next_written(w) {
            let header = segment
                .header_at(pos)
                .map_err(|e| segment.corrupt(pos, e))?;
            let Some(entry) = header.entry else {
                let reason = crate::format::FormatError("a batch of a replicated log is no entry");
                return Err(segment.corrupt(pos, reason));
            };
            if entry.index > commit {
                break;
            }
            w.commit.visible_entry = Some(entry);
            w.commit.visible_seq = header.end_seq();
            if header.record_count > 0 {
                self.shared
                    .publish_visible_timestamp(header.max_timestamp_ms);
            }
            w.commit.cursor = Some((segment.generation, pos + u64::from(header.length)));
        }
        if w.commit.visible_seq > self.shared.next_seq() {
            self.shared.publish_next_seq(w.commit.visible_seq);
        }
        Ok(())
    }
}

/// How many of the oldest live segments readers see whole: a replicated log's retention
/// retires none beyond them.
pub(super) fn fully_visible_segments<F>(w: &Writer<F>) -> usize {
    let Some((generation, pos)) = w.commit.cursor else {
        return 0;
    };
    match w.live.iter().position(|s| s.generation == generation) {
        Some(i) if pos >= w.live[i].visible_end() => i + 1,
        Some(i) => i,
        // The cursor's segment was retired: what follows it is not known to be visible until
        // the cursor moves on.
        None => 0,
    }
}

/// How many of the oldest live segments hold only entries the Raft layer purged (below
/// `retain_from`): a segment's entries end where the next one's begin.
pub(super) fn purged_segments<F>(w: &Writer<F>) -> Result<usize> {
    let mut count = 0;
    for pair in w.live.windows(2) {
        match super::entries::first_entry(&pair[1])? {
            Some(next_first) if next_first <= w.commit.retain_from => count += 1,
            _ => break,
        }
    }
    Ok(count)
}

/// The first written batch not yet visible, moving the cursor to the next segment when its own
/// is exhausted.
fn next_written<F>(w: &mut Writer<F>) -> Option<(Arc<Segment>, u64)> {
    loop {
        let (generation, pos) = match w.commit.cursor {
            Some(cursor) => cursor,
            None => (w.live.first()?.generation, SEGMENT_DATA_START),
        };
        // Looked up from the newest: the cursor is near the end of the log.
        let at = w.live.iter().rposition(|s| s.generation == generation);
        if let Some(i) = at
            && pos < w.live[i].visible_end()
        {
            return Some((w.live[i].clone(), pos));
        }
        // Exhausted: the next live segment, if one has started. A segment retired from under
        // the cursor was all visible; the log goes on at the first live one.
        let next = match at {
            Some(i) => w.live.get(i + 1)?,
            None => w.live.first()?,
        };
        if next.generation == generation || next.visible_end() == SEGMENT_DATA_START {
            return None;
        }
        w.commit.cursor = Some((next.generation, SEGMENT_DATA_START));
    }
}
