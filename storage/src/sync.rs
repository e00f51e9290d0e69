//! The primitives of the cross-thread protocols (watermark publication, segment leases):
//! std's in every normal build, loom's under `--cfg loom` (scripts/loom), so the loom models
//! run the real `Shared`, `Segment` and `reclaim` code with every ordering checked.
//! event-listener needs no stand-in: under `--cfg loom` it is built with its own `loom`
//! feature (see Cargo.toml), so the real crate runs on loom's primitives too.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};

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
