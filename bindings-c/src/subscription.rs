//! Push subscriptions: poll with a timeout, or run a callback per delivery.

use crate::batch::{Batch, sluice_read_status, sluice_record};
use crate::engine::{EngineUser, sluice_engine};
use crate::error::sluice_result;
use crate::ffi::{Failure, call, free, handle, handle_mut, out};
use crate::iterator::{position_args, sluice_iterator_type};
use sluice_core::Subscription;
use std::ffi::{c_char, c_void};
use std::time::{Duration, Instant};

/// A subscription to one shard, holding the records of its last delivery. Thread safety:
/// one thread at a time.
pub struct sluice_subscription {
    subscription: Subscription,
    batch: Batch,
    _user: EngineUser,
}

/// Called per delivery by `sluice_subscription_run` with the delivered records (valid during
/// the call) and the read status; return nonzero to stop. It must not call any function on
/// the same subscription (including its free), and must not unwind or `longjmp` out.
pub type sluice_delivery_callback = Option<
    unsafe extern "C" fn(
        context: *mut c_void,
        records: *const sluice_record,
        count: usize,
        status: *const sluice_read_status,
    ) -> i32,
>;

/// Subscribes to `shard_id` of `stream` from the given start (as `sluice_iterator_new`).
///
/// Thread safety: any thread; any number of calls on one engine at once.
///
/// # Safety
/// `engine` is a live engine; strings NUL-terminated (`sequence_number` may be NULL);
/// `out_subscription` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sluice_subscribe(
    engine: *const sluice_engine,
    stream: *const c_char,
    shard_id: *const c_char,
    kind: sluice_iterator_type,
    sequence_number: *const c_char,
    timestamp_ms: u64,
    out_subscription: *mut *mut sluice_subscription,
) -> sluice_result {
    call("sluice_subscribe", || {
        let out_subscription = out(out_subscription, "out_subscription")?;
        // SAFETY: caller promises on each argument.
        let (engine, stream, shard, start) = unsafe {
            position_args(
                engine,
                stream,
                shard_id,
                kind,
                sequence_number,
                timestamp_ms,
            )
        }?;
        let subscription = engine.engine.stream(stream)?.subscribe(shard, start)?;
        let boxed = Box::new(sluice_subscription {
            subscription,
            batch: Batch::default(),
            _user: engine.user(),
        });
        // SAFETY: caller promise on `out_subscription`.
        unsafe { out_subscription.write(Box::into_raw(boxed)) };
        Ok(())
    })
}

/// Waits up to `timeout_ms` for the next delivery; `out_count` receives its record count (0
/// when nothing came, or at the end of a closed shard: see `sluice_subscription_status`).
/// The previous delivery's records become invalid.
///
/// Thread safety: one thread at a time per subscription (it may move between threads).
///
/// # Safety
/// `subscription` is live and used by this thread only; `out_count` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sluice_subscription_poll(
    subscription: *mut sluice_subscription,
    timeout_ms: u64,
    out_count: *mut usize,
) -> sluice_result {
    call("sluice_subscription_poll", || {
        let out_count = out(out_count, "out_count")?;
        // SAFETY: caller promise on `subscription`.
        let sub = unsafe { handle_mut(subscription, "subscription") }?;
        let count = poll(sub, Duration::from_millis(timeout_ms))?;
        // SAFETY: caller promise on `out_count`.
        unsafe { out_count.write(count) };
        Ok(())
    })
}

fn poll(sub: &mut sluice_subscription, timeout: Duration) -> Result<usize, Failure> {
    match sub.subscription.next_blocking(timeout)? {
        Some(event) => {
            sub.batch.set(event.records);
            Ok(sub.batch.len())
        }
        None => {
            sub.batch.clear();
            Ok(0)
        }
    }
}

/// Record `index` of the last delivery.
///
/// Thread safety: one thread at a time per subscription (it may move between threads).
///
/// # Safety
/// `subscription` is live; `out_record` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sluice_subscription_record(
    subscription: *const sluice_subscription,
    index: usize,
    out_record: *mut sluice_record,
) -> sluice_result {
    call("sluice_subscription_record", || {
        let out_record = out(out_record, "out_record")?;
        // SAFETY: caller promise on `subscription`.
        let record = unsafe { handle(subscription, "subscription") }?
            .batch
            .record(index)?;
        // SAFETY: caller promise on `out_record`.
        unsafe { out_record.write(record) };
        Ok(())
    })
}

/// The last delivery's lag and end-of-shard status.
///
/// Thread safety: one thread at a time per subscription (it may move between threads).
///
/// # Safety
/// `subscription` is live; `out_status` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sluice_subscription_status(
    subscription: *const sluice_subscription,
    out_status: *mut sluice_read_status,
) -> sluice_result {
    call("sluice_subscription_status", || {
        let out_status = out(out_status, "out_status")?;
        // SAFETY: caller promise on `subscription`.
        let status = unsafe { handle(subscription, "subscription") }?
            .batch
            .status();
        // SAFETY: caller promise on `out_status`.
        unsafe { out_status.write(status) };
        Ok(())
    })
}

/// Delivers records to `callback` as they become visible, until it returns nonzero, the
/// shard ends, or `idle_timeout_ms` passes without a delivery.
///
/// Thread safety: one thread at a time per subscription (it may move between threads).
///
/// # Safety
/// `subscription` is live and used by this thread only; `callback` is a valid function.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sluice_subscription_run(
    subscription: *mut sluice_subscription,
    callback: sluice_delivery_callback,
    context: *mut c_void,
    idle_timeout_ms: u64,
) -> sluice_result {
    call("sluice_subscription_run", || {
        let callback = callback.ok_or_else(|| Failure::invalid("callback is NULL"))?;
        let idle = Duration::from_millis(idle_timeout_ms);
        let mut last_delivery = Instant::now();
        loop {
            // The handle is borrowed only around the poll, never across the callback.
            let (records, count, status) = {
                // SAFETY: caller promise on `subscription`; this borrow ends before the callback.
                let sub = unsafe { handle_mut(subscription, "subscription") }?;
                let left = idle.saturating_sub(last_delivery.elapsed());
                if poll(sub, left)? == 0 && sub.batch.status().end_of_shard == 0 {
                    return Ok(());
                }
                let views = sub.batch.views();
                (views.as_ptr(), views.len(), sub.batch.status())
            };
            last_delivery = Instant::now();
            // SAFETY: the caller promises a valid callback that makes no call on this
            // subscription; the records stay in the handle until the next poll.
            let stop = unsafe { callback(context, records, count, &status) };
            if stop != 0 || status.end_of_shard != 0 {
                return Ok(());
            }
        }
    })
}

/// Frees a subscription (NULL does nothing).
///
/// Thread safety: one thread at a time per subscription (it may move between threads).
///
/// # Safety
/// `subscription` is NULL or from `sluice_subscribe`, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sluice_subscription_free(subscription: *mut sluice_subscription) {
    // SAFETY: caller promise.
    unsafe { free(subscription) }
}
