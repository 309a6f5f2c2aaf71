//! Goroutine stack memory: reservations, fixed windows, guard pages and the pool.
//!
//! # The problem
//!
//! Go grows a goroutine's stack by copying it to a bigger block and fixing up every pointer into
//! it with the compiler's stack maps. Rust has no stack maps: a reference into a stack may sit in
//! any register or heap object, so a stack can never move. Each goroutine therefore gets a
//! *window* of address space whose address is fixed for its whole life and which is large enough
//! for its deepest call chain (256 KiB by default). Memory is committed only when a page is
//! touched, so a goroutine that uses 3 KiB costs one page of RAM, not 256 KiB.
//!
//! # Layout
//!
//! ```text
//!  segment (one mmap, MAP_NORESERVE, many GiB of address space, no RAM)
//!  +-------+------------------+-------+------------------+-------+-----
//!  | guard |   window 0       | guard |   window 1       | guard | ...
//!  +-------+------------------+-------+------------------+-------+-----
//!  low                  top(0)^                    top(1)^              high
//! ```
//!
//! A window's stack grows down from its top towards the guard page below it.
//!
//! Guard pages: on Linux 6.13+ `MADV_GUARD_INSTALL` marks a page inside a read-write mapping as a
//! guard without splitting the mapping, so a million windows cost one memory map. On older
//! kernels the segment is mapped `PROT_NONE` and a window is `mprotect`ed read-write only while
//! it is *committed* (its stack may hold data): a committed window costs about two memory maps,
//! a released one none (it merges back into the `PROT_NONE` around it and serves as the guard of
//! the window above). Committed windows are a budget (`map_budget`, well below
//! `vm.max_map_count`): taking one past it is refused with [`Refused::Budget`], and the
//! scheduler makes room by releasing free windows and copying out parked goroutines
//! (`sched::copyout::with_budget`) rather than failing unrelated `mmap`/`pthread_create` calls
//! later.
//!
//! # A window's states
//!
//! ```text
//!   carved / taken ──commit──> COMMITTED ──release_windows──> RELEASED ──commit──> COMMITTED
//!   (read-write, guard below,                (pages gone; PROT_NONE on old kernels,
//!    one budget unit on old kernels)          guard marker removed on 6.13+)
//! ```
//!
//! A `GStack` says which one it is in (`released`); only a committed window is run on. A
//! copied-out goroutine's window is released while its `GStack` stays inside the coroutine:
//! `sched::copyout` tracks that state in the goroutine record and commits the window again
//! before the goroutine resumes.
//!
//! # Pool
//!
//! Windows are carved from segments once and then reused (until the runtime shuts down and
//! unmaps its segments): a fresh mmap costs ~2.5 µs, a pooled stack ~10 ns. Most reuse
//! happens through the stack caches of the Ps (as Go's `gfput` keeps a stack with its `g`);
//! the pool's own free lists hold the rest: dirty and clean (committed), and released (their
//! pages gone, committed again when taken). A P whose own
//! cache runs dry takes a batch (`alloc_batch`) with one acquisition of the class lock, and
//! fresh windows get their guard pages after that lock is released, so Ms creating many
//! goroutines at once do not queue behind each other's system calls.
//!
//! Pages a goroutine touched below [`SCRUB_KEEP`] bytes from the top stay committed while a
//! stack is cached, and are released with `MADV_DONTNEED` by [`StackPool::scrub`], which the
//! scheduler calls when an M has run out of work. A syscall costs 300-600 ns on this machine
//! kind, too much for every goroutine exit; at idle time it is free.
//!
//! The scavenger ([`StackPool::scavenge`], run by sysmon) gives back whole free windows that
//! no goroutine took for a full period: each period it notes the fewest free windows a class
//! had (its low-water mark), and releases that many of the least recently freed ones, a
//! bounded number a round. So a burst's windows go back to the kernel a second or two after
//! it ends, and a steady load keeps its working set warm.
//!
//! # Overflow
//!
//! Every segment is entered in a fixed, lock-free registry that the SIGSEGV handler
//! (`coro::signal`) reads to tell a goroutine's guard page from any other fault.

use std::collections::VecDeque;
use std::io;
use std::ptr;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};

use corosensei::stack::{Stack, StackPointer};
use parking_lot::Mutex;

/// The page size the layout assumes (checked against `sysconf` at first use).
pub(crate) const PAGE: usize = 4096;

/// Bytes from the top of a window that stay committed across reuse. A stack that went deeper
/// gets the pages below this released by [`StackPool::scrub`].
pub(crate) const SCRUB_KEEP: usize = 32 * 1024;

/// Smallest usable window: room for the goroutine entry frames and a Rust panic (8 KiB needed).
pub(crate) const MIN_WINDOW: usize = 16 * 1024;

/// Address space a segment reserves at first (rounded to whole windows). Under an
/// address-space limit (`ulimit -v`, `RLIMIT_AS`, strict overcommit) a reservation this size
/// fails: the class then halves its request until one succeeds (down to a single window) and
/// keeps asking for that size.
const SEGMENT_BYTES: usize = 16 << 30;

/// The largest goroutine stack (Go's `maxstacksize` on 64-bit is 1 GB).
pub(crate) const MAX_STACK: usize = 1 << 30;

/// `MADV_GUARD_INSTALL` (Linux 6.13+; not yet in the `libc` crate).
const MADV_GUARD_INSTALL: libc::c_int = 102;

/// Round `n` up to a multiple of the page size (at least `MIN_WINDOW`; `n` at most
/// `MAX_STACK`, checked where users give sizes).
pub(crate) fn round_to_page(n: usize) -> usize {
    n.clamp(MIN_WINDOW, MAX_STACK).div_ceil(PAGE) * PAGE
}

/// The window size a goroutine asking for `n` bytes gets when `n` is not the runtime's
/// default: the next power of two (at least `MIN_WINDOW`). Size classes stay few (at most 17
/// between 16 KiB and 1 GiB), so neither the classes nor their segments can exhaust the
/// segment registry however many distinct sizes a program asks for.
pub(crate) fn class_size(n: usize) -> usize {
    n.clamp(MIN_WINDOW, MAX_STACK).next_power_of_two()
}

/// Checks a stack size a user asked for; the message names the limit.
#[track_caller]
pub(crate) fn check_size(n: usize, what: &str) {
    if n > MAX_STACK {
        panic!(
            "gort: {what}({n}) exceeds the largest goroutine stack, {MAX_STACK} bytes (1 GiB, \
             Go's limit)"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Guard mode

const MODE_UNKNOWN: u8 = 0;
const MODE_MADVISE: u8 = 1;
const MODE_MPROTECT: u8 = 2;

/// How guard pages are made in this process; decided once, by the first segment.
static GUARD_MODE: AtomicU8 = AtomicU8::new(MODE_UNKNOWN);

/// Windows committed (read-write) in `mprotect` mode across the process: each costs about two
/// memory maps (itself, and the split of the `PROT_NONE` around it). Moved only by
/// `take_budget` / `give_budget`, exactly once per commit and release.
static COMMITTED: AtomicUsize = AtomicUsize::new(0);

/// The most windows `mprotect` mode may keep committed at once: half of `vm.max_map_count`,
/// less a margin for the rest of the process (thread stacks, libraries, the allocator).
pub(crate) fn map_budget() -> usize {
    static BUDGET: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *BUDGET.get_or_init(|| {
        let max = std::fs::read_to_string("/proc/sys/vm/max_map_count")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .unwrap_or(65530);
        max.saturating_sub(8192) / 2
    })
}

/// Windows committed now in `mprotect` mode (0 with `MADV_GUARD_INSTALL`).
pub(crate) fn committed_windows() -> usize {
    COMMITTED.load(Ordering::Relaxed)
}

/// Whether guard pages are `mprotect` islands here (a kernel before 6.13), decided by the
/// first segment; false before any segment exists.
pub(crate) fn mprotect_mode() -> bool {
    GUARD_MODE.load(Ordering::Acquire) == MODE_MPROTECT
}

/// Takes one unit of the map budget (a window about to become read-write in `mprotect`
/// mode); false at the budget.
fn take_budget() -> bool {
    let budget = map_budget();
    COMMITTED
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            (n < budget).then_some(n + 1)
        })
        .is_ok()
}

/// Gives back `n` units (windows made `PROT_NONE` again, or a commit that failed).
fn give_budget(n: usize) {
    COMMITTED.fetch_sub(n, Ordering::Relaxed);
}

/// Why a window could not be had.
#[derive(Debug)]
pub(crate) enum Refused {
    /// `mprotect` mode, and every unit of the map budget is committed: the scheduler can make
    /// room (`sched::copyout::with_budget`) and try again.
    Budget,
    /// The kernel refused (no address space, no memory).
    Os(io::Error),
}

/// The message for a budget that stays exhausted (every committed window in use).
pub(crate) fn budget_error(copy_out: bool) -> io::Error {
    let budget = map_budget();
    let how = if copy_out {
        "parked goroutines are copied out to make room, but for 2 s no committed stack could be \
         released (they belong to running or runnable goroutines, or to goroutines parked deep \
         in stack segments)"
    } else {
        "copy-out of parked stacks is off (Builder::copy_out_parked), so parked goroutines \
         keep theirs"
    };
    io::Error::other(format!(
        "this kernel lacks MADV_GUARD_INSTALL (Linux 6.13+), so each resident goroutine stack \
         costs about two memory maps, and all {budget} that vm.max_map_count allows are in use: \
         {how}; raise vm.max_map_count or run fewer goroutines at once"
    ))
}

// ---------------------------------------------------------------------------------------------
// Segment registry, read by the SIGSEGV handler.

const REGISTRY_SLOTS: usize = 1024;

/// One registered segment. `start == 0` means free. Written only under the class lock of the
/// segment's owner; read lock-free by the signal handler (Acquire on `start` pairs with the
/// Release store made after the other fields are written).
struct SegSlot {
    start: AtomicUsize,
    end: AtomicUsize,
    stride: AtomicUsize,
}

#[allow(clippy::declare_interior_mutable_const)] // used only as an array initialiser
const EMPTY_SLOT: SegSlot = SegSlot {
    start: AtomicUsize::new(0),
    end: AtomicUsize::new(0),
    stride: AtomicUsize::new(0),
};
static REGISTRY: [SegSlot; REGISTRY_SLOTS] = [EMPTY_SLOT; REGISTRY_SLOTS];
/// Serialises slot claims (not reads).
static REGISTRY_LOCK: Mutex<()> = Mutex::new(());

fn register_segment(start: usize, end: usize, stride: usize) -> Option<usize> {
    let _g = REGISTRY_LOCK.lock();
    for (i, slot) in REGISTRY.iter().enumerate() {
        if slot.start.load(Ordering::Relaxed) == 0 {
            slot.end.store(end, Ordering::Relaxed);
            slot.stride.store(stride, Ordering::Relaxed);
            // Release: pairs with the Acquire load in `guard_hit`.
            slot.start.store(start, Ordering::Release);
            return Some(i);
        }
    }
    None
}

fn unregister_segment(slot: usize) {
    let _g = REGISTRY_LOCK.lock();
    REGISTRY[slot].start.store(0, Ordering::Release);
}

/// LeakSanitizer support (the `sanitizer` feature, for ASan builds).
///
/// gort leaks on purpose what discarded goroutines held (Go's process just ends; dropping
/// would run user code), and LeakSanitizer does not scan goroutine stacks, which are not
/// thread stacks. So in a sanitizer build a discarded goroutine's window is kept mapped and
/// never reused, and registered as a root region: what its stack points to is reachable, as
/// it is in fact. Goroutines still alive when a `#[gort::main]` program exits are registered
/// the same way (`sched::run_main`, through `lsan::root`).
#[cfg(feature = "sanitizer")]
pub(crate) mod lsan {
    extern "C" {
        fn __lsan_register_root_region(p: *const libc::c_void, size: usize);
    }

    /// Makes LeakSanitizer scan `[low, high)` for pointers.
    pub(crate) fn root(low: usize, high: usize) {
        // SAFETY: the ASan runtime is linked into sanitizer builds (the feature's contract);
        // the range is mapped memory that stays mapped (never unmapped in sanitizer builds
        // while a leaked window is in it).
        unsafe { __lsan_register_root_region(low as *const libc::c_void, high - low) };
    }
}

/// If `addr` lies in the guard page of some goroutine window, returns that window's usable size.
/// Async-signal-safe: only atomic loads.
pub(crate) fn guard_hit(addr: usize) -> Option<usize> {
    for slot in REGISTRY.iter() {
        // Acquire: pairs with the Release store in `register_segment`.
        let start = slot.start.load(Ordering::Acquire);
        if start == 0 || addr < start {
            continue;
        }
        let end = slot.end.load(Ordering::Relaxed);
        if addr >= end {
            continue;
        }
        let stride = slot.stride.load(Ordering::Relaxed);
        if (addr - start) % stride < PAGE {
            return Some(stride - PAGE);
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// GStack

/// One goroutine stack window. Owned by exactly one place at a time: a live coroutine, a cached
/// dead `Goroutine`, or a pool free list. Its address never changes.
pub(crate) struct GStack {
    /// Highest address (exclusive): where the stack starts.
    top: usize,
    /// Usable bytes below `top`; the guard page lies just below `top - usable`.
    usable: usize,
    /// Whether a goroutine ran on it since it was last scrubbed.
    dirty: bool,
    /// Whether its pages were released (module docs, "A window's states"): it must be
    /// committed (`commit`) before anything runs on it.
    released: bool,
}

/// Releases the windows `[low, top)` of `ranges` (sorted by address or not): their pages go
/// back to the kernel and read back as zeroes. With `MADV_GUARD_INSTALL` their guard markers
/// are removed too (one `process_madvise`), so the kernel can free their page-table pages;
/// with `mprotect` guards they become `PROT_NONE`, merging with the guards around them, and
/// give back their budget. Adjacent windows go in one call each. Every released window must be
/// committed (`commit`) before anything runs on it again.
///
/// # Safety
/// Each range is a committed window of a segment gort owns (`[top - usable, top)` of a
/// `GStack`) whose contents nobody needs: no coroutine runs on it and its live bytes were
/// saved elsewhere, until it is committed again.
pub(crate) unsafe fn release_windows(ranges: &mut [(usize, usize)]) {
    if ranges.is_empty() {
        return;
    }
    ranges.sort_unstable();
    let mprotect = mprotect_mode();
    if !mprotect {
        // A partial failure leaves some guards in place: `commit` installs them again anyway
        // (idempotent), so the result does not matter.
        remove_guards(&ranges.iter().map(|r| r.0).collect::<Vec<_>>());
    }
    let mut i = 0;
    while i < ranges.len() {
        let (lo, mut hi) = ranges[i];
        i += 1;
        // The next window starts one guard page above this one's top; the guard between is
        // released with them (a marker survives `MADV_DONTNEED`; an `mprotect` guard is
        // `PROT_NONE` already).
        while i < ranges.len() && ranges[i].0 == hi + PAGE {
            hi = ranges[i].1;
            i += 1;
        }
        if mprotect {
            decommit(lo, hi);
        } else {
            // SAFETY: `[lo, hi)` covers windows nobody uses (the contract) and the guard pages
            // between adjacent ones; dropping pages of a private anonymous mapping only makes
            // them read back as zero.
            unsafe { libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_DONTNEED) };
        }
    }
    if mprotect {
        give_budget(ranges.len());
    }
}

/// `mprotect` mode: replaces `[lo, hi)` (windows nobody uses and the guards between them) with
/// a fresh `PROT_NONE` mapping, which frees their pages in the same call.
///
/// Not `madvise` + `mprotect(PROT_NONE)`: a window's mapping got an `anon_vma` of its own
/// when its first page was touched, and Linux merges neighbouring mappings only when their
/// `anon_vma`s agree, so every released window would stay a memory map of its own (measured:
/// a million parked goroutines ran out of maps at about 30,000). A fresh mapping has none and
/// merges with the `PROT_NONE` around it, so a run of released windows is one map.
fn decommit(lo: usize, hi: usize) {
    // SAFETY: `[lo, hi)` lies in a segment gort mapped and owns, and nothing uses it (the
    // caller's contract); MAP_FIXED replaces exactly that range.
    let p = unsafe {
        libc::mmap(
            lo as *mut libc::c_void,
            hi - lo,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_FIXED,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        // The map budget would count windows that are still committed: fatal, like a failure
        // to map a stack.
        super::signal::throw(&format!(
            "runtime: cannot release goroutine stack windows: {}",
            io::Error::last_os_error()
        ));
    }
}

/// Makes the released window `[low, low + usable)` usable again: read-write and one budget
/// unit in `mprotect` mode (refused at the budget), its guard marker back with
/// `MADV_GUARD_INSTALL`.
///
/// The window must be a released one of a segment gort owns, which nothing runs on yet.
pub(crate) fn commit(low: usize, usable: usize) -> Result<(), Refused> {
    if !mprotect_mode() {
        return install_guard(low - PAGE).map_err(Refused::Os);
    }
    if !take_budget() {
        return Err(Refused::Budget);
    }
    // SAFETY: the usable part of a released window gort owns (the contract); the guard page
    // below stays PROT_NONE.
    let rc = unsafe {
        libc::mprotect(
            low as *mut libc::c_void,
            usable,
            libc::PROT_READ | libc::PROT_WRITE,
        )
    };
    if rc != 0 {
        give_budget(1);
        return Err(Refused::Os(io::Error::last_os_error()));
    }
    Ok(())
}

impl GStack {
    /// The highest address (exclusive) of the window: where the stack starts.
    pub(crate) fn top(&self) -> usize {
        self.top
    }

    /// Usable size in bytes (the window, without its guard page).
    pub(crate) fn usable(&self) -> usize {
        self.usable
    }

    /// Marks the stack as used; called when a coroutine is started on it.
    pub(crate) fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    /// Whether the window's pages were released: it must be committed before use.
    pub(crate) fn is_released(&self) -> bool {
        self.released
    }

    /// Records that the window was released while a coroutine held it (a copied-out
    /// goroutine discarded at shutdown, `sched::copyout`): it goes back to the pool as such.
    pub(crate) fn set_released(&mut self) {
        self.released = true;
        self.dirty = false;
    }

    /// Releases the pages below [`SCRUB_KEEP`] from the top if a goroutine used the stack since
    /// the last scrub. Returns whether a syscall was made.
    pub(crate) fn scrub(&mut self) -> bool {
        if !self.dirty || self.released {
            return false;
        }
        self.dirty = false;
        let low = self.top - self.usable;
        let high = self.top - SCRUB_KEEP.min(self.usable);
        if high > low {
            // SAFETY: [low, high) lies inside this window, which this GStack owns exclusively and
            // no coroutine is running on (the caller holds it outside any coroutine). Dropping
            // the pages only makes them read back as zero.
            unsafe {
                libc::madvise(low as *mut libc::c_void, high - low, libc::MADV_DONTNEED);
            }
        }
        true
    }
}

/// A window lent to `corosensei::on_stack` for one call (a growth segment, `sched::grow`): its
/// owner keeps the `GStack`, and the borrow lasts exactly that call.
pub(crate) struct Lent {
    pub(crate) top: usize,
    pub(crate) usable: usize,
}

// SAFETY: a `Lent` is made only by `coro::on_segment`, whose contract is that `[top - usable,
// top)` is a pool window (guard page below it, page-aligned ends) owned by the running
// goroutine with nothing on it, for the whole call.
unsafe impl Stack for Lent {
    fn base(&self) -> StackPointer {
        StackPointer::new(self.top).expect("stack top is non-zero")
    }

    fn limit(&self) -> StackPointer {
        StackPointer::new(self.top - self.usable - PAGE).expect("stack limit is non-zero")
    }
}

// SAFETY: `base` and `limit` describe a window that this value owns exclusively; the window
// has a guard page below `limit + PAGE` (installed when the window was carved), at least
// MIN_STACK_SIZE usable bytes (MIN_WINDOW), and both ends are page aligned, hence 16-aligned.
unsafe impl Stack for GStack {
    fn base(&self) -> StackPointer {
        StackPointer::new(self.top).expect("stack top is non-zero")
    }

    fn limit(&self) -> StackPointer {
        StackPointer::new(self.top - self.usable - PAGE).expect("stack limit is non-zero")
    }
}

// ---------------------------------------------------------------------------------------------
// Size classes and the pool

struct Segment {
    base: usize,
    len: usize,
    slot: usize,
    /// Windows this segment holds.
    windows: usize,
}

/// Windows of one usable size.
struct SizeClass {
    usable: usize,
    stride: usize,
    /// Protected by this mutex: segments, the carve cursor and the free lists.
    state: Mutex<ClassState>,
}

struct ClassState {
    segments: Vec<Segment>,
    /// Bytes the next segment asks for (halved after a refusal, see `SEGMENT_BYTES`).
    seg_bytes: usize,
    /// Windows already carved from the last segment.
    carved: usize,
    /// Free windows a goroutine used since their last scrub (deep pages may be committed).
    /// (The free lists are used as stacks at their backs, the most recently freed window
    /// first; the scavenger and the relief take from their fronts, the least recently freed.)
    dirty: VecDeque<GStack>,
    /// Free windows with nothing committed below `SCRUB_KEEP`.
    clean: VecDeque<GStack>,
    /// Free windows whose pages were released (`release_windows`): committed when taken.
    released: Vec<GStack>,
    /// The fewest committed free windows (`dirty` + `clean`) since the scavenger's last period
    /// began: that many were not needed for a whole period (`StackPool::scavenge`).
    low_water: usize,
    /// Committed free windows the scavenger has still to release this period.
    owed: usize,
    /// Windows handed out and not yet returned (for leak checks at shutdown).
    out: usize,
    /// Windows given up by discarded goroutines in sanitizer builds (`StackPool::leak`): the
    /// class's segments then stay mapped.
    leaked: usize,
}

impl SizeClass {
    fn new(usable: usize) -> SizeClass {
        SizeClass {
            usable,
            stride: usable + PAGE,
            state: Mutex::new(ClassState {
                segments: Vec::new(),
                seg_bytes: SEGMENT_BYTES,
                carved: 0,
                dirty: VecDeque::new(),
                clean: VecDeque::new(),
                released: Vec::new(),
                low_water: 0,
                owed: 0,
                out: 0,
                leaked: 0,
            }),
        }
    }

    /// Maps a new segment, as large as the address space allows (see `SEGMENT_BYTES`).
    fn grow(&self, st: &mut ClassState) -> io::Result<()> {
        loop {
            let windows = (st.seg_bytes / self.stride).max(1);
            match map_segment(windows * self.stride, self.stride) {
                Ok(mut seg) => {
                    seg.windows = windows;
                    st.segments.push(seg);
                    st.carved = 0;
                    return Ok(());
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOMEM) && windows > 1 => {
                    st.seg_bytes = (windows / 2) * self.stride;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Moves up to `max` windows (at least one) into `out`, the lowest address last (callers
    /// pop from the end): committed free ones first, dirty before clean (their top pages are
    /// committed and likely cached), then released ones (committed again), else a batch carved
    /// fresh from the segment.
    ///
    /// Windows that need a system call (fresh, or released) get it after the class lock is
    /// released: they are taken off the lists (or the carve cursor moves past them) under the
    /// lock, so no one else can hand them out, and installing 64 guards (a `process_madvise`
    /// of tens of microseconds) no longer stalls the other Ms' allocations. Invariant: a
    /// window reaches `out` committed, with its guard in place; a free list holds committed
    /// windows only in `dirty` and `clean`.
    fn alloc_batch(&self, max: usize, out: &mut Vec<GStack>) -> Result<(), Refused> {
        let max = max.max(1);
        let (first, n) = {
            let mut st = self.state.lock();
            let mut taken = 0;
            while taken < max {
                match st.dirty.pop_back().or_else(|| st.clean.pop_back()) {
                    Some(s) => {
                        out.push(s);
                        taken += 1;
                    }
                    None => break,
                }
            }
            if taken > 0 {
                st.out += taken;
                let left = st.dirty.len() + st.clean.len();
                st.low_water = st.low_water.min(left);
                st.owed = st.owed.min(left);
                // Free lists pop the highest-priority window last; keep it on top of `out`.
                let len = out.len();
                out[len - taken..].reverse();
                return Ok(());
            }
            if !st.released.is_empty() {
                // In `mprotect` mode each window is a budget unit and an `mprotect` of its own:
                // one at a time. With guard markers `commit_batch` puts a batch's guards back
                // with one `process_madvise`.
                let n = if mprotect_mode() {
                    1
                } else {
                    max.min(st.released.len())
                };
                let at = st.released.len() - n;
                let mut batch: Vec<GStack> = st.released.drain(at..).collect();
                st.out += n;
                drop(st);
                self.commit_batch(&mut batch)?;
                out.append(&mut batch);
                return Ok(());
            }
            let full = match st.segments.last() {
                Some(seg) => st.carved == seg.windows,
                None => true,
            };
            if full {
                self.grow(&mut st).map_err(Refused::Os)?;
            }
            let seg = st.segments.last().expect("a segment was just ensured");
            let first = seg.base + st.carved * self.stride;
            // Fresh windows are carved in batches, their guards installed with one system call
            // (`commit_batch`); in `mprotect` mode (older kernels) one at a time. (The mode is
            // known once a segment exists: after `grow`.)
            let n = if !mprotect_mode() && self.stride < ALONE_STRIDE {
                CARVE_BATCH.min(seg.windows - st.carved)
            } else {
                1
            };
            st.carved += n;
            st.out += n;
            (first, n)
        };
        let window = |i: usize| GStack {
            top: first + i * self.stride + self.stride,
            usable: self.usable,
            dirty: false,
            released: true,
        };
        // A fresh window is a released one that was never used: `commit_batch` makes it usable
        // (read-write in `mprotect` mode, where the segment is mapped `PROT_NONE`; a guard
        // marker with `MADV_GUARD_INSTALL`, a batch's with one call).
        let mut batch: Vec<GStack> = (0..n).rev().map(window).collect();
        self.commit_batch(&mut batch)?;
        // The carve is a batch: what was not asked for waits on the clean list, the lowest
        // window on top.
        let give = n.min(max);
        if give < n {
            let mut st = self.state.lock();
            st.out -= n - give;
            st.clean.extend(batch.drain(..n - give));
        }
        out.append(&mut batch);
        Ok(())
    }

    /// Commits the released windows of `batch` (taken off this class and counted in `out`).
    /// On a refusal the windows go back to the lists (`released`, or `clean` if committed),
    /// uncounted, `batch` is left empty, and the refusal is returned.
    fn commit_batch(&self, batch: &mut Vec<GStack>) -> Result<(), Refused> {
        // With guard markers, all the guards in one `process_madvise` (where it fails, one
        // `madvise` each below; installing a guard twice is harmless).
        if !mprotect_mode() && batch.iter().filter(|s| s.released).count() > 1 {
            let guards: Vec<usize> = batch
                .iter()
                .filter(|s| s.released)
                .map(|s| s.top - s.usable - PAGE)
                .collect();
            if process_madvise_pages(&guards, MADV_GUARD_INSTALL) {
                for s in batch.iter_mut() {
                    s.released = false;
                }
                return Ok(());
            }
        }
        let mut failed = None;
        for s in batch.iter_mut().filter(|s| s.released) {
            match commit(s.top - s.usable, s.usable) {
                Ok(()) => s.released = false,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        let Some(e) = failed else {
            return Ok(());
        };
        let mut st = self.state.lock();
        st.out -= batch.len();
        for s in batch.drain(..) {
            if s.released {
                st.released.push(s);
            } else {
                st.clean.push_back(s);
            }
        }
        Err(e)
    }

    fn free(&self, s: GStack) {
        let mut st = self.state.lock();
        st.out -= 1;
        if s.released {
            st.released.push(s);
        } else if s.dirty {
            st.dirty.push_back(s);
        } else {
            st.clean.push_back(s);
        }
    }

    /// Takes up to `max` committed free windows, the least recently freed first (clean ones
    /// before dirty ones: a clean window was scrubbed at an idle moment or never used, a dirty
    /// one was used since, more recently), releases them and files them as released. Returns
    /// how many. `owed` (the scavenger) also counts them off.
    fn release_free(&self, max: usize) -> usize {
        let mut taken: Vec<GStack> = {
            let mut st = self.state.lock();
            let from_clean = max.min(st.clean.len());
            let from_dirty = (max - from_clean).min(st.dirty.len());
            let mut v: Vec<GStack> = st.clean.drain(..from_clean).collect();
            v.extend(st.dirty.drain(..from_dirty));
            let left = st.dirty.len() + st.clean.len();
            st.low_water = st.low_water.min(left);
            st.owed = st.owed.saturating_sub(v.len()).min(left);
            // Counted out while their pages go: a shutdown then keeps the segment mapped.
            st.out += v.len();
            v
        };
        if taken.is_empty() {
            return 0;
        }
        let mut ranges: Vec<(usize, usize)> =
            taken.iter().map(|s| (s.top - s.usable, s.top)).collect();
        // SAFETY: the windows are committed free windows this class owns, taken off its lists
        // above: nothing runs on them and their contents are garbage.
        unsafe { release_windows(&mut ranges) };
        let n = taken.len();
        let mut st = self.state.lock();
        st.out -= n;
        for mut s in taken.drain(..) {
            s.set_released();
            st.released.push(s);
        }
        n
    }

    /// One scavenger round (`StackPool::scavenge`): with `period`, a new period begins and what
    /// stayed free all the last one is owed; then up to `max` owed windows are released.
    /// Returns how many were, and whether more is owed.
    fn scavenge(&self, period: bool, max: usize) -> (usize, bool) {
        let owed = {
            let mut st = self.state.lock();
            if period {
                let free = st.dirty.len() + st.clean.len();
                st.owed = st.low_water.min(free);
                st.low_water = free;
            }
            st.owed
        };
        let n = if owed.min(max) > 0 {
            self.release_free(owed.min(max))
        } else {
            0
        };
        (n, owed > n)
    }
}

impl SizeClass {
    /// Unmaps every segment if no window of this class is handed out; returns whether it did.
    fn release(&self) -> bool {
        let mut st = self.state.lock();
        if st.out != 0 || st.leaked != 0 {
            return false;
        }
        // The committed windows go with their segments: their map budget comes back.
        if mprotect_mode() {
            give_budget(st.dirty.len() + st.clean.len());
        }
        st.dirty.clear();
        st.clean.clear();
        st.released.clear();
        st.carved = 0;
        for seg in st.segments.drain(..) {
            unregister_segment(seg.slot);
            // SAFETY: the segment was mapped by `map_segment` with this base and length, and
            // no window of it is handed out (`out == 0`; the free lists were just emptied), so
            // nothing uses its memory.
            unsafe {
                libc::munmap(seg.base as *mut libc::c_void, seg.len);
            }
        }
        true
    }
}

impl Drop for SizeClass {
    fn drop(&mut self) {
        // A class with stacks still out leaks its segments rather than unmap memory in use.
        self.release();
    }
}

fn map_segment(len: usize, stride: usize) -> io::Result<Segment> {
    // SAFETY: an anonymous private mapping at an address the kernel picks; it aliases nothing.
    let base = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    let base = base as usize;
    let mut mode = GUARD_MODE.load(Ordering::Acquire);
    if mode == MODE_UNKNOWN {
        // Probe: can a guard be installed inside this mapping?
        // SAFETY: the first page of a mapping we own and nobody uses yet.
        let rc = unsafe { libc::madvise(base as *mut libc::c_void, PAGE, MADV_GUARD_INSTALL) };
        mode = if rc == 0 { MODE_MADVISE } else { MODE_MPROTECT };
        GUARD_MODE.store(mode, Ordering::Release);
    }
    if mode == MODE_MPROTECT {
        // SAFETY: the whole range is the mapping created above, not yet handed out.
        let rc = unsafe { libc::mprotect(base as *mut libc::c_void, len, libc::PROT_NONE) };
        if rc != 0 {
            let e = io::Error::last_os_error();
            // SAFETY: unmapping the mapping we just made.
            unsafe { libc::munmap(base as *mut libc::c_void, len) };
            return Err(e);
        }
    }
    let Some(slot) = register_segment(base, base + len, stride) else {
        // SAFETY: unmapping the mapping we just made, which nothing uses.
        unsafe { libc::munmap(base as *mut libc::c_void, len) };
        return Err(io::Error::other(format!(
            "more than {REGISTRY_SLOTS} stack segments are mapped in this process"
        )));
    };
    Ok(Segment {
        base,
        len,
        slot,
        windows: 0,
    })
}

/// `MADV_GUARD_REMOVE` (Linux 6.13+).
const MADV_GUARD_REMOVE: libc::c_int = 103;

/// Removes the guard pages below the windows starting at `lows` with one `process_madvise`
/// call, so that releasing the windows lets the kernel free their page-table pages (a guard
/// marker is a page-table entry). True if every guard was removed.
///
/// Only for windows being released (`release_windows`): `commit` puts the guard back.
fn remove_guards(lows: &[usize]) -> bool {
    let guards: Vec<usize> = lows.iter().map(|&l| l - PAGE).collect();
    process_madvise_pages(&guards, MADV_GUARD_REMOVE)
}

/// Makes `guard`, the page below a window of a segment gort owns (one no goroutine runs on),
/// a guard page (`MADV_GUARD_INSTALL`; idempotent).
fn install_guard(guard: usize) -> io::Result<()> {
    // SAFETY: per the function's contract: nothing uses the page.
    let rc = unsafe { libc::madvise(guard as *mut libc::c_void, PAGE, MADV_GUARD_INSTALL) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// One `process_madvise(2)` call on this process applying `advice` to one page at each of
/// `pages`; true if the kernel applied it to all of them.
fn process_madvise_pages(pages: &[usize], advice: libc::c_int) -> bool {
    if pages.is_empty() {
        return false;
    }
    let Some(pidfd) = own_pidfd() else {
        return false;
    };
    // UIO_MAXIOV: at most 1024 ranges a call.
    pages.chunks(1024).all(|chunk| {
        let iov: Vec<libc::iovec> = chunk
            .iter()
            .map(|&p| libc::iovec {
                iov_base: p as *mut libc::c_void,
                iov_len: PAGE,
            })
            .collect();
        // SAFETY: each range is a page of a segment gort owns, chosen by the caller per its
        // contract; `iov` lives across the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_process_madvise,
                pidfd,
                iov.as_ptr(),
                iov.len(),
                advice,
                0,
            )
        };
        // The call reports the bytes it advised; a partial result counts as a failure.
        rc == (chunk.len() * PAGE) as libc::c_long
    })
}

/// A pidfd of this process, opened once per process: `(pid << 32) | fd`, 0 before. Keyed by
/// pid because a child made by `fork` inherits the descriptor, which names its parent: used
/// there, it would advise the parent's memory.
static PIDFD: AtomicU64 = AtomicU64::new(0);

/// This process's pidfd (`PIDFD`), or `None` if the kernel has none to give.
fn own_pidfd() -> Option<i32> {
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() } as u64;
    let cur = PIDFD.load(Ordering::Acquire);
    if cur != 0 && cur >> 32 == pid {
        return Some(cur as u32 as i32);
    }
    // SAFETY: pidfd_open takes no pointers; the descriptor is kept for the process's life.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return None;
    }
    let new = (pid << 32) | (fd as u64 & 0xffff_ffff);
    match PIDFD.compare_exchange(cur, new, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => {
            if cur != 0 {
                // A parent's descriptor, inherited through fork: ours to close.
                // SAFETY: the descriptor is this process's copy, used by nobody now that the
                // word names the new one.
                unsafe { libc::close(cur as u32 as i32) };
            }
            Some(fd as i32)
        }
        Err(won) => {
            // Another thread opened one first: keep theirs.
            // SAFETY: the descriptor was opened just above and never shared.
            unsafe { libc::close(fd as i32) };
            Some(won as u32 as i32)
        }
    }
}

/// Fresh windows carved at once when the pool runs dry (guards installed with one
/// `process_madvise` call instead of one `madvise` each, `commit_batch`).
const CARVE_BATCH: usize = 64;

/// Windows this far apart or more are carved one at a time: a guard marker is a page-table
/// entry, so each window carved ahead would cost a page-table page of its own (the 8 MiB
/// window of goroutine 1 is carved alone, not with 63 spares).
const ALONE_STRIDE: usize = 2 << 20;

/// Every stack of one runtime. Size classes are created on first use of a size; the default
/// class is looked up without a lock.
pub(crate) struct StackPool {
    default: SizeClass,
    others: Mutex<Vec<SizeClass>>,
}

impl StackPool {
    /// A pool whose default windows have `default_size` usable bytes (rounded up to pages).
    pub(crate) fn new(default_size: usize) -> StackPool {
        assert_eq!(
            // SAFETY: sysconf has no preconditions.
            unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize,
            PAGE,
            "gort assumes 4 KiB pages"
        );
        StackPool {
            default: SizeClass::new(round_to_page(default_size)),
            others: Mutex::new(Vec::new()),
        }
    }

    /// The usable size a goroutine asking for `requested` bytes gets (the default if `None`,
    /// or if it rounds to the default; otherwise a power-of-two class, `class_size`).
    pub(crate) fn size_for(&self, requested: Option<usize>) -> usize {
        match requested {
            None => self.default.usable,
            Some(n) if round_to_page(n) == self.default.usable => self.default.usable,
            Some(n) => class_size(n),
        }
    }

    /// The default usable window size.
    pub(crate) fn default_size(&self) -> usize {
        self.default.usable
    }

    /// A stack with `usable` bytes (already page-rounded). Panics if none can be had (tests
    /// and plain callers; the scheduler goes through `sched::copyout::with_budget`).
    #[cfg(test)]
    pub(crate) fn alloc(&self, usable: usize) -> GStack {
        self.try_alloc(usable)
            .unwrap_or_else(|e| panic!("cannot map a {usable}-byte goroutine stack: {e:?}"))
    }

    /// A stack with `usable` bytes, or why not.
    pub(crate) fn try_alloc(&self, usable: usize) -> Result<GStack, Refused> {
        let mut one = Vec::with_capacity(1);
        self.try_alloc_batch(usable, 1, &mut one)?;
        Ok(one.pop().expect("alloc_batch gives at least one stack"))
    }

    /// Moves up to `max` stacks with `usable` bytes (at least one) into `out`; the one to use
    /// first is last. How a P refills its stack cache with one acquisition of the class lock.
    /// On an error nothing was moved.
    pub(crate) fn try_alloc_batch(
        &self,
        usable: usize,
        max: usize,
        out: &mut Vec<GStack>,
    ) -> Result<(), Refused> {
        if usable == self.default.usable {
            self.default.alloc_batch(max, out)
        } else {
            self.with_class(usable, |c| c.alloc_batch(max, out))
        }
    }

    /// Test helper: `try_alloc_batch` that panics.
    #[cfg(test)]
    pub(crate) fn alloc_batch(&self, usable: usize, max: usize, out: &mut Vec<GStack>) {
        self.try_alloc_batch(usable, max, out)
            .unwrap_or_else(|e| panic!("cannot map a {usable}-byte goroutine stack: {e:?}"))
    }

    /// Returns a stack to its class's free list.
    pub(crate) fn free(&self, s: GStack) {
        if s.usable == self.default.usable {
            self.default.free(s)
        } else {
            self.with_class(s.usable, |c| c.free(s))
        }
    }

    fn with_class<R>(&self, usable: usize, f: impl FnOnce(&SizeClass) -> R) -> R {
        let mut others = self.others.lock();
        if let Some(c) = others.iter().find(|c| c.usable == usable) {
            return f(c);
        }
        others.push(SizeClass::new(usable));
        f(others.last().expect("just pushed"))
    }

    /// Gives up a discarded goroutine's stack for good, keeping its contents (sanitizer
    /// builds; see `lsan`): it is never reused, and its segment never unmapped.
    #[cfg(feature = "sanitizer")]
    pub(crate) fn leak(&self, s: GStack) {
        let (low, top) = (s.top - s.usable, s.top);
        let leak_in = |c: &SizeClass| {
            let mut st = c.state.lock();
            st.out -= 1;
            st.leaked += 1;
        };
        if s.usable == self.default.usable {
            leak_in(&self.default)
        } else {
            self.with_class(s.usable, |c| leak_in(c))
        }
        lsan::root(low, top);
    }

    /// Runs `f` on every class, the default first (the other classes' lock held meanwhile).
    fn each_class(&self, mut f: impl FnMut(&SizeClass)) {
        f(&self.default);
        for c in self.others.lock().iter() {
            f(c);
        }
    }

    /// Scrubs up to `budget` dirty stacks on the pool's free lists, moving them to the clean
    /// lists; returns how many syscalls were made. Costs O(budget), however long the lists.
    pub(crate) fn scrub(&self, budget: usize) -> usize {
        let mut done = 0;
        self.each_class(|c| {
            let mut st = c.state.lock();
            while done < budget {
                let Some(mut s) = st.dirty.pop_back() else {
                    break;
                };
                if s.scrub() {
                    done += 1;
                }
                st.clean.push_back(s);
            }
        });
        done
    }

    /// Releases up to `max` committed free windows of all classes, the least recently freed
    /// first; returns how many (the map budget they gave back, in `mprotect` mode).
    pub(crate) fn release_free(&self, max: usize) -> usize {
        let mut done = 0;
        self.each_class(|c| {
            if done < max {
                done += c.release_free(max - done);
            }
        });
        done
    }

    /// The scavenger (sysmon): with `period` set, a new period begins, and every class owes
    /// the committed free windows it never fell below during the last one. Then up to `max`
    /// owed windows are released. Returns whether more is owed (sysmon keeps its rounds short
    /// meanwhile).
    pub(crate) fn scavenge(&self, period: bool, max: usize) -> bool {
        let (mut left, mut more) = (max, false);
        self.each_class(|c| {
            let (n, owed) = c.scavenge(period, left);
            left -= n;
            more |= owed;
        });
        more
    }

    /// Free windows of all classes: (committed, released).
    pub(crate) fn free_windows(&self) -> (usize, usize) {
        let (mut committed, mut released) = (0, 0);
        self.each_class(|c| {
            let st = c.state.lock();
            committed += st.dirty.len() + st.clean.len();
            released += st.released.len();
        });
        (committed, released)
    }

    /// Returns stacks to their classes' free lists (a P's cache, or part of it, given up).
    pub(crate) fn free_all(&self, stacks: impl IntoIterator<Item = GStack>) {
        for s in stacks {
            self.free(s);
        }
    }

    /// Unmaps every segment of every class that has no stack handed out (runtime shutdown).
    pub(crate) fn release(&self) {
        self.each_class(|c| {
            c.release();
        });
    }

    /// Stacks handed out and not returned, over all classes.
    pub(crate) fn outstanding(&self) -> usize {
        let mut n = 0;
        self.each_class(|c| n += c.state.lock().out);
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_fixed_and_reused() {
        let pool = StackPool::new(64 * 1024);
        let a = pool.alloc(pool.default_size());
        let top = a.top;
        assert_eq!(a.usable(), 64 * 1024);
        pool.free(a);
        let b = pool.alloc(pool.default_size());
        assert_eq!(b.top, top, "a freed window is reused at the same address");
        pool.free(b);
        assert_eq!(pool.outstanding(), 0);
    }

    #[test]
    fn batches_are_guarded_ordered_and_counted() {
        let pool = StackPool::new(64 * 1024);
        let size = pool.default_size();
        let mut cache = Vec::new();
        pool.alloc_batch(size, 8, &mut cache);
        // With MADV_GUARD_INSTALL fresh windows come in batches; with mprotect guards (older
        // kernels) one at a time.
        let batched = !mprotect_mode();
        let first = if batched { 8 } else { 1 };
        assert_eq!(cache.len(), first, "a fresh carve fills the batch");
        assert_eq!(pool.outstanding(), first);
        // The one to use first is last, and it is the lowest window (copy-out releases ranges
        // in window order).
        let tops: Vec<usize> = cache.iter().map(|s| s.top).collect();
        assert!(tops.windows(2).all(|w| w[0] > w[1]), "{tops:x?}");
        for s in &cache {
            assert_eq!(
                guard_hit(s.top - s.usable - PAGE),
                Some(size),
                "guard in place"
            );
        }
        // The rest of the carved batch waits in the pool; a second batch takes it.
        let mut more = Vec::new();
        pool.alloc_batch(size, 1000, &mut more);
        let most = if batched { CARVE_BATCH - first } else { 1 };
        assert!(!more.is_empty() && more.len() <= most, "{}", more.len());
        assert!(
            more.iter().all(|s| !tops.contains(&s.top)),
            "no window handed out twice"
        );
        let handed = cache.len() + more.len();
        assert_eq!(pool.outstanding(), handed);
        let mut freed = Vec::new();
        for s in cache.drain(..).chain(more.drain(..)) {
            freed.push(s.top);
            pool.free(s);
        }
        assert_eq!(pool.outstanding(), 0);
        // Freed windows come back, the one freed last to be used first (on top).
        pool.alloc_batch(size, 4, &mut cache);
        assert_eq!(cache.len(), freed.len().min(4));
        assert_eq!(cache.last().map(|s| s.top), freed.last().copied());
        assert!(cache.iter().all(|s| freed.contains(&s.top)));
        for s in cache.drain(..) {
            pool.free(s);
        }
        assert!(pool.default.release(), "nothing is left out");
    }

    #[test]
    fn guard_page_is_registered() {
        let pool = StackPool::new(64 * 1024);
        let s = pool.alloc(pool.default_size());
        let guard = s.top - s.usable - PAGE;
        assert_eq!(guard_hit(guard), Some(64 * 1024));
        assert_eq!(
            guard_hit(guard + PAGE),
            None,
            "the lowest usable page is no guard"
        );
        assert_eq!(guard_hit(s.top - 8), None);
        pool.free(s);
    }

    #[test]
    fn memory_is_committed_on_touch_and_scrubbed() {
        let pool = StackPool::new(256 * 1024);
        let mut s = pool.alloc(pool.default_size());
        let low = s.top - s.usable;
        // SAFETY: the window is ours and usable; write a byte deep and one at the top.
        unsafe {
            *(low as *mut u8) = 7;
            *((s.top - 1) as *mut u8) = 9;
        }
        s.mark_dirty();
        assert!(s.scrub());
        // SAFETY: the pages are still mapped read-write; the deep one reads back as zero.
        unsafe {
            assert_eq!(*(low as *const u8), 0, "deep page released");
            assert_eq!(*((s.top - 1) as *const u8), 9, "top pages kept");
        }
        assert!(!s.scrub(), "a clean stack is not scrubbed again");
        pool.free(s);
    }

    #[test]
    fn pool_scrub_takes_only_dirty_windows_and_respects_its_budget() {
        let pool = StackPool::new(64 * 1024);
        let size = pool.default_size();
        let mut out: Vec<GStack> = (0..5).map(|_| pool.alloc(size)).collect();
        for s in out.iter_mut().take(3) {
            s.mark_dirty();
        }
        for s in out {
            pool.free(s);
        }
        assert_eq!(pool.scrub(2), 2, "the budget bounds the syscalls");
        assert_eq!(pool.scrub(10), 1, "only the one dirty window left");
        assert_eq!(pool.scrub(10), 0, "clean windows are not scrubbed again");
        assert_eq!(pool.outstanding(), 0);
    }

    #[test]
    fn odd_sizes_get_a_power_of_two_class() {
        let pool = StackPool::new(64 * 1024);
        let size = pool.size_for(Some(100_000));
        assert_eq!(size, 128 * 1024);
        let s = pool.alloc(size);
        assert_eq!(s.usable(), 128 * 1024);
        pool.free(s);
        assert_eq!(
            pool.size_for(Some(60_000)),
            64 * 1024,
            "rounds to the default"
        );
        assert_eq!(pool.size_for(Some(1)), 16 * 1024);
        // A thousand distinct sizes make a handful of classes.
        let mut sizes: Vec<usize> = (1..1000).map(|i| pool.size_for(Some(i * 4099))).collect();
        sizes.sort_unstable();
        sizes.dedup();
        assert!(sizes.len() <= 12, "{sizes:?}");
        assert_eq!(pool.outstanding(), 0);
    }

    /// Writes `v` into the top page of `s`'s window (committed: the caller's).
    fn write_top(s: &GStack, v: u64) {
        // SAFETY: the window is the caller's and committed; its top page is usable.
        unsafe { *((s.top() - 8) as *mut u64) = v };
    }

    /// What `write_top` left there (zero after a release).
    fn read_top(s: &GStack) -> u64 {
        // SAFETY: as in `write_top`.
        unsafe { *((s.top() - 8) as *const u64) }
    }

    #[test]
    fn the_scavenger_releases_what_stayed_free_for_a_whole_period() {
        let pool = StackPool::new(64 * 1024);
        let size = pool.default_size();
        let mut out: Vec<GStack> = (0..10).map(|_| pool.alloc(size)).collect();
        for s in out.iter_mut() {
            s.mark_dirty();
            write_top(s, 0x5a5a);
        }
        for s in out.drain(..) {
            pool.free(s);
        }
        // (With guard markers the carve was a batch of 64: the rest wait clean in the pool.)
        let (free, _) = pool.free_windows();
        assert!(free >= 10);
        // The first period saw none free all along (the low-water mark starts at zero).
        assert!(!pool.scavenge(true, usize::MAX));
        assert_eq!(pool.free_windows(), (free, 0));
        // Three taken and given back (the last three freed): the rest stayed free all period.
        let mut three = Vec::new();
        pool.alloc_batch(size, 3, &mut three);
        let warm: Vec<usize> = three.iter().map(GStack::top).collect();
        for s in three.drain(..) {
            pool.free(s);
        }
        // A bounded round leaves the rest owed; the next round takes it.
        assert!(pool.scavenge(true, 2), "more is owed");
        assert_eq!(pool.free_windows(), (free - 2, 2));
        assert!(!pool.scavenge(false, usize::MAX));
        assert_eq!(pool.free_windows(), (3, free - 3));
        // Taken again, released windows come back committed: usable, zeroed, guarded.
        let mut all = Vec::new();
        while all.len() < free {
            pool.alloc_batch(size, free - all.len(), &mut all);
        }
        for s in &all {
            let v = read_top(s);
            let want = if warm.contains(&s.top()) { 0x5a5a } else { 0 };
            assert_eq!(
                v, want,
                "only the windows used last period kept their pages"
            );
            assert!(!s.is_released());
            assert_eq!(guard_hit(s.top() - s.usable() - PAGE), Some(size));
        }
        for s in all {
            pool.free(s);
        }
        assert_eq!(pool.outstanding(), 0);
    }

    #[test]
    fn released_windows_merge_back_into_one_map() {
        // With `mprotect` guards a released window must not stay a map of its own; with guard
        // markers there is one map whatever happens. Count the maps of this pool's segment.
        fn maps_in(lo: usize, hi: usize) -> usize {
            std::fs::read_to_string("/proc/self/maps")
                .expect("/proc/self/maps")
                .lines()
                .filter_map(|l| {
                    let (a, b) = l.split_whitespace().next()?.split_once('-')?;
                    let (a, b) = (
                        usize::from_str_radix(a, 16).ok()?,
                        usize::from_str_radix(b, 16).ok()?,
                    );
                    (a < hi && b > lo).then_some(())
                })
                .count()
        }
        let pool = StackPool::new(64 * 1024);
        let size = pool.default_size();
        let mut out: Vec<GStack> = (0..64).map(|_| pool.alloc(size)).collect();
        for s in out.iter_mut() {
            s.mark_dirty();
            write_top(s, 1);
        }
        let lo = out.iter().map(|s| s.top() - s.usable()).min().expect("64");
        let hi = out.iter().map(GStack::top).max().expect("64");
        // Every other window released: each committed one stands between two released ones.
        let (mut keep, mut go) = (Vec::new(), Vec::new());
        for (i, s) in out.into_iter().enumerate() {
            if i % 2 == 0 {
                keep.push(s);
            } else {
                go.push(s);
            }
        }
        for s in go {
            pool.free(s);
        }
        assert_eq!(pool.release_free(1000), 32);
        let mid = maps_in(lo, hi);
        for s in keep {
            pool.free(s);
        }
        assert_eq!(pool.release_free(1000), 32);
        let after = maps_in(lo, hi);
        if mprotect_mode() {
            assert!(mid <= 2 * 32 + 2, "{mid} maps for 32 committed windows");
            assert!(after <= 2, "{after} maps after all were released");
        } else {
            assert_eq!((mid, after), (1, 1));
        }
    }

    #[test]
    fn a_refused_reservation_is_retried_smaller() {
        // An address-space limit below 16 GiB refuses the first reservation; the class halves
        // its request until one fits. A limit is per process, so this runs in the class
        // directly: ask for a stride so large that 16 GiB holds only a few windows, and check
        // that segments hold what was reserved.
        let c = SizeClass::new(MAX_STACK);
        let mut one = Vec::new();
        c.alloc_batch(1, &mut one)
            .expect("a 1 GiB window fits 64-bit address space");
        let s = one.pop().expect("one window");
        {
            let st = c.state.lock();
            assert_eq!(st.segments[0].windows * c.stride, st.segments[0].len);
        }
        c.free(s);
        assert!(c.release());
    }
}
