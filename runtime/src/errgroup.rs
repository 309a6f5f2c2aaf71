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
//!   from `with_context` never outlives the group's work.

use std::sync::Arc;

use parking_lot::Mutex;

use crate::chan::Chan;
use crate::context::{self, CancelFunc, Context};
use crate::sync::WaitGroup;

/// The error type a group collects when none is named: any error.
///
/// ```
/// use gort::errgroup::{BoxError, Group};
/// gort::run(|| {
///     let g: Group = Group::new(); // Group<BoxError>: any error type
///     g.go(|| Ok(()));
///     g.go(|| Err(std::io::Error::other("disk full").into()));
///     let err: BoxError = g.wait().unwrap_err();
///     assert!(err.downcast_ref::<std::io::Error>().is_some());
/// });
/// ```
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

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
pub struct Group<E = BoxError> {
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
    first: Mutex<Option<E>>,
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
    ///     let g = gort::errgroup::Group::<std::io::Error>::new();
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
                first: Mutex::new(None),
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
    /// error (Go's `g.Wait`). Later calls return `Ok` once the error was taken.
    ///
    /// ```
    /// gort::run(|| {
    ///     let g = gort::errgroup::Group::<&str>::new();
    ///     g.go(|| Err("first"));
    ///     assert_eq!(g.wait(), Err("first")); // Go: if err := g.Wait(); err != nil
    ///     assert_eq!(g.wait(), Ok(())); // the error was taken
    /// });
    /// ```
    #[track_caller]
    pub fn wait(&self) -> Result<(), E> {
        self.inner.wg.wait();
        if let Some(c) = &self.inner.cancel {
            c.cancel();
        }
        match self.inner.first.lock().take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
