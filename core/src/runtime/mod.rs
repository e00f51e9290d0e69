//! The thread-per-core runtime: core threads owning shard logs, and the queues that reach
//! them from any thread.

mod core;
mod io;
pub(crate) mod queue;
mod sync;

pub(crate) use self::core::{AppendGuard, CoreJob, CoreMessage, CoreState, Log, run_core};
pub(crate) use self::io::EngineIo;
