//! Shard-log configuration and the limits it enforces.

use crate::error::{Result, StorageError};
use crate::format::{self, BATCH_HEADER_LEN, RECORD_HEADER_LEN, SEGMENT_DATA_START};
use crate::fs_sync::FilesystemSync;

/// Kinesis' largest record (key + data): 10 MiB.
pub const RECORD_SIZE_BYTES_LIMIT: u64 = 10 * 1024 * 1024;
/// Kinesis' default per-stream record limit: 1 MiB.
pub const RECORD_SIZE_BYTES_DEFAULT: u64 = 1024 * 1024;
/// Default segment file size.
pub const SEGMENT_SIZE_BYTES_DEFAULT: u64 = 64 * 1024 * 1024;
/// Smallest segment accepted (tests use small segments to wrap the ring quickly).
pub const SEGMENT_SIZE_BYTES_MIN: u64 = 64 * 1024;
/// Densest sparse index allowed: one entry per 4 KiB of batches.
pub const INDEX_INTERVAL_BYTES_MIN: u64 = 4096;
/// Kinesis' default retention: 24 hours.
pub const RETENTION_MS_DEFAULT: u64 = 24 * 3600 * 1000;

/// How one shard log is laid out and what it accepts.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Size of every segment file; a multiple of 4096.
    pub segment_size_bytes: u64,
    /// Most segment files the ring may hold (live, retiring and free together).
    pub segments_max: usize,
    /// Largest record, key plus data.
    pub record_size_bytes_max: u64,
    /// Most records in one appended batch.
    pub batch_records_max: usize,
    /// Distance between sparse-index entries.
    pub index_interval_bytes: u64,
    /// Records older than this are invisible and their segments are recycled.
    pub retention_ms: u64,
    /// Start background writeback of the active segment every this many bytes (0: never), so
    /// a segment's seal, or a durable append, never has a large backlog to sync at once.
    pub writeback_interval_bytes: u64,
    /// The log is a shard's Raft log in cluster mode: it takes entries (`append_entry`,
    /// `append_received`) and shows readers only what `commit_to` committed
    /// (docs/design/segment-format.md, "Replicated logs").
    pub replicated: bool,
    /// Durable appends, and the syncs that order writes (segment headers, seals, truncations,
    /// the Raft state), wait for this engine-wide filesystem sync (one `syncfs` covering every
    /// log's writes) instead of an fdatasync of the log's files; after a failed one the log
    /// latches when it next needs a sync. `None` (the default): each log syncs its own files.
    pub filesystem_sync: Option<FilesystemSync>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_size_bytes: SEGMENT_SIZE_BYTES_DEFAULT,
            segments_max: 1024,
            record_size_bytes_max: RECORD_SIZE_BYTES_DEFAULT,
            batch_records_max: 10_000,
            index_interval_bytes: 64 * 1024,
            retention_ms: RETENTION_MS_DEFAULT,
            writeback_interval_bytes: 1024 * 1024,
            replicated: false,
            filesystem_sync: None,
        }
    }
}

impl LogConfig {
    /// Checks every value, so a log never starts with a configuration it cannot honour.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(StorageError::InvalidConfig(msg));
        if self.segment_size_bytes < SEGMENT_SIZE_BYTES_MIN
            || !self.segment_size_bytes.is_multiple_of(4096)
        {
            return bad(format!(
                "segment_size_bytes {} must be a multiple of 4096 and at least {}",
                self.segment_size_bytes, SEGMENT_SIZE_BYTES_MIN
            ));
        }
        if self.record_size_bytes_max == 0 || self.record_size_bytes_max > RECORD_SIZE_BYTES_LIMIT {
            return bad(format!(
                "record_size_bytes_max {} must be in 1..={}",
                self.record_size_bytes_max, RECORD_SIZE_BYTES_LIMIT
            ));
        }
        // The key counts towards the record size, as in Kinesis.
        let largest_batch = BATCH_HEADER_LEN as u64
            + RECORD_HEADER_LEN as u64
            + format::align8(self.record_size_bytes_max);
        if largest_batch > self.batch_bytes_max() {
            return bad(format!(
                "segment_size_bytes {} cannot hold one record of record_size_bytes_max {}",
                self.segment_size_bytes, self.record_size_bytes_max
            ));
        }
        if self.segments_max < 2 {
            return bad("segments_max must be at least 2".into());
        }
        if self.batch_records_max == 0 || self.batch_records_max > u32::MAX as usize {
            return bad("batch_records_max must be in 1..=u32::MAX".into());
        }
        if self.index_interval_bytes < INDEX_INTERVAL_BYTES_MIN {
            return bad(format!(
                "index_interval_bytes must be at least {INDEX_INTERVAL_BYTES_MIN}"
            ));
        }
        if self.writeback_interval_bytes != 0 && self.writeback_interval_bytes < 64 * 1024 {
            return bad("writeback_interval_bytes must be 0 (off) or at least 64 KiB".into());
        }
        if self.retention_ms == 0 {
            return bad("retention_ms must be positive".into());
        }
        Ok(())
    }

    /// Bytes reserved at the end of each segment for the seal (footer and trailer). It depends
    /// on the segment size only (it assumes the densest index allowed), so a log reopened with
    /// another `index_interval_bytes` keeps the same data region.
    pub fn seal_reserve_bytes(&self) -> u64 {
        let data = self.segment_size_bytes - SEGMENT_DATA_START;
        format::seal_reserve_bytes(data / INDEX_INTERVAL_BYTES_MIN + 2)
    }

    /// End of the region batches may occupy in a segment.
    pub fn data_limit(&self) -> u64 {
        self.segment_size_bytes - self.seal_reserve_bytes()
    }

    /// Largest encoded batch that fits in an empty segment (and in the header's u32 length).
    pub fn batch_bytes_max(&self) -> u64 {
        let in_segment = self.data_limit().saturating_sub(SEGMENT_DATA_START);
        in_segment.min(u64::from(u32::MAX) & !7)
    }
}
