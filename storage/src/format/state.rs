//! The replication layer's state file (`raft.state`): two fixed slots, each a whole copy of the
//! state under a generation and a checksum, written in turn, so a save torn by a power loss
//! leaves the other copy (the previous save) intact.

use super::{FormatError, read_u16, read_u32, read_u64};
use xxhash_rust::xxh3::Xxh3;

/// `SLST`: start of every slot.
const STATE_MAGIC: u32 = u32::from_le_bytes(*b"SLST");
const STATE_VERSION: u16 = 1;
/// Bytes of one slot; the file holds two.
pub const STATE_SLOT_BYTES: u64 = 64 * 1024;
/// Slot header: magic, version, reserved, generation, length, reserved, checksum.
const STATE_HEADER_LEN: usize = 32;
/// The largest state a slot holds.
pub const STATE_BYTES_MAX: usize = STATE_SLOT_BYTES as usize - STATE_HEADER_LEN;

/// Where the copy of generation `generation` goes.
pub fn state_slot_offset(generation: u64) -> u64 {
    (generation % 2) * STATE_SLOT_BYTES
}

/// One slot's bytes: the header, then `state` (at most `STATE_BYTES_MAX` bytes).
pub fn encode_state_slot(generation: u64, state: &[u8]) -> Vec<u8> {
    assert!(state.len() <= STATE_BYTES_MAX, "the caller checks the size");
    let mut bytes = Vec::with_capacity(STATE_HEADER_LEN + state.len());
    bytes.extend_from_slice(&STATE_MAGIC.to_le_bytes());
    bytes.extend_from_slice(&STATE_VERSION.to_le_bytes());
    bytes.extend_from_slice(&0u16.to_le_bytes());
    bytes.extend_from_slice(&generation.to_le_bytes());
    bytes.extend_from_slice(&(state.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&0u32.to_le_bytes());
    let checksum = slot_checksum(&bytes, state);
    bytes.extend_from_slice(&checksum.to_le_bytes());
    bytes.extend_from_slice(state);
    bytes
}

fn slot_checksum(head: &[u8], state: &[u8]) -> u64 {
    let mut hasher = Xxh3::new();
    hasher.update(&head[..24]);
    hasher.update(state);
    hasher.digest()
}

/// The newest intact copy in a state file's bytes: its generation and the state. `Ok(None)`
/// for a file no save has reached (all zero, or its newest copy the generation 0 "no state"
/// written at creation); an error when something was written and no copy is intact.
pub fn decode_state(file: &[u8]) -> Result<Option<(u64, Vec<u8>)>, FormatError> {
    let slots = [0u64, 1].map(|slot| {
        let from = (slot * STATE_SLOT_BYTES) as usize;
        let bytes = file.get(from..from + STATE_SLOT_BYTES as usize)?;
        decode_slot(bytes).filter(|(generation, _)| state_slot_offset(*generation) == from as u64)
    });
    let newest = slots
        .into_iter()
        .flatten()
        .max_by_key(|(generation, _)| *generation);
    match newest {
        Some((0, _)) => Ok(None),
        Some(found) => Ok(Some(found)),
        None if file.iter().all(|&b| b == 0) => Ok(None),
        None => Err(FormatError("neither copy of the state is intact")),
    }
}

fn decode_slot(bytes: &[u8]) -> Option<(u64, Vec<u8>)> {
    if read_u32(bytes, 0) != STATE_MAGIC
        || read_u16(bytes, 4) != STATE_VERSION
        || read_u16(bytes, 6) != 0
        || read_u32(bytes, 20) != 0
    {
        return None;
    }
    let len = read_u32(bytes, 16) as usize;
    let state = bytes.get(STATE_HEADER_LEN..STATE_HEADER_LEN.checked_add(len)?)?;
    (slot_checksum(bytes, state) == read_u64(bytes, 24))
        .then(|| (read_u64(bytes, 8), state.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(copies: &[(u64, &[u8])]) -> Vec<u8> {
        let mut file = vec![0u8; 2 * STATE_SLOT_BYTES as usize];
        for (generation, state) in copies {
            let at = state_slot_offset(*generation) as usize;
            let slot = encode_state_slot(*generation, state);
            file[at..at + slot.len()].copy_from_slice(&slot);
        }
        file
    }

    #[test]
    fn the_newest_intact_copy_wins() {
        assert_eq!(decode_state(&file_with(&[])).unwrap(), None);
        let file = file_with(&[(6, b"six"), (7, b"seven")]);
        assert_eq!(decode_state(&file).unwrap(), Some((7, b"seven".to_vec())));
        let largest = vec![9u8; STATE_BYTES_MAX];
        let file = file_with(&[(1, b"one"), (2, &largest)]);
        assert_eq!(decode_state(&file).unwrap(), Some((2, largest)));
    }

    #[test]
    fn a_torn_copy_leaves_the_other_and_two_torn_copies_are_an_error() {
        let mut file = file_with(&[(6, b"six"), (7, b"seven")]);
        let newest = state_slot_offset(7) as usize;
        file[newest + 33] ^= 1;
        assert_eq!(decode_state(&file).unwrap(), Some((6, b"six".to_vec())));
        file[state_slot_offset(6) as usize + 10] ^= 1;
        assert!(decode_state(&file).is_err());
        // Every bit of a copy is covered: header and state.
        let file = file_with(&[(3, b"abc")]);
        for byte in 0..STATE_HEADER_LEN + 3 {
            let mut damaged = file.clone();
            damaged[state_slot_offset(3) as usize + byte] ^= 0x10;
            assert!(decode_state(&damaged).is_err(), "byte {byte}");
        }
    }

    #[test]
    fn a_copy_in_the_other_generations_slot_is_not_taken() {
        let mut file = file_with(&[]);
        let slot = encode_state_slot(4, b"four");
        let at = state_slot_offset(5) as usize;
        file[at..at + slot.len()].copy_from_slice(&slot);
        assert!(decode_state(&file).is_err());
    }
}
