//! The rkyv-encoded footer written when a segment is sealed.

use super::FormatError;
use rkyv::rancor;
use xxhash_rust::xxh3::xxh3_64;

/// One sparse-index entry: the batch at `pos` starts with record `seq`, which arrived at
/// `timestamp_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct IndexEntry {
    /// First sequence number of the batch.
    pub seq: u64,
    /// Arrival time of the batch's first record.
    pub timestamp_ms: u64,
    /// Byte offset of the batch in the segment.
    pub pos: u64,
}

impl IndexEntry {
    /// Bytes one entry takes in the archived footer.
    pub const ARCHIVED_BYTES: u64 = 24;
}

/// Everything needed to open a sealed segment without scanning it.
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct SegmentFooter {
    /// Generation of the segment.
    pub generation: u64,
    /// First record's sequence.
    pub base_seq: u64,
    /// Sequence after the last record.
    pub end_seq: u64,
    /// End of the batch data.
    pub data_end: u64,
    /// Arrival time of the first record (`u64::MAX` if none).
    pub min_timestamp_ms: u64,
    /// Arrival time of the last record (0 if none).
    pub max_timestamp_ms: u64,
    /// Checksum of the last batch.
    pub last_checksum: u64,
    /// The sparse index.
    pub index: Vec<IndexEntry>,
}

/// Encodes a footer; returns the bytes and their checksum.
pub fn encode_footer(footer: &SegmentFooter) -> (Vec<u8>, u64) {
    let bytes = rkyv::to_bytes::<rancor::Error>(footer)
        .expect("serializing plain integers cannot fail")
        .into_vec();
    let checksum = xxh3_64(&bytes);
    (bytes, checksum)
}

/// Decodes a footer after checking its checksum and validating the archive.
pub fn decode_footer(bytes: &[u8], checksum: u64) -> Result<SegmentFooter, FormatError> {
    if xxh3_64(bytes) != checksum {
        return Err(FormatError("footer checksum mismatch"));
    }
    // The mapping gives no alignment guarantee for the footer: copy it into an aligned buffer.
    let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(bytes.len());
    aligned.extend_from_slice(bytes);
    rkyv::from_bytes::<SegmentFooter, rancor::Error>(&aligned)
        .map_err(|_| FormatError("footer does not validate"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn footer_round_trips_and_detects_damage() {
        let footer = SegmentFooter {
            generation: 4,
            base_seq: 100,
            end_seq: 250,
            data_end: 70_000,
            min_timestamp_ms: 1,
            max_timestamp_ms: 9,
            last_checksum: 42,
            index: (0..50)
                .map(|i| IndexEntry {
                    seq: 100 + i,
                    timestamp_ms: 1,
                    pos: 4096 * i,
                })
                .collect(),
        };
        let (bytes, checksum) = encode_footer(&footer);
        assert!(bytes.len() as u64 <= super::super::seal_reserve_bytes(50));
        assert_eq!(decode_footer(&bytes, checksum), Ok(footer));
        let mut damaged = bytes.clone();
        damaged[3] ^= 4;
        assert!(decode_footer(&damaged, checksum).is_err());
    }
}
