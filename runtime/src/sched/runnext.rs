//! The `runnext` slot of a P: one goroutine that runs next, ahead of the local queue.
//!
//! Go's `p.runnext`: a goroutine readied by the running goroutine (a channel partner, a freshly
//! spawned child) goes here, so that a pair of communicating goroutines runs back to back on
//! one P and inherits the current time slice. The owner puts and takes; a thief on its last
//! stealing pass may take it too.
//!
//! Invariants:
//! - the slot holds at most one value, owned by the slot (a record's `SlabRef` turned into a raw pointer);
//! - every value put is returned exactly once: by a later `put` (displaced), a `take`, or drop.
//!
//! Both operations are a single `swap`, so owner and thieves never both obtain the same value;
//! AcqRel on the swap makes the writer's prior writes to the value visible to the taker.

use std::ptr;

use crate::loom::AtomicPtr;
use std::sync::atomic::Ordering;

use super::gslab::SlabRef;

pub(crate) struct RunNext<T> {
    slot: AtomicPtr<T>,
}

impl<T> RunNext<T> {
    pub(crate) fn new() -> RunNext<T> {
        RunNext {
            slot: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Puts `v` in the slot and returns the value it displaced, if any.
    #[inline]
    pub(crate) fn put(&self, v: SlabRef<T>) -> Option<SlabRef<T>> {
        let new = SlabRef::into_raw(v).cast_mut();
        // AcqRel: Release publishes `v` to the taker; Acquire pairs with the putter of the
        // displaced value.
        let old = self.slot.swap(new, Ordering::AcqRel);
        // SAFETY: a non-null slot value always came from `into_raw` in `put`, and the swap
        // gave this thread sole ownership of it.
        (!old.is_null()).then(|| unsafe { SlabRef::from_raw(old) })
    }

    /// Takes the value, if any (owner, or a thief).
    #[inline]
    pub(crate) fn take(&self) -> Option<SlabRef<T>> {
        if self.slot.load(Ordering::Relaxed).is_null() {
            return None;
        }
        // AcqRel: Acquire pairs with the Release half of the `put` that stored the value.
        let old = self.slot.swap(ptr::null_mut(), Ordering::AcqRel);
        // SAFETY: as in `put`: the pointer came from `into_raw` and is now ours alone.
        (!old.is_null()).then(|| unsafe { SlabRef::from_raw(old) })
    }

    /// Whether the slot looks empty (a racy hint).
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.slot.load(Ordering::Acquire).is_null()
    }
}

impl<T> Drop for RunNext<T> {
    fn drop(&mut self) {
        drop(self.take());
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::sched::gslab::Slab;
    use loom::sync::atomic::AtomicUsize;
    use loom::thread;
    use std::sync::Arc;

    /// Owner puts two values while a thief takes: every value ends up with exactly one party.
    #[test]
    fn loom_runnext_each_value_taken_once() {
        loom::model(|| {
            let slab = Slab::new();
            let slot = Arc::new(RunNext::new());
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
            if let Some(old) = slot.put(slab.make(1usize)) {
                mine += *old;
            }
            if let Some(old) = slot.put(slab.make(2)) {
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
