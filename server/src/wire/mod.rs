//! The Kinesis wire formats: JSON 1.1 and CBOR 1.1 bodies, blobs and timestamps that read
//! and write themselves per protocol, the model's validation, and the error shapes.

pub mod bounded;
mod error;
pub mod incarnation;
pub mod messages;
mod protocol;
pub mod types;
pub mod validate;

pub use error::{ApiError, exception_name};
pub use incarnation::{Incarnation, Tagged};
pub use protocol::Protocol;
pub use types::{Blob, Timestamp};
pub use validate::{Validate, Validator};
