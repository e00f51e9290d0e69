//! Consumer checkpoints: a named consumer's durable position per shard
//! (docs/design/checkpoints.md).

use crate::engine::{engine_arg, sluice_engine};
use crate::error::sluice_result;
use crate::ffi::{call, free, handle, out, text};
use crate::put::durability;
use sluice_core::{Consumer, SequenceNumber};
use std::ffi::c_char;

/// A named consumer of one stream. Thread safety: any number of threads at once. It keeps the
/// engine open until it is freed.
pub struct sluice_consumer {
    consumer: Consumer,
}

/// Opens the consumer `name` (`[a-zA-Z0-9_.-]{1,128}`) of `stream`: its committed positions
/// if it has any, none if it is new (nothing is written until its first commit).
///
/// Thread safety: any thread.
///
/// # Safety
/// `engine` is a live engine handle; `stream` and `name` are NUL-terminated strings;
/// `out_consumer` points to writable memory for a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sluice_consumer_open(
    engine: *const sluice_engine,
    stream: *const c_char,
    name: *const c_char,
    out_consumer: *mut *mut sluice_consumer,
) -> sluice_result {
    call("sluice_consumer_open", || {
        let out_consumer = out(out_consumer, "out_consumer")?;
        // SAFETY: caller promises on each argument.
        let (engine, stream, name) = unsafe {
            (
                engine_arg(engine)?,
                text(stream, "stream")?,
                text(name, "name")?,
            )
        };
        let consumer = engine.stream(stream)?.consumer(name)?;
        let handle = Box::into_raw(Box::new(sluice_consumer { consumer }));
        // SAFETY: caller promise on `out_consumer`.
        unsafe { out_consumer.write(handle) };
        Ok(())
    })
}

/// Commits that every record of shard `shard_id` up to and including the sequence number
/// `(sequence_number_high, sequence_number_low)` (a record's, as `sluice_record` gives it, or
/// the shard's start: high = the shard's index, low = 0) is processed. `durability_code` is a
/// `SLUICE_DURABILITY_*`: `SLUICE_DURABILITY_DURABLE` returns once the position is on disk.
/// A number that is not the shard's start or one of its records is
/// `SLUICE_INVALID_ARGUMENT`.
///
/// Thread safety: any thread; any number of calls on one consumer at once.
///
/// # Safety
/// `consumer` is a live consumer handle; `shard_id` is a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sluice_consumer_commit(
    consumer: *const sluice_consumer,
    shard_id: *const c_char,
    sequence_number_high: u64,
    sequence_number_low: u64,
    durability_code: u32,
) -> sluice_result {
    call("sluice_consumer_commit", || {
        // SAFETY: caller promises on each argument.
        let (consumer, shard_id) =
            unsafe { (handle(consumer, "consumer")?, text(shard_id, "shard_id")?) };
        let durability = durability(durability_code)?;
        let seq = SequenceNumber(
            u128::from(sequence_number_high) << 64 | u128::from(sequence_number_low),
        );
        let commit = consumer.consumer.commit(shard_id, seq);
        match durability {
            Some(d) => commit.durability(d).wait()?,
            None => commit.wait()?,
        }
        Ok(())
    })
}

/// The committed position in shard `shard_id`: `*out_committed` is 1 and the number's halves
/// are written when the consumer has one there; `*out_committed` is 0 (and the halves are not
/// written) when it never committed there.
///
/// Thread safety: any thread.
///
/// # Safety
/// `consumer` is a live consumer handle; `shard_id` is a NUL-terminated string; the out
/// pointers point to writable memory.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sluice_consumer_position(
    consumer: *const sluice_consumer,
    shard_id: *const c_char,
    out_committed: *mut i32,
    out_sequence_number_high: *mut u64,
    out_sequence_number_low: *mut u64,
) -> sluice_result {
    call("sluice_consumer_position", || {
        let out_committed = out(out_committed, "out_committed")?;
        let out_high = out(out_sequence_number_high, "out_sequence_number_high")?;
        let out_low = out(out_sequence_number_low, "out_sequence_number_low")?;
        // SAFETY: caller promises on each argument.
        let (consumer, shard_id) =
            unsafe { (handle(consumer, "consumer")?, text(shard_id, "shard_id")?) };
        let position = consumer.consumer.position(shard_id)?;
        // SAFETY: caller promises on the out pointers.
        unsafe {
            out_committed.write(i32::from(position.is_some()));
            if let Some(seq) = position {
                out_high.write((seq.0 >> 64) as u64);
                out_low.write(seq.0 as u64);
            }
        }
        Ok(())
    })
}

/// Frees a consumer handle (NULL does nothing). Its positions stay in the engine.
///
/// Thread safety: any thread, once no other thread uses the handle.
///
/// # Safety
/// `consumer` is NULL or from `sluice_consumer_open`, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sluice_consumer_free(consumer: *mut sluice_consumer) {
    // SAFETY: caller promise.
    unsafe { free(consumer) }
}
