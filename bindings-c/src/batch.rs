//! Zero-copy record views handed to C, and `sluice_get`.

use crate::engine::{engine_arg, sluice_engine};
use crate::error::sluice_result;
use crate::ffi::{Failure, call, free, handle, out, text};
use crate::wording;
use sluice_core::{Records, SequenceNumber};
use std::ffi::c_char;

/// A record, pointing into the mapped log: valid until the next call on the handle it came
/// from (iterator, subscription or batch), or its free.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct sluice_record {
    /// The partition key's bytes (UTF-8, not NUL-terminated).
    pub partition_key: *const c_char,
    /// Its length in bytes.
    pub partition_key_len: usize,
    /// The data.
    pub data: *const u8,
    /// Its length in bytes.
    pub data_len: usize,
    /// When the engine accepted it, ms since the Unix epoch.
    pub arrival_timestamp_ms: u64,
    /// The sequence number's high 64 bits (its shard's index).
    pub sequence_number_high: u64,
    /// The sequence number's low 64 bits (its position in the shard plus one; 0 is the shard's
    /// start).
    pub sequence_number_low: u64,
}

/// After a read: how far behind the tip, and whether a closed shard was read to its end.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct sluice_read_status {
    /// Milliseconds between the last record returned and the shard's newest; 0 at the tip.
    pub millis_behind_latest: u64,
    /// 1 when the shard is closed and read to its end: read its children next.
    pub end_of_shard: u32,
    /// Number of child shards (at the end of a closed shard).
    pub child_shard_count: u32,
}

/// One record from `sluice_get`. Thread safety: one thread at a time.
pub struct sluice_batch {
    pub(crate) batch: Batch,
}

/// Records held for C: the lease on their segment and the views into it.
#[derive(Default)]
pub(crate) struct Batch {
    views: Vec<sluice_record>,
    children: Vec<sluice_core::ShardId>,
    status: sluice_read_status,
    /// Keeps the mapped bytes the views point into alive; dropped after the views.
    records: Option<Records>,
}

// SAFETY: the raw pointers in `views` point into the mapping `records` keeps alive, which is
// immutable and shared between threads by design (`Records` is `Send`).
unsafe impl Send for Batch {}

impl Batch {
    /// Replaces the held records (the previous views become invalid, as documented).
    pub(crate) fn set(&mut self, records: Records) {
        // Built aside and swapped in with the records they point into, so that a panic half
        // way (caught at the boundary) never leaves views pointing into dropped records.
        let mut views = std::mem::take(&mut self.views);
        views.clear();
        views.extend(records.raw_records().map(|r| sluice_record {
            partition_key: r.partition_key.as_ptr().cast(),
            partition_key_len: r.partition_key.len(),
            data: r.data.as_ptr(),
            data_len: r.data.len(),
            arrival_timestamp_ms: r.arrival_timestamp_ms,
            sequence_number_high: (r.sequence_number.0 >> 64) as u64,
            sequence_number_low: r.sequence_number.0 as u64,
        }));
        self.status = sluice_read_status {
            millis_behind_latest: records.millis_behind_latest,
            end_of_shard: u32::from(records.end_of_shard),
            child_shard_count: records.child_shard_ids.len() as u32,
        };
        self.children = records.child_shard_ids.clone();
        self.records = Some(records);
        self.views = views;
    }

    /// Forgets the last read (a poll that timed out delivered nothing).
    pub(crate) fn clear(&mut self) {
        self.views.clear();
        self.children.clear();
        self.status = sluice_read_status::default();
        self.records = None;
    }

    pub(crate) fn len(&self) -> usize {
        self.views.len()
    }

    pub(crate) fn views(&self) -> &[sluice_record] {
        &self.views
    }

    pub(crate) fn record(&self, index: usize) -> Result<sluice_record, Failure> {
        self.views
            .get(index)
            .copied()
            .ok_or_else(|| out_of_range(index, self.views.len(), "holds records"))
    }

    pub(crate) fn status(&self) -> sluice_read_status {
        self.status
    }

    pub(crate) fn child(&self, index: usize) -> Result<&str, Failure> {
        self.children
            .get(index)
            .map(|id| &**id)
            .ok_or_else(|| out_of_range(index, self.children.len(), "names child shards"))
    }
}

/// An index past the `len` items of the last read ("holds records", "names child shards").
fn out_of_range(index: usize, len: usize, what: &str) -> Failure {
    if len == 0 {
        Failure::invalid(format!("index is {index}; the last read {what}: none"))
    } else {
        Failure::invalid(format!(
            "index is {index}; the last read {what} 0 to {}",
            len - 1
        ))
    }
}

/// Reads the record with sequence number `sequence_number` (decimal) of `stream`. A number
/// that is not a decimal, or that names no retained record of the stream (never issued, or
/// removed by retention), is `SLUICE_INVALID_ARGUMENT`, as a starting sequence number of an
/// iterator would be; a stream that does not exist is `SLUICE_RESOURCE_NOT_FOUND`.
///
/// Thread safety: any thread; any number of calls on one engine at once.
///
/// # Safety
/// `engine` is a live engine; the strings are NUL-terminated; `out_batch` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sluice_get(
    engine: *const sluice_engine,
    stream: *const c_char,
    sequence_number: *const c_char,
    out_batch: *mut *mut sluice_batch,
) -> sluice_result {
    call("sluice_get", || {
        let out_batch = out(out_batch, "out_batch")?;
        // SAFETY: caller promises on each argument.
        let (engine, stream, seq) = unsafe {
            (
                engine_arg(engine)?,
                text(stream, "stream")?,
                text(sequence_number, "sequence_number")?,
            )
        };
        let seq = SequenceNumber::parse(seq)
            .map_err(|e| Failure::invalid(wording::sequence_number(&e, "sequence_number")))?;
        let mut batch = Batch::default();
        batch.set(engine.stream(stream)?.get(seq)?);
        // SAFETY: caller promise on `out_batch`.
        unsafe { out_batch.write(Box::into_raw(Box::new(sluice_batch { batch }))) };
        Ok(())
    })
}

/// Record `index` of a `sluice_get` batch (it holds one, at index 0).
///
/// Thread safety: one thread at a time per batch (it may move between threads).
///
/// # Safety
/// `batch` is a live batch; `out_record` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sluice_batch_record(
    batch: *const sluice_batch,
    index: usize,
    out_record: *mut sluice_record,
) -> sluice_result {
    call("sluice_batch_record", || {
        let out_record = out(out_record, "out_record")?;
        // SAFETY: caller promise on `batch`.
        let record = unsafe { handle(batch, "batch") }?.batch.record(index)?;
        // SAFETY: caller promise on `out_record`.
        unsafe { out_record.write(record) };
        Ok(())
    })
}

/// Frees a batch (NULL does nothing); its records' pointers become invalid.
///
/// Thread safety: one thread at a time per batch (it may move between threads).
///
/// # Safety
/// `batch` is NULL or from `sluice_get`, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sluice_batch_free(batch: *mut sluice_batch) {
    // SAFETY: caller promise.
    unsafe { free(batch) }
}

/// Writes a sequence number as decimal, NUL-terminated, into `buf` (40 bytes always suffice).
///
/// Thread safety: any thread.
///
/// # Safety
/// `buf` points to `buf_len` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sluice_sequence_number_format(
    high: u64,
    low: u64,
    buf: *mut c_char,
    buf_len: usize,
) -> sluice_result {
    call("sluice_sequence_number_format", || {
        let text = SequenceNumber((u128::from(high) << 64) | u128::from(low)).to_string();
        write_text(buf, buf_len, &text, "buf")
    })
}

/// Copies `value` NUL-terminated into a caller's buffer, or fails (writing nothing) when it
/// does not fit.
pub(crate) fn write_text(
    buf: *mut c_char,
    buf_len: usize,
    value: &str,
    what: &str,
) -> Result<(), Failure> {
    if buf.is_null() {
        return Err(Failure::invalid(format!("{what} is NULL")));
    }
    if value.len() + 1 > buf_len {
        return Err(Failure::invalid(format!(
            "{what}_len is {buf_len}; {} bytes are needed",
            value.len() + 1
        )));
    }
    // SAFETY: not NULL, and the caller promises `buf_len` writable bytes, checked enough.
    let target = unsafe { std::slice::from_raw_parts_mut(buf.cast::<u8>(), value.len() + 1) };
    target[..value.len()].copy_from_slice(value.as_bytes());
    target[value.len()] = 0;
    Ok(())
}
