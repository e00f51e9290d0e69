//! What an analytics call can fail with.

/// A line and column (both from 1) in an application's code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    /// Line, from 1.
    pub line: u64,
    /// Column, from 1 (in characters).
    pub column: u64,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// A failed analytics call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AnalyticsError {
    /// The application code is not valid, or uses a form not supported: where, and why.
    #[error("{message} (at {at})")]
    Code {
        /// Why.
        message: String,
        /// Where in the code.
        at: Position,
    },
    /// A schema, a name or a setting is not valid (KDA's `InvalidArgumentException`).
    #[error("{0}")]
    InvalidArgument(String),
    /// Running a query failed.
    #[error("{0}")]
    Execution(String),
    /// No application of that name (KDA's `ResourceNotFoundException`).
    #[error("Application {name} is not found.")]
    NotFound {
        /// The name asked for.
        name: String,
    },
    /// The application exists, or is not in a state the call needs (KDA's
    /// `ResourceInUseException`).
    #[error("{0}")]
    InUse(String),
    /// An update named a version that is not the application's (KDA's
    /// `ConcurrentModificationException`).
    #[error("Application {name} is at version {current}: describe it again before updating it.")]
    VersionMismatch {
        /// The application.
        name: String,
        /// Its version.
        current: u64,
    },
    /// More applications, inputs or outputs than allowed (KDA's `LimitExceededException`).
    #[error("{0}")]
    LimitExceeded(String),
    /// More tags than allowed (KDA's `TooManyTagsException`).
    #[error("{0}")]
    TooManyTags(String),
}

impl AnalyticsError {
    pub(crate) fn code(message: impl Into<String>, at: Position) -> AnalyticsError {
        AnalyticsError::Code {
            message: message.into(),
            at,
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> AnalyticsError {
        AnalyticsError::InvalidArgument(message.into())
    }

    pub(crate) fn execution(context: &str, error: impl std::fmt::Display) -> AnalyticsError {
        AnalyticsError::Execution(format!("{context}: {error}"))
    }
}
