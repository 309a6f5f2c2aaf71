//! `Once`: Go's `sync.Once`.

use std::sync::atomic::{AtomicBool, Ordering};

use super::mutex::Mutex;

/// Runs a function once (Go's `sync.Once`). Callers that arrive while it runs wait for it
/// (they park). As in Go, if the function panics, `call_once` counts it as done: later calls
/// do not run their function.
///
/// # Example
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// gort::run(|| {
///     let once = Arc::new(gort::Once::new());
///     let calls = Arc::new(AtomicUsize::new(0));
///     let wg = gort::WaitGroup::new();
///     for _ in 0..20 {
///         wg.add(1);
///         let (once, calls, wg) = (once.clone(), calls.clone(), wg.clone());
///         gort::go!(move || {
///             once.call_once(|| {
///                 calls.fetch_add(1, Ordering::SeqCst);
///             });
///             wg.done();
///         });
///     }
///     wg.wait();
///     assert_eq!(calls.load(Ordering::SeqCst), 1);
/// });
/// ```
#[derive(Default)]
pub struct Once {
    done: AtomicBool,
    m: Mutex<()>,
}

impl Once {
    /// A `Once` that has not run.
    pub const fn new() -> Once {
        Once {
            done: AtomicBool::new(false),
            m: Mutex::new(()),
        }
    }

    /// Runs `f` if no call has run (or is running) yet; waits for a running one.
    #[track_caller]
    pub fn call_once<F: FnOnce()>(&self, f: F) {
        if !self.done.load(Ordering::Acquire) {
            self.call_slow(f);
        }
    }

    #[cold]
    #[track_caller]
    fn call_slow<F: FnOnce()>(&self, f: F) {
        let _g = self.m.lock();
        if self.done.load(Ordering::Relaxed) {
            return;
        }
        /// Go's `defer atomic.StoreUint32(&o.done, 1)`: done even if `f` panics.
        struct SetDone<'a>(&'a AtomicBool);
        impl Drop for SetDone<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Release);
            }
        }
        let _d = SetDone(&self.done);
        f();
    }

    /// Whether a call has completed (or panicked).
    pub fn is_completed(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }
}

impl std::fmt::Debug for Once {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Once")
            .field("done", &self.is_completed())
            .finish()
    }
}
