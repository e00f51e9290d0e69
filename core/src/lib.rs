//! # sluice-core
//!
//! The engine: streams, shards, hash-key routing, sequence numbers, shard lineage and the
//! thread-per-core runtime, on top of [`sluice_storage`]. It is being built (see the issue
//! tracker: "Core engine"); today it only re-exports the storage layer it will be built on, so
//! that dependants can already name one crate.

pub use sluice_storage as storage;
