//! Goroutine scheduler, after Go's `runtime/proc.go`.
//!
//! # Model
//!
//! - **G** (`g.rs`, [`Goroutine`]): a goroutine: a coroutine on its own fixed stack window.
//! - **M** (`m.rs`, `Machine`): an OS thread. It runs goroutines only while it holds a P.
//! - **P** (`p.rs`, `Processor`): the right to run Go code, GOMAXPROCS of them, each with a
//!   local run queue (256), a `runnext` slot and caches of dead Gs and goroutine ids.
//!
//! The design goals are Go's: goroutines are cheap to start (a pooled stack, a pooled record,
//! no syscall, no lock in the steady state), a goroutine readied by another runs next on the
//! same P (hand-offs stay on one core, hot in cache), and no P stays idle while another has
//! queued work (stealing, and the spinning-M protocol of `idle.rs`).
//!
//! # Schedule loop (per M; `m.rs`)
//!
//! ```text
//! schedule: loop {
//!     g = find_runnable()      // runnext, local queue, global queue every 61 ticks or when
//!                              // local is empty, (netpoll), steal from other Ps, else sleep
//!     execute(g)               // resume the coroutine until it yields, parks or returns
//! }
//! ```
//!
//! Rejected alternatives: one global queue (a lock per schedule: 10x slower with 2+ Ms);
//! thread-per-core without stealing (a spawner's children pile up on its core; the "work
//! spreads" test catches that); waking an M for every readied goroutine (a futex per
//! hand-off; see `idle.rs`).
//!
//! Differences from Go, and why:
//! - `runnext` does not wake another M when it merely replaces an empty slot: the readied
//!   goroutine is not stealable until it is displaced into the queue, so a wake-up would only
//!   find nothing (tokio does the same). A goroutine that never blocks can then delay its
//!   `runnext` partner until sysmon ends its time slice (`sysmon.rs`: a slice of 10 ms with
//!   goroutines waiting is asked to end).
//! - Go's `Gosched` puts the goroutine on the global queue; `yield_now` puts it at the back of
//!   the local queue, which other Ps steal from anyway, and costs no shared write.
//!
//! # Shutdown (`gort::run` returning)
//!
//! The runtime stops its Ms (one still in goroutine code after 20 ms is left detached to
//! finish on its own), discards every goroutine still alive without running any of its code
//! (values on discarded stacks are leaked, not dropped: as in Go, no user code runs after main
//! returns) and unmaps the stacks. A wait queue outside the runtime may still hold a record; a
//! later `ready` of it sees a dead record and drops it. The procedure, step by step, is
//! written once, at its code: `Shared::shutdown` (`shared.rs`). `#[gort::main]` skips it: the
//! process exits.

pub(crate) mod checkdead;
pub(crate) mod copyout;
mod entry;
pub(crate) mod g;
pub(crate) mod grow;
mod gslab;
pub(crate) mod idle;
pub(crate) mod m;
pub(crate) mod p;
pub(crate) mod park;
pub(crate) mod poller;
pub(crate) mod pslot;
pub(crate) mod runnext;
mod shared;
pub(crate) mod syscall;
pub(crate) mod sysmon;
pub(crate) mod timers;
pub(crate) mod trace;

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::coro::{Coro, GStack, Suspender, Switch};
use crate::panic::report::{self, TopEnd};

pub(crate) use checkdead::{PROCESS_RUNTIME, RUNTIMES, RUNTIME_THREADS};
use entry::EntryFn;
pub(crate) use g::{ExitNotify, GRef, Goroutine, Status, WaitReason};
use m::MContext;
pub(crate) use shared::{leak, Shared};
pub(crate) use timers::{add_timer, add_timer_here, run_due_timers};

/// The global run queue (Go's `sched.runq`).
pub(crate) type Injector = crossbeam_deque::Injector<GRef>;

/// What a parking goroutine hands its M: called on the M's stack with the goroutine's record,
/// after the goroutine has switched out. Returns the record to put it straight back on the run
/// queue (Go's `unlockf` returning false), or `None` once it has been handed to a waker.
pub(crate) type ParkFn = dyn FnMut(GRef) -> Option<GRef>;

/// How the runtime ends.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum RunMode {
    /// `gort::run`: return main's value to the caller, shut down, re-raise panics.
    Embedded,
    /// `#[gort::main]`: an unrecovered panic prints Go's report and exits the process with 2.
    Process,
}

/// Runtime settings (from `Builder`).
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) procs: usize,
    pub(crate) stack_size: usize,
    pub(crate) thread_name: String,
    pub(crate) mode: RunMode,
    /// Run by `#[gort::test]`: the test harness's main thread only waits for results, so
    /// deadlock detection does not count it as a thread that could wake a goroutine.
    pub(crate) test_harness: bool,
    /// The most Ms the runtime may start (Go's `SetMaxThreads`, default 10,000).
    pub(crate) max_threads: usize,
    /// `GODEBUG=schedtrace=MS`: sysmon prints the scheduler's state every MS milliseconds
    /// (`scheddetail=1`: every P, M and G too).
    pub(crate) schedtrace_ms: u64,
    pub(crate) scheddetail: bool,
    /// Copy out the stacks of long-parked goroutines (`copyout`).
    pub(crate) copy_out: bool,
}

thread_local! {
    /// The M running on this thread, if any. Const-initialised and without a destructor, so
    /// the stack-overflow signal handler may read it.
    static CTX: Cell<*const MContext> = const { Cell::new(std::ptr::null()) };
    /// Runtimes entered by a plain thread (`Handle::enter`), innermost last.
    static ENTERED: RefCell<Vec<Arc<Shared>>> = const { RefCell::new(Vec::new()) };
}

/// The M on this thread. Not inlined, so that a goroutine that migrated between threads never
/// reuses a thread-local address computed on the previous one.
#[inline(never)]
pub(crate) fn ctx_ptr() -> *const MContext {
    CTX.with(|c| c.get())
}

/// The goroutine running on this thread, if any.
#[inline]
pub(crate) fn current_g() -> Option<*const Goroutine> {
    let ctx = ctx_ptr();
    if ctx.is_null() {
        return None;
    }
    // SAFETY: a non-null CTX points to the MContext on this M's thread stack, alive while the
    // M's schedule loop (which is below us on this thread) runs.
    let g = unsafe { (*ctx).curg.get() };
    (!g.is_null()).then_some(g)
}

/// The goroutine running on this thread, for a signal handler (async-signal-safe: a
/// thread-local read).
fn current_g_for_signal() -> Option<&'static Goroutine> {
    // SAFETY: a running goroutine's record is alive (its M holds a GRef to it), and records
    // are never freed while their runtime runs; the handler ends the process.
    current_g().map(|g| unsafe { &*g })
}

/// The overflow report's goroutine lines (`coro::signal`'s hook, lent by `lend_to_coro`):
/// Go's `goroutine N [running]:` header, the entry function and where it was started.
/// Async-signal-safe: a thread-local read, the record's fields, `write(2)`.
fn describe_for_signal() {
    use crate::coro::signal::{fmt_u64, write_stderr};
    let mut b = [0u8; 20];
    if let Some(g) = current_g_for_signal() {
        // Go names every frame; gort cannot walk them here (symbolising allocates, and the
        // goroutine may have overflowed inside the allocator), so it names what the
        // record holds: the entry function and where the goroutine was started.
        write_stderr(b"\ngoroutine ");
        write_stderr(fmt_u64(g.id(), &mut b));
        write_stderr(b" [running]:\n");
        if let Some(name) = g.entry_name() {
            write_stderr(b"\t");
            write_stderr(name.as_bytes());
            write_stderr(b"(...)\n\t\t(entry function; the frames above it are not shown)\n");
        }
        if let Some((at, by)) = g.created() {
            if by == 0 {
                write_stderr(b"created by a thread outside the runtime\n\t");
            } else {
                write_stderr(b"created by goroutine ");
                write_stderr(fmt_u64(by, &mut b));
                write_stderr(b"\n\t");
            }
            write_stderr(at.file().as_bytes());
            write_stderr(b":");
            write_stderr(fmt_u64(u64::from(at.line()), &mut b));
            write_stderr(b":");
            write_stderr(fmt_u64(u64::from(at.column()), &mut b));
            write_stderr(b"\n");
        }
    }
}

/// Lends `coro` what it needs of the scheduler (its overflow report's lines, the
/// refused-growth limit, `throw`): once per process, from `gort`'s `process_init`.
pub(crate) fn lend_to_coro() {
    crate::coro::signal::set_sched_hooks(crate::coro::signal::SchedHooks {
        refused_limit: grow::refused_limit_for_signal,
        describe_goroutine: describe_for_signal,
        throw: throw_from_coro,
    });
}

/// `coro`'s fatal errors go through the scheduler's `throw` (its report names the goroutine
/// and `at`, coro's call site).
fn throw_from_coro(msg: &str, at: &'static std::panic::Location<'static>) -> ! {
    crate::panic::throw_at(msg, at)
}

/// The runtime of the calling goroutine or entered thread.
pub(crate) fn current_shared() -> Option<Arc<Shared>> {
    with_current_shared(Arc::clone)
}

/// `f` on the runtime of the calling goroutine or entered thread, without touching its
/// reference count (a shared counter every M would write).
pub(crate) fn with_current_shared<R>(f: impl FnOnce(&Arc<Shared>) -> R) -> Option<R> {
    let ctx = ctx_ptr();
    if !ctx.is_null() {
        // SAFETY: see `current_g`.
        return Some(f(unsafe { &(*ctx).shared }));
    }
    ENTERED.with(|e| e.borrow().last().map(f))
}

#[track_caller]
fn outside_runtime(what: &str) -> ! {
    panic!(
        "gort: {what} must be called from a goroutine (inside gort::run, #[gort::main] or \
         #[gort::test])"
    )
}

/// Panics with a clear message unless called from a goroutine; returns the running goroutine.
#[track_caller]
pub(crate) fn expect_g(what: &str) -> *const Goroutine {
    match current_g() {
        Some(g) => g,
        None => outside_runtime(what),
    }
}

/// The body every goroutine's coroutine runs: the goroutine's top, where an unwind that no
/// frame stopped ends (Goexit, or an unrecovered panic: Go crashes the program).
///
/// Its frame stays on the stack of every parked goroutine (and is copied by copy-out), so it is
/// kept small: the function is taken out of the record inside `run_entry`, and everything
/// after it returns is in `goroutine_end`.
fn goroutine_main(gp: *const Goroutine, sus: &Suspender) {
    // SAFETY: the record outlives its coroutine, and the goroutine owns `inner` while running.
    unsafe { (*gp).inner().suspender = sus };
    let caught = panic::catch_unwind(AssertUnwindSafe(|| run_entry(gp))).err();
    goroutine_end(gp, caught);
}

/// Takes the goroutine's function out of its record and calls it.
#[inline(never)]
fn run_entry(gp: *const Goroutine) {
    // SAFETY: as in `goroutine_main`.
    let f = unsafe { (*gp).inner() }
        .entry
        .take()
        .unwrap_or_else(|| crate::panic::throw("an unstarted goroutine has no function"));
    f.call();
}

/// The goroutine's function returned, panicked (`caught`) or called Goexit.
#[inline(never)]
fn goroutine_end(gp: *const Goroutine, caught: Option<Box<dyn Any + Send>>) {
    // SAFETY: as in `goroutine_main`.
    let g = unsafe { &*gp };
    // What no frame stopped: a Goexit, or a panic with its report. `defer_state` is the
    // running goroutine's own.
    // SAFETY: as above.
    let top = |payload| report::at_top(unsafe { &mut *g.defer_state() }, payload, g);
    let mut end = caught.map(top);
    if !matches!(end, Some(TopEnd::Panic(..))) {
        // Goroutine-local values are dropped here, on the goroutine's stack, while it still
        // runs (also after a Goexit).
        let dropped = panic::catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: as above.
            drop(std::mem::take(unsafe { &mut (*gp).inner().locals }));
        }));
        if let Err(payload) = dropped {
            end = Some(top(payload));
        }
    }
    if let Some(st) = g.defer_state_if_any() {
        // SAFETY: as above.
        let st = unsafe { &mut *st };
        if !st.is_clean() {
            st.reset();
        }
    }
    let Some(end) = end else { return };
    // SAFETY: as above.
    if let Some(n) = unsafe { g.inner() }.exit_notify.take() {
        n.abandoned();
    }
    match end {
        TopEnd::Goexit if g.id() == 1 => g.shared.main_goexited.store(true, Ordering::SeqCst),
        TopEnd::Goexit => {}
        TopEnd::Panic(payload, report) => fatal(&g.shared, payload, report),
    }
}

/// An unrecovered panic or a fatal error: Go crashes the whole program. Under `gort::run` the
/// caller re-raises it instead.
fn fatal(shared: &Shared, payload: Box<dyn Any + Send>, report: String) {
    match shared.config.mode {
        RunMode::Process => crate::panic::die(&report),
        RunMode::Embedded => shared.finish(Some((payload, report))),
    }
}

/// A task registered on the poller (`PollDesc::poll_ready`): makes sure some M polls. On an
/// M nothing is needed (its goroutine parks next, or its schedule loop polls), nor when an M
/// is blocked in the poll already. A plain thread's task may find every M asleep on its note
/// (they went idle with nobody waiting on the poller) or busy: each live runtime with an idle
/// P starts an M (`wakep`), which polls before it sleeps again and, the last to go idle, blocks
/// in the poll. A busy runtime's sysmon polls within 10 ms anyway.
pub(crate) fn wake_poller() {
    if !ctx_ptr().is_null() || poller::get().is_some_and(|p| p.is_blocked()) {
        return;
    }
    hand_poll_role();
}

/// Whether a task registered on the poller will be seen: on an M, or while any runtime is live
/// in the process (its Ms poll). A plain thread's task with no runtime at all would wait for
/// ever: `Sock::poll_stream` fails it with a clear error instead.
pub(crate) fn poller_is_served() -> bool {
    !ctx_ptr().is_null()
        || RUNTIMES
            .lock()
            .iter()
            .filter_map(std::sync::Weak::upgrade)
            .any(|s| !s.is_shutdown())
}

/// Starts an M on each live runtime with an idle P, so that one polls (`wake_poller`; a
/// runtime's shutdown while tasks wait on the poller).
pub(crate) fn hand_poll_role() {
    let live: Vec<Arc<Shared>> = RUNTIMES
        .lock()
        .iter()
        .filter_map(std::sync::Weak::upgrade)
        .filter(|s| !s.is_shutdown())
        .collect();
    for s in &live {
        idle::wakep(s);
    }
}

/// Where a goroutine was started and by which goroutine (0: a thread outside the runtime);
/// `None` for main.
pub(crate) type Created = Option<(&'static std::panic::Location<'static>, u64)>;

/// The name of a goroutine's entry function (`std::any::type_name` of it), for reports that
/// cannot walk its frames (a stack overflow).
pub(crate) type EntryName = fn() -> &'static str;

/// Prepares `g` (a dead or new record) to run `f` on a stack of `size` bytes, which it gets
/// when it first runs (`start_g`).
fn init_g<F>(
    g: &GRef,
    f: F,
    size: usize,
    notify: Option<Arc<dyn ExitNotify>>,
    created: Created,
    entry: EntryName,
) where
    F: FnOnce() + Send + 'static,
{
    // SAFETY: the record is dead or new and was just taken from a cache by the caller, which
    // therefore owns it.
    let inner = unsafe { g.inner() };
    debug_assert!(inner.coro.is_none() && inner.entry.is_none() && !g.op_block_taken());
    // SAFETY: a dead or new record's scratch block holds nothing (no entry, and its last
    // goroutine's operations were dropped before it ended); it is the entry's until the
    // goroutine starts and consumes it (`run_entry`).
    inner.entry = Some(unsafe { EntryFn::new_in(f, g.scratch()) });
    inner.stack_size = size;
    inner.exit_notify = notify;
    if let Some((at, by)) = created {
        g.set_created(at, by);
    }
    g.set_entry_name(entry);
    g.set_wait_reason(WaitReason::None);
    g.set_status(Status::Runnable);
}

/// Gives a goroutine that is about to run for the first time its stack and coroutine.
fn start_g(g: &GRef, stack: GStack) {
    // SAFETY: the caller (the M about to run `g`) owns the record.
    let inner = unsafe { g.inner() };
    let gp = GRef::as_ptr(g);
    g.out.set_window(stack.top(), stack.usable());
    g.set_stackguard(grow::guard_for(stack.top(), stack.usable()));
    inner.coro = Some(Coro::new(stack, move |sus| goroutine_main(gp, sus)));
}

/// Go's `newproc`: starts `f` as a new goroutine and returns its id. Inside a goroutine the new
/// goroutine goes to the current P's `runnext`; from a plain thread that entered a runtime, to
/// the global queue. The caller's location is recorded as where it was created.
#[track_caller]
pub(crate) fn spawn<F>(
    f: F,
    stack_size: Option<usize>,
    notify: Option<Arc<dyn ExitNotify>>,
    entry: EntryName,
) -> u64
where
    F: FnOnce() + Send + 'static,
{
    let at = std::panic::Location::caller();
    let ctx = ctx_ptr();
    let (f, notify) = if ctx.is_null() {
        (f, notify)
    } else {
        // SAFETY: see `current_g`.
        let ctx = unsafe { &*ctx };
        match ctx.spawn_local(f, stack_size, notify, at, entry) {
            Ok(id) => return id,
            Err(back) => back, // the M lost its P: spawn as a plain thread would
        }
    };
    let Some(shared) = current_shared() else {
        panic!(
            "gort: go!/spawn called outside a gort runtime; use gort::run, #[gort::main], or \
             Handle::enter on this thread"
        )
    };
    let by = current_g().map_or(0, |g| {
        // SAFETY: the running goroutine's record is alive while it runs.
        unsafe { (*g).id() }
    });
    spawn_external(&shared, f, stack_size, notify, Some((at, by)), entry)
}

/// Spawns onto `shared` from outside its Ms.
pub(crate) fn spawn_external<F>(
    shared: &Arc<Shared>,
    f: F,
    stack_size: Option<usize>,
    notify: Option<Arc<dyn ExitNotify>>,
    created: Created,
    entry: EntryName,
) -> u64
where
    F: FnOnce() + Send + 'static,
{
    let size = shared.stacks.size_for(stack_size);
    let g = shared.gfget_global();
    init_g(&g, f, size, notify, created, entry);
    let id = shared.take_goid(1);
    g.set_id(id);
    shared.ext_live.fetch_add(1, Ordering::Relaxed);
    shared.inject(g);
    id
}

/// Go's `goready`: makes a parked goroutine runnable. From an M of the same runtime it goes to
/// that P's `runnext` (it runs next, in the readier's time slice); from anywhere else, to its
/// runtime's global queue.
pub(crate) fn ready(g: GRef) {
    g.prefetch_stack();
    g.set_wait_reason(WaitReason::None);
    let ctx = ctx_ptr();
    let g = if ctx.is_null() {
        g
    } else {
        // SAFETY: see `current_g`.
        let ctx = unsafe { &*ctx };
        if Arc::ptr_eq(&ctx.shared, &g.shared) {
            match ctx.ready_local(g) {
                Ok(()) => return,
                Err(g) => g, // this M holds no P (sysmon took it): as from elsewhere
            }
        } else {
            g
        }
    };
    // From anywhere else (a plain thread, another runtime), `g`'s runtime may be shutting
    // down and discarding `g` at this moment (`Shared::discard`). Only a goroutine still
    // waiting becomes runnable; a discarded one stays dead (overwriting its status made both
    // sides discard it: a leaked stack segment, or a double free).
    if !g.make_runnable_from_waiting() {
        return;
    }
    let shared = g.shared.clone();
    shared.inject(g);
}

/// Whether the caller is a goroutine that may park. Not while it unwinds a panic: Rust counts
/// panics in progress per thread (`std::thread::panicking`, and `catch_unwind` decrements the
/// count of the thread that catches), so a goroutine whose `Drop` code blocks during an unwind
/// must finish the unwind on the thread that started it. It blocks its M instead, as a
/// blocking call does (the channel or lock wakes it through a thread signal). Deferred calls
/// run after the frame caught the panic, so they park as usual.
#[inline]
pub(crate) fn may_park() -> bool {
    current_g().is_some() && !std::thread::panicking()
}

/// Go's `gopark`: suspends the running goroutine. `f` runs on the M's stack after the switch,
/// with the goroutine's record, and must hand the record to whoever will `ready` it (then
/// return `None`), or return it to resume at once. Locks that `f` releases are held across the
/// switch, which is what makes "check, then park" free of lost wake-ups.
///
/// The caller's location (the user's blocking call, through `#[track_caller]` on every
/// function between it and here) is recorded for deadlock reports and goroutine dumps.
#[track_caller]
#[inline(always)]
pub(crate) fn park<F>(reason: WaitReason, f: F)
where
    F: FnOnce(GRef) -> Option<GRef>,
{
    let gp = expect_g("a blocking operation");
    // Callers check `may_park` first (a second look on every park would only repeat theirs):
    // switching out here would let the unwind continue on another thread and corrupt both
    // threads' panic counts.
    debug_assert!(
        !std::thread::panicking(),
        "gort: a goroutine parked while unwinding a panic"
    );
    // SAFETY: `gp` is the running goroutine's live record.
    unsafe { (*gp).set_park_loc(std::panic::Location::caller()) };
    let mut f = Some(f);
    let mut call = move |g: GRef| (f.take().expect("a park function runs once"))(g);
    let short: *mut (dyn FnMut(GRef) -> Option<GRef> + '_) = &mut call;
    // SAFETY: only the lifetime bound is erased. The M calls the closure right after this
    // goroutine switches out and before anyone can resume it (the closure itself hands the
    // record out), so `call`, which lives in this frame, is alive for the whole use.
    let mut erased: *mut ParkFn = unsafe { std::mem::transmute(short) };
    // SAFETY: we are the running goroutine, so we own `inner`; the suspender was set when our
    // coroutine started and lives on our stack.
    let sus = unsafe { &*(*gp).inner().suspender };
    // A new park episode begins (copy-out). `switch_out` records where this stack will be
    // resumed (the waker prefetches it, `ready`) and where its live part ends (copy-out).
    // SAFETY: `gp` is the running goroutine's live record.
    unsafe { (*gp).out.begin_park() };
    // The reason goes into the record now (the M marks the goroutine waiting after the
    // switch); the switch carries a thin pointer to the park function's (fat) pointer, which
    // lives in this frame as long as the closure does.
    // SAFETY: as above.
    unsafe { (*gp).set_wait_reason(reason) };
    let opaque = (&mut erased as *mut *mut ParkFn).cast::<()>();
    // SAFETY: as above.
    crate::coro::switch_out(sus, Switch::Park(opaque), unsafe { (*gp).park_sp_cell() });
}

/// Go's `Gosched`.
#[track_caller]
pub(crate) fn yield_now() {
    let gp = expect_g("gort::yield_now");
    if std::thread::panicking() {
        // A goroutine unwinding stays on its thread (`may_park`).
        std::thread::yield_now();
        return;
    }
    // SAFETY: as in `park`.
    let sus = unsafe { &*(*gp).inner().suspender };
    sus.suspend(Switch::Yield);
}

/// Goroutine 1's stack window (`gort::MAIN_STACK_SIZE`, where it is documented).
pub(crate) const MAIN_STACK_SIZE: usize = 8 << 20;

/// Runs `f` as goroutine 1 of a new runtime and returns its value (see `gort::run`).
pub(crate) fn run_main<F, T>(config: Config, f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let mode = config.mode;
    // Goroutine 1 reaches as deep as the main thread it stands in for (`MAIN_STACK_SIZE`).
    let main_stack = (config.stack_size < MAIN_STACK_SIZE).then_some(MAIN_STACK_SIZE);
    let shared = Shared::new(config);
    sysmon::start(&shared);
    let slot: Arc<Mutex<Option<T>>> = Arc::new(Mutex::new(None));
    let main = {
        let slot = slot.clone();
        let weak = Arc::downgrade(&shared);
        move || {
            let v = f();
            *slot.lock() = Some(v);
            if let Some(s) = weak.upgrade() {
                s.finish(None);
            }
        }
    };
    // The thread that waits: counted among the runtimes' threads, unless it is an M of
    // another runtime (a goroutine calling `run`), which is counted already; that runtime
    // then has a P that runs nothing until this returns.
    let outer = with_current_shared(Arc::clone).filter(|_| !ctx_ptr().is_null());
    match &outer {
        Some(o) => o.nested_waiting.fetch_add(1, Ordering::SeqCst),
        None => RUNTIME_THREADS.fetch_add(1, Ordering::SeqCst),
    };
    let id = spawn_external(
        &shared,
        main,
        main_stack,
        None,
        None,
        std::any::type_name::<F>,
    );
    debug_assert_eq!(id, 1, "main is goroutine 1");
    // Goroutine 1 is queued: from here the queue, the Ps or the counters show what runs.
    shared.starting.store(false, Ordering::SeqCst);
    let panic = shared.wait_outcome();
    match &outer {
        Some(o) => o.nested_waiting.fetch_sub(1, Ordering::SeqCst),
        None => RUNTIME_THREADS.fetch_sub(1, Ordering::SeqCst),
    };
    if mode == RunMode::Process {
        // Go: when main returns the program exits; other goroutines are not awaited and the
        // runtime is not torn down (the process exit does it).
        #[cfg(feature = "sanitizer")]
        for g in shared.allgs.lock().iter() {
            // What goroutines still alive hold is reachable from their stacks (see
            // `coro::stack::lsan`), running ones included: main's return does not stop the
            // other Ms, and a goroutine running on one keeps its values in its window, which
            // is no thread stack LeakSanitizer knows. (One not yet started holds its function
            // in its record, which is heap memory.)
            if g.status() != Status::Dead {
                if let Some((low, high)) = g.out.window() {
                    crate::coro::stack::lsan::root(low, high);
                }
                // The segments of one that is not running (a running one changes its list
                // as it grows; what only its segments hold may then be reported as leaked).
                if g.status() != Status::Running {
                    // SAFETY: only read, of a goroutine that is not running. Another M could
                    // still resume it while the process exits; sanitizer builds accept that
                    // narrow race at exit for the roots.
                    let inner = unsafe { g.inner() };
                    for (low, high) in grow::segments_in_use(inner) {
                        crate::coro::stack::lsan::root(low, high);
                    }
                }
            }
        }
        let v = slot.lock().take();
        // Kept for the rest of the process (a static, rather than `mem::forget`, so that what
        // it holds stays reachable for leak checkers).
        PROCESS_RUNTIME.lock().push(shared);
        return v.expect("main finished with a value");
    }
    shared.shutdown();
    if let Some((p, report)) = panic {
        // The same report `#[gort::main]` prints, then the value goes on as a panic of the
        // caller (a test fails; `#[should_panic(expected)]` sees the value).
        eprint!("{report}");
        panic::resume_unwind(p);
    }
    let v = slot.lock().take();
    v.expect("main finished with a value")
}

/// A plain thread's view of a runtime (see `gort::Handle`).
pub(crate) fn enter(shared: Arc<Shared>) {
    ENTERED.with(|e| e.borrow_mut().push(shared));
}

pub(crate) fn exit_entered() {
    ENTERED.with(|e| e.borrow_mut().pop());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parked_goroutine_is_waiting_with_its_reason() {
        crate::Builder::new().procs(2).run(|| {
            let gate = crate::WaitGroup::new();
            let started = crate::WaitGroup::new();
            gate.add(1);
            started.add(1);
            let (g2, s2) = (gate.clone(), started.clone());
            let h = crate::spawn(move || {
                s2.done();
                g2.wait();
            });
            started.wait();
            let shared = current_shared().expect("inside a runtime");
            let state = || {
                shared
                    .allgs
                    .lock()
                    .iter()
                    .find(|g| g.id() == h.id() && g.status() != Status::Dead)
                    .map(|g| (g.status(), g.wait_reason()))
            };
            let mut seen = None;
            for _ in 0..100_000 {
                seen = state();
                if seen == Some((Status::Waiting, WaitReason::WaitGroupWait)) {
                    break;
                }
                crate::yield_now();
            }
            assert_eq!(seen, Some((Status::Waiting, WaitReason::WaitGroupWait)));
            assert_eq!(WaitReason::WaitGroupWait.as_str(), "semacquire");
            gate.done();
            h.join();
        });
    }
}
