//! The library's version, for a program to check the library it loaded against the header it
//! was compiled with (`SLUICE_VERSION`, which the header test writes from the same crate
//! version).

use std::ffi::c_char;

/// The crate version, NUL-terminated.
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// The version of the loaded library, "MAJOR.MINOR.PATCH" (the header's `SLUICE_VERSION` is
/// the version it was compiled against). The string is static: never free it.
///
/// Thread safety: any thread.
#[unsafe(no_mangle)]
pub extern "C" fn sluice_version() -> *const c_char {
    VERSION.as_ptr().cast()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_function_returns_the_crate_version() {
        // SAFETY: sluice_version returns a static NUL-terminated string.
        let version = unsafe { std::ffi::CStr::from_ptr(sluice_version()) };
        assert_eq!(version.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
    }
}
