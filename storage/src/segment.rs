//! One segment as readers see it: a read-only mapping plus the owner's published progress.
//!
//! An `Arc<Segment>` is a lease: while any reader holds one, no log in the process reuses the
//! file, neither the owner (`reclaim` in log/retention.rs wants its last `Arc`) nor a log opened
//! later on the same directory (`reclaim` also wants the segment's mapping to be the file's only
//! one, and this segment's mapping lives as long as the lease: mapping.rs). So bytes below
//! `visible_end` never change under a reader (docs/design/leases.md).

use crate::error::{Result, StorageError};
use crate::format::{
    BATCH_HEADER_MAX_LEN, BatchHeader, FormatError, IndexEntry, SEGMENT_DATA_START, verify_batch,
};
use crate::index::SparseIndex;
use crate::mapping::Mapping;
pub(crate) use crate::mapping::map_file;
use crate::sync::{AtomicU64, Ordering, RwLock, RwLockReadGuard, set_exclusive};
use std::path::PathBuf;

/// A mapped segment file.
#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) path: PathBuf,
    map: Mapping,
    /// Changes only through `&mut` (when the owner holds the last lease).
    pub(crate) generation: u64,
    pub(crate) base_seq: u64,
    /// Sequence after the last visible record.
    end_seq: AtomicU64,
    /// Byte offset after the last visible batch.
    visible_end: AtomicU64,
    /// Arrival time of the last visible record (0 when empty).
    max_timestamp_ms: AtomicU64,
    index: RwLock<SparseIndex>,
}

/// Where a visible batch is and what it holds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchLoc {
    pub(crate) pos: u64,
    pub(crate) header: BatchHeader,
}

impl BatchLoc {
    pub(crate) fn end(&self) -> u64 {
        self.pos + u64::from(self.header.length)
    }
}

impl Segment {
    /// A segment whose first `visible_end` bytes hold verified batches up to `end_seq`.
    pub(crate) fn new(path: PathBuf, map: Mapping, generation: u64, base_seq: u64) -> Segment {
        Segment {
            path,
            map,
            generation,
            base_seq,
            end_seq: AtomicU64::new(base_seq),
            visible_end: AtomicU64::new(SEGMENT_DATA_START),
            max_timestamp_ms: AtomicU64::new(0),
            index: RwLock::new(SparseIndex::default()),
        }
    }

    /// Starts a new life for a reused file; requires the last lease (`&mut`), and no mapping of
    /// the file by an earlier log left in the process.
    /// `max_timestamp_ms` starts at the log's latest arrival time, so segments stay ordered by
    /// time even while this one is empty (time seeks binary-search on it).
    pub(crate) fn reset(
        &mut self,
        generation: u64,
        base_seq: u64,
        max_timestamp_ms: u64,
        index: SparseIndex,
    ) {
        assert!(
            self.is_only_mapping(),
            "a file is reused only when no earlier log maps it"
        );
        self.generation = generation;
        self.base_seq = base_seq;
        set_exclusive(&mut self.end_seq, base_seq);
        set_exclusive(&mut self.visible_end, SEGMENT_DATA_START);
        set_exclusive(&mut self.max_timestamp_ms, max_timestamp_ms);
        *self.index.get_mut().unwrap_or_else(|e| e.into_inner()) = index;
    }

    /// Installs recovered or fresh progress before the segment is shared.
    pub(crate) fn restore(
        &mut self,
        end_seq: u64,
        visible_end: u64,
        max_ts: u64,
        index: SparseIndex,
    ) {
        set_exclusive(&mut self.end_seq, end_seq);
        set_exclusive(&mut self.visible_end, visible_end);
        set_exclusive(&mut self.max_timestamp_ms, max_ts);
        *self.index.get_mut().unwrap_or_else(|e| e.into_inner()) = index;
    }

    /// Owner: a batch was written at `loc`; make it visible. Release ordering pairs with the
    /// readers' acquire loads of `visible_end` and `end_seq`.
    pub(crate) fn publish(&self, loc: &BatchLoc) {
        assert_eq!(
            loc.pos,
            self.visible_end(),
            "batches are published in order"
        );
        assert_eq!(
            loc.header.base_seq,
            self.end_seq(),
            "sequence numbers are contiguous"
        );
        // Control entries take no sequence number: the index points at record batches only.
        if !loc.header.is_control() {
            self.index
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .observe(IndexEntry {
                    seq: loc.header.base_seq,
                    timestamp_ms: loc.header.min_timestamp_ms,
                    pos: loc.pos,
                });
        }
        self.max_timestamp_ms
            .store(loc.header.max_timestamp_ms, Ordering::Release);
        self.end_seq.store(loc.header.end_seq(), Ordering::Release);
        self.visible_end.store(loc.end(), Ordering::Release);
    }

    /// Owner, truncating a replicated log: the written end moves back to `pos`, where the
    /// records end at `end_seq`, the last arriving at `max_timestamp_ms`. Readers never see
    /// the bytes this forgets (they are above the commit, and readers stop at it).
    pub(crate) fn truncate_to(&self, pos: u64, end_seq: u64, max_timestamp_ms: u64) {
        assert!(pos <= self.visible_end() && end_seq <= self.end_seq());
        self.index
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .truncate(pos);
        self.max_timestamp_ms
            .store(max_timestamp_ms, Ordering::Release);
        self.end_seq.store(end_seq, Ordering::Release);
        self.visible_end.store(pos, Ordering::Release);
    }

    /// The header of the last written batch, walked from the last index entry (`None` when the
    /// segment holds none, or a header on the way does not parse).
    pub(crate) fn last_header(&self) -> Option<BatchHeader> {
        let end = self.visible_end();
        let mut pos = self
            .index()
            .entries()
            .last()
            .map_or(SEGMENT_DATA_START, |e| e.pos);
        let mut last = None;
        while pos < end {
            let header = self.header_at(pos).ok()?;
            pos += u64::from(header.length);
            last = Some(header);
        }
        last
    }

    pub(crate) fn end_seq(&self) -> u64 {
        self.end_seq.load(Ordering::Acquire)
    }

    pub(crate) fn visible_end(&self) -> u64 {
        self.visible_end.load(Ordering::Acquire)
    }

    pub(crate) fn max_timestamp_ms(&self) -> u64 {
        self.max_timestamp_ms.load(Ordering::Acquire)
    }

    pub(crate) fn index_entries(&self) -> Vec<IndexEntry> {
        self.index().entries().to_vec()
    }

    /// Raw mapped bytes; only ranges below `visible_end` are meaningful.
    pub(crate) fn bytes(&self, from: u64, to: u64) -> &[u8] {
        let (from, to) = (usize::try_from(from).unwrap(), usize::try_from(to).unwrap());
        &self.map[from..to]
    }

    pub(crate) fn len(&self) -> u64 {
        self.map.len() as u64
    }

    /// True when no other segment in the process, of this log or of an earlier one on the same
    /// directory, maps this segment's file (see mapping.rs).
    pub(crate) fn is_only_mapping(&self) -> bool {
        self.map.is_only_one()
    }

    /// Runs `read` with the kernel's read-around off for this mapping. Reading a seal (the
    /// trailer and footer at the file's end) touches a few pages; a fault there otherwise
    /// reads around it by the device's read-ahead window (8 MiB on this project's virtual
    /// disk), zero-filling the unwritten tail of every active segment at each open
    /// (docs/profiles/reopen-2000-shards.txt).
    pub(crate) fn with_read_around_off<T>(&self, read: impl FnOnce(&Segment) -> T) -> T {
        // Advice is a hint: if the kernel refuses it, reading works the same, only slower.
        self.map.advise(memmap2::Advice::Random);
        let result = read(self);
        self.map.advise(memmap2::Advice::Normal);
        result
    }

    pub(crate) fn corrupt(&self, pos: u64, e: FormatError) -> StorageError {
        StorageError::Corrupt {
            path: self.path.clone(),
            pos,
            reason: e.0.to_string(),
        }
    }

    /// The header of the batch at `pos`, checked against what the walk expects, without
    /// verifying its body.
    pub(crate) fn batch_at(&self, pos: u64, limit: u64, expected_seq: u64) -> Result<BatchLoc> {
        let head = self.bytes(pos, limit.min(pos + BATCH_HEADER_MAX_LEN as u64).max(pos));
        let header = BatchHeader::parse(head).map_err(|e| self.corrupt(pos, e))?;
        let fault = if header.generation != self.generation {
            Some("batch from another generation of this segment")
        } else if header.base_seq != expected_seq {
            Some("batch out of sequence")
        } else if pos + u64::from(header.length) > limit {
            Some("batch runs past the end of the data")
        } else {
            None
        };
        match fault {
            Some(reason) => Err(self.corrupt(pos, FormatError(reason))),
            None => Ok(BatchLoc { pos, header }),
        }
    }

    /// The header of a batch a read verified (the mapping runs well past any batch's header).
    pub(crate) fn header_at(&self, pos: u64) -> std::result::Result<BatchHeader, FormatError> {
        BatchHeader::parse(self.bytes(pos, pos + BATCH_HEADER_MAX_LEN as u64))
    }

    /// Like [`Segment::batch_at`], and verifies the checksum and record layout.
    pub(crate) fn verified_batch_at(
        &self,
        pos: u64,
        limit: u64,
        expected_seq: u64,
    ) -> Result<BatchLoc> {
        let loc = self.batch_at(pos, limit, expected_seq)?;
        verify_batch(self.bytes(pos, loc.end()), &loc.header).map_err(|e| self.corrupt(pos, e))?;
        Ok(loc)
    }

    fn index(&self) -> RwLockReadGuard<'_, SparseIndex> {
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Where a batch walk starts: at an index entry, or at the first batch.
    fn walk_from(&self, entry: Option<IndexEntry>) -> (u64, u64) {
        entry.map_or((SEGMENT_DATA_START, self.base_seq), |e| (e.pos, e.seq))
    }

    /// The visible batch holding `seq` (which must be in this segment's visible range).
    pub(crate) fn locate_seq(&self, seq: u64) -> Result<BatchLoc> {
        let limit = self.visible_end();
        assert!(
            seq >= self.base_seq && seq < self.end_seq(),
            "seq {seq} outside segment"
        );
        let (mut pos, mut expected) = self.walk_from(self.index().floor_by_seq(seq));
        loop {
            let loc = self.batch_at(pos, limit, expected)?;
            if seq < loc.header.end_seq() {
                return Ok(loc);
            }
            (pos, expected) = (loc.end(), loc.header.end_seq());
        }
    }

    /// The first visible record at or after `timestamp_ms` and below `end_seq` (the log's
    /// watermark: a replicated log's batches above it may be rewritten), if this segment has
    /// one: its sequence number and arrival time.
    pub(crate) fn seek_timestamp(
        &self,
        timestamp_ms: u64,
        end_seq: u64,
    ) -> Result<Option<(u64, u64)>> {
        let limit = self.visible_end();
        let (mut pos, mut expected) = self.walk_from(self.index().floor_by_timestamp(timestamp_ms));
        while pos < limit && expected < end_seq {
            let loc = self.verified_batch_at(pos, limit, expected)?;
            // A control entry holds no record to land on.
            if loc.header.max_timestamp_ms >= timestamp_ms && !loc.header.is_control() {
                let bytes = self.bytes(loc.pos, loc.end());
                let found = crate::format::RecordIter::new(bytes, &loc.header)
                    .map(|r| r.expect("verified batch decodes"))
                    .find(|r| r.timestamp_ms >= timestamp_ms);
                return Ok(found.map(|r| (r.seq, r.timestamp_ms)));
            }
            (pos, expected) = (loc.end(), loc.header.end_seq());
        }
        Ok(None)
    }
}
