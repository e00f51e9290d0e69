//! Encoding batches: the records in their segment layout, then the header a log gives them.

use super::FormatError;
use super::align8;
use super::batch::{
    BATCH_FLAG_CONTROL, BATCH_FLAG_REPLICATED, BATCH_HEADER_LEN, BATCH_HEADER_MAX_LEN, BatchHeader,
    CHECKSUM_FROM, EntryId, KEY_BYTES_MAX, RECORD_HEADER_LEN, RecordIn, RecordIter,
    control_entry_len, verify_batch,
};
use xxhash_rust::xxh3::xxh3_64;

/// Encoded size of one record.
fn record_len(record: &RecordIn<'_>) -> u64 {
    EncodedBatch::encoded_record_len(record.key.len(), record.data.len())
}

/// Encoded size of a batch of these records.
pub fn encoded_batch_len(records: &[RecordIn<'_>]) -> u64 {
    BATCH_HEADER_LEN as u64 + records.iter().map(record_len).sum::<u64>()
}

/// Appends one encoded batch to `out`; every record gets arrival time `timestamp_ms`.
///
/// The caller has checked sizes: keys fit in u16, data in u32, the batch in u32.
pub fn encode_batch(
    out: &mut Vec<u8>,
    records: &[RecordIn<'_>],
    base_seq: u64,
    generation: u64,
    timestamp_ms: u64,
    prev_checksum: u64,
) -> BatchHeader {
    let mut batch = EncodedBatch::from_records(records);
    let header = batch.seal(base_seq, generation, timestamp_ms, prev_checksum);
    out.extend_from_slice(batch.as_bytes());
    header
}

/// A batch encoded before it has a place in a log: the record headers, keys and data in their
/// segment layout, behind room for the batch header. Any thread can build one; the log that
/// appends it only fills the header (sequence numbers, time, chain), hashes and writes, so the
/// records are copied once between the caller and the page cache.
///
/// Pushing never fails: sizes a header cannot describe are remembered and refused by the log
/// before anything is written (`oversized_key`, `largest_record`).
#[derive(Debug, Clone)]
pub struct EncodedBatch {
    bytes: Vec<u8>,
    layout: Layout,
    record_count: u32,
    /// The first record whose key does not fit a record header: (index, key bytes).
    oversized_key: Option<(usize, usize)>,
    /// The largest record (key + data): (index, bytes).
    largest_record: (usize, u64),
}

/// What the header will say, and who fills it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// A single-node log's batch: 64 bytes of header.
    Plain,
    /// An entry a leader appends: room for the entry id after the header.
    Entry,
    /// A control entry (the body is in place, no records).
    Control,
    /// An entry as its leader wrote it, received by a follower: sequence numbers, times and
    /// entry id are kept, the follower's log gives it its own generation and chain.
    Received(BatchHeader),
}

impl Default for EncodedBatch {
    fn default() -> Self {
        EncodedBatch::with_capacity(0)
    }
}

impl EncodedBatch {
    /// An empty batch with room for `bytes` of encoded records (see `encoded_record_len`).
    pub fn with_capacity(bytes: usize) -> EncodedBatch {
        EncodedBatch::laid_out(Layout::Plain, BATCH_HEADER_LEN, bytes)
    }

    /// An empty entry of a replicated log, with room for `bytes` of encoded records; sealed
    /// by `seal_entry`.
    pub fn entry_with_capacity(bytes: usize) -> EncodedBatch {
        EncodedBatch::laid_out(Layout::Entry, BATCH_HEADER_MAX_LEN, bytes)
    }

    fn laid_out(layout: Layout, header_len: usize, bytes: usize) -> EncodedBatch {
        let mut buf = Vec::with_capacity(header_len + bytes);
        buf.resize(header_len, 0);
        EncodedBatch {
            bytes: buf,
            layout,
            record_count: 0,
            oversized_key: None,
            largest_record: (0, 0),
        }
    }

    /// A control entry of a replicated log carrying `body` (opaque to the log); sealed by
    /// `seal_entry`. The caller keeps the body under the log's batch size.
    pub fn control(body: &[u8]) -> EncodedBatch {
        let mut batch = EncodedBatch::laid_out(Layout::Control, BATCH_HEADER_MAX_LEN, 0);
        batch
            .bytes
            .reserve(control_entry_len(body.len()) - BATCH_HEADER_MAX_LEN);
        let body_len = u32::try_from(body.len()).unwrap_or(u32::MAX);
        batch.bytes.extend_from_slice(&body_len.to_le_bytes());
        batch.bytes.extend_from_slice(&[0u8; 4]);
        batch.bytes.extend_from_slice(body);
        batch.bytes.resize(control_entry_len(body.len()), 0);
        batch
    }

    /// An entry of a replicated log as its leader's log holds it (the whole batch), checked
    /// end to end (checksum, layout) before a follower appends it; sealed by `seal_received`.
    pub fn received(bytes: Vec<u8>) -> Result<EncodedBatch, FormatError> {
        let header = BatchHeader::parse(&bytes)?;
        if header.entry.is_none() {
            return Err(FormatError("not an entry of a replicated log"));
        }
        verify_batch(&bytes, &header)?;
        let mut largest_record = (0, 0);
        for (index, record) in RecordIter::new(&bytes, &header).enumerate() {
            let record = record.expect("verified batch decodes");
            let size = (record.key.len() + record.data.len()) as u64;
            if size > largest_record.1 {
                largest_record = (index, size);
            }
        }
        Ok(EncodedBatch {
            bytes,
            layout: Layout::Received(header),
            record_count: header.record_count,
            oversized_key: None,
            largest_record,
        })
    }

    /// The header a received entry arrived with.
    pub fn received_header(&self) -> Option<&BatchHeader> {
        match &self.layout {
            Layout::Received(header) => Some(header),
            _ => None,
        }
    }

    /// An entry of a replicated log (sealed by `seal_entry` or `seal_received`).
    pub fn is_entry(&self) -> bool {
        self.layout != Layout::Plain
    }

    /// A control entry (no records).
    pub fn is_control(&self) -> bool {
        match self.layout {
            Layout::Control => true,
            Layout::Received(header) => header.is_control(),
            Layout::Plain | Layout::Entry => false,
        }
    }

    /// The batch of these records, in order.
    pub fn from_records(records: &[RecordIn<'_>]) -> EncodedBatch {
        let body = encoded_batch_len(records) as usize - BATCH_HEADER_LEN;
        let mut batch = EncodedBatch::with_capacity(body);
        for record in records {
            batch.push(record.key, record.data);
        }
        batch
    }

    /// Encoded size of one record of this key and data length.
    #[inline]
    pub fn encoded_record_len(key_bytes: usize, data_bytes: usize) -> u64 {
        RECORD_HEADER_LEN as u64 + align8(key_bytes as u64 + data_bytes as u64)
    }

    /// Appends one record.
    #[inline]
    pub fn push(&mut self, key: &[u8], data: &[u8]) {
        self.push_flagged(key, data, 0);
    }

    /// Appends one record with `flags` (`RECORD_FLAG_ENCRYPTED`).
    #[inline]
    pub fn push_flagged(&mut self, key: &[u8], data: &[u8], flags: u16) {
        assert!(
            matches!(self.layout, Layout::Plain | Layout::Entry),
            "records are pushed into plain batches and new entries"
        );
        let index = self.record_count as usize;
        let size = key.len() as u64 + data.len() as u64;
        if size > self.largest_record.1 {
            self.largest_record = (index, size);
        }
        if key.len() > KEY_BYTES_MAX && self.oversized_key.is_none() {
            self.oversized_key = Some((index, key.len()));
        }
        // Lengths a header cannot hold are refused before writing (`oversized_key`,
        // `largest_record`); truncating them here keeps push infallible.
        let mut header = [0u8; RECORD_HEADER_LEN]; // timestamp delta, reserved: zero
        header[0..4].copy_from_slice(&(data.len() as u32).to_le_bytes());
        header[4..6].copy_from_slice(&(key.len() as u16).to_le_bytes());
        header[6..8].copy_from_slice(&flags.to_le_bytes());
        self.bytes.extend_from_slice(&header);
        self.bytes.extend_from_slice(key);
        self.bytes.extend_from_slice(data);
        let padding = (size.wrapping_neg() & 7) as usize;
        self.bytes.extend_from_slice(&[0u8; 8][..padding]);
        self.record_count += 1;
    }

    /// Records pushed so far.
    pub fn record_count(&self) -> usize {
        self.record_count as usize
    }

    /// The whole batch in bytes, header included.
    pub fn len_bytes(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// The first record whose key is longer than `KEY_BYTES_MAX`: (index, key bytes).
    pub fn oversized_key(&self) -> Option<(usize, usize)> {
        self.oversized_key
    }

    /// The largest record (key + data): (index, bytes).
    pub fn largest_record(&self) -> (usize, u64) {
        self.largest_record
    }

    /// The encoded bytes, header included (zero until `seal`).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The encoded bytes, to write.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// Gives the batch its place: writes the header and the checksum over it and the records.
    /// Every record gets arrival time `timestamp_ms`.
    pub fn seal(
        &mut self,
        base_seq: u64,
        generation: u64,
        timestamp_ms: u64,
        prev_checksum: u64,
    ) -> BatchHeader {
        assert_eq!(
            self.layout,
            Layout::Plain,
            "entries are sealed by seal_entry"
        );
        self.finish(
            base_seq,
            generation,
            (timestamp_ms, timestamp_ms),
            prev_checksum,
            None,
        )
    }

    /// `seal` for an entry a leader appends: the header, then `entry`.
    pub fn seal_entry(
        &mut self,
        base_seq: u64,
        generation: u64,
        timestamp_ms: u64,
        prev_checksum: u64,
        entry: EntryId,
    ) -> BatchHeader {
        assert!(
            matches!(self.layout, Layout::Entry | Layout::Control),
            "seal_entry seals new entries"
        );
        self.finish(
            base_seq,
            generation,
            (timestamp_ms, timestamp_ms),
            prev_checksum,
            Some(entry),
        )
    }

    /// Seals a received entry in a follower's log: its sequence numbers, times and entry id as
    /// the leader gave them, this log's generation and chain.
    pub fn seal_received(&mut self, generation: u64, prev_checksum: u64) -> BatchHeader {
        let Layout::Received(received) = self.layout else {
            panic!("seal_received seals received entries");
        };
        let times = (received.min_timestamp_ms, received.max_timestamp_ms);
        self.finish(
            received.base_seq,
            generation,
            times,
            prev_checksum,
            received.entry,
        )
    }

    fn finish(
        &mut self,
        base_seq: u64,
        generation: u64,
        (min_timestamp_ms, max_timestamp_ms): (u64, u64),
        prev_checksum: u64,
        entry: Option<EntryId>,
    ) -> BatchHeader {
        let control = self.is_control();
        assert!(
            self.record_count > 0 || control,
            "empty batches are rejected before encoding"
        );
        let flags = match (entry.is_some(), control) {
            (false, _) => 0,
            (true, false) => BATCH_FLAG_REPLICATED,
            (true, true) => BATCH_FLAG_REPLICATED | BATCH_FLAG_CONTROL,
        };
        let mut header = BatchHeader {
            checksum: 0,
            length: u32::try_from(self.bytes.len()).expect("batch length checked"),
            record_count: self.record_count,
            base_seq,
            generation,
            min_timestamp_ms,
            max_timestamp_ms,
            prev_checksum,
            flags,
            entry,
        };
        header.write(&mut self.bytes);
        header.checksum = xxh3_64(&self.bytes[CHECKSUM_FROM..]);
        self.bytes[8..16].copy_from_slice(&header.checksum.to_le_bytes());
        header
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::batch::tests::encode;

    #[test]
    fn a_batch_pushed_record_by_record_is_the_batch_of_those_records() {
        let records = [
            RecordIn {
                key: b"a",
                data: &[1u8; 100],
            },
            RecordIn {
                key: b"",
                data: b"",
            },
            RecordIn {
                key: b"seven77",
                data: &[2u8; 9],
            },
        ];
        let mut pushed = EncodedBatch::with_capacity(0);
        for record in &records {
            pushed.push(record.key, record.data);
        }
        assert_eq!(pushed.len_bytes(), encoded_batch_len(&records));
        assert_eq!(pushed.largest_record(), (0, 101));
        assert_eq!(pushed.oversized_key(), None);
        let header = pushed.seal(40, 3, 1_000, 77);
        let (encoded, expected) = encode(&records);
        assert_eq!((pushed.as_bytes(), header), (&encoded[..], expected));
    }

    #[test]
    fn sizes_a_record_header_cannot_hold_are_remembered_for_the_log_to_refuse() {
        let long_key = vec![b'k'; KEY_BYTES_MAX + 1];
        let mut batch = EncodedBatch::default();
        batch.push(b"fine", b"x");
        batch.push(&long_key, b"");
        batch.push(&long_key, b"yy");
        assert_eq!(batch.oversized_key(), Some((1, KEY_BYTES_MAX + 1)));
        assert_eq!(batch.largest_record(), (2, KEY_BYTES_MAX as u64 + 3));
    }
}
