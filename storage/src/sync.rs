//! The primitives of the cross-thread protocols (watermark publication, segment leases and the
//! registry of mappings they rest on):
//! std's in every normal build, loom's under `--cfg loom` (scripts/loom), so the loom models
//! run the real `Shared`, `Segment` and `reclaim` code with every ordering checked.
//! event-listener needs no stand-in: under `--cfg loom` it is built with its own `loom`
//! feature (see Cargo.toml), so the real crate runs on loom's primitives too.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard};
#[cfg(loom)]
pub(crate) use loom::thread;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard};
#[cfg(not(loom))]
pub(crate) use std::thread;

/// Sets an atomic the caller holds exclusively (`&mut`: no other thread can see it). loom's
/// atomics have no `get_mut`; their `with_mut` also checks that every other thread's access
/// happened before this one.
#[cfg(not(loom))]
pub(crate) fn set_exclusive(atomic: &mut AtomicU64, value: u64) {
    *atomic.get_mut() = value;
}

#[cfg(loom)]
pub(crate) fn set_exclusive(atomic: &mut AtomicU64, value: u64) {
    atomic.with_mut(|v| *v = value);
}

/// Runs `f` under loom with a default preemption bound of `preemptions` (`LOOM_MAX_PREEMPTIONS`
/// overrides it for deeper runs), and prints how many interleavings it explored. Shared by the
/// storage's and the core's loom models.
#[cfg(loom)]
#[doc(hidden)]
pub fn loom_model(preemptions: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound.get_or_insert(preemptions);
    let explored = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = explored.clone();
    builder.check(move || {
        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        f();
    });
    let explored = explored.load(std::sync::atomic::Ordering::Relaxed);
    let name = std::thread::current().name().unwrap_or("model").to_string();
    eprintln!("loom: {name}: {explored} interleavings");
}
