//! The video layer's errors, named as Kinesis Video names them.

/// Why a video call failed.
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    /// No such stream, fragment or tag (`ResourceNotFoundException`).
    #[error("{0}")]
    NotFound(String),
    /// The stream exists already (`ResourceInUseException`).
    #[error("{0}")]
    InUse(String),
    /// A parameter out of its range or form (`InvalidArgumentException`).
    #[error("{0}")]
    InvalidArgument(String),
    /// The version given is not the stream's (`VersionMismatchException`).
    #[error("{0}")]
    VersionMismatch(String),
    /// Too many streams (`AccountStreamLimitExceededException`).
    #[error("{0}")]
    LimitExceeded(String),
    /// Too many tags (`TagsPerResourceExceededLimitException`).
    #[error("{0}")]
    TooManyTags(String),
    /// A stored record that is not a fragment, or the engine failed.
    #[error("{0}")]
    Internal(String),
}

impl VideoError {
    /// The exception's name on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            VideoError::NotFound(_) => "ResourceNotFoundException",
            VideoError::InUse(_) => "ResourceInUseException",
            VideoError::InvalidArgument(_) => "InvalidArgumentException",
            VideoError::VersionMismatch(_) => "VersionMismatchException",
            VideoError::LimitExceeded(_) => "AccountStreamLimitExceededException",
            VideoError::TooManyTags(_) => "TagsPerResourceExceededLimitException",
            VideoError::Internal(_) => "InternalFailure",
        }
    }

    /// The HTTP status it is answered with.
    pub fn status(&self) -> u16 {
        match self {
            VideoError::NotFound(_) => 404,
            VideoError::InUse(_) => 400,
            VideoError::InvalidArgument(_) => 400,
            VideoError::VersionMismatch(_) => 400,
            VideoError::LimitExceeded(_) | VideoError::TooManyTags(_) => 400,
            VideoError::Internal(_) => 500,
        }
    }
}

impl From<sluice_core::AdminError> for VideoError {
    fn from(error: sluice_core::AdminError) -> VideoError {
        VideoError::Internal(format!("the stream's log: {error}"))
    }
}

impl From<sluice_core::ReadError> for VideoError {
    fn from(error: sluice_core::ReadError) -> VideoError {
        VideoError::Internal(format!("reading the stream's log: {error}"))
    }
}

impl From<std::io::Error> for VideoError {
    fn from(error: std::io::Error) -> VideoError {
        VideoError::Internal(format!("the video catalogue: {error}"))
    }
}
