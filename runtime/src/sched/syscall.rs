//! Known blocking sections: `gort::blocking` (Go's `entersyscall` / `exitsyscall`, tokio's
//! `block_in_place`).
//!
//! 1. Enter: the M marks itself blocking (sysmon then retakes its P after 20 µs, without
//!    reading `/proc`, where a computing M keeps it for its slice, about 12 ms). If goroutines already wait on its P, or in the global queue, the M hands its P
//!    to another M at once (Go's `entersyscallblock`): they would otherwise wait for sysmon.
//! 2. The section runs on the M, with or without the P.
//! 3. Exit, fast path: the M still holds its P (nobody needed it): clear the mark, done. No
//!    atomic read-modify-write on either side: a round trip costs two plain stores and a
//!    thread-local read.
//! 4. Exit, slow path: the P was handed off. The goroutine runs on without a P until its
//!    next schedule point, where the M looks for an idle P (its old one first) or puts the
//!    goroutine on the global queue and sleeps (`m.rs`).

use std::sync::atomic::Ordering;

use super::ctx_ptr;
use super::pslot::Entered;

/// See `gort::blocking`.
pub(crate) fn blocking<R>(f: impl FnOnce() -> R) -> R {
    section(false, f)
}

/// `blocking` that hands the P on at once even if no goroutine waits for it: for a wait that
/// may last forever (a goroutine blocked while it unwinds, `park::block_current`), so that
/// the M is counted in `lost_p_running` from the start.
pub(crate) fn blocking_handoff<R>(f: impl FnOnce() -> R) -> R {
    section(true, f)
}

fn section<R>(force: bool, f: impl FnOnce() -> R) -> R {
    let ctx = ctx_ptr();
    // SAFETY: see `current_g`.
    if ctx.is_null() || unsafe { (*ctx).curg.get().is_null() } {
        return f(); // a plain thread (or an M's own stack): nothing to hand off
    }
    // SAFETY: as above; the M context lives as long as the M's schedule loop below us.
    let ctx = unsafe { &*ctx };
    let m = &ctx.m;
    let shared = &ctx.shared;
    m.in_blocking.store(true, Ordering::Relaxed);
    // A racy look at the shared half (no entry into the runtime): a goroutine queued just
    // after it is sysmon's to notice.
    let waiting = force || shared.procs[ctx.timer_p()].runq_len() > 0 || !shared.global.is_empty();
    if waiting && m.slot.enter() == Entered::Held {
        // Step 1's hand-off. Counted before the P leaves (see `sysmon::retake`).
        shared.lost_p_running.fetch_add(1, Ordering::SeqCst);
        let core = ctx.remove_p();
        m.slot.leave();
        super::idle::handoff_p(shared, core);
    } else if waiting {
        m.slot.leave();
    }
    /// Clears the mark also when `f` panics.
    struct Unmark<'a>(&'a super::m::Machine);
    impl Drop for Unmark<'_> {
        fn drop(&mut self) {
            self.0.in_blocking.store(false, Ordering::Relaxed);
        }
    }
    let _unmark = Unmark(m);
    f()
}
