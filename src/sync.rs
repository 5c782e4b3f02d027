//! The synchronisation types of the waiting and hand-off protocol, routed
//! through one place so that `--cfg loom` can swap in loom's
//! model-checked versions (as tokio and crossbeam do).
//!
//! Only the protocol's own state goes through here: [`crate::waiter`]
//! (one wake-up per blocked thread), [`crate::conn::owner`] (who reads
//! a connection), `conn::WriteWatch` (who watches a Unix stream's
//! writability) and [`crate::close`] (the report a closing thread waits
//! for). Everything else uses `std` and `parking_lot` directly.
//! Under loom the rest of the crate still compiles, but only the loom
//! models (`cargo test --lib loom`) may run: loom's types panic outside
//! `loom::model`.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, AtomicUsize};
#[cfg(loom)]
pub(crate) use loom::sync::Arc;

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, AtomicUsize};
#[cfg(not(loom))]
pub(crate) use std::sync::Arc;

pub(crate) use std::sync::atomic::Ordering;

/// A mutex with `parking_lot`'s shape (`lock` returns the guard) over
/// either `parking_lot` or loom.
#[derive(Debug, Default)]
pub(crate) struct Mutex<T>(
    #[cfg(not(loom))] parking_lot::Mutex<T>,
    #[cfg(loom)] loom::sync::Mutex<T>,
);

#[cfg(not(loom))]
pub(crate) type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;
#[cfg(loom)]
pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

impl<T> Mutex<T> {
    pub(crate) fn new(t: T) -> Self {
        #[cfg(not(loom))]
        return Mutex(parking_lot::Mutex::new(t));
        #[cfg(loom)]
        return Mutex(loom::sync::Mutex::new(t));
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        #[cfg(not(loom))]
        return self.0.lock();
        // A panic while holding it ends the model anyway.
        #[cfg(loom)]
        return self.0.lock().unwrap_or_else(|p| p.into_inner());
    }
}
