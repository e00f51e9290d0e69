//! Result codes (the same table as `sluice_core::ErrorCode`) and the calling thread's last
//! error detail.

use std::cell::RefCell;
use std::ffi::{CString, c_char};

/// A result code: `SLUICE_OK` or one of the error codes below.
pub type sluice_result = u32;

/// Success.
pub const SLUICE_OK: sluice_result = 0;
/// The stream or shard does not exist (a sequence number that names no record is
/// `SLUICE_INVALID_ARGUMENT`).
pub const SLUICE_RESOURCE_NOT_FOUND: sluice_result = 1;
/// The resource exists already or is busy.
pub const SLUICE_RESOURCE_IN_USE: sluice_result = 2;
/// A value is not acceptable (also: a NULL argument, a string that is not UTF-8, a buffer
/// too small, a sequence number that names no retained record).
pub const SLUICE_INVALID_ARGUMENT: sluice_result = 3;
/// A quota would be exceeded.
pub const SLUICE_LIMIT_EXCEEDED: sluice_result = 4;
/// The shard's throughput limit was hit; retry later.
pub const SLUICE_PROVISIONED_THROUGHPUT_EXCEEDED: sluice_result = 5;
/// The iterator token is older than its lifetime.
pub const SLUICE_EXPIRED_ITERATOR: sluice_result = 6;
/// A pagination token is older than its lifetime.
pub const SLUICE_EXPIRED_NEXT_TOKEN: sluice_result = 7;
/// The request breaks the API's constraints.
pub const SLUICE_VALIDATION: sluice_result = 8;
/// The engine failed (I/O, damaged data, a caught panic).
pub const SLUICE_INTERNAL_FAILURE: sluice_result = 9;
/// The engine has stopped under its handles: one of its threads ended after an internal
/// failure (a bug), so calls that need it fail with this code until the engine is closed and
/// opened again. An engine handle keeps its engine running, so this is never the result of
/// a close or free: after those the handle must not be used at all.
pub const SLUICE_ENGINE_SHUTDOWN: sluice_result = 10;
/// `sluice_engine_open` refused: the metadata log is damaged before its end (not a torn
/// write) and was left as found; `sluice repair-metadata --dir DIR` repairs it deliberately.
pub const SLUICE_METADATA_DAMAGED: sluice_result = 11;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

pub(crate) fn set_last_error(detail: &str) {
    let text = CString::new(detail.replace('\0', " ")).unwrap_or_default();
    // `try_with`: a call from a thread-local destructor, after this thread's storage is
    // gone, loses its detail instead of panicking outside the boundary.
    let _ = LAST_ERROR.try_with(|slot| *slot.borrow_mut() = text);
}

/// The calling thread's last error detail (tests).
#[cfg(test)]
pub(crate) fn last_error_for_tests() -> String {
    LAST_ERROR.with(|slot| slot.borrow().to_string_lossy().into_owned())
}

pub(crate) fn clear_last_error() {
    let _ = LAST_ERROR.try_with(|slot| {
        let mut slot = slot.borrow_mut();
        if !slot.as_bytes().is_empty() {
            *slot = CString::default();
        }
    });
}

/// The name of a result code ("ResourceNotFoundException", ...; "EngineShutdown" and
/// "MetadataDamaged" for the engine's own; "OK" for 0, "Unknown" for a code this library
/// does not know). The string is static: never free it.
///
/// Thread safety: any thread.
#[unsafe(no_mangle)]
pub extern "C" fn sluice_result_message(result: sluice_result) -> *const c_char {
    let text: &'static [u8] = match result {
        SLUICE_OK => b"OK\0",
        SLUICE_RESOURCE_NOT_FOUND => b"ResourceNotFoundException\0",
        SLUICE_RESOURCE_IN_USE => b"ResourceInUseException\0",
        SLUICE_INVALID_ARGUMENT => b"InvalidArgumentException\0",
        SLUICE_LIMIT_EXCEEDED => b"LimitExceededException\0",
        SLUICE_PROVISIONED_THROUGHPUT_EXCEEDED => b"ProvisionedThroughputExceededException\0",
        SLUICE_EXPIRED_ITERATOR => b"ExpiredIteratorException\0",
        SLUICE_EXPIRED_NEXT_TOKEN => b"ExpiredNextTokenException\0",
        SLUICE_VALIDATION => b"ValidationException\0",
        SLUICE_INTERNAL_FAILURE => b"InternalFailureException\0",
        SLUICE_ENGINE_SHUTDOWN => b"EngineShutdown\0",
        SLUICE_METADATA_DAMAGED => b"MetadataDamaged\0",
        _ => b"Unknown\0",
    };
    text.as_ptr().cast()
}

/// The detail of the calling thread's last failed call ("" after a success). Valid until
/// the thread's next call into this library; never free it.
///
/// Thread safety: any thread (each thread has its own).
#[unsafe(no_mangle)]
pub extern "C" fn sluice_last_error_detail() -> *const c_char {
    LAST_ERROR
        .try_with(|slot| slot.borrow().as_ptr())
        .unwrap_or(c"".as_ptr())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::ErrorCode;

    #[test]
    fn c_codes_are_the_engine_codes_and_name_the_kinesis_exceptions() {
        let c_codes = [
            SLUICE_RESOURCE_NOT_FOUND,
            SLUICE_RESOURCE_IN_USE,
            SLUICE_INVALID_ARGUMENT,
            SLUICE_LIMIT_EXCEEDED,
            SLUICE_PROVISIONED_THROUGHPUT_EXCEEDED,
            SLUICE_EXPIRED_ITERATOR,
            SLUICE_EXPIRED_NEXT_TOKEN,
            SLUICE_VALIDATION,
            SLUICE_INTERNAL_FAILURE,
            SLUICE_ENGINE_SHUTDOWN,
            SLUICE_METADATA_DAMAGED,
        ];
        assert_eq!(c_codes.len(), ErrorCode::ALL.len());
        let code_name = |code: ErrorCode| code.name().to_owned();
        for (code, engine) in c_codes.iter().zip(ErrorCode::ALL) {
            assert_eq!(*code, engine.as_u32());
            // SAFETY: sluice_result_message returns a static NUL-terminated string.
            let name = unsafe { std::ffi::CStr::from_ptr(sluice_result_message(*code)) };
            let expected = match engine {
                ErrorCode::EngineShutdown | ErrorCode::MetadataDamaged => code_name(engine),
                code => format!("{}Exception", code.name()),
            };
            assert_eq!(name.to_str().unwrap(), expected);
        }
    }
}
