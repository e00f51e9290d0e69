//! Stream administration errors.

use super::ErrorCode;
use sluice_storage::StorageError;

/// A bounded numeric parameter of a call, named in [`AdminError::OutOfRange`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Parameter {
    /// `list_streams`' page size.
    ListStreamsLimit,
    /// `describe_stream`'s page size.
    DescribeStreamLimit,
    /// `list_shards`' page size.
    ListShardsMaxResults,
    /// A provisioned stream's shard count.
    ShardCount,
    /// A stream's largest record, in KiB.
    MaxRecordSizeKiB,
}

/// Why a `list_shards` request's members do not go together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ListShardsConflict {
    /// Neither or both of a stream and a page token were given.
    StreamOrToken,
    /// A start shard id came with a page token (the token holds its own).
    StartShardWithToken,
}

/// The shard quota a change would exceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardLimit {
    /// Open shards now, over all streams.
    pub open: usize,
    /// The quota (`EngineConfig::shards_max`).
    pub limit: u32,
    /// Shards the change would add.
    pub added: u32,
}

impl std::fmt::Display for ShardLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} more shards would exceed the limit of {} open shards ({} open)",
            self.added, self.limit, self.open
        )
    }
}

/// Stream administration: create, delete, describe, list, retention, tags.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// No such stream.
    #[error("stream {stream} not found")]
    StreamNotFound {
        /// The name as given.
        stream: String,
    },
    /// The name is taken.
    #[error("stream {stream} already exists")]
    StreamExists {
        /// The name.
        stream: String,
    },
    /// A stream name that is not `[a-zA-Z0-9_.-]{1,128}`.
    #[error("invalid stream name {name:?}: use 1 to 128 of a-z, A-Z, 0-9, '_', '.', '-'")]
    InvalidStreamName {
        /// The name as given.
        name: String,
    },
    /// A numeric parameter outside its bounds.
    #[error("{parameter:?} is {value}, outside {min}..={max}")]
    OutOfRange {
        /// Which parameter.
        parameter: Parameter,
        /// The value given.
        value: u64,
        /// Smallest allowed.
        min: u64,
        /// Largest allowed.
        max: u64,
    },
    /// A new stream's largest record is outside 1..=10 MiB or larger than the engine's
    /// segments hold.
    #[error(
        "a largest record of {bytes} bytes is outside 1 MiB..=10 MiB or more than this engine's segments hold ({supported} bytes)"
    )]
    MaxRecordSizeOutOfRange {
        /// The size asked for.
        bytes: u64,
        /// The largest this engine's segments hold.
        supported: u64,
    },
    /// A largest record this engine's segments cannot hold.
    #[error(
        "a record of {bytes} bytes does not fit this engine's segments (at most {supported} bytes); open it with larger segments"
    )]
    RecordSizeUnsupported {
        /// The size asked for.
        bytes: u64,
        /// The largest this engine's segments hold.
        supported: u64,
    },
    /// Retention outside 24..=8760 hours.
    #[error("retention of {hours} hours is outside {min}..={max} hours")]
    RetentionOutOfRange {
        /// The retention asked for.
        hours: u32,
        /// Shortest allowed.
        min: u32,
        /// Longest allowed.
        max: u32,
    },
    /// An increase to a retention shorter than the current one.
    #[error(
        "retention of stream {stream} cannot be increased to {requested_hours} hours: it is {current_hours}"
    )]
    RetentionBelowCurrent {
        /// Stream name.
        stream: String,
        /// The retention asked for.
        requested_hours: u32,
        /// The stream's retention.
        current_hours: u32,
    },
    /// A decrease to a retention longer than the current one.
    #[error(
        "retention of stream {stream} cannot be decreased to {requested_hours} hours: it is {current_hours}"
    )]
    RetentionAboveCurrent {
        /// Stream name.
        stream: String,
        /// The retention asked for.
        requested_hours: u32,
        /// The stream's retention.
        current_hours: u32,
    },
    /// A tag key of 0 or more than 128 characters, or a value of more than 256.
    #[error(
        "tag {key:?}: keys have 1 to {key_chars_max} characters and values at most {value_chars_max}"
    )]
    InvalidTag {
        /// The key as given.
        key: String,
        /// Longest key.
        key_chars_max: usize,
        /// Longest value.
        value_chars_max: usize,
    },
    /// More tags than a stream may have: adding to `stream`, or creating a stream (`None`).
    #[error("a stream can have at most {max} tags")]
    TooManyTags {
        /// The stream tags were added to; `None` when creating one.
        stream: Option<String>,
        /// The limit.
        max: usize,
    },
    /// The shard quota.
    #[error("{0}")]
    ShardLimit(ShardLimit),
    /// An `exclusive_start_shard_id` that is not a shard id.
    #[error("invalid exclusive start shard id {id:?}")]
    InvalidExclusiveStartShardId {
        /// The id as given.
        id: String,
    },
    /// A shard id in a `list_shards` request that is not a shard id.
    #[error("invalid shard id {id:?}")]
    InvalidShardId {
        /// The id as given.
        id: String,
    },
    /// A `list_shards` request whose members do not go together.
    #[error("list_shards: {0:?}")]
    ListShards(ListShardsConflict),
    /// A page token this engine did not make, or altered.
    #[error("invalid page token")]
    InvalidNextToken,
    /// A page token is too old.
    #[error("the page token issued at {issued_ms} ms has expired")]
    ExpiredNextToken {
        /// When it was made (ms since the epoch).
        issued_ms: u64,
    },
    /// `Engine::log` of a stream that is not one open shard (it was made otherwise, or
    /// resharded): its sequence numbers are no dense offsets.
    #[error("stream {stream} has {shards} shards ({open} open); a log is one open shard")]
    NotALog {
        /// Stream name.
        stream: String,
        /// Its shards, open and closed.
        shards: usize,
        /// Its open shards.
        open: usize,
    },
    /// The metadata log or a shard log failed.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// The engine is shutting down.
    #[error("the engine is shut down")]
    Shutdown,
}

impl AdminError {
    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        match self {
            AdminError::StreamNotFound { .. } => ErrorCode::ResourceNotFound,
            AdminError::StreamExists { .. } | AdminError::NotALog { .. } => {
                ErrorCode::ResourceInUse
            }
            AdminError::InvalidStreamName { .. }
            | AdminError::OutOfRange { .. }
            | AdminError::MaxRecordSizeOutOfRange { .. } => ErrorCode::Validation,
            AdminError::RecordSizeUnsupported { .. }
            | AdminError::RetentionOutOfRange { .. }
            | AdminError::RetentionBelowCurrent { .. }
            | AdminError::RetentionAboveCurrent { .. }
            | AdminError::InvalidTag { .. }
            | AdminError::InvalidExclusiveStartShardId { .. }
            | AdminError::InvalidShardId { .. }
            | AdminError::ListShards(_)
            | AdminError::InvalidNextToken => ErrorCode::InvalidArgument,
            AdminError::TooManyTags { .. } | AdminError::ShardLimit(_) => ErrorCode::LimitExceeded,
            AdminError::ExpiredNextToken { .. } => ErrorCode::ExpiredNextToken,
            AdminError::Storage(_) => ErrorCode::InternalFailure,
            AdminError::Shutdown => ErrorCode::EngineShutdown,
        }
    }

    pub(crate) fn stream_not_found(stream: &str) -> AdminError {
        AdminError::StreamNotFound {
            stream: stream.to_owned(),
        }
    }
}
