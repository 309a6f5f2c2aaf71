//! The state the Ms of one runtime share (Go's `sched`, `allp`, `allgs`), and shutdown.

use std::any::Any;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle as ThreadHandle;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use super::idle::IdleCounts;
use super::m::Machine;
use super::p::{self, PCore, Processor};
use super::{pslot, Config, GRef, Goroutine, Injector, RUNTIMES};
use crate::coro::StackPool;

/// How main ended, as seen by the thread that called `run`.
#[derive(Default)]
pub(crate) struct Outcome {
    pub(crate) finished: bool,
    /// An unrecovered panic or fatal error: its value and report.
    panic: Option<(Box<dyn Any + Send>, String)>,
}

/// Everything the Ms of one runtime share (Go's `sched` plus `allp`, `allgs`).
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) procs: Box<[Processor]>,
    pub(crate) global: Injector,
    pub(crate) idle: IdleCounts,
    /// Go's `sched.lock`: idle Ps and Ms, the thread list.
    pub(crate) sched: Mutex<Sched>,
    shutdown: AtomicBool,
    /// Every goroutine record ever made (Go's `allgs`); protected by its mutex.
    pub(crate) allgs: Mutex<Vec<GRef>>,
    /// Where records are carved (`gslab.rs`).
    gslab: super::gslab::Slab<Goroutine>,
    /// Copy-out counters (`copyout`).
    pub(crate) copyout: super::copyout::CopyStats,
    /// The copiers' lock and the map-pressure relief's clock hand (`copyout`).
    pub(crate) copier: super::copyout::Copier,
    /// Segments goroutines grew onto (`grow`).
    pub(crate) growth: super::grow::GrowStats,
    /// The most stack one goroutine may have, window and segments (Go's `maxstacksize`,
    /// `debug::set_max_stack`).
    pub(crate) max_stack: AtomicUsize,
    /// Dead records shared between Ps (Go's `sched.gFree`).
    pub(crate) gfree: Mutex<Vec<GRef>>,
    pub(crate) stacks: StackPool,
    next_goid: AtomicU64,
    /// Goroutines started minus ended outside any P (spawns from plain threads, goroutines
    /// that end on an M whose P was taken).
    pub(crate) ext_live: AtomicI64,
    /// Discards in progress (`discard`). A plain thread that readies a goroutine after the
    /// shutdown began discards it itself (`inject`), concurrently with the shutdown's own
    /// discards; the shutdown waits for this to reach zero before it counts the stacks still
    /// out and unmaps the segments (else it saw one stack out, kept a whole segment mapped, and
    /// the plain thread freed the stack a moment later).
    discarding: AtomicUsize,
    /// Main (goroutine 1) ended with Goexit; the program dies when no goroutine is left.
    pub(crate) main_goexited: AtomicBool,
    /// Between registration in `RUNTIMES` and the queueing of goroutine 1: the runtime has no
    /// goroutine, timer or busy P yet, but its `run` thread (counted among the runtimes'
    /// threads) is about to start one, so it is not quiescent.
    pub(crate) starting: AtomicBool,
    /// Ms running goroutine code without a P (sysmon took it while they were blocked, or
    /// `gort::blocking` gave it up): they may still wake anyone, so deadlock detection waits
    /// for them (Go's checkdead counts Ms in system calls as running).
    pub(crate) lost_p_running: AtomicUsize,
    /// Goroutines waiting on a thread signal while they unwind a panic (`park::block_current`,
    /// `sched::may_park`). Each one's M has handed its P on and is in `lost_p_running`, but
    /// runs again only when the signal's notifier (which uncounts it first) wakes it: deadlock
    /// detection counts `lost_p_running - unwind_waits` as running.
    pub(crate) unwind_waits: AtomicUsize,
    /// sysmon: its thread, and the note it sleeps on while nothing runs (`sysmon.rs`).
    pub(crate) sysmon: crate::sched::sysmon::SysmonNote,
    /// The zero of the timers' clock (`timers.rs`).
    pub(crate) epoch: Instant,
    /// The earliest deadline a sleeping M will wake for (`u64::MAX`: none); a timer added
    /// before it wakes an M (`timers::wake_for_timer`).
    pub(crate) timer_sleep_until: AtomicU64,
    /// Milliseconds before deadlock detection looks again after threads outside the runtime
    /// kept it from deciding (doubles up to a second).
    pub(crate) dead_backoff_ms: AtomicU64,
    /// Runtime clock before which deadlock detection does not look at threads again.
    pub(crate) dead_next_check: AtomicU64,
    /// Runtime clock (+1) since which every goroutine has been blocked while threads outside
    /// the runtime kept detection from deciding; 0 once an M is woken with work.
    pub(crate) dead_blocked_since: AtomicU64,
    /// The "cannot tell whether this is a deadlock" notice was printed (once per runtime).
    pub(crate) dead_notice: AtomicBool,
    /// Goroutines of this runtime whose thread waits in a nested `gort::run`: their Ps are
    /// busy but run nothing, which deadlock detection (of either runtime) must know.
    pub(crate) nested_waiting: AtomicUsize,
    pub(crate) outcome: Mutex<Outcome>,
    outcome_cv: Condvar,
}

/// Protected by `Shared::sched`.
pub(crate) struct Sched {
    /// Idle Ps: their owned halves (Go's `sched.pidle`). Boxed: a P moves between this list,
    /// an M's note and an M's slot as one pointer.
    #[allow(clippy::vec_box)]
    pub(crate) pidle: Vec<Box<PCore>>,
    /// Sleeping Ms (Go's `sched.midle`).
    pub(crate) midle: Vec<Arc<Machine>>,
    /// Every M ever started (Go's `allm`), in order of creation.
    pub(crate) allm: Vec<Arc<Machine>>,
    /// The M threads not yet joined.
    pub(crate) threads: Vec<ThreadHandle<()>>,
    pub(crate) mcount: usize,
}

impl Shared {
    pub(crate) fn new(config: Config) -> Arc<Shared> {
        let n = config.procs;
        pslot::init();
        let (procs, mut cores): (Vec<Processor>, Vec<Box<PCore>>) = (0..n).map(p::new_p).unzip();
        cores.reverse(); // P 0 is taken first
        let shared = Arc::new(Shared {
            procs: procs.into_boxed_slice(),
            global: Injector::new(),
            idle: IdleCounts::new(n, n),
            sched: Mutex::new(Sched {
                pidle: cores,
                midle: Vec::new(),
                allm: Vec::new(),
                threads: Vec::new(),
                mcount: 0,
            }),
            shutdown: AtomicBool::new(false),
            allgs: Mutex::new(Vec::new()),
            gslab: super::gslab::Slab::new(),
            copyout: Default::default(),
            copier: Default::default(),
            growth: Default::default(),
            max_stack: AtomicUsize::new(super::grow::DEFAULT_MAX_STACK),
            gfree: Mutex::new(Vec::new()),
            stacks: StackPool::new(config.stack_size),
            next_goid: AtomicU64::new(1),
            ext_live: AtomicI64::new(0),
            discarding: AtomicUsize::new(0),
            main_goexited: AtomicBool::new(false),
            starting: AtomicBool::new(true),
            epoch: Instant::now(),
            timer_sleep_until: AtomicU64::new(u64::MAX),
            dead_backoff_ms: AtomicU64::new(10),
            dead_next_check: AtomicU64::new(0),
            dead_blocked_since: AtomicU64::new(0),
            dead_notice: AtomicBool::new(false),
            nested_waiting: AtomicUsize::new(0),
            lost_p_running: AtomicUsize::new(0),
            unwind_waits: AtomicUsize::new(0),
            sysmon: crate::sched::sysmon::SysmonNote::new(),
            outcome: Mutex::new(Outcome::default()),
            outcome_cv: Condvar::new(),
            config,
        });
        let mut all = RUNTIMES.lock();
        all.retain(|w| w.strong_count() > 0);
        all.push(Arc::downgrade(&shared));
        drop(all);
        shared
    }

    /// Nothing of this runtime runs or can run by itself: it has started, every P is idle (or
    /// held by a goroutine waiting in a nested `run`), no timer is pending, no M runs without
    /// a P, and the global queue is empty. Deadlock detection of *another* runtime asks this
    /// (holding that runtime's sched lock, so the lock here is only tried: a runtime whose
    /// lock is taken is not quiescent, and two runtimes checking each other never deadlock).
    ///
    /// The sched lock freezes the Ps: none turns busy while it is held, so no goroutine runs
    /// to add a timer or take one off the global queue. What can still move goes one way, and
    /// the reads follow it, so work moving on while they read is seen at a later stage: a
    /// starting runtime queues goroutine 1 before it clears `starting`; sysmon counts itself in
    /// (`running_without_p`) before it takes a timer off its heap and out after queueing what
    /// the timer readied. (Without the lock, with the Ps read first, a goroutine that went
    /// from the queue to a P between two reads was missed, and a deadlock reported while the
    /// other runtime ran.)
    pub(crate) fn quiescent(&self) -> bool {
        if self.is_shutdown() {
            // Shut down (records of it may outlive it in channel queues): nothing of it runs
            // again.
            return true;
        }
        let Some(_frozen) = self.sched.try_lock() else {
            return false;
        };
        self.idle.idle_ps() + self.nested_waiting.load(Ordering::SeqCst) >= self.procs.len()
            && !self.starting.load(Ordering::SeqCst)
            && self.procs.iter().all(|p| p.timers.next() == u64::MAX)
            && self.running_without_p() == 0
            && self.global.is_empty()
    }

    /// Ms running goroutine code without a P that may wake someone: `lost_p_running` less the
    /// goroutines waiting while they unwind (`unwind_waits`). The counter is read first: a
    /// notifier uncounts a waiter before it wakes, so the difference errs towards running.
    pub(crate) fn running_without_p(&self) -> usize {
        let lost = self.lost_p_running.load(Ordering::SeqCst);
        lost.saturating_sub(self.unwind_waits.load(Ordering::SeqCst))
    }

    #[inline]
    pub(crate) fn is_shutdown(&self) -> bool {
        self.shutdown.load(Ordering::SeqCst)
    }

    /// Go's `gcount`: goroutines alive now.
    pub(crate) fn num_goroutine(&self) -> usize {
        let n: i64 = self.procs.iter().map(|p| p.live()).sum::<i64>()
            + self.ext_live.load(Ordering::Relaxed);
        n.max(0) as usize
    }

    /// Puts `g` on the global queue and wakes an M if needed (Go's `globrunqput` + `wakep`).
    /// After shutdown the goroutine is discarded instead.
    pub(crate) fn inject(self: &Arc<Self>, g: GRef) {
        if self.is_shutdown() {
            self.discard(g);
            return;
        }
        self.global.push(g);
        // SeqCst: pairs with the store in `shutdown`; whichever of us comes second drains.
        if self.is_shutdown() {
            self.drain_global();
            return;
        }
        super::idle::wakep(self);
    }

    /// One goroutine from the global queue, retrying lost races.
    pub(crate) fn global_pop(&self) -> Option<GRef> {
        loop {
            match self.global.steal() {
                crossbeam_deque::Steal::Success(g) => return Some(g),
                crossbeam_deque::Steal::Retry => continue,
                crossbeam_deque::Steal::Empty => return None,
            }
        }
    }

    fn drain_global(self: &Arc<Self>) {
        while let Some(g) = self.global_pop() {
            self.discard(g);
        }
    }

    /// `n` fresh goroutine ids (Ms take them in batches of 16, Go's `goidcache`).
    pub(crate) fn take_goid(&self, n: u64) -> u64 {
        self.next_goid.fetch_add(n, Ordering::Relaxed)
    }

    /// A dead record to reuse, or a new one (registered in `allgs`).
    pub(crate) fn gfget_global(self: &Arc<Self>) -> GRef {
        if let Some(g) = self.gfree.lock().pop() {
            return g;
        }
        self.new_g()
    }

    pub(crate) fn new_g(self: &Arc<Self>) -> GRef {
        let g = self.gslab.make(Goroutine::new(self.clone()));
        self.allgs.lock().push(g.clone());
        g
    }

    /// Ends a goroutine without running anything more of it (`Shared::shutdown`, step 4).
    /// A goroutine that is running (on an M left to finish at shutdown) is not touched.
    pub(crate) fn discard(&self, g: GRef) {
        // Counted before the claim (SeqCst), uncounted after the stack is back: a shutdown
        // whose own claim of `g` failed (we won it) sees the count through that failed
        // claim's Acquire of our Dead, and waits for us (`shutdown`, step 5).
        self.discarding.fetch_add(1, Ordering::SeqCst);
        self.discard_claimed(g);
        self.discarding.fetch_sub(1, Ordering::Release);
    }

    fn discard_claimed(&self, g: GRef) {
        if !g.claim_dead() {
            return;
        }
        let released = g.out.discard(self);
        if g.op_block_taken() {
            // Its blocked operation lives in the record's scratch block, and a wait queue or a
            // waker that already took it may still point there (the receive a sender filled
            // but the goroutine never resumed to take): the record must outlive them, so one
            // reference is leaked with everything else the goroutine held.
            std::mem::forget(g.clone());
        }
        // SAFETY: `claim_dead` made us the only party that may touch the record: no M runs it
        // (it was queued, parked, or every M has stopped) and any other discarder lost the race.
        let inner = unsafe { g.inner() };
        if let Some(c) = inner.coro.take() {
            // SAFETY: the coroutine is suspended or not started, and wait-queue nodes live off
            // goroutine stacks, so nothing points into its stack.
            let mut s = unsafe { c.discard() };
            if released {
                s.set_released();
            }
            #[cfg(feature = "sanitizer")]
            self.stacks.leak(s);
            #[cfg(not(feature = "sanitizer"))]
            self.stacks.free(s);
        }
        super::grow::release(inner, self, true);
        // Values owned by the goroutine (its unstarted function, its locals) are leaked rather
        // than dropped: dropping runs user code.
        if let Some(e) = inner.entry.take() {
            e.leak();
        }
        leak(std::mem::take(&mut inner.locals));
        // Deferred calls and panic values are leaked, not run or dropped.
        if let Some(st) = g.defer_state_if_any() {
            // SAFETY: as above: we own the dead record and its state.
            unsafe { (*st).reset() };
        }
        if let Some(n) = inner.exit_notify.take() {
            n.abandoned();
        }
    }

    /// Records how main ended and wakes the thread waiting in `run`.
    pub(crate) fn finish(&self, panic: Option<(Box<dyn Any + Send>, String)>) {
        let mut o = self.outcome.lock();
        if o.finished {
            return;
        }
        o.finished = true;
        o.panic = panic;
        self.outcome_cv.notify_all();
    }

    /// Waits until main returned or a goroutine panicked.
    pub(crate) fn wait_outcome(&self) -> Option<(Box<dyn Any + Send>, String)> {
        let mut o = self.outcome.lock();
        while !o.finished {
            self.outcome_cv.wait(&mut o);
        }
        o.panic.take()
    }

    /// Shuts the runtime down after main returned (`gort::run`; `#[gort::main]` exits the
    /// process instead). This is the one description of the procedure: `sched/mod.rs`,
    /// `gort::run` and docs/ summarise it and point here.
    ///
    /// 1. Set `shutdown` (SeqCst: pairs with `inject`'s re-check); stop sysmon; take the
    ///    sleeping Ms off the idle list and wake them to exit (left on it, one could be handed
    ///    a P by a plain thread's `start_with` after it saw `exit` and left).
    /// 2. Wait for the Ms: each exits at its next schedule point and is joined. After `GRACE`
    ///    (20 ms), an M still in goroutine code (a blocking call, a loop without a schedule
    ///    point) loses its P, if it still holds one (`PSlot::try_take`), and is left detached
    ///    to finish on its own: `run` does not wait for it. Then join sysmon, and hand the
    ///    poll role to another runtime if tasks still wait on the poller.
    /// 3. Collect every P: the idle list, those taken from detached Ms, and those a plain
    ///    thread's `wakep` puts back (waited for, up to 5 s). Discard what is queued (local
    ///    queues, the global queue, stray `runnext`s) and drain the timer heaps (a task's
    ///    timer fires, so that a future on a plain thread does not wait for ever).
    /// 4. Discard every goroutine in `allgs` (`discard`): its coroutine is reset without
    ///    running any of its code, its stack and segments go back, its values are leaked
    ///    (dropping runs user code). A running one (on a detached M) is left alone. Empty the
    ///    dead-G and stack caches.
    /// 5. Wait for discards that plain threads started (`inject` after the flag), then unmap
    ///    every stack class with no stack out. A class a detached M's goroutine still uses
    ///    stays mapped; the last detached M to exit unmaps it (`mstart`).
    pub(crate) fn shutdown(self: &Arc<Self>) {
        // Step 1: the flag, sysmon, the sleeping Ms.
        self.shutdown.store(true, Ordering::SeqCst);
        self.sysmon.stop();
        {
            // Off the idle list as they are told to exit: left on it, one could still be
            // picked by a `start_with` racing this (a plain thread's `wakep`) and handed a P
            // after it saw `exit` and left, taking the P and its cached stacks with it.
            let mut s = self.sched.lock();
            for m in s.midle.drain(..) {
                m.wake_exit();
            }
        }
        // Step 2: every M either exits at its next schedule point (joined), or is running
        // goroutine code that does not come back within `GRACE` (a blocking call, a loop): it
        // loses its P and is left to finish on its own.
        const GRACE: std::time::Duration = std::time::Duration::from_millis(20);
        let started = Instant::now();
        let mut cores: Vec<Box<PCore>> = Vec::new();
        let mut handled: Vec<bool> = Vec::new();
        let mut detached = 0usize;
        loop {
            let (allm, mut threads) = {
                let mut s = self.sched.lock();
                for m in s.midle.drain(..) {
                    m.wake_exit();
                }
                (s.allm.clone(), std::mem::take(&mut s.threads))
            };
            handled.resize(allm.len(), false);
            let mut waiting = false;
            for (i, m) in allm.iter().enumerate() {
                if handled[i] {
                    continue;
                }
                if m.exited.load(Ordering::Acquire) {
                    handled[i] = true;
                    continue;
                }
                if started.elapsed() < GRACE {
                    waiting = true;
                    continue;
                }
                if m.slot.in_user_code() {
                    if let Some(core) = m.slot.try_take() {
                        cores.push(core);
                        handled[i] = true;
                        detached += 1;
                        continue;
                    }
                } else if m.slot.idle_user_code() {
                    handled[i] = true;
                    detached += 1;
                    continue;
                }
                waiting = true;
            }
            // Join what exited; keep the other handles (an M still on its way out).
            let mut keep = Vec::new();
            for t in threads.drain(..) {
                if t.is_finished() {
                    let _ = t.join();
                } else {
                    keep.push(t);
                }
            }
            if !waiting {
                // Left-over handles belong to detached Ms: dropping detaches their threads.
                drop(keep);
                break;
            }
            self.sched.lock().threads.extend(keep);
            std::thread::sleep(std::time::Duration::from_micros(50));
        }
        self.sysmon.join();
        // Tasks of other threads may wait on the process's poller, and this runtime's Ms (one
        // of them perhaps blocked in the poll for them) are gone: another runtime polls now.
        if super::poller::waiters() > 0 {
            super::hand_poll_role();
        }
        // Step 3: every P is here now (idle list, or taken from detached Ms), or on its way
        // back: a plain thread's `wakep` that took an idle P before the shutdown finds no idle
        // M to hand it to and puts it back. Wait for those (a few instructions each).
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let mut s = self.sched.lock();
            cores.append(&mut s.pidle);
            if cores.len() >= self.procs.len() || Instant::now() >= deadline {
                break;
            }
            drop(s);
            std::thread::sleep(std::time::Duration::from_micros(50));
        }
        for core in cores.iter_mut() {
            let p = &self.procs[core.id];
            for g in core.drain(p) {
                self.discard(g);
            }
        }
        self.drain_global();
        for p in self.procs.iter() {
            // Sleeping goroutines are discarded with the rest (below); timer channels go. A
            // task's timer fires now (a `Sleep` ends early): no timer of this runtime ever
            // will, and a future on a plain thread must not wait for it for ever.
            for e in p.timers.drain() {
                e.fire.abandon();
            }
            // An M that lost its P while readying may have left one here.
            if let Some(g) = p.take_runnext() {
                self.discard(g);
            }
        }
        // Step 4: goroutines still running belong to detached Ms; the rest go.
        let all = std::mem::take(&mut *self.allgs.lock());
        for g in &all {
            self.discard(g.clone());
        }
        for core in cores.iter_mut() {
            core.gfree.clear();
            self.stacks.free_all(core.stacks.drain(..));
        }
        self.gfree.lock().clear();
        drop(all);
        // Step 5: unmap the stacks, unless a detached M still runs on one (that class stays
        // mapped; the last detached M to exit unmaps it, `mstart`). First wait for
        // discards that plain threads started (`inject` after the shutdown flag): a few
        // instructions each. Every goroutine is Dead now, so no new one can claim anything.
        let backoff = crossbeam_utils::Backoff::new();
        while self.discarding.load(Ordering::Acquire) != 0 {
            backoff.snooze();
        }
        let out = self.stacks.outstanding();
        debug_assert!(
            out == 0 || detached > 0,
            "gort: {out} goroutine stacks not returned at shutdown"
        );
        self.stacks.release();
    }
}

/// Leaks `v`: a discarded goroutine's values are not dropped (dropping runs user code). In
/// sanitizer builds they are kept in a static instead, where LeakSanitizer sees them as
/// reachable, which they would be in a program that simply exits.
pub(crate) fn leak<T: Send + 'static>(v: T) {
    #[cfg(feature = "sanitizer")]
    {
        static KEPT: Mutex<Vec<Box<dyn std::any::Any + Send>>> = Mutex::new(Vec::new());
        KEPT.lock().push(Box::new(v));
    }
    #[cfg(not(feature = "sanitizer"))]
    std::mem::forget(v);
}
