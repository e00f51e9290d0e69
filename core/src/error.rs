//! Errors: one enum per area, each mapping to a Kinesis exception name and a stable numeric
//! code shared with the C ABI and the server. A code, once published, is never reused.

use sluice_storage::StorageError;

/// Stable numeric codes. `0` is success in the C ABI and never an error here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The stream, shard or consumer does not exist.
    ResourceNotFound = 1,
    /// The resource exists already, or is not in a state that allows the call.
    ResourceInUse = 2,
    /// A value is not acceptable (bad key, record too large, unknown sequence number...).
    InvalidArgument = 3,
    /// A quota would be exceeded (shards, tags...).
    LimitExceeded = 4,
    /// The shard's throughput limit was hit; retry later.
    ProvisionedThroughputExceeded = 5,
    /// The shard iterator is older than its lifetime.
    ExpiredIterator = 6,
    /// A pagination token is older than its lifetime.
    ExpiredNextToken = 7,
    /// The request does not satisfy the API's constraints.
    Validation = 8,
    /// The engine failed (I/O error, latched shard, corrupt data).
    InternalFailure = 9,
    /// The engine is shutting down or gone.
    EngineShutdown = 10,
}

impl ErrorCode {
    /// The Kinesis exception name clients expect.
    pub fn kinesis_name(self) -> &'static str {
        match self {
            ErrorCode::ResourceNotFound => "ResourceNotFoundException",
            ErrorCode::ResourceInUse => "ResourceInUseException",
            ErrorCode::InvalidArgument => "InvalidArgumentException",
            ErrorCode::LimitExceeded => "LimitExceededException",
            ErrorCode::ProvisionedThroughputExceeded => "ProvisionedThroughputExceededException",
            ErrorCode::ExpiredIterator => "ExpiredIteratorException",
            ErrorCode::ExpiredNextToken => "ExpiredNextTokenException",
            ErrorCode::Validation => "ValidationException",
            ErrorCode::InternalFailure | ErrorCode::EngineShutdown => "InternalFailureException",
        }
    }

    /// The numeric value shared with the C ABI.
    pub fn as_u32(self) -> u32 {
        self as u32
    }

    /// Every code, for tables and tests.
    pub const ALL: [ErrorCode; 10] = [
        ErrorCode::ResourceNotFound,
        ErrorCode::ResourceInUse,
        ErrorCode::InvalidArgument,
        ErrorCode::LimitExceeded,
        ErrorCode::ProvisionedThroughputExceeded,
        ErrorCode::ExpiredIterator,
        ErrorCode::ExpiredNextToken,
        ErrorCode::Validation,
        ErrorCode::InternalFailure,
        ErrorCode::EngineShutdown,
    ];
}

/// Stream administration: create, delete, describe, list, retention, tags.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// No such stream.
    #[error("Stream {0} under account 000000000000 not found.")]
    StreamNotFound(String),
    /// No such shard.
    #[error("Shard {shard} in stream {stream} under account 000000000000 does not exist")]
    ShardNotFound {
        /// Stream name.
        stream: String,
        /// Shard id as given.
        shard: String,
    },
    /// The name is taken.
    #[error("Stream {0} under account 000000000000 already exists.")]
    StreamExists(String),
    /// A value out of the allowed range or shape.
    #[error("{0}")]
    InvalidArgument(String),
    /// The request breaks the API's constraints.
    #[error("{0}")]
    Validation(String),
    /// A quota.
    #[error("{0}")]
    LimitExceeded(String),
    /// A pagination token is too old.
    #[error("{0}")]
    ExpiredNextToken(String),
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
            AdminError::StreamNotFound(_) | AdminError::ShardNotFound { .. } => {
                ErrorCode::ResourceNotFound
            }
            AdminError::StreamExists(_) => ErrorCode::ResourceInUse,
            AdminError::InvalidArgument(_) => ErrorCode::InvalidArgument,
            AdminError::Validation(_) => ErrorCode::Validation,
            AdminError::LimitExceeded(_) => ErrorCode::LimitExceeded,
            AdminError::ExpiredNextToken(_) => ErrorCode::ExpiredNextToken,
            AdminError::Storage(_) => ErrorCode::InternalFailure,
            AdminError::Shutdown => ErrorCode::EngineShutdown,
        }
    }
}

/// Writing records.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PutError {
    /// No such stream.
    #[error("Stream {0} under account 000000000000 not found.")]
    StreamNotFound(String),
    /// The request breaks the API's constraints (record count, key length, hash key form);
    /// nothing of the call was written.
    #[error("{0}")]
    Validation(String),
    /// A record, key or batch is not acceptable; nothing of the call was written.
    #[error("{0}")]
    InvalidArgument(String),
    /// The shard's write limit was hit; nothing of this shard's records was written.
    #[error("Rate exceeded for shard {shard} in stream {stream} under account 000000000000.")]
    Throttled {
        /// Stream name.
        stream: String,
        /// Shard id.
        shard: String,
    },
    /// The shard could not write (I/O error; the shard may be latched until reopened).
    #[error("shard {shard} failed: {cause}")]
    Storage {
        /// Shard id.
        shard: String,
        /// What failed.
        cause: String,
    },
    /// The engine is shutting down.
    #[error("the engine is shut down")]
    Shutdown,
}

impl PutError {
    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        match self {
            PutError::StreamNotFound(_) => ErrorCode::ResourceNotFound,
            PutError::Validation(_) => ErrorCode::Validation,
            PutError::InvalidArgument(_) => ErrorCode::InvalidArgument,
            PutError::Throttled { .. } => ErrorCode::ProvisionedThroughputExceeded,
            PutError::Storage { .. } => ErrorCode::InternalFailure,
            PutError::Shutdown => ErrorCode::EngineShutdown,
        }
    }
}

/// Reading records: iterators, get, subscriptions.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// No such stream (or it was deleted since the iterator was made).
    #[error("Stream {0} under account 000000000000 not found.")]
    StreamNotFound(String),
    /// No such shard.
    #[error("Shard {shard} in stream {stream} under account 000000000000 does not exist")]
    ShardNotFound {
        /// Stream name.
        stream: String,
        /// Shard id as given.
        shard: String,
    },
    /// A bad sequence number, timestamp, limit or token.
    #[error("{0}")]
    InvalidArgument(String),
    /// The iterator is older than its lifetime.
    #[error(
        "Iterator expired. The iterator was created at time {issued_ms} while right now it is {now_ms} which is further in the future than the tolerated delay of {ttl_ms} milliseconds."
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
    #[error("Rate exceeded for shard {shard} in stream {stream} under account 000000000000.")]
    Throttled {
        /// Stream name.
        stream: String,
        /// Shard id.
        shard: String,
    },
    /// The shard log failed (damage detected, I/O).
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
}

impl ReadError {
    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        match self {
            ReadError::StreamNotFound(_) | ReadError::ShardNotFound { .. } => {
                ErrorCode::ResourceNotFound
            }
            ReadError::InvalidArgument(_) => ErrorCode::InvalidArgument,
            ReadError::ExpiredIterator { .. } => ErrorCode::ExpiredIterator,
            ReadError::Throttled { .. } => ErrorCode::ProvisionedThroughputExceeded,
            ReadError::Storage(_) => ErrorCode::InternalFailure,
        }
    }
}

/// Resharding: split, merge, update shard count.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReshardError {
    /// No such stream.
    #[error("Stream {0} under account 000000000000 not found.")]
    StreamNotFound(String),
    /// No such shard.
    #[error("Could not find shard {shard} in stream {stream} under account 000000000000.")]
    ShardNotFound {
        /// Stream name.
        stream: String,
        /// Shard id as given.
        shard: String,
    },
    /// The request breaks the API's constraints, or the stream is on-demand.
    #[error("{0}")]
    Validation(String),
    /// A value that cannot be used: a key outside the shard, shards that are not adjacent, a
    /// closed shard, a target count out of bounds.
    #[error("{0}")]
    InvalidArgument(String),
    /// The shard quota.
    #[error("{0}")]
    LimitExceeded(String),
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
            ReshardError::StreamNotFound(_) | ReshardError::ShardNotFound { .. } => {
                ErrorCode::ResourceNotFound
            }
            ReshardError::Validation(_) => ErrorCode::Validation,
            ReshardError::InvalidArgument(_) => ErrorCode::InvalidArgument,
            ReshardError::LimitExceeded(_) => ErrorCode::LimitExceeded,
            ReshardError::Storage(_) => ErrorCode::InternalFailure,
            ReshardError::Shutdown => ErrorCode::EngineShutdown,
        }
    }
}

impl From<AdminError> for ReshardError {
    /// Failures of the steps shared with stream administration (opening logs, the metadata
    /// log).
    fn from(error: AdminError) -> ReshardError {
        match error {
            AdminError::Storage(e) => ReshardError::Storage(e),
            AdminError::StreamNotFound(name) => ReshardError::StreamNotFound(name),
            AdminError::Shutdown => ReshardError::Shutdown,
            other => ReshardError::InvalidArgument(other.to_string()),
        }
    }
}

/// Opening the engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The configuration is not usable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The data directory, metadata log or a shard log could not be opened.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// A thread could not be started.
    #[error("cannot start {what}: {source}")]
    Thread {
        /// Which thread.
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
}

/// Any engine error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Stream administration.
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// Writing.
    #[error(transparent)]
    Put(#[from] PutError),
    /// Reading.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// Resharding.
    #[error(transparent)]
    Reshard(#[from] ReshardError),
    /// Opening.
    #[error(transparent)]
    Open(#[from] OpenError),
}

impl Error {
    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Admin(e) => e.code(),
            Error::Put(e) => e.code(),
            Error::Read(e) => e.code(),
            Error::Reshard(e) => e.code(),
            Error::Open(_) => ErrorCode::InternalFailure,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_and_distinct() {
        let values: Vec<u32> = ErrorCode::ALL.iter().map(|c| c.as_u32()).collect();
        assert_eq!(values, (1..=10).collect::<Vec<u32>>());
        assert_eq!(
            ErrorCode::ProvisionedThroughputExceeded.kinesis_name(),
            "ProvisionedThroughputExceededException"
        );
    }
}
