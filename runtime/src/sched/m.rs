//! The machine (Go's `m`): an OS thread, its schedule loop, and finding work.
//!
//! # Holding a P
//!
//! An M holds its P through its slot (`pslot.rs`): scheduler code reaches the owned half
//! (`PCore`) with [`MContext::with_p`], and so does goroutine code that needs it (`go!` puts
//! the child in `runnext`, a channel hand-off readies its partner there). The slot's protocol
//! lets sysmon take the P from an M that is running user code, at any moment; the M learns it
//! at its next entry into the runtime. A runtime call that finds its P gone takes the path a
//! plain thread takes (the global queue, the global caches); at its next schedule point the M
//! finishes the goroutine's switch without a P and then looks for an idle P, or sleeps (Go's
//! `exitsyscall` slow path).
//!
//! # find_runnable (Go's `findRunnable`), in order
//!
//! This is the one full description of the loop; docs/architecture.md summarises it.
//!
//! 0. This P's due timers, at the top of every pass (what they ready lands in `runnext`).
//! 1. Every 61st schedule tick, one goroutine from the global queue first, so that two
//!    goroutines respawning each other on the local queue cannot starve it.
//! 2. `runnext`, then the local queue.
//! 3. A batch from the global queue (its fair share: `len / nprocs + 1`, at most 128).
//! 4. A non-blocking network poll, when goroutines or tasks wait on sockets, even while
//!    another M is blocked in the poll (unlike Go: see `netpoll/mod.rs`).
//! 5. Steal: if this M is spinning or may start spinning (`idle.rs`), four passes over the other
//!    Ps, each from a random one on in index order, taking half a queue; the last pass may
//!    take a `runnext`. Then the other Ps' due timers (their Ms busy or asleep): if any fired,
//!    start over. Then, while the P is still held, scrub a few cached stacks' deep pages.
//! 6. Nothing: under the sched lock, take from the global queue if anything arrived, else put
//!    the P on the idle list. A spinning M then stops spinning and re-checks every queue
//!    (`idle.rs`); if work appeared it takes an idle P back and starts over.
//! 7. Sleep until a waker hands it a P (Go's `stopm`), at most until the earliest timer of
//!    any P; the first M to sleep while goroutines wait on sockets blocks in the network poll
//!    instead of on its note (`sleep_or_poll`). The last M to go idle (every P idle) runs
//!    deadlock detection first (`checkdead.rs`). An M the poll woke with goroutines takes an
//!    idle P and runs the first itself; with no idle P they go to the global queue.
//!
//! # Time slices (Go's `schedtick`, `sysmon`'s `preemptone`)
//!
//! A goroutine taken from the queues starts a time slice (`PCore::new_slice`); one taken from
//! `runnext` inherits the slice of the goroutine that readied it. sysmon watches each P's
//! published tick: a slice that has run 10 ms while goroutines wait (on the P, or globally)
//! gets a request to end (`Processor::request_preempt`), and sysmon poisons the stack guard
//! word of the M's thread, so that the goroutine's next checked call (`#[gort::func]`,
//! `maybe_grow`) takes the slow path and yields (`grow::preempt_point`). The M honours the
//! request at the goroutine's next schedule point (`execute`):
//! - a yielding or immediately resumed goroutine goes to the global queue, behind whatever
//!   waited there (Go's `gopreempt_m`), not to the local queue;
//! - a goroutine that parks or ends hands the slice on to what it readied into `runnext`:
//!   that one goes to the global queue instead.
//!
//! Either way the next goroutine starts a new slice from the local queue, then the global
//! one. A request that finds the slice already over is dropped by the next `new_slice`. A
//! goroutine that ignores the request (it computes without a checked call or a runtime call)
//! loses its P to another thread a little later (sysmon's hand-off, as for a blocked one).
//!
//! # Waking (Go's `wakep` / `startm` / `handoffp`)
//!
//! In `idle.rs`, beside the spinning protocol: `wakep` runs after work became stealable; if
//! no M spins and a P is idle, it takes the idle P and a sleeping M (or starts a new thread,
//! `start_with`) and hands the P over, marking the M spinning. A spinning M that finds work
//! stops spinning and, if it was the last spinner, calls `wakep`. A P taken from a blocked or
//! computing M (sysmon, `gort::blocking`) goes to another M through `handoff_p`: not
//! spinning, and counted on the P.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_deque::Steal;
use parking_lot::{Condvar, Mutex};

use super::p::{PCore, Processor};
use super::pslot::{Entered, PSlot};
use super::timers;
use super::{init_g, start_g, ExitNotify, GRef, Goroutine, Shared, Status, CTX};
use crate::coro::signal::AltStack;
use crate::coro::Switch;

/// Stealing passes over all Ps before giving up (Go's `stealTries`).
const STEAL_TRIES: usize = 4;
/// How often (in schedule ticks) the global queue is checked first.
const GLOBAL_QUEUE_INTERVAL: u32 = 61;
/// Goroutine ids a P takes from the global counter at once (Go's `_GoidCacheBatch`).
const GOID_BATCH: u64 = 16;

/// An OS thread of the runtime.
pub(crate) struct Machine {
    /// Go's `m.id`: 0, 1, 2, ... in order of creation.
    pub(crate) id: usize,
    /// Go's `m.park` note: protected by its mutex.
    note: Mutex<Note>,
    cv: Condvar,
    /// The P this M holds, if any, and the hand-off protocol with sysmon.
    pub(crate) slot: PSlot<PCore>,
    /// The kernel's id of the thread (for sysmon's look at whether it is blocked).
    pub(crate) tid: AtomicI32,
    /// The M's thread has left its schedule loop.
    pub(crate) exited: AtomicBool,
    /// Sleeping on its note (idle, counted as an idle thread).
    pub(crate) sleeping: AtomicBool,
    /// The P it holds or last held (sysmon's index into `Shared::procs`).
    pub(crate) pid: AtomicUsize,
    /// Inside `gort::blocking` (sysmon retakes its P after a short wait).
    pub(crate) in_blocking: AtomicBool,
    /// Blocked in the network poll instead of on its note: a waker must interrupt the poll.
    polling: AtomicBool,
    /// The address of the thread's stack-guard word (`grow::slot`), while the thread runs its
    /// schedule loop; 0 before, after, and where there is no such word. sysmon poisons it under
    /// this lock, and the thread clears it under the lock before it exits, so sysmon never
    /// writes into a thread control block that is gone.
    guard_word: Mutex<usize>,
}

struct Note {
    /// The P handed over by a waker (Go's `m.nextp`).
    nextp: Option<Box<PCore>>,
    spinning: bool,
    exit: bool,
}

impl Machine {
    pub(super) fn new(id: usize) -> Machine {
        Machine {
            id,
            note: Mutex::new(Note {
                nextp: None,
                spinning: false,
                exit: false,
            }),
            cv: Condvar::new(),
            slot: PSlot::new(),
            tid: AtomicI32::new(0),
            exited: AtomicBool::new(false),
            sleeping: AtomicBool::new(false),
            pid: AtomicUsize::new(0),
            in_blocking: AtomicBool::new(false),
            polling: AtomicBool::new(false),
            guard_word: Mutex::new(0),
        }
    }

    /// sysmon: makes the next checked call of the goroutine this M runs take the slow path,
    /// where it sees the preemption request (`grow::preempt_point`). Racy by design: the word
    /// may be overwritten by the next goroutine switch or segment change, which only loses a
    /// request that sysmon repeats, or it may poison the next goroutine, which then looks at
    /// the request and finds none.
    pub(crate) fn poison_guard(&self) {
        let word = self.guard_word.lock();
        if *word != 0 {
            // SAFETY: `*word` is the address of the guard word in this M's thread control
            // block, set by the thread itself and cleared (under this lock) before the thread
            // exits, so it is live memory here. The word is a plain `usize` that its thread
            // reads with single `mov`s (the check); an atomic store of a whole aligned word
            // cannot tear it.
            unsafe { std::sync::atomic::AtomicUsize::from_ptr(*word as *mut usize) }
                .store(super::grow::slot::POISON, Ordering::Relaxed);
        }
    }

    /// Hands a sleeping M a P (Go's `notewakeup(&mp.park)` after setting `nextp`).
    pub(super) fn wake_with(&self, p: Box<PCore>, spinning: bool) {
        {
            let mut n = self.note.lock();
            n.nextp = Some(p);
            n.spinning = spinning;
            self.cv.notify_one();
        }
        self.break_poll();
    }

    /// Tells a sleeping M to exit (shutdown).
    pub(crate) fn wake_exit(&self) {
        {
            let mut n = self.note.lock();
            n.exit = true;
            self.cv.notify_one();
        }
        self.break_poll();
    }

    /// An M blocked in the network poll rather than on its note: interrupt the poll. (SeqCst:
    /// pairs with the M's store before it looks at its note; one of the two sees the other.)
    fn break_poll(&self) {
        if self.polling.load(Ordering::SeqCst) {
            super::poller::interrupt();
        }
    }

    /// What a waker left on the note, without waiting.
    fn try_take_note(&self) -> Option<Woken> {
        let mut n = self.note.lock();
        if let Some(p) = n.nextp.take() {
            return Some(Woken::P(p, std::mem::take(&mut n.spinning)));
        }
        n.exit.then_some(Woken::Exit)
    }

    /// Sleeps until handed a P, told to exit, or (with a deadline) the deadline passes.
    fn sleep(&self, deadline: Option<Instant>) -> Woken {
        let mut n = self.note.lock();
        self.sleeping.store(true, Ordering::Relaxed);
        let w = loop {
            // A P handed over comes first, also when told to exit at the same time: the M
            // installs it and, seeing the shutdown, gives it back where shutdown collects
            // the Ps (dropping it here would lose its cached stacks).
            if let Some(p) = n.nextp.take() {
                break Woken::P(p, std::mem::take(&mut n.spinning));
            }
            if n.exit {
                break Woken::Exit;
            }
            match deadline {
                None => self.cv.wait(&mut n),
                Some(d) => {
                    if self.cv.wait_until(&mut n, d).timed_out() && !n.exit && n.nextp.is_none() {
                        break Woken::Timeout;
                    }
                }
            }
        };
        self.sleeping.store(false, Ordering::Relaxed);
        w
    }
}

/// Why `Machine::sleep` returned.
enum Woken {
    /// Handed a P (and whether to spin).
    P(Box<PCore>, bool),
    Exit,
    /// The deadline passed: timers may be due, or deadlock detection wants another look.
    Timeout,
}

/// Per-thread state of a running M; lives on the M thread's stack, reached through `CTX`.
pub(crate) struct MContext {
    pub(crate) shared: Arc<Shared>,
    pub(crate) m: Arc<Machine>,
    /// The goroutine running now (null on the M's own stack, in scheduler code).
    pub(crate) curg: Cell<*const Goroutine>,
    spinning: Cell<bool>,
    /// A `&mut PCore` from `with_p` is alive (a nested borrow would alias it); checked in
    /// debug builds, which the test suite runs.
    #[cfg_attr(not(debug_assertions), allow(dead_code))]
    borrowed: Cell<bool>,
    /// The held P's two halves (null: none), cached for scheduler code: once an entry into
    /// the runtime saw the P held, nobody can take it until the M leaves (`pslot.rs`), so
    /// scheduler code need not look at the slot again. Set by `install` and a successful
    /// entry; cleared by `remove` and a failed one. The core's `Box` does not move while held.
    held_core: Cell<*mut PCore>,
    held_p: Cell<*const Processor>,
    /// The last P this M held: where its timers go, and the P it asks for first after a loss.
    last_p: Cell<usize>,
}

impl MContext {
    /// Runs `f` with this M's P (owned and shared halves), if it holds one; `None` if it holds
    /// none (never had one, or sysmon took it while a goroutine ran). From goroutine code this
    /// enters and leaves the runtime (`pslot.rs`); from scheduler code the M is in it already.
    /// `f` must not call anything that needs the P again.
    #[inline(always)]
    pub(crate) fn with_p<R>(&self, f: impl FnOnce(&mut PCore, &Processor) -> R) -> Option<R> {
        let core = self.held_core.get();
        if core.is_null() {
            return None;
        }
        #[cfg(debug_assertions)]
        if self.borrowed.get() {
            crate::panic::throw("with_p: the P is borrowed already");
        }
        let goroutine = !self.curg.get().is_null();
        if goroutine && self.m.slot.enter() != Entered::Held {
            // sysmon took the P while the goroutine ran user code.
            self.forget_p();
            self.m.slot.leave();
            return None;
        }
        #[cfg(debug_assertions)]
        self.borrowed.set(true);
        // SAFETY: the P is held (scheduler code after a successful entry, or the entry just
        // made), its core does not move while held, and no `f` calls `with_p` again (the
        // runtime's own discipline: `f`s only touch the P; debug builds check it with
        // `borrowed`); the shared half lives as long as the runtime.
        let r = unsafe { f(&mut *core, &*self.held_p.get()) };
        #[cfg(debug_assertions)]
        self.borrowed.set(false);
        if goroutine {
            self.m.slot.leave();
        }
        Some(r)
    }

    /// Whether this M holds a P (scheduler code; from goroutine code use `with_p`).
    #[inline]
    fn has_p(&self) -> bool {
        !self.held_core.get().is_null()
    }

    /// Caches the held P's halves (after `install` or a successful entry).
    fn remember_p(&self) {
        // SAFETY: called right after an entry saw the P held, or an install: the core is
        // ours until we leave, and its Box does not move while held.
        let core: *mut PCore = unsafe { self.m.slot.core() };
        // SAFETY: as above.
        let id = unsafe { (*core).id };
        self.held_core.set(core);
        self.held_p.set(&self.shared.procs[id]);
    }

    fn forget_p(&self) {
        self.held_core.set(std::ptr::null_mut());
        self.held_p.set(std::ptr::null());
    }

    /// Gives the held P up (to the idle list, or at exit).
    pub(crate) fn remove_p(&self) -> Box<PCore> {
        self.forget_p();
        self.m.slot.remove()
    }

    /// The P timers of this M go to: its own, or the last it held.
    pub(crate) fn timer_p(&self) -> usize {
        self.last_p.get()
    }

    /// `go!` from a goroutine (Go's `newproc` with `runqput(pp, newg, true)`). `None` if the
    /// M has lost its P: the caller spawns as a plain thread would.
    pub(crate) fn spawn_local<F>(
        &self,
        f: F,
        stack_size: Option<usize>,
        notify: Option<Arc<dyn ExitNotify>>,
        at: &'static std::panic::Location<'static>,
        entry: super::EntryName,
    ) -> Result<u64, (F, Option<Arc<dyn ExitNotify>>)>
    where
        F: FnOnce() + Send + 'static,
    {
        let shared = &self.shared;
        let parent = self.curg.get();
        let by = if parent.is_null() {
            0
        } else {
            // SAFETY: a non-null `curg` is the running goroutine, whose record is alive.
            unsafe { (*parent).id() }
        };
        let mut f = Some(f);
        let mut notify = Some(notify);
        let r = self.with_p(|core, p| {
            let size = shared.stacks.size_for(stack_size);
            let g = core.gfget(shared);
            init_g(
                &g,
                f.take().expect("taken once"),
                size,
                notify.take().expect("taken once"),
                Some((at, by)),
                entry,
            );
            if core.goid_next == core.goid_end {
                core.goid_next = shared.take_goid(GOID_BATCH);
                core.goid_end = core.goid_next + GOID_BATCH;
            }
            let id = core.goid_next;
            core.goid_next += 1;
            g.set_id(id);
            core.add_live(p, 1);
            (id, core.runq_put(p, g, true, &shared.global))
        });
        match r {
            Some((id, grew)) => {
                if grew {
                    self.wakep();
                }
                Ok(id)
            }
            None => Err((
                f.take().expect("not taken"),
                notify.take().expect("not taken"),
            )),
        }
    }

    /// `ready` of a goroutine of this runtime from this M; gives `g` back if the M holds no P.
    pub(crate) fn ready_local(&self, g: GRef) -> Result<(), GRef> {
        let mut g = Some(g);
        let r = self.with_p(|core, p| {
            let g = g.take().expect("taken once");
            // An M holding a P of `g`'s runtime: shutdown takes every P before it discards
            // anything, so `g` is still waiting and a plain store will do.
            g.set_status(Status::Runnable);
            core.runq_put(p, g, true, &self.shared.global)
        });
        match r {
            Some(grew) => {
                if grew {
                    self.wakep();
                }
                Ok(())
            }
            None => Err(g.take().expect("not taken")),
        }
    }

    /// Readies what a poll unblocked (Go's `injectglist` from `findRunnable`): goroutines of
    /// this runtime go onto this M's P, the first returned prepared to run now if `run_first`
    /// (else queued too); others go to their runtimes. Without a P (it cannot be taken from
    /// scheduler code; defensive), everything goes through `ready`.
    fn take_polled(&self, polled: Vec<GRef>, run_first: bool) -> Option<GRef> {
        let mut polled = polled.into_iter();
        let mut foreign = Vec::new();
        let mut queued = 0usize;
        let first = self.with_p(|core, p| {
            let mut first = None;
            for g in polled.by_ref() {
                if !Arc::ptr_eq(&g.shared, &self.shared) {
                    foreign.push(g);
                    continue;
                }
                g.prefetch_stack();
                g.set_wait_reason(super::WaitReason::None);
                // Holding a P of `g`'s runtime: shutdown takes every P before it discards
                // anything, so `g` is still waiting and a plain store will do (as `ready_local`).
                g.set_status(Status::Runnable);
                if run_first && first.is_none() {
                    first = Some(g);
                } else {
                    core.runq_put(p, g, queued == 0 && !run_first, &self.shared.global);
                    queued += 1;
                }
            }
            if let Some(g) = &first {
                self.prepare(core, g, false);
            }
            first
        });
        for g in foreign.into_iter().chain(polled) {
            super::ready(g);
        }
        // This M runs one of them next; the others are work for idle Ps.
        if queued > usize::from(!run_first) {
            self.wakep();
        }
        first.flatten()
    }

    /// `wakep` after pushing onto this M's own P: see `IdleCounts::worth_waking` for why a
    /// relaxed pre-check is enough here (with one P, ours, it is always false).
    #[inline]
    fn wakep(&self) {
        if self.shared.idle.worth_waking() {
            super::idle::wakep(&self.shared);
        }
    }

    /// The first half of Go's `execute`, under the P found with `g`: counts the run (a new
    /// time slice unless `inherit`) and gives a goroutine that never ran its stack and
    /// coroutine.
    #[inline(always)]
    fn prepare(&self, core: &mut PCore, g: &GRef, inherit: bool) {
        if !inherit {
            core.new_slice();
        }
        // SAFETY: this M owns the runnable goroutine's record.
        let inner = unsafe { g.inner() };
        if inner.coro.is_none() {
            // Before `curg` is set: a failure here (no address space for a stack) is the M's,
            // not the goroutine's, and must end the process (`mstart`). Without map budget
            // (old kernels) the goroutine stays unstarted, and `execute` turns it away.
            if let Some(stack) = core.stack_get(&self.shared, inner.stack_size) {
                start_g(g, stack);
            }
        }
    }

    /// Map pressure (old kernels): `g` could not get its window (a first run, or a copy-in),
    /// and nothing could be released. It goes to the back of the global queue, and this M
    /// runs others: goroutines that hold windows may park or end and free them
    /// (`copyout::Copier::stalled`, which ends the process if none is had for long).
    #[cold]
    fn turn_away(&self, g: GRef) {
        let shared = &self.shared;
        // SAFETY: this M owns the runnable goroutine's record.
        let size = unsafe { g.inner() }.stack_size;
        g.set_status(Status::Runnable);
        shared.inject(g);
        // Committed windows cached on this P and on idle Ps are out of the relief's reach:
        // give them to the pool, where the next try can release them.
        self.with_p(|core, _| shared.stacks.free_all(core.stacks.drain(..)));
        for core in shared.sched.lock().pidle.iter_mut() {
            shared.stacks.free_all(core.stacks.drain(..));
        }
        shared.copier.stalled(shared, size);
    }

    /// Runs `g` (prepared) until it yields, parks or ends (Go's `execute` + the second half of
    /// `mcall`). Called with the P held; afterwards the M may have lost it.
    fn execute(&self, g: GRef) {
        let shared = &self.shared;
        if g.status() != Status::Runnable {
            crate::panic::throw("execute: a queued goroutine is not runnable");
        }
        // SAFETY: this M owns the runnable goroutine's record.
        let Some(coro) = unsafe { g.inner() }.coro.as_mut() else {
            // `prepare` found no map budget for its first window.
            return self.turn_away(g);
        };
        g.set_status(Status::Running);
        // A stack copied out while the goroutine was parked comes back first (`copyout`).
        if !g.out.ensure_resident(shared) {
            return self.turn_away(g);
        }
        self.curg.set(GRef::as_ptr(&g));
        self.m.slot.leave();
        // The thread's stack-guard word (`grow::slot`); left as it is after the switch back. A
        // request sysmon poisoned it with since the last look stays: the goroutine yields at
        // its first checked call, or this M sees it at the next schedule point.
        super::grow::slot::set_unless_poisoned(g.stackguard());
        let req = coro.resume();
        self.curg.set(std::ptr::null());
        let held = self.m.slot.enter() == Entered::Held;
        if !held {
            self.forget_p();
        }
        // sysmon asked for this time slice to end (it ran 10 ms with goroutines waiting). Where
        // sysmon can poison the thread's guard word, it did so with every request, and that
        // word is one thread-local load: the request itself is looked at only then.
        let preempted = held && {
            use super::grow::slot;
            let poisoned = !slot::POISONED || slot::get() == slot::POISON;
            if poisoned && slot::POISONED {
                // Honoured here, or stale (the request was dropped with its slice): either
                // way the poison has done its work.
                slot::set(0);
            }
            poisoned && self.with_p(|core, _| core.take_preempt()) == Some(true)
        };
        match req {
            Some(Switch::Yield) => {
                g.set_status(Status::Runnable);
                // The queue grew: an idle P may take the yielder (or what it yields to). The
                // record moves into the closure (no reference-count traffic) and comes back if
                // the M holds no P. A preempted goroutine goes to the global queue, behind
                // whatever waited there (Go's `gopreempt_m`).
                let mut g = Some(g);
                let grew = if preempted {
                    None
                } else {
                    self.with_p(|core, p| {
                        core.runq_put(p, g.take().expect("taken once"), false, &shared.global)
                    })
                };
                match grew {
                    Some(true) => self.wakep(),
                    Some(false) => {}
                    None => shared.inject(g.take().expect("not taken")),
                }
            }
            Some(Switch::Park(opaque)) => {
                // `park` stored the reason before the switch.
                g.set_status(Status::Waiting);
                // SAFETY: `park` passed a pointer to its park function's pointer; both live in
                // the suspended goroutine's frame until the call below hands the record out.
                let f = unsafe { *opaque.cast::<*mut super::ParkFn>() };
                // The park function runs here, on the M's stack, but its closure lives on the
                // goroutine's stack: copy-out waits until it returned (`copyout`). The record outlives the call (`allgs` keeps it).
                let episode = g.out.episode();
                let rec = GRef::as_ptr(&g);
                // SAFETY: `f` points to the park closure on the goroutine's stack, which is
                // suspended and cannot be resumed before this call hands the record out.
                let back = unsafe { (*f)(g) };
                // SAFETY: records are never freed while their runtime runs (`allgs`).
                unsafe { (*rec).out.park_done(episode) };
                if let Some(g) = back {
                    g.set_wait_reason(super::WaitReason::None);
                    g.set_status(Status::Runnable);
                    let mut g = Some(g);
                    let put = if preempted {
                        None
                    } else {
                        self.with_p(|core, p| {
                            core.runq_put(p, g.take().expect("taken once"), true, &shared.global)
                        })
                    };
                    if put.is_none() {
                        shared.inject(g.take().expect("not taken"));
                    }
                }
            }
            None => self.gdestroy(g),
        }
        if preempted {
            // The goroutine parked or ended, so the slice would go on in whatever it readied
            // into `runnext` (a ping-pong partner): that one is preempted instead. The slice
            // ends here: the next goroutine starts a new one, even one that a due timer puts
            // into `runnext` at the next look (sysmon would otherwise count its run as part
            // of the slice it asked to end, and ask again 2 ms into it).
            if let Some(Some(next)) = self.with_p(|core, p| {
                core.new_slice();
                p.take_runnext()
            }) {
                shared.inject(next);
            }
        }
        if !held {
            shared.lost_p_running.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// A goroutine returned: keep its record and stack for the next one (Go's `goexit0`); on
    /// the P if the M holds one, else in the global caches.
    fn gdestroy(&self, g: GRef) {
        let shared = &self.shared;
        // SAFETY: the goroutine finished on this M, which owns its record.
        let inner = unsafe { g.inner() };
        let coro = inner.coro.take().unwrap_or_else(|| {
            crate::panic::throw("gdestroy: a goroutine that ran has no coroutine")
        });
        inner.exit_notify = None;
        inner.suspender = std::ptr::null();
        super::grow::release(inner, shared, false);
        g.set_status(Status::Dead);
        let mut parts = Some((coro.into_stack(), g));
        let done = self.with_p(|core, p| {
            let (stack, g) = parts.take().expect("taken once");
            core.stack_put(shared, stack);
            core.add_live(p, -1);
            core.gfput(shared, g);
        });
        if done.is_none() {
            let (stack, g) = parts.take().expect("not taken");
            shared.stacks.free(stack);
            shared
                .ext_live
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            if !shared.is_shutdown() {
                shared.gfree.lock().push(g);
            }
            // After shutdown the record just goes: kept in the runtime's cache it would keep
            // the runtime alive (the record refers to it) and its stacks mapped.
        }
    }

    /// A batch from the global queue into the local one (Go's `globrunqget`).
    fn global_get_batch(&self, core: &mut PCore) -> Option<GRef> {
        let shared = &self.shared;
        if shared.global.is_empty() {
            return None;
        }
        let n = (shared.global.len() / shared.procs.len() + 1).min(super::p::RUNQ_CAP / 2);
        loop {
            match shared.global.steal_batch_with_limit_and_pop(core.runq(), n) {
                Steal::Success(g) => return Some(g),
                Steal::Retry => continue,
                Steal::Empty => return None,
            }
        }
    }

    /// Go's `stealWork`.
    fn steal_work(&self, core: &mut PCore) -> Option<GRef> {
        let procs = &self.shared.procs;
        let n = procs.len();
        for pass in 0..STEAL_TRIES {
            let last = pass == STEAL_TRIES - 1;
            let start = core.rand() as usize % n;
            for i in 0..n {
                if self.shared.is_shutdown() {
                    return None;
                }
                let victim = &procs[(start + i) % n];
                if victim.id == core.id {
                    continue;
                }
                if let Some(g) = victim.steal_into(core.runq(), last) {
                    let own = &procs[core.id];
                    own.steals.fetch_add(1, Ordering::Relaxed);
                    return Some(g);
                }
            }
        }
        None
    }

    /// An M without a P (after a loss, or woken without one) looks for an idle P, its last
    /// one first (Go's `exitsyscall`); `false` if there is none.
    fn acquire_idle_p(&self) -> bool {
        let shared = &self.shared;
        let mut s = shared.sched.lock();
        let want = self.last_p.get();
        let at = s
            .pidle
            .iter()
            .position(|c| c.id == want)
            .or_else(|| s.pidle.len().checked_sub(1));
        let Some(i) = at else { return false };
        let core = s.pidle.swap_remove(i);
        shared.idle.p_busy();
        drop(s);
        self.install(core);
        true
    }

    fn install(&self, core: Box<PCore>) {
        self.last_p.set(core.id);
        self.m.pid.store(core.id, Ordering::Relaxed);
        self.m.slot.install(core);
        self.remember_p();
        // A P left the idle list: sysmon watches busy Ps.
        self.shared.sysmon.wake();
    }

    /// Steps 1-7 of the module docs. Returns the goroutine to run, prepared (`prepare`), or
    /// `None` when the runtime shuts down.
    fn find_runnable(&self) -> Option<GRef> {
        let shared = &self.shared;
        'top: loop {
            if shared.is_shutdown() {
                return None;
            }
            if !self.has_p() && !self.acquire_idle_p() {
                // Lost the P and none is idle: sleep until handed one (Go's `stopm`).
                match self.stop() {
                    Stopped::Shutdown => return None,
                    Stopped::Handed { spinning } => {
                        self.spinning.set(spinning);
                        continue 'top;
                    }
                    Stopped::LookAgain => continue 'top,
                }
            }
            let pid = self.last_p.get();
            self.run_timers_of(&shared.procs[pid], &mut None);
            // Fast path, small enough to inline: `runnext` or the local queue, outside the
            // global queue's turn.
            let fast = self.with_p(|core, p| {
                if core.schedtick % GLOBAL_QUEUE_INTERVAL == 0 {
                    return None;
                }
                let (g, inherit) = core.runq_get(p)?;
                self.prepare(core, &g, inherit);
                Some(g)
            });
            if let Some(Some(g)) = fast {
                return Some(g);
            }
            let found = self.with_p(|core, p| {
                let found = (|| {
                    if core.schedtick % GLOBAL_QUEUE_INTERVAL == 0 {
                        if let Some(g) = shared.global_pop() {
                            return Some((g, false));
                        }
                    }
                    if let Some(r) = core.runq_get(p) {
                        return Some(r);
                    }
                    if let Some(g) = self.global_get_batch(core) {
                        return Some((g, false));
                    }
                    None
                })();
                found.map(|(g, inherit)| {
                    self.prepare(core, &g, inherit);
                    g
                })
            });
            match found {
                None => continue 'top, // sysmon cannot take a P from scheduler code; defensive
                Some(Some(r)) => return Some(r),
                Some(None) => {}
            }
            // Step 4: the network, without blocking (Go: "only an optimization before we
            // resort to stealing"). What it readies lands on this P.
            if let Some(poller) = super::poller::active() {
                let polled = poller.poll_now();
                if !polled.is_empty() {
                    if let Some(g) = self.take_polled(polled, true) {
                        return Some(g);
                    }
                    continue 'top;
                }
            }
            let stolen = self.with_p(|core, _| {
                if self.spinning.get() || shared.idle.try_start_spinning() {
                    self.spinning.set(true);
                    if let Some(g) = self.steal_work(core) {
                        self.prepare(core, &g, false);
                        return Some(g);
                    }
                }
                None
            });
            if let Some(Some(g)) = stolen {
                return Some(g);
            }
            // Timers of other Ps that came due while their Ms were busy or asleep.
            if self.run_other_timers(pid) {
                continue 'top;
            }
            // Idle: a little housekeeping while we still hold the P.
            let _ = self.with_p(|core, _| core.scrub_stacks(shared));

            // Step 6: give up the P.
            {
                let mut s = shared.sched.lock();
                if shared.is_shutdown() {
                    return None;
                }
                if !shared.global.is_empty() {
                    drop(s);
                    let found = self.with_p(|core, _| {
                        self.global_get_batch(core)
                            .inspect(|g| self.prepare(core, g, false))
                    });
                    if let Some(Some(r)) = found {
                        return Some(r);
                    }
                    continue 'top;
                }
                let core = self.remove_p();
                s.pidle.push(core);
                shared.idle.p_idle();
            }
            if self.spinning.replace(false) {
                // The last spinner re-checks before sleeping (idle.rs); any spinner may.
                let _ = shared.idle.stop_spinning();
                let work =
                    !shared.global.is_empty() || shared.procs.iter().any(|p| !p.runq_empty());
                if work && self.acquire_idle_p() {
                    self.spinning.set(true);
                    shared.idle.resume_spinning();
                    continue 'top;
                }
            }
            match self.stop() {
                Stopped::Shutdown => return None,
                Stopped::Handed { spinning } => self.spinning.set(spinning),
                Stopped::LookAgain => {}
            }
        }
    }

    /// Step 7: sleeps until handed a P, or until the earliest timer (or a deadlock re-check) is
    /// due.
    fn stop(&self) -> Stopped {
        let shared = &self.shared;
        let deadline = {
            let mut s = shared.sched.lock();
            if shared.is_shutdown() {
                return Stopped::Shutdown;
            }
            let mut deadline = self.timer_deadline();
            if s.pidle.len() == shared.procs.len() {
                if let Some(recheck) = super::checkdead::check_dead(shared, deadline.is_some()) {
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
        let (mut woken, mut polled) = self.sleep_or_poll(deadline);
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
                Woken::Exit => {
                    for g in polled {
                        super::ready(g);
                    }
                    return Stopped::Shutdown;
                }
                Woken::P(core, spinning) => {
                    // Work arrived: whatever was blocked is moving again.
                    shared.dead_blocked_since.store(0, Ordering::Relaxed);
                    self.install(core);
                    if !polled.is_empty() {
                        let _ = self.take_polled(polled, false);
                    }
                    return Stopped::Handed { spinning };
                }
                Woken::Timeout => {
                    let mut s = shared.sched.lock();
                    let listed = s.midle.iter().position(|m| Arc::ptr_eq(m, &self.m));
                    match listed {
                        Some(i) => {
                            s.midle.swap_remove(i);
                            if let Some(core) = s.pidle.pop() {
                                shared.idle.p_busy();
                                drop(s);
                                self.install(core);
                                // What the poll readied runs here (Go: the M that polled
                                // takes an idle P and runs the first itself).
                                if !polled.is_empty() {
                                    shared.dead_blocked_since.store(0, Ordering::Relaxed);
                                    let _ = self.take_polled(std::mem::take(&mut polled), false);
                                }
                                return Stopped::LookAgain;
                            }
                            // No idle P: what the poll readied waits in the global queue for
                            // the busy Ps.
                            for g in std::mem::take(&mut polled) {
                                super::ready(g);
                            }
                            // Every P is busy; their Ms run timers at their schedule points,
                            // and sysmon runs those of Ms that stay busy.
                            s.midle.push(self.m.clone());
                            drop(s);
                            woken = self.m.sleep(None);
                        }
                        None => {
                            // A waker took us off the list: a P is on its way (what the poll
                            // readied goes onto it then).
                            drop(s);
                            woken = self.m.sleep(None);
                        }
                    }
                }
            }
        }
    }

    /// Sleeps on the note until handed a P or the deadline; or, if goroutines wait on sockets
    /// and no other M does, blocks in the network poll instead (Go: the first M to find
    /// nothing blocks in `netpoll(delay)`). A waker that hands this M a P interrupts the poll
    /// (`Machine::wake_with`). Returns how it woke and the goroutines the poll unblocked (for
    /// the caller to run on the P it gets, or to ready).
    fn sleep_or_poll(&self, deadline: Option<Instant>) -> (Woken, Vec<GRef>) {
        if let Some(poller) = super::poller::active() {
            if poller.try_block() {
                self.m.polling.store(true, Ordering::SeqCst);
                if let Some(w) = self.m.try_take_note() {
                    // Handed a P (or told to exit) before the poll could start.
                    self.m.polling.store(false, Ordering::SeqCst);
                    return (w, poller.poll_blocking(Some(Duration::ZERO)));
                }
                let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
                let polled = poller.poll_blocking(timeout);
                self.m.polling.store(false, Ordering::SeqCst);
                return (self.m.try_take_note().unwrap_or(Woken::Timeout), polled);
            }
        }
        (self.m.sleep(deadline), Vec::new())
    }

    /// Runs `p`'s due timers; true if any fired. `now` is read from the clock at most once,
    /// and only if some timer might be due.
    #[inline]
    fn run_timers_of(&self, p: &Processor, now: &mut Option<u64>) -> bool {
        super::run_due_timers(&self.shared, p, now)
    }

    /// Runs the due timers of the other Ps (this M's own were run at the top of
    /// `find_runnable`); true if any fired (their goroutines are now runnable here).
    fn run_other_timers(&self, own: usize) -> bool {
        let mut now = None;
        let mut any = false;
        for p in self.shared.procs.iter().filter(|p| p.id != own) {
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

    /// Go's `schedule` loop.
    fn schedule(&self) {
        while let Some(g) = self.find_runnable() {
            if self.spinning.replace(false) && self.shared.idle.stop_spinning() {
                // Go's `resetspinning`: the last spinner found work; there may be more.
                super::idle::wakep(&self.shared);
            }
            self.execute(g);
        }
    }
}

/// How an M's sleep for a P (`MContext::stop`) ended.
enum Stopped {
    /// The runtime shuts down.
    Shutdown,
    /// Woken with a P, now installed; `spinning` as the waker asked.
    Handed { spinning: bool },
    /// Woke with an idle P of its own, or without one: look for work again.
    LookAgain,
}

/// Body of an M thread (Go's `mstart`).
pub(super) fn mstart(shared: Arc<Shared>, m: Arc<Machine>, core: Box<PCore>, spinning: bool) {
    let _alt = AltStack::ensure();
    // SAFETY: gettid has no preconditions.
    m.tid.store(
        unsafe { libc::syscall(libc::SYS_gettid) } as i32,
        Ordering::Relaxed,
    );
    let ctx = MContext {
        shared,
        m,
        curg: Cell::new(std::ptr::null()),
        spinning: Cell::new(spinning),
        borrowed: Cell::new(false),
        held_core: Cell::new(std::ptr::null_mut()),
        held_p: Cell::new(std::ptr::null()),
        last_p: Cell::new(core.id),
    };
    CTX.with(|c| c.set(&ctx));
    *ctx.m.guard_word.lock() = super::grow::slot::address();
    super::RUNTIME_THREADS.fetch_add(1, Ordering::SeqCst);
    let _ = ctx.m.slot.enter();
    ctx.install(core);
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
    // Shutdown: give the P back for shutdown to drain.
    if ctx.has_p() {
        let core = ctx.remove_p();
        ctx.shared.sched.lock().pidle.push(core);
    }
    super::RUNTIME_THREADS.fetch_sub(1, Ordering::SeqCst);
    CTX.with(|c| c.set(std::ptr::null()));
    if ctx.spinning.get() {
        let _ = ctx.shared.idle.stop_spinning();
    }
    *ctx.m.guard_word.lock() = 0;
    if ctx.shared.is_shutdown() {
        // An M the shutdown left to finish its goroutine (it ran past the grace period) gave
        // the goroutine's stack back just now: the last of them to leave unmaps the stack
        // segments, which the shutdown could not while a stack was in use (and the runtime's
        // own drop may never come: a record a waker may still point into is leaked, and it
        // keeps the runtime alive). Classes with a stack still out stay mapped; an earlier
        // exit finds nothing to do once they are gone.
        ctx.shared.stacks.release();
    }
    ctx.m.exited.store(true, Ordering::Release);
}
