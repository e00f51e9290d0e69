//! The engine handle: open, close, free, and the handle a Rust program shares with C.

use crate::error::{SLUICE_RESOURCE_IN_USE, sluice_result};
use crate::ffi::{Failure, call, free, handle, out};
use crate::options::sluice_options;
use crate::wording;
use sluice_core::Engine;
use std::sync::Arc;

/// An open engine. Thread safety: any number of threads at once, except for its
/// `sluice_engine_close` or `sluice_engine_free` (see "Freeing" at the top of this header).
pub struct sluice_engine {
    pub(crate) engine: Engine,
    /// Made by `sluice_engine_from`: the Rust program may hold clones, so closing through
    /// this handle must not stop the engine under it.
    shared_with_rust: bool,
    /// Shared with every iterator and subscription made through this handle, which keep the
    /// engine open: `sluice_engine_close` refuses while any is alive.
    users: Arc<()>,
}

/// Held by an iterator or subscription: its engine handle counts it as a user.
pub(crate) struct EngineUser {
    _users: Arc<()>,
}

impl sluice_engine {
    fn new(engine: Engine, shared_with_rust: bool) -> sluice_engine {
        sluice_engine {
            engine,
            shared_with_rust,
            users: Arc::new(()),
        }
    }

    /// A user token for an iterator or subscription made through this handle.
    pub(crate) fn user(&self) -> EngineUser {
        EngineUser {
            _users: self.users.clone(),
        }
    }

    /// Iterators and subscriptions made through this handle and not freed yet.
    fn users_alive(&self) -> usize {
        Arc::strong_count(&self.users) - 1
    }
}

/// Opens the engine: starts its threads and reopens every stream in the data directory.
/// One engine per data directory at a time: a directory another engine holds is refused.
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
    call("sluice_engine_open", || {
        let out_engine = out(out_engine, "out_engine")?;
        // SAFETY: caller promise on `options`.
        let options = unsafe { handle(options, "options") }?;
        let engine = Engine::open(options.config.clone())?;
        // SAFETY: caller promise on `out_engine`.
        unsafe { out_engine.write(Box::into_raw(Box::new(sluice_engine::new(engine, false)))) };
        Ok(())
    })
}

/// Closes the engine and waits until it has: accepted puts finish, every log is synced,
/// the threads stop and the data directory is released (it may be opened again at once).
/// Batches from `sluice_get` stay valid. NULL does nothing (`SLUICE_OK`).
///
/// While iterators or subscriptions made from this engine are not freed (they keep it
/// open), it returns `SLUICE_RESOURCE_IN_USE` and does nothing: the handle stays valid;
/// free them and call it again. Otherwise the handle is freed, whatever the result:
/// `SLUICE_OK` once the engine has closed, or `SLUICE_INTERNAL_FAILURE` when closing failed.
/// A failed final sync is `SLUICE_INTERNAL_FAILURE`: records put with
/// `SLUICE_DURABILITY_VISIBLE` since the last sync may then not be on disk. An engine shared with Rust (`sluice_engine_from`) closes when the Rust program's
/// clones are gone too: with clones left, this frees the handle and returns `SLUICE_OK`
/// without waiting.
///
/// Unlike `sluice_engine_free`, which releases the handle and lets the engine close in the
/// background once nothing keeps it open, this says how closing went.
///
/// Thread safety: any thread, while no other call uses this engine handle (see "Freeing").
///
/// # Safety
/// `engine` is NULL or from `sluice_engine_open` or `sluice_engine_from`; unless the result
/// is `SLUICE_RESOURCE_IN_USE`, it is not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sluice_engine_close(engine: *mut sluice_engine) -> sluice_result {
    call("sluice_engine_close", || {
        // SAFETY: the caller promises NULL or a live handle that no other call uses now.
        let Some(live) = (unsafe { engine.as_ref() }) else {
            return Ok(());
        };
        let users = live.users_alive();
        if users > 0 {
            return Err(Failure {
                code: SLUICE_RESOURCE_IN_USE,
                detail: format!(
                    "iterators or subscriptions made from this engine are not freed ({users}) and keep it open: free them, then close again (the engine handle is still valid)"
                ),
            });
        }
        // SAFETY: made by Box::into_raw in this library; the caller gives it up.
        let handle = unsafe { Box::from_raw(engine) };
        match handle.shared_with_rust {
            // The Rust program's clones keep it open; it closes when the last one goes.
            true => Ok(()),
            false => close(handle.engine),
        }
    })
}

/// Closes `engine`, the last clone this library holds, and returns how closing went: the
/// first failure of a final sync (a shard log, a consumers log) or of a thread's end.
fn close(engine: Engine) -> Result<(), Failure> {
    engine.close().map_err(|error| Failure {
        code: error.code().as_u32(),
        detail: wording::close(&error),
    })
}

/// Releases the engine handle (NULL does nothing) without waiting for a result: the engine
/// closes now (accepted puts finish, logs are synced, threads stop), or when the last
/// iterator or subscription made from it is freed, which stay usable meanwhile. Use
/// `sluice_engine_close` to wait for the close and learn how it went.
///
/// Thread safety: any thread, while no other call uses this engine handle (see "Freeing").
///
/// # Safety
/// `engine` is NULL or from `sluice_engine_open` or `sluice_engine_from`, not used
/// afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sluice_engine_free(engine: *mut sluice_engine) {
    // SAFETY: caller promise.
    unsafe { free(engine) }
}

/// A handle for C on an engine a Rust program opened, so that Rust and C code can share one
/// engine. Release it with `sluice_engine_close` or `sluice_engine_free` (the engine closes
/// when its last handle or clone is gone).
pub fn sluice_engine_from(engine: Engine) -> *mut sluice_engine {
    Box::into_raw(Box::new(sluice_engine::new(engine, true)))
}

/// The engine of a handle argument.
///
/// # Safety
/// `engine` is NULL or a live engine handle.
pub(crate) unsafe fn engine_arg<'a>(engine: *const sluice_engine) -> Result<&'a Engine, Failure> {
    // SAFETY: forwarded caller promise.
    Ok(&unsafe { handle(engine, "engine") }?.engine)
}

/// A handle argument, for calls that make iterators or subscriptions.
///
/// # Safety
/// `engine` is NULL or a live engine handle.
pub(crate) unsafe fn engine_handle_arg<'a>(
    engine: *const sluice_engine,
) -> Result<&'a sluice_engine, Failure> {
    // SAFETY: forwarded caller promise.
    unsafe { handle(engine, "engine") }
}
