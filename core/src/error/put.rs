//! Errors of writing records.

use super::ErrorCode;
use crate::hashkey::HashKeyError;
use crate::seqnum::{SequenceNumberError, ShardId};
use sluice_storage::StorageError;
use std::sync::Arc;

/// Writing records. A call that fails as a whole wrote nothing; in a batch's per-record
/// results only [`PutError::Throttled`], [`PutError::Storage`], [`PutError::Unwritten`],
/// [`PutError::StreamNotFound`] (deleted meanwhile) and [`PutError::Shutdown`] occur.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum PutError {
    /// No such stream (or it was deleted while the put was on its way).
    #[error("stream {stream} not found")]
    StreamNotFound {
        /// The name.
        stream: String,
    },
    /// A batch of no records or more than the limit.
    #[error("a batch holds 1 to {max} records; this one has {count}")]
    BatchRecordCount {
        /// Records in the batch.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A batch over the byte limit (data and partition keys).
    #[error("the batch is {size_bytes} bytes, over the limit of {max_bytes}")]
    BatchTooLarge {
        /// The batch's bytes.
        size_bytes: u64,
        /// The limit.
        max_bytes: u64,
    },
    /// A record (data and partition key) larger than the stream takes.
    #[error(
        "record {index} is {size_bytes} bytes (data + partition key); the stream accepts at most {max_bytes}"
    )]
    RecordTooLarge {
        /// The record's place in the call.
        index: usize,
        /// Its bytes.
        size_bytes: u64,
        /// The stream's largest record.
        max_bytes: u64,
    },
    /// A partition key of no or more than 256 characters.
    #[error("record {index}'s partition key has {chars} characters; keys have 1 to {max}")]
    InvalidPartitionKey {
        /// The record's place in the call.
        index: usize,
        /// Characters in the key.
        chars: usize,
        /// The limit.
        max: usize,
    },
    /// An explicit hash key that is not a decimal in 0..=2^128−1.
    #[error("record {index}: {error}")]
    InvalidHashKey {
        /// The record's place in the call.
        index: usize,
        /// What is wrong with it.
        error: HashKeyError,
    },
    /// `sequence_number_for_ordering` on a record of a batch (it is for single puts).
    #[error("sequence_number_for_ordering applies to single puts only")]
    OrderingInBatch,
    /// A `sequence_number_for_ordering` that is not a sequence number.
    #[error("sequence_number_for_ordering: {0}")]
    InvalidOrderingNumber(SequenceNumberError),
    /// A `sequence_number_for_ordering` this stream never issued.
    #[error("sequence number {sequence_number} was never issued by stream {stream}")]
    OrderingNumberNotIssued {
        /// The stream.
        stream: String,
        /// The number as given.
        sequence_number: String,
    },
    /// A `sequence_number_for_ordering` of a shard after the one the record goes to, so the
    /// record could not sort after it.
    #[error(
        "sequence number {sequence_number} belongs to a shard after {shard}, where this record goes; use the same partition key (and hash key) as that record"
    )]
    OrderingAfterShard {
        /// The number as given.
        sequence_number: String,
        /// The shard the record routes to.
        shard: ShardId,
    },
    /// The shard's write limit was hit; nothing of this shard's records was written.
    #[error("shard {shard} of stream {stream} is over its write limit")]
    Throttled {
        /// Stream name.
        stream: String,
        /// The shard.
        shard: ShardId,
    },
    /// The shard could not write (I/O error, full disk, latched log): the record's outcome
    /// is unknown. A latched shard refuses writes until the engine is reopened.
    #[error("shard {shard} failed: {error}")]
    Storage {
        /// The shard.
        shard: ShardId,
        /// What failed (shared by every record of the failed append).
        error: Arc<StorageError>,
    },
    /// The shard's core stopped answering before this record was written.
    #[error("shard {shard} stopped before the record was written")]
    Unwritten {
        /// The shard.
        shard: ShardId,
    },
    /// The engine is shutting down.
    #[error("the engine is shut down")]
    Shutdown,
}

impl PutError {
    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        match self {
            PutError::StreamNotFound { .. } => ErrorCode::ResourceNotFound,
            PutError::BatchRecordCount { .. } | PutError::InvalidPartitionKey { .. } => {
                ErrorCode::Validation
            }
            PutError::InvalidHashKey { error, .. } => error.code(),
            PutError::BatchTooLarge { .. }
            | PutError::RecordTooLarge { .. }
            | PutError::OrderingInBatch
            | PutError::InvalidOrderingNumber(_)
            | PutError::OrderingNumberNotIssued { .. }
            | PutError::OrderingAfterShard { .. } => ErrorCode::InvalidArgument,
            PutError::Throttled { .. } => ErrorCode::ProvisionedThroughputExceeded,
            PutError::Storage { .. } | PutError::Unwritten { .. } => ErrorCode::InternalFailure,
            PutError::Shutdown => ErrorCode::EngineShutdown,
        }
    }

    pub(crate) fn stream_not_found(stream: &str) -> PutError {
        PutError::StreamNotFound {
            stream: stream.to_owned(),
        }
    }
}
