//! Deferred calls as values: the two shapes `defer!` produces ([`Plain`], [`WithResult`]) and
//! the type-erased record a goroutine's defer list holds ([`DeferRec`], Go's `_defer`).

use std::marker::PhantomData;
use std::mem::{self, MaybeUninit};
use std::ptr;

use super::frame::Named;

/// A deferred call of a frame whose result type is `R`.
pub trait Deferred<R> {
    /// Whether the call is the deferred function itself (`defer!(f(x))`, `defer!(r.m())`, or
    /// a closure that is a frame): the first frame it enters does not count as a level for
    /// `recover` (see `frame.rs`, "The recover rule").
    fn direct(&self) -> bool;
    /// Runs the call.
    fn call(self, result: &mut Named<R>);
}

/// A deferred call that does not touch the frame's result.
#[doc(hidden)]
pub struct Plain<F> {
    f: F,
    direct: bool,
}

impl<F: FnOnce()> Plain<F> {
    /// `defer!(f(a))`: the deferred function is `f` itself.
    #[inline(always)]
    pub fn direct(f: F) -> Plain<F> {
        Plain { f, direct: true }
    }

    /// `defer!(|| ...)`: the closure is the deferred function.
    #[inline(always)]
    pub fn closure(f: F) -> Plain<F> {
        Plain { f, direct: false }
    }
}

impl<R, F: FnOnce()> Deferred<R> for Plain<F> {
    #[inline(always)]
    fn direct(&self) -> bool {
        self.direct
    }
    #[inline(always)]
    fn call(self, _: &mut Named<R>) {
        (self.f)()
    }
}

/// A deferred call that reads or replaces the frame's result (Go's named results).
#[doc(hidden)]
pub struct WithResult<F, R> {
    f: F,
    direct: bool,
    _r: PhantomData<fn(&mut Named<R>)>,
}

impl<R, F: FnOnce(&mut Named<R>)> WithResult<F, R> {
    /// Ties the closure's parameter type to the frame's result type (`_frame` is only for
    /// inference).
    #[inline(always)]
    pub fn new<T>(f: F, direct: bool, _frame: &T) -> WithResult<F, R>
    where
        T: super::frame::HasResult<R>,
    {
        WithResult {
            f,
            direct,
            _r: PhantomData,
        }
    }
}

impl<R, F: FnOnce(&mut Named<R>)> Deferred<R> for WithResult<F, R> {
    #[inline(always)]
    fn direct(&self) -> bool {
        self.direct
    }
    #[inline(always)]
    fn call(self, result: &mut Named<R>) {
        (self.f)(result)
    }
}

/// Bytes of inline storage in a defer record: enough for a closure holding four words.
const INLINE: usize = 32;
type Buf = MaybeUninit<[u64; INLINE / 8]>;

/// One entry of a goroutine's defer list: a type-erased [`Deferred`], inline when small.
///
/// The list is a `Vec` owned by the goroutine and reused with it, so once it has grown a
/// `defer!` allocates nothing (closures larger than 32 bytes are boxed).
pub(crate) struct DeferRec {
    buf: Buf,
    /// Calls the value with a `*mut Named<R>` and gives it up.
    call: unsafe fn(*mut u8, *mut ()),
    drop: unsafe fn(*mut u8),
    pub(crate) direct: bool,
}

unsafe fn call_inline<R, D: Deferred<R>>(p: *mut u8, result: *mut ()) {
    // SAFETY: `p` holds an initialised `D` that the caller gives up; `result` points to the
    // frame's `Named<R>` (the frame passes its own).
    unsafe { ptr::read(p.cast::<D>()).call(&mut *result.cast::<Named<R>>()) }
}

unsafe fn drop_inline<D>(p: *mut u8) {
    // SAFETY: `p` holds an initialised `D` that the caller gives up.
    unsafe { ptr::drop_in_place(p.cast::<D>()) }
}

unsafe fn call_boxed<R, D: Deferred<R>>(p: *mut u8, result: *mut ()) {
    // SAFETY: as in `call_inline`, for a `Box<D>`.
    unsafe { ptr::read(p.cast::<Box<D>>()).call(&mut *result.cast::<Named<R>>()) }
}

unsafe fn drop_boxed<D>(p: *mut u8) {
    // SAFETY: as in `drop_inline`, for a `Box<D>`.
    drop(unsafe { ptr::read(p.cast::<Box<D>>()) })
}

impl DeferRec {
    /// Erases `d`'s type and lifetime.
    ///
    /// # Safety
    /// The record must be called or dropped (or leaked) before anything `D` borrows goes away,
    /// and called only with a pointer to a `Named<R>`. Frames guarantee both: a frame runs or
    /// drops every record it pushed before it returns or unwinds past its caller.
    pub(crate) unsafe fn new<R, D: Deferred<R>>(d: D) -> DeferRec {
        let direct = d.direct();
        let mut buf = Buf::uninit();
        let fits = mem::size_of::<D>() <= INLINE && mem::align_of::<D>() <= mem::align_of::<Buf>();
        if fits {
            // SAFETY: `D` fits the buffer in size and alignment (checked above).
            unsafe { ptr::write(buf.as_mut_ptr().cast::<D>(), d) };
            DeferRec {
                buf,
                call: call_inline::<R, D>,
                drop: drop_inline::<D>,
                direct,
            }
        } else {
            // SAFETY: a `Box` pointer always fits the buffer.
            unsafe { ptr::write(buf.as_mut_ptr().cast::<Box<D>>(), Box::new(d)) };
            DeferRec {
                buf,
                call: call_boxed::<R, D>,
                drop: drop_boxed::<D>,
                direct,
            }
        }
    }

    /// Runs the deferred call.
    ///
    /// # Safety
    /// `result` points to the `Named<R>` of the `R` the record was made for.
    pub(crate) unsafe fn call(self, result: *mut ()) {
        let mut this = mem::ManuallyDrop::new(self);
        // SAFETY: the buffer holds the value `new` wrote for these functions; ManuallyDrop keeps
        // `Drop` from dropping it again; `result` per this function's contract.
        unsafe { (this.call)(this.buf.as_mut_ptr().cast(), result) }
    }
}

impl Drop for DeferRec {
    fn drop(&mut self) {
        // SAFETY: the buffer holds the value `new` wrote, not yet consumed.
        unsafe { (self.drop)(self.buf.as_mut_ptr().cast()) }
    }
}
