//! Coroutines: the only module that names corosensei.
//!
//! A goroutine's code runs on a [`Coro`], a corosensei coroutine on a [`GStack`] window. The
//! scheduler resumes it on an M's own (thread) stack; the goroutine suspends back to the M with a
//! [`Switch`] request that says why (a yield, or a park with the function that publishes the
//! goroutine to whoever will wake it). When the goroutine's function returns, `resume` reports
//! it and the stack can be taken back for reuse.
//!
//! Switch cost on this machine kind: ~2 ns for an inlined resume+suspend, ~20 ns through the
//! non-inlined park path that every real switch takes (return-stack mispredictions).

pub(crate) mod signal;
pub(crate) mod stack;

use corosensei::{Coroutine, CoroutineResult, Yielder};

pub(crate) use stack::{GStack, StackPool};

use crate::sched::ParkFn;
use crate::sched::WaitReason;

/// What a suspending goroutine asks its M to do.
pub(crate) enum Switch {
    /// Go's Gosched: put me back on the run queue.
    Yield,
    /// Go's gopark: mark me waiting and call the function, on the M's stack, with my record.
    /// The pointer refers to a closure on the parked goroutine's stack; it stays valid until
    /// the M has called it, because nobody can resume the goroutine before that call hands the
    /// record out.
    Park(WaitReason, *mut ParkFn),
}

/// The handle a running goroutine suspends through.
pub(crate) type Suspender = Yielder<(), Switch>;

/// A goroutine's coroutine.
pub(crate) struct Coro {
    inner: Coroutine<(), Switch, (), GStack>,
}

impl Coro {
    /// Prepares `f` to run on `stack`. Nothing runs until the first [`Coro::resume`].
    pub(crate) fn new<F>(mut stack: GStack, f: F) -> Coro
    where
        F: FnOnce(&Suspender) + 'static,
    {
        stack.mark_dirty();
        Coro {
            inner: Coroutine::with_stack(stack, move |y: &Suspender, ()| f(y)),
        }
    }

    /// Runs the goroutine until it suspends (`Some(request)`) or returns (`None`).
    ///
    /// A panic escaping the goroutine's function would resume here, on the M; the scheduler's
    /// goroutine entry catches every panic first, so this never unwinds.
    #[inline]
    pub(crate) fn resume(&mut self) -> Option<Switch> {
        match self.inner.resume(()) {
            CoroutineResult::Yield(s) => Some(s),
            CoroutineResult::Return(()) => None,
        }
    }

    /// Takes the stack back from a coroutine whose function returned.
    pub(crate) fn into_stack(self) -> GStack {
        self.inner.into_stack()
    }

    /// Abandons a suspended (or never started) coroutine without running anything on it, and
    /// takes its stack back. Values on the stack are leaked, not dropped: this is how a runtime
    /// shutting down discards goroutines without running user code (Go's process exit).
    ///
    /// # Safety
    /// The coroutine must not be running, and nothing outside the stack may point into it
    /// (the scheduler's wait-queue nodes never live on goroutine stacks).
    pub(crate) unsafe fn discard(mut self) -> GStack {
        // SAFETY: per the contract, nothing refers into the stack; skipping the drops leaks
        // values but breaks no invariant of this crate.
        unsafe { self.inner.force_reset() };
        self.inner.into_stack()
    }
}
