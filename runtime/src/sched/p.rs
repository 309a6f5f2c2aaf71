//! The processor (Go's `p`), in two halves: what only its holder touches ([`PCore`], owned)
//! and what everyone may read or race on ([`Processor`], shared).
//!
//! A P is the right to run goroutines. There are GOMAXPROCS of them; an M must hold one to run
//! goroutine code from its queues. Holding a P *is* owning its `PCore`: a `Box<PCore>` lives
//! in the idle list (under the sched lock), in a woken M's note, in an M's slot (`pslot.rs`,
//! while the M runs goroutines), or with sysmon for the moment it hands a P from a blocked M
//! to another. Everything that needs the P takes `&mut PCore`, which only those owners can
//! produce, so "the caller holds this processor" is checked by the compiler rather than stated
//! by `unsafe fn`s.
//!
//! Shared half (`Processor`, in `Shared::procs`): the `runnext` slot, the run queue's stealer,
//! the timers (own lock), the live-goroutine delta, and statistics.
//!
//! Run queue: a crossbeam FIFO `Worker` (owner pushes at the back, pops at the front; thieves
//! take half from the front with its `Stealer`). Go's ring holds 256; crossbeam's grows, so the
//! cap is enforced here: a push onto a full queue moves half of it, plus the new goroutine, to
//! the global queue in one go (Go's `runqputslow`).
//!
//! `runnext`: see `runnext.rs`. A goroutine that runs from `runnext` inherits the time slice
//! (the schedule tick is not advanced), as in Go: a pair of goroutines handing a value back and
//! forth runs back to back in one slice, however many hand-offs that is. What keeps such a pair
//! from starving the queues is time, not a count (tokio's LIFO cap counts hand-offs, which lets
//! a pair that works 1,000 times longer between hand-offs take 1,000 times the processor; Go's
//! `TestPingPongHog`): once a slice has run 10 ms with goroutines waiting, sysmon asks the P to
//! end it ([`Processor::request_preempt`]), and the M does at the goroutine's next schedule
//! point (`m.rs`, "Time slices").

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_deque::{Steal, Stealer, Worker};
use crossbeam_utils::CachePadded;

use super::g::{GRef, Goroutine};
use super::runnext::RunNext;
use super::timers::Timers;
use super::Shared;
use crate::coro::stack::Refused;
use crate::coro::GStack;

/// Go's local run queue length.
pub(crate) const RUNQ_CAP: usize = 256;
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

/// The owned half of a P: only its holder touches it.
pub(crate) struct PCore {
    pub(crate) id: usize,
    runq: Worker<GRef>,
    /// Go's `schedtick`: time slices started (goroutines run from the queues, not from
    /// `runnext`). Published to sysmon in `Processor::slice`.
    pub(crate) schedtick: u32,
    /// Dead goroutine records (Go's `p.gFree`).
    pub(crate) gfree: Vec<GRef>,
    /// Default-size stacks of dead goroutines, for the next goroutines to start here.
    pub(crate) stacks: Vec<GStack>,
    /// Goroutine ids handed out in batches (Go's `goidcache`).
    pub(crate) goid_next: u64,
    pub(crate) goid_end: u64,
    /// xorshift state for choosing steal victims.
    rng: u64,
    /// The time slice's words (`SliceWords`), also reached by sysmon through the shared half.
    /// Their own cache line, reached from this half: the holder writes the tick at every new
    /// slice and reads the request at every schedule point, and only sysmon looks otherwise.
    /// Measured: beside `runnext` (which thieves and spinning Ms read and swap) those accesses
    /// missed the cache, skynet at P=2 took 1.27x as long; padded inside the shared half (which
    /// made it 128-byte aligned), yield took 1.09x.
    slice: Arc<CachePadded<SliceWords>>,
}

/// The shared half of a P.
pub(crate) struct Processor {
    pub(crate) id: usize,
    runnext: RunNext<Goroutine>,
    stealer: Stealer<GRef>,
    /// The time slice's words, shared with the holder (`PCore::slice`).
    slice: Arc<CachePadded<SliceWords>>,
    /// Goroutines started minus goroutines ended on this P (may be negative). Single writer:
    /// the holder (through `PCore`).
    live: AtomicI64,
    /// This P's timers (`timers.rs`); any M may run them under their lock.
    pub(crate) timers: Timers,
    /// Goroutines this P stole from others, and Ps sysmon took from this P's M (statistics).
    pub(crate) steals: AtomicU64,
    pub(crate) handoffs: AtomicU64,
    /// Time slices sysmon asked to end (statistics).
    pub(crate) preempts: AtomicU64,
}

/// A P's time-slice words (`PCore::slice`).
pub(crate) struct SliceWords {
    /// The holder's `schedtick`, for sysmon to see how long the current slice has run (Go's
    /// `sysmontick.schedtick`). Single writer: the holder.
    tick: AtomicU32,
    /// sysmon asks the holder to end the current time slice (Go's `gp.preempt`): set by
    /// sysmon, cleared by the holder when it honours it or starts a new slice anyway.
    preempt: AtomicBool,
}

/// Makes the two halves of P `id`.
pub(crate) fn new_p(id: usize) -> (Processor, Box<PCore>) {
    let runq = Worker::new_fifo();
    let stealer = runq.stealer();
    let slice = Arc::new(CachePadded::new(SliceWords {
        tick: AtomicU32::new(0),
        preempt: AtomicBool::new(false),
    }));
    let shared = Processor {
        id,
        runnext: RunNext::new(),
        stealer,
        slice: slice.clone(),
        live: AtomicI64::new(0),
        timers: Timers::new(),
        steals: AtomicU64::new(0),
        handoffs: AtomicU64::new(0),
        preempts: AtomicU64::new(0),
    };
    let core = Box::new(PCore {
        id,
        runq,
        schedtick: 0,
        gfree: Vec::new(),
        stacks: Vec::new(),
        goid_next: 0,
        goid_end: 0,
        rng: 0x9E37_79B9_7F4A_7C15 ^ (id as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9),
        slice,
    });
    (shared, core)
}

/// Dirty stacks an M scrubs before it goes to sleep (bounded, so wake-up latency stays low).
const SCRUB_PER_IDLE: usize = 16;

/// The P's caches: dead goroutine records (Go's `gfget`/`gfput`) and default-size stacks.
impl PCore {
    /// Go's `gfget`: a dead record from this P, the global cache (a batch), or a new one.
    #[inline]
    pub(super) fn gfget(&mut self, shared: &Arc<Shared>) -> GRef {
        if let Some(g) = self.gfree.pop() {
            return g;
        }
        {
            let mut global = shared.gfree.lock();
            let n = global.len().min(GFREE_CAP / 2);
            let at = global.len() - n;
            self.gfree.extend(global.drain(at..));
        }
        self.gfree.pop().unwrap_or_else(|| shared.new_g())
    }

    /// Go's `gfput`: keep the record (and its stack) on this P; past the cap, move half to the
    /// global cache.
    #[inline]
    pub(super) fn gfput(&mut self, shared: &Shared, g: GRef) {
        self.gfree.push(g);
        if self.gfree.len() >= GFREE_CAP {
            let at = self.gfree.len() - GFREE_CAP / 2;
            shared.gfree.lock().extend(self.gfree.drain(at..));
        }
    }

    /// A stack for a goroutine about to start: this P's cache, else the pool (under map pressure
    /// on old kernels, after making room: `copyout::with_budget`); `None` if the map budget has
    /// no room and nothing could be released.
    #[inline]
    pub(super) fn stack_get(&mut self, shared: &Shared, size: usize) -> Option<GStack> {
        let stacks = &shared.stacks;
        // Default windows come in batches, with one acquisition of the pool's lock: Ms creating
        // goroutines that stay (each needs a fresh window) would otherwise take it once per
        // goroutine. Other sizes are not cached.
        let max = if size == stacks.default_size() {
            if let Some(s) = self.stacks.pop() {
                // (A relaxed load of a word written only under map pressure.)
                shared.copier.progress();
                return Some(s);
            }
            STACK_CACHE_CAP / 2
        } else {
            1
        };
        let mut got = Vec::new();
        let took = super::copyout::with_budget(shared, Duration::ZERO, || {
            stacks.try_alloc_batch(size, max, &mut got)
        });
        match took {
            Ok(()) => {}
            Err(Refused::Budget) => return None,
            // Go's "out of memory": not recoverable. This runs on an M (a goroutine's first run),
            // whose failure ends the process with a `fatal error:` report.
            Err(Refused::Os(e)) => {
                panic!("cannot map a {size}-byte goroutine stack: {e}")
            }
        }
        let s = got.pop().expect("alloc_batch gives at least one stack");
        self.stacks.append(&mut got);
        Some(s)
    }

    /// Keeps a dead goroutine's stack on this P; past the cap, half go back to the pool.
    #[inline]
    pub(super) fn stack_put(&mut self, shared: &Shared, s: GStack) {
        let stacks = &shared.stacks;
        if s.usable() != stacks.default_size() {
            stacks.free(s);
            return;
        }
        self.stacks.push(s);
        if self.stacks.len() >= STACK_CACHE_CAP {
            stacks.free_all(self.stacks.drain(STACK_CACHE_CAP / 2..));
        }
    }

    /// Releases deep stack pages of stacks cached on a P and in the pool.
    pub(super) fn scrub_stacks(&mut self, shared: &Shared) {
        let mut budget = SCRUB_PER_IDLE;
        for s in self.stacks.iter_mut().rev() {
            if budget == 0 {
                return;
            }
            if s.scrub() {
                budget -= 1;
            }
        }
        shared.stacks.scrub(budget);
    }
}

impl PCore {
    /// The run queue, for stealing into it.
    pub(crate) fn runq(&self) -> &Worker<GRef> {
        &self.runq
    }

    /// Go's `runqput`. With `next`, `g` goes to `runnext` and the goroutine it displaces (if
    /// any) to the back of the queue. Returns whether the queue (stealable work) grew, which is
    /// when the caller should `wakep`.
    #[inline(always)]
    pub(crate) fn runq_put(
        &mut self,
        p: &Processor,
        g: GRef,
        next: bool,
        global: &super::Injector,
    ) -> bool {
        let g = if next {
            match p.runnext.put(g) {
                None => return false,
                Some(old) => old,
            }
        } else {
            g
        };
        if self.runq.len() >= RUNQ_CAP {
            // Go's runqputslow: half the queue and `g` move to the global queue.
            for _ in 0..RUNQ_CAP / 2 {
                match self.runq.pop() {
                    Some(o) => global.push(o),
                    None => break,
                }
            }
            global.push(g);
        } else {
            self.runq.push(g);
        }
        true
    }

    /// Go's `runqget`: `runnext` first (inheriting the time slice), then the queue. Returns
    /// the goroutine and whether it inherits the time slice.
    #[inline(always)]
    pub(crate) fn runq_get(&mut self, p: &Processor) -> Option<(GRef, bool)> {
        if let Some(g) = p.runnext.take() {
            return Some((g, true));
        }
        self.runq.pop().map(|g| (g, false))
    }

    /// Starts a new time slice: advances and publishes the schedule tick, and drops a request
    /// to end the previous slice that came too late to matter (sysmon asks again if this one
    /// runs long too).
    #[inline(always)]
    pub(crate) fn new_slice(&mut self) {
        self.schedtick = self.schedtick.wrapping_add(1);
        self.slice.tick.store(self.schedtick, Ordering::Relaxed);
        if self.slice.preempt.load(Ordering::Relaxed) {
            self.slice.preempt.store(false, Ordering::Relaxed);
        }
    }

    /// Takes sysmon's request to end the current slice, if there is one.
    #[inline(always)]
    pub(crate) fn take_preempt(&self) -> bool {
        self.slice.preempt.load(Ordering::Relaxed)
            && self.slice.preempt.swap(false, Ordering::Relaxed)
    }

    /// Whether sysmon asked for the current slice to end (checked calls).
    #[inline]
    pub(crate) fn preempt_requested(&self) -> bool {
        self.slice.preempt.load(Ordering::Relaxed)
    }

    /// Takes everything queued on this P (shutdown only).
    pub(crate) fn drain(&mut self, p: &Processor) -> Vec<GRef> {
        let mut v: Vec<GRef> = p.runnext.take().into_iter().collect();
        while let Some(g) = self.runq.pop() {
            v.push(g);
        }
        v
    }

    /// Adds `d` to this P's live-goroutine delta (single writer: the holder).
    #[inline]
    pub(crate) fn add_live(&mut self, p: &Processor, d: i64) {
        // A plain load/store pair, no locked instruction: only the holder writes.
        p.live
            .store(p.live.load(Ordering::Relaxed) + d, Ordering::Relaxed);
    }

    /// A random number for victim selection.
    pub(crate) fn rand(&mut self) -> u64 {
        xorshift(&mut self.rng)
    }
}

impl Processor {
    /// Whether this P has no queued goroutine (racy; for re-checks before sleeping).
    pub(crate) fn runq_empty(&self) -> bool {
        self.stealer.is_empty() && self.runnext.is_empty()
    }

    /// Goroutines queued on this P (racy; statistics and sysmon).
    pub(crate) fn runq_len(&self) -> usize {
        self.stealer.len() + usize::from(!self.runnext.is_empty())
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

    /// The holder's schedule tick as last published (sysmon).
    pub(crate) fn slice(&self) -> u32 {
        self.slice.tick.load(Ordering::Relaxed)
    }

    /// sysmon: asks the holder to end the current time slice at its next schedule point.
    pub(crate) fn request_preempt(&self) {
        self.slice.preempt.store(true, Ordering::Relaxed);
    }

    /// sysmon, taking the P from its M: a request to the M that lost it is moot.
    pub(crate) fn clear_preempt(&self) {
        self.slice.preempt.store(false, Ordering::Relaxed);
    }

    /// Takes the `runnext` goroutine (shutdown, Ms without a P at shutdown, a preempted
    /// slice).
    pub(crate) fn take_runnext(&self) -> Option<GRef> {
        self.runnext.take()
    }

    pub(crate) fn live(&self) -> i64 {
        self.live.load(Ordering::Relaxed)
    }
}
