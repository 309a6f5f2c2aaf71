//! Waiting for an event: the interface the blocking primitives use (`sleep` and the poller's
//! I/O wait park directly with `sched::park`: their wake-up is a timer entry or a poll
//! descriptor word, not a queue).
//!
//! A primitive (channels and `select`, the `sync` locks, `WaitGroup` and `Cond`, join,
//! `block_on`) keeps a queue of [`Waiter`]s in
//! its own heap memory, never on a goroutine's stack: a parked goroutine's stack may later be
//! copied out to the heap, and wait-queue nodes must stay where wakers can reach them.
//!
//! [`block_current`] blocks whoever calls it: a goroutine parks (its M runs other goroutines),
//! a plain OS thread sleeps on a condition variable. Either way the primitive registers the
//! waiter and releases its own lock inside the `register` closure; for a goroutine that closure
//! runs on the M after the switch (see `sched::park`), so a waker that takes the waiter can
//! never resume a goroutine still on its way to sleep.
//!
//! Invariant: each registered waiter is woken at most once, by whoever removes it from the
//! primitive's queue (removal happens under the primitive's lock).

use std::sync::Arc;

use crate::loom::{Condvar, Mutex};

use super::{current_g, may_park, park, ready, GRef, Shared, WaitReason};
use std::sync::atomic::Ordering;

/// Who to wake: a parked goroutine, or a blocked OS thread.
pub(crate) enum Waiter {
    G(GRef),
    Thread(Arc<ThreadSignal>),
}

impl Waiter {
    /// A goroutine whose runtime has shut down: it was discarded (or is being discarded) and
    /// will never run again, so it must not be handed a value.
    #[inline]
    pub(crate) fn is_gone(&self) -> bool {
        match self {
            Waiter::G(g) => g.shared.is_shutdown(),
            Waiter::Thread(_) => false,
        }
    }

    /// Wakes the waiter (Go's `goready` for a goroutine).
    pub(crate) fn wake(self) {
        match self {
            Waiter::G(g) => ready(g),
            Waiter::Thread(t) => t.notify(),
        }
    }
}

/// A one-shot signal a plain thread sleeps on.
pub(crate) struct ThreadSignal {
    set: Mutex<bool>,
    cv: Condvar,
    /// The runtime whose `unwind_waits` counts this wait (a goroutine waiting while it
    /// unwinds, `block_current`); the notifier uncounts it.
    counted: Option<Arc<Shared>>,
}

impl ThreadSignal {
    pub(crate) fn new() -> ThreadSignal {
        ThreadSignal {
            set: Mutex::new(false),
            cv: Condvar::new(),
            counted: None,
        }
    }

    /// Sets the signal and wakes the thread. (The lock cannot be poisoned: nothing panics
    /// while holding it.)
    pub(crate) fn notify(&self) {
        if let Some(shared) = &self.counted {
            // Before the wake-up (SeqCst, as checkdead's reads): from here on the waiting M
            // counts as running (it is in `lost_p_running`, no longer in `unwind_waits`), so
            // deadlock detection never sees a woken goroutine as stuck.
            shared.unwind_waits.fetch_sub(1, Ordering::SeqCst);
        }
        *self.set.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.cv.notify_one();
    }

    /// Sleeps until `notify` (at most once per signal).
    pub(crate) fn wait(&self) {
        let mut s = self.set.lock().unwrap_or_else(|e| e.into_inner());
        while !*s {
            s = self.cv.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Blocks the caller until its waiter is woken. `register` must put the waiter where a waker
/// will find it and release the primitive's lock.
///
/// Inlined, as `park` is: every frame between the user's call and the switch stays on a
/// parked goroutine's stack, and copy-out copies it (docs/stacks.md).
#[track_caller]
#[inline(always)]
pub(crate) fn block_current<R>(reason: WaitReason, register: R)
where
    R: FnOnce(Waiter),
{
    if may_park() {
        park(reason, move |g| {
            register(Waiter::G(g));
            None
        });
    } else {
        // A plain thread, or a goroutine unwinding a panic (`may_park`). The goroutine's
        // thread sleeps in a blocking section that always hands its P on (for a plain thread
        // the section is just the call), counted in `unwind_waits` before the P goes (so that
        // `lost_p_running` never counts it alone): deadlock detection can then tell it from a
        // thread in a system call, since it runs again only if something wakes it.
        let g = current_g();
        // The user's call (`#[track_caller]` up to here; not inside the closure below).
        let at = std::panic::Location::caller();
        let counted = g.map(|g| {
            // SAFETY: the running goroutine's record is alive while it runs.
            let g = unsafe { &*g };
            // For dumps: it waits, as a parked goroutine would (its status stays Running).
            g.set_park_loc(at);
            g.set_unwind_wait(reason);
            let shared = g.shared.clone();
            shared.unwind_waits.fetch_add(1, Ordering::SeqCst);
            shared
        });
        let sig = Arc::new(ThreadSignal {
            counted,
            ..ThreadSignal::new()
        });
        register(Waiter::Thread(sig.clone()));
        super::syscall::blocking_handoff(|| sig.wait());
        if let Some(g) = g {
            // SAFETY: as above.
            unsafe { (*g).set_unwind_wait(WaitReason::None) };
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! The thread parker: a blocked thread registers its signal in a primitive's queue under
    //! the primitive's lock, then sleeps; a waker takes it under the same lock and notifies.
    //! No interleaving loses the wake-up (loom reports a deadlock if one does).
    use super::*;
    use crate::loom::Mutex as Lock;

    #[test]
    fn loom_a_parked_thread_is_always_woken() {
        loom::model(|| {
            let queue: Arc<Lock<Vec<Arc<ThreadSignal>>>> = Arc::new(Lock::new(Vec::new()));
            let q = queue.clone();
            let sleeper = loom::thread::spawn(move || {
                let sig = Arc::new(ThreadSignal::new());
                q.lock().unwrap().push(sig.clone());
                sig.wait();
            });
            loop {
                let w = queue.lock().unwrap().pop();
                match w {
                    Some(sig) => {
                        sig.notify();
                        break;
                    }
                    None => loom::thread::yield_now(),
                }
            }
            sleeper.join().unwrap();
        });
    }
}
