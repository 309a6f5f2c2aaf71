//! Atomics for the lock-free protocols that are model-checked with loom.
//!
//! Modules whose protocols have loom models (`sched::runnext`, `sched::idle`, the channel
//! waiter's claim in `chan::waitq`, the channel lock and hand-off in `chan`, the thread parker
//! in `sched::park`, the P hand-off in `sched::pslot`, the poll descriptor words in
//! `netpoll::desc`) take their atomic and lock types from here, so that
//! `RUSTFLAGS="--cfg loom" cargo test -p gort --lib loom` explores every
//! interleaving of the very code the runtime runs. Under `cfg(loom)` only those models are
//! meant to run: the rest of the runtime uses loom atomics outside a model and would panic.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{
    fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU8, AtomicUsize,
};
#[cfg(loom)]
pub(crate) use loom::sync::{Condvar, Mutex};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{
    fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU8, AtomicUsize,
};
#[cfg(not(loom))]
pub(crate) use std::sync::{Condvar, Mutex};

/// Gives the CPU away while spinning on a lock (loom: lets the model run the holder).
#[inline]
pub(crate) fn yield_thread() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::thread::yield_now();
}
