//! A goroutine's function before it starts, stored without a heap allocation when small.
//!
//! Most goroutine closures capture a few handles (a WaitGroup, a channel, an index): storing
//! them inline in the goroutine record saves a `malloc`/`free` pair per `go!`, which at a
//! million spawns is a large part of the cost. Larger or over-aligned closures are boxed.

use std::mem::{self, MaybeUninit};
use std::ptr;

/// Bytes of inline storage.
const INLINE: usize = 64;
type Buf = MaybeUninit<[u64; INLINE / 8]>;

struct VTable {
    call: unsafe fn(*mut u8),
    drop: unsafe fn(*mut u8),
}

/// A type-erased `FnOnce() + Send + 'static`.
pub(crate) struct Entry {
    buf: Buf,
    vtable: &'static VTable,
}

// SAFETY: `Entry::new` accepts only `Send` closures.
unsafe impl Send for Entry {}

/// # Safety (for both)
/// `p` points to an initialised `F` in the buffer, which the caller gives up.
unsafe fn call_inline<F: FnOnce()>(p: *mut u8) {
    // SAFETY: per the function's contract.
    let f = unsafe { ptr::read(p.cast::<F>()) };
    f()
}

unsafe fn drop_inline<F>(p: *mut u8) {
    // SAFETY: per the function's contract.
    unsafe { ptr::drop_in_place(p.cast::<F>()) }
}

unsafe fn call_boxed<F: FnOnce()>(p: *mut u8) {
    // SAFETY: the buffer holds a `Box<F>` written by `Entry::new`, given up by the caller.
    let f = unsafe { ptr::read(p.cast::<Box<F>>()) };
    f()
}

unsafe fn drop_boxed<F>(p: *mut u8) {
    // SAFETY: as in `call_boxed`.
    drop(unsafe { ptr::read(p.cast::<Box<F>>()) })
}

trait Table {
    const INLINE: VTable;
    const BOXED: VTable;
}

impl<F: FnOnce()> Table for F {
    const INLINE: VTable = VTable {
        call: call_inline::<F>,
        drop: drop_inline::<F>,
    };
    const BOXED: VTable = VTable {
        call: call_boxed::<F>,
        drop: drop_boxed::<F>,
    };
}

impl Entry {
    pub(crate) fn new<F: FnOnce() + Send + 'static>(f: F) -> Entry {
        let mut buf = Buf::uninit();
        let fits = mem::size_of::<F>() <= INLINE && mem::align_of::<F>() <= mem::align_of::<Buf>();
        let vtable: &'static VTable = if fits {
            // SAFETY: `F` fits the buffer in size and alignment (checked above).
            unsafe { ptr::write(buf.as_mut_ptr().cast::<F>(), f) };
            &<F as Table>::INLINE
        } else {
            // SAFETY: a `Box` pointer always fits the buffer.
            unsafe { ptr::write(buf.as_mut_ptr().cast::<Box<F>>(), Box::new(f)) };
            &<F as Table>::BOXED
        };
        Entry { buf, vtable }
    }

    /// Calls the function.
    pub(crate) fn call(self) {
        let mut this = mem::ManuallyDrop::new(self);
        // SAFETY: the buffer holds the value `new` wrote for this vtable; ManuallyDrop keeps
        // `Drop` from dropping it a second time.
        unsafe { (this.vtable.call)(this.buf.as_mut_ptr().cast()) }
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        // SAFETY: the buffer holds the value `new` wrote for this vtable, not yet consumed.
        unsafe { (self.vtable.drop)(self.buf.as_mut_ptr().cast()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn small_and_large_closures_run_once_and_drop_once() {
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        Entry::new(move || {
            h.fetch_add(1, Ordering::Relaxed);
        })
        .call();
        let h = hits.clone();
        let big = [7u64; 32];
        Entry::new(move || {
            h.fetch_add(big[3] as usize, Ordering::Relaxed);
        })
        .call();
        assert_eq!(hits.load(Ordering::Relaxed), 8);
        // Dropped without being called: captured values are dropped.
        let h = hits.clone();
        drop(Entry::new(move || drop(h)));
        let h = hits.clone();
        drop(Entry::new(move || drop((h, big))));
        assert_eq!(Arc::strong_count(&hits), 1);
    }
}
