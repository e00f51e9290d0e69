//! The on-disk format: pure encode/decode, no I/O. The byte layout is drawn in
//! docs/design/segment-format.md.

mod batch;
mod encoded;
#[cfg(test)]
mod entry_tests;
mod footer;
mod segment_header;
mod state;

pub use batch::{
    BATCH_FLAG_CONTROL, BATCH_FLAG_REPLICATED, BATCH_HEADER_LEN, BATCH_HEADER_MAX_LEN, BATCH_MAGIC,
    BatchHeader, ENTRY_ID_LEN, EntryId, FLAGGED_BATCH_VERSION, KEY_BYTES_MAX,
    RECORD_FLAG_ENCRYPTED, RECORD_HEADER_LEN, RecordIn, RecordIter, RecordView, control_body,
    verify_batch,
};
pub use encoded::{EncodedBatch, encode_batch, encoded_batch_len};
pub use footer::{IndexEntry, SegmentFooter, decode_footer, encode_footer};
pub use segment_header::{
    SEGMENT_DATA_START, SEGMENT_HEADER_LEN, SegmentHeader, SegmentState, TRAILER_LEN, Trailer,
};
pub use state::{
    STATE_BYTES_MAX, STATE_SLOT_BYTES, decode_state, encode_state_slot, state_slot_offset,
};

/// Version written into every header; readers refuse any other.
pub const FORMAT_VERSION: u16 = 1;

/// Why bytes failed validation. The caller adds the file and offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FormatError(pub &'static str);

/// Rounds up to the next multiple of 8.
pub const fn align8(n: u64) -> u64 {
    (n + 7) & !7
}

/// Bytes to reserve for a seal whose index holds at most `index_entries_max` entries.
pub fn seal_reserve_bytes(index_entries_max: u64) -> u64 {
    // rkyv lays out each entry as three u64s; the fixed part of the footer and its root
    // pointer fit well within the extra 512 bytes.
    let footer = index_entries_max * IndexEntry::ARCHIVED_BYTES + 512;
    align8(footer) + TRAILER_LEN as u64
}

pub(crate) fn read_u16(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

pub(crate) fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

pub(crate) fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}
