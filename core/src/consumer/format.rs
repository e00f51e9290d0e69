//! The consumers log's byte format (docs/design/checkpoints.md): a file header, then frames of
//! one position each. Pure: no I/O, so it is tested alone.

use crate::limits::CONSUMER_NAME_BYTES_MAX;
use crate::seqnum::SequenceNumber;
use xxhash_rust::xxh3::xxh3_64;

/// The file's first bytes.
pub(crate) const FILE_MAGIC: &[u8; 8] = b"SLUICECK";
/// The format version in the header.
pub(crate) const FILE_VERSION: u16 = 1;
/// Bytes of the file header: magic, version, zero padding.
pub(crate) const FILE_HEADER_LEN: usize = 16;
const FRAME_MAGIC: u32 = u32::from_le_bytes(*b"SLCK");
/// Bytes of a frame header: payload length, magic, checksum.
const FRAME_HEADER_LEN: usize = 16;
/// A position entry.
const KIND_POSITION: u8 = 1;
/// Kind, name length, shard index and sequence number around the name.
const POSITION_FIXED_BYTES: usize = 1 + 1 + 4 + 16;
/// The largest payload a frame holds; a larger length field is damage.
const PAYLOAD_BYTES_MAX: usize = POSITION_FIXED_BYTES + CONSUMER_NAME_BYTES_MAX;

const _: () = assert!(CONSUMER_NAME_BYTES_MAX <= u8::MAX as usize);

/// One entry: consumer `consumer` has processed shard `shard_index` up to `sequence_number`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PositionEntry {
    pub(crate) consumer: String,
    pub(crate) shard_index: u32,
    pub(crate) sequence_number: SequenceNumber,
}

/// The file header.
pub(crate) fn file_header() -> [u8; FILE_HEADER_LEN] {
    let mut header = [0u8; FILE_HEADER_LEN];
    header[..8].copy_from_slice(FILE_MAGIC);
    header[8..10].copy_from_slice(&FILE_VERSION.to_le_bytes());
    header
}

/// Appends the frame of `entry` to `out`.
pub(crate) fn encode(entry: &PositionEntry, out: &mut Vec<u8>) {
    let name = entry.consumer.as_bytes();
    assert!(
        !name.is_empty() && name.len() <= CONSUMER_NAME_BYTES_MAX,
        "consumer names are checked before they are written"
    );
    let mut payload = Vec::with_capacity(POSITION_FIXED_BYTES + name.len());
    payload.push(KIND_POSITION);
    payload.push(name.len() as u8);
    payload.extend_from_slice(name);
    payload.extend_from_slice(&entry.shard_index.to_le_bytes());
    payload.extend_from_slice(&entry.sequence_number.0.to_le_bytes());
    let start = out.len();
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&FRAME_MAGIC.to_le_bytes());
    out.extend_from_slice(&xxh3_64(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    out.resize(
        start + FRAME_HEADER_LEN + payload.len().next_multiple_of(8),
        0,
    );
}

/// Why a file is not a consumers log at all (damage after the header is a cut, not this).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeaderError {
    /// Wrong magic or too short.
    NotAConsumersLog,
    /// A version this build does not read.
    Version(u16),
}

/// Decodes the frames after the header up to the first torn or damaged one: the entries in
/// file order and the length of the valid prefix (where appends continue).
pub(crate) fn decode(bytes: &[u8]) -> Result<(Vec<PositionEntry>, usize), HeaderError> {
    if bytes.len() < FILE_HEADER_LEN || &bytes[..8] != FILE_MAGIC {
        return Err(HeaderError::NotAConsumersLog);
    }
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    if version != FILE_VERSION {
        return Err(HeaderError::Version(version));
    }
    let mut entries = Vec::new();
    let mut at = FILE_HEADER_LEN;
    while let Some((entry, len)) = decode_frame(&bytes[at..]) {
        entries.push(entry);
        at += len;
    }
    Ok((entries, at))
}

/// One frame at the start of `bytes` and its length, or `None` if it is torn or damaged.
fn decode_frame(bytes: &[u8]) -> Option<(PositionEntry, usize)> {
    let header = bytes.get(..FRAME_HEADER_LEN)?;
    let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
    let magic = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
    let checksum = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
    if magic != FRAME_MAGIC || len > PAYLOAD_BYTES_MAX {
        return None;
    }
    let payload = bytes.get(FRAME_HEADER_LEN..FRAME_HEADER_LEN + len)?;
    let frame_len = FRAME_HEADER_LEN + len.next_multiple_of(8);
    if bytes.len() < frame_len || xxh3_64(payload) != checksum {
        return None;
    }
    Some((decode_position(payload)?, frame_len))
}

fn decode_position(payload: &[u8]) -> Option<PositionEntry> {
    let (&kind, rest) = payload.split_first()?;
    let (&name_len, rest) = rest.split_first()?;
    let name_len = name_len as usize;
    if kind != KIND_POSITION || rest.len() != name_len + 4 + 16 {
        return None;
    }
    let consumer = std::str::from_utf8(&rest[..name_len]).ok()?.to_owned();
    let shard = &rest[name_len..name_len + 4];
    let seq = &rest[name_len + 4..];
    Some(PositionEntry {
        consumer,
        shard_index: u32::from_le_bytes(shard.try_into().expect("4 bytes")),
        sequence_number: SequenceNumber(u128::from_le_bytes(seq.try_into().expect("16 bytes"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(consumer: &str, shard_index: u32, log_seq: u64) -> PositionEntry {
        PositionEntry {
            consumer: consumer.to_owned(),
            shard_index,
            sequence_number: SequenceNumber::new(shard_index, log_seq),
        }
    }

    fn file(entries: &[PositionEntry]) -> Vec<u8> {
        let mut bytes = file_header().to_vec();
        for e in entries {
            encode(e, &mut bytes);
        }
        bytes
    }

    #[test]
    fn entries_round_trip_in_order_and_frames_are_8_byte_aligned() {
        let entries = [entry("billing", 0, 41), entry(&"x".repeat(128), 7, 0)];
        let bytes = file(&entries);
        assert_eq!(bytes.len() % 8, 0);
        assert_eq!(decode(&bytes), Ok((entries.to_vec(), bytes.len())));
    }

    #[test]
    fn the_header_and_first_frame_are_pinned_byte_for_byte() {
        let bytes = file(&[entry("ab", 1, 0)]);
        let mut expected = b"SLUICECK\x01\x00\0\0\0\0\0\0".to_vec();
        // payload: kind 1, name length 2, "ab", shard 1, sequence number 1 << 64 | 1 (24
        // bytes: no padding).
        let mut payload = vec![1, 2, b'a', b'b', 1, 0, 0, 0];
        payload.extend([1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
        expected.extend(24u32.to_le_bytes());
        expected.extend(b"SLCK");
        expected.extend(xxh3_64(&payload).to_le_bytes());
        expected.extend(&payload);
        assert_eq!(bytes, expected);
    }

    #[test]
    fn a_torn_or_flipped_frame_ends_the_valid_prefix_there() {
        let entries = [entry("a", 0, 1), entry("a", 0, 2), entry("b", 1, 3)];
        let bytes = file(&entries);
        let second = decode(&file(&entries[..1])).unwrap().1;
        let third = decode(&file(&entries[..2])).unwrap().1;
        for cut in third..bytes.len() {
            assert_eq!(
                decode(&bytes[..cut]).unwrap(),
                (entries[..2].to_vec(), third)
            );
        }
        for at in second..third {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x10;
            let (kept, len) = decode(&flipped).unwrap();
            // The 23-byte payload has one byte of padding, which no checksum covers; a flip
            // anywhere else cuts the log there.
            let padding = at == third - 1;
            if !padding {
                assert_eq!((kept, len), (entries[..1].to_vec(), second), "flip at {at}");
            }
        }
    }

    #[test]
    fn a_file_that_is_not_a_consumers_log_is_refused() {
        assert_eq!(
            decode(b"SLUICEMT\x01\0"),
            Err(HeaderError::NotAConsumersLog)
        );
        let mut bytes = file(&[]);
        bytes[8] = 9;
        assert_eq!(decode(&bytes), Err(HeaderError::Version(9)));
    }
}
