//! Each goroutine's [`DeferState`] (its `_defer` list and `_panic` chain) and the calls that
//! act on the chain: Go's `gorecover` ([`recover`]), `Goexit` ([`goexit`]) and a re-raised
//! panic's fresh start.
//!
//!
//! # The panic chain (`DeferState::panics`, oldest first)
//!
//! A frame that catches an unwind *adopts* it: a new panic (the hook saw it start) becomes a
//! new record on top of the chain; a panic that a deeper frame re-raised (`propagating`)
//! continues the top record. The frame then runs its deferred calls, newest first, under the
//! current record `cur`:
//!
//! - a deferred call that returns after `recover` marked `cur` recovered: `cur` leaves the
//!   chain, then any aborted records under it (an aborted Goexit instead resumes: Go's
//!   "return to the processing loop of the Goexit"); the frame's remaining deferred calls run
//!   as on a normal return and the frame returns normally;
//! - a deferred call that panics: `cur` is marked aborted (the new panic passed the deferred
//!   call `cur` started), and the new panic becomes `cur` for the remaining calls;
//! - no deferred call left: the frame re-raises `cur` (`resume_unwind`, no hook) to the next
//!   frame out; at the goroutine's top the chain is printed (`report`) and the program dies.
//!
//! Two panics are active at once when a deferred call's own frame panics and recovers inside
//! it (case 029): the inner record is pushed above `cur`, recovered and removed, and `cur` is
//! untouched.
//!
//! # The recover rule
//!
//! `recover()` returns the top record's value when all hold:
//! 1. a deferred call is running under that record (the frame processing it set `ctx`);
//! 2. no frame has been entered since, other than the deferred function itself
//!    (`depth == ctx.depth`);
//! 3. the record is not a Goexit and was not recovered already.
//!
//! Go's rule is "called directly by the deferred function", checked with the caller's stack
//! pointer. gort cannot see Rust call frames, so it counts gort frames instead: a helper that
//! is a `#[gort::func]` is a level (recover there returns `None`, as in Go); a plain Rust
//! function called by the deferred call is not (recover there returns the panic, where Go
//! would return nil). A deferred `defer!(f(x))` call enters `f`'s frame as "the deferred
//! function itself" (`direct`), so `defer!(handle_panic())` with a recovering
//! `#[gort::func] fn handle_panic()` works as in Go.
//!
//! Frames register (bump `depth`) only while some goroutine runs a deferred call under a panic
//! (`IN_DEFER > 0`); otherwise entering a frame costs one relaxed load. A frame entered inside
//! a deferred call always sees `IN_DEFER > 0`, because its own goroutine raised it first.

use std::any::Any;
use std::backtrace::Backtrace;
use std::borrow::Cow;
use std::cell::UnsafeCell;
use std::fmt::Write as _;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::AtomicUsize;

use super::backtrace_policy;
use super::named::Named;
use super::record::{DeferRec, Deferred};
use super::value::{payload_text, Panic, PanicLocation, Style};

/// The payload of a Goexit unwind (never seen by user code: frames and the goroutine's top
/// catch it).
pub(crate) struct GoexitMarker;

/// Goroutines now running a deferred call under a panic or Goexit.
pub(super) static IN_DEFER: AtomicUsize = AtomicUsize::new(0);

/// One panic (or Goexit) of the chain (Go's `_panic`).
pub(super) struct PanicRec {
    /// The value; `None` once `recover` took it, or while a re-raise carries it to the next
    /// frame.
    pub(super) payload: Option<Box<dyn Any + Send>>,
    /// The report text, kept when the value leaves with `recover`.
    pub(super) text: Option<Cow<'static, str>>,
    pub(super) location: Option<PanicLocation>,
    pub(super) backtrace: Option<Backtrace>,
    pub(super) recovered: bool,
    pub(super) aborted: bool,
    pub(super) goexit: bool,
}

impl PanicRec {
    pub(super) fn text(&self) -> Cow<'static, str> {
        match (&self.text, &self.payload) {
            (Some(t), _) => t.clone(),
            (None, Some(p)) => payload_text(&**p, Style::Report),
            (None, None) => Cow::Borrowed("(value taken by recover)"),
        }
    }
}

/// The deferred call running now under a panic record.
#[derive(Clone, Copy)]
pub(super) struct Ctx {
    pub(super) panic: usize,
    pub(super) depth: u32,
}

/// A goroutine's (or a plain thread's) defers and panics. Owned by the goroutine: only code
/// running on it touches this, so no synchronisation is needed beyond the goroutine's own
/// hand-offs between threads.
pub(crate) struct DeferState {
    /// Frames registered while deferred calls run (see "The recover rule").
    pub(super) depth: u32,
    pub(super) ctx: Option<Ctx>,
    /// The deferred function is about to be entered (see "The recover rule").
    pub(super) direct: bool,
    /// The `ctx` a frame hid while its deferred calls run on a normal return (see `mask`):
    /// what a `defer!(recover())` of that frame sees (see `deferred_recover`).
    pub(super) masked: Option<Ctx>,
    pub(super) panics: Vec<PanicRec>,
    /// The defer list (Go's `g._defer`), newest last; frames own the records above their mark.
    pub(super) list: Vec<DeferRec>,
    /// A frame re-raised the top record; the next frame to catch an unwind continues it.
    pub(super) propagating: bool,
    /// What the panic hook saw of the newest panic.
    pub(super) fresh_location: Option<PanicLocation>,
    pub(super) fresh_backtrace: Option<Backtrace>,
    /// The text of the newest panic and of the one before it (string payloads only; buffers
    /// reused, so a warm goroutine copies without allocating), with the older one's location:
    /// what the report of a panic in a destructor during unwinding names (`on_panic`).
    pub(super) fresh_text: String,
    pub(super) prev_text: String,
    pub(super) prev_location: Option<PanicLocation>,
}

impl DeferState {
    pub(crate) const fn new() -> DeferState {
        DeferState {
            depth: 0,
            ctx: None,
            direct: false,
            masked: None,
            panics: Vec::new(),
            list: Vec::new(),
            propagating: false,
            fresh_location: None,
            fresh_backtrace: None,
            fresh_text: String::new(),
            prev_text: String::new(),
            prev_location: None,
        }
    }

    /// Takes an unwind that reached a frame; returns the index of its record.
    pub(super) fn adopt(&mut self, payload: Box<dyn Any + Send>) -> usize {
        if std::mem::take(&mut self.propagating) {
            if let Some(top) = self.panics.last_mut() {
                if !top.goexit {
                    top.payload = Some(payload);
                }
                return self.panics.len() - 1;
            }
        }
        let goexit = payload.is::<GoexitMarker>();
        self.panics.push(PanicRec {
            payload: (!goexit).then_some(payload),
            text: None,
            location: self.fresh_location.take(),
            backtrace: self.fresh_backtrace.take(),
            recovered: false,
            aborted: false,
            goexit,
        });
        self.panics.len() - 1
    }

    /// A new panic starts (the hook, or `Panic::repanic`). A record still marked as being
    /// re-raised was caught by user code (`std::panic::catch_unwind`) on its way: drop it.
    pub(super) fn begin_fresh(
        &mut self,
        location: Option<PanicLocation>,
        backtrace: Option<Backtrace>,
    ) {
        if std::mem::take(&mut self.propagating) {
            if let Some(rec) = self.panics.pop() {
                drop_quietly(rec.payload);
            }
        }
        self.prev_location = std::mem::replace(&mut self.fresh_location, location);
        self.fresh_backtrace = backtrace;
        std::mem::swap(&mut self.prev_text, &mut self.fresh_text);
        self.fresh_text.clear();
    }

    /// Go's `printpanics`: the chain oldest first, later records indented by a tab; Goexit
    /// records are not printed.
    pub(super) fn print_chain(&self, out: &mut String) {
        let mut prev_goexit = true;
        for (i, p) in self.panics.iter().enumerate() {
            if i > 0 && !prev_goexit {
                out.push('\t');
            }
            prev_goexit = p.goexit;
            if p.goexit {
                continue;
            }
            let _ = write!(out, "panic: {}", p.text());
            if p.recovered {
                out.push_str(" [recovered]");
            }
            out.push('\n');
        }
    }

    /// Whether anything is left from frames or panics (a goroutine that ended normally has
    /// nothing, unless user code caught a gort panic with `std::panic::catch_unwind`).
    pub(crate) fn is_clean(&self) -> bool {
        self.panics.is_empty() && self.list.is_empty() && !self.propagating && self.depth == 0
    }

    /// The goroutine ended or was discarded: forget everything without running user code
    /// (panic values and deferred calls left over are leaked, not dropped).
    pub(crate) fn reset(&mut self) {
        self.depth = 0;
        self.ctx = None;
        self.direct = false;
        self.masked = None;
        self.propagating = false;
        self.fresh_location = None;
        self.fresh_backtrace = None;
        for p in self.panics.drain(..) {
            // A panic value's `Drop` is user code that may panic; the goroutine is over.
            crate::sched::leak(p.payload);
        }
        // Frames ran or dropped their records; anything left belongs to frames that never
        // ended (a discarded goroutine) and is leaked rather than run.
        for r in self.list.drain(..) {
            std::mem::forget(r);
        }
    }
}

thread_local! {
    /// The state of a plain thread (not a goroutine) that uses frames.
    static THREAD_STATE: UnsafeCell<DeferState> = const { UnsafeCell::new(DeferState::new()) };
}

/// Drops a panic value, whose `Drop` is user code that may itself panic.
pub(super) fn drop_quietly(p: Option<Box<dyn Any + Send>>) {
    if let Some(p) = p {
        let _ = panic::catch_unwind(AssertUnwindSafe(move || drop(p)));
    }
}

/// The running goroutine's state, or this thread's when no goroutine runs here. (The
/// thread-local read inside `current_g` is not inlined, so a goroutine that moved to another
/// thread never uses a stale thread-local address.)
#[inline]
pub(super) fn state_ptr() -> *mut DeferState {
    match crate::sched::current_g() {
        // SAFETY: a running goroutine's record is alive while it runs.
        Some(g) => unsafe { (*g).defer_state() },
        None => THREAD_STATE.with(|s| s.get()),
    }
}

/// Go's `recover`: the value of the panic the running deferred call was started by, and stops
/// that panic. `None` when not panicking, from a deferred call that a panic did not start, from
/// inside a `#[gort::func]` that the deferred call called, during Goexit, or when already
/// recovered. See `docs/defer-panic-recover.md` for the exact rule.
///
/// # Example
///
/// ```
/// #[gort::func]
/// fn risky() -> &'static str {
///     defer!(|r| {
///         if let Some(p) = gort::recover() {
///             assert_eq!(p.to_string(), "boom");
///             r.set("recovered");
///         }
///     });
///     panic!("boom");
/// }
/// gort::run(|| {
///     assert!(gort::recover().is_none()); // not panicking
///     assert_eq!(risky(), "recovered");
/// });
/// ```
pub fn recover() -> Option<Panic> {
    // SAFETY: our own state; no other borrow of it is live during this call.
    let st = unsafe { &mut *state_ptr() };
    let ctx = st.ctx?;
    if ctx.depth != st.depth || ctx.panic + 1 != st.panics.len() {
        return None;
    }
    let rec = st.panics.last_mut()?;
    if rec.goexit || rec.recovered {
        return None;
    }
    let payload = rec.payload.take()?;
    if let Some(l) = &rec.location {
        backtrace_policy::recovered_at(l);
    }
    let p = Panic::new(payload, rec.location.take());
    rec.text = Some(p.report_text());
    rec.recovered = true;
    Some(p)
}

/// The body of `defer!(recover())` (Go's `defer recover()`; see `DeferRecover`).
///
/// Run by a panic, `ctx` is set (the panic's deferred-call context): a no-op, as in Go.
/// Run on its frame's normal return, `ctx` is hidden and `masked` holds what the frame's body
/// saw: recover as the body would have, at the frame's depth, and discard the value.
pub(crate) fn deferred_recover() {
    let st = state_ptr();
    // SAFETY: our own state; each access is a short borrow that ends before `recover` takes
    // its own.
    unsafe {
        if (*st).ctx.is_some() {
            return;
        }
        let Some(m) = (*st).masked else { return };
        (*st).ctx = Some(m);
    }
    let recovered = recover();
    // SAFETY: as above.
    unsafe { (*st).ctx = None };
    // Go discards the value; its `Drop` runs here, as user code's `let _ = recover()` would.
    drop(recovered);
}

/// Go's `runtime.Goexit`: runs every deferred call of every frame of the goroutine, newest
/// first, then ends it. `recover` returns `None` in those calls. Called by main (goroutine 1),
/// the other goroutines go on, and when none is left the program dies with `fatal error: no
/// goroutines (main called runtime.Goexit) - deadlock!`.
///
/// # Panics
///
/// When called outside a goroutine.
///
/// # Example
///
/// ```
/// let wg = gort::WaitGroup::new();
/// gort::run(move || {
///     wg.add(1);
///     let done = wg.clone();
///     gort::go!(move || {
///         defer!(done.done());
///         gort::goexit();
///     });
///     wg.wait(); // the deferred call ran
/// });
/// ```
#[track_caller]
pub fn goexit() -> ! {
    let g = crate::sched::expect_g("gort::goexit");
    // SAFETY: the running goroutine owns its state.
    let st = unsafe { &mut *(*g).defer_state() };
    st.begin_fresh(None, None);
    st.panics.push(PanicRec {
        payload: None,
        text: None,
        location: None,
        backtrace: None,
        recovered: false,
        aborted: false,
        goexit: true,
    });
    st.propagating = true;
    panic::resume_unwind(Box::new(GoexitMarker))
}

/// Raises `payload` as a new panic started at `location`, without running the panic hook
/// (`Panic::repanic`): the same record the hook would make, backtrace included.
pub(crate) fn fresh_panic(
    payload: Box<dyn Any + Send>,
    location: &'static panic::Location<'static>,
) -> ! {
    let location = PanicLocation::from_std(location);
    let bt = backtrace_policy::capture_for(&location);
    // SAFETY: our own state.
    let st = unsafe { &mut *state_ptr() };
    st.begin_fresh(Some(location), bt);
    panic::resume_unwind(payload)
}

/// `defer!(gort::recover())`: Go's `defer recover()`, which follows its own rule (Go 1.19's
/// test/recover.go test2 and test4, test/recover1.go test5 - test7).
///
/// - Run by a panic (the frame it was deferred in is unwinding): a no-op. `recover` is then
///   the deferred function itself, called by the panic machinery rather than by a deferred
///   function, so it is "too early" to see the panic.
/// - Run when its frame returns normally (also after a recover inside that frame): it acts as
///   if the frame's body called `recover` there. If the frame is itself a deferred call
///   running under a panic, that panic stops when the frame returns.
///
/// The function value is kept only to type-check it (`fn() -> Option<Panic>`): the rule is
/// about the call's position, not about the function.
#[doc(hidden)]
pub struct DeferRecover(());

impl DeferRecover {
    /// `defer!(recover())`.
    #[inline(always)]
    pub fn new(_recover: fn() -> Option<Panic>) -> DeferRecover {
        DeferRecover(())
    }
}

impl<R> Deferred<R> for DeferRecover {
    #[inline(always)]
    fn direct(&self) -> bool {
        false
    }
    #[inline]
    fn call(self, _: &mut Named<R>) {
        deferred_recover()
    }
}
