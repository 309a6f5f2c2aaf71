//! Who waits on a channel: the waiting party ([`Sel`], one per blocked `send`/`recv`/`select`)
//! and its entries in channel queues ([`Sudog`], one per channel it waits on; Go's `sudog`).
//!
//! # Hand-off protocol (Go's `chan.go` / `select.go`)
//!
//! - A waiter enqueues its sudogs and registers itself (`Sel::waiter`) while holding the lock
//!   of every channel it waits on; the registration happens after the goroutine switched out
//!   (`sched::park`), and the locks are released only after it.
//! - A waker dequeues a sudog under that channel's lock and *claims* it (`Sudog::claim`): a
//!   plain send or receive waits in one queue only, whose lock the waker holds, so its claim
//!   always wins without an atomic; a select's is a compare and swap of `done` from 0 to
//!   case + 1. Only the first claim succeeds: a select waiting on several channels is
//!   completed by exactly one of them; a later waker that dequeues one of its stale sudogs
//!   fails the claim and moves on to the next waiter.
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
    /// The caller won `claim` for a sudog it took out of a queue under that channel's lock
    /// (the lock ordered the owner's registration before it). The lock need not be held any
    /// more: after the claim nobody else touches the outcome or the waiter (`close` completes
    /// its waiters after unlocking).
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
    /// Its place in the one queue it waits in ([`WaitQ`]); touched only under that
    /// channel's lock.
    pub(crate) link: UnsafeCell<Link<T>>,
}

/// A sudog's neighbours in its channel queue (Go's `sudog.prev` / `sudog.next`). Two
/// pointers and no "queued" flag, so that the `Op` of a blocked operation on a value of up to
/// 48 bytes still fits a 128-byte block, the goroutine record's scratch block or the op
/// cache's (`chan::op_size_tests`; up to 64 bytes before the links): a sudog is queued iff it
/// has a neighbour or is its queue's head (a sudog that left the queue has both links
/// cleared).
pub(crate) struct Link<T> {
    prev: Option<NonNull<Sudog<T>>>,
    next: Option<NonNull<Sudog<T>>>,
}

impl<T> Link<T> {
    pub(crate) const fn new() -> Link<T> {
        Link {
            prev: None,
            next: None,
        }
    }
}

impl<T> Sudog<T> {
    /// A select's sudog for `case`.
    pub(crate) fn new(sel: &Sel, case: usize, elem: Option<T>) -> Sudog<T> {
        Sudog {
            sel: NonNull::from(sel),
            case,
            is_select: true,
            elem: UnsafeCell::new(elem),
            link: UnsafeCell::new(Link::new()),
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

/// A FIFO of sudogs (Go's `waitq`): an intrusive doubly linked list through the sudogs'
/// `link`s, so queueing allocates nothing and a select removes the sudogs of its other cases
/// in O(1).
///
/// Invariants (all under the channel's lock, which every method's `&mut self` stands for):
/// `head` and `tail` are both `None` or both point at queued sudogs; following `next` from
/// `head` reaches `tail`; a sudog in the list has a neighbour or is the head, one out of it
/// has both links `None`; a queued sudog is alive (module docs: its owner frees it only after
/// it left every queue).
pub(crate) struct WaitQ<T> {
    head: Option<NonNull<Sudog<T>>>,
    tail: Option<NonNull<Sudog<T>>>,
}

impl<T> WaitQ<T> {
    pub(crate) const fn new() -> WaitQ<T> {
        WaitQ {
            head: None,
            tail: None,
        }
    }

    /// The link of `s`.
    ///
    /// # Safety
    /// `s` is alive and the caller holds the lock of the queue it is (or is to be) in.
    #[allow(clippy::mut_from_ref)]
    unsafe fn link<'a>(s: NonNull<Sudog<T>>) -> &'a mut Link<T> {
        // SAFETY: per the contract, nobody else touches the link now.
        unsafe { &mut *s.as_ref().link.get() }
    }

    /// Queues `s` at the tail.
    ///
    /// # Safety
    /// `s` is alive until it leaves the queue, and is in no queue now.
    pub(crate) unsafe fn push(&mut self, s: NonNull<Sudog<T>>) {
        // SAFETY: per the contract; we hold the lock.
        unsafe {
            let l = Self::link(s);
            debug_assert!(
                l.prev.is_none() && l.next.is_none() && self.head != Some(s),
                "a sudog queued twice"
            );
            *l = Link {
                prev: self.tail,
                next: None,
            };
            match self.tail {
                Some(t) => Self::link(t).next = Some(s),
                None => self.head = Some(s),
            }
        }
        self.tail = Some(s);
    }

    /// Takes the head (its links cleared).
    pub(crate) fn pop_front(&mut self) -> Option<NonNull<Sudog<T>>> {
        let h = self.head?;
        // SAFETY: queued sudogs are alive (invariants); we hold the lock.
        unsafe {
            let l = Self::link(h);
            self.head = l.next;
            match self.head {
                Some(n) => Self::link(n).prev = None,
                None => self.tail = None,
            }
            *l = Link::new();
        }
        Some(h)
    }

    /// The oldest waiter whose `Sel` this call claims (Go's `dequeue`, which skips selects
    /// that another channel already completed). Waiters that are goroutines of a runtime that
    /// shut down are dropped from the queue on the way: they were discarded, and handing them
    /// a value would lose it (their sudogs stay valid: discarded goroutines leak them).
    ///
    /// # Safety
    /// Every sudog in the queue is alive (module docs).
    pub(crate) unsafe fn dequeue_claimed(&mut self) -> Option<NonNull<Sudog<T>>> {
        while let Some(s) = self.pop_front() {
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

    /// Removes `s` if it is still queued here.
    ///
    /// # Safety
    /// `s` is alive, and if it is queued, it is queued in this queue.
    pub(crate) unsafe fn remove(&mut self, s: NonNull<Sudog<T>>) {
        // SAFETY: per the contract; we hold the lock, and its neighbours are queued here.
        unsafe {
            let l = Self::link(s);
            if l.prev.is_none() && l.next.is_none() && self.head != Some(s) {
                return; // not queued (any more)
            }
            match l.prev {
                Some(p) => Self::link(p).next = l.next,
                None => self.head = l.next,
            }
            match l.next {
                Some(n) => Self::link(n).prev = l.prev,
                None => self.tail = l.prev,
            }
            *l = Link::new();
        }
    }

    /// Takes every queued sudog, oldest first, for `close`.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = NonNull<Sudog<T>>> + '_ {
        std::iter::from_fn(move || self.pop_front())
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    //! The intrusive list: FIFO order, removal anywhere, removal of what already left, drain.
    use super::*;

    /// Sudogs at fixed addresses (the vector is never resized).
    fn sudogs(sel: &Sel, n: usize) -> Vec<Sudog<u32>> {
        (0..n).map(|i| Sudog::new(sel, i, None)).collect()
    }

    fn ptr(s: &Sudog<u32>) -> NonNull<Sudog<u32>> {
        NonNull::from(s)
    }

    fn order(q: &mut WaitQ<u32>) -> Vec<usize> {
        // SAFETY: the test's sudogs outlive the queue's use of them.
        q.drain().map(|s| unsafe { s.as_ref() }.case).collect()
    }

    #[test]
    fn fifo_with_removal_anywhere() {
        let sel = Sel::new();
        let s = sudogs(&sel, 5);
        let mut q = WaitQ::new();
        for x in &s {
            // SAFETY: each sudog is in no queue and outlives `q`'s use.
            unsafe { q.push(ptr(x)) };
        }
        // SAFETY: queued (or not) in `q` only, alive.
        unsafe {
            q.remove(ptr(&s[2])); // middle
            q.remove(ptr(&s[0])); // head
            q.remove(ptr(&s[4])); // tail
            q.remove(ptr(&s[4])); // already out: nothing
        }
        assert_eq!(order(&mut q), [1, 3]);
        assert!(q.head.is_none() && q.tail.is_none());
        // Drained sudogs left the queue: removing them does nothing, queueing them again works.
        // SAFETY: as above.
        unsafe {
            q.remove(ptr(&s[1]));
            q.push(ptr(&s[3]));
            q.push(ptr(&s[1]));
        }
        assert_eq!(order(&mut q), [3, 1]);
    }

    #[test]
    fn dequeue_claimed_skips_selects_claimed_elsewhere() {
        let (a, b) = (Sel::new(), Sel::new());
        let (sa, sb) = (sudogs(&a, 1), sudogs(&b, 1));
        assert!(a.claim(0)); // completed through another channel
        let mut q = WaitQ::new();
        // SAFETY: alive, in no other queue.
        unsafe {
            q.push(ptr(&sa[0]));
            q.push(ptr(&sb[0]));
        }
        // SAFETY: queued sudogs are alive.
        let got = unsafe { q.dequeue_claimed() }.expect("b's sudog");
        assert_eq!(got, ptr(&sb[0]));
        assert!(q.head.is_none() && q.tail.is_none());
        // The stale one left the queue too: both links cleared.
        // SAFETY: alive.
        let l = unsafe { &*sa[0].link.get() };
        assert!(l.prev.is_none() && l.next.is_none());
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
