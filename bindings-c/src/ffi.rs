//! The boundary: argument checks, panic catching, result codes, out-parameters.

use crate::error::{
    SLUICE_INTERNAL_FAILURE, SLUICE_INVALID_ARGUMENT, SLUICE_OK, clear_last_error, set_last_error,
    sluice_result,
};
use crate::wording;
use std::ffi::{CStr, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Why a call failed: its code and the detail for `sluice_last_error_detail`.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) code: sluice_result,
    pub(crate) detail: String,
}

impl Failure {
    pub(crate) fn invalid(detail: impl Into<String>) -> Failure {
        Failure {
            code: SLUICE_INVALID_ARGUMENT,
            detail: detail.into(),
        }
    }
}

impl From<sluice_core::AdminError> for Failure {
    fn from(error: sluice_core::AdminError) -> Failure {
        Failure {
            code: error.code().as_u32(),
            detail: wording::admin(&error),
        }
    }
}

impl From<sluice_core::ReadError> for Failure {
    fn from(error: sluice_core::ReadError) -> Failure {
        Failure {
            code: error.code().as_u32(),
            detail: wording::read(&error),
        }
    }
}

impl From<sluice_core::ReshardError> for Failure {
    fn from(error: sluice_core::ReshardError) -> Failure {
        Failure {
            code: error.code().as_u32(),
            detail: wording::reshard(&error),
        }
    }
}

impl From<sluice_core::ConsumerError> for Failure {
    fn from(error: sluice_core::ConsumerError) -> Failure {
        Failure {
            code: error.code().as_u32(),
            detail: wording::consumer(&error),
        }
    }
}

impl From<sluice_core::OpenError> for Failure {
    fn from(error: sluice_core::OpenError) -> Failure {
        Failure {
            code: error.code().as_u32(),
            detail: wording::open(&error),
        }
    }
}

impl Failure {
    /// A put's failure, worded for `sluice_put` (`single`: its one `record`) or
    /// `sluice_put_batch` (`records[i]`).
    pub(crate) fn put(error: &sluice_core::PutError, single: bool) -> Failure {
        Failure {
            code: error.code().as_u32(),
            detail: wording::put(error, single),
        }
    }
}

/// Runs the body of the exported function `function`: its result becomes the code, its
/// failure the thread's last error (prefixed with `function`, so that a detail always names
/// the call the user made), a panic `SLUICE_INTERNAL_FAILURE`.
pub(crate) fn call(
    function: &'static str,
    body: impl FnOnce() -> Result<(), Failure>,
) -> sluice_result {
    quiet_panics();
    IN_CALL.set(true);
    let outcome = catch_unwind(AssertUnwindSafe(body));
    IN_CALL.set(false);
    match outcome {
        Ok(Ok(())) => {
            clear_last_error();
            SLUICE_OK
        }
        Ok(Err(failure)) => {
            set_last_error(&format!("{function}: {}", failure.detail));
            failure.code
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            set_last_error(&format!(
                "{function}: internal error (a panic was caught): {what}"
            ));
            SLUICE_INTERNAL_FAILURE
        }
    }
}

thread_local! {
    /// This thread is inside a call, whose panics are caught and reported as the call's
    /// result and last error detail.
    static IN_CALL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Makes panics inside calls silent: the library writes nothing on the host's stderr (the
/// panic's message reaches the caller through `sluice_last_error_detail`). Panics elsewhere
/// (the host's own threads, the engine's) go to the hook that was there before.
fn quiet_panics() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_CALL.get() {
                previous(info);
            }
        }));
    });
}

/// A required NUL-terminated UTF-8 string argument.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that outlives the call.
pub(crate) unsafe fn text<'a>(ptr: *const c_char, what: &str) -> Result<&'a str, Failure> {
    if ptr.is_null() {
        return Err(Failure::invalid(format!("{what} is NULL")));
    }
    // SAFETY: not NULL, and the caller promises a NUL-terminated string alive for the call.
    let c = unsafe { CStr::from_ptr(ptr) };
    c.to_str()
        .map_err(|_| Failure::invalid(format!("{what} is not valid UTF-8")))
}

/// An optional string argument: NULL means absent.
///
/// # Safety
/// As [`text`].
pub(crate) unsafe fn optional_text<'a>(
    ptr: *const c_char,
    what: &str,
) -> Result<Option<&'a str>, Failure> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: forwarded caller promise.
    unsafe { text(ptr, what) }.map(Some)
}

/// A handle argument.
///
/// # Safety
/// `ptr` is NULL or a live handle of this type from this library.
pub(crate) unsafe fn handle<'a, T>(ptr: *const T, what: &str) -> Result<&'a T, Failure> {
    // SAFETY: the caller promises a live handle (or NULL, refused here).
    unsafe { ptr.as_ref() }.ok_or_else(|| Failure::invalid(format!("{what} is NULL")))
}

/// A handle argument used mutably (one thread at a time, as documented per handle).
///
/// # Safety
/// `ptr` is NULL or a live handle of this type that no other thread uses during the call.
pub(crate) unsafe fn handle_mut<'a, T>(ptr: *mut T, what: &str) -> Result<&'a mut T, Failure> {
    // SAFETY: the caller promises a live handle used by this thread only (or NULL, refused).
    unsafe { ptr.as_mut() }.ok_or_else(|| Failure::invalid(format!("{what} is NULL")))
}

/// An out-parameter, checked before any work so that a NULL one fails without side effects.
pub(crate) fn out<T>(ptr: *mut T, what: &str) -> Result<Out<T>, Failure> {
    if ptr.is_null() {
        return Err(Failure::invalid(format!("{what} is NULL")));
    }
    Ok(Out(ptr))
}

/// A checked out-parameter, written once on success.
pub(crate) struct Out<T>(*mut T);

impl<T> Out<T> {
    /// Writes the value.
    ///
    /// # Safety
    /// The pointer given to [`out`] points to writable memory for a `T`.
    pub(crate) unsafe fn write(self, value: T) {
        // SAFETY: not NULL (checked by `out`), writable by the caller's promise. `write`
        // does not drop whatever uninitialised bytes were there.
        unsafe { self.0.write(value) }
    }
}

/// Frees a handle made by `Box::into_raw`; NULL does nothing.
///
/// # Safety
/// `ptr` is NULL or a live handle of this type, not used again afterwards.
pub(crate) unsafe fn free<T>(ptr: *mut T) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        if !ptr.is_null() {
            // SAFETY: made by Box::into_raw in this library; the caller gives it up.
            drop(unsafe { Box::from_raw(ptr) });
        }
    }));
}

/// Copies `value` NUL-terminated into a fixed C buffer (truncating is a programmer error:
/// the buffers are sized for their contents).
pub(crate) fn fill<const N: usize>(buf: &mut [c_char; N], value: &str) {
    assert!(value.len() < N, "{value} does not fit {N} bytes");
    for (slot, byte) in buf
        .iter_mut()
        .zip(value.bytes().chain(std::iter::repeat(0)))
    {
        *slot = byte as c_char;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHILD: &str = "SLUICE_TEST_PANIC_CHILD";

    /// A panic inside a call is the call's result and detail, and nothing on the host's
    /// stderr. Run in a child process of this test binary with output capture off, so that
    /// what reaches the real stderr can be seen.
    #[test]
    fn a_panic_inside_a_call_is_reported_and_prints_nothing() {
        if std::env::var_os(CHILD).is_some() {
            let result = call("sluice_test", || panic!("boom at the boundary"));
            assert_eq!(result, SLUICE_INTERNAL_FAILURE);
            let detail = crate::error::last_error_for_tests();
            assert!(detail.contains("boom at the boundary"), "{detail}");
            println!("the child ran");
            return;
        }
        let child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "ffi::tests::a_panic_inside_a_call_is_reported_and_prints_nothing",
            ])
            .args(["--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&child.stdout),
            String::from_utf8_lossy(&child.stderr),
        );
        assert!(child.status.success(), "{stdout}{stderr}");
        assert!(stdout.contains("the child ran"), "{stdout}");
        assert!(
            !stderr.contains("boom"),
            "printed on the host's stderr: {stderr}"
        );
    }
}
