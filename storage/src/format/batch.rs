//! Batches of records: header, record headers, checksum; and the entries of a replicated log
//! (format version 2): a batch whose header is followed by its entry id, or a control entry
//! with an opaque body in place of records.

use super::{FORMAT_VERSION, FormatError, align8, read_u16, read_u32, read_u64};
use xxhash_rust::xxh3::xxh3_64;

/// `SLB1`: start of every batch.
pub const BATCH_MAGIC: u32 = u32::from_le_bytes(*b"SLB1");
/// Size of a batch header.
pub const BATCH_HEADER_LEN: usize = 64;
/// Size of a record header.
pub const RECORD_HEADER_LEN: usize = 16;
/// Record flag: the data is an envelope its writer sealed (encrypted); the log stores and
/// returns it as it is, and checksums it like any data.
pub const RECORD_FLAG_ENCRYPTED: u16 = 1;
/// Every record flag this version knows; any other bit is corruption.
const RECORD_FLAGS_KNOWN: u16 = RECORD_FLAG_ENCRYPTED;
/// Longest key the record header can describe.
pub const KEY_BYTES_MAX: usize = u16::MAX as usize;
/// The checksum covers the batch from this offset to its end.
pub(super) const CHECKSUM_FROM: usize = 16;
/// Batch flag: the batch is an entry of a replicated log; its `EntryId` follows the header.
pub const BATCH_FLAG_REPLICATED: u16 = 1;
/// Batch flag (with `BATCH_FLAG_REPLICATED`): a control entry, no records but an opaque body
/// for the replication layer (a blank entry, a membership change); readers skip it.
pub const BATCH_FLAG_CONTROL: u16 = 2;
/// Every batch flag; any other bit is corruption.
const BATCH_FLAGS_KNOWN: u16 = BATCH_FLAG_REPLICATED | BATCH_FLAG_CONTROL;
/// Version of a batch with flags. Plain batches keep version 1, so single-node logs are
/// byte for byte what they were.
pub const FLAGGED_BATCH_VERSION: u16 = 2;
/// Size of the entry id after a replicated batch's header.
pub const ENTRY_ID_LEN: usize = 24;
/// The longest header: a replicated batch's, entry id included.
pub const BATCH_HEADER_MAX_LEN: usize = BATCH_HEADER_LEN + ENTRY_ID_LEN;
/// A control entry's body length and reserved word, before the body.
const CONTROL_PREFIX_LEN: usize = 8;

/// Where an entry stands in a replicated log: the Raft log id of the batch (term and leader
/// node of the leader that appended it first, and its index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EntryId {
    /// The term of the leader that created the entry.
    pub term: u64,
    /// That leader's node id.
    pub leader: u64,
    /// Position in the replicated log: consecutive, entry after entry.
    pub index: u64,
}

/// One record to append: borrowed key and data.
#[derive(Debug, Clone, Copy)]
pub struct RecordIn<'a> {
    /// Partition key bytes.
    pub key: &'a [u8],
    /// Payload bytes.
    pub data: &'a [u8],
}

/// One record read back: borrowed from the mapped segment (zero-copy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView<'a> {
    /// Sequence number within the shard log.
    pub seq: u64,
    /// Arrival time, ms since the Unix epoch.
    pub timestamp_ms: u64,
    /// Partition key bytes.
    pub key: &'a [u8],
    /// Payload bytes.
    pub data: &'a [u8],
    /// Its flags (`RECORD_FLAG_ENCRYPTED`).
    pub flags: u16,
}

/// The decoded fixed header of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// xxh3-64 of bytes 16..length.
    pub checksum: u64,
    /// Whole batch in bytes, a multiple of 8.
    pub length: u32,
    /// Records in the batch: at least 1, and 0 in a control entry.
    pub record_count: u32,
    /// Sequence number of the first record.
    pub base_seq: u64,
    /// Generation of the segment the batch was written into.
    pub generation: u64,
    /// Arrival time of the first record.
    pub min_timestamp_ms: u64,
    /// Arrival time of the last record.
    pub max_timestamp_ms: u64,
    /// Checksum of the previous batch in the segment (0 for the first).
    pub prev_checksum: u64,
    /// `BATCH_FLAG_REPLICATED`, `BATCH_FLAG_CONTROL`; 0 in a single-node log.
    pub flags: u16,
    /// A replicated batch's entry id.
    pub entry: Option<EntryId>,
}

const _: () = assert!(BATCH_HEADER_LEN == 64 && RECORD_HEADER_LEN == 16);

impl BatchHeader {
    /// Sequence number after the last record.
    pub fn end_seq(&self) -> u64 {
        self.base_seq + u64::from(self.record_count)
    }

    /// Bytes before the first record (or a control entry's body): the header, and the entry
    /// id of a replicated batch.
    pub fn header_len(&self) -> usize {
        if self.entry.is_some() {
            BATCH_HEADER_MAX_LEN
        } else {
            BATCH_HEADER_LEN
        }
    }

    /// A control entry of a replicated log (no records).
    pub fn is_control(&self) -> bool {
        self.flags & BATCH_FLAG_CONTROL != 0
    }

    /// Decodes and checks the fields that can be checked without the body. `bytes` starts at
    /// the batch and holds at least its header (`BATCH_HEADER_MAX_LEN` bytes for a
    /// replicated batch).
    pub fn parse(bytes: &[u8]) -> Result<BatchHeader, FormatError> {
        if bytes.len() < BATCH_HEADER_LEN {
            return Err(FormatError("batch header runs past the end of the data"));
        }
        if read_u32(bytes, 0) != BATCH_MAGIC {
            return Err(FormatError("bad batch magic"));
        }
        let flags = read_u16(bytes, 6);
        let entry = match (read_u16(bytes, 4), flags) {
            (FORMAT_VERSION, 0) => None,
            (FORMAT_VERSION, _) => return Err(FormatError("unknown batch flags")),
            (FLAGGED_BATCH_VERSION, flags)
                if flags & BATCH_FLAG_REPLICATED != 0 && flags & !BATCH_FLAGS_KNOWN == 0 =>
            {
                if bytes.len() < BATCH_HEADER_MAX_LEN {
                    return Err(FormatError("entry id runs past the end of the data"));
                }
                Some(EntryId {
                    term: read_u64(bytes, 64),
                    leader: read_u64(bytes, 72),
                    index: read_u64(bytes, 80),
                })
            }
            (FLAGGED_BATCH_VERSION, _) => return Err(FormatError("unknown batch flags")),
            _ => return Err(FormatError("unknown batch version")),
        };
        let header = BatchHeader {
            checksum: read_u64(bytes, 8),
            length: read_u32(bytes, 16),
            record_count: read_u32(bytes, 20),
            base_seq: read_u64(bytes, 24),
            generation: read_u64(bytes, 32),
            min_timestamp_ms: read_u64(bytes, 40),
            max_timestamp_ms: read_u64(bytes, 48),
            prev_checksum: read_u64(bytes, 56),
            flags,
            entry,
        };
        let length = header.length as usize;
        let shortest = header.header_len()
            + if header.is_control() {
                CONTROL_PREFIX_LEN
            } else {
                RECORD_HEADER_LEN
            };
        if length < shortest || !length.is_multiple_of(8) {
            return Err(FormatError("bad batch length"));
        }
        match (header.is_control(), header.record_count) {
            (false, 0) => return Err(FormatError("batch without records")),
            (true, 1..) => return Err(FormatError("control entry with records")),
            _ => {}
        }
        if header.min_timestamp_ms > header.max_timestamp_ms {
            return Err(FormatError("batch timestamps out of order"));
        }
        Ok(header)
    }

    pub(super) fn write(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&BATCH_MAGIC.to_le_bytes());
        let version = if self.flags == 0 {
            FORMAT_VERSION
        } else {
            FLAGGED_BATCH_VERSION
        };
        out[4..6].copy_from_slice(&version.to_le_bytes());
        out[6..8].copy_from_slice(&self.flags.to_le_bytes());
        out[8..16].copy_from_slice(&self.checksum.to_le_bytes());
        out[16..20].copy_from_slice(&self.length.to_le_bytes());
        out[20..24].copy_from_slice(&self.record_count.to_le_bytes());
        out[24..32].copy_from_slice(&self.base_seq.to_le_bytes());
        out[32..40].copy_from_slice(&self.generation.to_le_bytes());
        out[40..48].copy_from_slice(&self.min_timestamp_ms.to_le_bytes());
        out[48..56].copy_from_slice(&self.max_timestamp_ms.to_le_bytes());
        out[56..64].copy_from_slice(&self.prev_checksum.to_le_bytes());
        if let Some(entry) = self.entry {
            out[64..72].copy_from_slice(&entry.term.to_le_bytes());
            out[72..80].copy_from_slice(&entry.leader.to_le_bytes());
            out[80..88].copy_from_slice(&entry.index.to_le_bytes());
        }
    }
}

/// A control entry's body (`bytes` is the whole verified batch); `None` for bytes that are
/// not a control entry's.
pub fn control_body<'a>(bytes: &'a [u8], header: &BatchHeader) -> Option<&'a [u8]> {
    let at = header.header_len();
    if !header.is_control() || bytes.len() < at + CONTROL_PREFIX_LEN {
        return None;
    }
    let len = read_u32(bytes, at) as usize;
    bytes.get(at + CONTROL_PREFIX_LEN..(at + CONTROL_PREFIX_LEN).checked_add(len)?)
}

/// Bytes of a control entry with a body of `body_bytes`.
pub(super) fn control_entry_len(body_bytes: usize) -> usize {
    BATCH_HEADER_MAX_LEN + CONTROL_PREFIX_LEN + align8(body_bytes as u64) as usize
}

/// Checks a control entry's layout: its body length accounts for every byte, its time is one.
fn verify_control(bytes: &[u8], header: &BatchHeader) -> Result<(), FormatError> {
    let at = header.header_len();
    let body_len = read_u32(bytes, at) as usize;
    if read_u32(bytes, at + 4) != 0 {
        return Err(FormatError("control entry's reserved word is not zero"));
    }
    if control_entry_len(body_len) != bytes.len() {
        return Err(FormatError(
            "control entry's body length does not match the batch",
        ));
    }
    if header.min_timestamp_ms != header.max_timestamp_ms {
        return Err(FormatError("control entry with two times"));
    }
    Ok(())
}

/// Verifies a whole batch (`bytes` is exactly `header.length` long): checksum, then the record
/// walk must consume every byte and every record.
pub fn verify_batch(bytes: &[u8], header: &BatchHeader) -> Result<(), FormatError> {
    if bytes.len() != header.length as usize {
        return Err(FormatError("batch runs past the end of the data"));
    }
    if xxh3_64(&bytes[CHECKSUM_FROM..]) != header.checksum {
        return Err(FormatError("batch checksum mismatch"));
    }
    if header.is_control() {
        return verify_control(bytes, header);
    }
    let mut records = RecordIter::new(bytes, header);
    for _ in 0..header.record_count {
        match records.next() {
            Some(Ok(view)) if view.timestamp_ms <= header.max_timestamp_ms => {}
            Some(Ok(_)) => return Err(FormatError("record timestamp past the batch maximum")),
            Some(Err(e)) => return Err(e),
            None => return Err(FormatError("fewer records than the header says")),
        }
    }
    if records.pos != bytes.len() {
        return Err(FormatError("bytes left over after the last record"));
    }
    Ok(())
}

/// Walks the records of one batch.
#[derive(Debug, Clone)]
pub struct RecordIter<'a> {
    bytes: &'a [u8],
    pos: usize,
    remaining: u32,
    next_seq: u64,
    base_timestamp_ms: u64,
}

impl<'a> RecordIter<'a> {
    /// Records of the batch in `bytes` (the whole batch, header included).
    pub fn new(bytes: &'a [u8], header: &BatchHeader) -> Self {
        RecordIter {
            bytes,
            pos: header.header_len(),
            remaining: header.record_count,
            next_seq: header.base_seq,
            base_timestamp_ms: header.min_timestamp_ms,
        }
    }

    fn decode_next(&mut self) -> Result<RecordView<'a>, FormatError> {
        let at = self.pos;
        if at + RECORD_HEADER_LEN > self.bytes.len() {
            return Err(FormatError("record header runs past the batch"));
        }
        let data_len = read_u32(self.bytes, at) as usize;
        let key_len = read_u16(self.bytes, at + 4) as usize;
        let flags = read_u16(self.bytes, at + 6);
        if flags & !RECORD_FLAGS_KNOWN != 0 || read_u32(self.bytes, at + 12) != 0 {
            return Err(FormatError("unknown record flags"));
        }
        let timestamp_ms = self
            .base_timestamp_ms
            .checked_add(u64::from(read_u32(self.bytes, at + 8)))
            .ok_or(FormatError("record timestamp out of range"))?;
        let key_at = at + RECORD_HEADER_LEN;
        let end = key_at + align8((key_len + data_len) as u64) as usize;
        if end > self.bytes.len() {
            return Err(FormatError("record runs past the batch"));
        }
        let view = RecordView {
            seq: self.next_seq,
            timestamp_ms,
            key: &self.bytes[key_at..key_at + key_len],
            data: &self.bytes[key_at + key_len..key_at + key_len + data_len],
            flags,
        };
        self.pos = end;
        self.next_seq += 1;
        Ok(view)
    }
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<RecordView<'a>, FormatError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        Some(self.decode_next())
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::format::{EncodedBatch, encode_batch, encoded_batch_len};

    pub(crate) fn encode(records: &[RecordIn<'_>]) -> (Vec<u8>, BatchHeader) {
        let mut buf = Vec::new();
        let header = encode_batch(&mut buf, records, 40, 3, 1_000, 77);
        (buf, header)
    }

    #[test]
    fn encoded_batch_round_trips_every_record() {
        let records = [
            RecordIn {
                key: b"k1",
                data: b"hello",
            },
            RecordIn {
                key: b"",
                data: b"",
            },
            RecordIn {
                key: b"key-three",
                data: &[0u8, 255, 7, 0, 1],
            },
        ];
        let (buf, header) = encode(&records);
        assert_eq!(buf.len() as u64, encoded_batch_len(&records));
        assert_eq!(buf.len() % 8, 0);
        let parsed = BatchHeader::parse(&buf).unwrap();
        assert_eq!(parsed, header);
        assert_eq!(
            (parsed.base_seq, parsed.end_seq(), parsed.prev_checksum),
            (40, 43, 77)
        );
        verify_batch(&buf, &parsed).unwrap();
        let views: Vec<_> = RecordIter::new(&buf, &parsed).map(Result::unwrap).collect();
        assert_eq!(views.len(), 3);
        for (i, (view, input)) in views.iter().zip(&records).enumerate() {
            assert_eq!(view.seq, 40 + i as u64);
            assert_eq!(view.timestamp_ms, 1_000);
            assert_eq!((view.key, view.data), (input.key, input.data));
        }
    }

    #[test]
    fn the_encrypted_flag_travels_with_its_record_and_unknown_flags_are_corruption() {
        let mut batch = EncodedBatch::with_capacity(0);
        batch.push(b"a", b"plain");
        batch.push_flagged(b"b", b"sealed", RECORD_FLAG_ENCRYPTED);
        let header = batch.seal(1, 1, 5, 0);
        let bytes = batch.as_bytes().to_vec();
        verify_batch(&bytes, &header).unwrap();
        let flags: Vec<u16> = RecordIter::new(&bytes, &header)
            .map(|r| r.unwrap().flags)
            .collect();
        assert_eq!(flags, [0, RECORD_FLAG_ENCRYPTED]);
        // Any other bit, with a checksum that matches: still refused.
        let mut unknown = EncodedBatch::with_capacity(0);
        unknown.push_flagged(b"c", b"x", 2);
        let header = unknown.seal(1, 1, 5, 0);
        let bytes = unknown.as_bytes().to_vec();
        assert!(verify_batch(&bytes, &header).is_err());
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let records = [RecordIn {
            key: b"pk",
            data: b"some payload bytes",
        }];
        let (buf, _) = encode(&records);
        assert_every_bit_flip_detected(&buf);
    }

    /// Flips each bit of a valid batch in turn: parse or verification must refuse each one.
    pub(crate) fn assert_every_bit_flip_detected(buf: &[u8]) {
        for byte in 0..buf.len() {
            for bit in 0..8 {
                let mut damaged = buf.to_vec();
                damaged[byte] ^= 1 << bit;
                let ok = BatchHeader::parse(&damaged)
                    .ok()
                    .filter(|h| h.length as usize == damaged.len())
                    .map(|h| verify_batch(&damaged, &h).is_ok())
                    .unwrap_or(false);
                assert!(!ok, "flip of bit {bit} in byte {byte} went unnoticed");
            }
        }
    }

    #[test]
    fn truncated_batch_is_rejected() {
        let (buf, header) = encode(&[RecordIn {
            key: b"pk",
            data: &[9u8; 100],
        }]);
        assert!(verify_batch(&buf[..buf.len() - 8], &header).is_err());
        assert!(BatchHeader::parse(&buf[..BATCH_HEADER_LEN - 1]).is_err());
    }
}
