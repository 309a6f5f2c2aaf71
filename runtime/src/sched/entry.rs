//! A goroutine's function before it starts, stored without a heap allocation when small.
//!
//! Most goroutine closures capture a few handles (a WaitGroup, a channel, an index): storing
//! them in the goroutine record saves a `malloc`/`free` pair per `go!`, which at a million
//! spawns is a large part of the cost. The storage is the record's scratch block
//! (`Goroutine::scratch`), which the goroutine's blocked channel operations use once it runs:
//! the function is read out of the block before it is called, so the two never overlap.
//! Larger or over-aligned closures are boxed, the box pointer kept in the block.

use std::mem::{self, MaybeUninit};
use std::ptr::{self, NonNull};

/// Bytes of a scratch block.
pub(crate) const BLOCK: usize = 128;

/// A scratch block: raw bytes, 16-aligned.
#[repr(C, align(16))]
pub(crate) struct Block(pub(crate) [MaybeUninit<u8>; BLOCK]);

impl Block {
    pub(crate) const fn new() -> Block {
        Block([MaybeUninit::uninit(); BLOCK])
    }
}

struct VTable {
    call: unsafe fn(*mut u8),
    drop: unsafe fn(*mut u8),
}

/// A type-erased `FnOnce() + Send + 'static` kept in a [`Block`] it does not own.
pub(crate) struct EntryFn {
    buf: NonNull<Block>,
    vtable: &'static VTable,
}

// SAFETY: `EntryFn::new_in` accepts only `Send` closures, and the block it points to is reserved
// for it (its contract) wherever the entry goes.
unsafe impl Send for EntryFn {}

/// # Safety (for all four)
/// `p` points to an initialised `F` (or `Box<F>`) in a block, which the caller gives up.
unsafe fn call_inline<F: FnOnce()>(p: *mut u8) {
    // SAFETY: per the function's contract. The closure is moved out of the block before it
    // runs: from here on the block is free.
    let f = unsafe { ptr::read(p.cast::<F>()) };
    f()
}

unsafe fn drop_inline<F>(p: *mut u8) {
    // SAFETY: per the function's contract.
    unsafe { ptr::drop_in_place(p.cast::<F>()) }
}

unsafe fn call_boxed<F: FnOnce()>(p: *mut u8) {
    // SAFETY: the block holds a `Box<F>` written by `EntryFn::new_in`, given up by the caller.
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

impl EntryFn {
    /// Stores `f` in `buf` (or a box for it, if it does not fit).
    ///
    /// # Safety
    /// `buf` is valid, holds nothing that needs dropping, and nobody else uses it until the
    /// entry is called or dropped.
    pub(crate) unsafe fn new_in<F: FnOnce() + Send + 'static>(
        f: F,
        buf: NonNull<Block>,
    ) -> EntryFn {
        let p = buf.as_ptr().cast::<u8>();
        let fits = mem::size_of::<F>() <= BLOCK && mem::align_of::<F>() <= mem::align_of::<Block>();
        let vtable: &'static VTable = if fits {
            // SAFETY: `F` fits the block in size and alignment (checked above); the block is
            // ours (the contract).
            unsafe { ptr::write(p.cast::<F>(), f) };
            &<F as Table>::INLINE
        } else {
            // SAFETY: a `Box` pointer always fits the block.
            unsafe { ptr::write(p.cast::<Box<F>>(), Box::new(f)) };
            &<F as Table>::BOXED
        };
        EntryFn { buf, vtable }
    }

    /// Gives the function up without calling or dropping it (a discarded goroutine's: dropping
    /// runs user code). In sanitizer builds its bytes are first copied to a heap block that
    /// `shared::leak` keeps, so that what it holds stays reachable for LeakSanitizer after
    /// the record (and its scratch block) is gone.
    pub(crate) fn leak(self) {
        let this = mem::ManuallyDrop::new(self);
        #[cfg(feature = "sanitizer")]
        {
            let mut kept = Box::new(Block::new());
            // SAFETY: both are whole blocks; the source is the entry's, which nobody else
            // uses, and the copy is only kept, never read as a closure.
            unsafe { ptr::copy_nonoverlapping(this.buf.as_ptr(), &mut *kept, 1) };
            super::shared::leak(kept);
        }
        #[cfg(not(feature = "sanitizer"))]
        let _ = this;
    }

    /// Calls the function. The block is free again once the function starts.
    pub(crate) fn call(self) {
        let this = mem::ManuallyDrop::new(self);
        // SAFETY: the block holds the value `new_in` wrote for this vtable; ManuallyDrop keeps
        // `Drop` from dropping it a second time.
        unsafe { (this.vtable.call)(this.buf.as_ptr().cast()) }
    }
}

impl Drop for EntryFn {
    fn drop(&mut self) {
        // SAFETY: the block holds the value `new_in` wrote for this vtable, not yet consumed.
        unsafe { (self.vtable.drop)(self.buf.as_ptr().cast()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn small_and_large_closures_run_once_and_drop_once() {
        let mut block = Box::new(Block::new());
        let buf = NonNull::from(&mut *block);
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        // SAFETY: the block is ours, and each entry here is consumed before the next is
        // made.
        unsafe {
            EntryFn::new_in(
                move || {
                    h.fetch_add(1, Ordering::Relaxed);
                },
                buf,
            )
        }
        .call();
        let h = hits.clone();
        let big = [7u64; 32]; // 256 bytes: boxed
                              // SAFETY: as above.
        unsafe {
            EntryFn::new_in(
                move || {
                    h.fetch_add(big[3] as usize, Ordering::Relaxed);
                },
                buf,
            )
        }
        .call();
        assert_eq!(hits.load(Ordering::Relaxed), 8);
        // Dropped without being called: captured values are dropped.
        let h = hits.clone();
        // SAFETY: as above.
        drop(unsafe { EntryFn::new_in(move || drop(h), buf) });
        let h = hits.clone();
        // SAFETY: as above.
        drop(unsafe { EntryFn::new_in(move || drop((h, big)), buf) });
        assert_eq!(Arc::strong_count(&hits), 1);
        // A closure of exactly a block's size is stored inline.
        let h = hits.clone();
        let fill = [0x5a5a_5a5a_5a5a_5a5a_u64; 15];
        // SAFETY: as above.
        let e = unsafe { EntryFn::new_in(move || drop((h, fill)), buf) };
        // SAFETY: the block holds the closure, all 16 words of it (a boxed one would leave
        // only a pointer there).
        let words = unsafe { buf.as_ptr().cast::<[u64; 16]>().read() };
        let marked = words.iter().filter(|&&w| w == fill[0]).count();
        assert_eq!(marked, 15, "inline, not boxed: {words:x?}");
        drop(e);
        assert_eq!(Arc::strong_count(&hits), 1);
    }
}
