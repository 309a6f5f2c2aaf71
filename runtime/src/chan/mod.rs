//! Channels (Go's `chan.go`): [`Chan`], its errors, and the lock-protected queue state that
//! `select` (`select.rs`) shares.
//!
//! ```
//! use gort::chan::{Chan, TryRecvError};
//! gort::run(|| {
//!     let ch: Chan<i32> = Chan::new(1); // Go: ch := make(chan int, 1)
//!     ch.send(1); // ch <- 1
//!     assert_eq!(ch.recv(), Some(1)); // v, ok := <-ch
//!     assert_eq!(ch.try_recv(), Err(TryRecvError::Empty)); // select { ... default: }
//!     ch.close(); // close(ch)
//!     assert_eq!(ch.recv(), None); // ok == false
//! });
//! ```
//!
//! # Design
//!
//! A channel is a mutex-protected state: a ring buffer of `cap` values, a `closed` flag, and two
//! FIFO queues of waiting parties (`waitq.rs`): receivers waiting for a value, senders waiting
//! to hand one over. Invariants (under the lock):
//! - `recvq` is non-empty only when the buffer is empty (a receiver that finds a value takes it);
//! - `sendq` is non-empty only when the buffer is full (for `cap == 0`: always "full");
//! - once `closed`, both queues are empty: `close` wakes everyone.
//!
//! A sender that finds a waiting receiver gives it the value directly (into the receiver's
//! sudog) and readies it — into the sender's P's `runnext`, so the receiver runs next on the
//! same core: that is what makes ping-pong fast. A receiver that finds a waiting sender of an
//! unbuffered channel takes its value directly; of a full buffered channel, takes the head of
//! the buffer and moves the sender's value to its tail (FIFO is kept).
//!
//! Wake-ups happen after the lock is released. A blocked party registers itself after its
//! goroutine switched out and before the lock is released (`sched::park`), so no wake-up is
//! lost and no goroutine is resumed while still on its way to sleep.
//!
//! The lock (`lock.rs`) is held for a few instructions and never across a wake-up or a park:
//! a test-and-test-and-set spin lock whose unlock is a plain release store (Go's runtime
//! `lock` spins too before it sleeps).

mod deadline;
mod dynamic;
mod error;
mod lock;
mod op;
mod select;
mod waitq;

use std::cell::UnsafeCell;
use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use lock::SpinLock;

use crate::panic::RuntimeError;
use crate::sched::park::{block_current, Waiter};
use crate::sched::WaitReason;
use op::OpBox;
use waitq::{Sudog, WaitQ};

pub use dynamic::{Select, Selected};
pub use error::{RecvTimeoutError, SendTimeoutError, TryRecvError, TrySendError};
#[doc(hidden)]
pub use select::{select, CaseChan, RecvCase, SelectCase, SendCase};

/// A Go channel: a typed conduit between goroutines (and plain threads), unbuffered
/// (`Chan::new(0)`: a send completes when a receiver takes the value) or buffered.
///
/// One handle type does both ends, as in Go; clones share the channel. Any number of
/// goroutines may send and receive. A goroutine that blocks parks (its thread runs other
/// goroutines); a plain thread blocks. Dropping every handle does not close the channel.
///
/// Go's panics keep Go's texts: `send on closed channel`, `close of closed channel`,
/// `close of nil channel` (each a [`RuntimeError`], as in Go).
///
/// [`Chan::nil`] is Go's nil channel: sends and receives block forever, and a `select!` never
/// chooses it (so is an `Option<Chan<T>>` that is `None`).
///
/// # Example
///
/// ```
/// gort::run(|| {
///     let (ping, pong) = (gort::Chan::new(0), gort::Chan::new(0));
///     let (p, q) = (ping.clone(), pong.clone());
///     gort::go!(move || {
///         for v in &p {
///             q.send(v + 1); // hands the value straight to the waiting receiver
///         }
///         q.close();
///     });
///     for i in 0..3 {
///         ping.send(i * 10);
///         assert_eq!(pong.recv(), Some(i * 10 + 1));
///     }
///     ping.close();
///     assert_eq!(pong.recv(), None); // Go's `v, ok := <-pong` with ok == false
/// });
/// ```
pub struct Chan<T> {
    inner: Option<Arc<ChanInner<T>>>,
}

pub(crate) struct ChanInner<T> {
    lock: SpinLock,
    state: UnsafeCell<State<T>>,
    cap: usize,
}

pub(crate) struct State<T> {
    buf: VecDeque<T>,
    closed: bool,
    recvq: WaitQ<T>,
    sendq: WaitQ<T>,
}

// SAFETY: `state` is touched only under `lock`; values of `T` move between threads, hence
// `T: Send`. Sudog pointers in the queues follow the protocol of `waitq.rs`.
unsafe impl<T: Send> Send for ChanInner<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for ChanInner<T> {}

/// What `poll_send` found.
pub(crate) enum SendPoll<T> {
    /// Sent; wake this receiver (after unlocking).
    Done(Option<Waiter>),
    /// The buffer is full and no receiver waits.
    Full(T),
    /// The channel is closed.
    Closed(T),
}

/// What `poll_recv` found.
pub(crate) enum RecvPoll<T> {
    /// A value; wake this sender (after unlocking).
    Value(T, Option<Waiter>),
    /// Closed and drained.
    Closed,
    /// Nothing to receive yet.
    Empty,
}

/// The channel's lock, held: the state through `Deref`/`DerefMut`, unlocked on drop (also
/// when a panic unwinds through the holder). A blocked operation moves its guard into the park
/// function, so the lock is released only after the goroutine has switched out.
pub(crate) struct Locked<'a, T> {
    c: &'a ChanInner<T>,
}

impl<T> std::ops::Deref for Locked<'_, T> {
    type Target = State<T>;
    #[inline(always)]
    fn deref(&self) -> &State<T> {
        // SAFETY: the guard holds the lock, which makes it the state's only user.
        unsafe { &*self.c.state.get() }
    }
}

impl<T> std::ops::DerefMut for Locked<'_, T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut State<T> {
        // SAFETY: as in `deref`; `&mut self` makes this borrow unique.
        unsafe { &mut *self.c.state.get() }
    }
}

impl<T> Drop for Locked<'_, T> {
    #[inline(always)]
    fn drop(&mut self) {
        // SAFETY: the guard was made by `ChanInner::lock`, which took the lock.
        unsafe { self.c.lock.unlock() }
    }
}

impl<T> ChanInner<T> {
    /// Takes the channel's lock.
    #[inline(always)]
    pub(crate) fn lock(&self) -> Locked<'_, T> {
        self.lock.lock();
        Locked { c: self }
    }

    /// Takes the lock without a guard, for `select`, which holds several channels' locks at
    /// once in address order and releases them together.
    ///
    /// # Safety
    /// The caller calls `unlock_raw` exactly once afterwards, and touches the state only in
    /// between (through `state_locked`).
    #[inline]
    pub(crate) unsafe fn lock_raw(&self) {
        self.lock.lock();
    }

    /// # Safety
    /// The caller holds the lock (from `lock_raw`).
    #[inline]
    pub(crate) unsafe fn unlock_raw(&self) {
        // SAFETY: per the contract.
        unsafe { self.lock.unlock() }
    }

    /// The state, under a lock taken with `lock_raw`.
    ///
    /// # Safety
    /// The caller holds the lock and has no other reference to the state.
    #[inline]
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn state_locked(&self) -> &mut State<T> {
        // SAFETY: per the contract.
        unsafe { &mut *self.state.get() }
    }

    pub(crate) fn addr(&self) -> usize {
        self as *const Self as usize
    }

    /// A send that does not block (Go's `chansend` up to the blocking part).
    ///
    /// # Safety
    /// `st` is this channel's state, locked.
    pub(crate) unsafe fn poll_send(&self, st: &mut State<T>, v: T) -> SendPoll<T> {
        if st.closed {
            return SendPoll::Closed(v);
        }
        // SAFETY: queued sudogs are alive (waitq.rs); we hold the lock.
        if let Some(sg) = unsafe { st.recvq.dequeue_claimed() } {
            // SAFETY: we claimed it: we alone write its slot and complete its `Sel`.
            unsafe {
                let sg = sg.as_ref();
                *sg.elem.get() = Some(v);
                return SendPoll::Done(sg.sel.as_ref().complete(true));
            }
        }
        if st.buf.len() < self.cap {
            st.buf.push_back(v);
            return SendPoll::Done(None);
        }
        SendPoll::Full(v)
    }

    /// A receive that does not block (Go's `chanrecv` up to the blocking part).
    ///
    /// # Safety
    /// `st` is this channel's state, locked.
    pub(crate) unsafe fn poll_recv(&self, st: &mut State<T>) -> RecvPoll<T> {
        // SAFETY: as in `poll_send`.
        if let Some(sg) = unsafe { st.sendq.dequeue_claimed() } {
            // SAFETY: we claimed it: we alone take its value and complete its `Sel`.
            let (v, w) = unsafe {
                let sg = sg.as_ref();
                let v = (*sg.elem.get()).take().unwrap_or_else(|| {
                    crate::panic::throw("chanrecv: a waiting sender has no value")
                });
                (v, sg.sel.as_ref().complete(true))
            };
            if self.cap == 0 {
                return RecvPoll::Value(v, w);
            }
            // A sender waits only on a full buffer: take its head, the sender's value goes
            // to the tail.
            let head = st.buf.pop_front().unwrap_or_else(|| {
                crate::panic::throw("chanrecv: a sender waits on a buffer with room")
            });
            st.buf.push_back(v);
            return RecvPoll::Value(head, w);
        }
        if let Some(v) = st.buf.pop_front() {
            return RecvPoll::Value(v, None);
        }
        if st.closed {
            return RecvPoll::Closed;
        }
        RecvPoll::Empty
    }

    /// Queues a sudog for a blocked send.
    ///
    /// # Safety
    /// `st` is this channel's locked state; `sg` is in no queue and stays alive until it
    /// left this one (`waitq.rs`).
    pub(crate) unsafe fn enqueue_send(st: &mut State<T>, sg: &Sudog<T>) {
        // SAFETY: forwarded contract.
        unsafe { st.sendq.push(std::ptr::NonNull::from(sg)) };
    }

    /// Queues a sudog for a blocked receive.
    ///
    /// # Safety
    /// As `enqueue_send`.
    pub(crate) unsafe fn enqueue_recv(st: &mut State<T>, sg: &Sudog<T>) {
        // SAFETY: forwarded contract.
        unsafe { st.recvq.push(std::ptr::NonNull::from(sg)) };
    }

    /// Removes a select's send sudog that did not win.
    ///
    /// # Safety
    /// `st` is this channel's locked state, and `sg` was queued (if at all) in its `sendq`.
    pub(crate) unsafe fn dequeue_send(st: &mut State<T>, sg: &Sudog<T>) {
        // SAFETY: forwarded contract.
        unsafe { st.sendq.remove(std::ptr::NonNull::from(sg)) };
    }

    /// Removes a select's receive sudog that did not win.
    ///
    /// # Safety
    /// As `dequeue_send`, for `recvq`.
    pub(crate) unsafe fn dequeue_recv(st: &mut State<T>, sg: &Sudog<T>) {
        // SAFETY: forwarded contract.
        unsafe { st.recvq.remove(std::ptr::NonNull::from(sg)) };
    }
}

/// Wakes the party an operation completed, if any (always after the channel's lock is released).
#[inline]
pub(crate) fn wake(w: Option<Waiter>) {
    if let Some(w) = w {
        w.wake();
    }
}

#[track_caller]
pub(crate) fn chan_panic(what: &'static str) -> ! {
    std::panic::panic_any(RuntimeError::plain(what))
}

/// Blocks forever (an operation on a nil channel, a `select!` with no usable case). Only
/// deadlock detection or shutdown ends it.
#[track_caller]
pub(crate) fn block_forever(reason: WaitReason) -> ! {
    loop {
        block_current(reason, drop);
    }
}

impl<T: Send> Chan<T> {
    /// A channel with a buffer of `cap` values (0: unbuffered, Go's `make(chan T)`).
    ///
    /// # Panics
    /// `makechan: size out of range` (a [`RuntimeError`], as in Go) if a buffer of `cap`
    /// values could not exist: more than 2^48 bytes, Go's limit on 64-bit Linux. Channels of
    /// a zero-sized type take any capacity.
    ///
    /// ```
    /// let ch: gort::Chan<&str> = gort::Chan::new(2);
    /// assert_eq!((ch.len(), ch.cap()), (0, 2));
    /// ```
    #[track_caller]
    pub fn new(cap: usize) -> Chan<T> {
        /// Go's `maxAlloc - hchanSize` on 64-bit Linux.
        const MAX_BUF: usize = (1 << 48) - 96;
        let fits = match cap.checked_mul(std::mem::size_of::<T>()) {
            Some(bytes) => bytes <= MAX_BUF,
            None => false,
        };
        if !fits {
            chan_panic("makechan: size out of range")
        }
        Chan {
            inner: Some(Arc::new(ChanInner {
                lock: SpinLock::new(),
                state: UnsafeCell::new(State {
                    buf: VecDeque::with_capacity(cap.min(1024)),
                    closed: false,
                    recvq: WaitQ::new(),
                    sendq: WaitQ::new(),
                }),
                cap,
            })),
        }
    }

    /// Go's nil channel (`var c chan T`): sends and receives block forever, `close` panics,
    /// `len` and `cap` are 0, and `select!` never chooses it.
    ///
    /// ```
    /// gort::run(|| {
    ///     let never: gort::Chan<u32> = gort::Chan::nil(); // Go: var never chan uint32
    ///     assert_eq!((never.len(), never.cap()), (0, 0));
    ///     let ready = gort::Chan::new(1);
    ///     ready.send(7);
    ///     let v = gort::select! {
    ///         recv(never) -> v => v, // never chosen
    ///         recv(ready) -> v => v,
    ///     };
    ///     assert_eq!(v, Some(7));
    /// });
    /// ```
    pub fn nil() -> Chan<T> {
        Chan { inner: None }
    }

    /// Whether this is the nil channel.
    ///
    /// ```
    /// assert!(gort::Chan::<u8>::nil().is_nil()); // Go: ch == nil
    /// assert!(!gort::Chan::<u8>::new(0).is_nil());
    /// ```
    pub fn is_nil(&self) -> bool {
        self.inner.is_none()
    }

    pub(crate) fn raw(&self) -> Option<&ChanInner<T>> {
        self.inner.as_deref()
    }

    /// Sends `v`, blocking until a receiver takes it (unbuffered) or there is room in the
    /// buffer. Go's `c <- v`.
    ///
    /// # Panics
    /// `send on closed channel` if the channel is closed, or is closed while this waits.
    ///
    /// ```
    /// gort::run(gort::frame!(|| {
    ///     let ch = gort::Chan::new(0);
    ///     let tx = ch.clone();
    ///     gort::go!(move || tx.send("ping")); // Go: go func() { ch <- "ping" }()
    ///     assert_eq!(ch.recv(), Some("ping"));
    ///     ch.close();
    ///     defer!(|| assert_eq!(gort::recover().unwrap().to_string(), "send on closed channel"));
    ///     ch.send("pong");
    /// }));
    /// ```
    #[track_caller]
    pub fn send(&self, v: T) {
        let Some(c) = self.raw() else {
            block_forever(WaitReason::ChanSendNil)
        };
        let mut st = c.lock();
        // SAFETY: `st` is this channel's state, locked.
        match unsafe { c.poll_send(&mut st, v) } {
            SendPoll::Done(w) => {
                drop(st);
                wake(w);
            }
            SendPoll::Closed(v) => {
                drop(st);
                drop(v);
                chan_panic("send on closed channel")
            }
            SendPoll::Full(v) => {
                let op = OpBox::new(Some(v));
                // SAFETY: we hold the lock; the op is fresh and outlives its time in the
                // queue (a receiver or `close` takes it out before waking us).
                unsafe { ChanInner::enqueue_send(&mut st, &op.sg) };
                block_current(WaitReason::ChanSend, |w| {
                    // SAFETY: we still hold the lock (`st`); a receiver can claim the sudog
                    // only after it is released here.
                    unsafe { op.sel.register(w) };
                    drop(st);
                });
                if !op.sel.ok() {
                    chan_panic("send on closed channel")
                }
            }
        }
    }

    /// Receives a value, blocking until one is there; `None` once the channel is closed and
    /// drained (Go's `v, ok := <-c` with `ok == false`).
    ///
    /// ```
    /// gort::run(|| {
    ///     let ch = gort::Chan::new(0);
    ///     let tx = ch.clone();
    ///     gort::go!(move || {
    ///         tx.send(42);
    ///         tx.close();
    ///     });
    ///     assert_eq!(ch.recv(), Some(42)); // Go: v, ok := <-ch (42, true)
    ///     assert_eq!(ch.recv(), None); // closed and drained: (0, false)
    /// });
    /// ```
    #[track_caller]
    pub fn recv(&self) -> Option<T> {
        let Some(c) = self.raw() else {
            block_forever(WaitReason::ChanReceiveNil)
        };
        let mut st = c.lock();
        // SAFETY: `st` is this channel's state, locked.
        match unsafe { c.poll_recv(&mut st) } {
            RecvPoll::Value(v, w) => {
                drop(st);
                wake(w);
                Some(v)
            }
            RecvPoll::Closed => {
                drop(st);
                None
            }
            RecvPoll::Empty => {
                let op = OpBox::new(None);
                // SAFETY: as in `send`.
                unsafe { ChanInner::enqueue_recv(&mut st, &op.sg) };
                block_current(WaitReason::ChanReceive, |w| {
                    // SAFETY: as in `send`.
                    unsafe { op.sel.register(w) };
                    drop(st);
                });
                if op.sel.ok() {
                    // SAFETY: the sender filled the slot before waking us; nobody else
                    // touches it now.
                    unsafe { (*op.sg.elem.get()).take() }
                } else {
                    None
                }
            }
        }
    }

    /// Sends without blocking: `Full` if that would block, `Closed` if closed (both hand the
    /// value back). Go's `select { case c <- v: default: }`, except that a closed channel is an
    /// error here rather than a panic.
    ///
    /// ```
    /// use gort::TrySendError;
    /// let ch = gort::Chan::new(1);
    /// assert_eq!(ch.try_send('a'), Ok(()));
    /// // Go: select { case ch <- 'b': default: /* full */ }
    /// assert_eq!(ch.try_send('b'), Err(TrySendError::Full('b')));
    /// ```
    pub fn try_send(&self, v: T) -> Result<(), TrySendError<T>> {
        let Some(c) = self.raw() else {
            return Err(TrySendError::Full(v));
        };
        let mut st = c.lock();
        // SAFETY: `st` is this channel's state, locked.
        let r = unsafe { c.poll_send(&mut st, v) };
        drop(st);
        match r {
            SendPoll::Done(w) => {
                wake(w);
                Ok(())
            }
            SendPoll::Full(v) => Err(TrySendError::Full(v)),
            SendPoll::Closed(v) => Err(TrySendError::Closed(v)),
        }
    }

    /// Receives without blocking. Go's `select { case v, ok := <-c: default: }`.
    ///
    /// ```
    /// let ch = gort::Chan::new(2);
    /// assert_eq!(ch.try_recv(), Err(gort::TryRecvError::Empty)); // would block
    /// ch.send(5);
    /// assert_eq!(ch.try_recv(), Ok(5));
    /// ```
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        let Some(c) = self.raw() else {
            return Err(TryRecvError::Empty);
        };
        let mut st = c.lock();
        // SAFETY: `st` is this channel's state, locked.
        let r = unsafe { c.poll_recv(&mut st) };
        drop(st);
        match r {
            RecvPoll::Value(v, w) => {
                wake(w);
                Ok(v)
            }
            RecvPoll::Closed => Err(TryRecvError::Closed),
            RecvPoll::Empty => Err(TryRecvError::Empty),
        }
    }

    /// Sends, giving up after `d` (the value comes back): a select of this send and
    /// `gort::time::after(d)`, except that the timer goes as soon as the send is done (a
    /// finished send leaves nothing pending, `chan/deadline.rs`).
    ///
    /// # Panics
    /// `send on closed channel`, as [`Chan::send`].
    ///
    /// ```
    /// use std::time::Duration;
    /// gort::run(|| {
    ///     let ch = gort::Chan::new(1);
    ///     let d = Duration::from_millis(5);
    ///     assert!(ch.send_timeout(1, d).is_ok()); // room in the buffer: no wait
    ///     // Go: select { case ch <- 2: case <-time.After(d): }
    ///     assert_eq!(ch.send_timeout(2, d), Err(gort::SendTimeoutError::Timeout(2)));
    /// });
    /// ```
    #[track_caller]
    pub fn send_timeout(&self, v: T, d: Duration) -> Result<(), SendTimeoutError<T>> {
        // No timer for a send that completes now.
        let v = match self.try_send(v) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Closed(v)) => {
                drop(v);
                chan_panic("send on closed channel")
            }
            Err(TrySendError::Full(v)) => v,
        };
        let timer = deadline::Deadline::after(d, "Chan::send_timeout");
        let mut send = SendCase::new(Some(self), v);
        let mut tick = RecvCase::new(Some(timer.chan()));
        let won = select(&mut [&mut send, &mut tick], false);
        if won == 0 {
            Ok(())
        } else {
            Err(SendTimeoutError::Timeout(
                send.into_value().expect("an unsent value is kept"),
            ))
        }
    }

    /// Receives, giving up after `d`: a select of this receive and `gort::time::after(d)`,
    /// except that the timer goes as soon as the receive is done (a finished receive leaves
    /// nothing pending, `chan/deadline.rs`).
    ///
    /// ```
    /// use std::time::Duration;
    /// gort::run(|| {
    ///     let ch = gort::Chan::new(0);
    ///     let tx = ch.clone();
    ///     gort::go!(move || tx.send("reply"));
    ///     assert_eq!(ch.recv_timeout(Duration::from_secs(5)), Ok("reply"));
    ///     // Go: select { case v := <-ch: case <-time.After(5 * time.Millisecond): }
    ///     let r = ch.recv_timeout(Duration::from_millis(5));
    ///     assert_eq!(r, Err(gort::RecvTimeoutError::Timeout));
    /// });
    /// ```
    #[track_caller]
    pub fn recv_timeout(&self, d: Duration) -> Result<T, RecvTimeoutError> {
        // No timer for a receive that completes now.
        match self.try_recv() {
            Ok(v) => return Ok(v),
            Err(TryRecvError::Closed) => return Err(RecvTimeoutError::Closed),
            Err(TryRecvError::Empty) => {}
        }
        let timer = deadline::Deadline::after(d, "Chan::recv_timeout");
        let mut recv = RecvCase::new(Some(self));
        let mut tick = RecvCase::new(Some(timer.chan()));
        let won = select(&mut [&mut recv, &mut tick], false);
        if won == 0 {
            recv.into_value().ok_or(RecvTimeoutError::Closed)
        } else {
            Err(RecvTimeoutError::Timeout)
        }
    }

    /// Closes the channel: receivers get the buffered values, then `None`; blocked senders
    /// panic. Go's `close(c)`.
    ///
    /// # Panics
    /// `close of closed channel`; `close of nil channel`.
    ///
    /// ```
    /// gort::run(gort::frame!(|| {
    ///     let ch = gort::Chan::new(2);
    ///     ch.send(1);
    ///     ch.close(); // Go: close(ch)
    ///     assert_eq!((ch.recv(), ch.recv()), (Some(1), None));
    ///     defer!(|| assert_eq!(gort::recover().unwrap().to_string(), "close of closed channel"));
    ///     ch.close();
    /// }));
    /// ```
    #[track_caller]
    pub fn close(&self) {
        let Some(c) = self.raw() else {
            chan_panic("close of nil channel")
        };
        let mut st = c.lock();
        if st.closed {
            drop(st);
            chan_panic("close of closed channel")
        }
        st.closed = true;
        // The claimed waiters move to a local list (their own links: nothing is allocated
        // under the spin lock), and are completed and woken after the unlock (Go's `glist`).
        let mut claimed = WaitQ::new();
        let state = &mut *st;
        for q in [&mut state.recvq, &mut state.sendq] {
            for sg in q.drain() {
                // SAFETY: queued sudogs are alive (waitq.rs); we hold the lock. A claimed
                // sudog's owner stays parked until we complete it, so it stays alive in
                // `claimed`; `drain` cleared its links.
                unsafe {
                    if sg.as_ref().claim() {
                        claimed.push(sg);
                    }
                }
            }
        }
        drop(st);
        // `pop_front` reads a sudog's links before it is completed: once woken, its owner
        // frees it.
        while let Some(sg) = claimed.pop_front() {
            // SAFETY: we won its claim, so we alone complete its `Sel` (waitq.rs: the claimer
            // owns the outcome and the waiter, with or without the channel's lock).
            if let Some(w) = unsafe { sg.as_ref().sel.as_ref().complete(false) } {
                w.wake();
            }
        }
    }

    /// Values in the buffer now (Go's `len(c)`).
    ///
    /// ```
    /// let ch = gort::Chan::new(3);
    /// ch.send("a");
    /// ch.send("b");
    /// assert_eq!(ch.len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        self.with_state(|st| st.buf.len())
    }

    /// Whether the buffer is empty now.
    ///
    /// ```
    /// let ch = gort::Chan::new(1);
    /// assert!(ch.is_empty());
    /// ch.send(());
    /// assert!(!ch.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The buffer's capacity (Go's `cap(c)`).
    ///
    /// ```
    /// assert_eq!(gort::Chan::<u8>::new(8).cap(), 8);
    /// assert_eq!(gort::Chan::<u8>::new(0).cap(), 0); // unbuffered
    /// ```
    pub fn cap(&self) -> usize {
        self.raw().map_or(0, |c| c.cap)
    }

    /// Whether `close` was called. (Go has no such test: there, `v, ok := <-c` finds out
    /// by receiving.)
    ///
    /// ```
    /// let ch: gort::Chan<u8> = gort::Chan::new(1);
    /// assert!(!ch.is_closed());
    /// ch.close();
    /// assert!(ch.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.with_state(|st| st.closed)
    }

    fn with_state<R: Default>(&self, f: impl FnOnce(&State<T>) -> R) -> R {
        let Some(c) = self.raw() else {
            return R::default();
        };
        let st = c.lock();
        f(&st)
    }
}

impl<T> Clone for Chan<T> {
    fn clone(&self) -> Self {
        Chan {
            inner: self.inner.clone(),
        }
    }
}

impl<T> PartialEq for Chan<T> {
    /// Go's channel equality: the same channel (or both nil).
    fn eq(&self, other: &Self) -> bool {
        match (&self.inner, &other.inner) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        }
    }
}

impl<T> Eq for Chan<T> {}

/// Hashes the channel's identity (Go's `map[chan T]V` keys): equal channels (the same
/// channel, or both nil) hash alike.
///
/// ```
/// use std::collections::HashSet;
/// let a: gort::Chan<u8> = gort::Chan::new(1);
/// let b: gort::Chan<u8> = gort::Chan::new(1);
/// let seen: HashSet<_> = [a.clone(), b.clone(), a.clone()].into_iter().collect();
/// assert_eq!(seen.len(), 2);
/// assert!(seen.contains(&a) && seen.contains(&b));
/// ```
impl<T> std::hash::Hash for Chan<T> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let id = self
            .inner
            .as_ref()
            .map_or(0, |a| Arc::as_ptr(a) as *const () as usize);
        id.hash(state);
    }
}

impl<T: Send> fmt::Debug for Chan<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.raw() {
            None => f.write_str("Chan(nil)"),
            Some(c) => f
                .debug_struct("Chan")
                .field("len", &self.len())
                .field("cap", &c.cap)
                .field("closed", &self.is_closed())
                .finish(),
        }
    }
}

/// Receives until the channel is closed and drained (Go's `for v := range c`); made by
/// [`Chan::iter`] or by `for v in &ch`.
///
/// ```
/// gort::run(|| {
///     let ch = gort::Chan::new(0);
///     let tx = ch.clone();
///     gort::go!(move || {
///         for word in ["go", "gort"] {
///             tx.send(word);
///         }
///         tx.close();
///     });
///     let mut words = Vec::new();
///     for w in &ch { // Go: for w := range ch
///         words.push(w);
///     }
///     assert_eq!(words, ["go", "gort"]);
/// });
/// ```
pub struct Iter<'a, T> {
    ch: &'a Chan<T>,
}

impl<T: Send> Iterator for Iter<'_, T> {
    type Item = T;
    #[track_caller]
    fn next(&mut self) -> Option<T> {
        self.ch.recv()
    }
}

impl<'a, T: Send> IntoIterator for &'a Chan<T> {
    type Item = T;
    type IntoIter = Iter<'a, T>;
    fn into_iter(self) -> Iter<'a, T> {
        Iter { ch: self }
    }
}

impl<T: Send> Chan<T> {
    /// Receives until the channel is closed and drained.
    ///
    /// ```
    /// let ch = gort::Chan::new(3);
    /// for i in 1..=3 {
    ///     ch.send(i);
    /// }
    /// ch.close();
    /// assert_eq!(ch.iter().sum::<i32>(), 6);
    /// ```
    pub fn iter(&self) -> Iter<'_, T> {
        Iter { ch: self }
    }
}

#[cfg(all(test, not(loom)))]
mod op_size_tests {
    /// A blocked operation on a value of up to 48 bytes fits the op cache's block, so it
    /// allocates nothing (bigger values fall back to the allocator, correctly but slower).
    #[test]
    fn ops_of_values_up_to_48_bytes_fit_the_op_cache() {
        let fits = |l: std::alloc::Layout| super::op::opcache::fits(l);
        assert!(fits(std::alloc::Layout::new::<super::op::Op<u64>>()));
        assert!(fits(std::alloc::Layout::new::<super::op::Op<[u64; 6]>>()));
        assert!(fits(std::alloc::Layout::new::<super::op::Op<String>>()));
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! The channel hand-off end to end, with plain threads (whose parker is loom-aware): the
    //! spin lock, the queue, registration before unlock, the claim, and the wake-up. loom
    //! reports a deadlock if any interleaving loses a wake-up. (A select over two channels
    //! exceeds loom's branch limit through the spin locks' retry loops; its claim has its own
    //! model in `waitq.rs`.)
    use super::*;

    #[test]
    fn loom_unbuffered_send_meets_blocked_recv() {
        loom::model(|| {
            let c: Chan<u32> = Chan::new(0);
            let c2 = c.clone();
            let t = loom::thread::spawn(move || c2.send(7));
            assert_eq!(c.recv(), Some(7));
            t.join().unwrap();
        });
    }

    #[test]
    fn loom_close_wakes_a_blocked_receiver() {
        loom::model(|| {
            let c: Chan<u32> = Chan::new(0);
            let c2 = c.clone();
            let t = loom::thread::spawn(move || c2.close());
            assert_eq!(c.recv(), None);
            t.join().unwrap();
        });
    }
}
