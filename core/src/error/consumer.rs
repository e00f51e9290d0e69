//! Errors of consumer checkpoints and of closing the engine.

use super::ErrorCode;
use crate::seqnum::{SequenceNumber, ShardId};
use sluice_storage::StorageError;

/// Consumer checkpoints: opening a consumer, committing and reading positions.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsumerError {
    /// No such stream (or it was deleted, with its consumers).
    #[error("stream {stream} not found")]
    StreamNotFound {
        /// The name.
        stream: String,
    },
    /// A consumer name that is not `[a-zA-Z0-9_.-]{1,128}`.
    #[error("invalid consumer name {name:?}: use 1 to 128 of a-z, A-Z, 0-9, '_', '.', '-'")]
    InvalidConsumerName {
        /// The name as given.
        name: String,
    },
    /// No such shard.
    #[error("shard {shard} of stream {stream} not found")]
    ShardNotFound {
        /// Stream name.
        stream: String,
        /// Shard id as given.
        shard: String,
    },
    /// A position that is not the shard's start or one of its records: another shard's
    /// number, or one past the shard's last record.
    #[error(
        "sequence number {sequence_number} is not a position of shard {shard}, whose last record is {last}"
    )]
    PositionOutsideShard {
        /// The number given.
        sequence_number: SequenceNumber,
        /// The shard.
        shard: ShardId,
        /// The shard's last record (its start when it holds none).
        last: SequenceNumber,
    },
    /// A new consumer beyond the limit of consumers with positions in one stream.
    #[error("stream {stream} has {limit} consumers with positions, the most it keeps")]
    TooManyConsumers {
        /// Stream name.
        stream: String,
        /// The limit.
        limit: usize,
    },
    /// The consumers log failed (I/O, damage, latched after a failure).
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// The engine is shutting down.
    #[error("the engine is shutting down")]
    Shutdown,
}

impl ConsumerError {
    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        match self {
            ConsumerError::StreamNotFound { .. } | ConsumerError::ShardNotFound { .. } => {
                ErrorCode::ResourceNotFound
            }
            ConsumerError::InvalidConsumerName { .. } => ErrorCode::Validation,
            ConsumerError::PositionOutsideShard { .. } => ErrorCode::InvalidArgument,
            ConsumerError::TooManyConsumers { .. } => ErrorCode::LimitExceeded,
            ConsumerError::Storage(_) => ErrorCode::InternalFailure,
            ConsumerError::Shutdown => ErrorCode::EngineShutdown,
        }
    }

    pub(crate) fn stream_not_found(stream: &str) -> ConsumerError {
        ConsumerError::StreamNotFound {
            stream: stream.to_owned(),
        }
    }
}

/// Closing the engine: the first failure among the final syncs and the threads' ends.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CloseError {
    /// A final sync failed (a shard log, a consumers log), or a log had latched after an
    /// earlier failure: what it acknowledged as visible only may not be on disk.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// A thread of the engine ended abnormally (a panic).
    #[error("{what} did not stop cleanly: {detail}")]
    Thread {
        /// Which thread.
        what: &'static str,
        /// What its join reported.
        detail: String,
    },
}

impl CloseError {
    /// The stable code: the engine's failure.
    pub fn code(&self) -> ErrorCode {
        ErrorCode::InternalFailure
    }
}
