//! Damage in the metadata log: a torn last frame is cut off, but a bad frame with valid frames
//! after it is damage to acknowledged entries. Opening refuses it with the path and offset and
//! leaves the file as found; a deliberate repair keeps the file aside and every valid entry.

use sluice_storage::{MetaLog, StorageError};
use std::path::Path;

#[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct Entry {
    stream: String,
    uid: u64,
}

fn entry(i: u64) -> Entry {
    Entry {
        stream: format!("stream-{i}"),
        uid: i,
    }
}

const HEADER: usize = 16;

/// Offsets of the frames of a metadata log file, read by the documented layout: a 16-byte
/// file header, then `[len u32][magic u32][checksum u64][payload padded to 8]`.
fn frame_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut pos = HEADER;
    while pos + 16 <= bytes.len() {
        offsets.push(pos);
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        pos += 16 + len.div_ceil(8) * 8;
    }
    offsets
}

/// A log of `n` entries `0..n`, closed; returns its bytes.
fn log_of(path: &Path, n: u64) -> Vec<u8> {
    let (mut log, _) = MetaLog::<Entry>::open(path).unwrap();
    for i in 0..n {
        log.append(&entry(i)).unwrap();
    }
    drop(log);
    std::fs::read(path).unwrap()
}

#[test]
fn a_damaged_frame_before_the_last_refuses_to_open_and_leaves_the_file_as_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.log");
    let mut bytes = log_of(&path, 6);
    let frames = frame_offsets(&bytes);
    assert_eq!(frames.len(), 6);
    bytes[frames[2] + 20] ^= 0x10; // a payload byte of the third entry
    std::fs::write(&path, &bytes).unwrap();

    let refused = MetaLog::<Entry>::open(&path).unwrap_err();
    match refused {
        StorageError::MetadataDamaged {
            path: named,
            pos,
            frames_after,
        } => {
            assert_eq!(named, path);
            assert_eq!(pos, frames[2] as u64);
            assert_eq!(frames_after, 3);
        }
        other => panic!("expected MetadataDamaged, got {other:?}"),
    }
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "the evidence is kept");
    // Again, and the same: nothing was cut on the first try.
    assert!(matches!(
        MetaLog::<Entry>::open(&path),
        Err(StorageError::MetadataDamaged { .. })
    ));
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
}

#[test]
fn a_damaged_length_that_runs_past_the_end_is_damage_when_valid_frames_follow() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.log");
    let mut bytes = log_of(&path, 4);
    let frames = frame_offsets(&bytes);
    bytes[frames[1] + 2] = 0x40; // the length field: 4 MiB more than the file holds
    std::fs::write(&path, &bytes).unwrap();
    let refused = MetaLog::<Entry>::open(&path).unwrap_err();
    assert!(
        matches!(
            refused,
            StorageError::MetadataDamaged { pos, frames_after: 2, .. } if pos == frames[1] as u64
        ),
        "{refused:?}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
}

#[test]
fn a_torn_last_frame_is_cut_off_and_the_log_opens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.log");
    let bytes = log_of(&path, 5);
    let frames = frame_offsets(&bytes);
    for torn_len in [
        frames[4] + 1,
        frames[4] + 15,
        frames[4] + 17,
        bytes.len() - 1,
    ] {
        std::fs::write(&path, &bytes[..torn_len]).unwrap();
        let (mut log, replayed) = MetaLog::<Entry>::open(&path).unwrap();
        assert_eq!(replayed, (0..4).map(entry).collect::<Vec<_>>());
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            frames[4] as u64,
            "cut at the torn frame"
        );
        log.append(&entry(9)).unwrap();
        drop(log);
        let (_, replayed) = MetaLog::<Entry>::open(&path).unwrap();
        assert_eq!(replayed.last(), Some(&entry(9)));
    }
}

#[test]
fn a_zeroed_tail_after_the_last_frame_is_a_torn_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.log");
    let mut bytes = log_of(&path, 3);
    let end = bytes.len();
    bytes.extend_from_slice(&[0u8; 4096]);
    std::fs::write(&path, &bytes).unwrap();
    let (_, replayed) = MetaLog::<Entry>::open(&path).unwrap();
    assert_eq!(replayed, (0..3).map(entry).collect::<Vec<_>>());
    assert_eq!(std::fs::metadata(&path).unwrap().len(), end as u64);
}

#[test]
fn inspection_reports_the_damage_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.log");
    let mut bytes = log_of(&path, 5);
    let frames = frame_offsets(&bytes);
    bytes[frames[1] + 8] ^= 0x01; // the checksum of the second entry
    bytes.truncate(bytes.len() - 3); // and the last one torn
    std::fs::write(&path, &bytes).unwrap();
    let scan = MetaLog::<Entry>::inspect(&path).unwrap();
    assert_eq!(scan.frames_valid, 3);
    assert_eq!(scan.damaged, vec![frames[1] as u64..frames[2] as u64]);
    assert_eq!(scan.torn_tail_from, Some(frames[4] as u64));
    assert!(scan.is_damaged());
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
}

#[test]
fn repair_keeps_the_file_aside_and_every_valid_entry_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.log");
    let mut bytes = log_of(&path, 7);
    let frames = frame_offsets(&bytes);
    bytes[frames[1] + 17] ^= 0x80;
    bytes[frames[4] + 4] ^= 0x01; // the magic of the fifth entry
    std::fs::write(&path, &bytes).unwrap();

    let repair = MetaLog::<Entry>::repair(&path).unwrap();
    assert_eq!(repair.scan.frames_valid, 5);
    assert_eq!(repair.scan.damaged.len(), 2);
    let copy = repair.damaged_copy.expect("the damaged file was kept");
    assert!(
        copy.file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("meta.log.damaged-")
    );
    assert_eq!(std::fs::read(&copy).unwrap(), bytes, "copied as found");

    let (_, replayed) = MetaLog::<Entry>::open(&path).unwrap();
    assert_eq!(replayed, [0, 2, 3, 5, 6].map(entry));
    assert!(!MetaLog::<Entry>::inspect(&path).unwrap().is_damaged());
    let again = MetaLog::<Entry>::repair(&path).unwrap();
    assert_eq!(again.damaged_copy, None, "an undamaged log is left alone");
}

#[test]
fn a_damaged_header_with_entries_after_it_is_damage_that_repair_mends() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.log");
    let mut bytes = log_of(&path, 3);
    bytes[1] = b'?';
    std::fs::write(&path, &bytes).unwrap();
    let refused = MetaLog::<Entry>::open(&path).unwrap_err();
    assert!(
        matches!(
            refused,
            StorageError::MetadataDamaged {
                pos: 0,
                frames_after: 3,
                ..
            }
        ),
        "{refused:?}"
    );
    MetaLog::<Entry>::repair(&path).unwrap();
    let (_, replayed) = MetaLog::<Entry>::open(&path).unwrap();
    assert_eq!(replayed, [0, 1, 2].map(entry));
}
