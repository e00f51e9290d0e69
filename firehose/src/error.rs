//! What a Firehose call can fail with, by kind, so a server can answer with Firehose's error
//! names (the messages that name an account are the server's to write).

/// A failed Firehose call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FirehoseError {
    /// A parameter is out of range or malformed (`InvalidArgumentException`).
    #[error("{0}")]
    InvalidArgument(String),
    /// No delivery stream has this name (`ResourceNotFoundException`).
    #[error("delivery stream {name} not found")]
    NotFound {
        /// The name asked for.
        name: String,
    },
    /// The name is taken, or the stream is not in a state for the call
    /// (`ResourceInUseException`).
    #[error("delivery stream {name} is in use: {reason}")]
    InUse {
        /// The delivery stream.
        name: String,
        /// Why.
        reason: String,
    },
    /// The delivery stream's version is not the one the caller named
    /// (`ConcurrentModificationException`): it was updated since.
    #[error("delivery stream {name} is at version {current}")]
    VersionMismatch {
        /// The delivery stream.
        name: String,
        /// Its version now.
        current: u64,
    },
    /// A quota is reached (`LimitExceededException`).
    #[error("{0}")]
    LimitExceeded(String),
    /// The engine cannot take the records now (throttled, shutting down):
    /// `ServiceUnavailableException`, retry later. Nothing was acknowledged.
    #[error("{0}")]
    Unavailable(String),
    /// A key could not seal or open records (its KMS key is disabled, gone, or refuses):
    /// `InvalidKMSResourceException`. Nothing was acknowledged.
    #[error("{0}")]
    Key(String),
    /// Storage failed under the call (`ServiceUnavailableException` with the cause).
    #[error("{0}")]
    Internal(String),
}

impl FirehoseError {
    pub(crate) fn invalid(message: impl Into<String>) -> FirehoseError {
        FirehoseError::InvalidArgument(message.into())
    }

    pub(crate) fn not_found(name: &str) -> FirehoseError {
        FirehoseError::NotFound {
            name: name.to_owned(),
        }
    }

    pub(crate) fn internal(context: &str, error: impl std::fmt::Display) -> FirehoseError {
        FirehoseError::Internal(format!("{context}: {error}"))
    }
}
