//! Idle Ps and spinning Ms: the counters behind Go's `wakep` / `findRunnable` hand-off.
//!
//! # The problem
//!
//! When a goroutine becomes runnable, some M must eventually run it. Waking an M for every
//! readied goroutine costs a futex syscall (microseconds) each time; never waking one leaves
//! cores idle. Go's answer, which gort follows:
//!
//! - An M with no work *spins* for a while, looking in every queue, before it sleeps. At most
//!   half the busy Ps' worth of Ms spin at once (`2 * nmspinning < nprocs - npidle`).
//! - Whoever makes work stealable wakes an idle M only if no M is spinning already (`wakep`):
//!   a spinning M will find the work. The woken M starts out spinning.
//! - A spinning M that finds work stops spinning and, if it was the last spinner, wakes another
//!   (there may be more work), so wake-ups ripple only while there is work to take.
//!
//! # The no-lost-wakeup argument (Dekker style)
//!
//! Submitter: (1) push the goroutine; (2) SeqCst fence; (3) read `nmspinning` and `npidle`.
//! Last spinner: (a) decrement `nmspinning`, SeqCst fence; (b) re-check every run queue.
//! If the submitter read `nmspinning != 0` at (3), the decrement (a) comes later in the SeqCst
//! order, so (b) observes the push (1) and the spinner takes the work instead of sleeping.
//! If the submitter read `nmspinning == 0` it wakes an M itself. `npidle` is changed only
//! under the scheduler lock, by a P going idle after its M re-checked the global queue.
//!
//! Invariants:
//! - `nmspinning` counts Ms whose `spinning` flag is set, plus at most one pending wake-up
//!   whose M has not started yet (the waker increments on its behalf, Go's `startm(spinning)`);
//! - `npidle` equals the length of the idle-P list (changed together, under the sched lock).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::p::PCore;
use super::Shared;
use crate::loom::{fence, AtomicUsize};

pub(crate) struct IdleCounts {
    nprocs: usize,
    nmspinning: AtomicUsize,
    npidle: AtomicUsize,
}

impl IdleCounts {
    pub(crate) fn new(nprocs: usize, npidle: usize) -> IdleCounts {
        IdleCounts {
            nprocs,
            nmspinning: AtomicUsize::new(0),
            npidle: AtomicUsize::new(npidle),
        }
    }

    /// Go's `wakep` gate, called after making work stealable. True means the caller must start
    /// a spinning M on an idle P; `nmspinning` was incremented on that M's behalf (undo with
    /// [`IdleCounts::cancel_wake`] if no idle P turns out to be there).
    #[inline]
    pub(crate) fn try_begin_wake(&self) -> bool {
        // SeqCst fence: step (2) of the module's argument, ordering the caller's push before the
        // loads below; pairs with the SeqCst decrement in `stop_spinning`.
        fence(Ordering::SeqCst);
        if self.npidle.load(Ordering::SeqCst) == 0 || self.nmspinning.load(Ordering::SeqCst) != 0 {
            return false;
        }
        self.nmspinning
            .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }

    /// A cheap, possibly stale look (Relaxed loads, no fence): is some P idle with no M
    /// spinning? Enough for an M that pushed work onto *its own* P's queue: that work runs on
    /// this M anyway, so a stale "no" costs only parallelism, never a lost wake-up, and it
    /// saves the fence on every yield and spawn while all Ps are busy. Work pushed where no
    /// M will look by itself (the global queue) must use [`IdleCounts::try_begin_wake`].
    #[inline]
    pub(crate) fn worth_waking(&self) -> bool {
        self.npidle.load(Ordering::Relaxed) != 0 && self.nmspinning.load(Ordering::Relaxed) == 0
    }

    /// Undo a [`IdleCounts::try_begin_wake`] that found no idle P.
    pub(crate) fn cancel_wake(&self) {
        self.nmspinning.fetch_sub(1, Ordering::SeqCst);
    }

    /// An M without work asks to spin; true if it may (and it is now counted).
    pub(crate) fn try_start_spinning(&self) -> bool {
        let busy = self
            .nprocs
            .saturating_sub(self.npidle.load(Ordering::SeqCst));
        if 2 * self.nmspinning.load(Ordering::SeqCst) >= busy {
            return false;
        }
        self.nmspinning.fetch_add(1, Ordering::SeqCst);
        true
    }

    /// Counts a spinning M that got its P back after re-checking (Go's `mp.becomeSpinning`).
    pub(crate) fn resume_spinning(&self) {
        self.nmspinning.fetch_add(1, Ordering::SeqCst);
    }

    /// A spinning M stops spinning. Returns true if it was the last spinner: after finding work
    /// the caller must then `wakep`, and before sleeping it must re-check every queue.
    #[must_use]
    pub(crate) fn stop_spinning(&self) -> bool {
        // SeqCst: step (a) of the module's argument. The fence orders the decrement before the
        // caller's re-check loads (pairs with the fence in `try_begin_wake`); a SeqCst RMW
        // alone suffices in C++20's model, but not in every model checker's.
        let last = self.nmspinning.fetch_sub(1, Ordering::SeqCst) == 1;
        fence(Ordering::SeqCst);
        last
    }

    /// Spinning Ms now (racy; statistics).
    pub(crate) fn spinning(&self) -> usize {
        self.nmspinning.load(Ordering::Relaxed)
    }

    /// Idle Ps now (racy unless read under the sched lock).
    pub(crate) fn idle_ps(&self) -> usize {
        self.npidle.load(Ordering::SeqCst)
    }

    /// A P went onto the idle list (call under the sched lock).
    pub(crate) fn p_idle(&self) {
        self.npidle.fetch_add(1, Ordering::SeqCst);
    }

    /// A P left the idle list (call under the sched lock).
    pub(crate) fn p_busy(&self) {
        self.npidle.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! The hand-off between a submitter and the last spinning M, on one P and one M: the
    //! submitter pushes a goroutine and runs `wakep`; the M spins, finds nothing, gives up its
    //! P, stops spinning, re-checks, and sleeps. In every interleaving the goroutine is run
    //! (loom reports a deadlock if the M sleeps with the work queued and nobody to wake it).
    use super::*;
    use loom::sync::atomic::AtomicUsize as Queue;
    use loom::sync::{Arc, Condvar, Mutex};
    use loom::thread;

    struct World {
        idle: IdleCounts,
        queue: Queue,
        /// The sched lock: (idle P available, M asleep waiting for a P, M woken with the P).
        sched: Mutex<(bool, bool, bool)>,
        cv: Condvar,
    }

    fn take(w: &World) -> bool {
        w.queue
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    #[test]
    fn loom_last_spinner_never_loses_a_wakeup() {
        loom::model(|| {
            // One P, held by the M, which starts out spinning (as a woken M does).
            let w = Arc::new(World {
                idle: IdleCounts::new(1, 0),
                queue: Queue::new(0),
                sched: Mutex::new((false, false, false)),
                cv: Condvar::new(),
            });
            w.idle.resume_spinning();
            let m = {
                let w = w.clone();
                thread::spawn(move || loop {
                    if take(&w) {
                        return;
                    }
                    // Release the P (under the lock), then stop spinning and re-check.
                    {
                        let mut s = w.sched.lock().unwrap();
                        s.0 = true;
                        w.idle.p_idle();
                    }
                    let last = w.idle.stop_spinning();
                    assert!(last);
                    if w.queue.load(Ordering::SeqCst) != 0 {
                        let mut s = w.sched.lock().unwrap();
                        if s.0 {
                            s.0 = false;
                            w.idle.p_busy();
                            w.idle.resume_spinning();
                            continue;
                        }
                    }
                    // stopm: sleep until a waker hands the P back.
                    let mut s = w.sched.lock().unwrap();
                    s.1 = true;
                    while !s.2 {
                        s = w.cv.wait(s).unwrap();
                    }
                    s.1 = false;
                    s.2 = false;
                })
            };
            // Submitter: push, then wakep.
            w.queue.fetch_add(1, Ordering::SeqCst);
            if w.idle.try_begin_wake() {
                let mut s = w.sched.lock().unwrap();
                if s.0 {
                    s.0 = false;
                    w.idle.p_busy();
                    // startm: the M may not be asleep yet; it will see the flag when it waits.
                    s.2 = true;
                    w.cv.notify_one();
                } else {
                    drop(s);
                    w.idle.cancel_wake();
                }
            }
            m.join().unwrap();
        });
    }
}
/// Go's `wakep`: if no M is spinning and a P is idle, start an M spinning on it.
pub(crate) fn wakep(shared: &Arc<Shared>) {
    if shared.idle.try_begin_wake() {
        let core = {
            let mut s = shared.sched.lock();
            match s.pidle.pop() {
                Some(c) => {
                    shared.idle.p_busy();
                    c
                }
                None => {
                    drop(s);
                    shared.idle.cancel_wake();
                    return;
                }
            }
        };
        if let Err(core) = start_with(shared, core, true) {
            put_idle(shared, core);
            shared.idle.cancel_wake();
        }
    }
}

/// Go's `startm(pp, spinning)`: hands `core` to a sleeping M, or to a new thread. Gives it back
/// after shutdown.
pub(crate) fn start_with(
    shared: &Arc<Shared>,
    core: Box<PCore>,
    spinning: bool,
) -> Result<(), Box<PCore>> {
    let mut s = shared.sched.lock();
    if let Some(m) = s.midle.pop() {
        drop(s);
        m.wake_with(core, spinning);
        return Ok(());
    }
    if shared.is_shutdown() {
        return Err(core);
    }
    let id = s.mcount;
    if id >= shared.config.max_threads {
        drop(s);
        crate::panic::throw_plain(&format!(
            "runtime: program exceeds {}-thread limit\nfatal error: thread exhaustion",
            shared.config.max_threads
        ));
    }
    s.mcount += 1;
    let name = format!("{}{}", shared.config.thread_name, id);
    let m = Arc::new(super::m::Machine::new(id));
    s.allm.push(m.clone());
    let sh = shared.clone();
    let t = std::thread::Builder::new()
        .name(name)
        .spawn(move || super::m::mstart(sh, m, core, spinning))
        .unwrap_or_else(|e| {
            crate::panic::throw(&format!(
                "newosproc: runtime: failed to create new OS thread (have {id} already): {e}"
            ))
        });
    s.threads.push(t);
    Ok(())
}

/// Go's `handoffp` for a P taken from an M that blocks or computes (`syscall::section`,
/// sysmon's `retake`): counted on the P, handed to an idle M or a new thread; after shutdown
/// it goes back to the idle list, where shutdown collects it.
pub(crate) fn handoff_p(shared: &Arc<Shared>, core: Box<PCore>) {
    shared.procs[core.id]
        .handoffs
        .fetch_add(1, Ordering::Relaxed);
    if let Err(core) = start_with(shared, core, false) {
        put_idle(shared, core);
    }
}

/// Puts a P on the idle list (a hand-off that found the runtime shut down).
fn put_idle(shared: &Shared, core: Box<PCore>) {
    shared.sched.lock().pidle.push(core);
    shared.idle.p_idle();
}
