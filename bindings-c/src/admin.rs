//! Stream administration.

use crate::engine::{engine_arg, sluice_engine};
use crate::error::sluice_result;
use crate::ffi::{Failure, call, fill, out, text};
use sluice_core::{AdminError, CreateStream, ListShards, Parameter, StreamMode};
use std::ffi::{c_char, c_void};

/// The smallest largest-record a stream can be given, in bytes (1 MiB).
pub const SLUICE_RECORD_SIZE_MIN: u64 = 1_048_576;
/// The largest largest-record a stream can be given, in bytes (10 MiB).
pub const SLUICE_RECORD_SIZE_MAX: u64 = 10_485_760;

/// A stream's state, from `sluice_describe_stream_summary`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct sluice_stream_summary {
    /// Shards open for writes.
    pub open_shard_count: u32,
    /// Retention in hours.
    pub retention_hours: u32,
    /// Largest record (partition key + data) in bytes.
    pub max_record_size_bytes: u64,
    /// Creation time, ms since the Unix epoch.
    pub created_ms: u64,
    /// 1 for an on-demand stream, 0 for a provisioned one.
    pub on_demand: u32,
}

/// One shard, from `sluice_list_shards`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct sluice_shard {
    /// `shardId-000000000000` style, NUL-terminated.
    pub shard_id: [c_char; 24],
    /// The parent's shard id, or "" for none.
    pub parent_shard_id: [c_char; 24],
    /// The other parent of a merge, or "".
    pub adjacent_parent_shard_id: [c_char; 24],
    /// First hash key of the range, decimal.
    pub starting_hash_key: [c_char; 40],
    /// Last hash key of the range, decimal.
    pub ending_hash_key: [c_char; 40],
    /// 1 while the shard takes writes, 0 once a reshard closed it.
    pub open: u32,
}

/// Called once per stream name (NUL-terminated, valid during the call).
pub type sluice_stream_name_callback =
    Option<unsafe extern "C" fn(context: *mut c_void, name: *const c_char)>;

/// Called once per shard (valid during the call).
pub type sluice_shard_callback =
    Option<unsafe extern "C" fn(context: *mut c_void, shard: *const sluice_shard)>;

/// Creates a provisioned stream of `shard_count` shards (1 to 10,000); it is active when
/// this returns. More open shards than the engine's limit (10,000 over all streams by
/// default) is `SLUICE_LIMIT_EXCEEDED`, checked first; then a name that is not 1 to 128 of
/// a-z, A-Z, 0-9, '_', '.', '-', or a shard count outside 1 to 10,000, is
/// `SLUICE_VALIDATION`; a name in use `SLUICE_RESOURCE_IN_USE`.
///
/// Thread safety: any thread; any number of calls on one engine at once.
///
/// # Safety
/// `engine` is a live engine; `name` a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sluice_create_stream(
    engine: *const sluice_engine,
    name: *const c_char,
    shard_count: u32,
) -> sluice_result {
    call("sluice_create_stream", || {
        // SAFETY: caller promises on each argument.
        let (engine, name) = unsafe { (engine_arg(engine)?, text(name, "name")?) };
        engine
            .create_stream(CreateStream::provisioned(name, shard_count))
            .wait()?;
        Ok(())
    })
}

/// Creates an on-demand stream (four shards; manual resharding is refused). Names and
/// errors as `sluice_create_stream`.
///
/// Thread safety: any thread; any number of calls on one engine at once.
///
/// # Safety
/// `engine` is a live engine; `name` a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sluice_create_stream_on_demand(
    engine: *const sluice_engine,
    name: *const c_char,
) -> sluice_result {
    call("sluice_create_stream_on_demand", || {
        // SAFETY: caller promises on each argument.
        let (engine, name) = unsafe { (engine_arg(engine)?, text(name, "name")?) };
        engine.create_stream(CreateStream::on_demand(name)).wait()?;
        Ok(())
    })
}

/// Deletes a stream and its data.
///
/// Thread safety: any thread; any number of calls on one engine at once.
///
/// # Safety
/// `engine` is a live engine; `name` a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sluice_delete_stream(
    engine: *const sluice_engine,
    name: *const c_char,
) -> sluice_result {
    call("sluice_delete_stream", || {
        // SAFETY: caller promises on each argument.
        let (engine, name) = unsafe { (engine_arg(engine)?, text(name, "name")?) };
        Ok(engine.stream(name)?.delete().wait()?)
    })
}

/// Sets retention to `hours`, 24 to 8,760 (365 days): `increase` nonzero raises it, zero
/// lowers it (older records become unreadable at once). `SLUICE_INVALID_ARGUMENT` for hours
/// outside 24 to 8,760, for an increase to less than the current retention, or a decrease
/// to more (the same value is accepted either way).
///
/// Thread safety: any thread; any number of calls on one engine at once.
///
/// # Safety
/// `engine` is a live engine; `name` a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sluice_change_retention(
    engine: *const sluice_engine,
    name: *const c_char,
    hours: u32,
    increase: i32,
) -> sluice_result {
    call("sluice_change_retention", || {
        // SAFETY: caller promises on each argument.
        let (engine, name) = unsafe { (engine_arg(engine)?, text(name, "name")?) };
        if increase != 0 {
            Ok(engine.stream(name)?.increase_retention(hours).wait()?)
        } else {
            Ok(engine.stream(name)?.decrease_retention(hours).wait()?)
        }
    })
}

/// Sets the largest record (partition key + data) of a stream, in bytes: from
/// `SLUICE_RECORD_SIZE_MIN` (1 MiB, 1,048,576) to `SLUICE_RECORD_SIZE_MAX` (10 MiB,
/// 10,485,760), any byte count between. Outside that range: `SLUICE_VALIDATION`. More than
/// this engine's segments hold (segments under about 11 MiB hold less than 10 MiB):
/// `SLUICE_INVALID_ARGUMENT`.
///
/// Thread safety: any thread; any number of calls on one engine at once.
///
/// # Safety
/// `engine` is a live engine; `name` a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sluice_update_max_record_size(
    engine: *const sluice_engine,
    name: *const c_char,
    bytes: u64,
) -> sluice_result {
    call("sluice_update_max_record_size", || {
        // SAFETY: caller promises on each argument.
        let (engine, name) = unsafe { (engine_arg(engine)?, text(name, "name")?) };
        let stream = engine.stream(name)?;
        stream.update_max_record_size(bytes).wait().map_err(|e| {
            // The engine's range is in whole KiB; say it in the bytes the caller gave.
            if let AdminError::OutOfRange {
                parameter: Parameter::MaxRecordSizeKiB,
                ..
            } = e
            {
                Failure {
                    code: e.code().as_u32(),
                    detail: format!(
                        "bytes is {bytes}; a stream's largest record is {SLUICE_RECORD_SIZE_MIN} (1 MiB) to {SLUICE_RECORD_SIZE_MAX} (10 MiB) bytes"
                    ),
                }
            } else {
                e.into()
            }
        })
    })
}

/// A stream's state.
///
/// Thread safety: any thread; any number of calls on one engine at once.
///
/// # Safety
/// `engine` is a live engine; `name` a NUL-terminated string; `out_summary` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sluice_describe_stream_summary(
    engine: *const sluice_engine,
    name: *const c_char,
    out_summary: *mut sluice_stream_summary,
) -> sluice_result {
    call("sluice_describe_stream_summary", || {
        let out_summary = out(out_summary, "out_summary")?;
        // SAFETY: caller promises on each argument.
        let (engine, name) = unsafe { (engine_arg(engine)?, text(name, "name")?) };
        let s = engine.stream(name)?.summary()?;
        let summary = sluice_stream_summary {
            open_shard_count: s.open_shard_count as u32,
            retention_hours: s.retention_hours,
            max_record_size_bytes: s.max_record_size_bytes,
            created_ms: s.created_ms,
            on_demand: u32::from(s.mode == StreamMode::OnDemand),
        };
        // SAFETY: caller promise on `out_summary`.
        unsafe { out_summary.write(summary) };
        Ok(())
    })
}

/// Calls `callback(context, name)` for every stream, in name order.
///
/// Thread safety: any thread; any number of calls on one engine at once.
///
/// # Safety
/// `engine` is a live engine; `callback` a valid function (NULL is refused).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sluice_list_streams(
    engine: *const sluice_engine,
    callback: sluice_stream_name_callback,
    context: *mut c_void,
) -> sluice_result {
    call("sluice_list_streams", || {
        // SAFETY: caller promise on `engine`.
        let engine = unsafe { engine_arg(engine) }?;
        let callback = callback.ok_or_else(|| crate::ffi::Failure::invalid("callback is NULL"))?;
        let mut after: Option<String> = None;
        loop {
            let page = engine.list_streams(Some(1000), after.as_deref())?;
            for name in &page.names {
                let name = std::ffi::CString::new(name.as_str()).expect("stream names have no NUL");
                // SAFETY: the caller promises a valid callback; the name lives for the call.
                unsafe { callback(context, name.as_ptr()) };
            }
            if !page.has_more {
                return Ok(());
            }
            after = page.names.last().cloned();
        }
    })
}

/// Calls `callback(context, shard)` for every shard of a stream whose data is retained
/// (open and closed), by shard id.
///
/// Thread safety: any thread; any number of calls on one engine at once.
///
/// # Safety
/// `engine` is a live engine; `name` a NUL-terminated string; `callback` a valid function.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sluice_list_shards(
    engine: *const sluice_engine,
    name: *const c_char,
    callback: sluice_shard_callback,
    context: *mut c_void,
) -> sluice_result {
    call("sluice_list_shards", || {
        // SAFETY: caller promises on each argument.
        let (engine, name) = unsafe { (engine_arg(engine)?, text(name, "name")?) };
        let callback = callback.ok_or_else(|| crate::ffi::Failure::invalid("callback is NULL"))?;
        let mut request = ListShards {
            stream: Some(name.to_owned()),
            ..ListShards::default()
        };
        loop {
            let page = engine.list_shards(&request)?;
            for s in &page.shards {
                let mut shard = sluice_shard {
                    shard_id: [0; 24],
                    parent_shard_id: [0; 24],
                    adjacent_parent_shard_id: [0; 24],
                    starting_hash_key: [0; 40],
                    ending_hash_key: [0; 40],
                    open: u32::from(s.ending_sequence_number.is_none()),
                };
                fill(&mut shard.shard_id, &s.shard_id);
                fill(
                    &mut shard.parent_shard_id,
                    s.parent_shard_id.as_deref().unwrap_or(""),
                );
                fill(
                    &mut shard.adjacent_parent_shard_id,
                    s.adjacent_parent_shard_id.as_deref().unwrap_or(""),
                );
                fill(
                    &mut shard.starting_hash_key,
                    &s.hash_key_range.start.to_string(),
                );
                fill(
                    &mut shard.ending_hash_key,
                    &s.hash_key_range.end.to_string(),
                );
                // SAFETY: the caller promises a valid callback; the shard lives for the call.
                unsafe { callback(context, &shard) };
            }
            match page.next_token {
                Some(token) => {
                    request = ListShards {
                        next_token: Some(token),
                        ..ListShards::default()
                    }
                }
                None => return Ok(()),
            }
        }
    })
}

/// Called once per tag (NUL-terminated, valid during the call).
pub type sluice_tag_callback =
    Option<unsafe extern "C" fn(context: *mut c_void, key: *const c_char, value: *const c_char)>;

/// Adds a tag to a stream, or overwrites its value. A key of 0 or more than 128 characters,
/// or a value of more than 256, is `SLUICE_INVALID_ARGUMENT`; a 51st tag
/// `SLUICE_LIMIT_EXCEEDED` (a stream has at most 50).
///
/// Thread safety: any thread; any number of calls on one engine at once.
///
/// # Safety
/// `engine` is a live engine; the strings are NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sluice_add_tag(
    engine: *const sluice_engine,
    name: *const c_char,
    key: *const c_char,
    value: *const c_char,
) -> sluice_result {
    call("sluice_add_tag", || {
        // SAFETY: caller promises on each argument.
        let (engine, name, key, value) = unsafe {
            (
                engine_arg(engine)?,
                text(name, "name")?,
                text(key, "key")?,
                text(value, "value")?,
            )
        };
        Ok(engine
            .stream(name)?
            .add_tags(vec![(key.to_owned(), value.to_owned())])
            .wait()?)
    })
}

/// Removes a tag from a stream (an absent key is not an error).
///
/// Thread safety: any thread; any number of calls on one engine at once.
///
/// # Safety
/// `engine` is a live engine; the strings are NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sluice_remove_tag(
    engine: *const sluice_engine,
    name: *const c_char,
    key: *const c_char,
) -> sluice_result {
    call("sluice_remove_tag", || {
        // SAFETY: caller promises on each argument.
        let (engine, name, key) =
            unsafe { (engine_arg(engine)?, text(name, "name")?, text(key, "key")?) };
        Ok(engine
            .stream(name)?
            .remove_tags(vec![key.to_owned()])
            .wait()?)
    })
}

/// Calls `callback(context, key, value)` for every tag of a stream, in key order.
///
/// Thread safety: any thread; any number of calls on one engine at once.
///
/// # Safety
/// `engine` is a live engine; `name` is NUL-terminated; `callback` a valid function.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sluice_list_tags(
    engine: *const sluice_engine,
    name: *const c_char,
    callback: sluice_tag_callback,
    context: *mut c_void,
) -> sluice_result {
    call("sluice_list_tags", || {
        // SAFETY: caller promises on each argument.
        let (engine, name) = unsafe { (engine_arg(engine)?, text(name, "name")?) };
        let callback = callback.ok_or_else(|| crate::ffi::Failure::invalid("callback is NULL"))?;
        for (key, value) in engine.stream(name)?.tags()? {
            // A NUL cannot cross as a C string; such a tag (set through another API) is the
            // engine's content, not the caller's mistake.
            let internal = |what: &str| crate::ffi::Failure {
                code: crate::error::SLUICE_INTERNAL_FAILURE,
                detail: format!("a tag {what} holds a NUL byte and cannot be returned to C"),
            };
            let key = std::ffi::CString::new(key).map_err(|_| internal("key"))?;
            let value = std::ffi::CString::new(value).map_err(|_| internal("value"))?;
            // SAFETY: the caller promises a valid callback; the strings live for the call.
            unsafe { callback(context, key.as_ptr(), value.as_ptr()) };
        }
        Ok(())
    })
}
