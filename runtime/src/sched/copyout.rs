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
//! short. Only a copier moves RESIDENT -> BUSY -> OUT / RESIDENT (sysmon, or an M relieving
//! map pressure: one at a time, under `Copier::lock`, and each claims only records it sees
//! RESIDENT under that lock), only the record's owner moves OUT -> RESIDENT (the resuming M,
//! or shutdown's discard, both through `StackOut::put_back`), and shutdown's discard waits out
//! a BUSY before it frees the buffer.
//!
//! # Policy
//!
//! - On by default; `Builder::copy_out_parked(false)` turns it off (a program whose
//!   goroutines wake several times a second keeps them resident anyway: they are never parked
//!   across two passes).
//! - Only while at least [`MIN_GOROUTINES`] goroutines are alive: a small program keeps every
//!   stack resident and never pays a copy-in.
//! - Copies only in rounds where no goroutine waits in a run queue: while the Ps are
//!   saturated the work (copies, `madvise` and its TLB shootdowns, a membarrier per batch)
//!   would take CPU from goroutines. Busy rounds still look and mark, at sysmon's own pace,
//!   and the next quiet pass copies what they saw. A program that keeps goroutines queued all
//!   the time never copies out.
//! - sysmon visits the records in passes at most one per [`PASS_PERIOD`] (1 s), [`CHUNK`]
//!   records a round, without holding the `allgs` lock while it looks. A goroutine is copied
//!   out when the previous pass saw it parked in the same episode, so it has been parked for
//!   about a second at least. What a pass finds is copied after it, sorted by window address,
//!   [`COPIES_PER_ROUND`] a round: runs of adjacent windows are released in one call each.
//! - The guard pages of copied-out windows are removed too (one `process_madvise` a batch) and
//!   put back by the resuming M: a guard marker is a page-table entry, and without them the
//!   kernel frees the windows' page-table pages with their pages (`CONFIG_PT_RECLAIM`, for
//!   2 MiB ranges a release covers whole) — about 512 bytes a parked goroutine.
//! - What is copied: from the stack pointer the goroutine recorded when it parked
//!   (`coro::switch_out`), less what the switch itself writes below it (`coro::switch_depth`,
//!   measured once per process), up to the window's top. The whole window is
//!   released (`stack::release_windows`); adjacent windows go in one call (guard markers
//!   survive `MADV_DONTNEED`; with `mprotect` guards one fresh `PROT_NONE` mapping covers the
//!   run and the guards between).
//! - Under map pressure (kernels before 6.13, whose guard pages cost memory maps:
//!   docs/stacks.md, "The map budget") the M that needs a window copies out a batch of
//!   parked goroutines at once, whatever their age and however few goroutines live
//!   (`with_budget`, `relieve`); the copied-out windows become `PROT_NONE` and give back
//!   their budget, and the resuming M commits the window again before the copy-in.
//! - A goroutine copied out gives back its spare growth segment (`grow::release_spare`): the
//!   pages a past deep recursion left in it are not kept for a goroutine that sleeps.
//! - Sanitizer builds never copy out (ASan would report the copy reading its stack redzones).

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::g::Status;
use super::pslot::{heavy_fence, light_fence};
use super::{GRef, Goroutine, Shared};
use crate::coro::stack::{self, Refused, PAGE};

/// Fewer live goroutines than this: no copy-out at all.
pub(crate) const MIN_GOROUTINES: usize = 10_000;
/// The shortest time between the starts of two passes, so about the least time a goroutine
/// stays parked before its stack is copied out. Long enough that goroutines which wake a few
/// times a second (tickers, busy connections, the inner nodes of a fan-out tree) are left
/// alone: each copy-out and copy-in costs a page fault and two copies.
pub(crate) const PASS_PERIOD: Duration = Duration::from_secs(1);
/// Records visited per sysmon round.
const CHUNK: usize = 8 * 1024;
/// Goroutines copied out per membarrier (and the most a resuming M can wait behind).
const BATCH: usize = 256;
const RESIDENT: u8 = 0;
const BUSY: u8 = 1;
/// The bytes are in `saved` and the window was released (`stack::release_windows`): the
/// resuming M commits it again (`stack::commit`: its guard marker back, or read-write again
/// and a budget unit on old kernels) before it copies the bytes back.
const OUT: u8 = 2;

/// The copy-out state in a goroutine record (40 bytes).
pub(crate) struct StackOut {
    /// Park episodes begun: the goroutine bumps it in `park`, before it switches out.
    parks: AtomicU32,
    /// The last episode whose park function returned: stored by the M that ran it.
    parked: AtomicU32,
    /// sysmon only: `parks + 1` of the episode the last pass saw parked (0: none).
    seen: AtomicU32,
    /// RESIDENT, BUSY or OUT (module docs).
    state: AtomicU8,
    /// The goroutine's stack pointer right before it switched out to park
    /// (`coro::switch_out`): where the waker prefetches and where the copy starts.
    pub(crate) sp: AtomicUsize,
    /// The goroutine's window, packed: `top / PAGE << 20 | usable / PAGE` (0 before the
    /// goroutine first ran; usable sizes are at most 1 GiB, 2^18 pages).
    window: AtomicU64,
    /// While OUT: the bytes of `copy_range()`, in a heap block of exactly that length.
    /// Written by the copier while BUSY, taken by the M that resumes the goroutine after it
    /// saw OUT (Acquire).
    saved: UnsafeCell<*mut u8>,
}

impl StackOut {
    pub(crate) fn new() -> StackOut {
        StackOut {
            parks: AtomicU32::new(0),
            parked: AtomicU32::new(0),
            seen: AtomicU32::new(0),
            state: AtomicU8::new(RESIDENT),
            sp: AtomicUsize::new(0),
            window: AtomicU64::new(0),
            saved: UnsafeCell::new(std::ptr::null_mut()),
        }
    }

    /// The window `[low, top)`, if the goroutine ever ran.
    pub(crate) fn window(&self) -> Option<(usize, usize)> {
        let w = self.window.load(Ordering::Relaxed) as usize;
        let top = (w >> 20) * PAGE;
        (top != 0).then(|| (top - (w & ((1 << 20) - 1)) * PAGE, top))
    }

    /// Whether the goroutine parked on its window, not on a growth segment (`sched::grow`):
    /// only then is `copy_range` all of its live stack. One parked on a segment stays
    /// resident.
    fn parked_on_window(&self) -> bool {
        let sp = self.sp.load(Ordering::Relaxed);
        self.window()
            .is_some_and(|(low, top)| sp > low && sp <= top)
    }

    /// What a copy-out saves: from the recorded stack pointer, less what the switch wrote
    /// below it, to the window's top. The same while the goroutine stays parked.
    fn copy_range(&self) -> (usize, usize) {
        let (low, top) = self.window().expect("a parked goroutine has a window");
        let sp = self.sp.load(Ordering::Relaxed);
        let from = (sp.saturating_sub(crate::coro::switch_depth()).max(low)) & !15;
        (from, top)
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
        debug_assert!(top % PAGE == 0 && usable % PAGE == 0 && usable / PAGE < 1 << 20);
        let w = ((top / PAGE) << 20) | (usable / PAGE);
        self.window.store(w as u64, Ordering::Relaxed);
    }

    /// The M, after storing `Running` and before resuming: makes sure the stack is in place.
    /// False if its window cannot be committed now (map pressure on an old kernel, nothing
    /// to release): the stack stays out, and the M runs other goroutines first
    /// (`Copier::stalled`).
    #[inline(always)]
    pub(crate) fn ensure_resident(&self, shared: &Shared) -> bool {
        light_fence();
        if self.state.load(Ordering::Relaxed) != RESIDENT {
            return self.restore(shared);
        }
        true
    }

    /// Waits out a copy-out in progress, then copies a copied-out stack back.
    #[cold]
    #[inline(never)]
    fn restore(&self, shared: &Shared) -> bool {
        self.put_back(shared, true).is_ok()
    }

    /// Shutdown's discard: waits out a copy-out in progress and drops the bytes. The caller
    /// owns the (dead) record. Returns whether the window is left released (the caller marks
    /// the stack so, `GStack::set_released`).
    pub(crate) fn discard(&self, shared: &Shared) -> bool {
        self.put_back(shared, false)
            .expect("a discard commits nothing, so the budget cannot refuse it")
    }

    /// Waits while BUSY; then, if the stack is out and `copy`, commits the window again (the
    /// goroutine runs on it next) and copies the bytes back; frees the buffer either way, and
    /// marks the stack RESIDENT. Returns whether the window stays released (out, not copied
    /// back), or `Err` if the map budget refused the commit: then nothing changed. The caller
    /// owns the record (the M resuming it, or shutdown).
    fn put_back(&self, shared: &Shared, copy: bool) -> Result<bool, ()> {
        let backoff = crossbeam_utils::Backoff::new();
        // Acquire: pairs with the copier's Release of OUT (the buffer and the released pages)
        // or RESIDENT (a reverted claim).
        let st = loop {
            match self.state.load(Ordering::Acquire) {
                BUSY => backoff.snooze(),
                st => break st,
            }
        };
        if st == RESIDENT {
            return Ok(false);
        }
        let (low, top) = self.window().expect("a copied-out goroutine has a window");
        if copy {
            // Under map pressure (old kernels) this copies out other parked goroutines first.
            match with_budget(shared, Duration::ZERO, || stack::commit(low, top - low)) {
                Ok(()) => {}
                Err(Refused::Budget) => return Err(()),
                Err(Refused::Os(e)) => crate::panic::throw(&format!(
                    "cannot map a {}-byte goroutine stack to resume a goroutine: {e}",
                    top - low
                )),
            }
        }
        let (from, top) = self.copy_range();
        // SAFETY: OUT was published with the buffer in place and the copier is done with it;
        // only the record's owner (the caller) takes it. The buffer holds `top - from` bytes
        // (the range cannot change while the goroutine is parked), and when `copy` is set
        // `[from, top)` lies in the goroutine's window, committed just above and used by
        // nothing else. The released pages fault back in as zeroes.
        unsafe {
            let saved = std::mem::replace(&mut *self.saved.get(), std::ptr::null_mut());
            if copy {
                std::ptr::copy_nonoverlapping(saved, from as *mut u8, top - from);
            }
            free_bytes(saved, top - from);
        }
        shared.copyout.resident(top - from);
        self.state.store(RESIDENT, Ordering::Relaxed);
        Ok(!copy)
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
    /// Bytes of copies freed (copied back, or discarded) since the heap was last trimmed
    /// (`trim_heap`).
    freed: AtomicU64,
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
        self.freed.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

/// Freed copies worth trimming the heap for.
const TRIM_AFTER: u64 = 32 << 20;

/// sysmon, once a scavenger period: if many stack copies were freed since the last time, asks
/// glibc's allocator to return the free pages inside its heaps (`malloc_trim`). The copies are
/// small blocks (a few hundred bytes) spread through the heap, and glibc gives back only the
/// top of a heap by itself: after a million copied-out goroutines resumed and ended, about
/// 300 MiB of freed copies stayed resident. Other allocators return memory by their own
/// rules (the call then trims only glibc's own small heap).
pub(crate) fn trim_heap(shared: &Shared) {
    if shared.copyout.freed.load(Ordering::Relaxed) < TRIM_AFTER {
        return;
    }
    shared.copyout.freed.store(0, Ordering::Relaxed);
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim has no preconditions; it only takes glibc's arena locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// sysmon's position in the passes over `allgs`, and what the last pass found.
pub(crate) struct Scanner {
    cursor: usize,
    next_pass: Instant,
    /// Goroutines a pass found parked in the same episode as the pass before (and that
    /// episode): copied after the pass, in window order, so that runs of adjacent windows go
    /// back to the kernel in one call each, whole page-table pages included.
    pending: Vec<(*const Goroutine, u32)>,
    /// How far `pending` has been copied (it is sorted once the pass is over).
    done: usize,
}

impl Scanner {
    pub(crate) fn new(now: Instant) -> Scanner {
        Scanner {
            cursor: 0,
            next_pass: now,
            pending: Vec::new(),
            done: 0,
        }
    }
}

/// Copies per round while draining `pending` (16 batches).
const COPIES_PER_ROUND: usize = 16 * BATCH;

/// One sysmon round of copy-out; true while there is more to do soon (sysmon then keeps its
/// rounds short instead of sleeping deeply).
pub(crate) fn round(shared: &Arc<Shared>, sc: &mut Scanner, now: Instant) -> bool {
    if !shared.config.copy_out {
        return false;
    }
    // Goroutines wait to run: the Ps are saturated, and copying would take CPU from them. The
    // pass still looks (marking who is parked), at sysmon's own pace; the stacks go out in the
    // next quiet rounds.
    let busy = !shared.global.is_empty() || shared.procs.iter().any(|p| p.runq_len() > 0);
    if sc.cursor == 0 && !sc.pending.is_empty() {
        // The last pass is over: copy what it found, a share a round.
        if busy {
            return false;
        }
        let end = (sc.done + COPIES_PER_ROUND).min(sc.pending.len());
        for batch in sc.pending[sc.done..end].chunks(BATCH) {
            // SAFETY: records are never freed while their runtime runs (`allgs` keeps them
            // until shutdown, which joins sysmon first).
            let batch: Vec<(&Goroutine, u32)> =
                batch.iter().map(|&(g, n)| (unsafe { &*g }, n)).collect();
            copy_out(shared, &batch);
        }
        sc.done = end;
        if end == sc.pending.len() {
            sc.pending = Vec::new(); // its memory too (16 bytes a goroutine)
            sc.done = 0;
        }
        return true;
    }
    if sc.cursor == 0 {
        if now < sc.next_pass || shared.num_goroutine() < MIN_GOROUTINES {
            return false;
        }
        sc.next_pass = now + PASS_PERIOD;
    }
    // The chunk's record addresses, copied under the lock (a plain copy: no reference counts
    // touched), then looked at without it, so spawning (`new_g`) never waits for the scan.
    let chunk: Vec<*const Goroutine> = {
        let all = shared.allgs.lock();
        let end = (sc.cursor + CHUNK).min(all.len());
        let chunk = all[sc.cursor.min(end)..end]
            .iter()
            .map(GRef::as_ptr)
            .collect();
        sc.cursor = if end >= all.len() { 0 } else { end };
        chunk
    };
    for &rec in &chunk {
        // SAFETY: as above.
        let g = unsafe { &*rec };
        let o = &g.out;
        match candidate(g) {
            None => o.seen.store(0, Ordering::Relaxed),
            Some(n) if o.seen.load(Ordering::Relaxed) == n.wrapping_add(1) => {
                sc.pending.push((rec, n))
            }
            Some(n) => o.seen.store(n.wrapping_add(1), Ordering::Relaxed),
        }
    }
    if sc.cursor == 0 {
        // Pass over: window order (a window is set once a goroutine first ran; it cannot
        // change while the record lives on, except by the record's reuse, which `copy_out`'s
        // checks catch).
        // SAFETY: as above.
        sc.pending
            .sort_unstable_by_key(|&(g, _)| unsafe { &*g }.out.window().map_or(0, |w| w.0));
    }
    !busy && (sc.cursor != 0 || !sc.pending.is_empty())
}

/// The park episode `g` is in, if it is a copy-out candidate now: parked, its park function
/// returned, its stack resident and parked on its window (not a growth segment).
fn candidate(g: &Goroutine) -> Option<u32> {
    let o = &g.out;
    let n = o.parks.load(Ordering::Relaxed);
    (g.status() == Status::Waiting
        && o.parked.load(Ordering::Relaxed) == n
        && o.state.load(Ordering::Relaxed) == RESIDENT
        && o.parked_on_window())
    .then_some(n)
}

/// Copies out the stacks of `batch` (goroutines seen parked in episode `n`), module docs;
/// returns how many it copied.
fn copy_out(shared: &Shared, batch: &[(&Goroutine, u32)]) -> usize {
    // One copier at a time (sysmon's passes, an M relieving map pressure): only a copier moves
    // RESIDENT -> BUSY, so under this lock a goroutine seen RESIDENT stays so until claimed.
    let _copier = shared.copier.lock.lock();
    // Claimed one by one: a record listed twice finds itself BUSY the second time.
    let mut claimed: Vec<&(&Goroutine, u32)> = Vec::with_capacity(batch.len());
    for entry in batch {
        let o = &entry.0.out;
        if o.state.load(Ordering::Relaxed) == RESIDENT {
            o.state.store(BUSY, Ordering::Relaxed);
            claimed.push(entry);
        }
    }
    let batch = claimed;
    heavy_fence();
    let mut kept: Vec<&Goroutine> = Vec::with_capacity(batch.len());
    for (g, n) in batch {
        let o = &g.out;
        if g.status() == Status::Waiting
            && o.parks.load(Ordering::Relaxed) == *n
            && o.parked.load(Ordering::Relaxed) == *n
            && o.parked_on_window()
        {
            kept.push(g);
        } else {
            // Readied (or parking again) meanwhile: leave it.
            o.state.store(RESIDENT, Ordering::Release);
        }
    }
    let mut ranges: Vec<(usize, usize)> = Vec::with_capacity(kept.len());
    for g in &kept {
        let o = &g.out;
        let (low, top) = o.window().expect("a candidate has a window");
        let (from, _) = o.copy_range();
        let len = top - from;
        let buf = alloc_bytes(len);
        // SAFETY: `[from, top)` lies in the goroutine's window, mapped read-write. The
        // goroutine is parked and, by the protocol above, no M resumes it and nothing else
        // touches its stack until we publish OUT. `buf` has room for `len` bytes. BUSY gives
        // the copier the buffer slot (module docs).
        unsafe {
            std::ptr::copy_nonoverlapping(from as *const u8, buf, len);
            *o.saved.get() = buf;
        }
        shared.copyout.out(len);
        ranges.push((low, top));
        // SAFETY: we hold the goroutine BUSY and publish OUT (Release) below, before any M
        // can resume it (`grow::release_spare`).
        unsafe { super::grow::release_spare(g) };
    }
    // SAFETY: the ranges are the windows of kept goroutines, committed (they ran on them)
    // and held BUSY: their bytes were just copied out, and nothing uses them until a resuming
    // M sees OUT, commits the window again and copies them back. Without their guard markers
    // the windows' page-table pages empty out and the kernel frees them with the pages (about
    // 512 bytes a goroutine otherwise); on old kernels the windows become `PROT_NONE` and
    // give their map budget back.
    unsafe { stack::release_windows(&mut ranges) };
    for g in &kept {
        // Release: the buffer and the released pages before the resuming M's Acquire.
        g.out.state.store(OUT, Ordering::Release);
    }
    kept.len()
}

// ---------------------------------------------------------------------------------------------
// Map pressure (kernels before 6.13)

/// The copiers' lock, the relief's position in `allgs`, and how long the map budget has
/// refused everyone (`Shared::copier`).
#[derive(Default)]
pub(crate) struct Copier {
    /// Held for the whole of a `copy_out` (module docs, "The protocol").
    lock: parking_lot::Mutex<()>,
    /// Where the next relief scan starts: the scans go round `allgs` like a clock hand, so
    /// successive reliefs take different goroutines, those parked longest first in the common
    /// case of records made in spawn order.
    cursor: AtomicUsize,
    /// Since when (ns after the runtime's epoch, 0: not) every goroutine that needed a window
    /// was turned away, the map budget full and nothing to release (`stalled`).
    stalled_since: AtomicU64,
}

impl Copier {
    /// A goroutine got a window: the budget moves again.
    #[inline]
    pub(crate) fn progress(&self) {
        if self.stalled_since.load(Ordering::Relaxed) != 0 {
            self.stalled_since.store(0, Ordering::Relaxed);
        }
    }

    /// An M turned a goroutine away for want of map budget (it goes to the back of the global
    /// queue, and the M runs others: runnable goroutines holding windows may park or end and
    /// free them). If no goroutine got a window for `BUDGET_PATIENCE` (`progress`: from a
    /// P's cache or through `with_budget`), no committed window can be released: the true
    /// limit, a fatal error.
    pub(crate) fn stalled(&self, shared: &Shared, size: usize) {
        if shared.is_shutdown() {
            return;
        }
        let now = (shared.epoch.elapsed().as_nanos() as u64).max(1);
        let since =
            match self
                .stalled_since
                .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => now,
                Err(since) => since,
            };
        if Duration::from_nanos(now - since) >= BUDGET_PATIENCE {
            crate::panic::throw(&format!(
                "cannot map a {size}-byte goroutine stack: {}",
                stack::budget_error(shared.config.copy_out)
            ));
        }
        // Give the goroutines that hold windows a moment on the other Ms.
        std::thread::yield_now();
    }
}

/// How long the map budget may refuse every goroutine that needs a window, with nothing to
/// release, before the process ends with the budget error.
pub(crate) const BUDGET_PATIENCE: Duration = Duration::from_secs(2);

/// Runs `take` (an allocation or commit of a window) until the map budget lets it through:
/// on a refusal it makes room (`relieve`) and tries again. Only old kernels refuse
/// (`mprotect` guards; with `MADV_GUARD_INSTALL` there is no budget). If nothing can be
/// released for `patience`, `Refused::Budget`: a caller on the scheduler's path turns the
/// goroutine away (zero patience, `Copier::stalled`); one that cannot (a goroutine growing
/// onto a segment) waits, then reports the budget error.
pub(crate) fn with_budget<T>(
    shared: &Shared,
    patience: Duration,
    mut take: impl FnMut() -> Result<T, Refused>,
) -> Result<T, Refused> {
    let mut waited = Duration::ZERO;
    loop {
        match take() {
            Ok(v) => {
                shared.copier.progress();
                return Ok(v);
            }
            Err(Refused::Budget) => {}
            Err(e) => return Err(e),
        }
        if relieve(shared) > 0 {
            continue;
        }
        // Windows held by goroutines parking this moment (their park function has not
        // returned, so they are no candidates yet) come free in microseconds; running and
        // runnable ones only when they park or end.
        if waited >= patience {
            return Err(Refused::Budget);
        }
        let nap = Duration::from_micros(200);
        std::thread::sleep(nap);
        waited += nap;
    }
}

/// Makes room in the map budget, which is the process's: this runtime's own windows first
/// (`relieve_in`), then those of the other runtimes of the process, if any (tests run many
/// at once; so may a program that starts runtimes on several threads). Returns how many
/// windows were released.
fn relieve(shared: &Shared) -> usize {
    let freed = relieve_in(shared);
    if freed > 0 {
        return freed;
    }
    let others: Vec<Arc<Shared>> = super::RUNTIMES
        .lock()
        .iter()
        .filter_map(std::sync::Weak::upgrade)
        .filter(|o| !std::ptr::eq(Arc::as_ptr(o), shared) && !o.is_shutdown())
        .collect();
    for other in others {
        let freed = relieve_in(&other);
        if freed > 0 {
            return freed;
        }
    }
    0
}

/// Makes room in the map budget with `shared`'s windows: releases committed free windows of
/// its pool, else copies out a batch of its parked goroutines, whatever their age and however
/// many goroutines live (the policy's thresholds are for memory, not for maps). Returns how
/// many windows it released.
fn relieve_in(shared: &Shared) -> usize {
    let freed = shared.stacks.release_free(BATCH);
    if freed > 0 || !shared.config.copy_out {
        return freed;
    }
    // One pass of the clock hand at most, a chunk of records at a time, taken under the lock
    // and looked at without it (as `round` does). Counted references, not addresses as in
    // `round`: `shared` may be another runtime, shutting down meanwhile, whose records then
    // go when their last reference does (sysmon, `round`'s caller, is joined first).
    let mut batch: Vec<(GRef, u32)> = Vec::with_capacity(BATCH);
    let len = shared.allgs.lock().len();
    let mut looked = 0;
    while batch.len() < BATCH && looked < len {
        let (at, chunk): (usize, Vec<GRef>) = {
            let all = shared.allgs.lock();
            let at = shared.copier.cursor.load(Ordering::Relaxed) % all.len().max(1);
            // At most one pass: the last chunk stops where the first began.
            let end = (at + CHUNK.min(len - looked)).min(all.len());
            (at, all[at..end].to_vec())
        };
        if chunk.is_empty() {
            break;
        }
        // The hand stops just past the last record taken (the next relief goes on from
        // there), or past the chunk.
        let mut next = at + chunk.len();
        looked += chunk.len();
        for (i, g) in chunk.into_iter().enumerate() {
            if let Some(n) = candidate(&g) {
                batch.push((g, n));
                if batch.len() == BATCH {
                    next = at + i + 1;
                    break;
                }
            }
        }
        shared.copier.cursor.store(next, Ordering::Relaxed);
    }
    if batch.is_empty() {
        return 0;
    }
    let refs: Vec<(&Goroutine, u32)> = batch.iter().map(|(g, n)| (&**g, *n)).collect();
    copy_out(shared, &refs)
}

/// A heap block of `len` bytes (`len` > 0: a window's top is above any stack pointer in it).
fn alloc_bytes(len: usize) -> *mut u8 {
    let layout = std::alloc::Layout::from_size_align(len, 16).expect("a stack copy's layout");
    // SAFETY: the layout has a non-zero size.
    let p = unsafe { std::alloc::alloc(layout) };
    if p.is_null() {
        std::alloc::handle_alloc_error(layout);
    }
    p
}

/// Frees a block from `alloc_bytes`.
///
/// # Safety
/// `p` came from `alloc_bytes(len)` and is not used afterwards.
unsafe fn free_bytes(p: *mut u8, len: usize) {
    let layout = std::alloc::Layout::from_size_align(len, 16).expect("a stack copy's layout");
    // SAFETY: per the contract.
    unsafe { std::alloc::dealloc(p, layout) };
}
