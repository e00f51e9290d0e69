//! Engine options: `sluice_options` and its setters. Each setter checks its value when it is
//! called, with the bounds `sluice_engine_open` would apply, and leaves the options unchanged
//! when it refuses one.

use crate::error::sluice_result;
use crate::ffi::{Failure, call, free, handle_mut, out, text};
use sluice_core::{Durability, EngineConfig, ThroughputLimits};
use std::ffi::c_char;

/// The smallest segment size, in bytes (64 KiB).
pub const SLUICE_SEGMENT_SIZE_MIN: u64 = 65_536;
/// A segment size is a multiple of this many bytes (the page size).
pub const SLUICE_SEGMENT_SIZE_MULTIPLE: u64 = 4096;

/// Options for `sluice_engine_open`. Thread safety: one thread at a time.
pub struct sluice_options {
    pub(crate) config: EngineConfig,
}

/// New options with the defaults (one core thread per CPU, 64 MiB segments, durable puts,
/// no throttling) for the data directory `data_dir`, which `sluice_engine_open` creates if
/// it is missing. An empty `data_dir` is refused here (`SLUICE_INVALID_ARGUMENT`).
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
    call("sluice_options_new", || {
        let out_options = out(out_options, "out_options")?;
        // SAFETY: caller promise on `data_dir`.
        let dir = unsafe { text(data_dir, "data_dir") }?;
        if dir.is_empty() {
            return Err(Failure::invalid("data_dir is empty; name a directory"));
        }
        let options = Box::new(sluice_options {
            config: EngineConfig::new(dir),
        });
        // SAFETY: caller promise on `out_options`.
        unsafe { out_options.write(Box::into_raw(options)) };
        Ok(())
    })
}

/// Frees options (NULL does nothing); see "Freeing" at the top of this header. An engine
/// opened with them does not need them any more.
///
/// Thread safety: any thread, while no other call uses these options.
///
/// # Safety
/// `options` is NULL or from `sluice_options_new`, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sluice_options_free(options: *mut sluice_options) {
    // SAFETY: caller promise.
    unsafe { free(options) }
}

/// Runs a setter named `function` on a live options handle.
pub(crate) fn with_options(
    function: &'static str,
    options: *mut sluice_options,
    change: impl FnOnce(&mut EngineConfig) -> Result<(), Failure>,
) -> sluice_result {
    call(function, || {
        // SAFETY: the caller promises a live options handle used by one thread.
        let options = unsafe { handle_mut(options, "options") }?;
        change(&mut options.config)
    })
}

/// Core threads: 0 (the default) for one per CPU. Every value is accepted; each core is a
/// thread that `sluice_engine_open` starts (more cores than CPUs share them).
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
    with_options("sluice_options_set_cores", options, |c| {
        c.cores = cores as usize;
        Ok(())
    })
}

/// Segment file size in bytes: a multiple of `SLUICE_SEGMENT_SIZE_MULTIPLE` (4096) and at
/// least `SLUICE_SEGMENT_SIZE_MIN` (65,536); anything else (0, 4097, 61,440) is
/// `SLUICE_INVALID_ARGUMENT` here, options unchanged. There is no upper bound: every segment
/// of every shard is a file of this size. Segments too small for a 1 MiB record (under about
/// 1.1 MiB) make every stream's largest record what one segment holds
/// (`sluice_describe_stream_summary` shows it).
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
    with_options("sluice_options_set_segment_size", options, |c| {
        if bytes < SLUICE_SEGMENT_SIZE_MIN || !bytes.is_multiple_of(SLUICE_SEGMENT_SIZE_MULTIPLE) {
            return Err(Failure::invalid(format!(
                "bytes is {bytes}; a segment size is a multiple of {SLUICE_SEGMENT_SIZE_MULTIPLE} and at least {SLUICE_SEGMENT_SIZE_MIN}"
            )));
        }
        c.segment_size_bytes = bytes;
        Ok(())
    })
}

/// Default durability of puts: any nonzero value for durable (fdatasync before the put
/// returns; the default), 0 for visible (readable at once, synced later). Every value is
/// accepted.
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
    with_options("sluice_options_set_durable", options, |c| {
        c.durability = if durable != 0 {
            Durability::Durable
        } else {
            Durability::Visible
        };
        Ok(())
    })
}

/// Kinesis' per-shard throughput limits (1 MiB/s and 1,000 records/s written, 2 MiB/s and 5
/// reads/s read): any nonzero value enforces them, 0 (the default) leaves shards
/// unthrottled. Every value is accepted.
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
    with_options("sluice_options_set_throughput_limits", options, |c| {
        c.throughput_limits = (enabled != 0).then(ThroughputLimits::default);
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::SLUICE_OK;
    use sluice_core::Engine;

    #[test]
    fn the_bounds_in_the_header_are_the_engines() {
        assert_eq!(
            SLUICE_SEGMENT_SIZE_MIN,
            sluice_storage::SEGMENT_SIZE_BYTES_MIN
        );
        assert_eq!(
            crate::SLUICE_RECORD_SIZE_MIN,
            sluice_core::limits::RECORD_SIZE_BYTES_MIN_SETTING
        );
        assert_eq!(
            crate::SLUICE_RECORD_SIZE_MAX,
            sluice_core::limits::RECORD_SIZE_BYTES_LIMIT
        );
    }

    /// The setter refuses at once exactly the sizes `Engine::open` would refuse later, and
    /// the engine's own text says "invalid configuration" once.
    #[test]
    fn the_segment_size_setter_accepts_exactly_what_engine_open_accepts() {
        let dir = tempfile::tempdir().unwrap();
        for bytes in [
            0, 4096, 4097, 61_440, 65_535, 65_536, 65_537, 69_632, 69_633,
        ] {
            let mut config = EngineConfig::new(dir.path().join(bytes.to_string()));
            config.cores = 1;
            let options = Box::into_raw(Box::new(sluice_options {
                config: config.clone(),
            }));
            // SAFETY: a live options handle made just above, freed just below.
            let set = unsafe { sluice_options_set_segment_size(options, bytes) };
            // SAFETY: from Box::into_raw above, not used afterwards.
            unsafe { sluice_options_free(options) };
            config.segment_size_bytes = bytes;
            let opened = Engine::open(config);
            assert_eq!(set == SLUICE_OK, opened.is_ok(), "{bytes} bytes");
            if let Err(error) = opened {
                let text = error.to_string();
                assert_eq!(text.matches("invalid configuration").count(), 1, "{text}");
            }
        }
    }
}
