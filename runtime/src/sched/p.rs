//! The processor (Go's `p`): a local run queue, the `runnext` slot, and per-P caches.
//!
//! A P is the right to run goroutines. There are GOMAXPROCS of them; an M must hold one to run
//! goroutine code. Everything a P owns is touched without locks by the M that holds it.
//!
//! Run queue: a crossbeam FIFO `Worker` (owner pushes at the back, pops at the front; thieves
//! take half from the front with its `Stealer`). Go's ring holds 256; crossbeam's grows, so the
//! cap is enforced here: a push onto a full queue moves half of it, plus the new goroutine, to
//! the global queue in one go (Go's `runqputslow`), which keeps the global queue's lock-free
//! pushes rare and lets other Ps share the surplus.
//!
//! `runnext`: see `runnext.rs`. A goroutine that runs from `runnext` inherits the time slice
//! (the schedule tick is not advanced), and at most [`MAX_RUNNEXT_STREAK`] of them run in a
//! row before the local queue gets a turn (tokio's LIFO cap), so a ping-ponging pair cannot
//! starve the queue.
//!
//! Invariants (protected by holding the P):
//! - `runq` pushes/pops, and every field of `PLocal`, happen only on the M holding the P; the P
//!   changes hands only through the idle list under the sched lock, which orders the accesses;
//! - `live` has a single writer (the holder); readers only sum it.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicI64, Ordering};

use crossbeam_deque::{Steal, Stealer, Worker};

use super::g::GRef;
use super::runnext::RunNext;
use super::timers::Timers;
use super::Goroutine;
use crate::coro::GStack;

/// Go's local run queue length.
pub(crate) const RUNQ_CAP: usize = 256;
/// Consecutive `runnext` runs before the local queue gets a turn.
pub(crate) const MAX_RUNNEXT_STREAK: u32 = 3;
/// Dead goroutine records a P keeps (Go: 64); past this, half go to the global cache.
pub(crate) const GFREE_CAP: usize = 64;
/// Stacks a P keeps; past this, half go back to the pool.
pub(crate) const STACK_CACHE_CAP: usize = 64;

/// One step of xorshift64 (Marsaglia): the scheduler's and `select`'s cheap randomness.
#[inline]
pub(crate) fn xorshift(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    x
}

/// State only the holding M touches.
pub(crate) struct PLocal {
    /// Go's `schedtick`: goroutines started from the queues (not from `runnext`).
    pub(crate) schedtick: u32,
    runnext_streak: u32,
    /// Dead goroutine records (Go's `p.gFree`).
    pub(crate) gfree: Vec<GRef>,
    /// Default-size stacks of dead goroutines, for the next goroutines to start here.
    pub(crate) stacks: Vec<GStack>,
    /// Goroutine ids handed out in batches (Go's `goidcache`).
    pub(crate) goid_next: u64,
    pub(crate) goid_end: u64,
    /// xorshift state for choosing steal victims.
    rng: u64,
}

pub(crate) struct Processor {
    pub(crate) id: usize,
    runnext: RunNext<Goroutine>,
    runq: UnsafeCell<Worker<GRef>>,
    stealer: Stealer<GRef>,
    local: UnsafeCell<PLocal>,
    /// Goroutines started minus goroutines ended on this P (may be negative).
    live: AtomicI64,
    /// This P's timers (`timers.rs`); any M may run them under their lock.
    pub(crate) timers: Timers,
}

// SAFETY: `runq` and `local` are touched only by the M holding the P (module invariants); the
// hand-over of a P between Ms goes through the sched mutex, which orders those accesses.
// `runnext`, `stealer` and `live` are safe to share.
unsafe impl Sync for Processor {}

impl Processor {
    pub(crate) fn new(id: usize) -> Processor {
        let runq = Worker::new_fifo();
        let stealer = runq.stealer();
        Processor {
            id,
            runnext: RunNext::new(),
            runq: UnsafeCell::new(runq),
            stealer,
            timers: Timers::new(),
            local: UnsafeCell::new(PLocal {
                schedtick: 0,
                runnext_streak: 0,
                gfree: Vec::new(),
                stacks: Vec::new(),
                goid_next: 0,
                goid_end: 0,
                rng: 0x9E37_79B9_7F4A_7C15 ^ (id as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9),
            }),
            live: AtomicI64::new(0),
        }
    }

    /// The holder's queue.
    ///
    /// # Safety
    /// The caller holds this P.
    #[inline]
    pub(crate) unsafe fn runq(&self) -> &Worker<GRef> {
        // SAFETY: only the holder reaches the Worker, by the caller's contract.
        unsafe { &*self.runq.get() }
    }

    /// The holder's private state.
    ///
    /// # Safety
    /// The caller holds this P and has no other reference from this method alive.
    #[inline]
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn local(&self) -> &mut PLocal {
        // SAFETY: exclusive by the caller's contract.
        unsafe { &mut *self.local.get() }
    }

    /// Go's `runqput`. With `next`, `g` goes to `runnext` and the goroutine it displaces (if
    /// any) to the back of the queue. Returns whether the queue (stealable work) grew, which is
    /// when the caller should `wakep`.
    ///
    /// # Safety
    /// The caller holds this P.
    #[inline]
    pub(crate) unsafe fn runq_put(&self, g: GRef, next: bool, global: &super::Injector) -> bool {
        let g = if next {
            match self.runnext.put(g) {
                None => return false,
                Some(old) => old,
            }
        } else {
            g
        };
        // SAFETY: the caller holds this P.
        let q = unsafe { self.runq() };
        if q.len() >= RUNQ_CAP {
            // Go's runqputslow: half the queue and `g` move to the global queue.
            for _ in 0..RUNQ_CAP / 2 {
                match q.pop() {
                    Some(o) => global.push(o),
                    None => break,
                }
            }
            global.push(g);
        } else {
            q.push(g);
        }
        true
    }

    /// Go's `runqget`: `runnext` first (inheriting the time slice) unless it has run
    /// [`MAX_RUNNEXT_STREAK`] times in a row, then the queue. Returns the goroutine and whether
    /// it inherits the time slice.
    ///
    /// # Safety
    /// The caller holds this P.
    #[inline]
    pub(crate) unsafe fn runq_get(&self) -> Option<(GRef, bool)> {
        // SAFETY: the caller holds this P.
        let local = unsafe { self.local() };
        if local.runnext_streak < MAX_RUNNEXT_STREAK {
            if let Some(g) = self.runnext.take() {
                local.runnext_streak += 1;
                return Some((g, true));
            }
        }
        local.runnext_streak = 0;
        // SAFETY: the caller holds this P.
        if let Some(g) = unsafe { self.runq() }.pop() {
            return Some((g, false));
        }
        self.runnext.take().map(|g| {
            local.runnext_streak = 1;
            (g, true)
        })
    }

    /// Whether this P has no queued goroutine (racy; for re-checks before sleeping).
    pub(crate) fn runq_empty(&self) -> bool {
        self.stealer.is_empty() && self.runnext.is_empty()
    }

    /// Go's `runqsteal`: moves about half of this P's queue into `dest` and returns one of the
    /// goroutines. With `take_runnext` (the last stealing pass), an empty queue gives up its
    /// `runnext`.
    pub(crate) fn steal_into(&self, dest: &Worker<GRef>, take_runnext: bool) -> Option<GRef> {
        loop {
            match self
                .stealer
                .steal_batch_with_limit_and_pop(dest, RUNQ_CAP / 2)
            {
                Steal::Success(g) => return Some(g),
                Steal::Retry => continue,
                Steal::Empty => break,
            }
        }
        if take_runnext && !self.runnext.is_empty() {
            // Go sleeps 3 µs first: the holder is probably about to run it itself (a channel
            // hand-off takes well under that), and stealing it would only move the pair apart.
            std::thread::sleep(std::time::Duration::from_micros(3));
            return self.runnext.take();
        }
        None
    }

    /// Takes everything queued on this P (shutdown only).
    ///
    /// # Safety
    /// The caller holds this P, or no M runs any more.
    pub(crate) unsafe fn drain(&self) -> Vec<GRef> {
        let mut v: Vec<GRef> = self.runnext.take().into_iter().collect();
        // SAFETY: per the caller's contract.
        let q = unsafe { self.runq() };
        while let Some(g) = q.pop() {
            v.push(g);
        }
        v
    }

    /// Adds `d` to this P's live-goroutine delta.
    ///
    /// # Safety
    /// The caller holds this P (single writer).
    #[inline]
    pub(crate) unsafe fn add_live(&self, d: i64) {
        // Single writer: a plain load/store pair, no locked instruction.
        self.live
            .store(self.live.load(Ordering::Relaxed) + d, Ordering::Relaxed);
    }

    pub(crate) fn live(&self) -> i64 {
        self.live.load(Ordering::Relaxed)
    }

    /// A random number for victim selection.
    ///
    /// # Safety
    /// The caller holds this P.
    pub(crate) unsafe fn rand(&self) -> u64 {
        // SAFETY: per the caller's contract.
        xorshift(&mut unsafe { self.local() }.rng)
    }
}
