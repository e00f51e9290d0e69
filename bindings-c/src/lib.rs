//! # sluice-c
//!
//! The C ABI of Sluice (libsluice, include/sluice.h). It exposes the engine of `sluice-core`
//! once that exists (see the issue tracker: "C ABI"); until then this crate deliberately
//! exports nothing, so no C caller can come to rely on a placeholder.
