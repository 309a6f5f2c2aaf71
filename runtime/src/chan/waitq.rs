//! Who waits on a channel: the waiting party ([`Sel`], one per blocked `send`/`recv`/`select`)
//! and its entries in channel queues ([`Sudog`], one per channel it waits on; Go's `sudog`).
//!
//! # Hand-off protocol (Go's `chan.go` / `select.go`)
//!
//! - A waiter enqueues its sudogs and registers itself (`Sel::waiter`) while holding the lock
//!   of every channel it waits on; the registration happens after the goroutine switched out
//!   (`sched::park`), and the locks are released only after it.
//! - A waker dequeues a sudog under that channel's lock and *claims* the `Sel` (compare and
//!   swap of `done` from 0 to case + 1). Only the first claim succeeds: a select waiting on
//!   several channels is completed by exactly one of them; a later waker that dequeues one of
//!   its stale sudogs fails the claim and moves on to the next waiter.
//! - The successful claimer moves the value (into the receiver's sudog, or out of the sender's),
//!   records `ok`, takes the registered waiter and wakes it after releasing the lock.
//! - The woken owner locks its channels again and removes its other sudogs (select), then
//!   frees everything. Until then, stale sudogs stay valid: only the owner frees them, and only
//!   after they left every queue.
//!
//! Sudogs and `Sel`s live in heap boxes owned by the waiting party, never on a goroutine's
//! stack (a parked goroutine's stack may later be copied out). A goroutine discarded at
//! shutdown leaks its boxes, so a queue that still points at them stays valid.

use std::cell::UnsafeCell;
use std::ptr::NonNull;
use std::sync::atomic::Ordering;

use crate::loom::AtomicUsize;

use crate::sched::park::Waiter;

/// One blocked operation (a `send`, a `recv`, or a whole `select`). Public only because the
/// `select!` macro's case trait names it; not reachable from outside the crate.
#[doc(hidden)]
pub struct Sel {
    /// 0 while waiting; `case + 1` once a waker claimed it.
    done: AtomicUsize,
    /// Written by the claimer before waking: whether a value moved (false: channel closed).
    ok: UnsafeCell<bool>,
    /// The parked goroutine or thread; written by the owner under all its channels' locks.
    waiter: UnsafeCell<Option<Waiter>>,
}

// SAFETY: `ok` and `waiter` are written only under the locks named in the module docs (the
// owner's registration, the claimer after a successful claim), and read by the owner only
// after it was woken, which orders the accesses.
unsafe impl Sync for Sel {}
// SAFETY: as above; a `Waiter` is `Send`.
unsafe impl Send for Sel {}

impl Sel {
    pub(crate) fn new() -> Sel {
        Sel {
            done: AtomicUsize::new(0),
            ok: UnsafeCell::new(false),
            waiter: UnsafeCell::new(None),
        }
    }

    /// Claims the operation for `case`; true for the one caller that wins.
    #[inline]
    pub(crate) fn claim(&self, case: usize) -> bool {
        self.done
            .compare_exchange(0, case + 1, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The case that won, if any.
    pub(crate) fn winner(&self) -> Option<usize> {
        match self.done.load(Ordering::Acquire) {
            0 => None,
            n => Some(n - 1),
        }
    }

    /// Registers the waiter.
    ///
    /// # Safety
    /// The caller holds the lock of every channel this `Sel` has sudogs on.
    pub(crate) unsafe fn register(&self, w: Waiter) {
        // SAFETY: per the contract, no claimer can run now.
        unsafe { *self.waiter.get() = Some(w) };
    }

    /// After a successful claim: records the outcome and takes the waiter to wake.
    ///
    /// # Safety
    /// The caller won `claim` and holds the lock of the channel it dequeued from.
    pub(crate) unsafe fn complete(&self, ok: bool) -> Option<Waiter> {
        // SAFETY: the winner is the only writer after registration; the owner reads only after
        // it is woken.
        unsafe {
            *self.ok.get() = ok;
            (*self.waiter.get()).take()
        }
    }

    /// Whether the registered waiter is a goroutine of a runtime that has shut down.
    ///
    /// # Safety
    /// As `complete`: the caller won `claim` and holds the channel's lock.
    pub(crate) unsafe fn waiter_is_gone(&self) -> bool {
        // SAFETY: registration happened before the sudog could be dequeued; only the claimer
        // (the caller) touches the waiter now.
        unsafe { (*self.waiter.get()).as_ref().is_some_and(Waiter::is_gone) }
    }

    /// The outcome, read by the owner after it was woken.
    pub(crate) fn ok(&self) -> bool {
        // SAFETY: written before the wake that resumed us.
        unsafe { *self.ok.get() }
    }
}

/// An entry of a channel's send or receive queue.
pub(crate) struct Sudog<T> {
    pub(crate) sel: NonNull<Sel>,
    /// Which case of the select this is (0 for a plain send or receive).
    pub(crate) case: usize,
    /// Part of a select (its `Sel` may be claimed through another channel). A plain send or
    /// receive waits in one queue only, so whoever dequeues it under that queue's lock owns
    /// it without a compare-and-swap (Go's `sudog.isSelect`).
    pub(crate) is_select: bool,
    /// A sender's value, taken by the receiver; or the slot a sender fills for a receiver.
    pub(crate) elem: UnsafeCell<Option<T>>,
}

impl<T> Sudog<T> {
    /// A select's sudog for `case`.
    pub(crate) fn new(sel: &Sel, case: usize, elem: Option<T>) -> Sudog<T> {
        Sudog {
            sel: NonNull::from(sel),
            case,
            is_select: true,
            elem: UnsafeCell::new(elem),
        }
    }

    /// Claims this sudog's operation: always won for a plain operation (one queue, whose lock
    /// the caller holds), a compare-and-swap for a select.
    ///
    /// # Safety
    /// The caller holds the lock of the queue the sudog was dequeued from, and the sudog is
    /// alive.
    #[inline]
    pub(crate) unsafe fn claim(&self) -> bool {
        // SAFETY: a sudog's `Sel` outlives its time in any queue.
        !self.is_select || unsafe { self.sel.as_ref() }.claim(self.case)
    }
}

/// A FIFO of sudogs (Go's `waitq`).
pub(crate) struct WaitQ<T> {
    q: std::collections::VecDeque<NonNull<Sudog<T>>>,
}

impl<T> WaitQ<T> {
    pub(crate) const fn new() -> WaitQ<T> {
        WaitQ {
            q: std::collections::VecDeque::new(),
        }
    }

    pub(crate) fn push(&mut self, s: NonNull<Sudog<T>>) {
        self.q.push_back(s);
    }

    /// The oldest waiter whose `Sel` this call claims (Go's `dequeue`, which skips selects
    /// that another channel already completed). Waiters that are goroutines of a runtime that
    /// shut down are dropped from the queue on the way: they were discarded, and handing them
    /// a value would lose it (their sudogs stay valid: discarded goroutines leak them).
    ///
    /// # Safety
    /// Every sudog in the queue is alive (module docs).
    pub(crate) unsafe fn dequeue_claimed(&mut self) -> Option<NonNull<Sudog<T>>> {
        while let Some(s) = self.q.pop_front() {
            // SAFETY: per the contract; we hold the queue's lock, and after a won claim we
            // are the only one to look at the waiter.
            unsafe {
                if s.as_ref().claim() && !s.as_ref().sel.as_ref().waiter_is_gone() {
                    return Some(s);
                }
            }
        }
        None
    }

    /// Removes `s` if it is still queued.
    pub(crate) fn remove(&mut self, s: NonNull<Sudog<T>>) {
        if let Some(i) = self.q.iter().position(|&x| x == s) {
            self.q.remove(i);
        }
    }

    /// Every queued sudog, for `close`.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = NonNull<Sudog<T>>> + '_ {
        self.q.drain(..)
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! The claim: a select waiting on two channels is raced by a sender on each and by a
    //! `close`; exactly one of them completes it and takes the waiter, in every interleaving.
    use super::*;
    use loom::sync::Arc;

    #[test]
    fn loom_exactly_one_waker_claims_a_select() {
        loom::model(|| {
            let sel = Arc::new(Sel::new());
            let sig = std::sync::Arc::new(crate::sched::park::ThreadSignal::new());
            // SAFETY: no waker runs before the threads below are spawned.
            unsafe { sel.register(Waiter::Thread(sig)) };
            let won = Arc::new(AtomicUsize::new(0));
            let hs: Vec<_> = (0..3)
                .map(|case| {
                    let (sel, won) = (sel.clone(), won.clone());
                    loom::thread::spawn(move || {
                        if sel.claim(case) {
                            // SAFETY: this thread won the claim (the channel lock is not
                            // modelled: one claimer per case here).
                            let w = unsafe { sel.complete(case != 2) };
                            assert!(w.is_some(), "the winner takes the waiter");
                            won.fetch_add(1, Ordering::SeqCst);
                        }
                    })
                })
                .collect();
            for h in hs {
                h.join().unwrap();
            }
            assert_eq!(won.load(Ordering::SeqCst), 1);
            let case = sel.winner().expect("claimed");
            assert_eq!(sel.ok(), case != 2);
        });
    }
}
