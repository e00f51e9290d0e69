//! The errors a client sees: a Kinesis exception name, an HTTP status and a message.

use crate::config::ACCOUNT_DEFAULT;
use crate::wire::messages;
use sluice_core::{AdminError, ErrorCode, PutError, ReadError, ReshardError};
use std::sync::Arc;

/// An error reply: `{"__type": name, "message": message}` with `status`.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The exception name (`ResourceNotFoundException`...).
    pub name: &'static str,
    /// HTTP status: 400 for client errors, 500 for InternalFailure, 413 for huge bodies.
    pub status: u16,
    /// The text clients show and sometimes grep.
    pub message: String,
    /// The engine's error behind it, if any: its text names the account, so it is rendered
    /// again once the tenant is known ([`ApiError::for_account`]).
    engine: Option<Arc<sluice_core::Error>>,
}

impl PartialEq for ApiError {
    fn eq(&self, other: &ApiError) -> bool {
        (self.name, self.status, &self.message) == (other.name, other.status, &other.message)
    }
}

impl Eq for ApiError {}

/// The Kinesis exception an engine error code is reported as.
pub fn exception_name(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::ResourceNotFound => "ResourceNotFoundException",
        ErrorCode::ResourceInUse => "ResourceInUseException",
        ErrorCode::InvalidArgument => "InvalidArgumentException",
        ErrorCode::LimitExceeded => "LimitExceededException",
        ErrorCode::ProvisionedThroughputExceeded => "ProvisionedThroughputExceededException",
        ErrorCode::ExpiredIterator => "ExpiredIteratorException",
        ErrorCode::ExpiredNextToken => "ExpiredNextTokenException",
        ErrorCode::Validation => "ValidationException",
        _ => "InternalFailureException",
    }
}

impl ApiError {
    /// Any named exception with status 400.
    pub fn new(name: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            name,
            status: 400,
            message: message.into(),
            engine: None,
        }
    }

    /// Any named exception with its own status.
    pub fn with_status(name: &'static str, status: u16, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            ..ApiError::new(name, message)
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
            engine: None,
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
            engine: None,
        }
    }

    /// The reply for an engine error, its text naming `account`.
    pub fn engine(error: sluice_core::Error, account: &str) -> ApiError {
        let code = error.code();
        let message = messages::render(&error, account);
        let status = match code {
            ErrorCode::InternalFailure | ErrorCode::EngineShutdown | ErrorCode::MetadataDamaged => {
                500
            }
            _ => 400,
        };
        ApiError {
            name: exception_name(code),
            status,
            message,
            engine: Some(Arc::new(error)),
        }
    }

    /// This error as the tenant of `account` sees it: an engine error's text is rendered
    /// for that account; the server's own errors are unchanged.
    pub fn for_account(self, account: &str) -> ApiError {
        match &self.engine {
            Some(error) => ApiError {
                message: messages::render(error, account),
                ..self
            },
            None => self,
        }
    }
}

macro_rules! from_engine_error {
    ($($error:ty),*) => {$(
        impl From<$error> for ApiError {
            /// Rendered for the default account until [`ApiError::for_account`] says which.
            fn from(error: $error) -> ApiError {
                ApiError::engine(error.into(), ACCOUNT_DEFAULT)
            }
        }
    )*};
}

from_engine_error!(AdminError, PutError, ReadError, ReshardError);
