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
    ///
    /// ```
    /// static SETUP: gort::Once = gort::Once::new(); // Go: var setup sync.Once
    /// assert!(!SETUP.is_completed());
    /// SETUP.call_once(|| {});
    /// assert!(SETUP.is_completed());
    /// ```
    pub const fn new() -> Once {
        Once {
            done: AtomicBool::new(false),
            m: Mutex::new(()),
        }
    }

    /// Runs `f` if no call has run (or is running) yet; waits for a running one.
    ///
    /// ```
    /// let once = gort::Once::new();
    /// let mut runs = 0;
    /// once.call_once(|| runs += 1); // Go: once.Do(f)
    /// once.call_once(|| runs += 1); // does not run
    /// assert_eq!(runs, 1);
    /// ```
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
    ///
    /// ```
    /// use std::panic::{catch_unwind, AssertUnwindSafe};
    /// let once = gort::Once::new();
    /// let r = catch_unwind(AssertUnwindSafe(|| once.call_once(|| panic!("init failed"))));
    /// assert!(r.is_err());
    /// assert!(once.is_completed()); // as in Go, a call that panicked counts as done
    /// ```
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

/// A value made once, on first use, by whoever asks first; goroutines that ask while it is
/// being made wait for it (they park). Go's `sync.OnceValue` as a cell (std's `OnceLock`
/// blocks the thread instead, and with it every goroutine queued on that thread).
///
/// Differs from Go in one way: if the initialiser panics, Go's `OnceValue` re-panics with the
/// same value on every later call; a Rust panic value cannot be cloned, so later calls panic
/// with `gort: OnceCell initialiser panicked` instead.
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// gort::run(|| {
///     let config: Arc<gort::OnceCell<String>> = Arc::new(gort::OnceCell::new());
///     let wg = gort::WaitGroup::new();
///     for _ in 0..8 {
///         let config = config.clone();
///         wg.go(move || {
///             let c = config.get_or_init(|| {
///                 gort::yield_now(); // the others park meanwhile
///                 "loaded".to_string()
///             });
///             assert_eq!(c, "loaded");
///         });
///     }
///     wg.wait();
///     assert_eq!(config.get().map(String::as_str), Some("loaded"));
/// });
/// ```
pub struct OnceCell<T> {
    once: Once,
    value: std::cell::UnsafeCell<Option<T>>,
}

// SAFETY: the value is written once, inside `once` (which excludes other writers and makes
// readers wait), and only read after `once` completed (Acquire), so it is shared like a `&T`
// after initialisation and moved in from the initialising thread.
unsafe impl<T: Send + Sync> Sync for OnceCell<T> {}
// SAFETY: owning the cell owns the value.
unsafe impl<T: Send> Send for OnceCell<T> {}

impl<T> Default for OnceCell<T> {
    fn default() -> Self {
        OnceCell::new()
    }
}

impl<T> OnceCell<T> {
    /// An empty cell.
    ///
    /// ```
    /// static NAME: gort::OnceCell<String> = gort::OnceCell::new(); // `const`: a static works
    /// assert_eq!(NAME.get(), None);
    /// assert_eq!(NAME.get_or_init(|| "gort".to_string()), "gort");
    /// ```
    pub const fn new() -> OnceCell<T> {
        OnceCell {
            once: Once::new(),
            value: std::cell::UnsafeCell::new(None),
        }
    }

    /// The value, if it was made.
    ///
    /// ```
    /// let c = gort::OnceCell::new();
    /// assert_eq!(c.get(), None);
    /// c.get_or_init(|| 5);
    /// assert_eq!(c.get(), Some(&5));
    /// ```
    pub fn get(&self) -> Option<&T> {
        if !self.once.is_completed() {
            return None;
        }
        // SAFETY: completed (Acquire): written once before, never again.
        unsafe { (*self.value.get()).as_ref() }
    }

    /// The value, made by `f` if nobody made it yet; waits while another caller makes it.
    ///
    /// # Panics
    /// If `f` panics (then this call unwinds with `f`'s panic), and in every later call
    /// (`gort: OnceCell initialiser panicked`).
    ///
    /// ```
    /// let c = gort::OnceCell::new();
    /// assert_eq!(*c.get_or_init(|| 1), 1);
    /// assert_eq!(*c.get_or_init(|| 2), 1); // made already: `|| 2` does not run
    /// ```
    #[track_caller]
    pub fn get_or_init<F: FnOnce() -> T>(&self, f: F) -> &T {
        self.once.call_once(|| {
            let v = f();
            // SAFETY: inside `call_once`: the only writer, and no reader before completion.
            unsafe { *self.value.get() = Some(v) };
        });
        match self.get() {
            Some(v) => v,
            None => panic!("gort: OnceCell initialiser panicked"),
        }
    }
}
