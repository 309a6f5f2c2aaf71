//! The `runnext` slot of a P: one goroutine that runs next, ahead of the local queue.
//!
//! Go's `p.runnext`: a goroutine readied by the running goroutine (a channel partner, a freshly
//! spawned child) goes here, so that a pair of communicating goroutines runs back to back on
//! one P and inherits the current time slice. The owner puts and takes; a thief on its last
//! stealing pass may take it too.
//!
//! Invariants:
//! - the slot holds at most one value, owned by the slot (a handle turned into a raw pointer);
//! - every value put is returned exactly once: by a later `put` (displaced), a `take`, or drop.
//!
//! Both operations are a single `swap`, so owner and thieves never both obtain the same value;
//! AcqRel on the swap makes the writer's prior writes to the value visible to the taker.

use std::ptr;
use std::sync::Arc;

use crate::loom::AtomicPtr;
use std::sync::atomic::Ordering;

use super::gslab::SlabRef;

/// An owning pointer that can live in an atomic word: `Arc`, or a record's `SlabRef`.
pub(crate) trait RawHandle {
    type Target;
    fn into_raw(self) -> *mut Self::Target;
    /// # Safety
    /// `p` came from `into_raw` of this type and is taken back once.
    unsafe fn from_raw(p: *mut Self::Target) -> Self;
}

impl<T> RawHandle for Arc<T> {
    type Target = T;
    fn into_raw(self) -> *mut T {
        Arc::into_raw(self).cast_mut()
    }
    unsafe fn from_raw(p: *mut T) -> Arc<T> {
        // SAFETY: per the trait's contract.
        unsafe { Arc::from_raw(p) }
    }
}

impl<T> RawHandle for SlabRef<T> {
    type Target = T;
    fn into_raw(self) -> *mut T {
        SlabRef::into_raw(self).cast_mut()
    }
    unsafe fn from_raw(p: *mut T) -> SlabRef<T> {
        // SAFETY: per the trait's contract.
        unsafe { SlabRef::from_raw(p) }
    }
}

pub(crate) struct RunNext<H: RawHandle> {
    slot: AtomicPtr<H::Target>,
}

impl<H: RawHandle> RunNext<H> {
    pub(crate) fn new() -> RunNext<H> {
        RunNext {
            slot: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Puts `v` in the slot and returns the value it displaced, if any.
    #[inline]
    pub(crate) fn put(&self, v: H) -> Option<H> {
        let new = v.into_raw();
        // AcqRel: Release publishes `v` to the taker; Acquire pairs with the putter of the
        // displaced value.
        let old = self.slot.swap(new, Ordering::AcqRel);
        // SAFETY: a non-null slot value always came from `into_raw` in `put`, and the swap
        // gave this thread sole ownership of it.
        (!old.is_null()).then(|| unsafe { H::from_raw(old) })
    }

    /// Takes the value, if any (owner, or a thief).
    #[inline]
    pub(crate) fn take(&self) -> Option<H> {
        if self.slot.load(Ordering::Relaxed).is_null() {
            return None;
        }
        // AcqRel: Acquire pairs with the Release half of the `put` that stored the value.
        let old = self.slot.swap(ptr::null_mut(), Ordering::AcqRel);
        // SAFETY: as in `put`: the pointer came from `into_raw` and is now ours alone.
        (!old.is_null()).then(|| unsafe { H::from_raw(old) })
    }

    /// Whether the slot looks empty (a racy hint).
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.slot.load(Ordering::Acquire).is_null()
    }
}

impl<H: RawHandle> Drop for RunNext<H> {
    fn drop(&mut self) {
        drop(self.take());
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::atomic::AtomicUsize;
    use loom::thread;

    /// Owner puts two values while a thief takes: every value ends up with exactly one party.
    #[test]
    fn loom_runnext_each_value_taken_once() {
        loom::model(|| {
            let slot = Arc::new(RunNext::<Arc<usize>>::new());
            let seen = Arc::new(AtomicUsize::new(0));
            let thief = {
                let (slot, seen) = (slot.clone(), seen.clone());
                thread::spawn(move || {
                    if let Some(v) = slot.take() {
                        seen.fetch_add(*v, Ordering::Relaxed);
                    }
                })
            };
            let mut mine = 0;
            if let Some(old) = slot.put(Arc::new(1)) {
                mine += *old;
            }
            if let Some(old) = slot.put(Arc::new(2)) {
                mine += *old;
            }
            thief.join().unwrap();
            if let Some(v) = slot.take() {
                mine += *v;
            }
            assert_eq!(mine + seen.load(Ordering::Relaxed), 3);
        });
    }
}
