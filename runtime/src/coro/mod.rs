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

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use corosensei::{Coroutine, CoroutineResult, Yielder};

pub(crate) use stack::{GStack, StackPool};

/// What a suspending goroutine asks its M to do.
pub(crate) enum Switch {
    /// Go's Gosched: put me back on the run queue.
    Yield,
    /// Go's gopark: mark me waiting and run my park function on the M's stack. The pointer is
    /// opaque here (the scheduler's: its park function, on the parked goroutine's stack; the
    /// reason is in the goroutine's record). It stays valid until the M has used it, because
    /// nobody can resume the goroutine before that use hands the goroutine out.
    Park(*mut ()),
}

/// The handle a running goroutine suspends through.
pub(crate) type Suspender = Yielder<(), Switch>;

/// Suspends the running goroutine with `req`, storing its stack pointer in `sp` first. Every
/// byte the switch itself writes lies less than [`switch_depth`] below that pointer, so
/// `[sp - switch_depth(), top)` holds everything the goroutine needs to resume (copy-out).
/// Never inlined: one instantiation, one frame layout, which `switch_depth` measures.
#[inline(never)]
pub(crate) fn switch_out(sus: &Suspender, req: Switch, sp: &AtomicUsize) {
    sp.store(stack_pointer(), Ordering::Relaxed);
    sus.suspend(req);
}

/// The stack pointer of the caller (inlined into it).
#[inline(always)]
pub(crate) fn stack_pointer() -> usize {
    let sp: usize;
    // SAFETY: reads a register; no memory is touched.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        std::arch::asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack, preserves_flags))
    };
    // SAFETY: as above.
    #[cfg(target_arch = "aarch64")]
    unsafe {
        std::arch::asm!("mov {}, sp", out(reg) sp, options(nomem, nostack, preserves_flags))
    };
    sp
}

/// How far below the pointer `switch_out` records the switch writes (its own frame, the
/// context switch's saved registers and return address), rounded up to 16 plus 16 bytes of
/// margin. Measured once per process: a probe coroutine fills the stack below its frame with
/// a pattern, calls `switch_out`, and the lowest byte that changed marks the depth. 2 KiB if
/// the measurement looks wrong.
pub(crate) fn switch_depth() -> usize {
    static DEPTH: OnceLock<usize> = OnceLock::new();
    *DEPTH.get_or_init(|| measure_switch_depth().unwrap_or(FALLBACK_DEPTH))
}

const FALLBACK_DEPTH: usize = 2048;
const PROBE_FILL: usize = 8192;
const CANARY: u8 = 0xA5;

fn measure_switch_depth() -> Option<usize> {
    let stack = corosensei::stack::DefaultStack::new(64 * 1024).ok()?;
    let cells = std::sync::Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
    let c = cells.clone();
    let mut co: Coroutine<(), Switch, (), _> =
        Coroutine::with_stack(stack, move |y: &Suspender, ()| {
            let here = stack_pointer();
            let low = here - PROBE_FILL;
            for a in low..here - 64 {
                // SAFETY: `[low, here - 64)` is unused stack of this coroutine below the current
                // frame (64 KiB deep, mapped read-write); this closure calls nothing while it
                // writes, and the writes are volatile so they happen.
                unsafe { std::ptr::write_volatile(a as *mut u8, CANARY) };
            }
            c.1.store(low, Ordering::Relaxed);
            switch_out(y, Switch::Yield, &c.0);
        });
    let _ = co.resume(());
    let low = cells.1.load(Ordering::Relaxed);
    let sp = cells.0.load(Ordering::Relaxed);
    // SAFETY: the coroutine is suspended; its stack is mapped and nothing runs on it.
    let lowest = (low..sp).find(|&a| unsafe { std::ptr::read_volatile(a as *const u8) } != CANARY);
    let _ = co.resume(()); // let it finish
    let depth = sp.checked_sub(lowest?)?;
    (depth > 0 && depth < FALLBACK_DEPTH).then(|| depth.next_multiple_of(16) + 16)
}

/// Runs `f` on the stack `[top - usable, top)` (a growth segment, `sched::grow`) and returns
/// to the caller's stack. A panic or Goexit unwinding out of `f` is caught at the segment's
/// root and resumed on the caller's stack (`resume_unwind`, without the panic hook), so frames
/// below see it as if the call had not switched.
///
/// # Safety
/// The range is a pool window with its guard page below it, owned by the running goroutine,
/// with nothing running on it, and it stays so until this returns.
#[inline]
pub(crate) unsafe fn on_segment<R>(top: usize, usable: usize, f: impl FnOnce() -> R) -> R {
    corosensei::on_stack(stack::Lent { top, usable }, f)
}

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
        debug_assert!(
            !stack.is_released(),
            "a coroutine starts on a committed window"
        );
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

// Not under ASan, whose instrumented frames the probe does not measure (copy-out is off in
// sanitizer builds).
#[cfg(all(test, not(loom), not(feature = "sanitizer")))]
mod tests {
    use super::*;

    /// The probe finds the switch's depth (a fallback would copy 2 KiB more per parked
    /// goroutine than needed), and it is small: a frame and a few saved registers.
    #[test]
    fn switch_depth_is_measured_and_small() {
        let d = measure_switch_depth().expect("the probe measures a depth");
        eprintln!("switch depth: {d} bytes");
        assert!((32..1024).contains(&d), "{d}");
        assert_eq!(switch_depth(), d);
    }
}
