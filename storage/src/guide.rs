//! # Building on shard logs: a guide
//!
//! Most users reach the logs through `sluice-core`'s engine. Build on this crate directly for
//! a log of your own: one [`ShardLog`](crate::ShardLog) per partition, owned by the glommio
//! executor that writes it, and read from any thread. The examples run as doc tests.
//!
//! ## Write on the owner, read anywhere
//!
//! The log's write side is `!Send` and lives on one executor ([`runtime::block_on`] here; a
//! pinned [`runtime::spawn_core`] thread in a real program). Its [`LogReader`] is `Send +
//! Sync`: any thread reads the mapped segments up to the published watermark, without a
//! copy and without a round trip to the owner.
//!
//! [`runtime::block_on`]: crate::runtime::block_on
//! [`runtime::spawn_core`]: crate::runtime::spawn_core
//! [`LogReader`]: crate::LogReader
//!
//! ```
//! use sluice_storage::runtime::block_on;
//! use sluice_storage::{Durability, GlommioIo, LogConfig, ReadLimits, RecordIn, ShardLog, SystemClock};
//! use std::sync::Arc;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let config = LogConfig { segment_size_bytes: 4 << 20, ..LogConfig::default() };
//! let reader = block_on(async {
//!     let log = ShardLog::open(GlommioIo, dir.path(), config, Arc::new(SystemClock)).await.unwrap();
//!     for i in 0..1000u32 {
//!         let data = i.to_le_bytes();
//!         let batch = [RecordIn { key: b"sensor-1", data: &data }];
//!         // Visible: readable at once; a later Durable append or sync() makes it durable.
//!         log.append(&batch, Durability::Visible).await.unwrap();
//!     }
//!     log.sync().await.unwrap();
//!     log.reader()
//! });
//! // Another thread reads what the owner published, from the mapping.
//! let total = std::thread::spawn(move || {
//!     let (mut seq, mut total) = (0, 0u64);
//!     loop {
//!         let batch = reader.read(seq, ReadLimits::default()).unwrap();
//!         if batch.is_empty() {
//!             return total;
//!         }
//!         total += batch.records().map(|r| u64::from(r.data[0])).sum::<u64>();
//!         seq = batch.next_seq();
//!     }
//! })
//! .join()
//! .unwrap();
//! assert_eq!(total, (0..1000u64).map(|i| i % 256).sum::<u64>());
//! ```
//!
//! ## Reopen and recover
//!
//! Opening a log recovers it: sealed segments open from their footers, the rest is scanned
//! and cut at the first torn or corrupt batch, and the [`RecoveryReport`](crate::RecoveryReport)
//! says what was found. Sequence numbers go on from where they stopped.
//!
//! ```
//! use sluice_storage::runtime::block_on;
//! use sluice_storage::{Durability, GlommioIo, LogConfig, RecordIn, ShardLog, SystemClock};
//! use std::sync::Arc;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let config = LogConfig { segment_size_bytes: 4 << 20, ..LogConfig::default() };
//! block_on(async {
//!     let open = || ShardLog::open(GlommioIo, dir.path(), config.clone(), Arc::new(SystemClock));
//!     let log = open().await.unwrap();
//!     let batch = [RecordIn { key: b"k", data: b"kept" }];
//!     let first = log.append(&batch, Durability::Durable).await.unwrap();
//!     drop(log);
//!
//!     let log = open().await.unwrap();
//!     assert!(log.recovery_report().truncated.is_none(), "nothing was torn");
//!     let next = log.append(&batch, Durability::Durable).await.unwrap();
//!     assert!(next.base_seq > first.base_seq);
//! });
//! ```
//!
//! ## Housekeeping
//!
//! **The owner must run housekeeping**: [`ShardLog::maintain`](crate::ShardLog::maintain)
//! every ~100 ms, or [`ShardLog::run_maintenance`](crate::ShardLog::run_maintenance) spawned
//! beside the appends, which does it until the log fails. It retires segments older than
//! `retention_ms` (without it nothing ever expires and the ring fills up), seals full
//! segments (so a reopen finds them without a scan) and prepares a spare, so appends never
//! create files. A full ring is refused with `LogFull`, never overwritten.
//!
//! [`ShardLog::close`](crate::ShardLog::close) ends a log and says whether its last records
//! reached the disk; dropping it does not sync.
//!
//! ```
//! use futures_lite::future;
//! use sluice_storage::runtime::block_on;
//! use sluice_storage::{Durability, GlommioIo, LogConfig, RecordIn, ShardLog, SystemClock};
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! let dir = tempfile::tempdir().unwrap();
//! block_on(async {
//!     let config = LogConfig { segment_size_bytes: 4 << 20, ..LogConfig::default() };
//!     let log = ShardLog::open(GlommioIo, dir.path(), config, Arc::new(SystemClock)).await.unwrap();
//!     let work = async {
//!         let batch = [RecordIn { key: b"k", data: b"v" }];
//!         log.append(&batch, Durability::Visible).await.unwrap();
//!     };
//!     // Housekeeping runs as long as the work does (it only ends early if the log fails).
//!     let housekeeping = async {
//!         let failed = log.run_maintenance(Duration::from_millis(100)).await;
//!         panic!("housekeeping stopped: {failed:?}");
//!     };
//!     future::or(work, housekeeping).await;
//!     log.close().await.expect("every record is durable");
//! });
//! ```
