//! `select` (Go's `select.go`): waits on several channel operations at once and completes
//! exactly one.
//!
//! 1. Lock every channel involved, in address order (each once), so two selects over the same
//!    channels cannot deadlock.
//! 2. Poll the cases in a random order (Go's `pollorder`: a ready case is chosen uniformly at
//!    random); the first ready one completes and the locks are released.
//! 3. None ready: with a default, take it. Otherwise enqueue one sudog per case, in the random
//!    poll order (two cases on one channel must win equally often once parked), all pointing
//!    at one `Sel`, register the waiter and park; the locks are released after the switch.
//! 4. A waker claims the `Sel` for its case (`waitq.rs`) and completes that operation.
//! 5. Woken: lock the channels again, remove the sudogs of the other cases, unlock, and finish
//!    the winning case (take the received value; a send that was woken by `close` panics).
//!
//! Nil channels (`Chan::nil()`, or an `Option<Chan<T>>` that is `None`) are never ready and
//! are not locked. A select with no usable case and no default blocks forever.

use std::cell::Cell;

use crate::sched::p::xorshift;

use super::waitq::{Sel, Sudog};
use super::{block_forever, chan_panic, wake, Chan, ChanInner, RecvPoll, SendPoll};
use crate::sched::park::{block_current, Waiter};
use crate::sched::WaitReason;

/// A party to wake after the locks are released.
#[doc(hidden)]
pub struct Wakeup(Option<Waiter>);

/// What polling a case found.
pub enum Poll {
    /// Completed; wake this party (after unlocking).
    #[doc(hidden)]
    Ready(Wakeup),
    /// Not ready.
    #[doc(hidden)]
    NotReady,
    /// A send on a closed channel: the select panics.
    #[doc(hidden)]
    SendClosed,
}

/// One case of a `select!`, type-erased (made by the macro; not for direct use).
///
/// # Safety
/// Implementations uphold the channel protocol of `waitq.rs`; the lock methods are called in
/// the order `select` documents.
#[doc(hidden)]
pub unsafe trait SelectCase {
    /// The channel's address (its lock order), or 0 for a nil channel.
    fn addr(&self) -> usize;
    /// # Safety
    /// Called once per unique channel, in address order.
    unsafe fn lock(&self);
    /// # Safety
    /// The channel is locked by this select.
    unsafe fn unlock(&self);
    /// # Safety
    /// The channel is locked by this select.
    unsafe fn poll(&mut self) -> Poll;
    /// # Safety
    /// The channel is locked by this select; `sel` outlives the sudog's time in the queue.
    unsafe fn enqueue(&mut self, sel: &Sel, case: usize);
    /// # Safety
    /// The channel is locked by this select.
    unsafe fn dequeue(&mut self);
    /// This case won while parked; `ok` is false if it was woken by `close`. Returns false
    /// for a send woken by `close`: the select then panics (`send on closed channel`).
    fn woken(&mut self, ok: bool) -> bool;
}

/// Channels a `select!` case accepts: `Chan<T>`, `Option<Chan<T>>` (`None` is Go's nil
/// channel), and references to either.
#[doc(hidden)]
pub trait CaseChan<T> {
    /// The channel, or `None` for a nil one.
    fn __gort_case_chan(&self) -> Option<&Chan<T>>;
}

impl<T> CaseChan<T> for Chan<T> {
    fn __gort_case_chan(&self) -> Option<&Chan<T>> {
        Some(self)
    }
}

impl<T> CaseChan<T> for Option<Chan<T>> {
    fn __gort_case_chan(&self) -> Option<&Chan<T>> {
        self.as_ref()
    }
}

impl<T> CaseChan<T> for Option<&Chan<T>> {
    fn __gort_case_chan(&self) -> Option<&Chan<T>> {
        *self
    }
}

/// A case's channel address (its lock order), 0 for a nil channel.
pub(super) fn case_addr<T>(ch: Option<&ChanInner<T>>) -> usize {
    ch.map_or(0, |c| c.addr())
}

/// # Safety
/// As `SelectCase::lock`.
unsafe fn case_lock<T>(ch: Option<&ChanInner<T>>) {
    if let Some(c) = ch {
        // SAFETY: the caller unlocks it (`case_unlock`).
        unsafe { c.lock_raw() };
    }
}

/// # Safety
/// As `SelectCase::unlock`.
unsafe fn case_unlock<T>(ch: Option<&ChanInner<T>>) {
    if let Some(c) = ch {
        // SAFETY: locked by `case_lock`.
        unsafe { c.unlock_raw() };
    }
}

/// `recv(ch) -> v`: the value, or `None` when the channel was closed.
#[doc(hidden)]
pub struct RecvCase<'a, T> {
    ch: Option<&'a ChanInner<T>>,
    value: Option<Option<T>>,
    sg: Option<Box<Sudog<T>>>,
}

impl<'a, T: Send> RecvCase<'a, T> {
    /// A receive from `ch` (`None`: a nil channel).
    pub fn new(ch: Option<&'a Chan<T>>) -> RecvCase<'a, T> {
        RecvCase {
            ch: ch.and_then(|c| c.raw()),
            value: None,
            sg: None,
        }
    }

    /// The received value after this case won: `None` if the channel was closed.
    pub fn into_value(mut self) -> Option<T> {
        self.value.take().flatten()
    }
}

// SAFETY: follows `waitq.rs`: the sudog is enqueued and removed under the channel's lock and
// freed only after it left the queue.
unsafe impl<T: Send> SelectCase for RecvCase<'_, T> {
    fn addr(&self) -> usize {
        case_addr(self.ch)
    }
    unsafe fn lock(&self) {
        // SAFETY: forwarded contract.
        unsafe { case_lock(self.ch) }
    }
    unsafe fn unlock(&self) {
        // SAFETY: forwarded contract.
        unsafe { case_unlock(self.ch) }
    }
    unsafe fn poll(&mut self) -> Poll {
        let Some(c) = self.ch else {
            return Poll::NotReady;
        };
        // SAFETY: the channel is locked by this select.
        let st = unsafe { c.state_locked() };
        // SAFETY: as above.
        match unsafe { c.poll_recv(st) } {
            RecvPoll::Value(v, w) => {
                self.value = Some(Some(v));
                Poll::Ready(Wakeup(w))
            }
            RecvPoll::Closed => {
                self.value = Some(None);
                Poll::Ready(Wakeup(None))
            }
            RecvPoll::Empty => Poll::NotReady,
        }
    }
    unsafe fn enqueue(&mut self, sel: &Sel, case: usize) {
        if let Some(c) = self.ch {
            let sg = Box::new(Sudog::new(sel, case, None));
            // SAFETY: the channel is locked by this select; the boxed sudog is fresh, and the
            // case keeps it until `dequeue` (or the winning waker) took it out.
            unsafe { ChanInner::enqueue_recv(c.state_locked(), &sg) };
            self.sg = Some(sg);
        }
    }
    unsafe fn dequeue(&mut self) {
        if let (Some(c), Some(sg)) = (self.ch, &self.sg) {
            // SAFETY: the channel is locked by this select; the sudog was queued (if still)
            // in its recvq.
            unsafe { ChanInner::dequeue_recv(c.state_locked(), sg) };
        }
    }
    fn woken(&mut self, ok: bool) -> bool {
        let sg = self.sg.as_ref().expect("a parked case has a sudog");
        // SAFETY: the waker filled the slot before waking us and no longer touches it.
        let v = unsafe { (*sg.elem.get()).take() };
        self.value = Some(if ok { v } else { None });
        true
    }
}

/// `send(ch, v)`.
#[doc(hidden)]
pub struct SendCase<'a, T> {
    ch: Option<&'a ChanInner<T>>,
    value: Option<T>,
    sg: Option<Box<Sudog<T>>>,
}

impl<'a, T: Send> SendCase<'a, T> {
    /// A send of `v` on `ch` (`None`: a nil channel).
    pub fn new(ch: Option<&'a Chan<T>>, v: T) -> SendCase<'a, T> {
        SendCase {
            ch: ch.and_then(|c| c.raw()),
            value: Some(v),
            sg: None,
        }
    }

    /// The value, if it was not sent (this case did not win).
    pub fn into_value(mut self) -> Option<T> {
        self.value.take()
    }
}

// SAFETY: as for `RecvCase`.
unsafe impl<T: Send> SelectCase for SendCase<'_, T> {
    fn addr(&self) -> usize {
        case_addr(self.ch)
    }
    unsafe fn lock(&self) {
        // SAFETY: forwarded contract.
        unsafe { case_lock(self.ch) }
    }
    unsafe fn unlock(&self) {
        // SAFETY: forwarded contract.
        unsafe { case_unlock(self.ch) }
    }
    unsafe fn poll(&mut self) -> Poll {
        let Some(c) = self.ch else {
            return Poll::NotReady;
        };
        let Some(v) = self.value.take() else {
            return Poll::NotReady;
        };
        // SAFETY: the channel is locked by this select.
        let st = unsafe { c.state_locked() };
        // SAFETY: as above.
        match unsafe { c.poll_send(st, v) } {
            SendPoll::Done(w) => Poll::Ready(Wakeup(w)),
            SendPoll::Full(v) => {
                self.value = Some(v);
                Poll::NotReady
            }
            SendPoll::Closed(v) => {
                self.value = Some(v);
                Poll::SendClosed
            }
        }
    }
    unsafe fn enqueue(&mut self, sel: &Sel, case: usize) {
        if let Some(c) = self.ch {
            let sg = Box::new(Sudog::new(sel, case, self.value.take()));
            // SAFETY: as for a receive case.
            unsafe { ChanInner::enqueue_send(c.state_locked(), &sg) };
            self.sg = Some(sg);
        }
    }
    unsafe fn dequeue(&mut self) {
        if let (Some(c), Some(sg)) = (self.ch, &self.sg) {
            // SAFETY: the channel is locked by this select; the sudog was queued (if still)
            // in its sendq.
            unsafe { ChanInner::dequeue_send(c.state_locked(), sg) };
            // The value was not sent: keep it (`into_value`).
            // SAFETY: the sudog is out of the queue; only we touch it.
            self.value = unsafe { (*sg.elem.get()).take() };
        }
    }
    fn woken(&mut self, ok: bool) -> bool {
        ok
    }
}

thread_local! {
    /// xorshift state for poll orders.
    static RNG: Cell<u64> = const { Cell::new(0) };
}

fn fastrand() -> u64 {
    RNG.with(|r| {
        let mut x = r.get();
        if x == 0 {
            x = (r as *const _ as u64) | 1;
        }
        let v = xorshift(&mut x);
        r.set(x);
        v
    })
}

/// Cases a select orders on its own stack; larger selects allocate.
const INLINE_CASES: usize = 16;

/// Runs a select over `cases`; returns the index of the case that completed, or
/// `cases.len()` for the default (`has_default`). Used by `select!`.
#[doc(hidden)]
#[track_caller]
pub fn select(cases: &mut [&mut dyn SelectCase], has_default: bool) -> usize {
    let n = cases.len();
    // Two index orders, on the stack for the usual handful of cases.
    let mut inline = [0usize; 2 * INLINE_CASES];
    let mut heap = Vec::new();
    let (poll, locks) = if n <= INLINE_CASES {
        inline[..2 * n].split_at_mut(n)
    } else {
        heap.resize(2 * n, 0);
        heap.split_at_mut(n)
    };
    // Poll order: a random permutation (Fisher-Yates).
    for (i, slot) in poll.iter_mut().enumerate() {
        *slot = i;
    }
    for i in (1..n).rev() {
        let j = (fastrand() % (i as u64 + 1)) as usize;
        poll.swap(i, j);
    }
    // Lock order: by address, each channel once, nil channels left out.
    let mut nlocks = 0;
    for (i, c) in cases.iter().enumerate() {
        if c.addr() != 0 {
            locks[nlocks] = i;
            nlocks += 1;
        }
    }
    let locks = &mut locks[..nlocks];
    locks.sort_unstable_by_key(|&i| cases[i].addr());
    let mut unique = 0;
    for k in 0..nlocks {
        if unique == 0 || cases[locks[k]].addr() != cases[locks[unique - 1]].addr() {
            locks[unique] = locks[k];
            unique += 1;
        }
    }
    let locks = &locks[..unique];
    let lock_all = |cases: &[&mut dyn SelectCase]| {
        for &i in locks {
            // SAFETY: each unique channel once, in address order; `unlock_all` follows.
            unsafe { cases[i].lock() };
        }
    };
    let unlock_all = |cases: &[&mut dyn SelectCase]| {
        for &i in locks.iter().rev() {
            // SAFETY: locked by `lock_all`.
            unsafe { cases[i].unlock() };
        }
    };

    lock_all(cases);
    for &i in poll.iter() {
        // SAFETY: all channels are locked.
        match unsafe { cases[i].poll() } {
            Poll::Ready(Wakeup(w)) => {
                unlock_all(cases);
                wake(w);
                return i;
            }
            Poll::SendClosed => {
                unlock_all(cases);
                chan_panic("send on closed channel")
            }
            Poll::NotReady => {}
        }
    }
    if has_default {
        unlock_all(cases);
        return n;
    }
    if locks.is_empty() {
        block_forever(WaitReason::SelectNoCases)
    }
    let sel = Box::new(Sel::new());
    // Enqueue in the random poll order, not in source order: two cases on one channel are
    // then first in its queue equally often, so the case a waker completes is random too
    // (Go enqueues in `lockorder`, which its heap sort derives from the random `pollorder`).
    for &i in poll.iter() {
        // SAFETY: all channels are locked; `sel` lives until every sudog left its queue.
        unsafe { cases[i].enqueue(&sel, i) };
    }
    {
        let cases = &*cases;
        block_current(WaitReason::Select, |w| {
            // SAFETY: we hold every channel's lock; they are released right after.
            unsafe { sel.register(w) };
            unlock_all(cases);
        });
    }
    let won = sel
        .winner()
        .unwrap_or_else(|| crate::panic::throw("select: woken but not claimed"));
    lock_all(cases);
    for (i, c) in cases.iter_mut().enumerate() {
        if i != won {
            // SAFETY: all channels are locked.
            unsafe { c.dequeue() };
        }
    }
    unlock_all(cases);
    if !cases[won].woken(sel.ok()) {
        chan_panic("send on closed channel")
    }
    won
}
