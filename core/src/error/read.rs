//! Errors of reading records: iterators, get, subscriptions.

use super::ErrorCode;
use crate::seqnum::{SequenceNumber, ShardId};
use sluice_storage::StorageError;

/// Reading records: iterators, get, subscriptions.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// No such stream (or it was deleted since the iterator was made).
    #[error("stream {stream} not found")]
    StreamNotFound {
        /// The name.
        stream: String,
    },
    /// No such shard.
    #[error("shard {shard} of stream {stream} not found")]
    ShardNotFound {
        /// Stream name.
        stream: String,
        /// Shard id as given.
        shard: String,
    },
    /// A record limit outside 1..=10,000.
    #[error("a read returns 1 to {max} records; {limit} were asked for")]
    LimitOutOfRange {
        /// The limit given.
        limit: usize,
        /// The largest limit.
        max: usize,
    },
    /// An iterator token this engine did not make, or altered, or naming no shard.
    #[error("invalid iterator token {token}")]
    InvalidIterator {
        /// The token, abbreviated.
        token: String,
    },
    /// A starting sequence number that is no position of the shard (another shard's, or
    /// beyond its next number: after a crash, records that were visible but never durable
    /// are gone).
    #[error(
        "sequence number {sequence_number} is not a position of shard {shard}, whose next sequence number is {next}"
    )]
    InvalidStartingSequenceNumber {
        /// The number given.
        sequence_number: SequenceNumber,
        /// The shard.
        shard: ShardId,
        /// The shard's next number.
        next: SequenceNumber,
    },
    /// An iterator's position past the shard's end: records there were lost in a crash
    /// before they were durable. Take a new iterator.
    #[error(
        "the iterator's position {position} in shard {shard} is past its end ({next_position}): records there were lost in a crash before they were durable; get a new iterator"
    )]
    PositionPastEnd {
        /// The iterator's log position.
        position: u64,
        /// The shard.
        shard: ShardId,
        /// The shard's next log position.
        next_position: u64,
    },
    /// `get` of a number the stream never issued or that has expired.
    #[error("sequence number {sequence_number} is not a retained record of stream {stream}")]
    RecordNotRetained {
        /// The stream.
        stream: String,
        /// The number given.
        sequence_number: SequenceNumber,
    },
    /// The iterator is older than its lifetime.
    #[error(
        "the iterator was made at {issued_ms} ms, more than {ttl_ms} ms before now ({now_ms} ms)"
    )]
    ExpiredIterator {
        /// When it was made (ms since the epoch).
        issued_ms: u64,
        /// Now.
        now_ms: u64,
        /// Its lifetime.
        ttl_ms: u64,
    },
    /// The shard's read limit was hit.
    #[error("shard {shard} of stream {stream} is over its read limit")]
    Throttled {
        /// Stream name.
        stream: String,
        /// The shard.
        shard: ShardId,
    },
    /// The shard log failed (damage detected, I/O).
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
}

impl ReadError {
    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        match self {
            ReadError::StreamNotFound { .. } | ReadError::ShardNotFound { .. } => {
                ErrorCode::ResourceNotFound
            }
            ReadError::LimitOutOfRange { .. }
            | ReadError::InvalidIterator { .. }
            | ReadError::InvalidStartingSequenceNumber { .. }
            | ReadError::PositionPastEnd { .. }
            | ReadError::RecordNotRetained { .. } => ErrorCode::InvalidArgument,
            ReadError::ExpiredIterator { .. } => ErrorCode::ExpiredIterator,
            ReadError::Throttled { .. } => ErrorCode::ProvisionedThroughputExceeded,
            ReadError::Storage(_) => ErrorCode::InternalFailure,
        }
    }

    pub(crate) fn stream_not_found(stream: &str) -> ReadError {
        ReadError::StreamNotFound {
            stream: stream.to_owned(),
        }
    }
}
