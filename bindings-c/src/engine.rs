//! Engine options and the engine handle.

use crate::error::sluice_result;
use crate::ffi::{Failure, call, free, handle, handle_mut, out, text};
use sluice_core::{Durability, Engine, EngineConfig, ThroughputLimits};
use std::ffi::c_char;

/// Options for `sluice_engine_open`. Thread safety: one thread at a time.
pub struct sluice_options {
    config: EngineConfig,
}

/// An open engine. Thread safety: any number of threads at once.
pub struct sluice_engine {
    pub(crate) engine: Engine,
}

/// New options with the defaults (one core thread per CPU, 64 MiB segments, durable puts,
/// no throttling) for the data directory `data_dir`.
///
/// Thread safety: any thread.
///
/// # Safety
/// `data_dir` is a NUL-terminated string; `out_options` points to writable memory for a
/// pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sluice_options_new(
    data_dir: *const c_char,
    out_options: *mut *mut sluice_options,
) -> sluice_result {
    call(|| {
        let out_options = out(out_options, "out_options")?;
        // SAFETY: caller promise on `data_dir`.
        let dir = unsafe { text(data_dir, "data_dir") }?;
        let options = Box::new(sluice_options {
            config: EngineConfig::new(dir),
        });
        // SAFETY: caller promise on `out_options`.
        unsafe { out_options.write(Box::into_raw(options)) };
        Ok(())
    })
}

/// Frees options (NULL does nothing).
///
/// Thread safety: one thread at a time per options handle.
///
/// # Safety
/// `options` is NULL or from `sluice_options_new`, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sluice_options_free(options: *mut sluice_options) {
    // SAFETY: caller promise.
    unsafe { free(options) }
}

fn with_options(
    options: *mut sluice_options,
    change: impl FnOnce(&mut EngineConfig) -> Result<(), Failure>,
) -> sluice_result {
    call(|| {
        // SAFETY: the caller promises a live options handle used by one thread.
        let options = unsafe { handle_mut(options, "options") }?;
        change(&mut options.config)
    })
}

/// Core threads (0: one per CPU).
///
/// Thread safety: one thread at a time per options handle.
///
/// # Safety
/// `options` is a live options handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sluice_options_set_cores(
    options: *mut sluice_options,
    cores: u32,
) -> sluice_result {
    with_options(options, |c| {
        c.cores = cores as usize;
        Ok(())
    })
}

/// Segment file size in bytes (a multiple of 4096).
///
/// Thread safety: one thread at a time per options handle.
///
/// # Safety
/// `options` is a live options handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sluice_options_set_segment_size(
    options: *mut sluice_options,
    bytes: u64,
) -> sluice_result {
    with_options(options, |c| {
        c.segment_size_bytes = bytes;
        Ok(())
    })
}

/// Default durability of puts: nonzero for durable (fdatasync, the default), 0 for visible.
///
/// Thread safety: one thread at a time per options handle.
///
/// # Safety
/// `options` is a live options handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sluice_options_set_durable(
    options: *mut sluice_options,
    durable: i32,
) -> sluice_result {
    with_options(options, |c| {
        c.durability = if durable != 0 {
            Durability::Durable
        } else {
            Durability::Visible
        };
        Ok(())
    })
}

/// Kinesis' per-shard throughput limits: nonzero to enforce them (off by default).
///
/// Thread safety: one thread at a time per options handle.
///
/// # Safety
/// `options` is a live options handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sluice_options_set_throughput_limits(
    options: *mut sluice_options,
    enabled: i32,
) -> sluice_result {
    with_options(options, |c| {
        c.throughput_limits = (enabled != 0).then(ThroughputLimits::default);
        Ok(())
    })
}

/// Opens the engine: starts its threads and reopens every stream in the data directory.
/// `SLUICE_METADATA_DAMAGED` when the metadata log is damaged before its end: the engine does
/// not open and leaves the log as found (`sluice repair-metadata --dir DIR` repairs it).
///
/// Thread safety: one thread at a time per options handle.
///
/// # Safety
/// `options` is a live options handle (it is not consumed); `out_engine` points to writable
/// memory for a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sluice_engine_open(
    options: *const sluice_options,
    out_engine: *mut *mut sluice_engine,
) -> sluice_result {
    call(|| {
        let out_engine = out(out_engine, "out_engine")?;
        // SAFETY: caller promise on `options`.
        let options = unsafe { handle(options, "options") }?;
        let engine = Engine::open(options.config.clone())?;
        // SAFETY: caller promise on `out_engine`.
        unsafe { out_engine.write(Box::into_raw(Box::new(sluice_engine { engine }))) };
        Ok(())
    })
}

/// Closes the engine (NULL does nothing): accepted puts finish, logs are synced, threads
/// stop, once the iterators and subscriptions made from it are freed too (they keep it open).
///
/// Thread safety: any thread; any number of calls on one engine at once.
///
/// # Safety
/// `engine` is NULL or from `sluice_engine_open`, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sluice_engine_free(engine: *mut sluice_engine) {
    // SAFETY: caller promise.
    unsafe { free(engine) }
}

/// A handle for C on an engine a Rust program opened, so that Rust and C code can share one
/// engine. Free it with `sluice_engine_free` (the engine closes when its last handle or clone
/// is gone).
pub fn sluice_engine_from(engine: Engine) -> *mut sluice_engine {
    Box::into_raw(Box::new(sluice_engine { engine }))
}

/// The engine of a handle argument.
///
/// # Safety
/// `engine` is NULL or a live engine handle.
pub(crate) unsafe fn engine_arg<'a>(engine: *const sluice_engine) -> Result<&'a Engine, Failure> {
    // SAFETY: forwarded caller promise.
    Ok(&unsafe { handle(engine, "engine") }?.engine)
}
