//! Frames: where deferred calls run and where a panic's unwind is caught (Go's `deferreturn`,
//! `gopanic`, `gorecover` and `Goexit`), and each goroutine's [`DeferState`] (its `_defer`
//! list and `_panic` chain).
//!
//! # Frames
//!
//! A frame is the body of a `#[gort::func]` function, a `gort::frame!` closure or block, a
//! `go!` closure, or a `#[gort::main]`/`#[gort::test]` body. The macros turn it into
//!
//! ```text
//! let frame = Frame::new(name);          // registers only while a deferred call runs
//! let r = frame.body(|| { ... });        // catch_unwind: the boundary of the unwind
//! frame.finish_open(r, zero, slots)      // or finish_list: runs the deferred calls
//! ```
//!
//! Deferred calls never run from `Drop`: a panic inside `Drop` while unwinding aborts the
//! process, and Go lets a deferred call panic. They run after `catch_unwind` has stopped the
//! unwind, each inside its own `catch_unwind`.
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
use std::cell::{Cell, UnsafeCell};
use std::fmt::Write as _;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::record::{self, DeferRec, Deferred};
use super::value::{payload_text, Panic, PanicLocation, Style};

/// The payload of a Goexit unwind (never seen by user code: frames and the goroutine's top
/// catch it).
pub(crate) struct GoexitMarker;

/// Goroutines now running a deferred call under a panic or Goexit.
static IN_DEFER: AtomicUsize = AtomicUsize::new(0);

/// One panic (or Goexit) of the chain (Go's `_panic`).
struct PanicRec {
    /// The value; `None` once `recover` took it, or while a re-raise carries it to the next
    /// frame.
    payload: Option<Box<dyn Any + Send>>,
    /// The report text, kept when the value leaves with `recover`.
    text: Option<Cow<'static, str>>,
    location: Option<PanicLocation>,
    backtrace: Option<Backtrace>,
    recovered: bool,
    aborted: bool,
    goexit: bool,
}

impl PanicRec {
    fn text(&self) -> Cow<'static, str> {
        match (&self.text, &self.payload) {
            (Some(t), _) => t.clone(),
            (None, Some(p)) => payload_text(&**p, Style::Report),
            (None, None) => Cow::Borrowed("(value taken by recover)"),
        }
    }
}

/// The deferred call running now under a panic record.
#[derive(Clone, Copy)]
struct Ctx {
    panic: usize,
    depth: u32,
}

/// A goroutine's (or a plain thread's) defers and panics. Owned by the goroutine: only code
/// running on it touches this, so no synchronisation is needed beyond the goroutine's own
/// hand-offs between threads.
pub(crate) struct DeferState {
    /// Frames registered while deferred calls run (see "The recover rule").
    depth: u32,
    ctx: Option<Ctx>,
    /// The deferred function is about to be entered (see "The recover rule").
    direct: bool,
    /// The `ctx` a frame hid while its deferred calls run on a normal return (see `mask`):
    /// what a `defer!(recover())` of that frame sees (see `deferred_recover`).
    masked: Option<Ctx>,
    panics: Vec<PanicRec>,
    /// The defer list (Go's `g._defer`), newest last; frames own the records above their mark.
    list: Vec<DeferRec>,
    /// A frame re-raised the top record; the next frame to catch an unwind continues it.
    propagating: bool,
    /// What the panic hook saw of the newest panic.
    fresh_location: Option<PanicLocation>,
    fresh_backtrace: Option<Backtrace>,
    /// The text of the newest panic and of the one before it (string payloads only; buffers
    /// reused, so a warm goroutine copies without allocating), with the older one's location:
    /// what the report of a panic in a destructor during unwinding names (`on_panic`).
    fresh_text: String,
    prev_text: String,
    prev_location: Option<PanicLocation>,
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
    fn adopt(&mut self, payload: Box<dyn Any + Send>) -> usize {
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
    fn begin_fresh(&mut self, location: Option<PanicLocation>, backtrace: Option<Backtrace>) {
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
    fn print_chain(&self, out: &mut String) {
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
fn drop_quietly(p: Option<Box<dyn Any + Send>>) {
    if let Some(p) = p {
        let _ = panic::catch_unwind(AssertUnwindSafe(move || drop(p)));
    }
}

/// The running goroutine's state, or this thread's when no goroutine runs here. (The
/// thread-local read inside `current_g` is not inlined, so a goroutine that moved to another
/// thread never uses a stale thread-local address.)
#[inline]
fn state_ptr() -> *mut DeferState {
    match crate::sched::current_g() {
        // SAFETY: a running goroutine's record is alive while it runs.
        Some(g) => unsafe { (*g).defer_state() },
        None => THREAD_STATE.with(|s| s.get()),
    }
}

/// A frame's result while its deferred calls run: Go's named results.
///
/// A `defer!(|r| ...)` closure gets `&mut Named<R>`. On a normal return it holds the value
/// the body returned; after a panic it holds the zero value (`Default`) when the type has
/// one (and `Ok(Default)` for a `Result` whose `Ok` type has one), else nothing until a
/// deferred call sets it. Read and write it through `Deref`/`DerefMut` (which panic when
/// nothing is set), [`Named::set`], [`Named::get`] and the compound assignment operators.
///
/// # Example
///
/// ```
/// // Go: func getI() (i int) { i = 1; defer func() { i *= 10 }(); return 20 }  // 200
/// #[gort::func]
/// fn get_i() -> i32 {
///     defer!(|i| *i *= 10);
///     20
/// }
/// assert_eq!(gort::run(get_i), 200);
/// ```
pub struct Named<R> {
    value: Option<R>,
    func: &'static str,
}

impl<R> Named<R> {
    /// Replaces the result.
    ///
    /// ```
    /// #[gort::func]
    /// fn parse(s: &str) -> Result<i32, String> {
    ///     defer!(|r| {
    ///         if gort::recover().is_some() {
    ///             r.set(Err(format!("bad number {s:?}"))); // Go: err = fmt.Errorf(...)
    ///         }
    ///     });
    ///     Ok(s.parse().unwrap())
    /// }
    /// gort::run(|| {
    ///     assert_eq!(parse("7"), Ok(7));
    ///     assert_eq!(parse("x"), Err("bad number \"x\"".to_string()));
    /// });
    /// ```
    pub fn set(&mut self, v: R) {
        self.value = Some(v);
    }

    /// The result, if set.
    ///
    /// ```
    /// #[gort::func]
    /// fn answer() -> u32 {
    ///     defer!(|r| assert_eq!(r.get(), Some(&42))); // what the body returned
    ///     42
    /// }
    /// assert_eq!(gort::run(answer), 42);
    /// ```
    pub fn get(&self) -> Option<&R> {
        self.value.as_ref()
    }

    /// The result, if set.
    ///
    /// ```
    /// #[gort::func]
    /// fn greeting() -> String {
    ///     defer!(|r| r.get_mut().expect("returned normally").push('!'));
    ///     String::from("hello")
    /// }
    /// assert_eq!(gort::run(greeting), "hello!");
    /// ```
    pub fn get_mut(&mut self) -> Option<&mut R> {
        self.value.as_mut()
    }

    /// Takes the result out, leaving it unset (set it again before the frame ends).
    ///
    /// ```
    /// #[gort::func]
    /// fn sorted() -> Vec<u32> {
    ///     defer!(|r| {
    ///         let mut v = r.take().expect("returned normally");
    ///         v.sort();
    ///         r.set(v);
    ///     });
    ///     vec![3, 1, 2]
    /// }
    /// assert_eq!(gort::run(sorted), [1, 2, 3]);
    /// ```
    pub fn take(&mut self) -> Option<R> {
        self.value.take()
    }

    /// Whether a result is set.
    ///
    /// ```
    /// #[derive(Debug, PartialEq)]
    /// struct Conn(u32); // no `Default`: no zero value
    ///
    /// #[gort::func]
    /// fn dial(fail: bool) -> Conn {
    ///     defer!(|r| {
    ///         if gort::recover().is_some() {
    ///             assert!(!r.is_set()); // the body panicked before returning a `Conn`
    ///             r.set(Conn(0));
    ///         }
    ///     });
    ///     if fail {
    ///         panic!("refused");
    ///     }
    ///     Conn(7)
    /// }
    /// gort::run(|| {
    ///     assert_eq!(dial(false), Conn(7));
    ///     assert_eq!(dial(true), Conn(0));
    /// });
    /// ```
    pub fn is_set(&self) -> bool {
        self.value.is_some()
    }

    #[cold]
    #[track_caller]
    fn unset(&self) -> ! {
        panic!(
            "gort: the result of {} is not set (it panicked and its type has no zero value): \
             use Named::set or Named::get",
            self.func
        )
    }
}

impl<R> std::ops::Deref for Named<R> {
    type Target = R;
    #[track_caller]
    fn deref(&self) -> &R {
        match &self.value {
            Some(v) => v,
            None => self.unset(),
        }
    }
}

impl<R> std::ops::DerefMut for Named<R> {
    #[track_caller]
    fn deref_mut(&mut self) -> &mut R {
        if self.value.is_none() {
            self.unset()
        }
        self.value.as_mut().expect("checked above")
    }
}

macro_rules! forward_op_assign {
    ($($tr:ident $m:ident),*) => {$(
        impl<R: std::ops::$tr<T>, T> std::ops::$tr<T> for Named<R> {
            fn $m(&mut self, rhs: T) {
                std::ops::$tr::$m(&mut **self, rhs)
            }
        }
    )*};
}
forward_op_assign!(AddAssign add_assign, SubAssign sub_assign, MulAssign mul_assign,
    DivAssign div_assign, RemAssign rem_assign, BitAndAssign bitand_assign,
    BitOrAssign bitor_assign, BitXorAssign bitxor_assign, ShlAssign shl_assign,
    ShrAssign shr_assign);

impl<R: std::fmt::Debug> std::fmt::Debug for Named<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.value.fmt(f)
    }
}

/// Ties `WithResult` closures to their frame's result type.
#[doc(hidden)]
pub trait HasResult<R> {}
impl<R> HasResult<R> for Frame<R> {}

/// An open-coded deferred call: a typed `Option` in the frame's caller, set by `defer!`.
#[doc(hidden)]
pub trait OpenSlot<R> {
    /// Whether the slot holds a call, and whether that call is direct.
    fn pending(&self) -> Option<bool>;
    /// Takes the call out of the slot and runs it.
    fn run(&mut self, result: &mut Named<R>);
}

impl<R, D: Deferred<R>> OpenSlot<R> for Option<D> {
    #[inline(always)]
    fn pending(&self) -> Option<bool> {
        self.as_ref().map(|d| d.direct())
    }
    #[inline(always)]
    fn run(&mut self, result: &mut Named<R>) {
        if let Some(d) = self.take() {
            d.call(result)
        }
    }
}

/// Where a frame's deferred calls come from, for the unwinding algorithm: its open-coded
/// slots or its part of the defer list.
trait DeferSource {
    /// Runs the newest remaining call, setting `direct` on `st` first when `panicking`.
    /// Returns false when none is left.
    fn run_next(&mut self, st: *mut DeferState, panicking: bool) -> bool;
}

struct OpenSource<'a, 's, R> {
    slots: &'a mut [&'s mut dyn OpenSlot<R>],
    result: *mut Named<R>,
}

impl<R> DeferSource for OpenSource<'_, '_, R> {
    fn run_next(&mut self, st: *mut DeferState, panicking: bool) -> bool {
        for s in self.slots.iter_mut() {
            if let Some(direct) = s.pending() {
                if panicking {
                    // SAFETY: `st` is the running goroutine's state (frames pass their own).
                    unsafe { (*st).direct = direct };
                }
                // SAFETY: the frame's result outlives this call; nothing else borrows it now.
                s.run(unsafe { &mut *self.result });
                return true;
            }
        }
        false
    }
}

struct ListSource {
    mark: usize,
    result: *mut (),
}

impl DeferSource for ListSource {
    #[inline]
    fn run_next(&mut self, st: *mut DeferState, panicking: bool) -> bool {
        // SAFETY: `st` is the running goroutine's state and nothing else borrows it during
        // the pop; the records above the mark were pushed by this frame for its result type
        // (`defer_list`).
        unsafe {
            record::pop_call(
                std::ptr::addr_of_mut!((*st).list),
                self.mark,
                self.result,
                |direct| {
                    if panicking {
                        (*st).direct = direct;
                    }
                },
            )
        }
    }
}

/// How a frame's deferred calls ended after an unwind.
enum Unwound {
    /// A deferred call recovered; the frame returns normally.
    Recovered,
    /// Nothing recovered: re-raise this to the next frame out.
    Propagate(Box<dyn Any + Send>),
}

/// Runs a frame's deferred calls after an unwind reached it (Go's `gopanic` loop, for one
/// frame); see the module docs.
fn unwind_frame(
    st: *mut DeferState,
    payload: Box<dyn Any + Send>,
    src: &mut dyn DeferSource,
) -> Unwound {
    // For every `(*st)` in this function: `st` is the running goroutine's state, and no
    // reference to it is held across a deferred call.
    // SAFETY: the note above.
    let mut cur = Some(unsafe { (*st).adopt(payload) });
    loop {
        match cur {
            Some(c) => {
                // SAFETY: the note at the top of this function.
                let saved = unsafe {
                    let ctx = Ctx {
                        panic: c,
                        depth: (*st).depth,
                    };
                    (*st).ctx.replace(ctx)
                };
                IN_DEFER.fetch_add(1, Ordering::Relaxed);
                let r = panic::catch_unwind(AssertUnwindSafe(|| src.run_next(st, true)));
                IN_DEFER.fetch_sub(1, Ordering::Relaxed);
                // SAFETY: the note at the top of this function.
                let s = unsafe { &mut *st };
                s.direct = false;
                s.ctx = saved;
                match r {
                    Ok(false) => {
                        let rec = &mut s.panics[c];
                        let p = match rec.payload.take() {
                            Some(p) => p,
                            None => Box::new(GoexitMarker),
                        };
                        s.propagating = true;
                        return Unwound::Propagate(p);
                    }
                    Ok(true) if s.panics[c].recovered => {
                        debug_assert_eq!(c + 1, s.panics.len(), "the recovered panic is on top");
                        s.panics.truncate(c);
                        cur = None;
                        while let Some(top) = s.panics.last_mut() {
                            if !top.aborted {
                                break;
                            }
                            if top.goexit {
                                top.aborted = false;
                                cur = Some(s.panics.len() - 1);
                                break;
                            }
                            let rec = s.panics.pop().expect("checked above");
                            drop_quietly(rec.payload);
                        }
                    }
                    Ok(true) => {}
                    Err(p) => {
                        s.panics[c].aborted = true;
                        cur = Some(s.adopt(p));
                    }
                }
            }
            None => {
                // The remaining calls run as on a normal return: they see no panic, and a
                // `defer!(recover())` among them sees what the frame's body would.
                // SAFETY: the note at the top of this function.
                let (saved, outer) = unsafe {
                    let saved = (*st).ctx.take();
                    (saved, std::mem::replace(&mut (*st).masked, saved))
                };
                let r = panic::catch_unwind(AssertUnwindSafe(|| src.run_next(st, false)));
                // SAFETY: the note at the top of this function.
                unsafe {
                    (*st).ctx = saved;
                    (*st).masked = outer;
                }
                match r {
                    Ok(true) => {}
                    Ok(false) => return Unwound::Recovered,
                    // SAFETY: the note at the top of this function.
                    Err(p) => cur = Some(unsafe { (*st).adopt(p) }),
                }
            }
        }
    }
}

const REG_NONE: u8 = 0;
const REG_DIRECT: u8 = 1;
const REG_LEVEL: u8 = 2;

/// A frame (see the module docs). Made by the macros; not for direct use.
#[doc(hidden)]
pub struct Frame<R> {
    result: UnsafeCell<Named<R>>,
    /// The state, once the frame needed it (registration, a list defer, an unwind).
    state: Cell<*mut DeferState>,
    /// Length of the defer list before this frame's first list defer.
    mark: Cell<usize>,
    reg: Cell<u8>,
}

impl<R> Frame<R> {
    /// Enters a frame named `name` (for messages).
    #[inline(always)]
    pub fn new(name: &'static str) -> Frame<R> {
        let f = Frame {
            result: UnsafeCell::new(Named {
                value: None,
                func: name,
            }),
            state: Cell::new(std::ptr::null_mut()),
            mark: Cell::new(usize::MAX),
            reg: Cell::new(REG_NONE),
        };
        if IN_DEFER.load(Ordering::Relaxed) != 0 {
            f.register();
        }
        f
    }

    #[cold]
    #[inline(never)]
    fn register(&self) {
        let st = self.state();
        // SAFETY: our own state; no other borrow of it is live.
        let st = unsafe { &mut *st };
        if std::mem::take(&mut st.direct) {
            self.reg.set(REG_DIRECT);
        } else {
            st.depth += 1;
            self.reg.set(REG_LEVEL);
        }
    }

    #[inline]
    fn state(&self) -> *mut DeferState {
        let mut st = self.state.get();
        if st.is_null() {
            st = state_ptr();
            self.state.set(st);
        }
        st
    }

    /// Runs the body, stopping an unwind at this frame.
    #[inline(always)]
    pub fn body<F: FnOnce() -> R>(&self, f: F) -> Result<R, Box<dyn Any + Send>> {
        panic::catch_unwind(AssertUnwindSafe(f))
    }

    /// `defer!` in a frame whose deferred calls are not open-coded: onto the defer list.
    #[inline]
    pub fn defer_list<D: Deferred<R>>(&self, d: D) {
        let st = self.state();
        // SAFETY: our own state, not borrowed elsewhere now; the record is run or dropped by
        // this frame before it ends (`finish_list`, `Drop`), so what `d` borrows outlives it.
        unsafe {
            let st = &mut *st;
            if self.mark.get() == usize::MAX {
                self.mark.set(st.list.len());
            }
            record::push::<R, D>(&mut st.list, d);
        }
    }

    /// Ends a frame with open-coded deferred calls; `slots` newest first.
    ///
    /// The normal return is written out here rather than shared with `finish_list` through
    /// `DeferSource`: routed through the trait object the slots stop being devirtualised and
    /// an open-coded defer costs 5-6 ns more (measured).
    #[inline(always)]
    pub fn finish_open(
        &self,
        r: Result<R, Box<dyn Any + Send>>,
        zero: Option<fn() -> R>,
        slots: &mut [&mut dyn OpenSlot<R>],
    ) -> R {
        let result = self.result.get();
        match r {
            Ok(v) => {
                // SAFETY: nothing else borrows the result while the frame finishes.
                unsafe { (*result).value = Some(v) };
                let masked = self.mask();
                let ran = panic::catch_unwind(AssertUnwindSafe(|| {
                    for s in slots.iter_mut() {
                        // SAFETY: as above; each call gets the result in turn.
                        s.run(unsafe { &mut *result });
                    }
                }));
                self.unmask(masked);
                match ran {
                    // SAFETY: as above.
                    Ok(()) => unsafe { (*result).value.take().expect("set above") },
                    Err(p) => self.unwinding(p, zero, &mut OpenSource { slots, result }),
                }
            }
            Err(p) => self.unwinding(p, zero, &mut OpenSource { slots, result }),
        }
    }

    /// Ends a frame whose deferred calls are on the defer list.
    #[inline]
    pub fn finish_list(&self, r: Result<R, Box<dyn Any + Send>>, zero: Option<fn() -> R>) -> R {
        let mark = self.mark.get();
        let result = self.result.get();
        let mut src = ListSource {
            mark,
            result: result.cast(),
        };
        let v = match r {
            Ok(v) => v,
            Err(p) => return self.unwinding(p, zero, &mut src),
        };
        if mark == usize::MAX {
            // No `defer!` ran: nothing to do, and no state to look up.
            return v;
        }
        // SAFETY: nothing else borrows the result while the frame finishes.
        unsafe { (*result).value = Some(v) };
        let st = self.state();
        let masked = self.mask();
        let ran = panic::catch_unwind(AssertUnwindSafe(|| while src.run_next(st, false) {}));
        self.unmask(masked);
        match ran {
            // SAFETY: as above.
            Ok(()) => unsafe { (*result).value.take().expect("set above") },
            Err(p) => self.unwinding(p, zero, &mut src),
        }
    }

    /// Deferred calls of a normal return see no panic: a registered frame hides the panic
    /// its caller's deferred call runs under (only registered frames can be inside one), and
    /// keeps it in `masked` for a `defer!(recover())` of this frame.
    #[inline(always)]
    fn mask(&self) -> Option<(Option<Ctx>, Option<Ctx>)> {
        if self.reg.get() == REG_NONE {
            return None;
        }
        // SAFETY: registered frames have their state, and nothing else borrows it now.
        let st = unsafe { &mut *self.state.get() };
        let ctx = st.ctx.take();
        Some((ctx, std::mem::replace(&mut st.masked, ctx)))
    }

    #[inline(always)]
    fn unmask(&self, saved: Option<(Option<Ctx>, Option<Ctx>)>) {
        if let Some((ctx, masked)) = saved {
            // SAFETY: as in `mask`.
            let st = unsafe { &mut *self.state.get() };
            st.ctx = ctx;
            st.masked = masked;
        }
    }

    #[cold]
    #[inline(never)]
    fn unwinding(
        &self,
        payload: Box<dyn Any + Send>,
        zero: Option<fn() -> R>,
        src: &mut dyn DeferSource,
    ) -> R {
        let st = self.state();
        let result = self.result.get();
        // SAFETY: nothing borrows the result now.
        unsafe {
            if (*result).value.is_none() {
                (*result).value = zero.map(|z| z());
            }
        }
        match unwind_frame(st, payload, src) {
            // SAFETY: as above.
            Unwound::Recovered => match unsafe { (*result).value.take() } {
                Some(v) => v,
                None => panic!(
                    "gort: {} recovered from a panic, but nothing set its result and its type has \
                     no zero value (Default): set it in a deferred call with `defer!(|r| r.set(...))`",
                    // SAFETY: as above.
                    unsafe { (*result).func }
                ),
            },
            Unwound::Propagate(p) => panic::resume_unwind(p),
        }
    }
}

impl<R> Drop for Frame<R> {
    fn drop(&mut self) {
        let st = self.state.get();
        if st.is_null() {
            return;
        }
        // SAFETY: our own state; nothing else borrows it now.
        let st = unsafe { &mut *st };
        let mark = self.mark.get();
        if mark != usize::MAX && st.list.len() > mark {
            // Only reachable if the frame did not finish (a bug in generated code): leak the
            // records rather than run user code from `Drop`.
            for r in st.list.drain(mark..) {
                std::mem::forget(r);
            }
        }
        if self.reg.get() == REG_LEVEL {
            st.depth -= 1;
        }
    }
}

/// Enters a frame that has no deferred calls of its own: it only counts as a level for
/// `recover` (see the module docs).
#[doc(hidden)]
pub struct FrameGuard {
    /// Held for its `Drop`, which unregisters the level.
    _frame: Frame<()>,
}

impl FrameGuard {
    /// Enters.
    #[inline(always)]
    pub fn new() -> FrameGuard {
        FrameGuard {
            _frame: Frame::new(""),
        }
    }
}

impl Default for FrameGuard {
    fn default() -> Self {
        FrameGuard::new()
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

/// The body of `defer!(recover())` (Go's `defer recover()`; see `record::DeferRecover`).
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

/// When a panic captures a backtrace (`RUST_BACKTRACE` / `RUST_LIB_BACKTRACE`, as std reads
/// them).
///
/// A backtrace must be taken where the panic starts: by the time an unwind reaches a frame,
/// the frames it passed are gone. Taking one costs about a stack walk (3 µs here), twice what
/// a panic and recover cost without it, and a recovered panic never prints it. gort cannot
/// know at the panic whether some deferred call will recover it, so it learns per site: once
/// a panic that started at a source location has been recovered, later panics there skip the
/// capture (the panic-as-control-flow case pays once). A site that crashes after being
/// recovered before gets a report that says its backtrace was skipped and why;
/// `GORT_BACKTRACE=always` captures at every panic.
pub(crate) mod backtrace_policy {
    use std::backtrace::Backtrace;
    use std::hash::{Hash, Hasher};
    use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

    use super::PanicLocation;

    /// Sites remembered as recovered (open addressing; a full table stops learning, which
    /// only means more captures).
    const SITES: usize = 512;
    static RECOVERED: [AtomicU64; SITES] = [const { AtomicU64::new(0) }; SITES];

    const UNKNOWN: u8 = 0;
    const OFF: u8 = 1;
    const LEARN: u8 = 2;
    const ALWAYS: u8 = 3;
    static MODE: AtomicU8 = AtomicU8::new(UNKNOWN);

    fn mode() -> u8 {
        let m = MODE.load(Ordering::Relaxed);
        if m != UNKNOWN {
            return m;
        }
        let on = |v: std::ffi::OsString| v != "0";
        let wanted = match std::env::var_os("RUST_LIB_BACKTRACE") {
            Some(v) => on(v),
            None => std::env::var_os("RUST_BACKTRACE").is_some_and(on),
        };
        let always = std::env::var_os("GORT_BACKTRACE").is_some_and(|v| v == "always");
        let m = match (wanted, always) {
            (false, _) => OFF,
            (true, false) => LEARN,
            (true, true) => ALWAYS,
        };
        MODE.store(m, Ordering::Relaxed);
        m
    }

    /// Whether the environment asks for backtraces at all.
    pub(crate) fn wanted() -> bool {
        mode() != OFF
    }

    fn key(l: &PanicLocation) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        l.hash(&mut h);
        h.finish() | 1
    }

    fn known(k: u64) -> bool {
        let mut i = k as usize % SITES;
        for _ in 0..SITES {
            match RECOVERED[i].load(Ordering::Relaxed) {
                0 => return false,
                v if v == k => return true,
                _ => i = (i + 1) % SITES,
            }
        }
        false
    }

    /// A panic that started at `l` was recovered.
    pub(crate) fn recovered_at(l: &PanicLocation) {
        if mode() != LEARN {
            return;
        }
        let k = key(l);
        let mut i = k as usize % SITES;
        for _ in 0..SITES {
            match RECOVERED[i].compare_exchange(0, k, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return,
                Err(v) if v == k => return,
                Err(_) => i = (i + 1) % SITES,
            }
        }
    }

    /// The backtrace a panic starting at `l` takes now, if any.
    pub(crate) fn capture_for(l: &PanicLocation) -> Option<Backtrace> {
        match mode() {
            OFF => None,
            LEARN if known(key(l)) => None,
            _ => Some(Backtrace::force_capture()),
        }
    }
}

/// The panic hook: inside a goroutine, record where the panic started and print nothing (a
/// recovered panic prints nothing in Go; an unrecovered one is reported by the goroutine's
/// top). Returns false to let the previous hook print (plain threads).
pub(crate) fn on_panic(info: &panic::PanicHookInfo<'_>) -> bool {
    let g = crate::sched::current_g();
    let on_goroutine = g.is_some();
    let location = info.location().map(PanicLocation::from_std);
    let text = {
        let p = info.payload();
        p.downcast_ref::<&str>()
            .copied()
            .or_else(|| p.downcast_ref::<String>().map(String::as_str))
    };
    if let (Some(g), Some(msg @ (PANIC_IN_CLEANUP | PANIC_NO_UNWIND))) = (g, text) {
        // SAFETY: our own state; the running goroutine's record is alive.
        unsafe { abort_report(&*state_ptr(), &*g, msg, location.as_ref()) }
    }
    let bt = match &location {
        Some(l) => backtrace_policy::capture_for(l),
        None if backtrace_policy::wanted() => Some(Backtrace::force_capture()),
        None => None,
    };
    // SAFETY: our own state (the hook runs on the panicking goroutine or thread).
    let st = unsafe { &mut *state_ptr() };
    st.begin_fresh(location, bt);
    if on_goroutine {
        if let Some(s) = text {
            st.fresh_text.push_str(s);
        }
    }
    on_goroutine
}

/// What std raises (and then aborts on) when a panic unwinds out of a destructor that runs
/// during an unwind, and out of a function that cannot unwind.
const PANIC_IN_CLEANUP: &str = "panic in a destructor during cleanup";
const PANIC_NO_UNWIND: &str = "panic in a function that cannot unwind";

/// A goroutine panicked inside a `Drop` while it was unwinding (or out of a function that
/// cannot unwind): std is about to abort with only "thread caused non-unwinding panic". Print
/// both panics Go-style instead (the first, the one raised in the destructor, where each
/// started) and end the process with status 2, as a fatal error.
fn abort_report(
    st: &DeferState,
    g: &crate::sched::Goroutine,
    msg: &str,
    at: Option<&PanicLocation>,
) -> ! {
    let text = |t: &str| {
        if t.is_empty() {
            "(a panic value that is not a string)".to_string()
        } else {
            t.to_string()
        }
    };
    let mut report = String::new();
    if msg == PANIC_IN_CLEANUP {
        let _ = writeln!(report, "panic: {}", text(&st.prev_text));
        let _ = writeln!(
            report,
            "\tpanic: {} [in a destructor while unwinding]",
            text(&st.fresh_text)
        );
    } else {
        let _ = writeln!(report, "panic: {}", text(&st.fresh_text));
    }
    let _ = writeln!(report, "fatal error: {msg}\n");
    let _ = writeln!(report, "goroutine {} [running]:", g.id());
    if msg == PANIC_IN_CLEANUP {
        if let Some(l) = &st.prev_location {
            let _ = writeln!(report, "\tfirst panicked at {l}");
        }
    }
    if let Some(l) = st.fresh_location.as_ref().or(at) {
        let _ = writeln!(report, "\tpanicked at {l}");
    }
    g.describe_created(&mut report);
    super::die(&report)
}

/// A backtrace without the panic machinery above the panicking frame (the hook, std's and
/// core's panic functions) and without the runtime below the goroutine's entry.
fn trim_backtrace(bt: &str) -> String {
    let is_frame = |l: &str| {
        let t = l.trim_start();
        t.split_once(": ")
            .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    fn name(l: &str) -> &str {
        l.trim_start().split_once(": ").map_or("", |(_, n)| n)
    }
    let machinery = |n: &str| {
        [
            "gort::panic::",
            "std::panicking::",
            "core::panicking::",
            "std::panic::panic_any",
            "std::sys::backtrace::",
            "__rustc::",
            "rust_begin_unwind",
            "<alloc::boxed::Box<dyn",
            "core::option::unwrap_failed",
            "core::option::expect_failed",
            "core::result::unwrap_failed",
        ]
        .iter()
        .any(|p| n.starts_with(p))
    };
    let lines: Vec<&str> = bt.lines().collect();
    // From the first frame that is not panic machinery, to the goroutine's entry.
    let start = lines
        .iter()
        .position(|l| is_frame(l) && !machinery(name(l)))
        .unwrap_or(0);
    let mut out = String::new();
    for l in &lines[start..] {
        if is_frame(l)
            && ["gort::sched::run_entry", "gort::sched::goroutine_main"]
                .iter()
                .any(|e| name(l).starts_with(e))
        {
            break;
        }
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// An unwind reached the top of goroutine `goid`, after all its frames.
pub(crate) enum TopEnd {
    /// Goexit: the goroutine just ends.
    Goexit,
    /// An unrecovered panic: its value and the crash report (the chain, the goroutine header,
    /// where it started, a backtrace when `RUST_BACKTRACE` asks for one).
    Panic(Box<dyn Any + Send>, String),
}

/// The goroutine's top catches what its frames did not; the state is reset for reuse.
pub(crate) fn at_top(
    st: &mut DeferState,
    payload: Box<dyn Any + Send>,
    g: &crate::sched::Goroutine,
) -> TopEnd {
    let end = if payload.is::<GoexitMarker>() && st.propagating {
        TopEnd::Goexit
    } else {
        let c = st.adopt(payload);
        let mut report = String::new();
        st.print_chain(&mut report);
        let _ = writeln!(report, "\ngoroutine {} [running]:", g.id());
        if let Some(l) = &st.panics[c].location {
            let _ = writeln!(report, "\tpanicked at {l}");
        }
        // Go's traceback shows the frame that ran the deferred calls stopped where the earlier
        // panic started (a send on a closed channel, then a deferred close of it: Go names
        // the send's line): name each earlier panic still in the chain, latest first.
        for p in st.panics[..c].iter().rev() {
            if p.goexit {
                // A Goexit ran the deferred calls from here on down: no panic site to name.
                break;
            }
            if let Some(l) = &p.location {
                let _ = writeln!(report, "\t\tin a deferred call run by the panic at {l}");
            }
        }
        let rec = &mut st.panics[c];
        match &rec.backtrace {
            Some(bt) => report.push_str(&trim_backtrace(&bt.to_string())),
            None if backtrace_policy::wanted() => report.push_str(
                "note: no backtrace: panics that started here were recovered before, so gort \
                 stopped capturing them; set GORT_BACKTRACE=always to capture every time\n",
            ),
            None => report.push_str(
                "note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n",
            ),
        }
        g.describe_created(&mut report);
        let p = rec.payload.take().unwrap_or_else(|| Box::new(GoexitMarker));
        for r in st.panics.drain(..) {
            drop_quietly(r.payload);
        }
        TopEnd::Panic(p, report)
    };
    st.reset();
    end
}
