//! Synchronisation primitives that park goroutines, not threads: [`Mutex`], [`RwLock`],
//! [`WaitGroup`], [`Once`], [`Cond`] (Go's `sync` package).
//!
//! Each keeps its wait queue in its own heap memory and blocks through
//! `sched::park::block_current`, so the same value works from goroutines (which park) and from
//! plain threads (which sleep).

mod cond;
mod mutex;
mod once;
mod rwlock;
pub(crate) mod sema;
mod waitgroup;

pub use cond::Cond;
pub use mutex::{Mutex, MutexGuard};
pub use once::{Once, OnceCell};
pub use rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard};
pub use waitgroup::WaitGroup;
