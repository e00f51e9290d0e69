//! Errors: one enum per area, each variant carrying the data of what went wrong (which
//! stream, shard, record or limit), never a sentence in a service's voice. Each maps to a
//! stable numeric [`ErrorCode`] shared with the C ABI and the server; a code, once
//! published, is never reused. A wire layer renders its own wording from the variants.

mod admin;
mod code;
mod consumer;
mod put;
mod read;
mod reshard;

pub use admin::{AdminError, ListShardsConflict, Parameter, ShardLimit};
pub use code::ErrorCode;
pub use consumer::{CloseError, ConsumerError};
pub use put::PutError;
pub use read::ReadError;
pub use reshard::ReshardError;

use sluice_storage::StorageError;
use std::path::PathBuf;

/// Opening the engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The configuration is not usable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The metadata log is damaged before its end: a bad entry with valid entries after it.
    /// Every entry is synced before it is acknowledged, so this is damage, not a torn write;
    /// cutting the log there would bring deleted streams back and drop live ones. The engine
    /// does not open and leaves the file as found. `sluice repair-metadata --dir <data dir>`
    /// (or [`metadata::repair`](crate::metadata::repair)) rewrites it deliberately, keeping
    /// every valid entry and a copy of the damaged file.
    #[error(
        "the metadata log {path:?} is damaged at byte {pos} (valid entries after the damage: \
         {frames_after}); it was left as found: `sluice repair-metadata --dir <data dir>` shows \
         what a repair keeps, and `--apply` rewrites it"
    )]
    MetadataDamaged {
        /// The metadata log.
        path: PathBuf,
        /// Byte offset of the first damaged entry.
        pos: u64,
        /// Valid entries after the damage.
        frames_after: usize,
    },
    /// The data directory, metadata log or a shard log could not be opened.
    #[error("storage: {0}")]
    Storage(#[source] StorageError),
    /// A thread could not be started.
    #[error("cannot start {what}: {source}")]
    Thread {
        /// Which thread.
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
}

impl OpenError {
    /// The stable code: a bad configuration is the caller's argument, a damaged metadata log
    /// its own code, the rest the engine's failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            OpenError::Config(_) => ErrorCode::InvalidArgument,
            OpenError::MetadataDamaged { .. } => ErrorCode::MetadataDamaged,
            OpenError::Storage(_) | OpenError::Thread { .. } => ErrorCode::InternalFailure,
        }
    }
}

impl From<StorageError> for OpenError {
    /// A damaged metadata log becomes [`OpenError::MetadataDamaged`] whichever way it
    /// arrives; every other storage error is [`OpenError::Storage`].
    fn from(error: StorageError) -> OpenError {
        match error {
            StorageError::MetadataDamaged {
                path,
                pos,
                frames_after,
            } => OpenError::MetadataDamaged {
                path,
                pos,
                frames_after,
            },
            error => OpenError::Storage(error),
        }
    }
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
    /// Consumer checkpoints.
    #[error(transparent)]
    Consumer(#[from] ConsumerError),
    /// Closing.
    #[error(transparent)]
    Close(#[from] CloseError),
}

impl Error {
    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Admin(e) => e.code(),
            Error::Put(e) => e.code(),
            Error::Read(e) => e.code(),
            Error::Reshard(e) => e.code(),
            Error::Open(e) => e.code(),
            Error::Consumer(e) => e.code(),
            Error::Close(e) => e.code(),
        }
    }
}
