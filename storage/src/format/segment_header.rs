//! The segment header (offset 0) and the seal trailer (last 64 bytes).

use super::{FORMAT_VERSION, FormatError, read_u16, read_u64};
use xxhash_rust::xxh3::xxh3_64;

/// Size of the segment header.
pub const SEGMENT_HEADER_LEN: usize = 64;
/// Batches start here, leaving the header its own page.
pub const SEGMENT_DATA_START: u64 = 4096;
/// Size of the seal trailer at the end of a sealed segment.
pub const TRAILER_LEN: usize = 64;

const SEGMENT_MAGIC: u64 = u64::from_le_bytes(*b"SLUICSEG");
const TRAILER_MAGIC: u64 = u64::from_le_bytes(*b"SLUICEND");

/// Whether a segment holds data or waits to be reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentState {
    /// Holds records from `base_seq` on.
    Live,
    /// Retired by retention; `base_seq` is the sequence after its last record. Every live
    /// segment ending at or before it was retired too.
    Free,
    /// Released by recovery (empty, or after a cut); `base_seq` is only a floor for the
    /// sequence numbers the log may hand out next.
    Released,
}

/// The first 64 bytes of a segment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Live or free.
    pub state: SegmentState,
    /// Unique per (re)initialisation of a segment in this log.
    pub generation: u64,
    /// Live: first record's sequence; free: the sequence after the retired records.
    pub base_seq: u64,
    /// File size in bytes.
    pub segment_size: u64,
    /// Wall-clock time of initialisation.
    pub created_ms: u64,
    /// Live: where the log's data ended when this segment was started; equal to `base_seq`
    /// except for the first segment after recovery cut the log, where numbering jumps past
    /// the lost records.
    pub follows_seq: u64,
}

impl SegmentHeader {
    /// Encodes the header.
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        let mut out = [0u8; SEGMENT_HEADER_LEN];
        let state: u16 = match self.state {
            SegmentState::Live => 1,
            SegmentState::Free => 2,
            SegmentState::Released => 3,
        };
        out[0..8].copy_from_slice(&SEGMENT_MAGIC.to_le_bytes());
        out[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out[10..12].copy_from_slice(&state.to_le_bytes());
        out[16..24].copy_from_slice(&self.generation.to_le_bytes());
        out[24..32].copy_from_slice(&self.base_seq.to_le_bytes());
        out[32..40].copy_from_slice(&self.segment_size.to_le_bytes());
        out[40..48].copy_from_slice(&self.created_ms.to_le_bytes());
        out[48..56].copy_from_slice(&self.follows_seq.to_le_bytes());
        let checksum = xxh3_64(&out[..56]);
        out[56..64].copy_from_slice(&checksum.to_le_bytes());
        out
    }

    /// Decodes and validates a header.
    pub fn decode(bytes: &[u8]) -> Result<SegmentHeader, FormatError> {
        if bytes.len() < SEGMENT_HEADER_LEN {
            return Err(FormatError("segment header truncated"));
        }
        if read_u64(bytes, 0) != SEGMENT_MAGIC {
            return Err(FormatError("bad segment magic"));
        }
        if xxh3_64(&bytes[..56]) != read_u64(bytes, 56) {
            return Err(FormatError("segment header checksum mismatch"));
        }
        if read_u16(bytes, 8) != FORMAT_VERSION {
            return Err(FormatError("unknown segment version"));
        }
        let state = match read_u16(bytes, 10) {
            1 => SegmentState::Live,
            2 => SegmentState::Free,
            3 => SegmentState::Released,
            _ => return Err(FormatError("unknown segment state")),
        };
        Ok(SegmentHeader {
            state,
            generation: read_u64(bytes, 16),
            base_seq: read_u64(bytes, 24),
            segment_size: read_u64(bytes, 32),
            created_ms: read_u64(bytes, 40),
            follows_seq: read_u64(bytes, 48),
        })
    }
}

/// The last 64 bytes of a sealed segment: where its footer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trailer {
    /// Must equal the segment header's generation, or the trailer is stale.
    pub generation: u64,
    /// Offset of the footer, which is also the end of the batch data.
    pub footer_pos: u64,
    /// Length of the footer.
    pub footer_len: u64,
    /// xxh3-64 of the footer bytes.
    pub footer_checksum: u64,
    /// Sequence after the segment's last record.
    pub end_seq: u64,
}

impl Trailer {
    /// Encodes the trailer.
    pub fn encode(&self) -> [u8; TRAILER_LEN] {
        let mut out = [0u8; TRAILER_LEN];
        out[0..8].copy_from_slice(&TRAILER_MAGIC.to_le_bytes());
        out[8..16].copy_from_slice(&self.generation.to_le_bytes());
        out[16..24].copy_from_slice(&self.footer_pos.to_le_bytes());
        out[24..32].copy_from_slice(&self.footer_len.to_le_bytes());
        out[32..40].copy_from_slice(&self.footer_checksum.to_le_bytes());
        out[40..48].copy_from_slice(&self.end_seq.to_le_bytes());
        let checksum = xxh3_64(&out[..56]);
        out[56..64].copy_from_slice(&checksum.to_le_bytes());
        out
    }

    /// Decodes and validates a trailer.
    pub fn decode(bytes: &[u8]) -> Result<Trailer, FormatError> {
        if bytes.len() < TRAILER_LEN {
            return Err(FormatError("trailer truncated"));
        }
        if read_u64(bytes, 0) != TRAILER_MAGIC {
            return Err(FormatError("no trailer"));
        }
        if xxh3_64(&bytes[..56]) != read_u64(bytes, 56) || read_u64(bytes, 48) != 0 {
            return Err(FormatError("trailer checksum mismatch"));
        }
        Ok(Trailer {
            generation: read_u64(bytes, 8),
            footer_pos: read_u64(bytes, 16),
            footer_len: read_u64(bytes, 24),
            footer_checksum: read_u64(bytes, 32),
            end_seq: read_u64(bytes, 40),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_rejects_damage() {
        let header = SegmentHeader {
            state: SegmentState::Free,
            generation: 9,
            base_seq: 1234,
            segment_size: 1 << 20,
            created_ms: 55,
            follows_seq: 1200,
        };
        let bytes = header.encode();
        assert_eq!(SegmentHeader::decode(&bytes), Ok(header));
        for i in 0..bytes.len() {
            let mut damaged = bytes;
            damaged[i] ^= 0x10;
            assert!(SegmentHeader::decode(&damaged).is_err(), "byte {i}");
        }
        assert!(SegmentHeader::decode(&[0u8; 64]).is_err());
    }

    #[test]
    fn trailer_round_trips_and_rejects_damage() {
        let trailer = Trailer {
            generation: 3,
            footer_pos: 8192,
            footer_len: 200,
            footer_checksum: 1,
            end_seq: 7,
        };
        let bytes = trailer.encode();
        assert_eq!(Trailer::decode(&bytes), Ok(trailer));
        let mut damaged = bytes;
        damaged[20] ^= 1;
        assert!(Trailer::decode(&damaged).is_err());
    }
}
