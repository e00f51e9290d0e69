//! Finding a replicated log's entries by index: for a leader shipping them, and for a
//! truncation's cut.

use super::ShardLog;
use crate::error::Result;
use crate::format::{BatchHeader, SEGMENT_DATA_START};
use crate::io::SegmentIo;
use crate::segment::Segment;
use std::ops::Range;

/// Where a read of entries stopped: the next entry's index, its segment (by generation: a
/// cursor holds no lease, so retention may retire the segment), its position, and the batch
/// before it in that segment.
#[derive(Clone, Copy)]
struct Cursor {
    index: u64,
    generation: u64,
    pos: u64,
    previous: Option<BatchHeader>,
}

/// The last few places reads of entries stopped (a leader reads on for each follower and for
/// applying), newest first; a truncation clears them.
#[derive(Default)]
pub(super) struct Cursors(Vec<Cursor>);

/// Reads that keep their place.
const CURSORS_MAX: usize = 8;

impl Cursors {
    pub(super) fn clear(&mut self) {
        self.0.clear();
    }

    fn remember(&mut self, cursor: Cursor) {
        self.0.retain(|c| c.index != cursor.index);
        self.0.insert(0, cursor);
        self.0.truncate(CURSORS_MAX);
    }
}

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
        if let Some(cut) = self.locate_from_cursor(index)? {
            return Ok(Some(cut));
        }
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

    /// Entry `index` found from a cursor at or before it in the same segment (the walk goes
    /// on from there); `None` when no cursor helps.
    fn locate_from_cursor(&self, index: u64) -> Result<Option<Cut>> {
        let w = self.writer.borrow();
        // The nearest cursor at or before the entry, in a segment still live.
        let nearest = w.entry_cursors.0.iter().filter_map(|c| {
            let at = w.live.iter().position(|s| s.generation == c.generation)?;
            (c.index <= index && c.pos <= w.live[at].visible_end()).then_some((*c, at))
        });
        let Some((cursor, live_index)) = nearest.max_by_key(|(c, _)| c.index) else {
            return Ok(None);
        };
        // The entry must lie in the cursor's segment: the next one starts past it.
        if let Some(next) = w.live.get(live_index + 1)
            && first_entry(next)?.is_some_and(|first| first <= index)
        {
            return Ok(None);
        }
        let segment = &w.live[live_index];
        let (mut pos, mut previous, mut at_index) = (cursor.pos, cursor.previous, cursor.index);
        while at_index < index && pos < segment.visible_end() {
            let header = segment
                .header_at(pos)
                .map_err(|e| segment.corrupt(pos, e))?;
            if header.entry.map(|e| e.index) != Some(at_index) {
                // Not the entry the cursor promised: look it up from the segment's start.
                return Ok(None);
            }
            pos += u64::from(header.length);
            previous = Some(header);
            at_index += 1;
        }
        if at_index != index {
            return Ok(None);
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
        let mut previous = at.previous;
        for segment in &live[at.live_index..] {
            if pos == SEGMENT_DATA_START {
                expected = segment.base_seq;
                previous = None;
            }
            let end = segment.visible_end();
            while pos < end {
                let loc = segment.verified_batch_at(pos, end, expected)?;
                if loc.header.entry.is_none_or(|e| e.index != next_index) {
                    return Ok(entries);
                }
                if next_index >= indexes.end
                    || (!entries.is_empty() && bytes + u64::from(loc.header.length) > bytes_max)
                {
                    // The next read starts here: entry `next_index` is at `pos`.
                    self.remember_cursor(next_index, segment, pos, previous);
                    return Ok(entries);
                }
                bytes += u64::from(loc.header.length);
                entries.push(segment.bytes(loc.pos, loc.end()).to_vec());
                (pos, expected, next_index) = (loc.end(), loc.header.end_seq(), next_index + 1);
                previous = Some(loc.header);
            }
            if !std::ptr::eq(segment, live.last().expect("a segment")) {
                pos = SEGMENT_DATA_START;
            }
        }
        // Read to the end of the log: its next entry goes where the last one copied ended.
        if let Some(segment) = live.last()
            && !entries.is_empty()
        {
            self.remember_cursor(next_index, segment, pos, previous);
        }
        Ok(entries)
    }

    fn remember_cursor(
        &self,
        index: u64,
        segment: &Segment,
        pos: u64,
        previous: Option<BatchHeader>,
    ) {
        self.writer.borrow_mut().entry_cursors.remember(Cursor {
            index,
            generation: segment.generation,
            pos,
            previous,
        });
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
