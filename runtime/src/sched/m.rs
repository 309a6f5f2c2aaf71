//! The machine (Go's `m`): an OS thread, its schedule loop, and finding work.
//!
//! # find_runnable (Go's `findRunnable`), in order
//!
//! 1. Every 61st schedule tick, one goroutine from the global queue first, so that two
//!    goroutines respawning each other on the local queue cannot starve it.
//! 2. `runnext`, then the local queue.
//! 3. A batch from the global queue (its fair share: `len / nprocs + 1`, at most 128).
//! 4. (Later: a non-blocking network poll.)
//! 5. Steal: if this M is spinning or may start spinning (`idle.rs`), four passes over the other
//!    Ps in random order, taking half a queue; the last pass may take a `runnext`.
//! 6. Nothing: under the sched lock, take from the global queue if anything arrived, else put
//!    the P on the idle list. A spinning M then stops spinning and re-checks every queue
//!    (`idle.rs`); if work appeared it takes an idle P back and starts over.
//! 7. Sleep on the M's note until a waker hands it a P (Go's `stopm`).
//!
//! # Waking (Go's `wakep` / `startm`)
//!
//! `wakep` runs after work became stealable; if no M spins and a P is idle, it takes the idle
//! P and a sleeping M (or starts a new thread) and hands the P over, marking the M spinning.
//! A spinning M that finds work stops spinning and, if it was the last spinner, calls `wakep`.

use std::cell::Cell;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_deque::Steal;
use parking_lot::{Condvar, Mutex};

use super::p::{self, Processor, GFREE_CAP, STACK_CACHE_CAP};
use super::timers;
use super::{init_g, start_g, ExitNotify, GRef, Goroutine, Shared, Status, CTX};
use crate::coro::signal::AltStack;
use crate::coro::{GStack, Switch};

/// Stealing passes over all Ps before giving up (Go's `stealTries`).
const STEAL_TRIES: usize = 4;
/// How often (in schedule ticks) the global queue is checked first.
const GLOBAL_QUEUE_INTERVAL: u32 = 61;
/// Goroutine ids a P takes from the global counter at once (Go's `_GoidCacheBatch`).
const GOID_BATCH: u64 = 16;
/// Dirty stacks an M scrubs before it goes to sleep (bounded, so wake-up latency stays low).
const SCRUB_PER_IDLE: usize = 16;

/// An OS thread of the runtime.
pub(crate) struct Machine {
    /// Go's `m.park` note: protected by its mutex.
    note: Mutex<Note>,
    cv: Condvar,
}

#[derive(Default)]
struct Note {
    /// The P handed over by a waker (Go's `m.nextp`).
    nextp: Option<usize>,
    spinning: bool,
    exit: bool,
}

impl Machine {
    fn new() -> Machine {
        Machine {
            note: Mutex::new(Note::default()),
            cv: Condvar::new(),
        }
    }

    /// Hands a sleeping M a P (Go's `notewakeup(&mp.park)` after setting `nextp`).
    fn wake_with(&self, p: usize, spinning: bool) {
        let mut n = self.note.lock();
        n.nextp = Some(p);
        n.spinning = spinning;
        self.cv.notify_one();
    }

    /// Tells a sleeping M to exit (shutdown).
    pub(crate) fn wake_exit(&self) {
        let mut n = self.note.lock();
        n.exit = true;
        self.cv.notify_one();
    }

    /// Sleeps until handed a P, told to exit, or (with a deadline) the deadline passes.
    fn sleep(&self, deadline: Option<Instant>) -> Woken {
        let mut n = self.note.lock();
        loop {
            if n.exit {
                return Woken::Exit;
            }
            if let Some(p) = n.nextp.take() {
                return Woken::P(p, std::mem::take(&mut n.spinning));
            }
            match deadline {
                None => self.cv.wait(&mut n),
                Some(d) => {
                    if self.cv.wait_until(&mut n, d).timed_out() && !n.exit && n.nextp.is_none() {
                        return Woken::Timeout;
                    }
                }
            }
        }
    }
}

/// Why `Machine::sleep` returned.
enum Woken {
    /// Handed a P (and whether to spin).
    P(usize, bool),
    Exit,
    /// The deadline passed: timers may be due, or deadlock detection wants another look.
    Timeout,
}

/// Per-thread state of a running M; lives on the M thread's stack, reached through `CTX`.
pub(crate) struct MContext {
    pub(crate) shared: Arc<Shared>,
    m: Arc<Machine>,
    /// The held P, as an index into `shared.procs`.
    p: Cell<Option<usize>>,
    /// The goroutine running now (null on the M's own stack).
    pub(crate) curg: Cell<*const Goroutine>,
    spinning: Cell<bool>,
}

impl MContext {
    #[inline]
    pub(crate) fn has_p(&self) -> bool {
        self.p.get().is_some()
    }

    /// The held P, if any.
    pub(crate) fn p_ref(&self) -> Option<&Processor> {
        self.p.get().map(|id| &self.shared.procs[id])
    }

    /// The held P. Ms hold one whenever goroutine code runs.
    #[inline]
    fn p(&self) -> &Processor {
        let Some(id) = self.p.get() else {
            crate::panic::throw("schedule: M holds no P")
        };
        &self.shared.procs[id]
    }

    /// `go!` from a goroutine (Go's `newproc` with `runqput(pp, newg, true)`).
    pub(crate) fn spawn_local<F>(
        &self,
        f: F,
        stack_size: Option<usize>,
        notify: Option<Arc<dyn ExitNotify>>,
        at: &'static std::panic::Location<'static>,
    ) -> u64
    where
        F: FnOnce() + Send + 'static,
    {
        let shared = &self.shared;
        let p = self.p();
        let size = shared.stacks.size_for(stack_size);
        let g = self.gfget(p);
        let parent = self.curg.get();
        let by = if parent.is_null() {
            0
        } else {
            // SAFETY: a non-null `curg` is the running goroutine, whose record is alive.
            unsafe { (*parent).id() }
        };
        init_g(
            &g,
            super::entry::Entry::new(f),
            size,
            notify,
            Some((at, by)),
        );
        // SAFETY: this M holds `p`.
        let local = unsafe { p.local() };
        if local.goid_next == local.goid_end {
            local.goid_next = shared.take_goid(GOID_BATCH);
            local.goid_end = local.goid_next + GOID_BATCH;
        }
        let id = local.goid_next;
        local.goid_next += 1;
        g.set_id(id);
        // SAFETY: this M holds `p`.
        unsafe { p.add_live(1) };
        // SAFETY: this M holds `p`.
        if unsafe { p.runq_put(g, true, &shared.global) } {
            self.wakep();
        }
        id
    }

    /// `ready` of a goroutine of this runtime from this M.
    pub(crate) fn ready_local(&self, g: GRef) {
        // SAFETY: `ready` checked that this M holds a P.
        if unsafe { self.p().runq_put(g, true, &self.shared.global) } {
            self.wakep();
        }
    }

    /// `wakep` after pushing onto this M's own P: see `IdleCounts::worth_waking` for why a
    /// relaxed pre-check is enough here (with one P, ours, it is always false).
    #[inline]
    fn wakep(&self) {
        if self.shared.idle.worth_waking() {
            wakep(&self.shared);
        }
    }

    /// Go's `gfget`: a dead record from this P, the global cache (a batch), or a new one.
    fn gfget(&self, p: &Processor) -> GRef {
        // SAFETY: this M holds `p`.
        let local = unsafe { p.local() };
        if let Some(g) = local.gfree.pop() {
            return g;
        }
        {
            let mut global = self.shared.gfree.lock();
            let n = global.len().min(GFREE_CAP / 2);
            let at = global.len() - n;
            local.gfree.extend(global.drain(at..));
        }
        local.gfree.pop().unwrap_or_else(|| self.shared.new_g())
    }

    /// Go's `gfput`: keep the record (and its stack) on this P; past the cap, move half to the
    /// global cache.
    fn gfput(&self, p: &Processor, g: GRef) {
        // SAFETY: this M holds `p`.
        let local = unsafe { p.local() };
        local.gfree.push(g);
        if local.gfree.len() >= GFREE_CAP {
            let at = local.gfree.len() - GFREE_CAP / 2;
            self.shared.gfree.lock().extend(local.gfree.drain(at..));
        }
    }

    /// A stack for a goroutine about to start: this P's cache, else the pool.
    fn stack_get(&self, p: &Processor, size: usize) -> GStack {
        let stacks = &self.shared.stacks;
        if size == stacks.default_size() {
            // SAFETY: this M holds `p`.
            if let Some(s) = unsafe { p.local() }.stacks.pop() {
                return s;
            }
        }
        stacks.alloc(size)
    }

    /// Keeps a dead goroutine's stack on this P; past the cap, half go back to the pool.
    fn stack_put(&self, p: &Processor, s: GStack) {
        let stacks = &self.shared.stacks;
        if s.usable() != stacks.default_size() {
            stacks.free(s);
            return;
        }
        // SAFETY: this M holds `p`.
        let cache = &mut unsafe { p.local() }.stacks;
        cache.push(s);
        if cache.len() >= STACK_CACHE_CAP {
            for s in cache.drain(STACK_CACHE_CAP / 2..) {
                stacks.free(s);
            }
        }
    }

    fn acquirep(&self, id: usize) {
        debug_assert!(self.p.get().is_none());
        self.p.set(Some(id));
    }

    /// Runs `g` until it yields, parks or ends (Go's `execute` + the second half of `mcall`).
    fn execute(&self, g: GRef, inherit: bool) {
        let p = self.p();
        if !inherit {
            // SAFETY: this M holds `p`.
            let l = unsafe { p.local() };
            l.schedtick = l.schedtick.wrapping_add(1);
        }
        debug_assert_eq!(
            g.status(),
            Status::Runnable,
            "only runnable goroutines are queued"
        );
        g.set_status(Status::Running);
        // SAFETY: this M owns the running goroutine's record.
        let inner = unsafe { g.inner() };
        if inner.coro.is_none() {
            // Before `curg` is set: a failure here (no address space for a stack) is the M's,
            // not the goroutine's, and must end the process (`mstart`).
            start_g(&g, self.stack_get(p, inner.stack_size));
        }
        self.curg.set(Arc::as_ptr(&g));
        // SAFETY: as above; `start_g` is done with its reference.
        let coro = unsafe { g.inner() }.coro.as_mut().unwrap_or_else(|| {
            crate::panic::throw("execute: a started goroutine has no coroutine")
        });
        let req = coro.resume();
        self.curg.set(std::ptr::null());
        match req {
            Some(Switch::Yield) => {
                g.set_status(Status::Runnable);
                // The queue grew: an idle P may take the yielder (or what it yields to).
                // SAFETY: this M holds `p`.
                if unsafe { p.runq_put(g, false, &self.shared.global) } {
                    self.wakep();
                }
            }
            Some(Switch::Park(reason, f)) => {
                g.set_wait_reason(reason);
                g.set_status(Status::Waiting);
                // SAFETY: `f` points to the park closure on the goroutine's stack, which is
                // suspended and cannot be resumed before this call hands the record out.
                if let Some(g) = unsafe { (*f)(g) } {
                    g.set_wait_reason(super::WaitReason::None);
                    g.set_status(Status::Runnable);
                    // SAFETY: this M holds `p`.
                    unsafe { p.runq_put(g, true, &self.shared.global) };
                }
            }
            None => self.gdestroy(p, g),
        }
    }

    /// A goroutine returned: keep its record and stack for the next one (Go's `goexit0`).
    fn gdestroy(&self, p: &Processor, g: GRef) {
        // SAFETY: the goroutine finished on this M, which owns its record.
        let inner = unsafe { g.inner() };
        let coro = inner.coro.take().unwrap_or_else(|| {
            crate::panic::throw("gdestroy: a goroutine that ran has no coroutine")
        });
        self.stack_put(p, coro.into_stack());
        inner.exit_notify = None;
        inner.suspender = std::ptr::null();
        g.set_status(Status::Dead);
        // SAFETY: this M holds `p`.
        unsafe { p.add_live(-1) };
        self.gfput(p, g);
    }

    /// A batch from the global queue into the local one (Go's `globrunqget`).
    fn global_get_batch(&self, p: &Processor) -> Option<GRef> {
        let shared = &self.shared;
        if shared.global.is_empty() {
            return None;
        }
        let n = (shared.global.len() / shared.procs.len() + 1).min(p::RUNQ_CAP / 2);
        // SAFETY: this M holds `p`.
        let q = unsafe { p.runq() };
        loop {
            match shared.global.steal_batch_with_limit_and_pop(q, n) {
                Steal::Success(g) => return Some(g),
                Steal::Retry => continue,
                Steal::Empty => return None,
            }
        }
    }

    /// Go's `stealWork`.
    fn steal_work(&self, p: &Processor) -> Option<GRef> {
        let procs = &self.shared.procs;
        let n = procs.len();
        // SAFETY: this M holds `p`.
        let q = unsafe { p.runq() };
        for pass in 0..STEAL_TRIES {
            let last = pass == STEAL_TRIES - 1;
            // SAFETY: this M holds `p`.
            let start = unsafe { p.rand() } as usize % n;
            for i in 0..n {
                if self.shared.is_shutdown() {
                    return None;
                }
                let victim = &procs[(start + i) % n];
                if victim.id == p.id {
                    continue;
                }
                if let Some(g) = victim.steal_into(q, last) {
                    return Some(g);
                }
            }
        }
        None
    }

    /// Steps 1-7 of the module docs. Returns the goroutine to run and whether it inherits the
    /// time slice, or `None` when the runtime shuts down.
    fn find_runnable(&self) -> Option<(GRef, bool)> {
        let shared = &self.shared;
        'top: loop {
            if shared.is_shutdown() {
                return None;
            }
            let p = self.p();
            self.run_timers_of(p, &mut None);
            // SAFETY: this M holds `p`.
            if unsafe { p.local() }.schedtick % GLOBAL_QUEUE_INTERVAL == 0 {
                if let Some(g) = shared.global_pop() {
                    return Some((g, false));
                }
            }
            // SAFETY: this M holds `p`.
            if let Some(r) = unsafe { p.runq_get() } {
                return Some(r);
            }
            if let Some(g) = self.global_get_batch(p) {
                return Some((g, false));
            }
            if self.spinning.get() || shared.idle.try_start_spinning() {
                self.spinning.set(true);
                if let Some(g) = self.steal_work(p) {
                    return Some((g, false));
                }
            }
            // Timers of other Ps that came due while their Ms were busy or asleep.
            if self.run_other_timers(p) {
                continue 'top;
            }
            // Idle: a little housekeeping while we still hold the P.
            self.scrub_stacks(p);

            // Step 6: give up the P.
            {
                let mut s = shared.sched.lock();
                if shared.is_shutdown() {
                    return None;
                }
                if !shared.global.is_empty() {
                    drop(s);
                    if let Some(g) = self.global_get_batch(p) {
                        return Some((g, false));
                    }
                    continue 'top;
                }
                s.pidle.push(p.id);
                shared.idle.p_idle();
                self.p.set(None);
            }
            if self.spinning.replace(false) {
                // The last spinner re-checks before sleeping (idle.rs); any spinner may.
                let _ = shared.idle.stop_spinning();
                let work =
                    !shared.global.is_empty() || shared.procs.iter().any(|p| !p.runq_empty());
                if work {
                    let mut s = shared.sched.lock();
                    if let Some(id) = s.pidle.pop() {
                        shared.idle.p_busy();
                        drop(s);
                        self.acquirep(id);
                        self.spinning.set(true);
                        shared.idle.resume_spinning();
                        continue 'top;
                    }
                }
            }
            // Step 7: sleep until handed a P, or until the earliest timer (or a deadlock
            // re-check) is due.
            let deadline = {
                let mut s = shared.sched.lock();
                if shared.is_shutdown() {
                    return None;
                }
                let mut deadline = self.timer_deadline();
                if s.pidle.len() == shared.procs.len() {
                    if let Some(recheck) = super::check_dead(shared, deadline.is_some()) {
                        deadline = Some(deadline.map_or(recheck, |d| d.min(recheck)));
                    }
                }
                s.midle.push(self.m.clone());
                deadline
            };
            let when = deadline.map(|d| timers::nanos_since(shared.epoch, d));
            if let Some(w) = when {
                shared.timer_sleep_until.fetch_min(w, Ordering::AcqRel);
            }
            let mut woken = self.m.sleep(deadline);
            if let Some(w) = when {
                // Awake: later timers must kick someone again.
                let _ = shared.timer_sleep_until.compare_exchange(
                    w,
                    u64::MAX,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                );
            }
            loop {
                match woken {
                    Woken::Exit => return None,
                    Woken::P(id, spinning) => {
                        // Work arrived: whatever was blocked is moving again.
                        shared.dead_blocked_since.store(0, Ordering::Relaxed);
                        self.acquirep(id);
                        self.spinning.set(spinning);
                        continue 'top;
                    }
                    Woken::Timeout => {
                        let mut s = shared.sched.lock();
                        let listed = s.midle.iter().position(|m| Arc::ptr_eq(m, &self.m));
                        match listed {
                            Some(i) => {
                                s.midle.swap_remove(i);
                                if let Some(id) = s.pidle.pop() {
                                    shared.idle.p_busy();
                                    drop(s);
                                    self.acquirep(id);
                                    continue 'top;
                                }
                                // Every P is busy; their Ms run timers at their schedule points.
                                s.midle.push(self.m.clone());
                                drop(s);
                                woken = self.m.sleep(None);
                            }
                            None => {
                                // A waker took us off the list: a P is on its way.
                                drop(s);
                                woken = self.m.sleep(None);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Runs `p`'s due timers; true if any fired. `now` is read from the clock at most once,
    /// and only if some timer might be due.
    #[inline]
    fn run_timers_of(&self, p: &Processor, now: &mut Option<u64>) -> bool {
        let next = p.timers.next();
        if next == u64::MAX {
            return false;
        }
        let now =
            *now.get_or_insert_with(|| timers::nanos_since(self.shared.epoch, Instant::now()));
        if next > now {
            return false;
        }
        let mut due = Vec::new();
        p.timers.take_due(now, &mut due);
        let any = !due.is_empty();
        for e in due {
            super::fire_timer(&self.shared, e.fire);
        }
        any
    }

    /// Runs the due timers of the other Ps (this M's own were run at the top of
    /// `find_runnable`); true if any fired (their goroutines are now runnable here).
    fn run_other_timers(&self, own: &Processor) -> bool {
        let mut now = None;
        let mut any = false;
        for p in self.shared.procs.iter().filter(|p| p.id != own.id) {
            any |= self.run_timers_of(p, &mut now);
        }
        any
    }

    /// The earliest timer of all Ps, as an instant.
    fn timer_deadline(&self) -> Option<Instant> {
        let next = self
            .shared
            .procs
            .iter()
            .map(|p| p.timers.next())
            .min()
            .unwrap_or(u64::MAX);
        (next != u64::MAX).then(|| self.shared.epoch + Duration::from_nanos(next))
    }

    /// Releases deep stack pages of stacks cached on `p` and in the pool.
    fn scrub_stacks(&self, p: &Processor) {
        let mut budget = SCRUB_PER_IDLE;
        // SAFETY: this M holds `p`; cached stacks belong to no goroutine.
        for s in unsafe { p.local() }.stacks.iter_mut().rev() {
            if budget == 0 {
                return;
            }
            if s.scrub() {
                budget -= 1;
            }
        }
        self.shared.stacks.scrub(budget);
    }

    /// Go's `schedule` loop.
    fn schedule(&self) {
        while let Some((g, inherit)) = self.find_runnable() {
            if self.spinning.replace(false) && self.shared.idle.stop_spinning() {
                // Go's `resetspinning`: the last spinner found work; there may be more.
                wakep(&self.shared);
            }
            self.execute(g, inherit);
        }
    }
}

/// Go's `wakep`: if no M is spinning and a P is idle, start an M spinning on it.
pub(crate) fn wakep(shared: &Arc<Shared>) {
    if shared.idle.try_begin_wake() {
        startm(shared);
    }
}

/// Go's `startm(nil, spinning=true)`: an idle P to a sleeping M, or to a new thread.
fn startm(shared: &Arc<Shared>) {
    let mut s = shared.sched.lock();
    let Some(pid) = s.pidle.pop() else {
        drop(s);
        shared.idle.cancel_wake();
        return;
    };
    shared.idle.p_busy();
    if let Some(m) = s.midle.pop() {
        drop(s);
        m.wake_with(pid, true);
        return;
    }
    if shared.is_shutdown() {
        s.pidle.push(pid);
        shared.idle.p_idle();
        drop(s);
        shared.idle.cancel_wake();
        return;
    }
    let id = s.mcount;
    s.mcount += 1;
    let name = format!("{}{}", shared.config.thread_name, id);
    let m = Arc::new(Machine::new());
    let sh = shared.clone();
    let t = std::thread::Builder::new()
        .name(name)
        .spawn(move || mstart(sh, m, pid, true))
        .unwrap_or_else(|e| {
            crate::panic::throw(&format!(
                "newosproc: runtime: failed to create new OS thread (have {id} already): {e}"
            ))
        });
    s.threads.push(t);
}

/// Body of an M thread (Go's `mstart`).
fn mstart(shared: Arc<Shared>, m: Arc<Machine>, pid: usize, spinning: bool) {
    let _alt = AltStack::ensure();
    let ctx = MContext {
        shared,
        m,
        p: Cell::new(Some(pid)),
        curg: Cell::new(std::ptr::null()),
        spinning: Cell::new(spinning),
    };
    CTX.with(|c| c.set(&ctx));
    super::RUNTIME_THREADS.fetch_add(1, Ordering::SeqCst);
    // Goroutines' panics never reach here (their tops catch them); anything that does is a
    // failure of the runtime itself (say, no address space left for a stack). An M that died
    // would take its P with it and `run` would wait forever: end the process instead, as
    // Go's `throw` does.
    let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ctx.schedule()));
    if let Err(payload) = failed {
        let msg = crate::panic::value::payload_text(&*payload, crate::panic::value::Style::Report);
        let name = std::thread::current().name().unwrap_or("an M").to_string();
        crate::panic::die(&format!(
            "fatal error: {msg}\n\nruntime stack:\n\tthe schedule loop of runtime thread {name}\n"
        ));
    }
    super::RUNTIME_THREADS.fetch_sub(1, Ordering::SeqCst);
    CTX.with(|c| c.set(std::ptr::null()));
    if ctx.spinning.get() {
        let _ = ctx.shared.idle.stop_spinning();
    }
}
