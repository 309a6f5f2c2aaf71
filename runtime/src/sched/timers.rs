//! Timers, kept per P (Go 1.14's design): each P has a min-heap of timers under its own lock,
//! and the earliest deadline in an atomic so that the schedule loop can test it without the
//! lock.
//!
//! - A goroutine adds timers to its own P's heap (no shared lock, no contention); a plain
//!   thread adds to P 0's.
//! - Due timers fire from the schedule loop: every `find_runnable` runs its own P's due timers,
//!   and an M about to go idle runs any P's due timers (the heap's lock makes that safe), then
//!   sleeps no longer than the earliest deadline of all Ps.
//! - Firing runs the timer's action after the heap's lock is released: it readies a sleeping
//!   goroutine (into the firing P's `runnext`; into the global queue when sysmon fires it) or
//!   calls the timer's client (`TimerFunc`: a `Timer` sends the time on its channel without
//!   blocking, Go's `sendTime`, and a ticker re-arms; a socket deadline wakes its waiter).
//! - Adding a timer earlier than what the sleeping Ms will wake for wakes one of them
//!   (`wake_for_timer`), which re-computes its deadline (Go's `wakeNetPoller`).
//!
//! Stopping or resetting a `Timer` bumps its generation and marks its heap entry stale: O(1),
//! without searching the heap (Go 1.14's deleted timers). Stale entries are garbage that must
//! stay bounded and must not count as pending (a stopped timer cannot wake anyone, so it must
//! not keep deadlock detection from reporting). As Go's `cleantimers` and
//! `clearDeletedTimers` do:
//!
//! - stale entries at the top of a heap are removed whenever the top is looked at (after a
//!   push, a stop, a due timer), so `next` is always a live deadline or none;
//! - when more than a quarter of a heap (and at least 64 entries) is stale, the heap is
//!   rebuilt without them.
//!
//! Invariants (under the heap's lock): `next` is the deadline of the top entry, which is live;
//! `stale` is at least the number of stale entries (it may over-count entries a firing took).

use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::p::Processor;
use super::{ctx_ptr, GRef, Shared};

/// What a due timer does (Go's timer: `f(arg, seq)`). The heap knows no client by type: a
/// sleeping goroutine is readied, anything else is called through [`TimerFunc`].
pub(crate) enum Fire {
    /// `sleep`: ready the goroutine.
    Wake(GRef),
    /// A `Timer`'s channel, a socket's deadline, a future's task, a channel operation's
    /// timeout: call the target with the entry's sequence number.
    Call(Target, u64),
}

/// A timer's client (Go's `f` and `arg`): told when an entry of sequence `seq` is due, asked
/// whether it still counts. Implementors live with their module (`time::TimerCore`,
/// `netpoll::desc::NetTimer`, `chan`'s timeouts, [`TaskTimer`]); the heap calls them after
/// its lock is released, on whatever thread runs the timers (an M, sysmon).
pub(crate) trait TimerFunc: Send + Sync {
    /// Whether the entry of sequence `seq` is the live one; false makes it garbage the heap
    /// drops (a stopped or reset `Timer`, a wait that ended). Read under the heap's lock:
    /// an atomic load, no lock of the client's.
    fn is_armed(&self, seq: u64) -> bool;
    /// The entry of sequence `seq` is due. `me` is the target the entry held, to re-arm with
    /// (a ticker).
    fn fire(&self, shared: &Arc<Shared>, seq: u64, me: &Target);
    /// The runtime shuts down with the entry on a heap: no timer of it will fire any more.
    /// Nothing by default (a sleeping goroutine or a timer channel goes with the runtime); a
    /// task's timer fires, so that a future on a plain thread does not wait for ever.
    fn at_shutdown(&self) {}
}

/// A reference to a timer's client: counted, or one that lives for the process (a socket's
/// `PollDesc`, never freed).
#[derive(Clone)]
pub(crate) enum Target {
    Counted(Arc<dyn TimerFunc>),
    Static(&'static dyn TimerFunc),
}

impl Target {
    #[inline]
    fn get(&self) -> &dyn TimerFunc {
        match self {
            Target::Counted(a) => &**a,
            Target::Static(r) => *r,
        }
    }
}

impl Fire {
    /// Runs the action (after the heap's lock is released).
    pub(crate) fn run(self, shared: &Arc<Shared>) {
        match self {
            Fire::Wake(g) => super::ready(g),
            Fire::Call(t, seq) => t.get().fire(shared, seq, &t),
        }
    }

    /// The runtime shuts down with this entry on a heap (`TimerFunc::at_shutdown`).
    pub(crate) fn abandon(self) {
        if let Fire::Call(t, _) = &self {
            t.get().at_shutdown();
        }
    }
}

/// A timer that wakes a task (a `std::task::Waker`) instead of a goroutine: what a future
/// such as `gort::time::Sleep` arms. Cancelled (its heap entry garbage) when the future is
/// dropped first.
///
/// Invariant: `fired` is set, and the waker taken, under `waker`'s lock; a poll that stores a
/// new waker under the same lock and finds `fired` false is woken by the firing.
pub(crate) struct TaskTimer {
    waker: Mutex<Option<std::task::Waker>>,
    fired: std::sync::atomic::AtomicBool,
    cancelled: std::sync::atomic::AtomicBool,
}

impl TaskTimer {
    pub(crate) fn new(waker: std::task::Waker) -> TaskTimer {
        TaskTimer {
            waker: Mutex::new(Some(waker)),
            fired: std::sync::atomic::AtomicBool::new(false),
            cancelled: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Fires: wakes the task unless cancelled (from the timers, or at shutdown).
    pub(crate) fn fire(&self) {
        let w = {
            let mut w = self.waker.lock();
            self.fired.store(true, Ordering::Release);
            w.take()
        };
        if !self.cancelled.load(Ordering::Acquire) {
            if let Some(w) = w {
                w.wake();
            }
        }
    }

    /// Whether it fired; if not, `waker` is the one it will wake.
    pub(crate) fn poll_fired(&self, waker: &std::task::Waker) -> bool {
        let mut w = self.waker.lock();
        if self.fired.load(Ordering::Acquire) {
            return true;
        }
        match &mut *w {
            Some(old) if old.will_wake(waker) => {}
            slot => *slot = Some(waker.clone()),
        }
        false
    }

    /// The future went away: unless it fired, its heap entry is garbage now (true: the
    /// caller tells the heap, `note_stale`).
    pub(crate) fn cancel(&self) -> bool {
        let mut w = self.waker.lock();
        w.take();
        if self.fired.load(Ordering::Acquire) {
            return false;
        }
        self.cancelled.store(true, Ordering::Release);
        true
    }
}

impl TimerFunc for TaskTimer {
    fn is_armed(&self, _: u64) -> bool {
        !self.cancelled.load(Ordering::Acquire)
    }

    fn fire(&self, _: &Arc<Shared>, _: u64, _: &Target) {
        TaskTimer::fire(self);
    }

    fn at_shutdown(&self) {
        TaskTimer::fire(self);
    }
}

pub(crate) struct HeapEntry {
    /// Nanoseconds since the runtime's epoch.
    pub(crate) when: u64,
    pub(crate) fire: Fire,
}

// Ordered by deadline only: timers due at the same instant fire in no particular order, as in
// Go (a tie-breaking sequence number would be one more shared counter on every push).
impl PartialEq for HeapEntry {
    fn eq(&self, o: &Self) -> bool {
        self.when == o.when
    }
}
impl Eq for HeapEntry {}
impl PartialOrd for HeapEntry {
    fn partial_cmp(&self, o: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(o))
    }
}
impl Ord for HeapEntry {
    /// Reversed: `BinaryHeap` is a max-heap and we want the earliest on top.
    fn cmp(&self, o: &Self) -> CmpOrdering {
        o.when.cmp(&self.when)
    }
}

impl HeapEntry {
    /// A `Timer`'s entry of a generation it has moved past (stopped or reset since).
    fn is_stale(&self) -> bool {
        match &self.fire {
            Fire::Wake(_) => false,
            Fire::Call(t, seq) => !t.get().is_armed(*seq),
        }
    }
}

/// A heap and its count of stale entries.
struct Heap {
    entries: BinaryHeap<HeapEntry>,
    stale: usize,
}

impl Heap {
    /// Removes stale entries from the top; returns the earliest live deadline.
    fn clean_top(&mut self) -> u64 {
        while let Some(top) = self.entries.peek() {
            if !top.is_stale() {
                return top.when;
            }
            self.entries.pop();
            self.stale = self.stale.saturating_sub(1);
        }
        self.stale = 0;
        u64::MAX
    }
}

/// Stale entries a heap may hold before a rebuild (with at least this many, and more than a
/// quarter of the heap).
const REBUILD_MIN_STALE: usize = 64;

/// One P's timers.
pub(crate) struct Timers {
    heap: Mutex<Heap>,
    /// The earliest `when` in the heap, or `u64::MAX` (Go's `timer0When`).
    next: AtomicU64,
}

impl Timers {
    pub(crate) fn new() -> Timers {
        Timers {
            heap: Mutex::new(Heap {
                entries: BinaryHeap::new(),
                stale: 0,
            }),
            next: AtomicU64::new(u64::MAX),
        }
    }

    /// The earliest deadline, `u64::MAX` if none.
    #[inline]
    pub(crate) fn next(&self) -> u64 {
        self.next.load(Ordering::Acquire)
    }

    pub(crate) fn push(&self, when: u64, fire: Fire) {
        let mut h = self.heap.lock();
        h.entries.push(HeapEntry { when, fire });
        let top = h.clean_top();
        self.next.store(top, Ordering::Release);
    }

    /// A timer whose entry is on this heap was stopped or reset: its entry is garbage now.
    pub(crate) fn note_stale(&self) {
        let mut h = self.heap.lock();
        h.stale += 1;
        if h.stale >= REBUILD_MIN_STALE && h.stale * 4 > h.entries.len() {
            // Go's clearDeletedTimers: one pass, O(n), paid for by the n/4 stops before it.
            let entries = std::mem::take(&mut h.entries);
            h.entries = entries.into_iter().filter(|e| !e.is_stale()).collect();
            h.stale = 0;
        }
        let top = h.clean_top();
        self.next.store(top, Ordering::Release);
    }

    /// Takes the entries due at `now` (their actions run after the lock is released); stale
    /// ones are dropped.
    pub(crate) fn take_due(&self, now: u64, out: &mut Vec<HeapEntry>) {
        let mut h = self.heap.lock();
        while h.entries.peek().is_some_and(|e| e.when <= now) {
            let e = h.entries.pop().expect("peeked");
            if e.is_stale() {
                h.stale = h.stale.saturating_sub(1);
            } else {
                out.push(e);
            }
        }
        let top = h.clean_top();
        self.next.store(top, Ordering::Release);
    }

    /// Entries on the heap, stale ones included (tests and statistics).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn len(&self) -> usize {
        self.heap.lock().entries.len()
    }

    /// Everything left (shutdown): the caller discards it.
    pub(crate) fn drain(&self) -> Vec<HeapEntry> {
        let mut h = self.heap.lock();
        self.next.store(u64::MAX, Ordering::Release);
        h.stale = 0;
        std::mem::take(&mut h.entries).into_vec()
    }
}

/// Adds a timer: to the heap of the calling M's P (or the last it held), or P 0's from
/// elsewhere; wakes a sleeping M if it would otherwise sleep past `when`. Timers need no P
/// held: each heap has its own lock. Returns the index of the P whose heap holds the timer.
pub(crate) fn add_timer(shared: &Arc<Shared>, when: u64, fire: Fire) -> usize {
    let ctx = ctx_ptr();
    // SAFETY: see `current_g`.
    if !ctx.is_null() && unsafe { Arc::ptr_eq(&(*ctx).shared, shared) } {
        return add_timer_here(when, fire);
    }
    push(shared, &shared.procs[0], when, fire);
    0
}

/// `add_timer` on an M of the timer's runtime (a park function, a timer being re-armed): no
/// reference count of the runtime is touched.
pub(crate) fn add_timer_here(when: u64, fire: Fire) -> usize {
    let ctx = ctx_ptr();
    if ctx.is_null() {
        crate::panic::throw("add_timer_here: not on an M");
    }
    // SAFETY: see `current_g`.
    let ctx = unsafe { &*ctx };
    let p = &ctx.shared.procs[ctx.timer_p()];
    push(&ctx.shared, p, when, fire);
    p.id
}

/// Pushes onto `p`'s heap and makes sure someone will look at it. After shutdown nobody will
/// (its step 3 drained the heaps, `Shared::shutdown`): what was pushed is abandoned at once,
/// as the drain would have (a task's timer fires, a channel's deadline times out). The flag
/// is read after the push, under the heap's lock order: a push the drain missed sees it.
#[inline]
fn push(shared: &Arc<Shared>, p: &Processor, when: u64, fire: Fire) {
    p.timers.push(when, fire);
    if shared.is_shutdown() {
        for e in p.timers.drain() {
            e.fire.abandon();
        }
        return;
    }
    wake_for_timer(shared, when);
}

/// Runs `p`'s due timers; true if any fired. `now` is read from the clock at most once, and
/// only if some timer might be due. Any thread may do this (an M, sysmon).
#[inline]
pub(crate) fn run_due_timers(shared: &Arc<Shared>, p: &Processor, now: &mut Option<u64>) -> bool {
    if p.timers.next() == u64::MAX {
        return false;
    }
    run_due_timers_slow(shared, p, now)
}

#[inline(never)]
fn run_due_timers_slow(shared: &Arc<Shared>, p: &Processor, now: &mut Option<u64>) -> bool {
    let next = p.timers.next();
    let now = *now.get_or_insert_with(|| nanos_since(shared.epoch, std::time::Instant::now()));
    if next > now {
        return false;
    }
    let mut due = Vec::new();
    p.timers.take_due(now, &mut due);
    let any = !due.is_empty();
    for e in due {
        e.fire.run(shared);
    }
    any
}

/// Wakes an M if a timer at `when` is earlier than any sleeping M will wake for.
fn wake_for_timer(shared: &Arc<Shared>, when: u64) {
    if when < shared.timer_sleep_until.load(Ordering::Acquire) {
        super::idle::wakep(shared);
    }
}

/// The runtime's clock: nanoseconds since `epoch`.
pub(crate) fn nanos_since(epoch: Instant, t: Instant) -> u64 {
    t.saturating_duration_since(epoch)
        .as_nanos()
        .min(u64::MAX as u128 - 1) as u64
}

/// `when` for a timer `d` from now.
pub(crate) fn deadline(epoch: Instant, d: Duration) -> u64 {
    nanos_since(epoch, Instant::now()).saturating_add(d.as_nanos().min(u64::MAX as u128 / 2) as u64)
}
