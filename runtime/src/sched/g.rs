//! The goroutine record (Go's `g`): identity, status, wait reason, coroutine and stack.
//!
//! # Ownership
//!
//! A record is shared through [`GRef`] (a counted handle, `gslab.rs`), but its mutable part is owned by exactly one
//! party at a time, and moving the `GRef` moves that ownership:
//!
//! 1. a run queue or `runnext` slot (status `Runnable`);
//! 2. the M running it (status `Running`);
//! 3. a wait queue that will ready it (status `Waiting`): the park function hands the `GRef`
//!    over only after the goroutine has switched out, so a waker never resumes a goroutine that
//!    is still on its stack;
//! 4. a dead-G cache (status `Dead`), with or without its stack.
//!
//! Records are never freed while their runtime runs: dead ones are reused (Go's `gFree`), and
//! every record ever made is listed in `allgs` so that shutdown can find parked goroutines.
//! A `GRef` that outlives its runtime (kept by a wait queue in a user's value) points to a dead
//! record whose stack was already returned.

use std::any::Any;
use std::cell::UnsafeCell;
use std::fmt::Write as _;
use std::panic::Location;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::coro::{Coro, Suspender};
use crate::panic::chain::DeferState;

pub(crate) use super::entry::BLOCK;
use super::entry::{Block, EntryFn};

use super::Shared;

/// A shared handle to a goroutine record (an `Arc` whose memory comes from the runtime's
/// record slab, `gslab.rs`); see the module docs for who may touch what.
pub(crate) use super::gslab::GRef;

/// Go's `_Grunnable`, `_Grunning`, `_Gwaiting`, `_Gdead`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Status {
    Idle = 0,
    Runnable = 1,
    Running = 2,
    Waiting = 3,
    Dead = 4,
}

impl Status {
    fn from_u8(v: u8) -> Status {
        match v {
            1 => Status::Runnable,
            2 => Status::Running,
            3 => Status::Waiting,
            4 => Status::Dead,
            _ => Status::Idle,
        }
    }
}

/// Why a goroutine is parked; the text is what goroutine dumps and deadlock reports show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum WaitReason {
    /// Not waiting.
    None = 0,
    /// `WaitGroup::wait` (Go shows a semaphore acquire).
    WaitGroupWait,
    /// `JoinHandle::join`.
    Join,
    /// A channel receive.
    ChanReceive,
    /// A channel send.
    ChanSend,
    /// A receive from the nil channel (blocks forever).
    ChanReceiveNil,
    /// A send on the nil channel (blocks forever).
    ChanSendNil,
    /// A `select!` with cases.
    Select,
    /// A `select!` without a usable case (blocks forever).
    SelectNoCases,
    /// `gort::time::sleep`.
    Sleep,
    /// `Mutex` / `RwLock` (Go 1.19 shows these as a semaphore acquire).
    Semacquire,
    /// `Cond::wait`.
    CondWait,
    /// A socket read, write, accept or connect (the network poller).
    IoWait,
    /// `gort::block_on`: a future's waker has not fired yet.
    BlockOn,
}

impl WaitReason {
    /// Go's text for this reason, as goroutine dumps show it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            WaitReason::None => "running",
            WaitReason::WaitGroupWait => "semacquire",
            WaitReason::Join => "join",
            WaitReason::ChanReceive => "chan receive",
            WaitReason::ChanSend => "chan send",
            WaitReason::ChanReceiveNil => "chan receive (nil chan)",
            WaitReason::ChanSendNil => "chan send (nil chan)",
            WaitReason::Select => "select",
            WaitReason::SelectNoCases => "select (no cases)",
            WaitReason::Sleep => "sleep",
            WaitReason::Semacquire => "semacquire",
            WaitReason::CondWait => "sync.Cond.Wait",
            WaitReason::IoWait => "IO wait",
            WaitReason::BlockOn => "block_on",
        }
    }

    fn from_u8(v: u8) -> WaitReason {
        const ALL: [WaitReason; 14] = [
            WaitReason::None,
            WaitReason::WaitGroupWait,
            WaitReason::Join,
            WaitReason::ChanReceive,
            WaitReason::ChanSend,
            WaitReason::ChanReceiveNil,
            WaitReason::ChanSendNil,
            WaitReason::Select,
            WaitReason::SelectNoCases,
            WaitReason::Sleep,
            WaitReason::Semacquire,
            WaitReason::CondWait,
            WaitReason::IoWait,
            WaitReason::BlockOn,
        ];
        ALL.get(v as usize).copied().unwrap_or(WaitReason::None)
    }
}

/// Something to tell when a goroutine ends without completing normally (discarded at shutdown,
/// or panicked), so that a thread joining it does not wait forever.
pub(crate) trait ExitNotify: Send + Sync {
    /// The goroutine will never produce its result.
    fn abandoned(&self);
}

/// The part of a record that only its current owner touches (see the module docs).
pub(crate) struct GInner {
    /// The function of a goroutine that has not run yet. Its stack is taken from a cache
    /// when it first runs, so goroutines waiting in run queues hold no stack.
    pub(crate) entry: Option<EntryFn>,
    /// Usable stack size the goroutine will get.
    pub(crate) stack_size: usize,
    /// The coroutine, from the goroutine's first run until it ends.
    pub(crate) coro: Option<Coro>,
    /// Set by the goroutine when its coroutine starts; valid while it is alive.
    pub(crate) suspender: *const Suspender,
    /// Goroutine-local values (see `crate::local`).
    pub(crate) locals: Vec<(usize, Box<dyn Any + Send>)>,
    /// Told if the goroutine is abandoned (JoinHandle of `spawn`).
    pub(crate) exit_notify: Option<Arc<dyn ExitNotify>>,
    /// The segments it grew onto past its window (`sched::grow`); `None` until it first grows.
    pub(crate) growth: Option<Box<super::grow::Growth>>,
}

/// A goroutine (Go's `g`).
pub(crate) struct Goroutine {
    id: AtomicU64,
    status: AtomicU8,
    wait_reason: AtomicU8,
    /// While the goroutine waits on its own thread because it is unwinding a panic
    /// (`park::block_current`; its status stays `Running`): what it waits for, for dumps. 0
    /// (`WaitReason::None`) otherwise.
    unwind_wait: AtomicU8,
    /// The user's call that last parked it (a channel operation, a lock, a sleep), recorded
    /// through `#[track_caller]` by `sched::park`: one pointer store per park. Null if never.
    park_loc: AtomicPtr<Location<'static>>,
    /// Where it was started (`go!`, `spawn`), and the id of the goroutine that started it (0:
    /// a thread outside the runtime). Null for main.
    created_at: AtomicPtr<Location<'static>>,
    created_by: AtomicU64,
    /// The entry function's name, as a `fn() -> &'static str` (`sched::EntryName`; 0: none):
    /// one word, read without allocating by the stack-overflow report.
    entry_name: AtomicUsize,
    /// When it last parked, in sysmon's coarse seconds (Go's `waitsince`): dumps print how
    /// long a goroutine has been waiting.
    wait_since: AtomicU32,
    /// Go's `stackguard0`: a checked call (`sched::grow`) whose stack pointer is below it
    /// continues on a further segment. The low end of the current stack plus the red zone;
    /// 0 while growth is refused. Written only by the goroutine (and by the M starting it).
    stackguard: AtomicUsize,
    /// The runtime this record belongs to.
    pub(crate) shared: Arc<Shared>,
    /// Copy-out of the stack while parked (`sched::copyout`).
    pub(crate) out: super::copyout::StackOut,
    inner: UnsafeCell<GInner>,
    /// The scratch block: the goroutine's function until it starts (`EntryFn`, owned by
    /// `inner.entry`), then its one blocked channel send or receive (`chan::OpBox`), so neither
    /// costs an allocation (at a million parked goroutines, a million `malloc`s grow an arena a
    /// page at a time, each `mprotect` stalling the other Ms). Once the goroutine runs, only
    /// code running on it touches the block; `op_used` says whether an operation holds it.
    scratch: UnsafeCell<Block>,
    op_used: UnsafeCell<bool>,
    /// Defer list and panic chain, made on first use (most goroutines never use the list or
    /// panic, and a parked goroutine's record should stay small); kept when the record is
    /// reused. Touched only by code running on the goroutine (and by shutdown's discard,
    /// which owns a dead record).
    defer: UnsafeCell<Option<Box<DeferState>>>,
}

// SAFETY: `inner` is accessed only by the record's current owner (module docs), and ownership
// moves between threads only through synchronising operations (run-queue push/steal, the wait
// queue's lock, the scheduler lock). Everything else is atomic or immutable. Values inside
// (`Coro`, locals) are `Send` or belong to a goroutine, whose migration between threads is the
// documented contract of `go!`.
unsafe impl Send for Goroutine {}
// SAFETY: as above; shared references only read atomics and `shared`.
unsafe impl Sync for Goroutine {}

impl Goroutine {
    pub(crate) fn new(shared: Arc<Shared>) -> Goroutine {
        Goroutine {
            id: AtomicU64::new(0),
            status: AtomicU8::new(Status::Idle as u8),
            wait_reason: AtomicU8::new(WaitReason::None as u8),
            unwind_wait: AtomicU8::new(WaitReason::None as u8),
            park_loc: AtomicPtr::new(std::ptr::null_mut()),
            created_at: AtomicPtr::new(std::ptr::null_mut()),
            created_by: AtomicU64::new(0),
            entry_name: AtomicUsize::new(0),
            wait_since: AtomicU32::new(0),
            stackguard: AtomicUsize::new(0),
            shared,
            out: super::copyout::StackOut::new(),
            inner: UnsafeCell::new(GInner {
                entry: None,
                stack_size: 0,
                coro: None,
                suspender: std::ptr::null(),
                locals: Vec::new(),
                exit_notify: None,
                growth: None,
            }),
            scratch: UnsafeCell::new(Block::new()),
            op_used: UnsafeCell::new(false),
            defer: UnsafeCell::new(None),
        }
    }

    /// The scratch block, for the `EntryFn` of a goroutine about to be started on this record.
    /// Only the record's owner may use it, and only while the record is dead or new (no
    /// entry, no operation in it).
    #[inline]
    pub(crate) fn scratch(&self) -> std::ptr::NonNull<Block> {
        // SAFETY: `UnsafeCell::get` never returns null.
        unsafe { std::ptr::NonNull::new_unchecked(self.scratch.get()) }
    }

    /// Whether a blocked channel operation holds the scratch block (for assertions).
    #[inline]
    pub(crate) fn op_block_taken(&self) -> bool {
        // SAFETY: read by the record's owner (a dead or new record) or its running goroutine.
        unsafe { *self.op_used.get() }
    }

    /// The scratch block for a blocked channel operation, if it is free (see the field). Only
    /// the running goroutine may call this (its entry was consumed before its function
    /// started); the block holds up to [`BLOCK`] bytes aligned to 16.
    #[inline]
    pub(crate) fn take_op_block(&self) -> Option<std::ptr::NonNull<u8>> {
        // SAFETY: only the running goroutine touches `op_used` (the field's rule).
        let used = unsafe { &mut *self.op_used.get() };
        if *used {
            return None;
        }
        *used = true;
        Some(self.scratch().cast())
    }

    /// Gives the block back.
    ///
    /// # Safety
    /// The caller is the running goroutine, got the block from `take_op_block` of this
    /// record, and has dropped what it put there (which no queue refers to any more).
    #[inline]
    pub(crate) unsafe fn put_op_block(&self) {
        // SAFETY: per the contract.
        unsafe { *self.op_used.get() = false };
    }

    /// The goroutine's defer list and panic chain, made on first use. Only the goroutine
    /// itself (while running) may call this.
    #[inline]
    pub(crate) fn defer_state(&self) -> *mut DeferState {
        // SAFETY: only the running goroutine touches its state (see the field).
        let slot = unsafe { &mut *self.defer.get() };
        &mut **slot.get_or_insert_with(|| Box::new(DeferState::new()))
    }

    /// The state if it was ever made (for the goroutine's end and for discard, which must not
    /// allocate one). Same rule as `defer_state`, or the caller owns a dead record.
    #[inline]
    pub(crate) fn defer_state_if_any(&self) -> Option<*mut DeferState> {
        // SAFETY: as in `defer_state`.
        let slot = unsafe { &mut *self.defer.get() };
        slot.as_deref_mut().map(|s| s as *mut DeferState)
    }

    /// The goroutine id (Go's `goid`): 1 for main, then increasing.
    #[inline]
    pub(crate) fn id(&self) -> u64 {
        self.id.load(Ordering::Relaxed)
    }

    #[inline]
    pub(crate) fn set_id(&self, id: u64) {
        self.id.store(id, Ordering::Relaxed)
    }

    #[inline]
    pub(crate) fn status(&self) -> Status {
        Status::from_u8(self.status.load(Ordering::Acquire))
    }

    /// Sets the status. Release: publishes the owner's writes to `inner` to whoever observes the
    /// new status (shutdown's scan of `allgs`).
    #[inline]
    pub(crate) fn set_status(&self, s: Status) {
        self.status.store(s as u8, Ordering::Release)
    }

    /// `Waiting` to `Runnable`, unless something else (shutdown's discard) changed the status
    /// first; true if this call did it. For wake-ups from outside the goroutine's runtime.
    pub(crate) fn make_runnable_from_waiting(&self) -> bool {
        // AcqRel: pairs with `claim_dead`; Release also publishes, as `set_status` does.
        self.status
            .compare_exchange(
                Status::Waiting as u8,
                Status::Runnable as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }

    /// Marks the record dead unless it already is or is running; true if this call did it.
    /// Used by shutdown, where a racing `ready` from outside the runtime may discard the same
    /// record, and where a goroutine may still run on an M left to finish its blocking call.
    pub(crate) fn claim_dead(&self) -> bool {
        let mut cur = self.status.load(Ordering::Acquire);
        loop {
            if cur == Status::Dead as u8 || cur == Status::Running as u8 {
                return false;
            }
            // AcqRel: pairs with `set_status` (Release) so the winner sees the owner's writes.
            match self.status.compare_exchange_weak(
                cur,
                Status::Dead as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(c) => cur = c,
            }
        }
    }

    #[inline]
    pub(crate) fn wait_reason(&self) -> WaitReason {
        WaitReason::from_u8(self.wait_reason.load(Ordering::Relaxed))
    }

    #[inline]
    pub(crate) fn set_wait_reason(&self, r: WaitReason) {
        self.wait_reason.store(r as u8, Ordering::Relaxed)
    }

    /// Records the user's call that parks the goroutine now, and when (coarsely).
    #[inline]
    pub(crate) fn set_park_loc(&self, l: &'static Location<'static>) {
        self.park_loc
            .store(l as *const Location<'static> as *mut _, Ordering::Relaxed);
        self.wait_since.store(
            self.shared.sysmon.coarse_secs.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
    }

    /// Whole minutes the goroutine has been waiting, as Go's dumps print them.
    pub(crate) fn waiting_minutes(&self) -> u32 {
        let now = self.shared.sysmon.coarse_secs.load(Ordering::Relaxed);
        now.saturating_sub(self.wait_since.load(Ordering::Relaxed)) / 60
    }

    /// Records where and by whom the goroutine was started.
    pub(crate) fn set_created(&self, at: &'static Location<'static>, by: u64) {
        self.created_at
            .store(at as *const Location<'static> as *mut _, Ordering::Relaxed);
        self.created_by.store(by, Ordering::Relaxed);
        self.park_loc.store(std::ptr::null_mut(), Ordering::Relaxed);
    }

    /// Records the entry function's name (`init_g`).
    pub(crate) fn set_entry_name(&self, name: super::EntryName) {
        self.entry_name.store(name as usize, Ordering::Relaxed);
    }

    /// The entry function's name (`std::any::type_name` of the function or closure `go!`
    /// started). Async-signal-safe: a load and a call of a function that returns a constant.
    pub(crate) fn entry_name(&self) -> Option<&'static str> {
        match self.entry_name.load(Ordering::Relaxed) {
            0 => None,
            // SAFETY: only `EntryName` function pointers are stored (`set_entry_name`).
            f => Some(unsafe { std::mem::transmute::<usize, super::EntryName>(f) }()),
        }
    }

    /// Where and by whom the goroutine was started (`go!`'s location, the creator's id; the
    /// id is 0 for a plain thread), if it was (not main).
    pub(crate) fn created(&self) -> Option<(&'static Location<'static>, u64)> {
        Self::load_loc(&self.created_at).map(|at| (at, self.created_by.load(Ordering::Relaxed)))
    }

    fn load_loc(p: &AtomicPtr<Location<'static>>) -> Option<&'static Location<'static>> {
        let p = p.load(Ordering::Relaxed);
        // SAFETY: only `&'static Location` values are stored.
        (!p.is_null()).then(|| unsafe { &*p })
    }

    /// Where the goroutine last parked, if it ever did.
    pub(crate) fn park_loc(&self) -> Option<&'static Location<'static>> {
        Self::load_loc(&self.park_loc)
    }

    /// Go's goroutine header with gort's locations, as deadlock reports, crash reports and
    /// dumps print it: `goroutine N [state]:`, then `where` (the parked call, or the panic
    /// site) tab-indented, then `created by goroutine M` and the `go!`/`spawn` site.
    pub(crate) fn describe(&self, out: &mut String, state: &str, at: Option<&str>) {
        let _ = writeln!(out, "goroutine {} [{}]:", self.id(), state);
        if let Some(at) = at {
            let _ = writeln!(out, "\t{at}");
        }
        self.describe_created(out);
    }

    /// The `created by` lines of `describe` (nothing for main).
    pub(crate) fn describe_created(&self, out: &mut String) {
        if let Some((c, by)) = self.created() {
            match by {
                0 => out.push_str("created by a thread outside the runtime\n"),
                by => {
                    let _ = writeln!(out, "created by goroutine {by}");
                }
            }
            let _ = writeln!(out, "\t{}:{}:{}", c.file(), c.line(), c.column());
        }
    }

    /// `describe` for a parked goroutine: its wait reason and the call it parked in. A
    /// goroutine waiting on its thread while it unwinds is shown as waiting, as Go shows it.
    pub(crate) fn describe_waiting(&self, out: &mut String) {
        let status = self.status();
        let reason = match status {
            Status::Runnable => None,
            Status::Running => Some(WaitReason::from_u8(
                self.unwind_wait.load(Ordering::Relaxed),
            ))
            .filter(|r| *r != WaitReason::None),
            Status::Waiting | Status::Dead | Status::Idle => Some(self.wait_reason()),
        };
        let at = self
            .park_loc()
            .filter(|_| reason.is_some())
            .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
        let state = match reason {
            None if status == Status::Runnable => "runnable".to_string(),
            None => "running".to_string(),
            Some(r) => match self.waiting_minutes() {
                0 => r.as_str().to_string(),
                1 => format!("{}, 1 minute", r.as_str()),
                n => format!("{}, {n} minutes", r.as_str()),
            },
        };
        self.describe(out, &state, at.as_deref());
    }

    /// Marks the running goroutine as waiting on its own thread for `r` while it unwinds, or
    /// (`WaitReason::None`) done waiting.
    pub(crate) fn set_unwind_wait(&self, r: WaitReason) {
        self.unwind_wait.store(r as u8, Ordering::Relaxed);
    }

    /// The stack guard (`sched::grow`).
    #[inline(always)]
    pub(crate) fn stackguard(&self) -> usize {
        self.stackguard.load(Ordering::Relaxed)
    }

    /// Sets the stack guard: by the goroutine, or by the M that starts it.
    #[inline]
    pub(crate) fn set_stackguard(&self, v: usize) {
        self.stackguard.store(v, Ordering::Relaxed);
    }

    /// The goroutine's stack pointer when it last parked (0: never).
    pub(crate) fn park_sp(&self) -> usize {
        self.out.sp.load(Ordering::Relaxed)
    }

    /// Where `coro::switch_out` records the stack pointer of a parking goroutine.
    #[inline]
    pub(crate) fn park_sp_cell(&self) -> &AtomicUsize {
        &self.out.sp
    }

    /// Starts loading the parked goroutine's stack near where it will resume into the cache,
    /// while its waker still runs: with thousands of goroutines, the lines (and the page) a
    /// resumed goroutine first touches are cold, and the switch would wait for them.
    #[inline]
    pub(crate) fn prefetch_stack(&self) {
        #[cfg(target_arch = "x86_64")]
        {
            let sp = self.park_sp();
            if sp == 0 {
                return;
            }
            // The record's owner-only part (the coroutine handle the M resumes through).
            let rec = self.inner.get() as usize;
            for a in [rec, rec + 64] {
                // SAFETY: as below: a prefetch is only a hint.
                unsafe {
                    std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                        a as *const i8,
                    )
                };
            }
            // The switch saves registers below `sp`; the frames it returns through lie above.
            let mut a = sp.saturating_sub(64) & !63;
            while a < sp + 192 {
                // SAFETY: a prefetch is a hint: it never faults, even on an unmapped or
                // guard page, and SSE is part of the x86_64 baseline.
                unsafe {
                    std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                        a as *const i8,
                    )
                };
                a += 64;
            }
        }
    }

    /// The owner-only part.
    ///
    /// # Safety
    /// The caller must be the record's current owner (module docs) and must not hold another
    /// reference obtained from this method at the same time.
    #[inline]
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn inner(&self) -> &mut GInner {
        // SAFETY: exclusive by the caller's contract.
        unsafe { &mut *self.inner.get() }
    }
}
