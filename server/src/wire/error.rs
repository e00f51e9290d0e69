//! The errors a client sees: a Kinesis exception name, an HTTP status and a message.

use sluice_core::{AdminError, ErrorCode, PutError, ReadError, ReshardError};

/// An error reply: `{"__type": name, "message": message}` with `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The exception name (`ResourceNotFoundException`...).
    pub name: &'static str,
    /// HTTP status: 400 for client errors, 500 for InternalFailure, 413 for huge bodies.
    pub status: u16,
    /// The text clients show and sometimes grep.
    pub message: String,
}

impl ApiError {
    /// Any named exception with status 400.
    pub fn new(name: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            name,
            status: 400,
            message: message.into(),
        }
    }

    /// A body that does not parse, or a member of the wrong type.
    pub fn serialization(error: impl std::fmt::Display) -> ApiError {
        ApiError::new("SerializationException", error.to_string())
    }

    /// The model's constraints were not met.
    pub fn validation(message: impl Into<String>) -> ApiError {
        ApiError::new("ValidationException", message)
    }

    /// A value the model allows but Kinesis refuses.
    pub fn invalid_argument(message: impl Into<String>) -> ApiError {
        ApiError::new("InvalidArgumentException", message)
    }

    /// No such stream, shard, consumer or policy.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new("ResourceNotFoundException", message)
    }

    /// The resource exists, or is busy.
    pub fn in_use(message: impl Into<String>) -> ApiError {
        ApiError::new("ResourceInUseException", message)
    }

    /// A quota.
    pub fn limit_exceeded(message: impl Into<String>) -> ApiError {
        ApiError::new("LimitExceededException", message)
    }

    /// The server failed; status 500 so SDKs retry.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError {
            name: "InternalFailureException",
            status: 500,
            message: message.into(),
        }
    }

    /// The `X-Amz-Target` names no Kinesis operation.
    pub fn unknown_operation() -> ApiError {
        ApiError::new("UnknownOperationException", "")
    }

    /// The body is larger than the server accepts.
    pub fn too_large(limit_bytes: usize) -> ApiError {
        ApiError {
            name: "SerializationException",
            status: 413,
            message: format!("Request body is larger than {limit_bytes} bytes"),
        }
    }

    fn from_code(code: ErrorCode, message: String) -> ApiError {
        match code {
            ErrorCode::InternalFailure | ErrorCode::EngineShutdown => ApiError::internal(message),
            code => ApiError::new(code.kinesis_name(), message),
        }
    }
}

macro_rules! from_engine_error {
    ($($error:ty),*) => {$(
        impl From<$error> for ApiError {
            fn from(error: $error) -> ApiError {
                ApiError::from_code(error.code(), error.to_string())
            }
        }
    )*};
}

from_engine_error!(AdminError, PutError, ReadError, ReshardError);
