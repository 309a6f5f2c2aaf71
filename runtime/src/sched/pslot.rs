//! How an M holds its P while sysmon may take it away: the hand-off protocol.
//!
//! # The problem
//!
//! A goroutine that blocks its thread in a call gort cannot see (a file read, `thread::sleep`,
//! a std lock) or computes for a long time keeps its M, and the M keeps its P: the other
//! goroutines of that P wait. sysmon must be able to take the P away and give it to another M
//! *while the first M runs user code*, and that M may return into the runtime at any moment
//! and touch its P (put a readied goroutine in its run queue, spawn, take a dead record from
//! its cache). Exactly one M may touch a P's owned half (`PCore`) at a time.
//!
//! Go makes the M mark the P (`_Psyscall`) before a system call and compare-and-swap it back
//! afterwards; sysmon compare-and-swaps it away. gort cannot mark unmarked blocking calls,
//! and an atomic read-modify-write every time a goroutine switches or readies another would
//! cost a few percent of every channel hand-off.
//!
//! # The protocol (an asymmetric Dekker pair)
//!
//! The M announces that it is in runtime code with a plain store (`busy` made odd), then reads
//! the slot's `state`. sysmon announces a claim with a compare-and-swap (`OWNED -> CLAIMING`),
//! then runs a process-wide memory barrier (`membarrier(2)`, which makes every running thread
//! of the process execute a full fence), then reads `busy`:
//!
//! ```text
//!  M (entering runtime code)        sysmon (retake)
//!  busy = odd                       CAS state OWNED -> CLAIMING
//!  compiler fence                   membarrier()            <- the expensive side
//!  s = state                        if busy odd: state = OWNED (revoke)
//!  OWNED: use the P                 else:    take the core; state = TAKEN
//!  CLAIMING: wait for sysmon
//!  TAKEN: the P is gone
//! ```
//!
//! The barrier runs on the M's CPU after sysmon's CAS. If the M read `state` before it, its
//! `busy` store (earlier in program order) was drained by the barrier and sysmon sees it and
//! revokes; if the M read `state` after it, it sees the claim and waits for the outcome. So
//! sysmon takes the core only from an M that is running user code and will see `TAKEN` the
//! next time it enters. The M's side costs two plain stores, a load and a compiler fence;
//! the barrier costs a few microseconds, once per retake.
//!
//! Without `membarrier` (Linux before 4.14, or refused), both sides use SeqCst fences
//! (`FENCE_MODE`), which costs the M a locked instruction per entry; loom models that form.
//!
//! Invariants:
//! - `core` is touched only by the M whose slot it is while `state == OWNED` and it has
//!   announced `busy` and checked `state` (scheduler code between goroutine runs, or a
//!   goroutine's runtime call), or by sysmon between its claim and `TAKEN`, or by the M while
//!   the slot is `EMPTY` (installing a P);
//! - once the M's check in an entry saw `OWNED`, the P stays this M's until `busy` is made
//!   even: any later claim is followed by a barrier that makes `busy` visible, so it is
//!   revoked;
//! - only the M moves `TAKEN` to `EMPTY` (acknowledging the loss), and only the M installs.
//!
//! `busy` counts entries and exits (odd: in runtime code, even: in user code; only the M
//! writes it), so that it also tells sysmon whether an M has stayed in user code since sysmon
//! last looked: an even value that has not changed. That costs the M nothing beyond the two
//! stores the protocol needs anyway.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU8 as StdAtomicU8, Ordering};

use crate::loom::{fence, AtomicU32, AtomicU8};

const EMPTY: u8 = 0;
const OWNED: u8 = 1;
const CLAIMING: u8 = 2;
const TAKEN: u8 = 3;

/// One M's hold on a P (or on nothing). Generic over the held value for the loom model.
pub(crate) struct PSlot<T> {
    core: UnsafeCell<Option<Box<T>>>,
    state: AtomicU8,
    busy: AtomicU32,
}

// SAFETY: `core` is accessed by one party at a time, as the module's invariants state; the
// held value moves between threads (the M, sysmon, the next M), hence `T: Send`.
unsafe impl<T: Send> Sync for PSlot<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for PSlot<T> {}

/// What an M's entry into runtime code found.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[must_use]
pub(crate) enum Entered {
    /// The M holds its P until it leaves.
    Held,
    /// The M holds no P (it never had one, or sysmon took it: the loss is acknowledged).
    NoP,
}

impl<T> PSlot<T> {
    pub(crate) fn new() -> PSlot<T> {
        PSlot {
            core: UnsafeCell::new(None),
            state: AtomicU8::new(EMPTY),
            busy: AtomicU32::new(1),
        }
    }

    /// The M enters runtime code: announces it, then reads whether it still holds its P.
    /// Must be paired with `leave` before user code runs again (or before the M sleeps: a
    /// slot without a P may stay busy).
    #[inline]
    pub(crate) fn enter(&self) -> Entered {
        // Only this M writes `busy`: a plain read of its own last store.
        let n = self.busy.load(Ordering::Relaxed);
        if n & 1 == 0 {
            self.busy.store(n + 1, Ordering::Relaxed);
        }
        light_fence();
        loop {
            match self.state.load(Ordering::Acquire) {
                OWNED => return Entered::Held,
                EMPTY => return Entered::NoP,
                TAKEN => {
                    // Acknowledge: sysmon has the core; the slot is ours to refill.
                    self.state.store(EMPTY, Ordering::Relaxed);
                    return Entered::NoP;
                }
                _ => spin(), // CLAIMING: sysmon decides within microseconds
            }
        }
    }

    /// The M goes back to user code (a goroutine resumes, or a runtime call returns).
    #[inline]
    pub(crate) fn leave(&self) {
        // Release: pairs with sysmon's Acquire load of `busy`, publishing the M's writes to
        // the core to whoever takes it next.
        let n = self.busy.load(Ordering::Relaxed);
        self.busy.store((n | 1) + 1, Ordering::Release);
    }

    /// The held core.
    ///
    /// # Safety
    /// The caller is this slot's M, between an `enter` that returned `Held` and the matching
    /// `leave`, and holds no other reference from this method.
    #[inline]
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn core(&self) -> &mut T {
        // SAFETY: per the contract and the module's invariants, nobody else touches `core`.
        match unsafe { &mut *self.core.get() } {
            Some(c) => c,
            None => crate::panic::throw("pslot: a held slot has no core"),
        }
    }

    /// The M installs a P it took from the idle list or was handed. Call between `enter` and
    /// `leave`, with no P held.
    pub(crate) fn install(&self, core: Box<T>) {
        if self.state.load(Ordering::Acquire) != EMPTY {
            crate::panic::throw("pslot: install over a held P");
        }
        // SAFETY: the slot is EMPTY: sysmon claims only OWNED slots, so only this M touches
        // `core` now.
        unsafe { *self.core.get() = Some(core) };
        // Release: a later claimer sees the installed core.
        self.state.store(OWNED, Ordering::Release);
    }

    /// The M gives its P up (to the idle list, or at exit). Call between `enter` (`Held`)
    /// and `leave`.
    pub(crate) fn remove(&self) -> Box<T> {
        loop {
            // A compare-and-swap: a claim may be pending (and will be revoked, we are busy).
            match self
                .state
                .compare_exchange(OWNED, EMPTY, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break,
                Err(CLAIMING) => spin(),
                Err(_) => crate::panic::throw("pslot: remove without a P"),
            }
        }
        // SAFETY: the slot is EMPTY now and was ours: nobody else touches `core`.
        match unsafe { (*self.core.get()).take() } {
            Some(c) => c,
            None => crate::panic::throw("pslot: a held slot has no core"),
        }
    }

    /// sysmon: takes the P from an M that is running user code, if it is (module docs).
    pub(crate) fn try_take(&self) -> Option<Box<T>> {
        // AcqRel: Acquire pairs with `install`'s Release (the core is visible).
        if self
            .state
            .compare_exchange(OWNED, CLAIMING, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return None;
        }
        heavy_fence();
        // Acquire: pairs with `leave`'s Release.
        if self.busy.load(Ordering::Acquire) & 1 == 1 {
            self.state.store(OWNED, Ordering::Release);
            return None;
        }
        // SAFETY: CLAIMING with the M in user code: the M will wait for our verdict before it
        // touches `core`, so it is ours.
        let core = unsafe { (*self.core.get()).take() };
        // Release: the M that acknowledges TAKEN sees the emptied `core`.
        self.state.store(TAKEN, Ordering::Release);
        core
    }

    /// Whether the slot holds a P (a racy hint, for statistics and sysmon's time slices).
    pub(crate) fn holds(&self) -> bool {
        matches!(self.state.load(Ordering::Relaxed), OWNED | CLAIMING)
    }

    /// Shutdown: whether the slot's M holds no P and is running user code (a racy hint).
    pub(crate) fn idle_user_code(&self) -> bool {
        self.state.load(Ordering::Relaxed) != OWNED && self.busy.load(Ordering::Relaxed) & 1 == 0
    }

    /// sysmon: whether the slot's M holds a P and is running user code (a racy hint).
    pub(crate) fn in_user_code(&self) -> bool {
        self.state.load(Ordering::Relaxed) == OWNED && self.busy.load(Ordering::Relaxed) & 1 == 0
    }

    /// sysmon: the M's entry count (odd: in runtime code). Unchanged and even between two
    /// looks: the M stayed in user code all along.
    pub(crate) fn entries(&self) -> u32 {
        self.busy.load(Ordering::Relaxed)
    }
}

/// Waits a moment for sysmon's verdict on a claim (loom: lets the model run sysmon).
#[inline]
fn spin() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::hint::spin_loop();
}

// ---------------------------------------------------------------------------------------------
// Fences

const FENCE_UNKNOWN: u8 = 0;
const FENCE_MEMBARRIER: u8 = 1;
const FENCE_SEQCST: u8 = 2;

/// How the two sides fence in this process, decided once (`init`).
static FENCE_MODE: StdAtomicU8 = StdAtomicU8::new(FENCE_UNKNOWN);

const MEMBARRIER_CMD_PRIVATE_EXPEDITED: libc::c_int = 1 << 3;
const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_int = 1 << 4;

/// Registers the process for expedited private membarriers, once; falls back to fences.
pub(crate) fn init() {
    if FENCE_MODE.load(Ordering::Acquire) != FENCE_UNKNOWN {
        return;
    }
    let mode = if cfg!(loom) {
        FENCE_SEQCST
    } else {
        // SAFETY: membarrier registration takes no pointers.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_membarrier,
                MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED,
                0,
                0,
            )
        };
        if rc == 0 {
            FENCE_MEMBARRIER
        } else {
            FENCE_SEQCST
        }
    };
    FENCE_MODE.store(mode, Ordering::Release);
}

/// The M's side: a compiler fence, or a real one without membarrier.
#[inline(always)]
pub(crate) fn light_fence() {
    if FENCE_MODE.load(Ordering::Relaxed) == FENCE_MEMBARRIER {
        std::sync::atomic::compiler_fence(Ordering::SeqCst);
    } else {
        fence(Ordering::SeqCst);
    }
}

/// sysmon's side: every running thread of the process executes a full fence.
pub(crate) fn heavy_fence() {
    if FENCE_MODE.load(Ordering::Relaxed) == FENCE_MEMBARRIER {
        // SAFETY: membarrier takes no pointers; the process registered in `init`.
        let rc =
            unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) };
        if rc == 0 {
            return;
        }
        crate::panic::throw("membarrier failed after registration");
    }
    fence(Ordering::SeqCst);
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! The hand-off between an M that keeps entering and leaving runtime code (touching its
    //! P each time it holds it) and sysmon trying to take the P and touch it. loom's
    //! `UnsafeCell` reports any interleaving in which both touch the core at once; at most one
    //! of them may end up with it. (loom has no membarrier: both sides use SeqCst fences,
    //! the protocol's fallback form.)
    use super::*;
    use loom::cell::UnsafeCell as Cell;
    use loom::sync::Arc;

    #[test]
    fn loom_retake_never_races_the_ms_return() {
        loom::model(|| {
            init();
            let slot = Arc::new(PSlot::<Cell<u32>>::new());
            assert_eq!(slot.enter(), Entered::NoP);
            slot.install(Box::new(Cell::new(0)));
            slot.leave();
            let s = slot.clone();
            let sysmon = loom::thread::spawn(move || {
                let core = s.try_take();
                if let Some(c) = &core {
                    c.with_mut(|v| unsafe { *v += 100 });
                }
                core.is_some()
            });
            // The M returns from user code twice (a runtime call, then a switch), touching
            // its P whenever it still holds it.
            let mut touched = 0;
            for _ in 0..2 {
                if slot.enter() == Entered::Held {
                    // SAFETY: entered with the P held (the protocol under test).
                    unsafe { slot.core() }.with_mut(|v| unsafe { *v += 1 });
                    touched += 1;
                }
                slot.leave();
            }
            let taken = sysmon.join().unwrap();
            if taken {
                // Once taken, the M saw its loss at its next entry at the latest.
                assert!(touched <= 2);
                assert_eq!(slot.enter(), Entered::NoP);
            } else {
                assert_eq!(touched, 2);
                assert_eq!(slot.enter(), Entered::Held);
            }
        });
    }

    /// `gort::blocking` hands its P off itself (`remove`) while sysmon tries to retake it:
    /// exactly one of them ends up with the core, and the M's removal never sees a half-made
    /// claim (it waits the claim out, which is then revoked).
    #[test]
    fn loom_self_hand_off_races_a_retake() {
        loom::model(|| {
            init();
            let slot = Arc::new(PSlot::<Cell<u32>>::new());
            assert_eq!(slot.enter(), Entered::NoP);
            slot.install(Box::new(Cell::new(0)));
            slot.leave();
            let s = slot.clone();
            let sysmon = loom::thread::spawn(move || s.try_take());
            let mine = if slot.enter() == Entered::Held {
                Some(slot.remove())
            } else {
                None
            };
            slot.leave();
            let theirs = sysmon.join().unwrap();
            assert!(
                mine.is_some() != theirs.is_some(),
                "exactly one owner: M {} sysmon {}",
                mine.is_some(),
                theirs.is_some()
            );
            for c in mine.iter().chain(theirs.iter()) {
                c.with_mut(|v| unsafe { *v += 1 });
            }
        });
    }
}
