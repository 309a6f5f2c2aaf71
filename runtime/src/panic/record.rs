//! Deferred calls as values: the two shapes `defer!` produces ([`Plain`], [`WithResult`]) and
//! the type-erased record a goroutine's defer list holds ([`DeferRec`], Go's `_defer`).

use std::marker::PhantomData;
use std::mem::{self, MaybeUninit};
use std::ptr;

use super::named::Named;

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
        T: super::named::HasResult<R>,
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
/// `defer!` allocates nothing (closures larger than 32 bytes are boxed). Records are written
/// straight into the list's spare capacity and called from where they lie ([`push`],
/// [`pop_call`]): building one on the stack and copying it in costs a store-forwarding stall
/// per byte-wise field, several times the cost of the defer itself.
#[repr(C)]
pub(crate) struct DeferRec {
    /// Calls the value with a `*mut Named<R>` and gives it up.
    call: unsafe fn(*mut u8, *mut ()),
    drop: unsafe fn(*mut u8),
    direct: bool,
    buf: Buf,
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

/// Appends `d` to `list`, erasing its type and lifetime.
///
/// # Safety
/// The record must be called or dropped (or leaked) before anything `D` borrows goes away,
/// and called only with a pointer to a `Named<R>`. Frames guarantee both: a frame runs or
/// drops every record it pushed before it returns or unwinds past its caller.
#[inline(always)]
pub(crate) unsafe fn push<R, D: Deferred<R>>(list: &mut Vec<DeferRec>, d: D) {
    let direct = d.direct();
    list.reserve(1);
    let len = list.len();
    // SAFETY: `reserve` made room for one more record at `len`.
    let slot = unsafe { list.as_mut_ptr().add(len) };
    let fits = mem::size_of::<D>() <= INLINE && mem::align_of::<D>() <= mem::align_of::<Buf>();
    // SAFETY: `slot` is valid for writes of a whole record; each field is written once, and
    // `D` (or its box) fits the buffer in size and alignment (checked above).
    unsafe {
        let buf = ptr::addr_of_mut!((*slot).buf).cast::<u8>();
        if fits {
            ptr::write(buf.cast::<D>(), d);
            ptr::addr_of_mut!((*slot).call).write(call_inline::<R, D>);
            ptr::addr_of_mut!((*slot).drop).write(drop_inline::<D>);
        } else {
            ptr::write(buf.cast::<Box<D>>(), Box::new(d));
            ptr::addr_of_mut!((*slot).call).write(call_boxed::<R, D>);
            ptr::addr_of_mut!((*slot).drop).write(drop_boxed::<D>);
        }
        ptr::addr_of_mut!((*slot).direct).write(direct);
        list.set_len(len + 1);
    }
}

/// Removes the newest record of `list` and runs it where it lies; `on_direct` sees its
/// `direct` flag first. Returns false when `list` has no more than `keep` records.
///
/// # Safety
/// `list` must be the only live reference to the list until the call has read its value (the
/// first thing `call_inline`/`call_boxed` do); the deferred call may then push onto the list
/// again, reusing the slot. `result` as for [`push`].
#[inline(always)]
pub(crate) unsafe fn pop_call(
    list: *mut Vec<DeferRec>,
    keep: usize,
    result: *mut (),
    on_direct: impl FnOnce(bool),
) -> bool {
    // SAFETY: per the function's contract, nothing else uses the list now.
    let (call, buf) = unsafe {
        let list = &mut *list;
        let len = list.len();
        if len <= keep {
            return false;
        }
        list.set_len(len - 1);
        let slot = list.as_mut_ptr().add(len - 1);
        on_direct((*slot).direct);
        ((*slot).call, ptr::addr_of_mut!((*slot).buf).cast::<u8>())
    };
    // SAFETY: the slot holds the value `push` wrote for `call`, now given up (the length no
    // longer counts it); `call` moves it out before running user code.
    unsafe { call(buf, result) };
    true
}

impl Drop for DeferRec {
    fn drop(&mut self) {
        // SAFETY: a record in the list holds the value `push` wrote, not yet consumed.
        unsafe { (self.drop)(ptr::addr_of_mut!(self.buf).cast()) }
    }
}
