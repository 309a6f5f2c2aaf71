//! The block a blocked single send or receive waits in ([`OpBox`]): the goroutine record's
//! operation block when it is free and large enough, else a small per-thread cache of heap
//! blocks (`opcache`). Never the goroutine's stack: copy-out may move the stack's contents
//! while the goroutine is parked, and wakers write into the sudog.

use std::cell::UnsafeCell;

use super::waitq::{self, Sel, Sudog};

/// A blocked single send or receive: its `Sel` and its one sudog, in one block that is never on
/// the goroutine's stack (copy-out may move the stack's contents away while the goroutine is
/// parked, and wakers write into the sudog): the goroutine's record's operation block when it
/// is free and large enough, else a small per-thread cache of heap blocks (`opcache`).
pub(super) struct Op<T> {
    pub(super) sel: Sel,
    pub(super) sg: Sudog<T>,
}

/// Owner of an `Op` in a goroutine's operation block or a cached heap block.
pub(super) struct OpBox<T> {
    ptr: std::ptr::NonNull<Op<T>>,
    /// The goroutine whose operation block holds the op; null for a heap block.
    home: *const crate::sched::Goroutine,
}

impl<T> OpBox<T> {
    pub(super) fn new(elem: Option<T>) -> OpBox<T> {
        let layout = std::alloc::Layout::new::<Op<T>>();
        let inline = crate::sched::current_g()
            .filter(|_| opcache::fits(layout))
            // SAFETY: we are the running goroutine of that record (`current_g`).
            .and_then(|g| unsafe { (*g).take_op_block() }.map(|p| (p, g)));
        let (ptr, home) = match inline {
            Some((p, g)) => (p.cast::<Op<T>>(), g),
            None => (opcache::alloc(layout).cast::<Op<T>>(), std::ptr::null()),
        };
        // SAFETY: `ptr` is a fresh block with `Op<T>`'s layout; the sudog's `sel` points into
        // the same block, whose address never changes.
        unsafe {
            ptr.as_ptr().write(Op {
                sel: Sel::new(),
                sg: Sudog {
                    sel: std::ptr::NonNull::dangling(),
                    case: 0,
                    is_select: false,
                    elem: UnsafeCell::new(elem),
                    link: UnsafeCell::new(waitq::Link::new()),
                },
            });
            (*ptr.as_ptr()).sg.sel = std::ptr::NonNull::from(&(*ptr.as_ptr()).sel);
        }
        OpBox { ptr, home }
    }
}

impl<T> std::ops::Deref for OpBox<T> {
    type Target = Op<T>;
    fn deref(&self) -> &Op<T> {
        // SAFETY: initialised in `new`, freed only in `drop`.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> Drop for OpBox<T> {
    fn drop(&mut self) {
        /// Gives the goroutine's block back when dropped: after the op's own drop, also if
        /// that unwinds (an operation made meanwhile saw the block taken and used the heap).
        struct GiveBack(*const crate::sched::Goroutine);
        impl Drop for GiveBack {
            fn drop(&mut self) {
                if !self.0.is_null() {
                    // SAFETY: the op box's rule below: we are its goroutine, running, and the
                    // op is dropped.
                    unsafe { (*self.0).put_op_block() };
                }
            }
        }
        let _back = GiveBack(self.home);
        // SAFETY: the op left every queue (its owner was woken, or never queued it); we own
        // the block. An op box is a local of the send or receive that made it, so it is
        // dropped by the same goroutine, which is running (its record's block rule).
        unsafe {
            std::ptr::drop_in_place(self.ptr.as_ptr());
            if self.home.is_null() {
                opcache::free(self.ptr.cast(), std::alloc::Layout::new::<Op<T>>());
            }
        }
    }
}

/// A per-thread cache of small heap blocks for `Op`s: a blocking send or receive costs a
/// push and a pop instead of `malloc` and `free`. A goroutine may take a block on one thread
/// and return it on another; blocks are plain memory, so that only moves them between caches.
pub(super) mod opcache {
    use std::alloc::{dealloc, handle_alloc_error, Layout};
    use std::cell::RefCell;
    use std::ptr::NonNull;

    /// Blocks are as large as a goroutine's own operation block, so an op that fits one fits
    /// the other.
    const CLASS: usize = crate::sched::g::BLOCK;
    const ALIGN: usize = 16;
    const KEEP: usize = 32;

    /// The cached blocks of one thread, returned to the allocator when the thread exits.
    struct Free(Vec<NonNull<u8>>);

    impl Drop for Free {
        fn drop(&mut self) {
            for p in self.0.drain(..) {
                // SAFETY: every cached block was allocated with the class layout.
                unsafe { dealloc(p.as_ptr(), class()) };
            }
        }
    }

    thread_local! {
        static FREE: RefCell<Free> = const { RefCell::new(Free(Vec::new())) };
    }

    fn class() -> Layout {
        Layout::from_size_align(CLASS, ALIGN).expect("a valid layout")
    }

    pub(in crate::chan) fn fits(l: Layout) -> bool {
        l.size() <= CLASS && l.align() <= ALIGN
    }

    /// A block for `l`. Not inlined: the thread-local is looked up afresh on every call, so a
    /// goroutine that moved to another thread uses that thread's cache.
    #[inline(never)]
    pub(super) fn alloc(l: Layout) -> NonNull<u8> {
        let l = if fits(l) {
            if let Some(p) = FREE.try_with(|f| f.borrow_mut().0.pop()).ok().flatten() {
                return p;
            }
            class()
        } else {
            l
        };
        // SAFETY: `l` has a non-zero size (an `Op` holds a `Sel`).
        let p = unsafe { std::alloc::alloc(l) };
        NonNull::new(p).unwrap_or_else(|| handle_alloc_error(l))
    }

    /// Returns a block from `alloc(l)`.
    ///
    /// # Safety
    /// `p` came from `alloc` with the same `l` and is not used again.
    #[inline(never)]
    pub(super) unsafe fn free(p: NonNull<u8>, l: Layout) {
        if fits(l) {
            let kept = FREE
                .try_with(|f| {
                    let mut f = f.borrow_mut();
                    if f.0.len() < KEEP {
                        f.0.push(p);
                        true
                    } else {
                        false
                    }
                })
                .unwrap_or(false);
            if !kept {
                // SAFETY: allocated with the class layout.
                unsafe { dealloc(p.as_ptr(), class()) };
            }
        } else {
            // SAFETY: allocated with `l`.
            unsafe { dealloc(p.as_ptr(), l) };
        }
    }
}
