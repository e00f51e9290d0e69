//! The disk a log takes, read from its segment headers alone: no recovery, no lock, nothing
//! written, so it can look at a log a running process owns. For `sluice inspect` and
//! operators (docs/operations.md explains the footprint).

use crate::error::{Result, StorageError};
use crate::format::{SEGMENT_HEADER_LEN, SegmentHeader, SegmentState};
use crate::recovery::is_segment_file_name;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

/// Segment files of one log and the space they take.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogSpace {
    /// Segment files.
    pub files: usize,
    /// Bytes the file system allocated for them (pre-allocated: whole segments).
    pub allocated_bytes: u64,
    /// Segments whose header says they hold records.
    pub live_segments: usize,
    /// Segments holding no record (retired by retention, released by recovery, or a spare
    /// never written): the next rolls take them before allocating another file.
    pub reusable_segments: usize,
    /// Bytes allocated for the reusable segments.
    pub reusable_bytes: u64,
}

impl LogSpace {
    /// Adds another log's figures to these.
    pub fn add(&mut self, other: &LogSpace) {
        self.files += other.files;
        self.allocated_bytes += other.allocated_bytes;
        self.live_segments += other.live_segments;
        self.reusable_segments += other.reusable_segments;
        self.reusable_bytes += other.reusable_bytes;
    }
}

/// The space of the log in `dir` (an empty `LogSpace` if `dir` does not exist). A live
/// header is taken at its word: a segment retired just before a crash counts as live until the
/// next open releases it.
pub fn log_space(dir: &Path) -> Result<LogSpace> {
    let mut space = LogSpace::default();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(space),
        Err(e) => return Err(StorageError::io("list", dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io("list", dir, e))?;
        let path = entry.path();
        if !entry.file_name().to_str().is_some_and(is_segment_file_name) {
            continue;
        }
        let file = match std::fs::File::open(&path) {
            Ok(file) => file,
            // Removed since it was listed (its shard expired): it takes no space.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(StorageError::io("open", &path, e)),
        };
        let allocated = file
            .metadata()
            .map_err(|e| StorageError::io("stat", &path, e))?
            .blocks()
            * 512;
        let mut header = [0u8; SEGMENT_HEADER_LEN];
        let live = file.read_exact_at(&mut header, 0).is_ok()
            && SegmentHeader::decode(&header).is_ok_and(|h| h.state == SegmentState::Live);
        space.files += 1;
        space.allocated_bytes += allocated;
        if live {
            space.live_segments += 1;
        } else {
            space.reusable_segments += 1;
            space.reusable_bytes += allocated;
        }
    }
    Ok(space)
}
