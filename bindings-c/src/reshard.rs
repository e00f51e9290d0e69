//! Resharding.

use crate::engine::{engine_arg, sluice_engine};
use crate::error::sluice_result;
use crate::ffi::{call, text};
use std::ffi::c_char;

/// Splits open shard `shard_id` at `new_starting_hash_key` (decimal): two children take the
/// range below and from the key.
///
/// Thread safety: any thread; any number of calls on one engine at once.
///
/// # Safety
/// `engine` is a live engine; the strings are NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sluice_split_shard(
    engine: *const sluice_engine,
    stream: *const c_char,
    shard_id: *const c_char,
    new_starting_hash_key: *const c_char,
) -> sluice_result {
    call("sluice_split_shard", || {
        // SAFETY: caller promises on each argument.
        let (engine, stream, shard, key) = unsafe {
            (
                engine_arg(engine)?,
                text(stream, "stream")?,
                text(shard_id, "shard_id")?,
                text(new_starting_hash_key, "new_starting_hash_key")?,
            )
        };
        Ok(engine.stream(stream)?.split_shard(shard, key).wait()?)
    })
}

/// Merges two adjacent open shards into one.
///
/// Thread safety: any thread; any number of calls on one engine at once.
///
/// # Safety
/// `engine` is a live engine; the strings are NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sluice_merge_shards(
    engine: *const sluice_engine,
    stream: *const c_char,
    shard_id: *const c_char,
    adjacent_shard_id: *const c_char,
) -> sluice_result {
    call("sluice_merge_shards", || {
        // SAFETY: caller promises on each argument.
        let (engine, stream, a, b) = unsafe {
            (
                engine_arg(engine)?,
                text(stream, "stream")?,
                text(shard_id, "shard_id")?,
                text(adjacent_shard_id, "adjacent_shard_id")?,
            )
        };
        Ok(engine.stream(stream)?.merge_shards(a, b).wait()?)
    })
}

/// Reshards to `target` open shards splitting the hash space evenly (between half and double
/// the current count).
///
/// Thread safety: any thread; any number of calls on one engine at once.
///
/// # Safety
/// `engine` is a live engine; `stream` is NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sluice_update_shard_count(
    engine: *const sluice_engine,
    stream: *const c_char,
    target: u32,
) -> sluice_result {
    call("sluice_update_shard_count", || {
        // SAFETY: caller promises on each argument.
        let (engine, stream) = unsafe { (engine_arg(engine)?, text(stream, "stream")?) };
        engine.stream(stream)?.update_shard_count(target).wait()?;
        Ok(())
    })
}
