//! Writing records.

use crate::engine::{engine_arg, sluice_engine};
use crate::error::{SLUICE_OK, SLUICE_VALIDATION, sluice_result};
use crate::ffi::{Failure, call, fill, text};
use sluice_core::{Durability, PutRecord, PutRecordResult};
use std::ffi::c_char;

/// Use the engine's default durability.
pub const SLUICE_DURABILITY_DEFAULT: u32 = 0;
/// Acknowledge once readers can see the record.
pub const SLUICE_DURABILITY_VISIBLE: u32 = 1;
/// Acknowledge once an fdatasync covered the record.
pub const SLUICE_DURABILITY_DURABLE: u32 = 2;

/// A record to write.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct sluice_record_in {
    /// NUL-terminated UTF-8, 1 to 256 characters (Unicode scalar values), else
    /// `SLUICE_VALIDATION`.
    pub partition_key: *const c_char,
    /// The payload (NULL allowed when `data_len` is 0).
    pub data: *const u8,
    /// Its length.
    pub data_len: usize,
    /// NULL, or a decimal hash key that picks the shard instead of the partition key.
    pub explicit_hash_key: *const c_char,
}

/// Where one record landed, or why it was not written.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct sluice_put_result {
    /// `SLUICE_OK`, or this record's error (throttled shard, failed shard...).
    pub result: sluice_result,
    /// The shard, NUL-terminated (empty on error).
    pub shard_id: [c_char; 24],
    /// The sequence number's high 64 bits (0 on error).
    pub sequence_number_high: u64,
    /// The sequence number's low 64 bits (0 on error).
    pub sequence_number_low: u64,
}

pub(crate) fn durability(code: u32) -> Result<Option<Durability>, Failure> {
    match code {
        SLUICE_DURABILITY_DEFAULT => Ok(None),
        SLUICE_DURABILITY_VISIBLE => Ok(Some(Durability::Visible)),
        SLUICE_DURABILITY_DURABLE => Ok(Some(Durability::Durable)),
        other => Err(Failure::invalid(format!(
            "durability_code is {other}; it must be SLUICE_DURABILITY_DEFAULT (0), SLUICE_DURABILITY_VISIBLE (1) or SLUICE_DURABILITY_DURABLE (2)"
        ))),
    }
}

/// Reads C records into borrowed `PutRecord`s, refusing NULLs and bad UTF-8 before anything
/// is written. Error texts are built only on error: this runs once per record. `single`:
/// the records are `sluice_put`'s one `record`, not `sluice_put_batch`'s `records`.
///
/// # Safety
/// Every pointer in `records` is valid as `sluice_record_in` documents.
unsafe fn records_arg(
    records: &[sluice_record_in],
    single: bool,
) -> Result<Vec<PutRecord<'_>>, Failure> {
    let bad = |i: usize, field: &str, why: &str| {
        let record = if single {
            "record".to_owned()
        } else {
            format!("records[{i}]")
        };
        Failure::invalid(format!("{record}.{field} {why}"))
    };
    let mut out = Vec::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        // SAFETY: caller promise on the record's strings.
        let key = unsafe { c_text(r.partition_key) }
            .ok_or_else(|| bad(i, "partition_key", "is NULL or not UTF-8"))?;
        if r.data.is_null() && r.data_len > 0 {
            return Err(bad(i, "data", "is NULL with a nonzero length"));
        }
        // Before the bytes are touched, and before any length is added to another: no record
        // is larger, and a length near SIZE_MAX must not wrap a sum.
        if r.data_len as u64 > crate::SLUICE_RECORD_SIZE_MAX {
            return Err(bad(
                i,
                "data_len",
                &format!(
                    "is {}; a record holds at most {} bytes",
                    r.data_len,
                    crate::SLUICE_RECORD_SIZE_MAX
                ),
            ));
        }
        let data = if r.data_len == 0 {
            &[][..]
        } else {
            // SAFETY: not NULL; the caller promises `data_len` readable bytes.
            unsafe { std::slice::from_raw_parts(r.data, r.data_len) }
        };
        let explicit_hash_key = if r.explicit_hash_key.is_null() {
            None
        } else {
            // SAFETY: caller promise on the record's strings.
            let text = unsafe { c_text(r.explicit_hash_key) };
            Some(text.ok_or_else(|| bad(i, "explicit_hash_key", "is not UTF-8"))?)
        };
        out.push(PutRecord {
            partition_key: key,
            data,
            explicit_hash_key,
            sequence_number_for_ordering: None,
            encrypted: false,
        });
    }
    Ok(out)
}

/// A NUL-terminated UTF-8 string, or `None` for NULL or invalid UTF-8.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that outlives `'a`.
unsafe fn c_text<'a>(ptr: *const c_char) -> Option<&'a str> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: not NULL; the caller promises a NUL-terminated string.
    unsafe { std::ffi::CStr::from_ptr(ptr) }.to_str().ok()
}

fn to_c(result: &PutRecordResult) -> sluice_put_result {
    let mut c = sluice_put_result {
        result: SLUICE_OK,
        shard_id: [0; 24],
        sequence_number_high: 0,
        sequence_number_low: 0,
    };
    match result {
        Ok(put) => {
            fill(&mut c.shard_id, &put.shard_id);
            c.sequence_number_high = (put.sequence_number.0 >> 64) as u64;
            c.sequence_number_low = put.sequence_number.0 as u64;
        }
        Err(e) => c.result = e.code().as_u32(),
    }
    c
}

/// Writes `count` records to `stream`. `results` receives one entry per record, in order:
/// some may fail (a throttled or failed shard) while others succeed. The call fails as a
/// whole (and writes nothing, results untouched) on bad input: a count outside 1 to 500,
/// or a partition key outside 1 to 256 characters, is `SLUICE_VALIDATION`; more than 10 MiB
/// (10,485,760 bytes) of data and partition keys together, a record (data and key) larger
/// than the stream's largest record (1 MiB unless `sluice_update_max_record_size` changed
/// it), or an explicit hash key above 2^128 - 1, is `SLUICE_INVALID_ARGUMENT`.
/// `durability_code` is one of the `SLUICE_DURABILITY_` constants.
///
/// Thread safety: any thread; any number of calls on one engine at once.
///
/// # Safety
/// `engine` is a live engine; `stream` is NUL-terminated; `records` points to `count`
/// records; `results` to `count` writable results.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sluice_put_batch(
    engine: *const sluice_engine,
    stream: *const c_char,
    records: *const sluice_record_in,
    count: usize,
    durability_code: u32,
    results: *mut sluice_put_result,
) -> sluice_result {
    call("sluice_put_batch", || {
        if records.is_null() {
            return Err(Failure::invalid("records is NULL"));
        }
        if results.is_null() {
            return Err(Failure::invalid("results is NULL"));
        }
        // Before any record is read: a wrong count must not make the library read past the
        // caller's array.
        if !(1..=500).contains(&count) {
            return Err(Failure {
                code: SLUICE_VALIDATION,
                detail: format!("count is {count}; a batch holds 1 to 500 records"),
            });
        }
        // SAFETY: caller promises on `engine` and `stream`.
        let (engine, stream) = unsafe { (engine_arg(engine)?, text(stream, "stream")?) };
        // SAFETY: not NULL, 1 to 500; the caller promises `count` records.
        let c_records = unsafe { std::slice::from_raw_parts(records, count) };
        // SAFETY: caller promises on every record's fields.
        let batch = unsafe { records_arg(c_records, false) }?;
        let outcome = match durability(durability_code)? {
            Some(d) => engine
                .stream(stream)?
                .put_batch(&batch)
                .durability(d)
                .wait(),
            None => engine.stream(stream)?.put_batch(&batch).wait(),
        }
        .map_err(|e| Failure::put(&e, false))?;
        // Converted first, written after: nothing can fail between the two.
        let converted: Vec<sluice_put_result> = outcome.iter().map(to_c).collect();
        for (i, result) in converted.into_iter().enumerate() {
            // SAFETY: not NULL; the caller promises `count` writable results (possibly
            // uninitialised, so written without reading or dropping them).
            unsafe { results.add(i).write(result) };
        }
        Ok(())
    })
}

/// Writes one record; on success `out_result` says where it landed. A throttled or failed
/// shard is the call's result; the bounds and their codes are `sluice_put_batch`'s.
///
/// Thread safety: any thread; any number of calls on one engine at once.
///
/// # Safety
/// `engine` is a live engine; `stream` is NUL-terminated; `record` valid; `out_result`
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sluice_put(
    engine: *const sluice_engine,
    stream: *const c_char,
    record: *const sluice_record_in,
    durability_code: u32,
    out_result: *mut sluice_put_result,
) -> sluice_result {
    call("sluice_put", || {
        let out_result = crate::ffi::out(out_result, "out_result")?;
        // SAFETY: caller promises on each argument.
        let (engine, stream, record) = unsafe {
            (
                engine_arg(engine)?,
                text(stream, "stream")?,
                crate::ffi::handle(record, "record")?,
            )
        };
        // SAFETY: caller promises on the record's fields.
        let batch = unsafe { records_arg(std::slice::from_ref(record), true) }?;
        let put = match durability(durability_code)? {
            Some(d) => engine.stream(stream)?.put(batch[0]).durability(d).wait(),
            None => engine.stream(stream)?.put(batch[0]).wait(),
        };
        let put = put.map_err(|e| Failure::put(&e, true))?;
        // SAFETY: caller promise on `out_result`.
        unsafe { out_result.write(to_c(&Ok(put))) };
        Ok(())
    })
}
