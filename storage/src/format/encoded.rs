//! Encoding batches: the records in their segment layout, then the header a log gives them.

use super::align8;
use super::batch::{
    BATCH_HEADER_LEN, BatchHeader, CHECKSUM_FROM, KEY_BYTES_MAX, RECORD_HEADER_LEN, RecordIn,
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
    record_count: u32,
    /// The first record whose key does not fit a record header: (index, key bytes).
    oversized_key: Option<(usize, usize)>,
    /// The largest record (key + data): (index, bytes).
    largest_record: (usize, u64),
}

impl Default for EncodedBatch {
    fn default() -> Self {
        EncodedBatch::with_capacity(0)
    }
}

impl EncodedBatch {
    /// An empty batch with room for `bytes` of encoded records (see `encoded_record_len`).
    pub fn with_capacity(bytes: usize) -> EncodedBatch {
        let mut buf = Vec::with_capacity(BATCH_HEADER_LEN + bytes);
        buf.resize(BATCH_HEADER_LEN, 0);
        EncodedBatch {
            bytes: buf,
            record_count: 0,
            oversized_key: None,
            largest_record: (0, 0),
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
        assert!(
            self.record_count > 0,
            "empty batches are rejected before encoding"
        );
        let mut header = BatchHeader {
            checksum: 0,
            length: u32::try_from(self.bytes.len()).expect("batch length checked"),
            record_count: self.record_count,
            base_seq,
            generation,
            min_timestamp_ms: timestamp_ms,
            max_timestamp_ms: timestamp_ms,
            prev_checksum,
        };
        header.write(&mut self.bytes[..BATCH_HEADER_LEN]);
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
