//! Finding a replicated log's entries by index: for a leader shipping them, and for a
//! truncation's cut.

use super::ShardLog;
use crate::error::Result;
use crate::format::{BatchHeader, SEGMENT_DATA_START};
use crate::io::SegmentIo;
use crate::segment::Segment;
use std::ops::Range;

/// A place among the written batches: a segment (its place in `live`), a position in it, and
/// the batch before that position in the segment.
pub(super) struct Cut {
    pub(super) live_index: usize,
    pub(super) pos: u64,
    pub(super) previous: Option<BatchHeader>,
}

impl<I: SegmentIo> ShardLog<I> {
    /// The first written batch holding an entry at or after `index`: in the newest segment
    /// whose first entry is at or below it (the log's first batch if every entry is above
    /// it), or the end of that segment's batches. A walk of batch headers from the segment's
    /// start: entries are looked up by index rarely (a replication cursor reads on from where
    /// it is), so segments carry no index by entry yet.
    pub(super) fn locate_entry(&self, index: u64) -> Result<Option<Cut>> {
        let w = self.writer.borrow();
        let mut live_index = None;
        for (i, segment) in w.live.iter().enumerate().rev() {
            if first_entry(segment)?.is_some_and(|first| first <= index) {
                live_index = Some(i);
                break;
            }
        }
        let Some(live_index) = live_index.or((!w.live.is_empty()).then_some(0)) else {
            return Ok(None);
        };
        let segment = &w.live[live_index];
        let (mut pos, mut previous) = (SEGMENT_DATA_START, None);
        while pos < segment.visible_end() {
            let header = segment
                .header_at(pos)
                .map_err(|e| segment.corrupt(pos, e))?;
            if header.entry.is_some_and(|e| e.index >= index) {
                break;
            }
            pos += u64::from(header.length);
            previous = Some(header);
        }
        Ok(Some(Cut {
            live_index,
            pos,
            previous,
        }))
    }

    /// The index of the oldest entry the log holds (retention retires older segments), `None`
    /// when it holds none.
    pub fn first_entry_index(&self) -> Result<Option<u64>> {
        let w = self.writer.borrow();
        for segment in &w.live {
            if let Some(index) = first_entry(segment)? {
                return Ok(Some(index));
            }
        }
        Ok(None)
    }

    /// A copy of written entry `index` as this log holds it (the whole batch, verified): what
    /// a leader ships to a follower, which appends it with `append_received`. `None` when the
    /// log does not hold it.
    pub fn entry(&self, index: u64) -> Result<Option<Vec<u8>>> {
        Ok(self.entries(index..index.saturating_add(1), 0)?.pop())
    }

    /// Copies of the written entries in `indexes`, in order, as this log holds them (each
    /// verified), until they reach `bytes_max` (the first one always comes): what a leader
    /// ships in one append request. Empty when the range is empty or the log does not hold
    /// its first entry; short when the log ends inside it.
    pub fn entries(&self, indexes: Range<u64>, bytes_max: u64) -> Result<Vec<Vec<u8>>> {
        let index = indexes.start;
        if indexes.is_empty() {
            return Ok(Vec::new());
        }
        let Some(at) = self.locate_entry(index)? else {
            return Ok(Vec::new());
        };
        let live = self.writer.borrow().live.clone();
        let (mut pos, mut expected) = {
            let segment = &live[at.live_index];
            (
                at.pos,
                at.previous.map_or(segment.base_seq, |h| h.end_seq()),
            )
        };
        let (mut entries, mut bytes, mut next_index) = (Vec::new(), 0u64, index);
        for segment in &live[at.live_index..] {
            if pos == SEGMENT_DATA_START {
                expected = segment.base_seq;
            }
            let end = segment.visible_end();
            while pos < end {
                let loc = segment.verified_batch_at(pos, end, expected)?;
                if next_index >= indexes.end
                    || loc.header.entry.is_none_or(|e| e.index != next_index)
                {
                    return Ok(entries);
                }
                if !entries.is_empty() && bytes + u64::from(loc.header.length) > bytes_max {
                    return Ok(entries);
                }
                bytes += u64::from(loc.header.length);
                entries.push(segment.bytes(loc.pos, loc.end()).to_vec());
                (pos, expected, next_index) = (loc.end(), loc.header.end_seq(), next_index + 1);
            }
            pos = SEGMENT_DATA_START;
        }
        Ok(entries)
    }
}

/// The index of a segment's first entry (`None` when it holds no batch).
pub(super) fn first_entry(segment: &Segment) -> Result<Option<u64>> {
    if segment.visible_end() == SEGMENT_DATA_START {
        return Ok(None);
    }
    let header = segment
        .header_at(SEGMENT_DATA_START)
        .map_err(|e| segment.corrupt(SEGMENT_DATA_START, e))?;
    Ok(header.entry.map(|e| e.index))
}
