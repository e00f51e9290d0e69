//! Storage errors: one enum for the whole storage layer.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in the storage layer.
///
/// Operating conditions (bad input, a full disk, damage on disk) come back as one of these;
/// programmer errors are assertions.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// A batch with no records was appended.
    #[error("a batch must hold at least one record")]
    EmptyBatch,
    /// One record (key + data) is larger than the configured maximum.
    #[error("record {index} is {size_bytes} bytes, over the limit of {max_bytes} bytes")]
    RecordTooLarge {
        /// Position of the record in the batch.
        index: usize,
        /// Key plus data bytes.
        size_bytes: u64,
        /// The configured `record_size_bytes_max`.
        max_bytes: u64,
    },
    /// A partition key is longer than the format allows.
    #[error("record {index} has a {key_bytes}-byte key, over the limit of {max_bytes} bytes")]
    KeyTooLong {
        /// Position of the record in the batch.
        index: usize,
        /// Length of the key.
        key_bytes: usize,
        /// Largest key the format holds.
        max_bytes: usize,
    },
    /// The encoded batch does not fit in one segment.
    #[error("batch of {size_bytes} bytes does not fit in a segment (at most {max_bytes} bytes)")]
    BatchTooLarge {
        /// Encoded size of the batch.
        size_bytes: u64,
        /// Largest batch a segment can hold.
        max_bytes: u64,
    },
    /// The batch holds more records than allowed.
    #[error("batch of {count} records is over the limit of {max} records")]
    TooManyRecords {
        /// Records in the batch.
        count: usize,
        /// The configured `batch_records_max`.
        max: usize,
    },
    /// The sequence number is at or past the end of the log.
    #[error("sequence number {seq} does not exist yet (next is {next_seq})")]
    SequenceBeyondEnd {
        /// The requested sequence number.
        seq: u64,
        /// The next sequence number the log will assign.
        next_seq: u64,
    },
    /// The sequence number is older than the trim horizon (expired by retention).
    #[error("sequence number {seq} has expired (trim horizon is {trim_horizon})")]
    SequenceTrimmed {
        /// The requested sequence number.
        seq: u64,
        /// The oldest sequence number still readable.
        trim_horizon: u64,
    },
    /// A name or path would leave the data directory or is not a valid name.
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath {
        /// What was asked for.
        path: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// Bytes on disk failed validation; they are never returned as data.
    #[error("corrupt data in {path:?} at byte {pos}: {reason}")]
    Corrupt {
        /// File that holds the damage.
        path: PathBuf,
        /// Byte offset of the damaged structure.
        pos: u64,
        /// What failed.
        reason: String,
    },
    /// The metadata log is damaged before its end: a bad frame with valid frames after it.
    /// Every entry is synced before it is acknowledged, so this is not a torn write but damage
    /// to acknowledged entries; cutting the log there would drop the later ones. The file is
    /// left as found; [`MetaLog::repair`](crate::MetaLog::repair) rewrites it deliberately.
    #[error(
        "metadata log {path:?} is damaged at byte {pos} (valid entries after the damage: \
         {frames_after}); it was left as found, for a deliberate repair"
    )]
    MetadataDamaged {
        /// The metadata log.
        path: PathBuf,
        /// Byte offset of the first damaged frame.
        pos: u64,
        /// Valid frames after the damage (all of them, past any further damage).
        frames_after: usize,
    },
    /// Every segment slot holds unexpired data; nothing can be written until retention frees one.
    #[error("the log is full: all {segments_max} segments hold unexpired or leased data")]
    LogFull {
        /// The configured `segments_max`.
        segments_max: usize,
    },
    /// The device has no space for a new segment. Nothing was written.
    #[error("no space left to create segment {path:?}")]
    NoSpace {
        /// The segment file that could not be allocated.
        path: PathBuf,
    },
    /// An earlier write or sync failed; the log refuses writes until it is reopened.
    #[error("log is read-only after an I/O failure: {cause}")]
    Latched {
        /// The failure that latched the log.
        cause: String,
    },
    /// A batch does not go where it was sent: a plain batch to a replicated log or an entry to
    /// a single-node log, an entry that does not follow the log's last one, or a received
    /// entry whose sequence numbers or times are not the log's next.
    #[error("entry refused: {reason}")]
    EntryRefused {
        /// What did not match.
        reason: String,
    },
    /// A replication state larger than the state file's slots.
    #[error("a state of {size_bytes} bytes does not fit (at most {max_bytes} bytes)")]
    StateTooLarge {
        /// Its size.
        size_bytes: usize,
        /// `format::STATE_BYTES_MAX`.
        max_bytes: usize,
    },
    /// A truncation would remove entries readers can already see (at or below the commit).
    #[error("cannot truncate from entry {index}: entries up to {visible_index} are committed")]
    TruncateCommitted {
        /// The first entry the truncation would remove.
        index: u64,
        /// The last visible (committed) entry.
        visible_index: u64,
    },
    /// Another open log already owns this directory.
    #[error("log directory {path:?} is already open")]
    InUse {
        /// The directory.
        path: PathBuf,
    },
    /// An I/O operation failed.
    #[error("{op} {path:?}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl StorageError {
    /// Wraps an `io::Error` with the operation and path it came from.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        StorageError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// Result type of the storage layer.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;
