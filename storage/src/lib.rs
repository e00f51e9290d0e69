//! # sluice-storage
//!
//! The storage engine under Sluice: each shard is a ring of pre-allocated, fixed-size segment
//! files, appended to in whole batches through io_uring (glommio, buffered so that mappings are
//! coherent) and read zero-copy from read-only memory maps by any thread.
//!
//! - [`ShardLog`] is the write side, owned by one core: [`ShardLog::append`] with
//!   [`Durability::Visible`] or [`Durability::Durable`] (group commit).
//! - [`LogReader`] is the read side, `Send + Sync`: [`LogReader::read`] returns a
//!   [`ReadBatch`] of [`RecordView`]s that borrow the mapping.
//! - [`MetaLog`] is the append-only, checksummed metadata log for streams and lineage.
//! - [`runtime`] starts the glommio executors everything runs on ([`runtime::block_on`] for
//!   tests and tools); [`io`] is the seam the log writes through, with a fault injector.
//!
//! ```
//! use sluice_storage::runtime::block_on;
//! use sluice_storage::{Durability, GlommioIo, LogConfig, ReadLimits, RecordIn, ShardLog, SystemClock};
//! use std::sync::Arc;
//!
//! let dir = tempfile::tempdir().unwrap();
//! block_on(async {
//!     let config = LogConfig { segment_size_bytes: 4 << 20, ..LogConfig::default() };
//!     let log = ShardLog::open(GlommioIo, dir.path(), config, Arc::new(SystemClock)).await.unwrap();
//!     let batch = [RecordIn { key: b"user-1", data: b"hello" }];
//!     let appended = log.append(&batch, Durability::Durable).await.unwrap();
//!     let read = log.reader().read(appended.base_seq, ReadLimits::default()).unwrap();
//!     let record = read.records().next().unwrap();
//!     assert_eq!((record.key, record.data), (&b"user-1"[..], &b"hello"[..]));
//! });
//! ```
//!
//! Limits: records up to 10 MiB (key + data, `record_size_bytes_max`), keys up to 65,535
//! bytes, a batch must fit in one segment, at most `segments_max` segment files per log.
//! The byte layout is in docs/design/segment-format.md; the [`guide`] shows writing on the
//! owner and reading on other threads, recovery on reopen, and housekeeping.

// Sluice is for 64-bit Linux (io_uring); offsets move between u64 and usize freely.
const _: () = assert!(usize::BITS == 64, "sluice-storage needs a 64-bit target");

mod clock;
mod config;
mod datadir;
mod error;
pub mod format;
mod fs_sync;
pub mod guide;
mod index;
pub mod io;
mod log;
#[cfg(all(test, loom))]
mod loom_tests;
mod mapping;
mod metalog;
mod reader;
mod recovery;
pub mod runtime;
mod segment;
mod shared;
mod space;
mod sync;
#[cfg(feature = "testing")]
pub mod testing;
#[cfg(loom)]
#[doc(hidden)]
pub use sync::loom_model;

pub use clock::{Clock, ManualClock, ScaledClock, SystemClock};
pub use config::{
    INDEX_INTERVAL_BYTES_MIN, LogConfig, RECORD_SIZE_BYTES_DEFAULT, RECORD_SIZE_BYTES_LIMIT,
    RETENTION_MS_DEFAULT, SEGMENT_SIZE_BYTES_DEFAULT, SEGMENT_SIZE_BYTES_MIN,
};
pub use datadir::{DataDir, NAME_BYTES_MAX, validate_name};
pub use error::{Result, StorageError};
pub use format::{EncodedBatch, EntryId, RECORD_FLAG_ENCRYPTED, RecordIn, RecordView};
pub use fs_sync::{FILESYSTEM_SYNC_FAILED, FilesystemSync, prepare_after_failed_filesystem_sync};
pub use io::{GlommioIo, SegmentIo};
pub use log::{Appended, Durability, LogStats, ReadOnlyLog, RetentionPoint, ShardLog};
pub use metalog::{MetaLog, MetaLogRepair, MetaLogScan};
pub use reader::{LogReader, ReadBatch, ReadLimits};
pub use recovery::{RecoveryReport, Truncation};
pub use space::{LogSpace, log_space};
