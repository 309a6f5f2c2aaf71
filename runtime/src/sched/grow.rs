//! Stack growth past a goroutine's window: the stack guard each goroutine carries, the further
//! stack segments a `#[gort::func]` frame or [`crate::maybe_grow`] continues on when little of
//! the current stack is left, and the limit on a goroutine's total stack (Go's `maxstacksize`,
//! `debug.SetMaxStack`).
//!
//! Go grows a stack by copying it to a bigger one and fixing every pointer into it, which needs
//! the compiler's stack maps. gort has none, so a stack never moves (docs/stacks.md). Instead,
//! a call that finds less than the red zone left below the stack pointer runs on a **segment**
//! of its own, twice the size of the stack it leaves, taken from the runtime's stack pool; when
//! it returns (or unwinds), the goroutine is back on the stack it left. Nothing moves, so
//! nothing needs fixing; the frames below stay where they are.
//!
//! ```text
//!  window (256 KiB)           segment 1 (512 KiB)        segment 2 (1 MiB)
//!  ┌──────────────┐  on_stack ┌──────────────┐  on_stack ┌──────────────┐
//!  │ main frames  │ ────────► │ f → f → f …  │ ────────► │ f → f → …    │
//!  │ … f → f      │ ◄──────── │              │ ◄──────── │              │
//!  └ red zone ────┘  return   └ red zone ────┘  return   └ red zone ────┘
//! ```
//!
//! # The check (Go's `stackguard0` compare in every function prologue)
//!
//! `Goroutine::stackguard` is the lowest stack pointer at which a checked call may still start
//! on the current stack: the stack's low end plus the red zone. A plain thread has none (0:
//! never grows). While the goroutine runs, its thread's [`slot`] holds a copy: on x86-64
//! glibc the check is a compare of the stack pointer with `%fs:0x70` and a branch, inlined
//! into the frame, like Go's prologue compare with `g.stackguard0`.
//!
//! # Invariants
//!
//! - Only code running on the goroutine writes `stackguard` and `GInner::growth` (and the M
//!   that starts or ends the goroutine, which owns the record then, and the copier of a
//!   parked goroutine it holds `BUSY`, which only drops the spare).
//! - A thread's slot holds the stack guard of the goroutine running on it. When none runs
//!   (the M's own code, park functions, a plain thread) it may hold a stale guard or 0; a
//!   check there that takes the slow path finds no running goroutine (`current_g`), clears
//!   the slot and runs the call in place, so it never grows a goroutine it is not running on.
//! - `growth.segs[..depth]` are the segments in use, oldest first; the goroutine's stack
//!   pointer is in `segs[depth - 1]` (or in its window when `depth == 0`) whenever it runs
//!   code outside this module. At most one further segment is kept as a spare: the one just
//!   above the current stack, the last one left. So a call that sits right at a boundary and
//!   is made in a loop does not take a segment from the pool every time (Go's "hot split"),
//!   and the spare is at most twice the size of the stack the goroutine is on (Go likewise
//!   keeps a grown stack until a collection finds it a quarter used).
//! - A goroutine parked on a segment is never copied out (`copyout` copies only stacks whose
//!   parked stack pointer lies in the window); its window and segments stay resident. One
//!   parked on its window that is copied out gives its spare back (`release_spare`): while
//!   the copier holds it `BUSY`, the copier owns `growth` too.
//! - Segments are released when the goroutine ends (`release`), and discarded with it at
//!   shutdown like its window.
//! - Segments are plain pool windows, guard page included: running off a segment without a
//!   check (a deep plain recursion) gives Go's stack-overflow report, as running off the
//!   window does.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::coro::{self, stack, GStack};

use super::g::{GInner, Goroutine};
use super::Shared;

/// Go's `maxstacksize` on 64-bit platforms: a goroutine whose stack would exceed it crashes
/// with "goroutine stack exceeds 1000000000-byte limit". As in Go, stacks double, so the
/// largest reach under it is about half of it.
pub(crate) const DEFAULT_MAX_STACK: usize = 1_000_000_000;

/// Stack a checked call needs below the stack pointer to run where it is: what plain code
/// (which has no check) called from a checked frame can count on.
pub(crate) const RED_ZONE: usize = 64 * 1024;

/// The red zone of a stack with `usable` bytes: [`RED_ZONE`], or a quarter of a smaller stack
/// (a goroutine given a 16 KiB stack on purpose grows when 4 KiB is left, not at once).
pub(crate) fn red_zone(usable: usize) -> usize {
    RED_ZONE.min(usable / 4)
}

/// The stack guard of a stack `[top - usable, top)`.
pub(crate) fn guard_for(top: usize, usable: usize) -> usize {
    top - usable + red_zone(usable)
}

/// The segments a goroutine runs on past its window (boxed in its record on its first growth:
/// most goroutines never grow).
pub(crate) struct Growth {
    /// Segments in use, oldest first, then at most one spare.
    segs: Vec<GStack>,
    /// How many of `segs` are in use.
    depth: usize,
}

impl Growth {
    /// The stack the goroutine is on, `(top, usable)`: its window (`window`), or the newest
    /// segment in use.
    fn current(&self, window: (usize, usize)) -> (usize, usize) {
        match self.depth {
            0 => window,
            d => (self.segs[d - 1].top(), self.segs[d - 1].usable()),
        }
    }

    /// Usable bytes of the window and the segments in use.
    fn reach(&self, window: (usize, usize)) -> usize {
        window.1
            + self.segs[..self.depth]
                .iter()
                .map(GStack::usable)
                .sum::<usize>()
    }

    /// Gives back to the pool every segment past the first `keep`.
    fn truncate(&mut self, shared: &Shared, keep: usize) {
        while self.segs.len() > keep {
            let s = self.segs.pop().expect("len > keep");
            give_back(shared, s);
        }
    }
}

/// Growth counters of a runtime (`debug::sched_stats`).
#[derive(Default)]
pub(crate) struct GrowStats {
    /// Segments held by goroutines, in use or spare.
    pub(crate) held: AtomicUsize,
    /// Segments taken from the pool for growth (spares reused are not counted).
    pub(crate) taken: AtomicU64,
}

/// Where the check finds the stack guard of the goroutine running on this thread.
///
/// On x86-64 Linux with glibc it is `%fs:0x70`, the word glibc's thread control block
/// reserves for split stacks (`tcbhead_t::__private_ss`), which GCC's `-fsplit-stack` (and
/// gccgo's goroutines) and LLVM's segmented stacks use for the same purpose: a stack limit
/// that one instruction reads, whichever thread the code runs on. The check is then two
/// instructions inlined into the frame, like Go's prologue. The M stores the goroutine's
/// guard there right before it resumes it; `enter` and `leave` store the new guard while it
/// runs. Nothing clears it when the goroutine switches out (that would be a store on every
/// switch): a check that then runs on the
/// thread (the M's own code, a plain thread that once ran goroutines) and finds the stale
/// value above its stack pointer takes the slow path, which finds no goroutine running,
/// clears the word and runs the call in place. A thread that never ran a goroutine has 0
/// there.
///
/// Elsewhere the check reads the guard through the running M (a call, about a nanosecond
/// more) and the stores are no-ops.
pub(crate) mod slot {
    pub(crate) use imp::{address, get, set, set_unless_poisoned};

    /// What sysmon stores in a thread's word to ask its goroutine to yield: above every stack
    /// pointer, so the next check takes the slow path (Go's `stackPreempt`).
    pub(crate) const POISON: usize = usize::MAX;

    /// Whether sysmon poisons the word with every request (it has an address to poison), so
    /// that a word without poison means no request for the goroutine that ran last.
    pub(crate) const POISONED: bool = cfg!(all(
        target_arch = "x86_64",
        target_pointer_width = "64",
        target_os = "linux",
        target_env = "gnu"
    ));

    #[cfg(all(
        target_arch = "x86_64",
        target_pointer_width = "64",
        target_os = "linux",
        target_env = "gnu"
    ))]
    mod imp {
        /// The stack guard last stored on this thread (0: none).
        #[inline(always)]
        pub(crate) fn get() -> usize {
            let v: usize;
            // SAFETY: glibc's x86-64 thread control block is at %fs:0, and the word at 0x70
            // is `__private_ss`, reserved for split-stack limits and unused by glibc itself;
            // every thread has it. Not `pure`: each check reads it anew (a goroutine may have
            // moved to another thread since the last one).
            unsafe {
                std::arch::asm!(
                    "mov {}, qword ptr fs:[0x70]",
                    out(reg) v,
                    options(nostack, readonly, preserves_flags)
                )
            };
            v
        }

        /// The address of this thread's word, for sysmon to poison (`Machine::poison_guard`).
        pub(crate) fn address() -> usize {
            let tcb: usize;
            // SAFETY: glibc's x86-64 thread control block starts with a pointer to itself
            // (`tcbhead_t::tcb`), so `%fs:0` is the block's address; reading it has no effects.
            unsafe {
                std::arch::asm!(
                    "mov {}, qword ptr fs:[0]",
                    out(reg) tcb,
                    options(nostack, readonly, preserves_flags)
                )
            };
            tcb + 0x70
        }

        /// `set`, unless the word holds sysmon's poison (`POISON`).
        #[inline(always)]
        pub(crate) fn set_unless_poisoned(v: usize) {
            if get() != super::POISON {
                set(v);
            }
        }

        /// Stores the running goroutine's stack guard.
        #[inline(always)]
        pub(crate) fn set(v: usize) {
            // SAFETY: as in `get`: the split-stack word of this thread's control block, which
            // nothing but gort's check reads in a gort process.
            unsafe {
                std::arch::asm!(
                    "mov qword ptr fs:[0x70], {}",
                    in(reg) v,
                    options(nostack, preserves_flags)
                )
            };
        }
    }

    #[cfg(not(all(
        target_arch = "x86_64",
        target_pointer_width = "64",
        target_os = "linux",
        target_env = "gnu"
    )))]
    mod imp {
        /// The running goroutine's stack guard, read through the M; 0 on a plain thread.
        /// Never inlined: the caller may be a goroutine that moved to another thread since it
        /// last looked, and an inlined thread-local read could reuse the old thread's address.
        #[inline(never)]
        pub(crate) fn get() -> usize {
            match crate::sched::current_g() {
                // SAFETY: a running goroutine's record is alive while it runs.
                Some(g) => unsafe { (*g).stackguard() },
                None => 0,
            }
        }

        /// Nothing to store: `get` reads the record.
        #[inline(always)]
        pub(crate) fn set(_: usize) {}

        /// Nothing to store either.
        #[inline(always)]
        pub(crate) fn set_unless_poisoned(_: usize) {}

        /// No word to poison: sysmon's requests are honoured at schedule points only.
        pub(crate) fn address() -> usize {
            0
        }
    }
}

/// `f`, on a further segment if the stack pointer is below the running goroutine's stack
/// guard (see [`crate::maybe_grow`]).
#[inline(always)]
pub fn maybe_grow<R, F: FnOnce() -> R>(f: F) -> R {
    if coro::stack_pointer() >= slot::get() {
        f()
    } else {
        grow(f)
    }
}

/// The slow path: run `f` on a segment, or where it is if the goroutine may not grow further.
#[cold]
#[inline(never)]
fn grow<R, F: FnOnce() -> R>(f: F) -> R {
    let Some(g) = super::current_g() else {
        // A stale slot on a plain thread (see `slot`).
        slot::set(0);
        return f();
    };
    // SAFETY: the running goroutine's record outlives this call.
    let g = unsafe { &*g };
    while slot::get() == slot::POISON {
        // sysmon's request to end the time slice (or a stale one: see `preempt_point`). A
        // goroutine that yields leaves the poison for its M to see (`m.rs`); the M stores the
        // guard of whichever goroutine it resumes, this one's too when it comes back, unless a
        // new poison came meanwhile (then this loop looks again: taken for the guard, it
        // would send the call to a segment it does not need).
        if !preempt_point(g) {
            slot::set(g.stackguard());
        }
    }
    if coro::stack_pointer() >= slot::get() {
        return f();
    }
    match enter(g, coro::stack_pointer()) {
        Enter::Elsewhere => f(),
        Enter::Grown(top, usable) => {
            let _back = Leave(g);
            // SAFETY: `enter` made `[top - usable, top)` the segment in use at the new depth:
            // owned by this goroutine, nothing on it, and it stays in `growth.segs` (moved
            // only as a value, its memory never) until `Leave` runs after `f` is done.
            unsafe { coro::on_segment(top, usable, f) }
        }
        Enter::Refused => {
            // Refused: the goroutine is at its limit. `f` runs here without further checks
            // (a frame that finds too little stack overflows into the guard page, and the
            // report names the limit), and the guard comes back when it returns.
            let _back = Unrefuse(g, g.stackguard());
            set_guard(g, 0);
            f()
        }
    }
}

/// A checked call found the guard word poisoned (Go's `newstack` seeing `stackPreempt`):
/// sysmon asked the P to end the current time slice. The goroutine yields, and the M sends it
/// to the global queue (`m.rs`, "Time slices"). Not when yielding here would be wrong or
/// pointless:
/// - the request is gone (honoured at a schedule point, or dropped with a new slice: the
///   poison reached a goroutine that started after it was asked);
/// - the M lost its P (sysmon handed it off; the goroutine finds out at its next schedule
///   point anyway);
/// - the goroutine unwinds a panic (it must stay on its thread: `may_park`), or runs inside
///   `gort::blocking` (which keeps the M's mark until it returns);
/// - the call is on a stack that is not the goroutine's (a coroutine of the user's own,
///   `Enter::Elsewhere`): switching out from there would leave that stack's frames behind.
///
/// Returns whether it yielded.
#[cold]
fn preempt_point(g: &Goroutine) -> bool {
    let ctx = super::ctx_ptr();
    if ctx.is_null() || std::thread::panicking() {
        return false;
    }
    // SAFETY: `current_g` found this goroutine running on this M, whose context lives on the
    // M's stack for as long as its schedule loop runs, below this call.
    let ctx = unsafe { &*ctx };
    if ctx.m.in_blocking.load(Ordering::Relaxed) {
        return false;
    }
    let sp = coro::stack_pointer();
    // SAFETY: the running goroutine owns its record's inner part.
    let inner = unsafe { g.inner() };
    let window = window(g);
    let (top, usable) = inner
        .growth
        .as_ref()
        .map_or(window, |gr| gr.current(window));
    if !(top - usable..=top).contains(&sp) || ctx.with_p(|c, _| c.preempt_requested()) != Some(true)
    {
        return false;
    }
    super::yield_now();
    true
}

/// Puts the goroutine back on the stack it left when the call on the segment ends, also by
/// unwinding.
struct Leave<'a>(&'a Goroutine);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        leave(self.0);
    }
}

/// Restores the stack guard after a refused growth.
struct Unrefuse<'a>(&'a Goroutine, usize);

impl Drop for Unrefuse<'_> {
    fn drop(&mut self) {
        set_guard(self.0, self.1);
    }
}

/// What `enter` did.
enum Enter {
    /// The next segment, `(top, usable)`, is now the current stack.
    Grown(usize, usize),
    /// The goroutine's total stack would exceed the runtime's limit.
    Refused,
    /// The stack pointer is not in the goroutine's current stack: the check ran on some other
    /// stack (a coroutine of the user's own, driven by this goroutine). Growing would be wrong
    /// there: when that stack is switched away and back, this goroutine's segments would be
    /// left out of order. The call runs where it is.
    Elsewhere,
}

/// Takes the next segment for the running goroutine `g`, whose stack pointer is `sp`, and
/// makes it current.
fn enter(g: &Goroutine, sp: usize) -> Enter {
    let shared = &g.shared;
    // SAFETY: the running goroutine owns its record's inner part; no other reference to it
    // is live in this module's callers.
    let inner = unsafe { g.inner() };
    let window = window(g);
    let gr = inner.growth.get_or_insert_with(|| {
        Box::new(Growth {
            segs: Vec::new(),
            depth: 0,
        })
    });
    let (cur_top, cur) = gr.current(window);
    if !(cur_top - cur..=cur_top).contains(&sp) {
        return Enter::Elsewhere;
    }
    let next = stack::class_size(cur.saturating_mul(2));
    if gr.reach(window).saturating_add(next) > shared.max_stack.load(Ordering::Relaxed) {
        return Enter::Refused;
    }
    if gr.segs.len() > gr.depth && gr.segs[gr.depth].usable() != next {
        // A spare of another size (the stack below it changed size: a window that is not a
        // power of two before, a reused record now on another window): back to the pool.
        gr.truncate(shared, gr.depth);
    }
    if gr.segs.len() == gr.depth {
        // A goroutine in the middle of a call cannot be turned away: under map pressure (old
        // kernels) it waits for room, then reports the budget error.
        use super::copyout::{with_budget, BUDGET_PATIENCE};
        let seg = with_budget(shared, BUDGET_PATIENCE, || shared.stacks.try_alloc(next));
        let seg = seg.unwrap_or_else(|e| {
            let e = match e {
                stack::Refused::Os(e) => e,
                stack::Refused::Budget => stack::budget_error(shared.config.copy_out),
            };
            // Go's "out of memory" while growing a stack: fatal, not a panic a deferred
            // `recover` could stop (the goroutine has only its red zone left).
            crate::panic::throw(&format!("cannot map a {next}-byte stack segment: {e}"))
        });
        gr.segs.push(seg);
        shared.growth.held.fetch_add(1, Ordering::Relaxed);
        shared.growth.taken.fetch_add(1, Ordering::Relaxed);
    }
    let seg = &mut gr.segs[gr.depth];
    seg.mark_dirty();
    let (top, usable) = (seg.top(), seg.usable());
    gr.depth += 1;
    set_guard(g, guard_for(top, usable));
    Enter::Grown(top, usable)
}

/// The call on the newest segment ended: the goroutine is back on the stack below it.
fn leave(g: &Goroutine) {
    // SAFETY: as in `enter`.
    let inner = unsafe { g.inner() };
    let gr = inner
        .growth
        .as_mut()
        .unwrap_or_else(|| crate::panic::throw("leave: no segments"));
    gr.depth -= 1;
    // Keep the segment just left as the spare; drop the one kept above it, if any.
    gr.truncate(&g.shared, gr.depth + 1);
    let (top, usable) = gr.current(window(g));
    set_guard(g, guard_for(top, usable));
}

/// Sets the running goroutine's stack guard, in its record and in this thread's slot.
fn set_guard(g: &Goroutine, v: usize) {
    g.set_stackguard(v);
    slot::set(v);
}

/// Returns a segment to the pool.
fn give_back(shared: &Shared, s: GStack) {
    shared.growth.held.fetch_sub(1, Ordering::Relaxed);
    shared.stacks.free(s);
}

/// The goroutine's window `(top, usable)`.
fn window(g: &Goroutine) -> (usize, usize) {
    let (low, top) = g
        .out
        .window()
        .unwrap_or_else(|| crate::panic::throw("a running goroutine has no window"));
    (top, top - low)
}

/// Gives back the spare segment of a goroutine whose stack copy-out is taking: a goroutine
/// parked long enough to be copied out keeps no segment it is not using (Go shrinks the stacks
/// of idle goroutines at a collection).
///
/// # Safety
/// The caller is the copier holding the goroutine `BUSY` (`copyout`): the goroutine is parked,
/// and nothing else touches its record's inner part until the copier publishes `OUT`, which
/// the resuming M acquires before it runs the goroutine.
pub(crate) unsafe fn release_spare(g: &Goroutine) {
    // SAFETY: per the contract, the copier owns the inner part for now.
    if let Some(gr) = unsafe { g.inner() }.growth.as_mut() {
        gr.truncate(&g.shared, gr.depth);
    }
}

/// Returns the segments of a goroutine that ended, or that shutdown `discarded` (the caller
/// owns its record). Sanitizer builds leak a discarded goroutine's segments in use with their
/// contents, as they do its window (`StackPool::leak`).
pub(crate) fn release(inner: &mut GInner, shared: &Shared, discarded: bool) {
    let Some(mut gr) = inner.growth.take() else {
        return;
    };
    #[cfg(feature = "sanitizer")]
    if discarded {
        for s in gr.segs.drain(..gr.depth) {
            shared.growth.held.fetch_sub(1, Ordering::Relaxed);
            shared.stacks.leak(s);
        }
        gr.depth = 0;
    }
    #[cfg(not(feature = "sanitizer"))]
    let _ = discarded;
    gr.truncate(shared, 0);
}

/// The segments in use of a goroutine, as `[low, top)` ranges (LeakSanitizer roots at a
/// process exit). The caller ensures nothing changes them meanwhile (the process is exiting
/// and only reads).
#[cfg(feature = "sanitizer")]
pub(crate) fn segments_in_use(inner: &GInner) -> Vec<(usize, usize)> {
    inner.growth.as_ref().map_or(Vec::new(), |gr| {
        gr.segs[..gr.depth]
            .iter()
            .map(|s| (s.top() - s.usable(), s.top()))
            .collect()
    })
}

/// For the overflow report: whether the running goroutine was refused growth (so the limit
/// it hit is the runtime's maximum, returned). Async-signal-safe: atomic loads only.
pub(crate) fn refused_limit_for_signal() -> Option<usize> {
    let g = super::current_g()?;
    // SAFETY: a running goroutine's record is alive while it runs.
    let g = unsafe { &*g };
    (g.stackguard() == 0).then(|| g.shared.max_stack.load(Ordering::Relaxed))
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// A check whose stack pointer is in neither the window nor the current segment (a
    /// coroutine of the user's own, driven by the goroutine) runs in place: no segment is
    /// taken, the guard is untouched, and growth from the goroutine's own stack still works.
    #[test]
    fn a_check_on_another_stack_runs_in_place() {
        crate::Builder::new().procs(1).run(|| {
            // SAFETY: the running goroutine's record outlives this closure.
            let g = unsafe { &*crate::sched::current_g().expect("a goroutine") };
            let guard = g.stackguard();
            for sp in [4096, usize::MAX - 4096] {
                assert!(matches!(enter(g, sp), Enter::Elsewhere));
            }
            assert_eq!(g.stackguard(), guard);
            assert_eq!(g.shared.growth.held.load(Ordering::Relaxed), 0);
            fn dive(n: u64) -> u64 {
                let pad = std::hint::black_box([n; 128]);
                if n == 0 {
                    return pad[0];
                }
                maybe_grow(|| dive(n - 1)) + pad[1]
            }
            let h = crate::spawn(|| dive(4096));
            assert_eq!(h.join(), (0..=4096).sum::<u64>());
        });
    }
}
