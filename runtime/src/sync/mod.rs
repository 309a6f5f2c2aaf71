//! Synchronisation primitives that park goroutines, not threads.
//!
//! Each keeps its wait queue in its own heap memory and blocks through
//! `sched::park::block_current`, so the same value works from goroutines (which park) and from
//! plain threads (which sleep).

pub(crate) mod sema;
mod waitgroup;

pub use waitgroup::WaitGroup;
