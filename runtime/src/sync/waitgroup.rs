//! `WaitGroup`: wait for a collection of goroutines to finish (Go's `sync.WaitGroup`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::sema::Sema;
use crate::sched::WaitReason;

/// Waits for a collection of goroutines to finish, like Go's `sync.WaitGroup`.
///
/// `add` sets how many to wait for, each finishing goroutine calls `done`, and `wait` blocks
/// until the count is zero. A goroutine that waits parks (its thread runs other goroutines); a
/// plain thread that waits sleeps. Clones share one counter, so a clone can move into each
/// goroutine.
///
/// A negative counter panics with Go's text, `sync: negative WaitGroup counter`.
///
/// # Example
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
///
/// gort::run(|| {
///     let wg = gort::WaitGroup::new();
///     let sum = Arc::new(AtomicUsize::new(0));
///     for i in 1..=10 {
///         wg.add(1);
///         let (wg, sum) = (wg.clone(), sum.clone());
///         gort::go!(move || {
///             sum.fetch_add(i, Ordering::Relaxed);
///             wg.done();
///         });
///     }
///     wg.wait();
///     assert_eq!(sum.load(Ordering::Relaxed), 55);
/// });
/// ```
#[derive(Clone, Default)]
pub struct WaitGroup {
    inner: Arc<Inner>,
}

/// Go's layout: the high 32 bits count outstanding work, the low 32 bits count waiters.
struct Inner {
    state: AtomicU64,
    sema: Sema,
}

impl Default for Inner {
    fn default() -> Inner {
        Inner {
            state: AtomicU64::new(0),
            sema: Sema::new(),
        }
    }
}

impl WaitGroup {
    /// A WaitGroup with a zero counter.
    ///
    /// ```
    /// let wg = gort::WaitGroup::new();
    /// wg.wait(); // a zero counter does not block, even outside a goroutine
    /// ```
    pub fn new() -> WaitGroup {
        WaitGroup::default()
    }

    /// Adds `delta` (which may be negative) to the counter. When it reaches zero, every
    /// goroutine blocked in [`WaitGroup::wait`] is released.
    ///
    /// # Panics
    /// `sync: negative WaitGroup counter` if the counter goes below zero;
    /// `sync: WaitGroup misuse: Add called concurrently with Wait` on a detected race between
    /// a positive `add` from zero and `wait`.
    ///
    /// ```
    /// let wg = gort::WaitGroup::new();
    /// wg.add(2);
    /// wg.done();
    /// wg.done();
    /// wg.wait();
    /// ```
    #[track_caller]
    pub fn add(&self, delta: i32) {
        let inner = &*self.inner;
        // AcqRel: Release publishes the work done before `done()` to the waiter that sees zero;
        // Acquire orders this thread after earlier adds.
        let state = inner
            .state
            .fetch_add((delta as i64 as u64) << 32, Ordering::AcqRel)
            .wrapping_add((delta as i64 as u64) << 32);
        let v = (state >> 32) as u32 as i32;
        let w = state as u32;
        if v < 0 {
            panic!("sync: negative WaitGroup counter");
        }
        if w != 0 && delta > 0 && v == delta {
            panic!("sync: WaitGroup misuse: Add called concurrently with Wait");
        }
        if v > 0 || w == 0 {
            return;
        }
        // The counter is zero and there are waiters: nobody may touch the state now but us.
        if inner.state.load(Ordering::Acquire) != state {
            panic!("sync: WaitGroup misuse: Add called concurrently with Wait");
        }
        inner.state.store(0, Ordering::Release);
        for _ in 0..w {
            inner.sema.release();
        }
    }

    /// Starts `f` in a new goroutine counted by this WaitGroup (Go 1.25's `wg.Go(f)`:
    /// `Add(1)`, then `go func() { defer wg.Done(); f() }()`). The count drops when `f`
    /// returns, and also when it ends by `gort::goexit` or a panic that unwinds it.
    ///
    /// # Panics
    /// Outside a runtime (as `go!`), and as [`WaitGroup::add`] does.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::sync::Arc;
    /// gort::run(|| {
    ///     let wg = gort::WaitGroup::new();
    ///     let hits = Arc::new(AtomicU32::new(0));
    ///     for _ in 0..10 {
    ///         let hits = hits.clone();
    ///         wg.go(move || {
    ///             hits.fetch_add(1, Ordering::Relaxed);
    ///         });
    ///     }
    ///     wg.wait();
    ///     assert_eq!(hits.load(Ordering::Relaxed), 10);
    /// });
    /// ```
    #[track_caller]
    pub fn go<F>(&self, f: F)
    where
        F: FnOnce() + Send + 'static,
    {
        /// Go's `defer wg.Done()`: runs when `f` returns or unwinds.
        struct Done(WaitGroup);
        impl Drop for Done {
            fn drop(&mut self) {
                self.0.done();
            }
        }
        self.add(1);
        let done = Done(self.clone());
        crate::sched::spawn(
            move || {
                let _done = done;
                f();
            },
            None,
            None,
            std::any::type_name::<F>,
        );
    }

    /// Decrements the counter by one.
    ///
    /// ```
    /// let wg = gort::WaitGroup::new();
    /// wg.add(1);
    /// wg.done();
    /// ```
    #[track_caller]
    pub fn done(&self) {
        self.add(-1)
    }

    /// Blocks until the counter is zero.
    ///
    /// ```
    /// gort::run(|| {
    ///     let wg = gort::WaitGroup::new();
    ///     wg.add(1);
    ///     let w = wg.clone();
    ///     gort::go!(move || w.done());
    ///     wg.wait();
    /// });
    /// ```
    #[track_caller]
    pub fn wait(&self) {
        let inner = &*self.inner;
        let mut state = inner.state.load(Ordering::Acquire);
        loop {
            if state >> 32 == 0 {
                return;
            }
            // Register as a waiter (low half + 1), then sleep on the semaphore.
            match inner.state.compare_exchange_weak(
                state,
                state + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    inner.sema.acquire(WaitReason::WaitGroupWait);
                    return;
                }
                Err(s) => state = s,
            }
        }
    }
}

impl std::fmt::Debug for WaitGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.inner.state.load(Ordering::Relaxed);
        f.debug_struct("WaitGroup")
            .field("counter", &((s >> 32) as u32 as i32))
            .field("waiters", &(s as u32))
            .finish()
    }
}
