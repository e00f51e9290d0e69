//! # sluice-core
//!
//! The Sluice engine: Kinesis streams of shards on a thread-per-core runtime, over the shard
//! logs of [`sluice_storage`].
//!
//! ```
//! use sluice_core::{CreateStream, Engine, EngineConfig, IteratorStart, PutRecord};
//!
//! # fn main() -> Result<(), sluice_core::Error> {
//! let dir = tempfile::tempdir().unwrap();
//! let mut config = EngineConfig::new(dir.path());
//! config.cores = 1;
//! config.segment_size_bytes = 4 << 20;
//! let engine = Engine::open(config)?;
//! let orders = engine
//!     .create_stream(CreateStream::provisioned("orders", 2))
//!     .wait()?;
//!
//! // Blocking here; `.await` the same call on any async runtime.
//! let put = orders.put(PutRecord::new("customer-7", b"hello")).wait()?;
//! let mut iterator = orders.shard_iterator(&put.shard_id, IteratorStart::TrimHorizon)?;
//! let batch = engine.get_records(&mut iterator, None)?;
//! let record = batch.records().next().unwrap();
//! assert_eq!((record.partition_key, record.data), ("customer-7", &b"hello"[..]));
//! assert_eq!(record.sequence_number, put.sequence_number);
//! # Ok(())
//! # }
//! ```
//!
//! - [`Engine`] owns the threads; [`Engine::stream`] gives a [`Stream`] handle, looked up
//!   once and used for every call on that stream.
//! - Writes go to the core that owns the shard, over a bounded queue; [`Stream::put`] and
//!   [`Stream::put_batch`] return per-record results in request order. Durability is an
//!   option of the call ([`Put::durability`]).
//! - Reads run on the caller's thread, straight from the mapped log: [`Engine::get_records`]
//!   returns records that borrow the mapping.
//! - [`Stream::split_shard`], [`Stream::merge_shards`] and [`Stream::update_shard_count`]
//!   reshard while writers run; [`Stream::reader`] reads parents before children, so each
//!   key's records come out in put order.
//! - Every operation that waits for another thread (puts, stream administration,
//!   resharding) returns a [`Call`] (or a [`Put`] builder): `.await` it on any runtime, or
//!   `.wait()` for it on a plain thread. Reads, listings and iterator calls never wait for
//!   another thread: they are plain functions, safe to call from async code (on data not in
//!   the page cache they fault pages in from disk, as any mapped read does).
//! - [`Stream::consumer`] gives a [`Consumer`]: named, durable positions per shard and a
//!   reader that resumes after them along the lineage. [`Engine::log`] is a plain
//!   append/read/tail log with dense `u64` offsets. [`Engine::close`] shuts down and reports
//!   whether the final syncs succeeded.
//! - Errors are data ([`PutError::RecordTooLarge`] says which record and which limit), with
//!   a stable [`ErrorCode`] each; their `Display` is plain English, not a service's wording.
//!
//! Limits are Kinesis' (see [`limits`]): 500 records and 10 MiB per batch, partition keys of
//! 1..=256 characters, records up to the stream's maximum (1 MiB by default, up to 10 MiB),
//! retention 24..=8760 hours.
//!
//! A metadata log damaged before its end (not a torn write) stops [`Engine::open`] with
//! [`OpenError::MetadataDamaged`] and is left as found; [`metadata::repair`] (the
//! `sluice repair-metadata` command) rewrites it deliberately.
//!
//! The [`guide`] walks through embedding: opening, creating, putting (async and blocking),
//! reading zero-copy, resharding and reading along the lineage, subscribing, consumers that
//! resume where they left off, the plain log, errors and shutting down.

mod admin;
mod call;
mod catalog;
mod config;
mod consumer;
mod control;
mod engine;
mod error;
pub mod guide;
pub mod hashkey;
mod iterator;
pub mod limits;
mod lineage;
mod list_shards;
mod log;
pub mod metadata;
mod metrics;
mod names;
mod put;
mod read;
mod replica;
mod reshard;
mod runtime;
pub mod seqnum;
mod shared;
mod stream;
mod subscription;
mod throttle;
mod token;

pub use admin::{
    CreateStream, ListShards, ShardDescription, ShardFilter, ShardPage, ShardSpace,
    StreamDescription, StreamMode, StreamPage, StreamStatus, StreamSummary,
};
pub use call::Call;
#[cfg(feature = "testing")]
pub use config::TestHooks;
pub use config::{EngineConfig, ReshardStep, SyncScope, ThroughputLimits};
pub use consumer::{Commit, Consumer};
pub use engine::Engine;
pub use error::{
    AdminError, CloseError, ConsumerError, Error, ErrorCode, ListShardsConflict, OpenError,
    Parameter, PutError, ReadError, ReshardError, ShardLimit,
};
pub use hashkey::HashKeyRange;
pub use iterator::{IteratorStart, ShardIterator};
pub use lineage::{ShardRecords, StreamReader};
pub use log::{Append, AppendBatch, Log, LogEntry, LogRead, LogTail};
pub use put::{Put, PutBatch};
pub use put::{PutRecord, PutRecordResult, PutResult};
pub use read::{RawRecord, Record, Records};
pub use replica::{Replica, ReplicaError, ReplicaId};
pub use reshard::ShardCountUpdate;
pub use seqnum::{SequenceNumber, SequenceNumberError, ShardId};
// From the storage crate, what an embedder names: durability, clocks, the storage error
// that `Storage` variants carry, and what a replica's caller builds and reads (entries, the
// reader). Shard logs themselves are sluice-storage's to export.
pub use sluice_storage::{
    Clock, Durability, EncodedBatch, EntryId, LogReader, LogSpace, ManualClock, ReadLimits,
    RetentionPoint, ScaledClock, StorageError, SystemClock,
};
pub use stream::Stream;
pub use subscription::{Subscription, SubscriptionEvent};

/// The README's examples, compiled as doc tests so they stay true to the API.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeExamples;
