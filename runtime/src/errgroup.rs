//! Go's `golang.org/x/sync/errgroup`: a group of goroutines working on one task, where the
//! first error wins, cancels the others' context, and is what `wait` returns.
//!
//! ```
//! use gort::errgroup::Group;
//! gort::run(|| {
//!     let g = Group::<String>::new(); // Go: var g errgroup.Group
//!     for n in [1, 2, 3] {
//!         g.go(move || if n == 2 { Err(format!("job {n} failed")) } else { Ok(()) });
//!     }
//!     assert_eq!(g.wait(), Err("job 2 failed".to_string())); // Go: err := g.Wait()
//! });
//! ```
//!
//! # Invariants
//!
//! - `wg` counts every goroutine started by `go`/`try_go`; each holds one slot of `limit` (if
//!   set) from before it starts until after it finished.
//! - `first` is written once, by the first goroutine that returns an error, which then cancels
//!   the group's context (if it has one); `wait` cancels it too, as Go's does, so a context
//!   from `with_context` never outlives the group's work. It is never taken: every `wait`
//!   returns a clone (Go returns the group's error to every `Wait`).

use std::sync::Arc;

use parking_lot::Mutex;

use crate::chan::Chan;
use crate::context::{self, CancelFunc, Context};
use crate::sync::WaitGroup;

/// The error type a group collects when none is named: any error, shared.
///
/// `wait` hands the group's first error to every caller, as Go's `g.Wait` does, so the
/// group's error type must be `Clone`; most error types (`std::io::Error`, boxed errors) are
/// not. `Error` is: it holds any `std::error::Error + Send + Sync` behind an `Arc`, and `?`
/// converts into it (like `anyhow::Error`, it does not implement `std::error::Error` itself,
/// which would conflict with that conversion; it converts into a `Box<dyn Error>` and derefs
/// to `dyn Error`).
///
/// ```
/// use gort::errgroup::{Error, Group};
/// fn read_config() -> Result<(), Error> {
///     Err(std::io::Error::other("disk full"))?; // `?` converts any error
///     Ok(())
/// }
/// gort::run(|| {
///     let g: Group = Group::new(); // Group<Error>: any error type
///     g.go(|| Ok(()));
///     g.go(read_config);
///     let err: Error = g.wait().unwrap_err();
///     assert!(err.downcast_ref::<std::io::Error>().is_some());
///     assert_eq!(err.to_string(), "disk full");
///     assert!(g.wait().is_err(), "every wait returns the first error");
///     let boxed: Box<dyn std::error::Error + Send + Sync> = err.into(); // for `main`'s `?`
/// });
/// ```
#[derive(Clone)]
pub struct Error(Arc<dyn std::error::Error + Send + Sync>);

impl Error {
    /// An error with `msg` as its text (for a string there is no `From`: `?` converts error
    /// types, and `String` is not one).
    ///
    /// ```
    /// let e = gort::errgroup::Error::msg(format!("job {} failed", 3));
    /// assert_eq!(e.to_string(), "job 3 failed");
    /// ```
    pub fn msg(msg: impl std::fmt::Display + std::fmt::Debug + Send + Sync + 'static) -> Error {
        /// A message as an error.
        struct Msg<M>(M);
        impl<M: std::fmt::Debug> std::fmt::Debug for Msg<M> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Debug::fmt(&self.0, f)
            }
        }
        impl<M: std::fmt::Display> std::fmt::Display for Msg<M> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Display::fmt(&self.0, f)
            }
        }
        impl<M: std::fmt::Display + std::fmt::Debug> std::error::Error for Msg<M> {}
        Error(Arc::new(Msg(msg)))
    }

    /// A boxed error, as it is: `downcast_ref` sees the error inside the box.
    ///
    /// ```
    /// let boxed: Box<dyn std::error::Error + Send + Sync> = std::io::Error::other("disk").into();
    /// let e = gort::errgroup::Error::from_boxed(boxed);
    /// assert!(e.downcast_ref::<std::io::Error>().is_some());
    /// ```
    pub fn from_boxed(e: Box<dyn std::error::Error + Send + Sync>) -> Error {
        Error(Arc::from(e))
    }

    /// The error, if it is an `E`. Ask before converting into a `Box<dyn Error>`: the box
    /// holds the shared error, and its `downcast_ref` finds only that.
    pub fn downcast_ref<E: std::error::Error + 'static>(&self) -> Option<&E> {
        self.0.downcast_ref()
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for Error {
    fn from(e: E) -> Error {
        Error(Arc::new(e))
    }
}

impl std::ops::Deref for Error {
    type Target = dyn std::error::Error + Send + Sync;
    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&*self.0, f)
    }
}

impl From<Error> for Box<dyn std::error::Error + Send + Sync> {
    fn from(e: Error) -> Self {
        // `Arc<dyn Error>` is an error itself (std's `impl Error for Arc<T>`).
        Box::new(e.0)
    }
}

/// A group of goroutines (Go's `errgroup.Group`); clone it to share it.
///
/// # Example: fetch in parallel, stop at the first failure
///
/// ```
/// use gort::errgroup::Group;
/// gort::run(|| {
///     let (g, ctx) = Group::<String>::with_context(&gort::context::background());
///     for i in 0..10u32 {
///         let ctx = ctx.clone();
///         g.go(move || {
///             if i == 3 {
///                 return Err(format!("item {i} failed"));
///             }
///             // Work that watches ctx.done() stops early once another fails.
///             gort::select! {
///                 recv(ctx.done()) -> _ => {},
///                 recv(gort::time::after(std::time::Duration::from_millis(5))) -> _ => {},
///             }
///             Ok(())
///         });
///     }
///     assert_eq!(g.wait(), Err("item 3 failed".to_string()));
///     assert!(ctx.err().is_some());
/// });
/// ```
pub struct Group<E = Error> {
    inner: Arc<Inner<E>>,
}

impl<E> Clone for Group<E> {
    fn clone(&self) -> Self {
        Group {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<E> {
    wg: WaitGroup,
    /// Set once. A gort lock: `wait` clones under it, and a clone is user code that may
    /// park or yield (a goroutine may hold a gort lock across that, not a thread lock).
    first: crate::sync::Mutex<Option<E>>,
    cancel: Option<CancelFunc>,
    /// Slots of `set_limit`: a goroutine sends before it starts and receives when done.
    limit: Mutex<Option<Chan<()>>>,
}

impl<E: Send + 'static> Default for Group<E> {
    fn default() -> Self {
        Group::new()
    }
}

impl<E: Send + 'static> Group<E> {
    /// A group without a context (Go's zero `errgroup.Group`).
    ///
    /// ```
    /// gort::run(|| {
    ///     let g = gort::errgroup::Group::<std::io::ErrorKind>::new();
    ///     g.go(|| Ok(()));
    ///     assert!(g.wait().is_ok());
    /// });
    /// ```
    pub fn new() -> Group<E> {
        Group::make(None)
    }

    /// A group and a context derived from `parent` that is cancelled when a goroutine of the
    /// group returns an error, or when [`Group::wait`] returns (Go's `errgroup.WithContext`).
    ///
    /// ```
    /// use gort::{context, errgroup::Group};
    /// gort::run(|| {
    ///     // Go: g, ctx := errgroup.WithContext(context.Background())
    ///     let (g, ctx) = Group::<String>::with_context(&context::background());
    ///     let c = ctx.clone();
    ///     g.go(move || {
    ///         c.done().recv(); // waits until a sibling fails
    ///         Ok(())
    ///     });
    ///     g.go(|| Err("failed".to_string()));
    ///     assert_eq!(g.wait(), Err("failed".to_string()));
    ///     assert_eq!(ctx.err(), Some(context::Error::Canceled));
    /// });
    /// ```
    pub fn with_context(parent: &Context) -> (Group<E>, Context) {
        let (ctx, cancel) = context::with_cancel(parent);
        (Group::make(Some(cancel)), ctx)
    }

    fn make(cancel: Option<CancelFunc>) -> Group<E> {
        Group {
            inner: Arc::new(Inner {
                wg: WaitGroup::new(),
                first: crate::sync::Mutex::new(None),
                cancel,
                limit: Mutex::new(None),
            }),
        }
    }

    /// Limits the goroutines active at once to `n` (`None`: no limit); `go` then blocks while
    /// `n` run (Go's `SetLimit`).
    ///
    /// # Panics
    /// If goroutines of the group are active (Go: "errgroup: modify limit while N goroutines in
    /// the group are still active").
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    /// use std::sync::Arc;
    /// gort::run(|| {
    ///     let g = gort::errgroup::Group::<String>::new();
    ///     g.set_limit(Some(2));
    ///     let (now, max) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    ///     for _ in 0..8 {
    ///         let (now, max) = (now.clone(), max.clone());
    ///         g.go(move || {
    ///             max.fetch_max(now.fetch_add(1, SeqCst) + 1, SeqCst);
    ///             gort::yield_now();
    ///             now.fetch_sub(1, SeqCst);
    ///             Ok(())
    ///         });
    ///     }
    ///     g.wait().unwrap();
    ///     assert!(max.load(SeqCst) <= 2);
    /// });
    /// ```
    #[track_caller]
    pub fn set_limit(&self, n: Option<usize>) {
        let mut l = self.inner.limit.lock();
        if let Some(slots) = l.as_ref() {
            if !slots.is_empty() {
                panic!(
                    "errgroup: modify limit while {} goroutines in the group are still active",
                    slots.len()
                );
            }
        }
        *l = n.map(Chan::new);
    }

    /// Starts `f` in a new goroutine of the group, after waiting for a slot if a limit is set
    /// (Go's `g.Go`). The first error any `f` returns is kept for [`Group::wait`] and cancels
    /// the group's context.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::sync::Arc;
    /// gort::run(|| {
    ///     let g = gort::errgroup::Group::<String>::new();
    ///     let sum = Arc::new(AtomicU32::new(0));
    ///     for i in 1..=4 {
    ///         let sum = sum.clone();
    ///         g.go(move || { // Go: g.Go(func() error { ... })
    ///             sum.fetch_add(i, Ordering::Relaxed);
    ///             Ok(())
    ///         });
    ///     }
    ///     assert_eq!(g.wait(), Ok(()));
    ///     assert_eq!(sum.load(Ordering::Relaxed), 10);
    /// });
    /// ```
    #[track_caller]
    pub fn go<F>(&self, f: F)
    where
        F: FnOnce() -> Result<(), E> + Send + 'static,
    {
        let slots = self.inner.limit.lock().clone();
        if let Some(s) = &slots {
            s.send(());
        }
        self.start(f, slots);
    }

    /// Starts `f` only if a slot is free now (Go's `TryGo`); false if the limit is reached.
    ///
    /// ```
    /// gort::run(|| {
    ///     let g = gort::errgroup::Group::<String>::new();
    ///     g.set_limit(Some(1));
    ///     let gate: gort::Chan<()> = gort::Chan::new(0);
    ///     let gt = gate.clone();
    ///     assert!(g.try_go(move || { gt.recv(); Ok(()) }));
    ///     assert!(!g.try_go(|| Ok(())), "the one slot is taken");
    ///     gate.send(());
    ///     g.wait().unwrap();
    /// });
    /// ```
    #[track_caller]
    pub fn try_go<F>(&self, f: F) -> bool
    where
        F: FnOnce() -> Result<(), E> + Send + 'static,
    {
        let slots = self.inner.limit.lock().clone();
        if let Some(s) = &slots {
            if s.try_send(()).is_err() {
                return false;
            }
        }
        self.start(f, slots);
        true
    }

    #[track_caller]
    fn start<F>(&self, f: F, slots: Option<Chan<()>>)
    where
        F: FnOnce() -> Result<(), E> + Send + 'static,
    {
        let inner = self.inner.clone();
        /// Frees the slot however the goroutine ends (a return, Goexit, an unwinding panic).
        struct Slot(Option<Chan<()>>);
        impl Drop for Slot {
            fn drop(&mut self) {
                if let Some(s) = &self.0 {
                    let _ = s.try_recv();
                }
            }
        }
        let slot = Slot(slots);
        self.inner.wg.go(move || {
            let _slot = slot;
            if let Err(e) = f() {
                let mut first = inner.first.lock();
                if first.is_none() {
                    *first = Some(e);
                    drop(first);
                    if let Some(c) = &inner.cancel {
                        c.cancel();
                    }
                }
            }
        });
    }

    /// Waits for every goroutine of the group, cancels its context, and returns the first
    /// error (Go's `g.Wait`): every call, and every goroutine that waits, gets it, which is why
    /// `E` must be `Clone` here (see [`Error`] for errors that are not).
    ///
    /// ```
    /// gort::run(|| {
    ///     let g = gort::errgroup::Group::<&str>::new();
    ///     g.go(|| Err("first"));
    ///     g.go(|| Err("second"));
    ///     let other = g.clone();
    ///     let h = gort::spawn(move || other.wait()); // a second waiter
    ///     let err = g.wait(); // Go: if err := g.Wait(); err != nil
    ///     assert!(err == Err("first") || err == Err("second"));
    ///     assert_eq!(h.join(), err);
    ///     assert_eq!(g.wait(), err, "and again");
    /// });
    /// ```
    #[track_caller]
    pub fn wait(&self) -> Result<(), E>
    where
        E: Clone,
    {
        self.inner.wg.wait();
        if let Some(c) = &self.inner.cancel {
            c.cancel();
        }
        match &*self.inner.first.lock() {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }
}
