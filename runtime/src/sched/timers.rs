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
//!   goroutine (into the firing P's `runnext`) or sends the time on a timer's channel without
//!   blocking (Go's `sendTime`), and re-arms a ticker.
//! - Adding a timer earlier than what the sleeping Ms will wake for wakes one of them
//!   (`kick`), which re-computes its deadline (Go's `wakeNetPoller`).
//!
//! Stopping or resetting a `Timer` bumps its generation; heap entries of an old generation are
//! dropped when they come due (Go's deleted timers), so stop is O(1).

use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::GRef;
use crate::time::TimerCore;

/// What a due timer does.
pub(crate) enum Fire {
    /// `sleep`: ready the goroutine.
    Wake(GRef),
    /// A `Timer`, `Ticker` or `after`: send the time if the generation is current.
    Send(Arc<TimerCore>, u64),
}

pub(crate) struct Entry {
    /// Nanoseconds since the runtime's epoch.
    pub(crate) when: u64,
    pub(crate) fire: Fire,
}

// Ordered by deadline only: timers due at the same instant fire in no particular order, as in
// Go (a tie-breaking sequence number would be one more shared counter on every push).
impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        self.when == o.when
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    /// Reversed: `BinaryHeap` is a max-heap and we want the earliest on top.
    fn cmp(&self, o: &Self) -> CmpOrdering {
        o.when.cmp(&self.when)
    }
}

/// One P's timers.
pub(crate) struct Timers {
    heap: Mutex<BinaryHeap<Entry>>,
    /// The earliest `when` in the heap, or `u64::MAX` (Go's `timer0When`).
    next: AtomicU64,
}

impl Timers {
    pub(crate) fn new() -> Timers {
        Timers {
            heap: Mutex::new(BinaryHeap::new()),
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
        h.push(Entry { when, fire });
        let top = h.peek().map_or(u64::MAX, |e| e.when);
        self.next.store(top, Ordering::Release);
    }

    /// Takes the entries due at `now` (their actions run after the lock is released).
    pub(crate) fn take_due(&self, now: u64, out: &mut Vec<Entry>) {
        let mut h = self.heap.lock();
        while h.peek().is_some_and(|e| e.when <= now) {
            out.push(h.pop().expect("peeked"));
        }
        let top = h.peek().map_or(u64::MAX, |e| e.when);
        self.next.store(top, Ordering::Release);
    }

    /// Everything left (shutdown): the caller discards it.
    pub(crate) fn drain(&self) -> Vec<Entry> {
        let mut h = self.heap.lock();
        self.next.store(u64::MAX, Ordering::Release);
        std::mem::take(&mut *h).into_vec()
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
