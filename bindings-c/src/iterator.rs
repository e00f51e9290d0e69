//! Shard iterators: every Kinesis type, zero-copy batches, tokens.

use crate::batch::{Batch, sluice_read_status, sluice_record, write_text};
use crate::engine::{EngineUser, engine_handle_arg, sluice_engine};
use crate::error::sluice_result;
use crate::ffi::{Failure, call, free, handle, handle_mut, optional_text, out, text};
use crate::wording;
use sluice_core::{Engine, IteratorStart, SequenceNumber, ShardIterator};
use std::ffi::c_char;

/// Where an iterator or subscription starts (Kinesis' `ShardIteratorType`).
pub type sluice_iterator_type = u32;
/// The oldest retained record.
pub const SLUICE_TRIM_HORIZON: sluice_iterator_type = 0;
/// After the newest record: only records written from now on.
pub const SLUICE_LATEST: sluice_iterator_type = 1;
/// At the record `sequence_number`.
pub const SLUICE_AT_SEQUENCE_NUMBER: sluice_iterator_type = 2;
/// Just after the record `sequence_number`.
pub const SLUICE_AFTER_SEQUENCE_NUMBER: sluice_iterator_type = 3;
/// At the first record that arrived at or after `timestamp_ms`.
pub const SLUICE_AT_TIMESTAMP: sluice_iterator_type = 4;

/// Bytes a buffer for `sluice_iterator_token` needs at most (Kinesis' 512, plus the NUL).
pub const SLUICE_ITERATOR_TOKEN_BYTES: usize = 513;

/// An iterator over one shard, holding the records of its last read. Thread safety: one
/// thread at a time.
pub struct sluice_iterator {
    engine: Engine,
    iterator: ShardIterator,
    batch: Batch,
    _user: EngineUser,
}

impl sluice_iterator {
    /// A new handle for C owning `iterator`, made through `engine`.
    fn into_handle(engine: &sluice_engine, iterator: ShardIterator) -> *mut sluice_iterator {
        Box::into_raw(Box::new(sluice_iterator {
            engine: engine.engine.clone(),
            iterator,
            batch: Batch::default(),
            _user: engine.user(),
        }))
    }
}

/// The start of an iterator or subscription from C arguments.
///
/// # Safety
/// `sequence_number` is NULL or NUL-terminated.
pub(crate) unsafe fn start_arg(
    kind: sluice_iterator_type,
    sequence_number: *const c_char,
    timestamp_ms: u64,
) -> Result<IteratorStart, Failure> {
    // SAFETY: forwarded caller promise.
    let seq = unsafe { optional_text(sequence_number, "sequence_number") }?;
    let parse = |what: &str| -> Result<SequenceNumber, Failure> {
        let text = seq.ok_or_else(|| {
            Failure::invalid(format!("sequence_number is NULL; {what} needs one"))
        })?;
        SequenceNumber::parse(text)
            .map_err(|e| Failure::invalid(wording::sequence_number(&e, "sequence_number")))
    };
    Ok(match kind {
        SLUICE_TRIM_HORIZON => IteratorStart::TrimHorizon,
        SLUICE_LATEST => IteratorStart::Latest,
        SLUICE_AT_SEQUENCE_NUMBER => {
            IteratorStart::AtSequenceNumber(parse("SLUICE_AT_SEQUENCE_NUMBER")?)
        }
        SLUICE_AFTER_SEQUENCE_NUMBER => {
            IteratorStart::AfterSequenceNumber(parse("SLUICE_AFTER_SEQUENCE_NUMBER")?)
        }
        SLUICE_AT_TIMESTAMP => IteratorStart::AtTimestamp(timestamp_ms),
        other => {
            return Err(Failure::invalid(format!(
                "kind is {other}; it must be SLUICE_TRIM_HORIZON (0) to SLUICE_AT_TIMESTAMP (4)"
            )));
        }
    })
}

/// The engine, stream, shard and start position of an iterator or subscription request.
///
/// # Safety
/// As `sluice_iterator_new` documents for these arguments.
pub(crate) unsafe fn position_args<'a>(
    engine: *const sluice_engine,
    stream: *const c_char,
    shard_id: *const c_char,
    kind: sluice_iterator_type,
    sequence_number: *const c_char,
    timestamp_ms: u64,
) -> Result<(&'a sluice_engine, &'a str, &'a str, IteratorStart), Failure> {
    // SAFETY: forwarded caller promises.
    unsafe {
        Ok((
            engine_handle_arg(engine)?,
            text(stream, "stream")?,
            text(shard_id, "shard_id")?,
            start_arg(kind, sequence_number, timestamp_ms)?,
        ))
    }
}

/// An iterator on `shard_id` of `stream`. `sequence_number` (decimal) is required for the
/// AT/AFTER types and ignored otherwise; `timestamp_ms` is used by `SLUICE_AT_TIMESTAMP`.
///
/// Thread safety: any thread; any number of calls on one engine at once.
///
/// # Safety
/// `engine` is a live engine; the strings are NUL-terminated (`sequence_number` may be
/// NULL); `out_iterator` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sluice_iterator_new(
    engine: *const sluice_engine,
    stream: *const c_char,
    shard_id: *const c_char,
    kind: sluice_iterator_type,
    sequence_number: *const c_char,
    timestamp_ms: u64,
    out_iterator: *mut *mut sluice_iterator,
) -> sluice_result {
    call("sluice_iterator_new", || {
        let out_iterator = out(out_iterator, "out_iterator")?;
        // SAFETY: caller promises on each argument.
        let (engine, stream, shard, start) = unsafe {
            position_args(
                engine,
                stream,
                shard_id,
                kind,
                sequence_number,
                timestamp_ms,
            )
        }?;
        let iterator = engine.engine.stream(stream)?.shard_iterator(shard, start)?;
        // SAFETY: caller promise on `out_iterator`.
        unsafe { out_iterator.write(sluice_iterator::into_handle(engine, iterator)) };
        Ok(())
    })
}

/// Reads up to `limit` records (1 to 10,000; 0 means 10,000; more is
/// `SLUICE_INVALID_ARGUMENT`) from the iterator's position and moves it past them;
/// `out_count` receives how many. The previous read's records become invalid.
///
/// Thread safety: one thread at a time per iterator (it may move between threads).
///
/// # Safety
/// `iterator` is a live iterator used by this thread only; `out_count` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sluice_iterator_next(
    iterator: *mut sluice_iterator,
    limit: usize,
    out_count: *mut usize,
) -> sluice_result {
    call("sluice_iterator_next", || {
        let out_count = out(out_count, "out_count")?;
        // SAFETY: caller promise on `iterator`.
        let it = unsafe { handle_mut(iterator, "iterator") }?;
        let records = it
            .engine
            .get_records(&mut it.iterator, (limit > 0).then_some(limit))?;
        it.batch.set(records);
        // SAFETY: caller promise on `out_count`.
        unsafe { out_count.write(it.batch.len()) };
        Ok(())
    })
}

/// Record `index` of the last read.
///
/// Thread safety: one thread at a time per iterator (it may move between threads).
///
/// # Safety
/// `iterator` is a live iterator; `out_record` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sluice_iterator_record(
    iterator: *const sluice_iterator,
    index: usize,
    out_record: *mut sluice_record,
) -> sluice_result {
    call("sluice_iterator_record", || {
        let out_record = out(out_record, "out_record")?;
        // SAFETY: caller promise on `iterator`.
        let record = unsafe { handle(iterator, "iterator") }?
            .batch
            .record(index)?;
        // SAFETY: caller promise on `out_record`.
        unsafe { out_record.write(record) };
        Ok(())
    })
}

/// All records of the last read at once: `*out_records` points to `*out_count` records,
/// valid until the next call on the iterator.
///
/// Thread safety: one thread at a time per iterator (it may move between threads).
///
/// # Safety
/// `iterator` is a live iterator; the out-parameters are writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sluice_iterator_records(
    iterator: *const sluice_iterator,
    out_records: *mut *const sluice_record,
    out_count: *mut usize,
) -> sluice_result {
    call("sluice_iterator_records", || {
        let (out_records, out_count) = (
            out(out_records, "out_records")?,
            out(out_count, "out_count")?,
        );
        // SAFETY: caller promise on `iterator`.
        let views = unsafe { handle(iterator, "iterator") }?.batch.views();
        // SAFETY: caller promises on the out-parameters.
        unsafe {
            out_records.write(views.as_ptr());
            out_count.write(views.len());
        }
        Ok(())
    })
}

/// The last read's lag and end-of-shard status.
///
/// Thread safety: one thread at a time per iterator (it may move between threads).
///
/// # Safety
/// `iterator` is a live iterator; `out_status` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sluice_iterator_status(
    iterator: *const sluice_iterator,
    out_status: *mut sluice_read_status,
) -> sluice_result {
    call("sluice_iterator_status", || {
        let out_status = out(out_status, "out_status")?;
        // SAFETY: caller promise on `iterator`.
        let status = unsafe { handle(iterator, "iterator") }?.batch.status();
        // SAFETY: caller promise on `out_status`.
        unsafe { out_status.write(status) };
        Ok(())
    })
}

/// Child shard `index` (after a read that reached the end of a closed shard), written
/// NUL-terminated into `buf` (24 bytes suffice).
///
/// Thread safety: one thread at a time per iterator (it may move between threads).
///
/// # Safety
/// `iterator` is a live iterator; `buf` points to `buf_len` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sluice_iterator_child_shard(
    iterator: *const sluice_iterator,
    index: usize,
    buf: *mut c_char,
    buf_len: usize,
) -> sluice_result {
    call("sluice_iterator_child_shard", || {
        // SAFETY: caller promise on `iterator`.
        let it = unsafe { handle(iterator, "iterator") }?;
        write_text(buf, buf_len, it.batch.child(index)?, "buf")
    })
}

/// The iterator's position as an opaque, signed token (what GetShardIterator hands out),
/// NUL-terminated into `buf` (`SLUICE_ITERATOR_TOKEN_BYTES` suffice). It expires after the
/// engine's iterator lifetime (300 s by default).
///
/// Thread safety: one thread at a time per iterator (it may move between threads).
///
/// # Safety
/// `iterator` is a live iterator; `buf` points to `buf_len` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sluice_iterator_token(
    iterator: *const sluice_iterator,
    buf: *mut c_char,
    buf_len: usize,
) -> sluice_result {
    call("sluice_iterator_token", || {
        // SAFETY: caller promise on `iterator`.
        let it = unsafe { handle(iterator, "iterator") }?;
        write_text(buf, buf_len, &it.engine.iterator_token(&it.iterator), "buf")
    })
}

/// The iterator a token stands for. A forged, altered or foreign token is
/// `SLUICE_INVALID_ARGUMENT`; an old one `SLUICE_EXPIRED_ITERATOR`.
///
/// Thread safety: any thread; any number of calls on one engine at once.
///
/// # Safety
/// `engine` is a live engine; `token` is NUL-terminated; `out_iterator` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sluice_iterator_from_token(
    engine: *const sluice_engine,
    token: *const c_char,
    out_iterator: *mut *mut sluice_iterator,
) -> sluice_result {
    call("sluice_iterator_from_token", || {
        let out_iterator = out(out_iterator, "out_iterator")?;
        // SAFETY: caller promises on each argument.
        let (engine, token) = unsafe { (engine_handle_arg(engine)?, text(token, "token")?) };
        let iterator = engine.engine.iterator_from_token(token)?;
        // SAFETY: caller promise on `out_iterator`.
        unsafe { out_iterator.write(sluice_iterator::into_handle(engine, iterator)) };
        Ok(())
    })
}

/// Frees an iterator (NULL does nothing); its records' pointers become invalid.
///
/// Thread safety: one thread at a time per iterator (it may move between threads).
///
/// # Safety
/// `iterator` is NULL or from this library, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sluice_iterator_free(iterator: *mut sluice_iterator) {
    // SAFETY: caller promise.
    unsafe { free(iterator) }
}
