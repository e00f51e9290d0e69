//! # sluice-c
//!
//! The C ABI of Sluice: `libsluice.so` / `libsluice.a` and `include/sluice.h` (generated from
//! this crate by a pinned cbindgen; a test fails when the checked-in header is stale).
//!
//! Conventions (after rustls-ffi):
//! - Opaque handles with `_new`/`_open` and `_free` pairs. Freeing NULL does nothing; freeing a
//!   handle twice is undefined behaviour, as with `free`.
//! - Every function returns a `sluice_result`: 0 on success, else a stable code shared with
//!   the Rust `ErrorCode` and the server. `sluice_result_message()` names a code;
//!   `sluice_last_error_detail()` gives the detail of the calling thread's last failure.
//! - Out-parameters are written only on success. NULL where a value is required, and strings
//!   that are not UTF-8, are refused with `SLUICE_INVALID_ARGUMENT`. Panics never cross the
//!   boundary: they become `SLUICE_INTERNAL_FAILURE`.
//! - Records read through an iterator, a subscription or `sluice_get` point into the mapped
//!   log (zero-copy) and stay valid until the next call on that handle, or its free.
//!
//! Thread safety: an engine handle may be used from any number of threads at once. Iterator,
//! subscription and batch handles may move between threads but are used by one at a time.

// The C ABI is where Sluice needs unsafe code: raw pointers from C. Every block says which
// caller promise it relies on (docs/UNSAFE.md).
#![allow(unsafe_code)]
// C names, as C users expect them.
#![allow(non_camel_case_types)]

mod admin;
mod batch;
mod clock;
mod consumer;
mod engine;
mod error;
mod ffi;
mod iterator;
mod options;
mod put;
mod reshard;
mod subscription;
mod version;
mod wording;

// The thread-safety promises of the header, checked by the compiler.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    const fn send<T: Send>() {}
    send_sync::<sluice_engine>();
    send_sync::<sluice_consumer>();
    send::<sluice_iterator>();
    send::<sluice_subscription>();
    send::<sluice_batch>();
    send::<sluice_core::Records>();
};

pub use admin::*;
pub use batch::*;
pub use clock::*;
pub use consumer::*;
pub use engine::*;
pub use error::*;
pub use iterator::*;
pub use options::*;
pub use put::*;
pub use reshard::*;
pub use subscription::*;
pub use version::*;
