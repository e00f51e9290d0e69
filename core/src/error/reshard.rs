//! Errors of resharding.

use super::{ErrorCode, ShardLimit};
use crate::hashkey::{HashKeyError, HashKeyRange};
use crate::seqnum::ShardId;
use sluice_storage::StorageError;

/// Resharding: split, merge, update shard count. A reshard that fails changed nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReshardError {
    /// No such stream.
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
    /// The stream is on-demand: it is not resharded by hand.
    #[error("stream {stream} is on-demand; resharding is only for provisioned streams")]
    OnDemand {
        /// The stream.
        stream: String,
    },
    /// The shard was split or merged already.
    #[error("shard {shard} of stream {stream} is closed and cannot be resharded")]
    ShardClosed {
        /// The stream.
        stream: String,
        /// The shard.
        shard: ShardId,
    },
    /// A split key that is not a decimal in 0..=2^128−1.
    #[error("new starting hash key: {0}")]
    InvalidHashKey(HashKeyError),
    /// A split key not strictly inside the shard's range (above its start + 1, below its
    /// end).
    #[error(
        "new starting hash key {key} is not both greater than one plus the starting hash key {} and less than the ending hash key {} of shard {shard} in stream {stream}",
        range.start, range.end
    )]
    SplitKeyOutsideShard {
        /// The stream.
        stream: String,
        /// The shard.
        shard: ShardId,
        /// The key given.
        key: u128,
        /// The shard's range.
        range: HashKeyRange,
    },
    /// Two shards that are not an adjacent pair (or the same shard twice).
    #[error("shards {shard} and {adjacent} of stream {stream} are not an adjacent pair")]
    NotAdjacent {
        /// The stream.
        stream: String,
        /// The first shard.
        shard: ShardId,
        /// The second shard.
        adjacent: ShardId,
    },
    /// A target shard count outside half..=double the open shards (or 1..=10,000).
    #[error(
        "a target of {target} shards for stream {stream} is outside half and double its {current} open shards"
    )]
    ShardCountOutOfRange {
        /// The stream.
        stream: String,
        /// The target given.
        target: u32,
        /// Open shards now.
        current: u32,
    },
    /// The shard quota.
    #[error("{0}")]
    ShardLimit(ShardLimit),
    /// The stream's record would list more shards, open, closed and expired, than
    /// `SHARD_RECORDS_PER_STREAM_MAX`: it has been resharded too often to be resharded again.
    #[error(
        "stream {stream} has had {shards} shards; a reshard adding {added} would pass the {max} one stream's record holds"
    )]
    LineageTooLong {
        /// The stream.
        stream: String,
        /// Shards it has had.
        shards: usize,
        /// Shards the reshard would add.
        added: usize,
        /// The limit.
        max: usize,
    },
    /// The metadata log or a shard log failed; nothing changed.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// The engine is shutting down.
    #[error("the engine is shut down")]
    Shutdown,
}

impl ReshardError {
    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        match self {
            ReshardError::StreamNotFound { .. } | ReshardError::ShardNotFound { .. } => {
                ErrorCode::ResourceNotFound
            }
            ReshardError::OnDemand { .. } => ErrorCode::Validation,
            ReshardError::InvalidHashKey(error) => error.code(),
            ReshardError::ShardClosed { .. }
            | ReshardError::SplitKeyOutsideShard { .. }
            | ReshardError::NotAdjacent { .. }
            | ReshardError::ShardCountOutOfRange { .. } => ErrorCode::InvalidArgument,
            ReshardError::ShardLimit(_) | ReshardError::LineageTooLong { .. } => {
                ErrorCode::LimitExceeded
            }
            ReshardError::Storage(_) => ErrorCode::InternalFailure,
            ReshardError::Shutdown => ErrorCode::EngineShutdown,
        }
    }

    pub(crate) fn stream_not_found(stream: &str) -> ReshardError {
        ReshardError::StreamNotFound {
            stream: stream.to_owned(),
        }
    }
}
