//! The metadata log's bytes: a 16-byte file header, then one frame per entry,
//! `[len u32][magic u32 "SLME"][xxh3-64 of payload u64][payload, zero-padded to 8]`
//! (docs/design/segment-format.md, "Metadata log"). Pure: no I/O.

use crate::format::{FORMAT_VERSION, align8, read_u32, read_u64};
use xxhash_rust::xxh3::xxh3_64;

pub(super) const FILE_MAGIC: &[u8; 8] = b"SLUICEMT";
pub(super) const FILE_HEADER_LEN: usize = 16;
const FRAME_MAGIC: u32 = u32::from_le_bytes(*b"SLME");
pub(super) const FRAME_HEADER_LEN: usize = 16;
/// Frames start at multiples of this from the start of the file: the header and every frame
/// are multiples of it long.
pub(super) const FRAME_ALIGN: usize = 8;
/// Largest entry accepted; bounds replay's allocations on a damaged length field.
pub(super) const META_ENTRY_BYTES_MAX: usize = 16 * 1024 * 1024;

const _: () = assert!(FILE_HEADER_LEN.is_multiple_of(FRAME_ALIGN));
const _: () = assert!(FRAME_HEADER_LEN.is_multiple_of(FRAME_ALIGN));

/// The file header: magic, format version, reserved zeroes.
pub(super) fn file_header() -> [u8; FILE_HEADER_LEN] {
    let mut header = [0u8; FILE_HEADER_LEN];
    header[..8].copy_from_slice(FILE_MAGIC);
    header[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    header
}

/// True when `bytes` start with a file header (its magic; the version is not checked).
pub(super) fn header_is_valid(bytes: &[u8]) -> bool {
    bytes.len() >= FILE_HEADER_LEN && &bytes[..FILE_MAGIC.len()] == FILE_MAGIC
}

/// True for a file whose header never fully reached the disk (a crash while it was created):
/// empty, all zeroes, or shorter than a header and a prefix of the magic.
pub(super) fn header_unwritten(bytes: &[u8]) -> bool {
    let short = bytes.len() < FILE_HEADER_LEN;
    let magic_prefix = FILE_MAGIC.starts_with(&bytes[..bytes.len().min(FILE_MAGIC.len())]);
    bytes.iter().all(|&b| b == 0) || (short && magic_prefix)
}

/// The frame of one entry's payload.
pub(super) fn encode_frame(payload: &[u8]) -> Vec<u8> {
    assert!(
        payload.len() <= META_ENTRY_BYTES_MAX,
        "metadata entries are small"
    );
    let len = u32::try_from(payload.len()).expect("bounded above");
    let mut frame = Vec::with_capacity(FRAME_HEADER_LEN + payload.len() + FRAME_ALIGN);
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(&FRAME_MAGIC.to_le_bytes());
    frame.extend_from_slice(&xxh3_64(payload).to_le_bytes());
    frame.extend_from_slice(payload);
    frame.resize(FRAME_HEADER_LEN + align8(payload.len() as u64) as usize, 0);
    frame
}

/// The end of the whole frame at `pos`, if one starts there: the magic, a length within the
/// limit and the file, and a checksum that holds over the payload. Whether the payload
/// decodes is the caller's question.
pub(super) fn whole_frame_end(bytes: &[u8], pos: usize) -> Option<usize> {
    if pos + FRAME_HEADER_LEN > bytes.len() || read_u32(bytes, pos + 4) != FRAME_MAGIC {
        return None;
    }
    let len = read_u32(bytes, pos) as usize;
    let end = pos + FRAME_HEADER_LEN + align8(len as u64) as usize;
    if len > META_ENTRY_BYTES_MAX || end > bytes.len() {
        return None;
    }
    (xxh3_64(payload(bytes, pos)) == read_u64(bytes, pos + 8)).then_some(end)
}

/// The payload of the frame at `pos` (whose header is within `bytes`).
pub(super) fn payload(bytes: &[u8], pos: usize) -> &[u8] {
    let len = read_u32(bytes, pos) as usize;
    let start = pos + FRAME_HEADER_LEN;
    &bytes[start..(start + len).min(bytes.len())]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_is_whole_only_with_every_byte_of_its_header_and_payload_intact() {
        let mut file = file_header().to_vec();
        file.extend_from_slice(&encode_frame(b"entry payload"));
        let end = file.len();
        assert_eq!(whole_frame_end(&file, FILE_HEADER_LEN), Some(end));
        for i in FILE_HEADER_LEN..FILE_HEADER_LEN + FRAME_HEADER_LEN + 13 {
            let mut damaged = file.clone();
            damaged[i] ^= 0x01;
            assert_eq!(whole_frame_end(&damaged, FILE_HEADER_LEN), None, "byte {i}");
        }
        assert_eq!(whole_frame_end(&file[..end - 1], FILE_HEADER_LEN), None);
    }
}
