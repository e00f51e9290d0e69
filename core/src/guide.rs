//! # Embedding Sluice: a guide
//!
//! Each section is a complete program (they run as the crate's doc tests). They open the engine
//! in a temporary directory with one core and small segments; a real deployment keeps the
//! defaults (`EngineConfig::new(dir)`: every CPU, 64 MiB segments, durable puts).
//!
//! ## Open, create, shut down
//!
//! [`Engine::open`](crate::Engine::open) starts the core threads and recovers whatever the
//! directory holds. Dropping the last clone of the engine (and of every handle, iterator or
//! subscription, which keep it open) finishes accepted puts, syncs the logs and stops the
//! threads. [`Engine::close`](crate::Engine::close) does the same at once, whoever else holds
//! a clone, and returns the first failure of those final syncs instead of dropping it.
//!
//! ```
//! use sluice_core::{CreateStream, Engine, EngineConfig};
//!
//! # fn main() -> Result<(), sluice_core::Error> {
//! let dir = tempfile::tempdir().unwrap();
//! let mut config = EngineConfig::new(dir.path());
//! config.cores = 1;
//! config.segment_size_bytes = 4 << 20;
//! let engine = Engine::open(config.clone())?;
//! // Streams survive restarts: create only what is missing.
//! let orders = match engine.stream("orders") {
//!     Ok(orders) => orders,
//!     Err(_) => engine.create_stream(CreateStream::provisioned("orders", 4)).wait()?,
//! };
//! assert_eq!(orders.summary()?.open_shard_count, 4);
//! drop(orders);
//! engine.close()?; // shuts down: threads stopped, logs synced, the result reported
//!
//! let engine = Engine::open(config)?; // reopened: the stream is still there
//! assert_eq!(engine.list_streams(None, None)?.names, ["orders"]);
//! # Ok(())
//! # }
//! ```
//!
//! ## Put: async and blocking
//!
//! Puts are sent to the core that owns the shard; the record's partition key (MD5) or explicit
//! hash key picks the shard. The same call is a future on any runtime or, with `.wait()`, a
//! blocking call on a plain thread. Durability is an option of the call: `Durable` (the
//! default: acknowledged once fdatasync'd, surviving a power cut) or `Visible` (readable at
//! once, in the page cache; it survives a crash of the process).
//!
//! ```
//! use sluice_core::{CreateStream, Durability, Engine, EngineConfig, PutRecord};
//!
//! # fn main() -> Result<(), sluice_core::Error> {
//! # let dir = tempfile::tempdir().unwrap();
//! # let mut config = EngineConfig::new(dir.path());
//! # config.cores = 1;
//! # config.segment_size_bytes = 4 << 20;
//! let engine = Engine::open(config)?;
//! let orders = engine.create_stream(CreateStream::provisioned("orders", 2)).wait()?;
//!
//! // Blocking, from any thread.
//! let first = orders.put(PutRecord::new("customer-7", b"created")).wait()?;
//!
//! // Async, here on tokio; any executor works.
//! let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
//! let second = runtime.block_on(async {
//!     orders
//!         .put(PutRecord::new("customer-7", b"paid"))
//!         .durability(Durability::Visible)
//!         .await
//! })?;
//! // One key, one shard, in put order.
//! assert_eq!(first.shard_id, second.shard_id);
//! assert!(second.sequence_number > first.sequence_number);
//!
//! // Up to 500 records (10 MiB) per batch; one result per record, in request order.
//! let records: Vec<PutRecord<'_>> = (0..100)
//!     .map(|_| PutRecord::new("customer-8", b"line item"))
//!     .collect();
//! let results = orders.put_batch(&records).wait()?;
//! assert!(results.iter().all(|r| r.is_ok()));
//! # Ok(())
//! # }
//! ```
//!
//! ## Read zero-copy
//!
//! Reads never go through the cores: [`Engine::get_records`](crate::Engine::get_records) walks
//! the shard's memory-mapped segment on the calling thread, and each [`Record`](crate::Record)
//! borrows the mapping (no copy). An iterator can be turned into a signed, expiring token and
//! back, to hand to another process or a client.
//!
//! ```
//! use sluice_core::{CreateStream, Engine, EngineConfig, IteratorStart, PutRecord, ShardId};
//!
//! # fn main() -> Result<(), sluice_core::Error> {
//! # let dir = tempfile::tempdir().unwrap();
//! # let mut config = EngineConfig::new(dir.path());
//! # config.cores = 1;
//! # config.segment_size_bytes = 4 << 20;
//! let engine = Engine::open(config)?;
//! let logs = engine.create_stream(CreateStream::provisioned("logs", 1)).wait()?;
//! for line in ["GET /", "GET /about", "POST /login"] {
//!     logs.put(PutRecord::new("web-1", line.as_bytes())).wait()?;
//! }
//! let mut iterator = logs.shard_iterator(&ShardId::new(0), IteratorStart::TrimHorizon)?;
//! let batch = engine.get_records(&mut iterator, Some(2))?;
//! let lines: Vec<&[u8]> = batch.records().map(|r| r.data).collect(); // borrowed, not copied
//! assert_eq!(lines, [&b"GET /"[..], b"GET /about"]);
//!
//! // The iterator moved past what was read; as a token it can travel.
//! let token = engine.iterator_token(&iterator);
//! let mut resumed = engine.iterator_from_token(&token)?;
//! let rest = engine.get_records(&mut resumed, None)?;
//! assert_eq!(rest.records().next().unwrap().data, b"POST /login");
//! assert_eq!(rest.millis_behind_latest, 0);
//! # Ok(())
//! # }
//! ```
//!
//! ## Reshard, then read a stream along its lineage
//!
//! A split closes a shard and opens two children; a merge closes two adjacent shards and
//! opens one. Writers keep running while it happens. A [`StreamReader`](crate::StreamReader)
//! reads every shard, finishing parents before their children, so each key's records come
//! out in put order across the reshard.
//!
//! ```
//! use sluice_core::{CreateStream, Engine, EngineConfig, PutRecord, ShardId};
//!
//! # fn main() -> Result<(), sluice_core::Error> {
//! # let dir = tempfile::tempdir().unwrap();
//! # let mut config = EngineConfig::new(dir.path());
//! # config.cores = 1;
//! # config.segment_size_bytes = 4 << 20;
//! let engine = Engine::open(config)?;
//! let events = engine.create_stream(CreateStream::provisioned("events", 1)).wait()?;
//! events.put(PutRecord::new("k", b"before")).wait()?;
//! // Split the only shard at the middle of the hash key space.
//! events.split_shard(&ShardId::new(0), &(1u128 << 127).to_string()).wait()?;
//! events.put(PutRecord::new("k", b"after")).wait()?;
//! assert_eq!(events.summary()?.open_shard_count, 2);
//!
//! let mut reader = events.reader()?;
//! let mut seen = Vec::new();
//! while let Some(read) = reader.read(None)? {
//!     seen.extend(read.records.records().map(|r| r.data.to_vec()));
//!     if reader.is_finished() || seen.len() == 2 {
//!         break; // the children stay open: a live reader would keep polling
//!     }
//! }
//! assert_eq!(seen, [b"before".to_vec(), b"after".to_vec()]);
//!
//! // Back to one shard: merge the two children (uniform scaling does the same).
//! let update = events.update_shard_count(1).wait()?;
//! assert_eq!(update.target_shard_count, 1);
//! # Ok(())
//! # }
//! ```
//!
//! ## Subscribe
//!
//! A [`Subscription`](crate::Subscription) is pushed records as they become visible (the
//! enhanced fan-out shape): `next().await` on any runtime, or `next_blocking(timeout)`.
//! Each event's continuation sequence number is where to resume without a gap or a duplicate.
//!
//! ```
//! use sluice_core::{CreateStream, Engine, EngineConfig, IteratorStart, PutRecord, ShardId};
//! use std::time::Duration;
//!
//! # fn main() -> Result<(), sluice_core::Error> {
//! # let dir = tempfile::tempdir().unwrap();
//! # let mut config = EngineConfig::new(dir.path());
//! # config.cores = 1;
//! # config.segment_size_bytes = 4 << 20;
//! let engine = Engine::open(config)?;
//! let ticks = engine.create_stream(CreateStream::provisioned("ticks", 1)).wait()?;
//! let mut subscription = ticks.subscribe(&ShardId::new(0), IteratorStart::Latest)?;
//! let writer = {
//!     let ticks = ticks.clone();
//!     std::thread::spawn(move || ticks.put(PutRecord::new("EURUSD", b"1.0841")).wait())
//! };
//! let event = subscription
//!     .next_blocking(Duration::from_secs(10))?
//!     .expect("a record within the timeout");
//! assert_eq!(event.records.records().next().unwrap().data, b"1.0841");
//! writer.join().unwrap()?;
//! # Ok(())
//! # }
//! ```
//!
//! ## Consumers: resume where you left off
//!
//! A [`Consumer`](crate::Consumer) is a name with one committed position per shard: "every
//! record up to and including this one is processed". Commits are durable or visible as the
//! call says, survive restarts, and go with the stream when it is deleted. The consumer's
//! reader starts each shard just after its position, along the lineage (parents first; a
//! closed parent committed to its end counts as done; children without a position start from
//! the trim horizon), so a restarted consumer gets every record after its last commit again
//! at least once and none before it (docs/design/checkpoints.md).
//!
//! ```
//! use sluice_core::{CreateStream, Durability, Engine, EngineConfig, PutRecord};
//!
//! # fn main() -> Result<(), sluice_core::Error> {
//! # let dir = tempfile::tempdir().unwrap();
//! # let mut config = EngineConfig::new(dir.path());
//! # config.cores = 1;
//! # config.segment_size_bytes = 4 << 20;
//! let engine = Engine::open(config.clone())?;
//! let jobs = engine.create_stream(CreateStream::provisioned("jobs", 1)).wait()?;
//! for job in ["a", "b", "c"] {
//!     jobs.put(PutRecord::new("queue", job.as_bytes())).wait()?;
//! }
//! let worker = jobs.consumer("worker")?;
//! let mut reader = worker.reader()?;
//! let read = reader.read(Some(2))?.expect("an open shard");
//! let last = read.records.records().last().unwrap().sequence_number; // "b" is done
//! worker.commit(&read.shard_id, last).durability(Durability::Durable).wait()?;
//! drop((read, reader, worker, jobs));
//! engine.close()?; // reports whether the final syncs succeeded
//!
//! let engine = Engine::open(config)?;
//! let worker = engine.stream("jobs")?.consumer("worker")?;
//! let read = worker.reader()?.read(None)?.expect("an open shard");
//! let rest: Vec<&[u8]> = read.records.records().map(|r| r.data).collect();
//! assert_eq!(rest, [b"c"]);
//! # Ok(())
//! # }
//! ```
//!
//! ## A plain log: append, read, tail
//!
//! For an append-only log without shards and sequence numbers, [`Engine::log`] gives a
//! [`Log`](crate::Log): a stream of one shard, created if missing, whose records have dense
//! `u64` offsets from 0. `append` answers the offset; `read` and `tail` start at any offset.
//!
//! [`Engine::log`]: crate::Engine::log
//!
//! ```
//! use sluice_core::{Engine, EngineConfig};
//! use std::time::Duration;
//!
//! # fn main() -> Result<(), sluice_core::Error> {
//! # let dir = tempfile::tempdir().unwrap();
//! # let mut config = EngineConfig::new(dir.path());
//! # config.cores = 1;
//! # config.segment_size_bytes = 4 << 20;
//! let engine = Engine::open(config)?;
//! let log = engine.log("audit").wait()?;
//! assert_eq!(log.append(b"login").wait()?, 0);
//! assert_eq!(log.append_batch(&[&b"read"[..], b"logout"]).wait()?, [1, 2]);
//!
//! let read = log.read(1, 10)?;
//! let entries: Vec<(u64, &[u8])> = read.entries().map(|e| (e.offset, e.data)).collect();
//! assert_eq!(entries, [(1, &b"read"[..]), (2, b"logout")]);
//!
//! // Follow it from the end: blocking here, `tail.next().await` on any runtime.
//! let mut tail = log.tail(log.next_offset())?;
//! log.append(b"login").wait()?;
//! let next = tail.next_blocking(Duration::from_secs(10))?.expect("within the timeout");
//! assert_eq!(next.entries().next().unwrap().offset, 3);
//! # Ok(())
//! # }
//! ```
//!
//! ## Errors
//!
//! Every area has its own error enum; each converts into [`Error`](crate::Error), and each
//! variant says what went wrong as data, with a stable [`ErrorCode`](crate::ErrorCode).
//!
//! ```
//! use sluice_core::{CreateStream, Engine, EngineConfig, ErrorCode, PutError, PutRecord};
//!
//! # fn main() -> Result<(), sluice_core::Error> {
//! # let dir = tempfile::tempdir().unwrap();
//! # let mut config = EngineConfig::new(dir.path());
//! # config.cores = 1;
//! # config.segment_size_bytes = 4 << 20;
//! let engine = Engine::open(config)?;
//! let small = engine.create_stream(CreateStream::provisioned("small", 1)).wait()?;
//! let too_big = vec![0u8; 2 << 20];
//! match small.put(PutRecord::new("k", &too_big)).wait() {
//!     Err(PutError::RecordTooLarge { index: 0, size_bytes, max_bytes }) => {
//!         assert_eq!((size_bytes, max_bytes), (too_big.len() as u64 + 1, 1 << 20));
//!     }
//!     other => panic!("expected RecordTooLarge, got {other:?}"),
//! }
//! let missing = engine.stream("nope").unwrap_err();
//! assert_eq!(missing.code(), ErrorCode::ResourceNotFound);
//! # Ok(())
//! # }
//! ```
