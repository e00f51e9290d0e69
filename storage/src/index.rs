//! The sparse per-segment index: pure logic, no I/O.

use crate::format::IndexEntry;

/// Entries in increasing seq, timestamp and position order, roughly one per
/// `index_interval_bytes` of batches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SparseIndex {
    entries: Vec<IndexEntry>,
    interval_bytes: u64,
}

impl SparseIndex {
    /// An empty index adding an entry every `interval_bytes`.
    pub fn new(interval_bytes: u64) -> Self {
        SparseIndex {
            entries: Vec::new(),
            interval_bytes,
        }
    }

    /// An index rebuilt from a sealed segment's footer.
    pub fn from_entries(entries: Vec<IndexEntry>, interval_bytes: u64) -> Self {
        assert!(
            entries
                .windows(2)
                .all(|w| w[0].seq < w[1].seq && w[0].pos < w[1].pos)
        );
        SparseIndex {
            entries,
            interval_bytes,
        }
    }

    /// Notes a batch appended at `pos`; keeps it if it is far enough from the last entry.
    pub fn observe(&mut self, entry: IndexEntry) {
        match self.entries.last() {
            Some(last) => {
                assert!(
                    entry.seq > last.seq && entry.pos > last.pos,
                    "index must grow"
                );
                assert!(
                    entry.timestamp_ms >= last.timestamp_ms,
                    "timestamps must not go back"
                );
                if entry.pos - last.pos >= self.interval_bytes {
                    self.entries.push(entry);
                }
            }
            None => self.entries.push(entry),
        }
    }

    /// Forgets the entries at or after `pos` (a replicated log's truncation).
    pub fn truncate(&mut self, pos: u64) {
        self.entries.retain(|e| e.pos < pos);
    }

    /// The entries, for the footer.
    pub fn entries(&self) -> &[IndexEntry] {
        &self.entries
    }

    /// The last entry at or before `seq`: a batch position from which a walk finds `seq`.
    pub fn floor_by_seq(&self, seq: u64) -> Option<IndexEntry> {
        let after = self.entries.partition_point(|e| e.seq <= seq);
        after.checked_sub(1).map(|i| self.entries[i])
    }

    /// The entry from which a walk finds the first record at or after `timestamp_ms`: the last
    /// entry strictly before it (records with equal time may sit in the batch before an entry).
    pub fn floor_by_timestamp(&self, timestamp_ms: u64) -> Option<IndexEntry> {
        let after = self
            .entries
            .partition_point(|e| e.timestamp_ms < timestamp_ms);
        after
            .checked_sub(1)
            .map(|i| self.entries[i])
            .or_else(|| self.entries.first().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> SparseIndex {
        let mut index = SparseIndex::new(100);
        // Batches every 40 bytes, 10 records each, time = seq / 10.
        for i in 0..20u64 {
            index.observe(IndexEntry {
                seq: i * 10,
                timestamp_ms: i,
                pos: 4096 + i * 40,
            });
        }
        index
    }

    #[test]
    fn keeps_one_entry_per_interval() {
        let positions: Vec<u64> = index().entries().iter().map(|e| e.pos - 4096).collect();
        assert_eq!(positions, vec![0, 120, 240, 360, 480, 600, 720]);
    }

    #[test]
    fn floor_by_seq_finds_the_last_entry_not_after_the_seq() {
        let index = index();
        assert_eq!(index.floor_by_seq(0).unwrap().seq, 0);
        assert_eq!(index.floor_by_seq(29).unwrap().seq, 0);
        assert_eq!(index.floor_by_seq(30).unwrap().seq, 30);
        assert_eq!(index.floor_by_seq(10_000).unwrap().seq, 180);
        assert_eq!(SparseIndex::new(100).floor_by_seq(5), None);
    }

    #[test]
    fn floor_by_timestamp_starts_strictly_before_the_time() {
        let index = index();
        assert_eq!(index.floor_by_timestamp(0).unwrap().seq, 0);
        assert_eq!(index.floor_by_timestamp(3).unwrap().seq, 0);
        assert_eq!(index.floor_by_timestamp(4).unwrap().seq, 30);
        assert_eq!(index.floor_by_timestamp(99).unwrap().seq, 180);
    }
}
