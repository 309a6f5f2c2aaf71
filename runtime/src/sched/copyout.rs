//! Copy-out of parked goroutines' stacks: the live part of a long-parked goroutine's window
//! goes to a right-sized heap buffer and the window's pages go back to the kernel; resuming
//! copies it back **to the same address** before switching in.
//!
//! # Why it is sound
//!
//! A goroutine's stack never moves (docs/stacks.md), and nothing outside a parked goroutine's
//! window reads or writes into it: wait-queue nodes (`Waiter`, `Sudog`, `Sel`, the poller's
//! words) live in heap memory, values move through them, and the network poller's buffers are
//! used only while their goroutine runs. Pointers from the heap into the window (a deferred
//! closure's borrow, a `Box` holding a reference to a local) stay valid because the bytes come
//! back to the same addresses before anything can follow them: only the goroutine itself
//! does, and it runs only after the copy-in.
//!
//! One exception is built in: while the M runs a parking goroutine's park function (right
//! after the switch, `sched::park`), that function lives on the goroutine's stack. The
//! goroutine counts its park episodes (`parks`, bumped before it switches out) and the M
//! records the episode whose park function has returned (`parked`); only a goroutine with
//! `parks == parked` is a candidate. A stale `parked` is always older than `parks`, so it can
//! only make a goroutine miss a pass.
//!
//! Any future API that lends a stack address to someone else while its goroutine is parked
//! (scoped spawns borrowing a parent's locals, an I/O buffer handed to the kernel, io_uring)
//! must pin the goroutine against copy-out: keep `parked != parks` for the lend, or add a pin
//! count checked below.
//!
//! # The protocol (an asymmetric Dekker pair, as `pslot`)
//!
//! ```text
//!   sysmon (the copier)                        the M about to resume the goroutine
//!   state = BUSY            (each candidate)   status = Running
//!   heavy_fence()  (membarrier: one per batch) light_fence()  (a compiler fence)
//!   status still Waiting, same episode?        state == RESIDENT?  -> resume (fast path)
//!     no  -> state = RESIDENT                    BUSY -> wait until it is not
//!     yes -> copy, release pages, state = OUT    OUT  -> copy back, state = RESIDENT, resume
//! ```
//!
//! Either the copier sees the M's `Running` (and leaves the goroutine alone), or the M's load
//! comes after the membarrier and sees `BUSY` or `OUT`. A goroutine readied while its copy-out
//! runs waits for it on the M that picks it up; batches are small (`BATCH`) so that wait is
//! short. Only the copier moves RESIDENT -> BUSY -> OUT / RESIDENT, only the resuming M moves
//! OUT -> RESIDENT, and shutdown's discard waits out a BUSY before it frees the buffer.
//!
//! # Policy
//!
//! - Only while at least [`MIN_GOROUTINES`] goroutines are alive: a small program keeps every
//!   stack resident and never pays a copy-in.
//! - sysmon visits the records in passes at most one per [`PASS_PERIOD`], [`CHUNK`] records a
//!   round. A goroutine is copied out when the previous pass saw it parked in the same episode
//!   (so it has been parked for about a pass period at least).
//! - What is copied: from the stack pointer the goroutine recorded when it parked
//!   (`coro::switch_out`), less what the switch itself writes below it (`coro::switch_depth`,
//!   measured once per process), up to the window's top. The whole window is
//!   released; adjacent windows go in one `madvise` call (guard pages made with
//!   `MADV_GUARD_INSTALL` survive `MADV_DONTNEED`; with `mprotect` guards each window is released
//!   on its own).
//! - Sanitizer builds never copy out (ASan would report the copy reading its stack redzones).

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::g::Status;
use super::pslot::{heavy_fence, light_fence};
use super::{GRef, Shared};
use crate::coro::stack::{self, PAGE};

/// Fewer live goroutines than this: no copy-out at all.
pub(crate) const MIN_GOROUTINES: usize = 10_000;
/// The shortest time between the starts of two passes, so about the least time a goroutine
/// stays parked before its stack is copied out.
pub(crate) const PASS_PERIOD: Duration = Duration::from_millis(100);
/// Records visited per sysmon round.
const CHUNK: usize = 16 * 1024;
/// Goroutines copied out per membarrier (and the most a resuming M can wait behind).
const BATCH: usize = 64;
const RESIDENT: u8 = 0;
const BUSY: u8 = 1;
const OUT: u8 = 2;

/// The copy-out state in a goroutine record.
pub(crate) struct StackOut {
    /// Park episodes begun: the goroutine bumps it in `park`, before it switches out.
    parks: AtomicU32,
    /// The last episode whose park function returned: stored by the M that ran it.
    parked: AtomicU32,
    /// RESIDENT, BUSY or OUT (module docs).
    state: AtomicU8,
    /// sysmon only: `parks + 1` of the episode the last pass saw parked (0: none).
    seen: AtomicU32,
    /// The window of the goroutine's stack: its top and usable size (0 before the goroutine
    /// first ran).
    top: AtomicUsize,
    usable: AtomicUsize,
    /// While OUT: the bytes of `[top - len, top)`. Written by the copier while BUSY, taken by
    /// the M that resumes the goroutine after it saw OUT (Acquire).
    saved: UnsafeCell<Option<Box<[u8]>>>,
}

impl StackOut {
    pub(crate) fn new() -> StackOut {
        StackOut {
            parks: AtomicU32::new(0),
            parked: AtomicU32::new(0),
            state: AtomicU8::new(RESIDENT),
            seen: AtomicU32::new(0),
            top: AtomicUsize::new(0),
            usable: AtomicUsize::new(0),
            saved: UnsafeCell::new(None),
        }
    }

    /// The goroutine, in `park` (after recording its stack pointer, `Goroutine::park_sp`):
    /// a new episode begins.
    #[inline(always)]
    pub(crate) fn begin_park(&self) {
        // Only the goroutine writes `parks`: a load and a store, no read-modify-write.
        let n = self.parks.load(Ordering::Relaxed).wrapping_add(1);
        self.parks.store(n, Ordering::Relaxed);
    }

    /// The M, after a goroutine switched out to park: the episode now running its park
    /// function (read before the function hands the record out).
    #[inline(always)]
    pub(crate) fn episode(&self) -> u32 {
        self.parks.load(Ordering::Relaxed)
    }

    /// The M, once the park function of episode `n` returned. The record may already be
    /// running elsewhere; a late store of an old episode only makes the goroutine wait a pass.
    #[inline(always)]
    pub(crate) fn park_done(&self, n: u32) {
        self.parked.store(n, Ordering::Relaxed);
    }

    /// The position of the goroutine's stack, when its coroutine is made.
    pub(crate) fn set_window(&self, top: usize, usable: usize) {
        self.top.store(top, Ordering::Relaxed);
        self.usable.store(usable, Ordering::Relaxed);
    }

    /// The M, after storing `Running` and before resuming: makes sure the stack is in place.
    #[inline(always)]
    pub(crate) fn ensure_resident(&self, shared: &Shared) {
        light_fence();
        if self.state.load(Ordering::Relaxed) != RESIDENT {
            self.restore(shared);
        }
    }

    /// Waits out a copy-out in progress, then copies a copied-out stack back.
    #[cold]
    #[inline(never)]
    fn restore(&self, shared: &Shared) {
        let backoff = crossbeam_utils::Backoff::new();
        loop {
            // Acquire: pairs with the copier's Release of OUT (the buffer and the released
            // pages) or RESIDENT (a reverted claim).
            match self.state.load(Ordering::Acquire) {
                BUSY => backoff.snooze(),
                OUT => break,
                _ => return,
            }
        }
        // SAFETY: OUT was published with the buffer in place; the copier is done with it, and
        // only the M resuming the goroutine (this one: it owns the record) takes it.
        let saved = unsafe { (*self.saved.get()).take() }.expect("a copied-out stack has bytes");
        let top = self.top.load(Ordering::Relaxed);
        // SAFETY: `[top - len, top)` lies in the goroutine's window (the copier took the bytes
        // from there), which is mapped read-write and which nothing else uses: the goroutine
        // is not running and this M owns it. The released pages fault back in as zeroes.
        unsafe {
            std::ptr::copy_nonoverlapping(
                saved.as_ptr(),
                (top - saved.len()) as *mut u8,
                saved.len(),
            )
        };
        shared.copyout.resident(saved.len());
        drop(saved);
        self.state.store(RESIDENT, Ordering::Relaxed);
    }

    /// Shutdown's discard: waits out a copy-out in progress and drops the bytes. The caller
    /// owns the (dead) record.
    pub(crate) fn discard(&self, shared: &Shared) {
        let backoff = crossbeam_utils::Backoff::new();
        while self.state.load(Ordering::Acquire) == BUSY {
            backoff.snooze();
        }
        // SAFETY: not BUSY, so the copier is not touching the buffer; the caller owns the
        // record.
        if let Some(b) = unsafe { (*self.saved.get()).take() } {
            shared.copyout.resident(b.len());
        }
        self.state.store(RESIDENT, Ordering::Relaxed);
    }
}

/// Counters of the runtime (`debug::sched_stats`).
#[derive(Default)]
pub(crate) struct CopyStats {
    /// Goroutines whose stack is out now, and the bytes their buffers hold.
    pub(crate) out_now: AtomicI64,
    pub(crate) bytes_now: AtomicI64,
    /// Copy-outs since the runtime started.
    pub(crate) total: AtomicU64,
}

impl CopyStats {
    fn out(&self, bytes: usize) {
        self.out_now.fetch_add(1, Ordering::Relaxed);
        self.bytes_now.fetch_add(bytes as i64, Ordering::Relaxed);
        self.total.fetch_add(1, Ordering::Relaxed);
    }

    fn resident(&self, bytes: usize) {
        self.out_now.fetch_sub(1, Ordering::Relaxed);
        self.bytes_now.fetch_sub(bytes as i64, Ordering::Relaxed);
    }
}

/// sysmon's position in the passes over `allgs`.
pub(crate) struct Scanner {
    cursor: usize,
    next_pass: Instant,
}

impl Scanner {
    pub(crate) fn new(now: Instant) -> Scanner {
        Scanner {
            cursor: 0,
            next_pass: now,
        }
    }
}

/// One sysmon round of copy-out; true while a pass is under way (sysmon then keeps its rounds
/// short instead of sleeping deeply).
pub(crate) fn round(shared: &Arc<Shared>, sc: &mut Scanner, now: Instant) -> bool {
    if !shared.config.copy_out {
        return false;
    }
    if sc.cursor == 0 {
        if now < sc.next_pass || shared.num_goroutine() < MIN_GOROUTINES {
            return false;
        }
        sc.next_pass = now + PASS_PERIOD;
    }
    let mut cands: Vec<(GRef, u32)> = Vec::new();
    {
        let all = shared.allgs.lock();
        let end = (sc.cursor + CHUNK).min(all.len());
        for g in &all[sc.cursor.min(end)..end] {
            let o = &g.out;
            let n = o.parks.load(Ordering::Relaxed);
            let parked = g.status() == Status::Waiting
                && o.parked.load(Ordering::Relaxed) == n
                && o.state.load(Ordering::Relaxed) == RESIDENT
                && o.top.load(Ordering::Relaxed) != 0;
            if !parked {
                o.seen.store(0, Ordering::Relaxed);
            } else if o.seen.load(Ordering::Relaxed) == n.wrapping_add(1) {
                cands.push((g.clone(), n));
            } else {
                o.seen.store(n.wrapping_add(1), Ordering::Relaxed);
            }
        }
        sc.cursor = if end >= all.len() { 0 } else { end };
    }
    for batch in cands.chunks(BATCH) {
        copy_out(shared, batch);
    }
    sc.cursor != 0
}

/// Copies out the stacks of `batch` (goroutines seen parked in episode `n`), module docs.
fn copy_out(shared: &Shared, batch: &[(GRef, u32)]) {
    for (g, _) in batch {
        g.out.state.store(BUSY, Ordering::Relaxed);
    }
    heavy_fence();
    let mut kept: Vec<&GRef> = Vec::with_capacity(batch.len());
    for (g, n) in batch {
        let o = &g.out;
        if g.status() == Status::Waiting
            && o.parks.load(Ordering::Relaxed) == *n
            && o.parked.load(Ordering::Relaxed) == *n
        {
            kept.push(g);
        } else {
            // Readied (or parking again) meanwhile: leave it.
            o.state.store(RESIDENT, Ordering::Release);
        }
    }
    let mut ranges: Vec<(usize, usize)> = Vec::with_capacity(kept.len());
    let depth = crate::coro::switch_depth();
    for g in &kept {
        let o = &g.out;
        let top = o.top.load(Ordering::Relaxed);
        let low = top - o.usable.load(Ordering::Relaxed);
        let sp = g.park_sp();
        let from = (sp.saturating_sub(depth).max(low)) & !15;
        let len = top - from;
        let mut buf = Vec::<u8>::with_capacity(len);
        // SAFETY: `[from, top)` lies in the goroutine's window, mapped read-write. The
        // goroutine is parked and, by the protocol above, no M resumes it and nothing else
        // touches its stack until we publish OUT. `buf` has room for `len` bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(from as *const u8, buf.as_mut_ptr(), len);
            buf.set_len(len);
        }
        // SAFETY: BUSY gives the copier the buffer slot (module docs).
        unsafe { *o.saved.get() = Some(buf.into_boxed_slice()) };
        ranges.push((low, top));
    }
    ranges.sort_unstable();
    let merge = stack::guards_survive_release();
    let mut i = 0;
    while i < ranges.len() {
        let (lo, mut hi) = ranges[i];
        i += 1;
        // The next window starts one guard page above this one's top.
        while merge && i < ranges.len() && ranges[i].0 == hi + PAGE {
            hi = ranges[i].1;
            i += 1;
        }
        // SAFETY: `[lo, hi)` covers windows of kept goroutines (and the guard pages between
        // adjacent ones): their bytes were just copied out, and nothing uses them until a
        // resuming M sees OUT and copies them back.
        unsafe { stack::release_pages(lo, hi) };
    }
    for g in &kept {
        let o = &g.out;
        // SAFETY: still BUSY: the slot is ours.
        let len = unsafe { (*o.saved.get()).as_ref().map_or(0, |b| b.len()) };
        shared.copyout.out(len);
        // Release: the buffer and the released pages before the resuming M's Acquire.
        o.state.store(OUT, Ordering::Release);
    }
}
