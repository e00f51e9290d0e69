//! The engine's clock from C: `sluice_options_set_clock`, the C form of `EngineConfig::clock`.

use crate::error::sluice_result;
use crate::ffi::Failure;
use crate::options::{sluice_options, with_options};
use sluice_core::Clock;
use std::ffi::c_void;
use std::sync::Arc;

/// Returns the time in milliseconds since the Unix epoch. Called by the engine's threads,
/// several at once; it must not call any sluice function, and must not unwind or `longjmp`
/// out.
pub type sluice_clock_callback = Option<unsafe extern "C" fn(context: *mut c_void) -> u64>;

/// A C function and its context, as the engine's clock.
struct CClock {
    now_ms: unsafe extern "C" fn(context: *mut c_void) -> u64,
    context: *mut c_void,
}

// SAFETY: `sluice_options_set_clock`'s caller promises that the callback may be called with
// `context` from any thread, by several at once.
unsafe impl Send for CClock {}
// SAFETY: as for `Send`.
unsafe impl Sync for CClock {}

impl Clock for CClock {
    fn now_ms(&self) -> u64 {
        // SAFETY: the caller of `sluice_options_set_clock` promises a valid function, callable
        // from any thread with `context` for as long as an engine opened with it is open.
        unsafe { (self.now_ms)(self.context) }
    }
}

/// Makes `callback(context)` the engine's clock, in place of the system's real-time clock:
/// arrival timestamps, retention and iterator expiry follow it. For tests and simulations.
///
/// Thread safety: one thread at a time per options handle.
///
/// # Safety
/// `options` is a live options handle; `callback` is a valid function (NULL is refused) that
/// may be called with `context` from any thread, by several at once, until every engine
/// opened with these options has closed (`sluice_engine_free`, and the iterators and
/// subscriptions that keep it open freed).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sluice_options_set_clock(
    options: *mut sluice_options,
    callback: sluice_clock_callback,
    context: *mut c_void,
) -> sluice_result {
    with_options("sluice_options_set_clock", options, |c| {
        let now_ms = callback.ok_or_else(|| Failure::invalid("callback is NULL"))?;
        c.clock = Arc::new(CClock { now_ms, context });
        Ok(())
    })
}
