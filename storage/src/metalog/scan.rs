//! What replay makes of a metadata log file: its valid frames, and whether the bytes that are
//! not valid frames are a torn tail (cut off) or damage before the end (refused). Pure: bytes
//! in, verdict out.
//!
//! The rule: every entry is fdatasync'd before it is acknowledged and before the next one is
//! written, so a crash or power loss can leave only the last frame incomplete, with nothing
//! after it. Bytes that are not a valid frame are therefore a torn tail only when no whole
//! frame (magic and checksum right) starts at or after them; otherwise they are damage to
//! entries that were acknowledged, and cutting there would drop every later entry.

use super::frame::{FILE_HEADER_LEN, FRAME_ALIGN, header_is_valid, payload, whole_frame_end};
use std::ops::Range;

/// A file's frames, sorted into valid ones, damage and a torn tail.
#[derive(Debug)]
pub(super) struct Scanned<T> {
    /// The decoded entries of the valid frames, in file order.
    pub(super) entries: Vec<T>,
    /// Byte ranges of the valid frames, in file order.
    pub(super) frames: Vec<Range<usize>>,
    /// The file starts with its header.
    pub(super) header_ok: bool,
    /// Stretches that are not valid frames and have a whole frame after them, or hold one
    /// whose entry does not decode (written whole, so never torn): damage.
    pub(super) damaged: Vec<Range<usize>>,
    /// Where the torn tail begins (bytes after the last valid frame, with no whole frame
    /// among them), if the file has one.
    pub(super) torn_from: Option<usize>,
}

impl<T> Scanned<T> {
    /// Valid frames that start at or after `pos`.
    pub(super) fn frames_from(&self, pos: usize) -> usize {
        self.frames.iter().filter(|f| f.start >= pos).count()
    }
}

/// Walks the frames from the header on. Where no valid frame starts, a stretch of bad bytes
/// begins; it ends where the next valid frame starts (looked for at every frame-aligned
/// position), and is damage if a whole frame lies in or after it.
pub(super) fn scan<T>(bytes: &[u8], decode: impl Fn(&[u8]) -> Option<T>) -> Scanned<T> {
    let header_ok = header_is_valid(bytes);
    let mut scanned = Scanned {
        entries: Vec::new(),
        frames: Vec::new(),
        header_ok,
        damaged: Vec::new(),
        torn_from: None,
    };
    // The open bad stretch: where it began, and whether a whole frame lies in it.
    let mut bad: Option<(usize, bool)> = (!header_ok).then_some((0, false));
    let mut pos = FILE_HEADER_LEN;
    while pos < bytes.len() {
        let Some(end) = whole_frame_end(bytes, pos) else {
            bad.get_or_insert((pos, false));
            pos += FRAME_ALIGN;
            continue;
        };
        match decode(payload(bytes, pos)) {
            Some(entry) => {
                if let Some((from, _)) = bad.take() {
                    scanned.damaged.push(from..pos);
                }
                scanned.entries.push(entry);
                scanned.frames.push(pos..end);
            }
            None => bad.get_or_insert((pos, true)).1 = true,
        }
        pos = end;
    }
    match bad {
        Some((from, true)) => scanned.damaged.push(from..bytes.len()),
        Some((from, false)) => scanned.torn_from = Some(from),
        None => {}
    }
    scanned
}

#[cfg(test)]
mod tests {
    use super::super::frame::{encode_frame, file_header};
    use super::*;

    /// A file of frames holding one byte each, `0..n`; returns it and the frames' offsets.
    fn file(n: u8) -> (Vec<u8>, Vec<usize>) {
        let mut bytes = file_header().to_vec();
        let mut offsets = Vec::new();
        for i in 0..n {
            offsets.push(bytes.len());
            bytes.extend_from_slice(&encode_frame(&[i]));
        }
        (bytes, offsets)
    }

    fn decode_byte(payload: &[u8]) -> Option<u8> {
        (payload.len() == 1 && payload[0] < 100).then_some(payload[0])
    }

    #[test]
    fn an_intact_file_is_all_valid_frames() {
        let (bytes, _) = file(4);
        let scanned = scan(&bytes, decode_byte);
        assert_eq!(scanned.entries, vec![0, 1, 2, 3]);
        assert!(scanned.damaged.is_empty());
        assert_eq!(scanned.torn_from, None);
    }

    #[test]
    fn a_bad_last_frame_is_a_torn_tail() {
        let (mut bytes, offsets) = file(4);
        bytes[offsets[3] + 9] ^= 0xff;
        let scanned = scan(&bytes, decode_byte);
        assert_eq!(scanned.entries, vec![0, 1, 2]);
        assert!(scanned.damaged.is_empty());
        assert_eq!(scanned.torn_from, Some(offsets[3]));
        let (whole, _) = file(4);
        let cut = scan(&whole[..whole.len() - 3], decode_byte);
        assert_eq!(
            cut.torn_from,
            Some(offsets[3]),
            "a frame running past the end"
        );
    }

    #[test]
    fn a_bad_frame_followed_by_a_valid_one_is_damage_and_the_rest_is_kept_apart() {
        let (mut bytes, offsets) = file(5);
        // A damaged length field: the frame claims to run past the end of the file.
        bytes[offsets[1] + 3] = 0x7f;
        let scanned = scan(&bytes, decode_byte);
        assert_eq!(scanned.entries, vec![0, 2, 3, 4]);
        assert_eq!(scanned.damaged, vec![offsets[1]..offsets[2]]);
        assert_eq!(scanned.frames_from(offsets[1]), 3);
        assert_eq!(scanned.torn_from, None);
    }

    #[test]
    fn a_whole_frame_that_does_not_decode_is_damage_even_at_the_end() {
        let mut bytes = file(2).0;
        let last = bytes.len();
        bytes.extend_from_slice(&encode_frame(&[200]));
        let scanned = scan(&bytes, decode_byte);
        assert_eq!(scanned.entries, vec![0, 1]);
        assert_eq!(scanned.damaged, vec![last..bytes.len()]);
        assert_eq!(scanned.torn_from, None);
    }

    #[test]
    fn a_damaged_header_with_frames_after_it_is_damage_and_without_any_is_not_a_log() {
        let (mut bytes, offsets) = file(2);
        bytes[0] = b'X';
        let scanned = scan(&bytes, decode_byte);
        assert!(!scanned.header_ok);
        assert_eq!(scanned.entries, vec![0, 1]);
        assert_eq!(scanned.damaged, vec![0..offsets[0]]);
        let garbage = scan(b"not a metadata log at all", decode_byte);
        assert!(garbage.damaged.is_empty());
        assert_eq!(garbage.torn_from, Some(0));
    }
}
