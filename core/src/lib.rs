//! # sluice-core
//!
//! The Sluice engine: Kinesis streams of shards on a thread-per-core runtime, over the shard
//! logs of [`sluice_storage`].
//!
//! ```
//! use sluice_core::{CreateStream, Engine, EngineConfig, IteratorStart, PutRecord};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let mut config = EngineConfig::new(dir.path());
//! config.cores = 1;
//! config.segment_size_bytes = 4 << 20;
//! let engine = Engine::open(config).unwrap();
//! engine.create_stream_blocking(CreateStream::provisioned("orders", 2)).unwrap();
//!
//! let put = engine.put_blocking("orders", PutRecord::new("customer-7", b"hello")).unwrap();
//! let mut iterator = engine
//!     .shard_iterator("orders", &put.shard_id, IteratorStart::TrimHorizon)
//!     .unwrap();
//! let batch = engine.get_records(&mut iterator, None).unwrap();
//! let record = batch.records().next().unwrap();
//! assert_eq!((record.partition_key, record.data), ("customer-7", &b"hello"[..]));
//! assert_eq!(record.sequence_number, put.sequence_number);
//! ```
//!
//! - Writes go to the core that owns the shard, over a bounded queue; [`Engine::put`] and
//!   [`Engine::put_batch`] return per-record results in request order.
//! - Reads run on the caller's thread, straight from the mapped log: [`Engine::get_records`]
//!   returns records that borrow the mapping.
//! - [`Engine::split_shard`], [`Engine::merge_shards`] and [`Engine::update_shard_count`]
//!   reshard while writers run; [`Engine::stream_reader`] reads parents before children, so
//!   each key's records come out in put order.
//! - Every operation that waits for another thread (puts, stream administration,
//!   subscriptions) has an async form that works on any runtime and a `_blocking` form.
//!   Reads, listings and iterator calls never wait for another thread: they are plain
//!   functions, safe to call from async code (on data not in the page cache they fault pages
//!   in from disk, as any mapped read does; call them from a blocking pool if that matters).
//!
//! Limits are Kinesis' (see [`limits`]): 500 records and 10 MiB per batch, partition keys of
//! 1..=256 characters, records up to the stream's maximum (1 MiB by default, up to 10 MiB),
//! retention 24..=8760 hours. The design is in docs/design/core-engine.md.

mod admin;
mod catalog;
mod config;
mod control;
mod engine;
mod error;
pub mod hashkey;
mod iterator;
pub mod limits;
mod lineage;
mod list_shards;
mod metrics;
mod names;
mod put;
mod read;
mod reshard;
mod runtime;
pub mod seqnum;
mod subscription;
mod throttle;
mod token;

pub use admin::{
    CreateStream, ListShards, ShardDescription, ShardFilter, ShardPage, StreamDescription,
    StreamMode, StreamPage, StreamStatus, StreamSummary,
};
pub use config::{EngineConfig, ReshardStep, ThroughputLimits};
pub use engine::Engine;
pub use error::{AdminError, Error, ErrorCode, OpenError, PutError, ReadError, ReshardError};
pub use hashkey::HashKeyRange;
pub use iterator::{IteratorStart, ShardIterator};
pub use lineage::{ShardRecords, StreamReader};
pub use names::{validate_partition_key, validate_stream_name};
pub use put::{PutRecord, PutRecordResult, PutResult};
pub use read::{RawRecord, Record, Records};
pub use reshard::{ScalingType, ShardCountUpdate};
pub use seqnum::{SequenceNumber, ShardId};
pub use sluice_storage as storage;
pub use sluice_storage::{Clock, Durability, ManualClock, ScaledClock, SystemClock};
pub use subscription::{Subscription, SubscriptionEvent};
