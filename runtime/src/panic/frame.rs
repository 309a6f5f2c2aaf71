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
//!
//! The panic chain the frames act on, and the recover rule, are in `chain.rs`; the report of
//! an unwind that reaches a goroutine's top is in `report.rs`.

use std::any::Any;
use std::cell::{Cell, UnsafeCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::Ordering;

use super::chain::{drop_quietly, state_ptr, Ctx, DeferState, GoexitMarker, IN_DEFER};
use super::named::{HasResult, Named};
use super::record::{self, Deferred};

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
